/* The group commit (server/batch.c), through a whole server in this process:
 * requests written in one go run in one transaction, replies leave in order
 * after the commit, a replay after map growth counts each request once, and
 * a connection's fate (drain, await a job) is carried out after its replies. */
#include "server_fixture.h"
#include "suites.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sv_fixture fx;

static void setup(void)
{
    sv_fixture_init(&fx);
}

static void teardown(void)
{
    sv_fixture_stop(&fx);
}

/* Waits for the server to accept fd's connection. */
static struct sv_conn *accepted(void)
{
    for (int i = 0; i < 500 && !sv_fixture_conn(&fx); i++)
        sv_fixture_run(&fx, 2);
    struct sv_conn *c = sv_fixture_conn(&fx);
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(pipelined_requests_share_one_commit_and_reply_in_order)
{
    sv_fixture_start(&fx);
    int fd = sv_fixture_connect(&fx);
    accepted();
    static uint8_t buf[4096];
    size_t n = 0;
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_put(1, "s", "a", "v1", 2));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_get(2, "s", "a"));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_get(3, "s", "missing"));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_ping(4));
    uint64_t commits = fx.srv.commits;
    sv_fixture_send(&fx, fd, buf, n);
    for (uint64_t id = 1; id <= 4; id++) {
        Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, id);
        if (id == 2) {
            ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
            ck_assert_uint_eq(r->get->value.len, 2);
            ck_assert_int_eq(memcmp(r->get->value.data, "v1", 2), 0);
        }
        if (id == 3)
            ck_assert_int_eq(r->status, STATESRV__V1__STATUS__NOT_FOUND);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    ck_assert_uint_eq(fx.srv.commits - commits, 1);
    ck_assert_uint_eq(fx.srv.ops[STATESRV__V1__REQUEST__OP_GET].count, 2);
    ck_assert_uint_eq(fx.srv.ops[STATESRV__V1__REQUEST__OP_GET].errors, 0);
    ck_assert_uint_eq(
        fx.srv.ops[STATESRV__V1__REQUEST__OP_GET].by_status[STATESRV__V1__STATUS__NOT_FOUND], 1);
    close(fd);
}
END_TEST

START_TEST(a_batch_replayed_after_map_growth_counts_each_request_once)
{
    fx.cfg.map_size = 1u << 20; /* 40 puts of 64 KiB cannot fit: the map grows mid-batch */
    sv_fixture_start(&fx);
    uint64_t size0, used0;
    sv_store_usage(fx.store, &size0, &used0);
    int fd = sv_fixture_connect(&fx);
    struct sv_conn *c = accepted();
    enum { N = 40, VLEN = 64 * 1024 };
    static uint8_t buf[N * (VLEN + 64)];
    static uint8_t val[VLEN];
    memset(val, 'x', sizeof(val));
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_put((uint64_t)i + 1, "big", k, val, VLEN));
    }
    uint64_t commits = fx.srv.commits;
    sv_fixture_feed(c, buf, n); /* all of it in one group commit */
    for (int i = 0; i < N; i++) {
        Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, (uint64_t)i + 1);
        ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "put %d: %s", i, r->message);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    uint64_t size1, used1;
    sv_store_usage(fx.store, &size1, &used1);
    ck_assert_uint_gt(size1, size0); /* it did grow, so the batch was replayed */
    const struct sv_op_counter *put = &fx.srv.ops[STATESRV__V1__REQUEST__OP_PUT];
    ck_assert_uint_eq(put->count, N);
    ck_assert_uint_eq(put->by_status[0], N);
    ck_assert_uint_eq(put->errors, 0);
    /* One commit: the map grew inside the batch, which ran again whole. */
    ck_assert_uint_eq(fx.srv.commits - commits, 1);
    close(fd);
}
END_TEST

START_TEST(a_framing_error_answers_what_came_before_then_drains)
{
    sv_fixture_start(&fx);
    int fd = sv_fixture_connect(&fx);
    struct sv_conn *c = accepted();
    static uint8_t buf[256];
    size_t n = sv_fixture_frame(buf, 0, sizeof(buf), sv_req_ping(7));
    uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff}; /* a 2 GiB frame */
    memcpy(buf + n, huge, 4);
    sv_fixture_send(&fx, fd, buf, n + 4);
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 7);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    statesrv__v1__response__free_unpacked(r, NULL);
    r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 0);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(r->message, "max_frame_size"));
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_int_eq(c->fate, SV_FATE_DRAIN);
    ck_assert_int_ne(c->state, SV_CONN_OPEN);
    ck_assert_ptr_null(sv_fixture_reply(&fx, fd)); /* then the server's EOF */
    ck_assert_uint_eq(fx.srv.conn_errors[SV_CERR_PROTOCOL], 1);
    close(fd);
}
END_TEST

static void write_token(const char *tok)
{
    snprintf(fx.cfg.auth_token_file, sizeof(fx.cfg.auth_token_file), "%s/token", fx.dir);
    FILE *f = fopen(fx.cfg.auth_token_file, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", tok);
    fclose(f);
}

START_TEST(requests_before_hello_are_refused_and_the_refusal_is_the_last_reply)
{
    write_token("sesame");
    sv_fixture_start(&fx);
    int fd = sv_fixture_connect(&fx);
    accepted();
    static uint8_t buf[256];
    size_t n = sv_fixture_frame(buf, 0, sizeof(buf), sv_req_ping(1));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_ping(2));
    sv_fixture_send(&fx, fd, buf, n);
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 1);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__UNAUTHENTICATED);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_ptr_null(sv_fixture_reply(&fx, fd)); /* ping 2 is never answered */
    ck_assert_uint_eq(fx.srv.ops[STATESRV__V1__REQUEST__OP_PING].count, 0);
    close(fd);
}
END_TEST

START_TEST(a_wrong_token_is_answered_then_the_connection_drains)
{
    write_token("sesame");
    sv_fixture_start(&fx);
    int fd = sv_fixture_connect(&fx);
    accepted();
    static uint8_t buf[256];
    size_t n = sv_fixture_frame(buf, 0, sizeof(buf), sv_req_hello(1, "wrong"));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_ping(2));
    sv_fixture_send(&fx, fd, buf, n);
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__UNAUTHENTICATED);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_ptr_null(sv_fixture_reply(&fx, fd));
    close(fd);

    /* The right token opens the door. */
    fd = sv_fixture_connect(&fx);
    n = sv_fixture_frame(buf, 0, sizeof(buf), sv_req_hello(1, "sesame"));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_ping(2));
    sv_fixture_send(&fx, fd, buf, n);
    for (uint64_t id = 1; id <= 2; id++) {
        r = sv_fixture_reply(&fx, fd);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, id);
        ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    close(fd);
}
END_TEST

START_TEST(requests_behind_a_snapshot_wait_for_its_reply_and_miss_its_cut)
{
    sv_fixture_start(&fx);
    int fd = sv_fixture_connect(&fx);
    struct sv_conn *c = accepted();
    static uint8_t buf[512];
    size_t n = sv_fixture_frame(buf, 0, sizeof(buf), sv_req_put(1, "s", "before", "1", 1));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_snapshot(2));
    n = sv_fixture_frame(buf, n, sizeof(buf), sv_req_put(3, "s", "after", "1", 1));
    sv_fixture_send(&fx, fd, buf, n);
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 1);
    statesrv__v1__response__free_unpacked(r, NULL);
    r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 2);
    ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "snapshot: %s", r->message);
    ck_assert_ptr_nonnull(r->snapshot);
    ck_assert_uint_eq(r->snapshot->manifest->entries, 1); /* "after" is not in it */
    statesrv__v1__response__free_unpacked(r, NULL);
    r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 3);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_int_eq(c->fate, SV_FATE_SERVE);
    const struct sv_op_counter *snap = &fx.srv.ops[STATESRV__V1__REQUEST__OP_SNAPSHOT];
    ck_assert_uint_eq(snap->count, 1);
    ck_assert_uint_eq(snap->by_status[0], 1);
    close(fd);
}
END_TEST

Suite *sv_suite_batch(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("group commit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT * 2);
    tcase_add_test(tc, pipelined_requests_share_one_commit_and_reply_in_order);
    tcase_add_test(tc, a_batch_replayed_after_map_growth_counts_each_request_once);
    tcase_add_test(tc, a_framing_error_answers_what_came_before_then_drains);
    tcase_add_test(tc, requests_before_hello_are_refused_and_the_refusal_is_the_last_reply);
    tcase_add_test(tc, a_wrong_token_is_answered_then_the_connection_drains);
    tcase_add_test(tc, requests_behind_a_snapshot_wait_for_its_reply_and_miss_its_cut);
    suite_add_tcase(s, tc);
    return s;
}
