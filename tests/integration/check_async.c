/* The asynchronous libstatesrv (statesrv_async.h) against a real statesrvd:
 * issue order, many requests in flight, the bounds, per-request errors, a
 * server that dies mid-stream (every callback exactly once), timeouts,
 * auth, close with requests pending, and the libuv adapter. */
#include "harness.h"
#include "statesrv.h"
#include "statesrv_async.h"
#include "statesrv_uv.h"
#include "suites.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ts srv;

static void setup(void)
{
    ts_start(&srv, NULL);
}

static void teardown(void)
{
    ts_cleanup(&srv);
}

static statesrv_async *open_async(const char *addr, uint32_t in_flight, size_t queued)
{
    statesrv_async_options ao = {.max_in_flight = in_flight, .max_queued_bytes = queued};
    statesrv_async *a;
    char why[256];
    int rc = statesrv_async_connect(addr, NULL, &ao, &a, why, sizeof(why));
    ck_assert_msg(rc == STATESRV_OK, "async connect %s: %s: %s", addr, statesrv_strerror(rc), why);
    return a;
}

/* Runs the handle until nothing is in flight (bounded). */
static void drain(statesrv_async *a)
{
    long deadline = ts_now_ms() + 20000;
    while (statesrv_async_in_flight(a) > 0) {
        ck_assert_msg(ts_now_ms() < deadline, "%zu requests still in flight",
                      statesrv_async_in_flight(a));
        int rc = statesrv_async_wait(a, 100);
        if (rc != STATESRV_OK)
            break; /* the callbacks have the error */
    }
}

/* What a callback saw, copied out of the borrowed result. */
struct seen {
    int calls;
    int status;
    uint64_t id;
    int found;
    int kind;
    int64_t counter;
    uint64_t count;
    char value[64];
    size_t value_len;
    size_t n_items;
    int items_found[8];
    size_t n_entries;
    size_t cursor_len;
    char message[256];
};

static void record(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    (void)a;
    struct seen *s = arg;
    s->calls++;
    s->status = r->status;
    s->id = r->id;
    s->found = r->found;
    s->kind = r->kind;
    s->counter = r->counter;
    s->count = r->count;
    s->value_len = r->value_len;
    if (r->value_len && r->value_len < sizeof(s->value))
        memcpy(s->value, r->value, r->value_len);
    s->n_items = r->n_items;
    for (size_t i = 0; i < r->n_items && i < 8; i++)
        s->items_found[i] = r->items[i].found;
    s->n_entries = r->n_entries;
    s->cursor_len = r->cursor_len;
    snprintf(s->message, sizeof(s->message), "%s", r->message ? r->message : "(null)");
}

static statesrv_key K(const char *state, const char *key)
{
    statesrv_key k = {.state = state, .key = key, .key_len = strlen(key)};
    return k;
}

#define AOK(a, call)                                                                               \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == STATESRV_OK, "%s -> %s: %s", #call, statesrv_strerror(rc_),           \
                      statesrv_async_errmsg(a));                                                   \
    } while (0)

/* A put and a get of the same key issued in one turn: the get sees the put,
 * and the requests left in one write. */
START_TEST(put_then_get_in_one_turn_sees_the_put)
{
    statesrv_async *a = open_async(srv.unix_addr, 0, 0);
    statesrv_key k = K("s", "k1");
    struct seen put = {0}, get = {0}, del = {0}, get2 = {0};
    uint64_t id_put, id_get;
    ck_assert_int_eq(statesrv_async_events(a), STATESRV_ASYNC_READ);
    AOK(a, statesrv_async_put(a, &k, STATESRV_KIND_RAW, "v1", 2, record, &put, &id_put));
    AOK(a, statesrv_async_get(a, &k, record, &get, &id_get));
    AOK(a, statesrv_async_delete(a, &k, record, &del, NULL));
    AOK(a, statesrv_async_get(a, &k, record, &get2, NULL));
    ck_assert_uint_eq(id_get, id_put + 1);
    ck_assert_int_eq(put.calls, 0); /* nothing runs inside a request function */
    ck_assert_uint_eq(statesrv_async_in_flight(a), 4);
    ck_assert_int_eq(statesrv_async_events(a), STATESRV_ASYNC_READ | STATESRV_ASYNC_WRITE);
    AOK(a, statesrv_async_write(a));
    ck_assert_int_eq(statesrv_async_events(a), STATESRV_ASYNC_READ); /* all out in one go */
    drain(a);
    ck_assert_int_eq(put.calls, 1);
    ck_assert_int_eq(put.status, STATESRV_OK);
    ck_assert_uint_eq(put.id, id_put);
    ck_assert_int_eq(get.calls, 1);
    ck_assert_int_eq(get.status, STATESRV_OK);
    ck_assert_int_eq(get.found, 1);
    ck_assert_uint_eq(get.value_len, 2);
    ck_assert(memcmp(get.value, "v1", 2) == 0);
    ck_assert_int_eq(del.found, 1);
    ck_assert_int_eq(get2.status, STATESRV_NOT_FOUND);
    ck_assert_int_eq(get2.found, 0);
    statesrv_async_close(a);
}
END_TEST

/* Random adds, puts and gets on a few keys with up to 64 in flight: every
 * reply agrees with a model applied in issue order, callbacks come in issue
 * order, each exactly once. */
struct model_run {
    int64_t model[16];
    uint64_t next_expected_id;
    int bad_order;
    int mismatches;
    int calls;
};

struct op_ctx {
    struct model_run *m;
    uint64_t id;
    int64_t expect; /* add: the counter after it; get: the value */
};

static struct op_ctx ctxs[20000];

static void check_op(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    (void)a;
    struct op_ctx *o = arg;
    struct model_run *m = o->m;
    m->calls++;
    if (r->id != m->next_expected_id)
        m->bad_order++;
    m->next_expected_id = r->id + 1;
    int64_t got = r->counter;
    if (r->value_len == 8) {
        ck_assert_int_eq(statesrv_counter_decode(r->value, 8, &got), STATESRV_OK);
    }
    if (r->status != STATESRV_OK || got != o->expect)
        m->mismatches++;
}

START_TEST(random_ops_in_flight_match_a_model)
{
    statesrv_async *a = open_async(srv.tcp_addr, 64, 0);
    struct model_run m = {.next_expected_id = 0};
    srand(16);
    char names[16][8];
    for (int i = 0; i < 16; i++)
        snprintf(names[i], sizeof(names[i]), "k%d", i);
    /* Every counter exists before the gets. */
    for (int i = 0; i < 16; i++) {
        statesrv_key k = K("cnt", names[i]);
        struct op_ctx *o = &ctxs[i];
        o->m = &m;
        o->expect = 0;
        uint64_t id;
        AOK(a, statesrv_async_add(a, &k, 0, check_op, o, &id));
        if (i == 0)
            m.next_expected_id = id;
    }
    int again = 0;
    for (int i = 16; i < 20000; i++) {
        int key = rand() % 16;
        statesrv_key k = K("cnt", names[key]);
        struct op_ctx *o = &ctxs[i];
        o->m = &m;
        int rc;
        int is_get = rand() % 3 == 0;
        int64_t delta = rand() % 100 - 50;
        for (;;) {
            rc = is_get ? statesrv_async_get(a, &k, check_op, o, &o->id)
                        : statesrv_async_add(a, &k, delta, check_op, o, &o->id);
            if (rc != STATESRV_ERR_AGAIN)
                break;
            again++;
            ck_assert_uint_eq(statesrv_async_in_flight(a), 64);
            ck_assert_int_eq(statesrv_async_wait(a, 1000), STATESRV_OK);
        }
        AOK(a, rc);
        if (!is_get)
            m.model[key] += delta;
        o->expect = m.model[key];
        /* Random completion checks while issuing. */
        if (rand() % 97 == 0)
            ck_assert_int_eq(statesrv_async_wait(a, 0), STATESRV_OK);
    }
    drain(a);
    ck_assert_int_eq(m.calls, 20000);
    ck_assert_int_eq(m.bad_order, 0);
    ck_assert_int_eq(m.mismatches, 0);
    ck_assert_int_gt(again, 0); /* the bound was reached and held */
    statesrv_async_close(a);
}
END_TEST

START_TEST(bounds_refuse_and_recover)
{
    statesrv_async *a = open_async(srv.unix_addr, 8, 0);
    ck_assert_uint_eq(statesrv_async_capacity(a), 8);
    struct seen s[9];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 8; i++)
        AOK(a, statesrv_async_ping(a, record, &s[i], NULL));
    ck_assert_int_eq(statesrv_async_ping(a, record, &s[8], NULL), STATESRV_ERR_AGAIN);
    ck_assert(strstr(statesrv_async_errmsg(a), "max_in_flight") != NULL);
    drain(a);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(s[i].calls, 1);
    ck_assert_int_eq(s[8].calls, 0); /* refused: never called */
    AOK(a, statesrv_async_ping(a, record, &s[8], NULL));
    drain(a);
    ck_assert_int_eq(s[8].calls, 1);
    statesrv_async_close(a);

    /* Queued bytes: one request always fits, the next one waits. */
    a = open_async(srv.unix_addr, 0, 1000);
    static char big[4000];
    statesrv_key k = K("b", "k");
    struct seen p1 = {0}, p2 = {0};
    AOK(a, statesrv_async_put(a, &k, STATESRV_KIND_RAW, big, sizeof(big), record, &p1, NULL));
    ck_assert_int_eq(
        statesrv_async_put(a, &k, STATESRV_KIND_RAW, big, sizeof(big), record, &p2, NULL),
        STATESRV_ERR_AGAIN);
    AOK(a, statesrv_async_write(a));
    AOK(a, statesrv_async_put(a, &k, STATESRV_KIND_RAW, big, sizeof(big), record, &p2, NULL));
    drain(a);
    ck_assert_int_eq(p1.status, STATESRV_OK);
    ck_assert_int_eq(p2.status, STATESRV_OK);
    statesrv_async_close(a);
}
END_TEST

START_TEST(errors_are_per_request)
{
    statesrv_async *a = open_async(srv.tcp_addr, 0, 0);
    statesrv_key bad = K("no spaces", "k"), raw = K("e", "raw"), c1 = K("e", "c1");
    struct seen s_bad = {0}, s_put = {0}, s_add = {0}, s_ok = {0}, s_missing = {0}, s_mg = {0},
                s_batch = {0}, s_scan = {0}, s_clear = {0}, s_use = {0}, s_big = {0};
    AOK(a, statesrv_async_put(a, &bad, STATESRV_KIND_RAW, "x", 1, record, &s_bad, NULL));
    AOK(a, statesrv_async_put(a, &raw, STATESRV_KIND_RAW, "x", 1, record, &s_put, NULL));
    AOK(a, statesrv_async_add(a, &raw, 1, record, &s_add, NULL)); /* not a counter */
    AOK(a, statesrv_async_add(a, &c1, 5, record, &s_ok, NULL));
    statesrv_key missing = K("e", "missing");
    AOK(a, statesrv_async_get(a, &missing, record, &s_missing, NULL));
    statesrv_key keys[3] = {raw, missing, c1};
    AOK(a, statesrv_async_multi_get(a, keys, 3, record, &s_mg, NULL));
    statesrv_batch *b = statesrv_batch_new();
    ck_assert_int_eq(statesrv_batch_put(b, &c1, "y", 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_batch_add(b, &raw, 1), STATESRV_OK); /* fails: all or none */
    AOK(a, statesrv_async_batch(a, b, record, &s_batch, NULL));
    statesrv_batch_free(b); /* copied at issue */
    statesrv_scan_options so = {.state = "e", .mode = STATESRV_SCAN_STATE, .page_size = 1};
    AOK(a, statesrv_async_scan(a, &so, record, &s_scan, NULL));
    AOK(a, statesrv_async_clear(a, &c1, record, &s_clear, NULL));
    /* Refused locally: the callback is never called. */
    ck_assert_int_eq(statesrv_async_get(a, NULL, record, &s_use, NULL), STATESRV_ERR_USAGE);
    ck_assert_int_eq(statesrv_async_get(a, &raw, NULL, NULL, NULL), STATESRV_ERR_USAGE);
    size_t huge = 17u << 20;
    char *hv = calloc(1, huge);
    ck_assert_ptr_nonnull(hv);
    ck_assert_int_eq(statesrv_async_put(a, &raw, STATESRV_KIND_RAW, hv, huge, record, &s_big, NULL),
                     STATESRV_TOO_LARGE);
    free(hv);
    drain(a);
    ck_assert_int_eq(s_bad.status, STATESRV_INVALID_ARGUMENT);
    ck_assert(s_bad.message[0] != '\0');
    ck_assert_int_eq(s_put.status, STATESRV_OK);
    ck_assert_int_eq(s_add.status, STATESRV_INVALID_ARGUMENT);
    ck_assert_int_eq(s_ok.status, STATESRV_OK);
    ck_assert_int_eq(s_ok.counter, 5);
    ck_assert_int_eq(s_missing.status, STATESRV_NOT_FOUND);
    ck_assert_int_eq(s_mg.status, STATESRV_OK);
    ck_assert_uint_eq(s_mg.n_items, 3);
    ck_assert_int_eq(s_mg.items_found[0], 1);
    ck_assert_int_eq(s_mg.items_found[1], 0);
    ck_assert_int_eq(s_mg.items_found[2], 1);
    ck_assert_int_eq(s_batch.status, STATESRV_INVALID_ARGUMENT);
    ck_assert_int_eq(s_scan.status, STATESRV_OK);
    ck_assert_uint_eq(s_scan.n_entries, 1);
    ck_assert_uint_gt(s_scan.cursor_len, 0);
    ck_assert_int_eq(s_clear.status, STATESRV_OK);
    ck_assert_uint_eq(s_clear.count, 1);
    ck_assert_int_eq(s_use.calls + s_big.calls, 0);
    statesrv_async_close(a);
}
END_TEST

/* The server is killed with thousands of requests in flight: each callback
 * runs exactly once, with a reply or with the connection error, and the
 * error is sticky afterwards. */
static int counts[5000];
static int statuses[5000];

static void count_cb(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    (void)a;
    int i = (int)(intptr_t)arg;
    counts[i]++;
    statuses[i] = r->status;
}

START_TEST(server_killed_mid_flight_every_callback_once)
{
    statesrv_async *a = open_async(srv.unix_addr, 5000, 0);
    memset(counts, 0, sizeof(counts));
    statesrv_key k = K("d", "k");
    for (int i = 0; i < 5000; i++) {
        AOK(a, statesrv_async_add(a, &k, 1, count_cb, (void *)(intptr_t)i, NULL));
        if (i == 2000) {
            AOK(a, statesrv_async_write(a));
            ck_assert_int_eq(statesrv_async_wait(a, 50), STATESRV_OK);
        }
    }
    ts_kill(&srv);
    drain(a);
    int ok = 0, failed = 0;
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(counts[i], 1);
        if (statuses[i] == STATESRV_OK)
            ok++;
        else {
            ck_assert_int_eq(statuses[i], STATESRV_ERR_IO);
            failed++;
        }
        /* Replies come in order: after the first failure, only failures. */
        if (failed)
            ck_assert_int_ne(statuses[i], STATESRV_OK);
    }
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(statesrv_async_fd(a), -1);
    ck_assert_int_eq(statesrv_async_events(a), 0);
    ck_assert_int_eq(statesrv_async_ping(a, count_cb, (void *)0, NULL), STATESRV_ERR_IO);
    ck_assert_int_eq(counts[0], 1);
    statesrv_async_close(a);
}
END_TEST

START_TEST(stopped_server_times_out_every_request)
{
    statesrv_options o = {.io_timeout_ms = 300};
    statesrv_async *a;
    char why[256];
    ck_assert_int_eq(statesrv_async_connect(srv.tcp_addr, &o, NULL, &a, why, sizeof(why)),
                     STATESRV_OK);
    struct seen s1 = {0}, s2 = {0};
    kill(srv.pid, SIGSTOP);
    long t0 = ts_now_ms();
    AOK(a, statesrv_async_ping(a, record, &s1, NULL));
    AOK(a, statesrv_async_ping(a, record, &s2, NULL));
    drain(a);
    long took = ts_now_ms() - t0;
    kill(srv.pid, SIGCONT);
    ck_assert_int_eq(s1.calls, 1);
    ck_assert_int_eq(s1.status, STATESRV_ERR_TIMEOUT);
    ck_assert_int_eq(s2.status, STATESRV_ERR_TIMEOUT);
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, 5000);
    statesrv_async_close(a);
}
END_TEST

START_TEST(auth_token_as_the_blocking_client)
{
    ts_cleanup(&srv);
    char token_path[128];
    ts_write_token(token_path, sizeof(token_path), "async secret");
    ts_start_with_configf(&srv, "auth_token_file = %s\n", token_path);
    statesrv_async *a = NULL;
    char why[256];
    ck_assert_int_eq(statesrv_async_connect(srv.unix_addr, NULL, NULL, &a, why, sizeof(why)),
                     STATESRV_UNAUTHENTICATED);
    ck_assert_ptr_null(a);
    statesrv_options o = {.auth_token = "wrong"};
    ck_assert_int_eq(statesrv_async_connect(srv.unix_addr, &o, NULL, &a, why, sizeof(why)),
                     STATESRV_UNAUTHENTICATED);
    o.auth_token = "async secret";
    ck_assert_int_eq(statesrv_async_connect(srv.tcp_addr, &o, NULL, &a, why, sizeof(why)),
                     STATESRV_OK);
    struct seen s = {0};
    AOK(a, statesrv_async_ping(a, record, &s, NULL));
    drain(a);
    ck_assert_int_eq(s.status, STATESRV_OK);
    statesrv_async_close(a);
    unlink(token_path);
}
END_TEST

/* Close with requests pending: CANCELLED, once each; close from inside a
 * callback frees the handle once it returns. */
static void close_from_cb(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    record(a, r, arg);
    if (r->status == STATESRV_OK)
        statesrv_async_close(a);
}

START_TEST(close_cancels_pending_once)
{
    statesrv_async *a = open_async(srv.tcp_addr, 0, 0);
    struct seen s[100];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 100; i++)
        AOK(a, statesrv_async_ping(a, record, &s[i], NULL));
    statesrv_async_close(a);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(s[i].calls, 1);
        ck_assert_int_eq(s[i].status, STATESRV_ERR_CANCELLED);
    }

    a = open_async(srv.tcp_addr, 0, 0);
    memset(s, 0, sizeof(s));
    AOK(a, statesrv_async_ping(a, close_from_cb, &s[0], NULL));
    for (int i = 1; i < 10; i++)
        AOK(a, statesrv_async_ping(a, record, &s[i], NULL));
    int rc = STATESRV_OK;
    long deadline = ts_now_ms() + 5000;
    while (rc == STATESRV_OK && ts_now_ms() < deadline)
        rc = statesrv_async_wait(a, 100);
    ck_assert_int_eq(rc, STATESRV_ERR_CANCELLED); /* a is gone now */
    ck_assert_int_eq(s[0].calls, 1);
    ck_assert_int_eq(s[0].status, STATESRV_OK);
    for (int i = 1; i < 10; i++) {
        ck_assert_int_eq(s[i].calls, 1);
        ck_assert_int_eq(s[i].status, STATESRV_ERR_CANCELLED);
    }
}
END_TEST

/* The libuv adapter: a chain of requests issued from callbacks (get, then
 * add, then get ...) runs to the end inside uv_run. */
struct uv_chain {
    uv_loop_t *loop;
    statesrv_key k;
    int step;
    int64_t last;
    int failed;
};

static void chain_cb(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    struct uv_chain *ch = arg;
    if (r->status != STATESRV_OK) {
        ch->failed++;
        uv_stop(ch->loop);
        return;
    }
    ch->last = r->counter;
    if (++ch->step == 1000) {
        uv_stop(ch->loop);
        return;
    }
    /* Two per step, issued in one turn. */
    if (statesrv_async_add(a, &ch->k, 1, NULL, NULL, NULL) != STATESRV_ERR_USAGE ||
        statesrv_async_add(a, &ch->k, 1, chain_cb, ch, NULL) != STATESRV_OK)
        ch->failed++;
}

START_TEST(libuv_adapter_runs_a_chain)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    statesrv_async *a = open_async(srv.unix_addr, 0, 0);
    ck_assert_int_eq(statesrv_uv_attach(&loop, a), 0);
    struct uv_chain ch = {.loop = &loop, .k = K("uv", "n")};
    AOK(a, statesrv_async_add(a, &ch.k, 1, chain_cb, &ch, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(ch.failed, 0);
    ck_assert_int_eq(ch.step, 1000);
    ck_assert_int_eq(ch.last, 1000);
    /* Closing detaches; the adapter's handles close in the loop. */
    statesrv_async_close(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);

    /* A server that dies: the adapter lets go by itself, the loop ends. */
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    a = open_async(srv.unix_addr, 0, 0);
    ck_assert_int_eq(statesrv_uv_attach(&loop, a), 0);
    struct seen s = {0};
    ts_kill(&srv);
    AOK(a, statesrv_async_ping(a, record, &s, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.status, STATESRV_ERR_IO);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    statesrv_async_close(a);
}
END_TEST

Suite *sv_suite_async(void)
{
    Suite *s = suite_create("async");
    TCase *tc = tcase_create("async");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, put_then_get_in_one_turn_sees_the_put);
    tcase_add_test(tc, random_ops_in_flight_match_a_model);
    tcase_add_test(tc, bounds_refuse_and_recover);
    tcase_add_test(tc, errors_are_per_request);
    tcase_add_test(tc, server_killed_mid_flight_every_callback_once);
    tcase_add_test(tc, stopped_server_times_out_every_request);
    tcase_add_test(tc, auth_token_as_the_blocking_client);
    tcase_add_test(tc, close_cancels_pending_once);
    tcase_add_test(tc, libuv_adapter_runs_a_chain);
    suite_add_tcase(s, tc);
    return s;
}
