/* Dispatch (server/dispatch.c): one request answered inside the current
 * transaction, called directly on a whole server in this process. Each test
 * checks the reply and the counters the op leaves for stats and /metrics. */
#include "server_fixture.h"
#include "suites.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static struct sv_fixture fx;
static struct sv_conn conn; /* a connection that is never on the wire */

static void setup(void)
{
    sv_fixture_init(&fx);
    memset(&conn, 0, sizeof(conn));
}

static void teardown(void)
{
    if (fx.started && sv_store_in_txn(fx.store))
        sv_store_abort(fx.store);
    sv_fixture_stop(&fx);
}

static void start(void)
{
    sv_fixture_start(&fx);
    conn.srv = &fx.srv;
    conn.authed = fx.srv.token_len == 0;
    ck_assert_int_eq(sv_store_begin(fx.store), 0);
}

static int dispatch(const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    statesrv__v1__response__init(resp);
    return sv_dispatch(&fx.srv, &conn, req, resp);
}

START_TEST(a_put_is_seen_by_a_get_in_the_same_transaction)
{
    start();
    Statesrv__V1__Response resp;
    ck_assert_int_eq(dispatch(sv_req_put(1, "users", "alice", "pro", 3), &resp), SV_DISPATCH_REPLY);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__OK);
    ck_assert_int_eq(dispatch(sv_req_get(2, "users", "alice"), &resp), SV_DISPATCH_REPLY);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__OK);
    ck_assert_int_eq(resp.result_case, STATESRV__V1__RESPONSE__RESULT_GET);
    ck_assert_uint_eq(resp.get->value.len, 3);
    ck_assert_int_eq(memcmp(resp.get->value.data, "pro", 3), 0);
    ck_assert_uint_eq(fx.srv.ops[STATESRV__V1__REQUEST__OP_PUT].count, 1);
    ck_assert_uint_eq(fx.srv.ops[STATESRV__V1__REQUEST__OP_GET].count, 1);
}
END_TEST

START_TEST(a_miss_is_counted_by_status_but_not_as_an_error)
{
    start();
    Statesrv__V1__Response resp;
    dispatch(sv_req_get(1, "users", "nobody"), &resp);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(resp.message, "users"));
    ck_assert_int_eq(resp.result_case, STATESRV__V1__RESPONSE__RESULT__NOT_SET);
    const struct sv_op_counter *g = &fx.srv.ops[STATESRV__V1__REQUEST__OP_GET];
    ck_assert_uint_eq(g->count, 1);
    ck_assert_uint_eq(g->by_status[STATESRV__V1__STATUS__NOT_FOUND], 1);
    ck_assert_uint_eq(g->errors, 0);
}
END_TEST

START_TEST(a_bad_state_name_is_an_invalid_argument_and_an_error)
{
    start();
    Statesrv__V1__Response resp;
    dispatch(sv_req_put(1, "no spaces", "k", "v", 1), &resp);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(resp.message);
    ck_assert_uint_gt(strlen(resp.message), 0);
    const struct sv_op_counter *p = &fx.srv.ops[STATESRV__V1__REQUEST__OP_PUT];
    ck_assert_uint_eq(p->by_status[STATESRV__V1__STATUS__INVALID_ARGUMENT], 1);
    ck_assert_uint_eq(p->errors, 1);
}
END_TEST

START_TEST(a_request_without_an_op_is_refused)
{
    start();
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.id = 9;
    Statesrv__V1__Response resp;
    ck_assert_int_eq(dispatch(&req, &resp), SV_DISPATCH_REPLY);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__INVALID_ARGUMENT);
    ck_assert_str_eq(resp.message, "unknown op");
}
END_TEST

START_TEST(a_wrong_token_makes_the_reply_the_last)
{
    snprintf(fx.cfg.auth_token_file, sizeof(fx.cfg.auth_token_file), "%s/token", fx.dir);
    FILE *f = fopen(fx.cfg.auth_token_file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("sesame\n", f);
    fclose(f);
    start();
    ck_assert_int_eq(conn.authed, 0);
    Statesrv__V1__Response resp;
    dispatch(sv_req_hello(1, "sesam"), &resp);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__UNAUTHENTICATED);
    ck_assert_str_eq(resp.message, "invalid auth token");
    ck_assert_int_eq(conn.fate, SV_FATE_DRAIN);
    ck_assert_int_eq(conn.authed, 0);

    /* None at all is said as such, with how to send one. */
    conn.fate = SV_FATE_SERVE;
    dispatch(sv_req_hello(2, NULL), &resp);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__UNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(resp.message, "no auth token was sent"));
    ck_assert_ptr_nonnull(strstr(resp.message, "--token-file"));
    ck_assert_int_eq(conn.fate, SV_FATE_DRAIN);

    conn.fate = SV_FATE_SERVE;
    dispatch(sv_req_hello(2, "sesame"), &resp);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__OK);
    ck_assert_int_eq(conn.fate, SV_FATE_SERVE);
    ck_assert_int_eq(conn.authed, 1);
    ck_assert_uint_eq(resp.hello->key_groups, fx.cfg.key_groups);
}
END_TEST

START_TEST(a_snapshot_is_deferred_and_its_status_waits_for_the_job)
{
    start();
    Statesrv__V1__Response resp;
    ck_assert_int_eq(dispatch(sv_req_snapshot(1), &resp), SV_DISPATCH_DEFERRED);
    const struct sv_op_counter *s = &fx.srv.ops[STATESRV__V1__REQUEST__OP_SNAPSHOT];
    ck_assert_uint_eq(s->count, 1);
    for (unsigned i = 0; i < SV_STATUS_SLOTS; i++)
        ck_assert_uint_eq(s->by_status[i], 0);
    /* A second one while the first is queued is refused at once. */
    ck_assert_int_eq(dispatch(sv_req_snapshot(2), &resp), SV_DISPATCH_REPLY);
    ck_assert_int_eq(resp.status, STATESRV__V1__STATUS__BUSY);
    ck_assert_uint_eq(s->by_status[STATESRV__V1__STATUS__BUSY], 1);
}
END_TEST

/* The op table answers every op of the protocol, under the proto's own
 * field name (the name stats and /metrics use). */
START_TEST(every_op_of_the_protocol_has_a_name_and_an_answer)
{
    start();
    const ProtobufCMessageDescriptor *d = &statesrv__v1__request__descriptor;
    unsigned n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->id == 1)
            continue; /* the request id */
        ck_assert_uint_lt(f->id, SV_OP_SLOTS);
        ck_assert_str_eq(sv_op_name(f->id), f->name);
        n++;
    }
    ck_assert_uint_ge(n, 16);
    ck_assert_str_eq(sv_op_name(STATESRV__V1__REQUEST__OP__NOT_SET), "unknown");
    ck_assert_str_eq(sv_op_name(SV_OP_SLOTS + 3), "unknown");
    ck_assert(sv_op_is_job(STATESRV__V1__REQUEST__OP_SNAPSHOT));
    ck_assert(sv_op_is_job(STATESRV__V1__REQUEST__OP_RESTORE));
    ck_assert(!sv_op_is_job(STATESRV__V1__REQUEST__OP_PUT));
}
END_TEST

Suite *sv_suite_dispatch(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, a_put_is_seen_by_a_get_in_the_same_transaction);
    tcase_add_test(tc, a_miss_is_counted_by_status_but_not_as_an_error);
    tcase_add_test(tc, a_bad_state_name_is_an_invalid_argument_and_an_error);
    tcase_add_test(tc, a_request_without_an_op_is_refused);
    tcase_add_test(tc, a_wrong_token_makes_the_reply_the_last);
    tcase_add_test(tc, a_snapshot_is_deferred_and_its_status_waits_for_the_job);
    tcase_add_test(tc, every_op_of_the_protocol_has_a_name_and_an_answer);
    suite_add_tcase(s, tc);
    return s;
}
