/* libstatesrv against a real statesrvd: every op, Flink-style state shapes,
 * pipelining, error reporting. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ts srv;
static statesrv *c;

static void setup(void)
{
    ts_start(&srv, NULL);
    char err[256] = "";
    int rc = statesrv_connect2(srv.tcp_addr, NULL, &c, err, sizeof(err));
    ck_assert_msg(rc == STATESRV_OK, "connect %s: %s", srv.tcp_addr, err);
}

static void teardown(void)
{
    statesrv_close(c);
    c = NULL;
    ts_cleanup(&srv);
}

static statesrv_key K(const char *state, const char *key, const char *ns)
{
    statesrv_key k = {.state = state, .key = key, .key_len = strlen(key)};
    if (ns) {
        k.ns = ns;
        k.ns_len = strlen(ns);
    }
    return k;
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == STATESRV_OK, "%s -> %s: %s", #call, statesrv_strerror(rc_),           \
                      statesrv_errmsg(c));                                                         \
    } while (0)

/* The number in a value "key<N>" (values are not NUL-terminated). */
static int value_index(const statesrv_entry *e)
{
    char buf[16];
    ck_assert_uint_lt(e->value_len, sizeof(buf));
    memcpy(buf, e->value, e->value_len);
    buf[e->value_len] = '\0';
    return atoi(buf + 3);
}

static void assert_value(const statesrv_key *k, const char *want)
{
    statesrv_value v;
    OK(statesrv_get(c, k, &v));
    ck_assert_uint_eq(v.len, strlen(want));
    ck_assert(memcmp(v.data, want, v.len) == 0);
    statesrv_value_free(&v);
}

START_TEST(hello_info_tcp_and_unix)
{
    const statesrv_server_info *info = statesrv_info(c);
    ck_assert_uint_eq(info->protocol_version, 1);
    ck_assert_uint_eq(info->key_groups, 128);
    ck_assert_uint_eq(info->max_frame_size, 16u << 20);
    ck_assert_uint_ge(info->max_key_size, 500);
    ck_assert_str_eq(info->server_version, "0.1.0");
    OK(statesrv_ping(c));
    statesrv *u;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(srv.unix_addr, NULL, &u, err, sizeof(err)), STATESRV_OK);
    ck_assert_int_eq(statesrv_ping(u), STATESRV_OK);
    statesrv_close(u);
}
END_TEST

/* Token files: the first line, CR or LF ending it; empty or too long is
 * refused and leaves nothing behind. */
START_TEST(token_file_reading)
{
    char path[128], tok[8];
    snprintf(path, sizeof(path), "%s/tok", srv.dir);
    const struct {
        const char *content;
        int rc;
        const char *token;
    } cases[] = {
        {"secret\nsecond line\n", STATESRV_OK, "secret"},
        {"abc\r\n", STATESRV_OK, "abc"},
        {"1234567", STATESRV_OK, "1234567"},
        {"12345678\n", STATESRV_ERR_USAGE, ""}, /* 8 bytes do not fit in 8 */
        {"\nsecret\n", STATESRV_ERR_USAGE, ""},
        {"", STATESRV_ERR_USAGE, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(cases[i].content, f);
        fclose(f);
        memset(tok, 'x', sizeof(tok));
        ck_assert_int_eq(statesrv_read_token_file(path, tok, sizeof(tok)), cases[i].rc);
        ck_assert_str_eq(tok, cases[i].token);
    }
    memset(tok, 'x', sizeof(tok));
    ck_assert_int_eq(statesrv_read_token_file("/nonexistent/tok", tok, sizeof(tok)),
                     STATESRV_ERR_USAGE);
    ck_assert_str_eq(tok, "");
}
END_TEST

START_TEST(value_state)
{
    statesrv_key k = K("vs", "alice", NULL), w1 = K("vs", "alice", "w1");
    OK(statesrv_put(c, &k, "v0", 2));
    OK(statesrv_put(c, &w1, "v1", 2));
    assert_value(&k, "v0");
    assert_value(&w1, "v1");
    OK(statesrv_put(c, &k, "replaced", 8));
    assert_value(&k, "replaced");
    int found = -1;
    OK(statesrv_delete(c, &k, &found));
    ck_assert_int_eq(found, 1);
    OK(statesrv_delete(c, &k, &found));
    ck_assert_int_eq(found, 0);
    statesrv_value v;
    ck_assert_int_eq(statesrv_get(c, &k, &v), STATESRV_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(statesrv_errmsg(c), "no entry"));
    assert_value(&w1, "v1"); /* other namespace untouched */

    /* An explicit key group is a different address than the hashed one. */
    statesrv_key e = K("vs", "bob", NULL);
    uint32_t hashed = statesrv_key_group("bob", 3, 128);
    e.has_key_group = 1;
    e.key_group = (hashed + 1) % 128;
    OK(statesrv_put(c, &e, "explicit", 8));
    assert_value(&e, "explicit");
    statesrv_key h = K("vs", "bob", NULL);
    ck_assert_int_eq(statesrv_get(c, &h, &v), STATESRV_NOT_FOUND);
}
END_TEST

START_TEST(binary_keys_values)
{
    const char key[] = {'\0', '\xff', 'k'}, ns[] = {'\0', '\0'}, val[] = {'\0', '\x01', '\0'};
    statesrv_key k = {.state = "bin", .key = key, .key_len = 3, .ns = ns, .ns_len = 2};
    OK(statesrv_put(c, &k, val, 3));
    statesrv_value v;
    OK(statesrv_get(c, &k, &v));
    ck_assert_uint_eq(v.len, 3);
    ck_assert(memcmp(v.data, val, 3) == 0);
    ck_assert_int_eq(v.kind, STATESRV_KIND_RAW);
    statesrv_value_free(&v);
}
END_TEST

START_TEST(list_state_append)
{
    statesrv_key k = K("ls", "user1", "window-7");
    const char *elems[] = {"click", "", "a much longer element that still fits"};
    for (int i = 0; i < 3; i++)
        OK(statesrv_append(c, &k, elems[i], strlen(elems[i])));
    statesrv_value v;
    OK(statesrv_get(c, &k, &v));
    ck_assert_int_eq(v.kind, STATESRV_KIND_LIST);
    size_t off = 0, n;
    const void *e;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(statesrv_list_next(v.data, v.len, &off, &e, &n), 1);
        ck_assert_uint_eq(n, strlen(elems[i]));
        ck_assert(memcmp(e, elems[i], n) == 0);
    }
    ck_assert_int_eq(statesrv_list_next(v.data, v.len, &off, &e, &n), 0);
    statesrv_value_free(&v);
    /* A list written whole (ListState.update) must be well-framed. */
    OK(statesrv_put_kind(c, &k, STATESRV_KIND_LIST, "\x01x\x02yz", 5));
    ck_assert_int_eq(statesrv_put_kind(c, &k, STATESRV_KIND_LIST, "\x09x", 2),
                     STATESRV_INVALID_ARGUMENT);
}
END_TEST

START_TEST(counters)
{
    statesrv_key k = K("cnt", "page", NULL);
    int64_t r = 0;
    OK(statesrv_add(c, &k, 5, &r));
    ck_assert_int_eq(r, 5);
    OK(statesrv_add(c, &k, -7, &r));
    ck_assert_int_eq(r, -2);
    statesrv_value v;
    OK(statesrv_get(c, &k, &v));
    ck_assert_int_eq(v.kind, STATESRV_KIND_COUNTER);
    int64_t d;
    OK(statesrv_counter_decode(v.data, v.len, &d));
    ck_assert_int_eq(d, -2);
    statesrv_value_free(&v);
    ck_assert_int_eq(statesrv_add(c, &k, INT64_MIN, &r), STATESRV_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(statesrv_errmsg(c), "overflow"));
    /* Mismatch: appending to a counter, adding to a raw value. */
    ck_assert_int_eq(statesrv_append(c, &k, "x", 1), STATESRV_INVALID_ARGUMENT);
    statesrv_key raw = K("cnt", "raw", NULL);
    OK(statesrv_put(c, &raw, "12345678", 8));
    ck_assert_int_eq(statesrv_add(c, &raw, 1, &r), STATESRV_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(statesrv_errmsg(c), "raw"));
}
END_TEST

START_TEST(map_state_scan_and_clear)
{
    char ns[16], val[16];
    for (int i = 0; i < 50; i++) {
        snprintf(ns, sizeof(ns), "uk%03d", i);
        snprintf(val, sizeof(val), "v%d", i);
        statesrv_key k = K("map", "user", ns);
        OK(statesrv_put(c, &k, val, strlen(val)));
    }
    statesrv_key other = K("map", "user2", "uk000");
    OK(statesrv_put(c, &other, "x", 1));

    statesrv_scan_options so = {
        .state = "map", .mode = STATESRV_SCAN_KEY, .key = "user", .key_len = 4, .page_size = 7};
    statesrv_scan *s;
    OK(statesrv_scan_open(c, &so, &s));
    const statesrv_entry *e;
    int n = 0;
    for (;;) {
        ck_assert_int_eq(statesrv_scan_next(s, &e), STATESRV_OK);
        if (!e)
            break;
        snprintf(ns, sizeof(ns), "uk%03d", n);
        ck_assert_uint_eq(e->key_len, 4);
        ck_assert_uint_eq(e->ns_len, strlen(ns));
        ck_assert(memcmp(e->ns, ns, e->ns_len) == 0);
        ck_assert_uint_eq(e->key_group, statesrv_key_group("user", 4, 128));
        n++;
    }
    ck_assert_int_eq(n, 50);
    statesrv_scan_close(s);

    statesrv_key user = K("map", "user", NULL);
    uint64_t deleted = 0;
    OK(statesrv_clear(c, &user, &deleted));
    ck_assert_uint_eq(deleted, 50);
    assert_value(&other, "x");
    statesrv_key gone = K("map", "user", "uk010");
    statesrv_value v;
    ck_assert_int_eq(statesrv_get(c, &gone, &v), STATESRV_NOT_FOUND);
}
END_TEST

START_TEST(scan_key_groups_and_cursor_resume)
{
    enum { N = 2500 };
    char key[16];
    statesrv_batch *b = statesrv_batch_new();
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        statesrv_key k = K("kg", key, NULL);
        OK(statesrv_batch_put(b, &k, key, strlen(key)));
        if (statesrv_batch_count(b) == 1000) {
            OK(statesrv_batch_commit(c, b));
            statesrv_batch_reset(b);
        }
    }
    OK(statesrv_batch_commit(c, b));
    statesrv_batch_free(b);

    /* Key groups 10..19 hold exactly the keys that hash there. */
    int expect = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        uint32_t kg = statesrv_key_group(key, strlen(key), 128);
        expect += kg >= 10 && kg <= 19;
    }
    statesrv_scan_options so = {.state = "kg",
                                .mode = STATESRV_SCAN_KEY_GROUPS,
                                .kg_first = 10,
                                .kg_last = 19,
                                .page_size = 33};
    statesrv_scan *s;
    OK(statesrv_scan_open(c, &so, &s));
    const statesrv_entry *e;
    int n = 0;
    uint32_t last_kg = 0;
    while (statesrv_scan_next(s, &e) == STATESRV_OK && e) {
        ck_assert_uint_ge(e->key_group, 10);
        ck_assert_uint_le(e->key_group, 19);
        ck_assert_uint_ge(e->key_group, last_kg);
        ck_assert_uint_eq(e->key_group, statesrv_key_group(e->key, e->key_len, 128));
        last_kg = e->key_group;
        n++;
    }
    statesrv_scan_close(s);
    ck_assert_int_eq(n, expect);

    /* Whole state in pages, stopping at a page boundary and resuming with
     * the cursor on a new scan: every entry exactly once. */
    static char seen[N];
    memset(seen, 0, sizeof(seen));
    statesrv_scan_options all = {.state = "kg", .mode = STATESRV_SCAN_STATE, .page_size = 100};
    OK(statesrv_scan_open(c, &all, &s));
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(statesrv_scan_next(s, &e), STATESRV_OK);
        ck_assert_ptr_nonnull(e);
        int idx = value_index(e);
        ck_assert_int_eq(seen[idx]++, 0);
    }
    const void *cur;
    size_t curlen;
    statesrv_scan_cursor(s, &cur, &curlen);
    ck_assert_uint_gt(curlen, 0);
    void *saved = malloc(curlen);
    memcpy(saved, cur, curlen);
    statesrv_scan_close(s);
    all.cursor = saved;
    all.cursor_len = curlen;
    OK(statesrv_scan_open(c, &all, &s));
    int rest = 0;
    while (statesrv_scan_next(s, &e) == STATESRV_OK && e) {
        int idx = value_index(e);
        ck_assert_int_eq(seen[idx]++, 0);
        rest++;
    }
    statesrv_scan_close(s);
    free(saved);
    ck_assert_int_eq(100 + rest, N);
}
END_TEST

START_TEST(multi_get_mixed)
{
    statesrv_key a = K("mg", "a", NULL), b = K("mg", "b", NULL), z = K("other", "z", NULL);
    OK(statesrv_put(c, &a, "A", 1));
    OK(statesrv_append(c, &z, "e", 1));
    statesrv_key keys[3] = {a, b, z};
    statesrv_value out[3];
    OK(statesrv_multi_get(c, keys, 3, out));
    ck_assert_int_eq(out[0].found, 1);
    ck_assert_uint_eq(out[0].len, 1);
    ck_assert_int_eq(out[1].found, 0);
    ck_assert_int_eq(out[2].found, 1);
    ck_assert_int_eq(out[2].kind, STATESRV_KIND_LIST);
    statesrv_values_free(out, 3);
}
END_TEST

START_TEST(batch_is_atomic)
{
    statesrv_batch *b = statesrv_batch_new();
    statesrv_key a = K("bt", "a", NULL), cnt = K("bt", "n", NULL), l = K("bt", "l", NULL);
    OK(statesrv_batch_put(b, &a, "1", 1));
    OK(statesrv_batch_add(b, &cnt, 10));
    OK(statesrv_batch_append(b, &l, "x", 1));
    OK(statesrv_batch_commit(c, b));
    assert_value(&a, "1");

    statesrv_batch_reset(b);
    statesrv_key bad = K("bad name", "k", NULL);
    OK(statesrv_batch_put(b, &a, "2", 1));
    OK(statesrv_batch_add(b, &cnt, 5));
    OK(statesrv_batch_delete(b, &l));
    OK(statesrv_batch_put(b, &bad, "v", 1));
    ck_assert_int_eq(statesrv_batch_commit(c, b), STATESRV_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(statesrv_errmsg(c), "ops[3]"));
    statesrv_batch_free(b);
    assert_value(&a, "1"); /* nothing of the failed batch applied */
    int64_t r;
    OK(statesrv_add(c, &cnt, 0, &r));
    ck_assert_int_eq(r, 10);
    statesrv_value v;
    OK(statesrv_get(c, &l, &v));
    statesrv_value_free(&v);
}
END_TEST

START_TEST(states_stats_drop)
{
    statesrv_key a = K("s1", "k", NULL), b = K("s2", "k", NULL);
    OK(statesrv_put(c, &a, "v", 1));
    OK(statesrv_put(c, &b, "v", 1));
    OK(statesrv_put(c, &(statesrv_key){.state = "s2", .key = "k2", .key_len = 2}, "v", 1));
    statesrv_state_info *st;
    size_t n;
    OK(statesrv_list_states(c, &st, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(st[0].name, "s1");
    ck_assert_uint_eq(st[1].entries, 2);
    statesrv_free(st);

    statesrv_stats *sx;
    OK(statesrv_stats_get(c, &sx));
    ck_assert_uint_ge(sx->connections_current, 1);
    ck_assert_uint_gt(sx->map_size, 0);
    ck_assert_uint_gt(sx->map_used, 0);
    ck_assert_uint_eq(sx->key_groups, 128);
    ck_assert_uint_eq(sx->n_states, 2);
    int puts = -1;
    for (size_t i = 0; i < sx->n_ops; i++)
        if (strcmp(sx->ops[i].op, "put") == 0)
            puts = (int)sx->ops[i].count;
    ck_assert_int_eq(puts, 3);
    statesrv_stats_free(sx);

    uint64_t deleted;
    OK(statesrv_drop_state(c, "s2", &deleted));
    ck_assert_uint_eq(deleted, 2);
    OK(statesrv_list_states(c, &st, &n));
    ck_assert_uint_eq(n, 1);
    statesrv_free(st);
}
END_TEST

START_TEST(pipeline_10000)
{
    enum { N = 10000 };
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        statesrv_key k = K("pipe", key, NULL);
        uint64_t id;
        if (i % 3 == 2)
            OK(statesrv_send_add(c, &(statesrv_key){.state = "pipe", .key = "n", .key_len = 1}, 1,
                                 &id));
        else
            OK(statesrv_send_put(c, &k, key, strlen(key), &id));
        ck_assert_uint_eq(id, (uint64_t)i + 2); /* id 1 was the handshake */
    }
    ck_assert_uint_eq(statesrv_pending(c), N);
    /* While replies are pending a blocking call is refused. */
    ck_assert_int_eq(statesrv_ping(c), STATESRV_ERR_USAGE);
    int64_t last = 0;
    for (int i = 0; i < N; i++) {
        statesrv_reply r;
        OK(statesrv_recv(c, &r));
        ck_assert_uint_eq(r.id, (uint64_t)i + 2);
        ck_assert_int_eq(r.status, STATESRV_OK);
        if (i % 3 == 2) {
            ck_assert_int_eq(r.counter, last + 1);
            last = r.counter;
        }
    }
    ck_assert_uint_eq(statesrv_pending(c), 0);
    statesrv_reply r;
    ck_assert_int_eq(statesrv_recv(c, &r), STATESRV_ERR_USAGE);
    OK(statesrv_ping(c));
}
END_TEST

START_TEST(large_value_round_trip)
{
    size_t n = 4u << 20;       /* exactly max_value_size */
    char *big = malloc(n + 1); /* one more for the over-limit put */
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i <= n; i++)
        big[i] = (char)(i * 7);
    statesrv_key k = K("big", "k", NULL);
    OK(statesrv_put(c, &k, big, n));
    statesrv_value v;
    OK(statesrv_get(c, &k, &v));
    ck_assert_uint_eq(v.len, n);
    ck_assert(memcmp(v.data, big, n) == 0);
    statesrv_value_free(&v);
    ck_assert_int_eq(statesrv_put(c, &k, big, n + 1), STATESRV_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(statesrv_errmsg(c), "max_value_size"));
    free(big);
    OK(statesrv_ping(c));
}
END_TEST

START_TEST(connection_errors)
{
    statesrv *x = NULL;
    char err[256] = "";
    /* Nothing listens on port 1 of loopback. */
    ck_assert_int_eq(statesrv_connect2("127.0.0.1:1", NULL, &x, err, sizeof(err)),
                     STATESRV_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_int_eq(statesrv_connect2("no-port-here", NULL, &x, err, sizeof(err)),
                     STATESRV_ERR_USAGE);
    /* The server goes away under an open handle. */
    ts_kill(&srv);
    int rc = statesrv_ping(c);
    ck_assert_msg(rc == STATESRV_ERR_IO, "ping after kill: %s", statesrv_strerror(rc));
    ck_assert_int_eq(statesrv_ping(c), STATESRV_ERR_IO); /* sticky */
}
END_TEST

Suite *sv_suite_api(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, hello_info_tcp_and_unix);
    tcase_add_test(tc, token_file_reading);
    tcase_add_test(tc, value_state);
    tcase_add_test(tc, binary_keys_values);
    tcase_add_test(tc, list_state_append);
    tcase_add_test(tc, counters);
    tcase_add_test(tc, map_state_scan_and_clear);
    tcase_add_test(tc, scan_key_groups_and_cursor_resume);
    tcase_add_test(tc, multi_get_mixed);
    tcase_add_test(tc, batch_is_atomic);
    tcase_add_test(tc, states_stats_drop);
    tcase_add_test(tc, pipeline_10000);
    tcase_add_test(tc, large_value_round_trip);
    tcase_add_test(tc, connection_errors);
    suite_add_tcase(s, tc);
    return s;
}
