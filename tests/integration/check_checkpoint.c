/* Checkpoints against real statesrvd processes and real files: snapshot,
 * restore, rescaling, corruption, crashes, confinement, retention. Driven
 * over the raw protocol so each step is explicit. */
#include "craft_ckpt.h"
#include "harness.h"
#include "suites.h"
#include "sv_frame.h"
#include "sv_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct ts srv;
static uint64_t next_id = 1;

static void teardown(void)
{
    ts_cleanup(&srv);
}

static ProtobufCBinaryData bin(const char *s, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)s};
    return b;
}

/* Sends a request and returns its reply (caller frees). */
static Statesrv__V1__Response *call(int fd, Statesrv__V1__Request *req, int timeout_ms)
{
    req->id = next_id++;
    raw_send_msg(fd, &req->base);
    Statesrv__V1__Response *r = raw_recv(fd, timeout_ms);
    ck_assert_msg(r != NULL, "connection closed");
    ck_assert_uint_eq(r->id, req->id);
    return r;
}

static void put_kv(int fd, const char *state, const char *key, const char *val, int has_kg,
                   uint32_t kg)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
    put.state = pb_str(state);
    put.key = bin(key, strlen(key));
    put.value = bin(val, strlen(val));
    if (has_kg) {
        put.key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
        put.key_group = kg;
    }
    req.op_case = STATESRV__V1__REQUEST__OP_PUT;
    req.put = &put;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    ck_assert_msg(r->status == 0, "put %s/%s: %s", state, key, r->message);
    statesrv__v1__response__free_unpacked(r, NULL);
}

/* Puts n entries "k<i>" = "v<i>-<tag>" in a few pipelined bursts. */
static void load(int fd, const char *state, int from, int n, const char *tag, size_t pad)
{
    enum { BURST = 2000 };
    char key[32], val[512];
    for (int b = from; b < from + n; b += BURST) {
        int m = b + BURST > from + n ? from + n - b : BURST;
        uint8_t *buf = malloc((size_t)m * (pad + 128));
        size_t len = 0;
        for (int i = b; i < b + m; i++) {
            Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
            Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
            snprintf(key, sizeof(key), "k%d", i);
            int vl = snprintf(val, sizeof(val), "v%d-%s-", i, tag);
            for (size_t p = (size_t)vl; p < pad && p + 1 < sizeof(val); p++)
                val[p] = (char)('a' + (i * 7 + (int)p) % 26);
            size_t vlen = pad > (size_t)vl ? pad : (size_t)vl;
            put.state = pb_str(state);
            put.key = bin(key, strlen(key));
            put.value = bin(val, vlen);
            req.id = next_id++;
            req.op_case = STATESRV__V1__REQUEST__OP_PUT;
            req.put = &put;
            size_t k = protobuf_c_message_pack(&req.base, buf + len + 4);
            sv_frame_header_put(buf + len, (uint32_t)k);
            len += k + 4;
        }
        raw_send(fd, buf, len);
        free(buf);
        for (int i = 0; i < m; i++) {
            Statesrv__V1__Response *r = raw_recv(fd, 20000);
            ck_assert_ptr_nonnull(r);
            ck_assert_int_eq(r->status, 0);
            statesrv__v1__response__free_unpacked(r, NULL);
        }
    }
}

static void del_kv(int fd, const char *state, const char *key)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Delete del = STATESRV__V1__DELETE__INIT;
    del.state = pb_str(state);
    del.key = bin(key, strlen(key));
    req.op_case = STATESRV__V1__REQUEST__OP_DELETE;
    req.delete_ = &del;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    ck_assert_msg(r->status == 0, "delete %s/%s: %s", state, key, r->message);
    statesrv__v1__response__free_unpacked(r, NULL);
}

/* The value of state/key, or NULL (caller frees). */
static char *get_val(int fd, const char *state, const char *key)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
    get.state = pb_str(state);
    get.key = bin(key, strlen(key));
    req.op_case = STATESRV__V1__REQUEST__OP_GET;
    req.get = &get;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    char *v = NULL;
    if (r->status == 0) {
        v = malloc(r->get->value.len + 1);
        memcpy(v, r->get->value.data, r->get->value.len);
        v[r->get->value.len] = '\0';
    } else {
        ck_assert_int_eq(r->status, STATESRV__V1__STATUS__NOT_FOUND);
    }
    statesrv__v1__response__free_unpacked(r, NULL);
    return v;
}

/* Entry count of a state by a full scan (with cursors). Every key seen is
 * recorded in seen[] when given ("k<i>" keys). */
static long count_entries(int fd, const char *state, unsigned char *seen, int nseen)
{
    long n = 0;
    uint8_t cursor[1024];
    size_t clen = 0;
    for (;;) {
        Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
        Statesrv__V1__Scan scan = STATESRV__V1__SCAN__INIT;
        scan.state = pb_str(state);
        scan.limit = 5000;
        scan.cursor = bin((const char *)cursor, clen);
        req.op_case = STATESRV__V1__REQUEST__OP_SCAN;
        req.scan = &scan;
        Statesrv__V1__Response *r = call(fd, &req, 10000);
        ck_assert_msg(r->status == 0, "scan: %s", r->message);
        for (size_t i = 0; i < r->scan->n_entries; i++) {
            const Statesrv__V1__Entry *e = r->scan->entries[i];
            if (seen) {
                char k[32];
                size_t kl = e->key.len < sizeof(k) - 1 ? e->key.len : sizeof(k) - 1;
                memcpy(k, e->key.data, kl);
                k[kl] = '\0';
                int idx = atoi(k + 1);
                ck_assert_int_lt(idx, nseen);
                ck_assert_msg(seen[idx] == 0, "key %s seen twice", k);
                seen[idx] = 1;
            }
            n++;
        }
        clen = r->scan->cursor.len;
        ck_assert_uint_le(clen, sizeof(cursor));
        if (clen)
            memcpy(cursor, r->scan->cursor.data, clen);
        statesrv__v1__response__free_unpacked(r, NULL);
        if (clen == 0)
            return n;
    }
}

/* snapshot [id]: returns the reply (caller frees). */
static Statesrv__V1__Response *snapshot(int fd, uint64_t id)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Snapshot s = STATESRV__V1__SNAPSHOT__INIT;
    if (id) {
        s.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
        s.id = id;
    }
    req.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    req.snapshot = &s;
    return call(fd, &req, 60000);
}

static void snapshot_ok(int fd, uint64_t id)
{
    Statesrv__V1__Response *r = snapshot(fd, id);
    ck_assert_msg(r->status == 0, "snapshot %llu: %s", (unsigned long long)id, r->message);
    ck_assert_int_eq(r->result_case, STATESRV__V1__RESPONSE__RESULT_SNAPSHOT);
    ck_assert_uint_eq(r->snapshot->manifest->checkpoint_id, id);
    statesrv__v1__response__free_unpacked(r, NULL);
}

static Statesrv__V1__Response *restore(int fd, const char *const *sources, size_t n, int ranged,
                                       uint32_t first, uint32_t last)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Restore rs = STATESRV__V1__RESTORE__INIT;
    Statesrv__V1__KeyGroupRange kgr = STATESRV__V1__KEY_GROUP_RANGE__INIT;
    ProtobufCBinaryData srcs[8];
    ck_assert_uint_le(n, 8);
    for (size_t i = 0; i < n; i++)
        srcs[i] = pb_str(sources[i]);
    rs.sources = srcs;
    rs.n_sources = n;
    if (ranged) {
        kgr.first = first;
        kgr.last = last;
        rs.range_opt_case = STATESRV__V1__RESTORE__RANGE_OPT_KEY_GROUPS;
        rs.key_groups = &kgr;
    }
    req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
    req.restore = &rs;
    return call(fd, &req, 60000);
}

static void restore_ok(int fd, const char *const *sources, size_t n, int ranged, uint32_t first,
                       uint32_t last)
{
    Statesrv__V1__Response *r = restore(fd, sources, n, ranged, first, last);
    ck_assert_msg(r->status == 0, "restore: %s", r->message);
    ck_assert_int_eq(r->result_case, STATESRV__V1__RESPONSE__RESULT_RESTORE);
    statesrv__v1__response__free_unpacked(r, NULL);
}

static void expect_status(Statesrv__V1__Response *r, Statesrv__V1__Status st, const char *text)
{
    ck_assert_msg(r->status == st, "status %d (%s), want %d", r->status, r->message, st);
    ck_assert_msg(strstr(r->message, text) != NULL, "message '%s' lacks '%s'", r->message, text);
    statesrv__v1__response__free_unpacked(r, NULL);
}

static int path_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int path_exists(const char *fmt, ...)
{
    char p[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Names in dir starting with prefix. */
static int count_dir(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void flip_byte(const char *path, long offset)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    off_t at = offset >= 0 ? offset : size + offset;
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

/* Sends a snapshot request without waiting for the reply; returns its id. */
static uint64_t send_snapshot(int fd)
{
    Statesrv__V1__Request sreq = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Snapshot s = STATESRV__V1__SNAPSHOT__INIT;
    sreq.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    sreq.snapshot = &s;
    sreq.id = next_id++;
    raw_send_msg(fd, &sreq.base);
    return sreq.id;
}

/* --- tests ---------------------------------------------------------------- */

START_TEST(round_trip_restores_exactly_the_snapshot)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    load(fd, "a", 0, 3000, "one", 0);
    put_kv(fd, "b", "x", "bx", 0, 0);
    snapshot_ok(fd, 7);
    ck_assert(path_exists("%s/checkpoints/chk-7/MANIFEST", srv.dir));
    ck_assert(path_exists("%s/checkpoints/chk-7/data", srv.dir));

    /* Change everything: overwrite, add, delete, a new state. */
    load(fd, "a", 0, 100, "two", 0);
    load(fd, "a", 3000, 500, "two", 0);
    put_kv(fd, "c", "new", "c", 0, 0);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Clear clear = STATESRV__V1__CLEAR__INIT;
    clear.state = pb_str("b");
    clear.target_case = STATESRV__V1__CLEAR__TARGET_WHOLE_STATE;
    clear.whole_state = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_CLEAR;
    req.clear = &clear;
    statesrv__v1__response__free_unpacked(call(fd, &req, 5000), NULL);

    const char *src[] = {"7"};
    restore_ok(fd, src, 1, 0, 0, 0);
    ck_assert_int_eq(count_entries(fd, "a", NULL, 0), 3000);
    char *v = get_val(fd, "a", "k5");
    ck_assert_str_eq(v, "v5-one-");
    free(v);
    ck_assert_ptr_null(get_val(fd, "a", "k3100"));
    ck_assert_ptr_null(get_val(fd, "c", "new"));
    v = get_val(fd, "b", "x");
    ck_assert_str_eq(v, "bx");
    free(v);
    /* And it survives a restart. */
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0);
    ts_restart(&srv, NULL);
    fd = raw_connect_tcp(&srv);
    ck_assert_int_eq(count_entries(fd, "a", NULL, 0), 3000);
    ck_assert_int_eq(count_dir(srv.dir, "data") + 0, 1);
    char data[256];
    snprintf(data, sizeof(data), "%s/data", srv.dir);
    ck_assert_int_eq(count_dir(data, "gen-"), 1); /* the old generation is gone */
    close(fd);
}
END_TEST

/* The i-th change to "big" during the snapshot: an overwrite, a delete or a
 * new key, spread over the key space (7919 is prime to 150000). */
static void change_big(int fd, int i)
{
    char key[32], val[32];
    snprintf(key, sizeof(key), "k%d", (int)((long)i * 7919 % 150000));
    snprintf(val, sizeof(val), "new%d", i);
    if (i % 3 == 0) {
        put_kv(fd, "big", key, val, 0, 0);
    } else if (i % 3 == 1) {
        del_kv(fd, "big", key);
    } else {
        snprintf(key, sizeof(key), "n%d", i);
        put_kv(fd, "big", key, val, 0, 0);
    }
}

/* Whether change i shows in the restored "big". */
static int big_change_in(int fd, int i)
{
    char key[32], val[32];
    snprintf(key, sizeof(key), "k%d", (int)((long)i * 7919 % 150000));
    snprintf(val, sizeof(val), "new%d", i);
    if (i % 3 == 2)
        snprintf(key, sizeof(key), "n%d", i);
    char *v = get_val(fd, "big", key);
    int in = i % 3 == 1 ? v == NULL : v && strcmp(v, val) == 0;
    if (!in && i % 3 == 0)
        ck_assert_msg(v && strncmp(v, "v", 1) == 0, "big/%s has %s", key, v ? v : "nothing");
    free(v);
    return in;
}

START_TEST(snapshot_is_consistent_under_concurrent_writes)
{
    ts_start(&srv, NULL);
    int a = raw_connect_tcp(&srv), b = raw_connect_tcp(&srv);
    load(a, "big", 0, 150000, "base", 100); /* long enough to overlap with writes */

    /* b writes w<i> one at a time while a snapshots; record how many were
     * acknowledged before the request and after the reply. */
    Statesrv__V1__Request sreq = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Snapshot s = STATESRV__V1__SNAPSHOT__INIT;
    sreq.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    sreq.snapshot = &s;
    s.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
    s.id = 1;
    int acked = 0, before = -1, after = -1;
    char key[32];
    for (int i = 0; i < 20; i++, acked++) {
        snprintf(key, sizeof(key), "w%d", acked);
        put_kv(b, "seq", key, "x", 0, 0);
    }
    before = acked;
    sreq.id = next_id++;
    raw_send_msg(a, &sreq.base);
    Statesrv__V1__Response *r = NULL;
    long deadline = ts_now_ms() + 60000;
    while (!r && ts_now_ms() < deadline) {
        snprintf(key, sizeof(key), "w%d", acked);
        put_kv(b, "seq", key, "x", 0, 0);
        change_big(b, acked);
        acked++;
        struct timeval tv = {0, 0};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(a, &rs);
        if (select(a + 1, &rs, NULL, NULL, &tv) > 0)
            r = raw_recv(a, 5000);
    }
    ck_assert_ptr_nonnull(r);
    after = acked;
    ck_assert_msg(r->status == 0, "snapshot: %s", r->message);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_int_gt(after, before); /* writes were served during the snapshot */
    /* ... and some changed entries the snapshot had not read yet. */
    ck_assert(ts_log_contains(&srv, "entries written meanwhile were kept"));
    ck_assert(!ts_log_contains(&srv, " 0 entries written meanwhile were kept"));

    /* Restore it: the "seq" state must be a gap-free prefix w0..wk with
     * before <= k+1 <= after. */
    const char *src[] = {"1"};
    restore_ok(a, src, 1, 0, 0, 0);
    int k = 0;
    char *v;
    while (k < after && (v = get_val(a, "seq", (snprintf(key, sizeof(key), "w%d", k), key)))) {
        free(v);
        k++;
    }
    ck_assert_int_ge(k, before);
    ck_assert_int_le(k, after);
    for (int i = k; i < after; i++) {
        snprintf(key, sizeof(key), "w%d", i);
        ck_assert_msg(get_val(a, "seq", key) == NULL, "%s present after a gap at w%d", key, k);
    }
    /* Change i of "big" followed w<i>: in for i < k - 1, out for i >= k (the
     * cut may fall between w<k-1> and its change). */
    long want = 150000, edge = 0;
    for (int i = before; i < after; i++) {
        long delta = i % 3 == 1 ? -1 : i % 3 == 2 ? 1 : 0;
        if (i == k - 1) {
            edge = delta; /* either way */
            continue;
        }
        int in = big_change_in(a, i);
        ck_assert_msg(in == (i < k), "change %d of big is %s the checkpoint, cut at w%d", i,
                      in ? "in" : "not in", k);
        if (i < k)
            want += delta;
    }
    long got = count_entries(a, "big", NULL, 0);
    ck_assert_msg(got == want || got == want + edge, "big has %ld entries, want %ld or %ld", got,
                  want, want + edge);
    close(a);
    close(b);
}
END_TEST

START_TEST(loop_answers_during_snapshot)
{
    /* A slower compression level makes the snapshot long enough to probe. */
    ts_start_with_config(&srv, "checkpoint_compression_level = 9\n");
    int a = raw_connect_tcp(&srv), c = raw_connect_tcp(&srv);
    load(a, "big", 0, 200000, "x", 100);
    send_snapshot(a);
    long worst = 0, probes = 0, t0 = ts_now_ms();
    for (;;) {
        struct timeval tv = {0, 0};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(a, &rs);
        if (select(a + 1, &rs, NULL, NULL, &tv) > 0)
            break;
        long t = ts_now_ms();
        char *v = get_val(c, "big", "k12345");
        ck_assert_ptr_nonnull(v);
        free(v);
        long dt = ts_now_ms() - t;
        worst = dt > worst ? dt : worst;
        probes++;
        ck_assert_int_lt(ts_now_ms() - t0, 60000);
    }
    Statesrv__V1__Response *r = raw_recv(a, 5000);
    ck_assert_int_eq(r->status, 0);
    statesrv__v1__response__free_unpacked(r, NULL);
    fprintf(stderr,
            "loop_answers_during_snapshot: %ld GETs during a %ld ms snapshot, worst %ld ms\n",
            probes, ts_now_ms() - t0, worst);
    ck_assert_int_ge(probes, 5);
    /* Under valgrind (SV_TEST_SLOW) threads take turns, and ASan slows
     * every allocation: only a loose bound there. */
    ck_assert_int_lt(worst, getenv("SV_TEST_SLOW") ? 5000 : ts_sanitized() ? 1000 : 200);
    close(a);
    close(c);
}
END_TEST

START_TEST(second_snapshot_is_busy_and_ids_are_checked)
{
    ts_start(&srv, NULL);
    int a = raw_connect_tcp(&srv), b = raw_connect_tcp(&srv);
    load(a, "big", 0, 100000, "x", 100);
    send_snapshot(a);
    usleep(20000);
    Statesrv__V1__Response *r = snapshot(b, 0);
    if (r->status == 0) {
        /* The first finished before the second arrived: not a failure of the
         * server, but this run proved nothing about BUSY. */
        fprintf(stderr, "second_snapshot_is_busy: first snapshot too fast to overlap\n");
        statesrv__v1__response__free_unpacked(r, NULL);
    } else {
        expect_status(r, STATESRV__V1__STATUS__BUSY, "being written");
    }
    r = raw_recv(a, 60000);
    ck_assert_int_eq(r->status, 0);
    uint64_t first_id = r->snapshot->manifest->checkpoint_id;
    ck_assert_uint_eq(first_id, 1); /* no id given, none present: 1 */
    statesrv__v1__response__free_unpacked(r, NULL);
    expect_status(snapshot(a, first_id), STATESRV__V1__STATUS__INVALID_ARGUMENT, "already exists");
    r = snapshot(a, 0);
    ck_assert_int_eq(r->status, 0);
    ck_assert_uint_gt(r->snapshot->manifest->checkpoint_id, first_id);
    statesrv__v1__response__free_unpacked(r, NULL);
    close(a);
    close(b);
}
END_TEST

START_TEST(retention_keeps_newest_n)
{
    ts_start_with_config(&srv, "checkpoint_retain = 2\n");
    int fd = raw_connect_tcp(&srv);
    put_kv(fd, "s", "k", "v", 0, 0);
    for (uint64_t id = 10; id <= 14; id++)
        snapshot_ok(fd, id);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/checkpoints", srv.dir);
    ck_assert_int_eq(count_dir(dir, "chk-"), 2);
    ck_assert(path_exists("%s/chk-13", dir));
    ck_assert(path_exists("%s/chk-14", dir));
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__ListCheckpoints lc = STATESRV__V1__LIST_CHECKPOINTS__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_LIST_CHECKPOINTS;
    req.list_checkpoints = &lc;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    ck_assert_int_eq(r->status, 0);
    ck_assert_uint_eq(r->list_checkpoints->n_checkpoints, 2);
    ck_assert_uint_eq(r->list_checkpoints->checkpoints[0]->checkpoint_id, 13);
    ck_assert_uint_eq(r->list_checkpoints->checkpoints[1]->entries, 1);
    statesrv__v1__response__free_unpacked(r, NULL);
    /* delete_checkpoint */
    Statesrv__V1__DeleteCheckpoint dc = STATESRV__V1__DELETE_CHECKPOINT__INIT;
    dc.id = 13;
    req.op_case = STATESRV__V1__REQUEST__OP_DELETE_CHECKPOINT;
    req.delete_checkpoint = &dc;
    r = call(fd, &req, 5000);
    ck_assert_int_eq(r->status, 0);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert(!path_exists("%s/chk-13/MANIFEST", dir));
    expect_status(call(fd, &req, 5000), STATESRV__V1__STATUS__NOT_FOUND, "does not exist");
    close(fd);
}
END_TEST

/* Writes "k<i>" for i in [0, n) into a sidecar with key groups from the
 * murmur hash; returns how many landed in [first, last]. */
static int keys_in_range(int n, uint32_t first, uint32_t last)
{
    int c = 0;
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        uint32_t kg = sv_key_group_of(key, strlen(key), 128);
        c += kg >= first && kg <= last;
    }
    return c;
}

/* Puts the keys of [0, n) whose key group is in [first, last]. */
static void load_range(int fd, int n, uint32_t first, uint32_t last)
{
    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        uint32_t kg = sv_key_group_of(key, strlen(key), 128);
        if (kg < first || kg > last)
            continue;
        snprintf(val, sizeof(val), "v%d", i);
        put_kv(fd, "st", key, val, 0, 0);
        if (i % 3 == 0)
            put_kv(fd, "other", key, val, 0, 0);
    }
}

/* Old sidecars each hold a range; new ones restore their ranges from all
 * old checkpoints; every key exactly once across the new sidecars. */
static void rescale(const uint32_t (*old)[2], int nold, const uint32_t (*neu)[2], int nnew)
{
    enum { N = 1500 };
    struct ts olds[4], news[3];
    char roots[4096] = "";
    const char *sources[4];
    char srcbuf[4][256];
    for (int i = 0; i < nold; i++) {
        ts_start(&olds[i], NULL);
        int fd = raw_connect_tcp(&olds[i]);
        load_range(fd, N, old[i][0], old[i][1]);
        snapshot_ok(fd, 42);
        close(fd);
        snprintf(srcbuf[i], sizeof(srcbuf[i]), "%s/checkpoints/chk-42", olds[i].dir);
        sources[i] = srcbuf[i];
        size_t used = strlen(roots);
        snprintf(roots + used, sizeof(roots) - used, "%s%s/checkpoints", used ? ":" : "",
                 olds[i].dir);
    }
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    long total = 0;
    for (int j = 0; j < nnew; j++) {
        char conf[256];
        const char *extra[] = {"--config", conf, NULL};
        snprintf(conf, sizeof(conf), "/tmp/svit-rescale-%d-%d.conf", (int)getpid(), j);
        FILE *f = fopen(conf, "w");
        fprintf(f, "restore_roots = %s\n", roots);
        fclose(f);
        ts_start(&news[j], extra);
        unlink(conf);
        int fd = raw_connect_tcp(&news[j]);
        restore_ok(fd, sources, (size_t)nold, 1, neu[j][0], neu[j][1]);
        long n = count_entries(fd, "st", seen, N);
        ck_assert_int_eq(n, keys_in_range(N, neu[j][0], neu[j][1]));
        total += n;
        /* A key outside the new range is refused (misrouted). */
        for (int i = 0; i < N; i++) {
            char key[32];
            snprintf(key, sizeof(key), "k%d", i);
            uint32_t kg = sv_key_group_of(key, strlen(key), 128);
            if (kg >= neu[j][0] && kg <= neu[j][1])
                continue;
            Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
            Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
            put.state = pb_str("st");
            put.key = bin(key, strlen(key));
            req.op_case = STATESRV__V1__REQUEST__OP_PUT;
            req.put = &put;
            expect_status(call(fd, &req, 5000), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                          "not served here");
            /* A read is refused the same way: NOT_FOUND would hide that
             * the state lives on another sidecar. */
            Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
            get.state = pb_str("st");
            get.key = bin(key, strlen(key));
            req.op_case = STATESRV__V1__REQUEST__OP_GET;
            req.get = &get;
            expect_status(call(fd, &req, 5000), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                          "not served here");
            break;
        }
        /* Its next checkpoint records the new range. */
        Statesrv__V1__Response *r = snapshot(fd, 0);
        ck_assert_int_eq(r->status, 0);
        ck_assert_uint_eq(r->snapshot->manifest->kg_first, neu[j][0]);
        ck_assert_uint_eq(r->snapshot->manifest->kg_last, neu[j][1]);
        statesrv__v1__response__free_unpacked(r, NULL);
        close(fd);
    }
    ck_assert_int_eq(total, N); /* every key exactly once (seen[] caught doubles) */
    for (int i = 0; i < N; i++)
        ck_assert_msg(seen[i], "k%d lost", i);
    for (int i = 0; i < nold; i++)
        ts_cleanup(&olds[i]);
    for (int j = 0; j < nnew; j++)
        ts_cleanup(&news[j]);
}

START_TEST(rescale_4_to_2)
{
    const uint32_t old[4][2] = {{0, 31}, {32, 63}, {64, 95}, {96, 127}};
    const uint32_t neu[2][2] = {{0, 63}, {64, 127}};
    rescale(old, 4, neu, 2);
}
END_TEST

START_TEST(rescale_2_to_3)
{
    const uint32_t old[2][2] = {{0, 63}, {64, 127}};
    const uint32_t neu[3][2] = {{0, 42}, {43, 85}, {86, 127}};
    rescale(old, 2, neu, 3);
}
END_TEST

/* A sidecar restoring its range serves only that; its checkpoints record
 * it. A restore is checked against what its sources served: a range asked
 * for must be covered, and without one the range is theirs (one run). */
START_TEST(restore_covers_only_what_the_sources_served)
{
    struct ts a, lo, hi;
    char conf[4200], src_a[256], src_lo[256], src_hi[256];
    ts_start(&a, NULL);
    int fd = raw_connect_tcp(&a);
    load_range(fd, 600, 0, 127);
    snapshot_ok(fd, 1);
    close(fd);
    snprintf(src_a, sizeof(src_a), "%s/checkpoints/chk-1", a.dir);
    const char *from_a[] = {src_a};
    /* Two sidecars of a rescaled job: key groups 0-63 and 96-127. */
    snprintf(conf, sizeof(conf), "restore_roots = %s/checkpoints\n", a.dir);
    ts_start_with_config(&lo, conf);
    fd = raw_connect_tcp(&lo);
    restore_ok(fd, from_a, 1, 1, 0, 63);
    snapshot_ok(fd, 1);
    close(fd);
    ts_start_with_config(&hi, conf);
    fd = raw_connect_tcp(&hi);
    restore_ok(fd, from_a, 1, 1, 96, 127);
    snapshot_ok(fd, 1);
    close(fd);
    snprintf(src_lo, sizeof(src_lo), "%s/checkpoints/chk-1", lo.dir);
    snprintf(src_hi, sizeof(src_hi), "%s/checkpoints/chk-1", hi.dir);

    snprintf(conf, sizeof(conf), "restore_roots = %s/checkpoints:%s/checkpoints\n", lo.dir, hi.dir);
    ts_start_with_config(&srv, conf);
    fd = raw_connect_tcp(&srv);
    put_kv(fd, "live", "k", "still here", 0, 0);
    const char *from_lo[] = {src_lo}, *both[] = {src_lo, src_hi};
    /* Asked for more than they served: refused, the gap named. */
    expect_status(restore(fd, from_lo, 1, 1, 0, 127), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "not 64-127 of the range 0-127");
    expect_status(restore(fd, both, 2, 1, 32, 127), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "not 64-95");
    /* Without a range: theirs, if it is one run. */
    expect_status(restore(fd, both, 2, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "served key groups 0-63, 96-127, which is not one range");
    char *v = get_val(fd, "live", "k");
    ck_assert_str_eq(v, "still here");
    free(v);
    Statesrv__V1__Response *r = restore(fd, from_lo, 1, 0, 0, 0);
    ck_assert_msg(r->status == 0, "restore: %s", r->message);
    ck_assert_uint_eq(r->restore->kg_first, 0);
    ck_assert_uint_eq(r->restore->kg_last, 63);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_int_eq(count_entries(fd, "st", NULL, 0), keys_in_range(600, 0, 63));
    r = snapshot(fd, 0);
    ck_assert_int_eq(r->status, 0);
    ck_assert_uint_eq(r->snapshot->manifest->kg_first, 0);
    ck_assert_uint_eq(r->snapshot->manifest->kg_last, 63);
    statesrv__v1__response__free_unpacked(r, NULL);
    /* A range inside what they served is fine, from several sources too. */
    restore_ok(fd, both, 2, 1, 100, 127);
    close(fd);
    ts_cleanup(&a);
    ts_cleanup(&lo);
    ts_cleanup(&hi);
}
END_TEST

/* checkpoint_interval: the server checkpoints on its own, ids go on from
 * what exists, incremental after the first, and a coordinator's snapshot
 * still works beside it (BUSY only while a scheduled one is written). The
 * waits are bounded by 30 s against a 1 s interval, so a slow machine only
 * waits longer. */
START_TEST(checkpoint_interval_checkpoints_on_its_own)
{
    ts_start_with_config(&srv, "checkpoint_interval = 1\ncheckpoint_retain = 100\n");
    int fd = raw_connect_tcp(&srv);
    load(fd, "st", 0, 100, "a", 0);
    char ckdir[256];
    snprintf(ckdir, sizeof(ckdir), "%s/checkpoints", srv.dir);
    long t0 = ts_now_ms();
    while (count_dir(ckdir, "chk-") < 1 && ts_now_ms() - t0 < 30000)
        usleep(50 * 1000);
    ck_assert_int_ge(count_dir(ckdir, "chk-"), 1);
    /* An explicit one beside the schedule: retried past a scheduled one. */
    Statesrv__V1__Response *r = NULL;
    for (int i = 0; i < 100; i++) {
        r = snapshot(fd, 0);
        if (r->status != STATESRV__V1__STATUS__BUSY)
            break;
        statesrv__v1__response__free_unpacked(r, NULL);
        r = NULL;
        usleep(20 * 1000);
    }
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->status == 0, "snapshot: %s", r->message);
    uint64_t mine = r->snapshot->manifest->checkpoint_id;
    statesrv__v1__response__free_unpacked(r, NULL);
    load(fd, "st", 100, 50, "b", 0);
    /* Wait for one more scheduled checkpoint after mine. */
    t0 = ts_now_ms();
    char path[256];
    snprintf(path, sizeof(path), "%s/checkpoints/chk-%llu/MANIFEST", srv.dir,
             (unsigned long long)mine + 1);
    while (access(path, F_OK) != 0 && ts_now_ms() - t0 < 30000)
        usleep(50 * 1000);
    ck_assert_msg(access(path, F_OK) == 0, "no scheduled checkpoint after chk-%llu",
                  (unsigned long long)mine);
    ck_assert(ts_log_contains(&srv, "incremental on chk-"));
    close(fd);
    /* The last scheduled one holds everything written before it. */
    ck_assert_int_eq(ts_stop(&srv), 0);
    char src[300];
    snprintf(src, sizeof(src), "%llu", (unsigned long long)mine + 1);
    const char *extra[] = {"--restore-from", src, NULL};
    ts_restart(&srv, extra);
    fd = raw_connect_tcp(&srv);
    ck_assert_int_eq(count_entries(fd, "st", NULL, 0), 150);
    close(fd);
}
END_TEST

START_TEST(overlapping_sources_refused)
{
    struct ts other;
    ts_start(&other, NULL);
    int fd = raw_connect_tcp(&other);
    load(fd, "st", 0, 200, "o", 0);
    snapshot_ok(fd, 1);
    close(fd);
    char conf[256], src2[256];
    const char *extra[] = {"--config", conf, NULL};
    snprintf(conf, sizeof(conf), "/tmp/svit-ovl-%d.conf", (int)getpid());
    FILE *f = fopen(conf, "w");
    fprintf(f, "restore_roots = %s\n", other.dir);
    fclose(f);
    ts_start(&srv, extra);
    unlink(conf);
    fd = raw_connect_tcp(&srv);
    load(fd, "st", 0, 200, "s", 0);
    snapshot_ok(fd, 1);
    put_kv(fd, "live", "k", "still here", 0, 0);
    snprintf(src2, sizeof(src2), "%s/checkpoints/chk-1", other.dir);
    const char *src[] = {"1", src2};
    expect_status(restore(fd, src, 2, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "both hold key group");
    char *v = get_val(fd, "live", "k");
    ck_assert_str_eq(v, "still here");
    free(v);
    close(fd);
    ts_cleanup(&other);
}
END_TEST

START_TEST(restore_roots_confinement)
{
    char conf[256], root[256], outside[256];
    const char *extra[] = {"--config", conf, NULL};
    ts_start(&srv, NULL);
    ck_assert_int_eq(ts_stop(&srv), 0);
    snprintf(root, sizeof(root), "%s/shared", srv.dir);
    snprintf(outside, sizeof(outside), "%s/outside", srv.dir);
    sh("mkdir -p %s %s", root, outside);
    snprintf(conf, sizeof(conf), "%s/roots.conf", srv.dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "restore_roots = %s\n", root);
    fclose(f);
    ts_restart(&srv, extra);
    int fd = raw_connect_tcp(&srv);
    put_kv(fd, "s", "k", "v", 0, 0);
    snapshot_ok(fd, 1);
    /* A real checkpoint copied outside the root, and links into it. */
    sh("cp -a %s/checkpoints/chk-1 %s/chk-1", srv.dir, outside);
    sh("cp -a %s/checkpoints/chk-1 %s/chk-ok", srv.dir, root);
    sh("ln -s %s/chk-1 %s/escape", outside, root);
    char p[1024];
    struct {
        const char *base; /* "root", "outside" or an absolute path */
        const char *rest;
        Statesrv__V1__Status st;
        const char *text;
    } cases[] = {
        {"outside", "/chk-1", STATESRV__V1__STATUS__INVALID_ARGUMENT, "outside"},
        {"root", "/../outside/chk-1", STATESRV__V1__STATUS__INVALID_ARGUMENT, "outside"},
        {"root", "/escape", STATESRV__V1__STATUS__INVALID_ARGUMENT, "outside"}, /* symlink */
        {"root", "", STATESRV__V1__STATUS__INVALID_ARGUMENT, "outside"},        /* the root */
        {"root", "/missing", STATESRV__V1__STATUS__NOT_FOUND, "no such checkpoint"},
        {"/etc", "", STATESRV__V1__STATUS__INVALID_ARGUMENT, "outside"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *base = strcmp(cases[i].base, "root") == 0      ? root
                           : strcmp(cases[i].base, "outside") == 0 ? outside
                                                                   : cases[i].base;
        snprintf(p, sizeof(p), "%s%s", base, cases[i].rest);
        const char *src[] = {p};
        expect_status(restore(fd, src, 1, 0, 0, 0), cases[i].st, cases[i].text);
    }
    static char longp[8192];
    memset(longp, 'a', sizeof(longp) - 1);
    const char *lsrc[] = {longp};
    expect_status(restore(fd, lsrc, 1, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "too long");
    const char *nsrc[] = {"999"};
    expect_status(restore(fd, nsrc, 1, 0, 0, 0), STATESRV__V1__STATUS__NOT_FOUND,
                  "no such checkpoint");
    /* Inside the root, it works. */
    snprintf(p, sizeof(p), "%s/chk-ok", root);
    const char *ok[] = {p};
    restore_ok(fd, ok, 1, 0, 0, 0);
    close(fd);
}
END_TEST

/* Copies chk-1 to chk-<n>, corrupts one part, and expects restore to refuse
 * it while the live state stays as it was. */
START_TEST(corruption_refused_live_state_intact)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    load(fd, "st", 0, 20000, "x", 50);
    snapshot_ok(fd, 1);
    put_kv(fd, "live", "k", "after", 0, 0);
    const struct {
        const char *file;
        long offset; /* negative: from the end */
        const char *part;
    } parts[] = {
        {"MANIFEST", 2, "MANIFEST: bad magic"},
        {"MANIFEST", 30, "MANIFEST: checksum"},
        {"MANIFEST", -3, "MANIFEST: checksum"},
        {"data", 3, "data header"},
        {"data", 60, "block at offset"},
        {"data", 2000, "block at offset"},
        {"data", -45, "index"},
        {"data", -10, "footer"},
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        /* A full checkpoint of its own for each damage (a copy of chk-1
         * under another id would be refused for that first). */
        uint64_t id = 100 + i;
        Statesrv__V1__Request sreq = STATESRV__V1__REQUEST__INIT;
        Statesrv__V1__Snapshot snap = STATESRV__V1__SNAPSHOT__INIT;
        snap.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
        snap.id = id;
        snap.full = 1;
        sreq.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
        sreq.snapshot = &snap;
        Statesrv__V1__Response *sr = call(fd, &sreq, 60000);
        ck_assert_msg(sr->status == 0, "snapshot %llu: %s", (unsigned long long)id, sr->message);
        statesrv__v1__response__free_unpacked(sr, NULL);
        char path[512];
        snprintf(path, sizeof(path), "%s/checkpoints/chk-%llu/%s", srv.dir, (unsigned long long)id,
                 parts[i].file);
        flip_byte(path, parts[i].offset);
        char ids[32];
        snprintf(ids, sizeof(ids), "%llu", (unsigned long long)id);
        const char *src[] = {ids};
        Statesrv__V1__Response *r = restore(fd, src, 1, 0, 0, 0);
        ck_assert_msg(r->status == STATESRV__V1__STATUS__INVALID_ARGUMENT, "%s@%ld: status %d (%s)",
                      parts[i].file, parts[i].offset, r->status, r->message);
        ck_assert_msg(strstr(r->message, parts[i].part) != NULL, "%s@%ld: '%s' does not name '%s'",
                      parts[i].file, parts[i].offset, r->message, parts[i].part);
        statesrv__v1__response__free_unpacked(r, NULL);
        char *v = get_val(fd, "live", "k");
        ck_assert_str_eq(v, "after");
        free(v);
    }
    ck_assert_int_eq(count_entries(fd, "st", NULL, 0), 20000);
    close(fd);
}
END_TEST

START_TEST(kill9_during_snapshot_leaves_no_half_checkpoint)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    load(fd, "big", 0, 200000, "x", 100);
    snapshot_ok(fd, 1);
    for (int delay = 5; delay <= 45; delay += 20) {
        send_snapshot(fd);
        usleep((useconds_t)delay * 1000);
        ts_kill(&srv);
        close(fd);
        ts_restart(&srv, NULL);
        fd = raw_connect_tcp(&srv);
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/checkpoints", srv.dir);
        ck_assert_int_eq(count_dir(dir, ".chk-"), 0); /* leftovers removed */
        /* Whatever exists is complete: restore each one. */
        DIR *d = opendir(dir);
        struct dirent *e;
        char ids[16][32];
        int n = 0;
        while ((e = readdir(d)) && n < 16)
            if (strncmp(e->d_name, "chk-", 4) == 0)
                snprintf(ids[n++], sizeof(ids[0]), "%s", e->d_name + 4);
        closedir(d);
        ck_assert_int_ge(n, 1);
        for (int i = 0; i < n; i++) {
            const char *src[] = {ids[i]};
            restore_ok(fd, src, 1, 0, 0, 0);
            ck_assert_int_eq(count_entries(fd, "big", NULL, 0), 200000);
        }
    }
    close(fd);
}
END_TEST

START_TEST(kill9_during_restore_keeps_old_state_whole)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    load(fd, "big", 0, 200000, "old", 100);
    snapshot_ok(fd, 1);
    load(fd, "big", 0, 1000, "new", 100); /* the live state differs from chk-1 */
    const char *src[] = {"1"};
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Restore rs = STATESRV__V1__RESTORE__INIT;
    ProtobufCBinaryData srcb = pb_str(src[0]);
    rs.sources = &srcb;
    rs.n_sources = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
    req.restore = &rs;
    req.id = next_id++;
    raw_send_msg(fd, &req.base);
    usleep(30000);
    ts_kill(&srv);
    close(fd);
    ts_restart(&srv, NULL);
    fd = raw_connect_tcp(&srv);
    /* Either the old state (most likely) or the restored one, whole. */
    ck_assert_int_eq(count_entries(fd, "big", NULL, 0), 200000);
    char *v = get_val(fd, "big", "k10");
    ck_assert(strncmp(v, "v10-new-", 8) == 0 || strncmp(v, "v10-old-", 8) == 0);
    int old_state = strncmp(v, "v10-new-", 8) == 0;
    free(v);
    v = get_val(fd, "big", "k5000");
    ck_assert_ptr_nonnull(v); /* readable */
    ck_assert(strncmp(v, old_state ? "v5000-old-" : "v5000-", 6) == 0);
    free(v);
    fprintf(stderr, "kill9_during_restore: after restart the %s state is served\n",
            old_state ? "old" : "restored");
    char data[256];
    snprintf(data, sizeof(data), "%s/data", srv.dir);
    ck_assert_int_eq(count_dir(data, "gen-"), 1); /* the half-built one is gone */
    close(fd);
}
END_TEST

START_TEST(writes_busy_during_restore)
{
    ts_start(&srv, NULL);
    int a = raw_connect_tcp(&srv), b = raw_connect_tcp(&srv);
    load(a, "big", 0, 200000, "x", 100);
    snapshot_ok(a, 1);
    const char *src[] = {"1"};
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Restore rs = STATESRV__V1__RESTORE__INIT;
    ProtobufCBinaryData srcb = pb_str(src[0]);
    rs.sources = &srcb;
    rs.n_sources = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
    req.restore = &rs;
    req.id = next_id++;
    raw_send_msg(a, &req.base);
    int busy = 0, reads = 0;
    for (int i = 0; i < 2000 && !busy; i++) {
        Statesrv__V1__Request p = STATESRV__V1__REQUEST__INIT;
        Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
        put.state = pb_str("big");
        put.key = bin("w", 1);
        p.op_case = STATESRV__V1__REQUEST__OP_PUT;
        p.put = &put;
        Statesrv__V1__Response *r = call(b, &p, 5000);
        if (r->status == STATESRV__V1__STATUS__BUSY) {
            busy = 1;
            ck_assert_ptr_nonnull(strstr(r->message, "restore"));
            char *v = get_val(b, "big", "k1"); /* reads still work */
            ck_assert_ptr_nonnull(v);
            free(v);
            reads++;
        }
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    Statesrv__V1__Response *r = raw_recv(a, 60000);
    ck_assert_int_eq(r->status, 0);
    statesrv__v1__response__free_unpacked(r, NULL);
    if (!busy)
        fprintf(stderr, "writes_busy_during_restore: restore too fast to overlap\n");
    /* After the switch writes work again, in the new generation. */
    put_kv(b, "big", "after", "x", 0, 0);
    char *v = get_val(a, "big", "after");
    ck_assert_str_eq(v, "x");
    free(v);
    close(a);
    close(b);
    (void)reads;
}
END_TEST

START_TEST(restore_from_at_startup)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    load(fd, "st", 0, 500, "a", 0);
    snapshot_ok(fd, 3);
    load(fd, "st", 500, 500, "b", 0);
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0);
    const char *extra[] = {"--restore-from", "3", NULL};
    ts_restart(&srv, extra);
    fd = raw_connect_tcp(&srv);
    ck_assert_int_eq(count_entries(fd, "st", NULL, 0), 500);
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0);
    /* A bad source stops the server: it does not serve unwanted state. */
    const char *bad[] = {"--listen", "127.0.0.1:0", "--restore-from", "77", NULL};
    ck_assert_int_eq(ts_run_expect_exit(&srv, bad), 1);
    ck_assert(ts_log_contains(&srv, "no such checkpoint"));
}
END_TEST

START_TEST(full_disk_fails_cleanly)
{
    ts_start(&srv, NULL);
    ck_assert_int_eq(ts_stop(&srv), 0);
    char mnt[256], conf[256];
    /* Over the checkpoint directory the harness gives the server. */
    snprintf(mnt, sizeof(mnt), "%s/checkpoints", srv.dir);
    sh("mkdir -p %s", mnt);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k")) {
        fprintf(stderr, "full_disk_fails_cleanly: SKIPPED (cannot mount a tmpfs: %s)\n",
                strerror(errno));
        return;
    }
    snprintf(conf, sizeof(conf), "%s/full.conf", srv.dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "checkpoint_compression = none\n");
    fclose(f);
    const char *extra[] = {"--config", conf, NULL};
    ts_restart(&srv, extra);
    int fd = raw_connect_tcp(&srv);
    load(fd, "st", 0, 5000, "x", 200); /* ~1 MB: does not fit */
    Statesrv__V1__Response *r = snapshot(fd, 1);
    expect_status(r, STATESRV__V1__STATUS__NO_SPACE, "disk is full");
    ck_assert_int_eq(count_dir(mnt, "chk-"), 0);
    ck_assert_int_eq(count_dir(mnt, ".chk-"), 0);
    /* The server goes on; a checkpoint that fits works. */
    char *v = get_val(fd, "st", "k1");
    ck_assert_ptr_nonnull(v);
    free(v);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Clear clear = STATESRV__V1__CLEAR__INIT;
    clear.state = pb_str("st");
    clear.target_case = STATESRV__V1__CLEAR__TARGET_WHOLE_STATE;
    clear.whole_state = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_CLEAR;
    req.clear = &clear;
    statesrv__v1__response__free_unpacked(call(fd, &req, 5000), NULL);
    put_kv(fd, "st", "small", "x", 0, 0);
    snapshot_ok(fd, 2);
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0);
    umount(mnt);
}
END_TEST

/* CPU time of a process's main thread (the event loop), in ms. */
static long loop_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    ck_assert_ptr_nonnull(p);
    unsigned long utime = 0, stime = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    ck_assert_int_eq(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), 2);
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* The stats op's commit counter. */
static uint64_t commits(int fd)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Stats st = STATESRV__V1__STATS__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_STATS;
    req.stats = &st;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    uint64_t n = r->stats->commits;
    statesrv__v1__response__free_unpacked(r, NULL);
    return n;
}

START_TEST(waiting_connection_does_not_spin_the_loop)
{
    ts_start_with_config(&srv, "checkpoint_compression_level = 19\n"); /* a long snapshot */
    int a = raw_connect_tcp(&srv), b = raw_connect_tcp(&srv);
    load(a, "big", 0, 40000, "x", 100);
    uint64_t before = commits(b);
    /* A snapshot, and a ping pipelined behind it on the same connection. */
    Statesrv__V1__Request preq = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Ping ping = STATESRV__V1__PING__INIT;
    preq.op_case = STATESRV__V1__REQUEST__OP_PING;
    preq.ping = &ping;
    preq.id = next_id++;
    long cpu0 = loop_cpu_ms(srv.pid), t0 = ts_now_ms();
    send_snapshot(a);
    usleep(50000); /* the ping arrives while the snapshot runs */
    raw_send_msg(a, &preq.base);
    Statesrv__V1__Response *r = raw_recv(a, 60000);
    ck_assert_int_eq(r->status, 0);
    statesrv__v1__response__free_unpacked(r, NULL);
    r = raw_recv(a, 5000); /* the ping, answered after the snapshot */
    ck_assert_uint_eq(r->id, preq.id);
    statesrv__v1__response__free_unpacked(r, NULL);
    long cpu = loop_cpu_ms(srv.pid) - cpu0, wall = ts_now_ms() - t0;
    uint64_t during = commits(b) - before;
    fprintf(stderr, "waiting_connection: loop thread used %ld ms of CPU in %ld ms, %llu commits\n",
            cpu, wall, (unsigned long long)during);
    ck_assert_uint_lt(during, 100); /* it spun at ~500k/s */
    if (!getenv("SV_TEST_SLOW"))
        ck_assert_int_lt(cpu, wall / 2 + 100); /* a spinning loop burns all of it */
    close(a);
    close(b);
}
END_TEST

START_TEST(retention_keeps_the_new_checkpoint_and_ids_survive_leftovers)
{
    ts_start_with_config(&srv, "checkpoint_retain = 3\n");
    int fd = raw_connect_tcp(&srv);
    put_kv(fd, "s", "k", "v", 0, 0);
    for (uint64_t id = 10; id <= 12; id++)
        snapshot_ok(fd, id);
    snapshot_ok(fd, 5); /* a lower id: still kept, an older one goes */
    ck_assert(path_exists("%s/checkpoints/chk-5/MANIFEST", srv.dir));
    ck_assert(!path_exists("%s/checkpoints/chk-10/MANIFEST", srv.dir));
    close(fd);
    /* A chk-<id> with no MANIFEST (a removal cut short) neither blocks
     * automatic ids nor survives a restart. */
    ck_assert_int_eq(ts_stop(&srv), 0);
    sh("mkdir -p %s/checkpoints/chk-13 && touch %s/checkpoints/chk-13/data", srv.dir, srv.dir);
    ts_restart(&srv, ts_config_args(&srv));
    ck_assert(!path_exists("%s/checkpoints/chk-13", srv.dir));
    fd = raw_connect_tcp(&srv);
    Statesrv__V1__Response *r = snapshot(fd, 0);
    ck_assert_msg(r->status == 0, "%s", r->message);
    ck_assert_uint_eq(r->snapshot->manifest->checkpoint_id, 13);
    statesrv__v1__response__free_unpacked(r, NULL);
    close(fd);
}
END_TEST

START_TEST(missing_generation_refuses_to_start)
{
    ts_start(&srv, NULL);
    ck_assert_int_eq(ts_stop(&srv), 0);
    sh("cd %s/data && ln -sfn gen-000009 current", srv.dir);
    const char *extra[] = {"--listen", "127.0.0.1:0", NULL};
    ck_assert_int_eq(ts_run_expect_exit(&srv, extra), 1);
    ck_assert(ts_log_contains(&srv, "does not exist; refusing to start"));
    ck_assert(path_exists("%s/data/gen-000001/data.mdb", srv.dir)); /* nothing removed */
    sh("cd %s/data && ln -sfn gen-000001 current", srv.dir);
    ts_restart(&srv, NULL);
}
END_TEST

/* --- hostile checkpoint files -------------------------------------------- */

/* list_checkpoints on a second connection: answered within 5 s. Returns the
 * number of checkpoints listed. */
static size_t list_promptly(void)
{
    int fd = raw_connect_tcp(&srv);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__ListCheckpoints lc = STATESRV__V1__LIST_CHECKPOINTS__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_LIST_CHECKPOINTS;
    req.list_checkpoints = &lc;
    Statesrv__V1__Response *r = call(fd, &req, 5000);
    ck_assert_msg(r->status == 0, "list: %s", r->message);
    size_t n = r->list_checkpoints->n_checkpoints;
    statesrv__v1__response__free_unpacked(r, NULL);
    close(fd);
    return n;
}

/* A server whose state s holds k = "live", and its checkpoint 1 with k = first. */
static int start_with_checkpoint_1(const char *first)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    put_kv(fd, "s", "k", first, 0, 0);
    snapshot_ok(fd, 1);
    put_kv(fd, "s", "k", "live", 0, 0);
    return fd;
}

/* The live state is still what start_with_checkpoint_1 left. */
static void live_state_intact(int fd)
{
    char *v = get_val(fd, "s", "k");
    ck_assert_str_eq(v, "live");
    free(v);
}

/* A FIFO as a checkpoint's MANIFEST or data: listing skips it at once (it
 * used to freeze the loop until someone opened the FIFO), a restore from it
 * is refused (it used to hang, and every later job got BUSY), and snapshots
 * go on working. */
START_TEST(fifo_in_a_checkpoint_is_refused_and_blocks_nothing)
{
    int fd = start_with_checkpoint_1("old");
    const char *files[] = {"MANIFEST", "data"};
    for (int i = 0; i < 2; i++) {
        sh("cp -a %s/checkpoints/chk-1 %s/checkpoints/chk-%d", srv.dir, srv.dir, 52 + i);
        sh("rm %s/checkpoints/chk-%d/%s && mkfifo %s/checkpoints/chk-%d/%s", srv.dir, 52 + i,
           files[i], srv.dir, 52 + i, files[i]);
    }
    ck_assert_uint_eq(list_promptly(), 1);
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", 52 + i);
        const char *src[] = {id};
        expect_status(restore(fd, src, 1, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                      "not a regular file");
    }
    live_state_intact(fd);
    snapshot_ok(fd, 2);
    const char *src[] = {"2"};
    restore_ok(fd, src, 1, 0, 0, 0);
    live_state_intact(fd); /* checkpoint 2 holds the live value */
    ck_assert_uint_ge(list_promptly(), 1);
    ck_assert(path_exists("%s/checkpoints/chk-2/MANIFEST", srv.dir));
    close(fd);
}
END_TEST

/* chk-60..62/{MANIFEST,data} as links to a good checkpoint outside
 * checkpoint_dir and restore_roots: refused, and the live state stays. */
START_TEST(symlinked_checkpoint_files_are_refused)
{
    int fd = start_with_checkpoint_1("old");
    sh("mkdir -p %s/outside && cp -a %s/checkpoints/chk-1 %s/outside/", srv.dir, srv.dir, srv.dir);
    const char *files[] = {"MANIFEST", "data"};
    for (int i = 0; i < 3; i++) { /* MANIFEST, data, both */
        int id = 60 + i;
        sh("cp -a %s/checkpoints/chk-1 %s/checkpoints/chk-%d", srv.dir, srv.dir, id);
        for (int f = 0; f < 2; f++)
            if (i == 2 || i == f)
                sh("ln -sf %s/outside/chk-1/%s %s/checkpoints/chk-%d/%s", srv.dir, files[f],
                   srv.dir, id, files[f]);
        char ids[16];
        snprintf(ids, sizeof(ids), "%d", id);
        const char *src[] = {ids};
        expect_status(restore(fd, src, 1, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                      "symbolic link");
        live_state_intact(fd);
    }
    close(fd);
}
END_TEST

/* Sources that are not checkpoints answer INVALID_ARGUMENT or NOT_FOUND, not
 * INTERNAL: a regular file, a directory without MANIFEST, and a checkpoint
 * holding a 600-byte stored key (no store can hold it). */
START_TEST(bad_restore_sources_are_the_clients_error)
{
    int fd = start_with_checkpoint_1("old");
    char p[512];
    snprintf(p, sizeof(p), "%s/checkpoints/chk-1/data", srv.dir);
    const char *file[] = {p};
    expect_status(restore(fd, file, 1, 0, 0, 0), STATESRV__V1__STATUS__INVALID_ARGUMENT,
                  "not a checkpoint directory");
    sh("mkdir %s/checkpoints/chk-70", srv.dir);
    const char *empty[] = {"70"};
    expect_status(restore(fd, empty, 1, 0, 0, 0), STATESRV__V1__STATUS__NOT_FOUND, "MANIFEST");

    uint8_t sk[700], key[600];
    memset(key, 'k', sizeof(key));
    size_t skl = sv_skey_encode(sk, 3, key, 596, NULL, 0);
    ck_assert_uint_eq(skl, 600);
    const uint8_t v[] = {1, 0, 'v'};
    snprintf(p, sizeof(p), "%s/checkpoints/chk-71", srv.dir);
    sh("mkdir %s", p);
    craft_ckpt_one_entry(p, SV_KEY_GROUPS_DEFAULT, sk, skl, v, sizeof(v));
    const char *longkey[] = {"71"};
    Statesrv__V1__Response *r = restore(fd, longkey, 1, 0, 0, 0);
    ck_assert_msg(r->status == STATESRV__V1__STATUS__INVALID_ARGUMENT, "status %d (%s)", r->status,
                  r->message);
    ck_assert_msg(strstr(r->message, "chk-71/data") &&
                      strstr(r->message, "longer than a store can hold"),
                  "message: %s", r->message);
    statesrv__v1__response__free_unpacked(r, NULL);
    live_state_intact(fd);
    close(fd);
}
END_TEST

Suite *sv_suite_checkpoint(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, round_trip_restores_exactly_the_snapshot);
    tcase_add_test(tc, snapshot_is_consistent_under_concurrent_writes);
    tcase_add_test(tc, loop_answers_during_snapshot);
    tcase_add_test(tc, second_snapshot_is_busy_and_ids_are_checked);
    tcase_add_test(tc, retention_keeps_newest_n);
    tcase_add_test(tc, rescale_4_to_2);
    tcase_add_test(tc, rescale_2_to_3);
    tcase_add_test(tc, restore_covers_only_what_the_sources_served);
    tcase_add_test(tc, checkpoint_interval_checkpoints_on_its_own);
    tcase_add_test(tc, overlapping_sources_refused);
    tcase_add_test(tc, restore_roots_confinement);
    tcase_add_test(tc, corruption_refused_live_state_intact);
    tcase_add_test(tc, kill9_during_snapshot_leaves_no_half_checkpoint);
    tcase_add_test(tc, kill9_during_restore_keeps_old_state_whole);
    tcase_add_test(tc, writes_busy_during_restore);
    tcase_add_test(tc, restore_from_at_startup);
    tcase_add_test(tc, full_disk_fails_cleanly);
    tcase_add_test(tc, waiting_connection_does_not_spin_the_loop);
    tcase_add_test(tc, retention_keeps_the_new_checkpoint_and_ids_survive_leftovers);
    tcase_add_test(tc, missing_generation_refuses_to_start);
    tcase_add_test(tc, fifo_in_a_checkpoint_is_refused_and_blocks_nothing);
    tcase_add_test(tc, symlinked_checkpoint_files_are_refused);
    tcase_add_test(tc, bad_restore_sources_are_the_clients_error);
    suite_add_tcase(s, tc);
    return s;
}
