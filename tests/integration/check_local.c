/* Local reads (statesrv_local.h) of a live statesrvd's store: the same
 * answers as the socket on random seeded data, read-your-writes, restores
 * and ranged restores, map growth under an open reader, a reader killed
 * inside a read transaction, and directories that are not a store. */
#include "harness.h"
#include "statesrv.h"
#include "statesrv_local.h"
#include "suites.h"

#include <grp.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct ts srv;
static statesrv *c;
static statesrv_local *l;

static void data_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/data", srv.dir);
}

static void open_both(void)
{
    char err[256], dir[128];
    ck_assert_int_eq(statesrv_connect2(srv.unix_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);
    data_dir(dir, sizeof(dir));
    int rc = statesrv_local_open(dir, &l, err, sizeof(err));
    ck_assert_msg(rc == STATESRV_OK, "local open %s: %s: %s", dir, statesrv_strerror(rc), err);
}

static void setup(void)
{
    ts_start(&srv, NULL);
    open_both();
}

static void teardown(void)
{
    statesrv_local_close(l);
    l = NULL;
    statesrv_close(c);
    c = NULL;
    ts_cleanup(&srv);
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == STATESRV_OK, "%s -> %s: %s", #call, statesrv_strerror(rc_),           \
                      statesrv_errmsg(c));                                                         \
    } while (0)

/* The socket's and the local answer to one get agree in status, kind and bytes. */
static void same_get(const statesrv_key *k, const char *what)
{
    statesrv_value a = {0}, b = {0};
    int ra = statesrv_get(c, k, &a), rb = statesrv_local_get(l, k, &b);
    ck_assert_msg(ra == rb, "%s: socket %s, local %s (%s)", what, statesrv_strerror(ra),
                  statesrv_strerror(rb), statesrv_local_errmsg(l));
    if (ra == STATESRV_OK) {
        ck_assert_int_eq(a.kind, b.kind);
        ck_assert_uint_eq(a.len, b.len);
        ck_assert(a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
    }
    statesrv_value_free(&a);
    statesrv_value_free(&b);
}

static void same_scan(const statesrv_scan_options *o, const char *what)
{
    statesrv_scan *s;
    statesrv_local_scan *ls;
    int ra = statesrv_scan_open(c, o, &s), rb = statesrv_local_scan_open(l, o, &ls);
    ck_assert_msg(ra == rb, "%s: socket %s, local %s", what, statesrv_strerror(ra),
                  statesrv_strerror(rb));
    if (ra)
        return;
    size_t n = 0;
    for (;; n++) {
        const statesrv_entry *x, *y;
        OK(statesrv_scan_next(s, &x));
        ck_assert_int_eq(statesrv_local_scan_next(ls, &y), STATESRV_OK);
        ck_assert_msg((x == NULL) == (y == NULL), "%s: entry %zu only on one side", what, n);
        if (!x)
            break;
        ck_assert_uint_eq(x->key_group, y->key_group);
        ck_assert_uint_eq(x->key_len, y->key_len);
        ck_assert(memcmp(x->key, y->key, x->key_len) == 0);
        ck_assert_uint_eq(x->ns_len, y->ns_len);
        ck_assert(x->ns_len == 0 || memcmp(x->ns, y->ns, x->ns_len) == 0);
        ck_assert_uint_eq(x->value_len, y->value_len);
        ck_assert(x->value_len == 0 || memcmp(x->value, y->value, x->value_len) == 0);
        ck_assert_int_eq(x->kind, y->kind);
    }
    statesrv_scan_close(s);
    statesrv_local_scan_close(ls);
}

static void random_bytes(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rand() % 4 == 0 ? rand() % 256 : 'a' + rand() % 4);
}

START_TEST(local_reads_match_the_socket_on_random_data)
{
    srand(1616);
    static const char *states[] = {"alpha", "beta", "ga.mma"};
    unsigned char keys[200][12], nss[200][4];
    size_t klen[200], nlen[200];
    for (int i = 0; i < 200; i++) {
        klen[i] = 1 + (size_t)(rand() % 12);
        nlen[i] = (size_t)(rand() % 4);
        random_bytes(keys[i], klen[i]);
        random_bytes(nss[i], nlen[i]);
    }
    for (int op = 0; op < 3000; op++) {
        int i = rand() % 200;
        statesrv_key k = {.state = states[rand() % 3],
                          .key = keys[i],
                          .key_len = klen[i],
                          .ns = nss[i],
                          .ns_len = nlen[i]};
        unsigned char val[40];
        size_t vlen = (size_t)(rand() % 40);
        random_bytes(val, vlen);
        switch (rand() % 5) {
        case 0:
        case 1:
            OK(statesrv_put(c, &k, val, vlen));
            break;
        case 2:
            OK(statesrv_delete(c, &k, NULL));
            break;
        case 3:
            (void)statesrv_append(c, &k, val, vlen); /* INVALID_ARGUMENT on a non-list */
            break;
        default:
            (void)statesrv_add(c, &k, rand() % 10, NULL); /* INVALID_ARGUMENT on a non-counter */
            break;
        }
    }
    for (int i = 0; i < 200; i++)
        for (int s = 0; s < 3; s++) {
            statesrv_key k = {.state = states[s],
                              .key = keys[i],
                              .key_len = klen[i],
                              .ns = nss[i],
                              .ns_len = nlen[i]};
            same_get(&k, "random entry");
        }
    /* The requests the server refuses, and addresses with nothing there. */
    static char longkey[600];
    memset(longkey, 'k', sizeof(longkey));
    statesrv_key probes[] = {
        {.state = "alpha", .key = "nope", .key_len = 4},
        {.state = "nostate", .key = "k", .key_len = 1},
        {.state = "bad name", .key = "k", .key_len = 1},
        {.state = "", .key = "k", .key_len = 1},
        {.state = "alpha", .key = "", .key_len = 0},
        {.state = "alpha", .key = longkey, .key_len = sizeof(longkey)},
        {.state = "alpha", .key = "k", .key_len = 1, .has_key_group = 1, .key_group = 128},
        {.state = "alpha", .key = keys[0], .key_len = klen[0], .has_key_group = 1, .key_group = 3},
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        same_get(&probes[i], "probe");

    /* multi_get: one consistent read of many. */
    statesrv_key mk[50];
    statesrv_value ma[50], mb[50];
    for (int i = 0; i < 50; i++)
        mk[i] = (statesrv_key){.state = states[i % 3],
                               .key = keys[i],
                               .key_len = klen[i],
                               .ns = nss[i],
                               .ns_len = nlen[i]};
    OK(statesrv_multi_get(c, mk, 50, ma));
    ck_assert_int_eq(statesrv_local_multi_get(l, mk, 50, mb), STATESRV_OK);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(ma[i].found, mb[i].found);
        ck_assert_uint_eq(ma[i].len, mb[i].len);
        ck_assert(ma[i].len == 0 || memcmp(ma[i].data, mb[i].data, ma[i].len) == 0);
        ck_assert_int_eq(ma[i].kind, mb[i].kind);
    }
    statesrv_values_free(ma, 50);
    statesrv_values_free(mb, 50);

    for (int s = 0; s < 3; s++) {
        statesrv_scan_options o = {.state = states[s], .mode = STATESRV_SCAN_STATE, .page_size = 7};
        same_scan(&o, "whole state");
        o.mode = STATESRV_SCAN_KEY_GROUPS;
        o.kg_first = 10;
        o.kg_last = 70;
        same_scan(&o, "key groups");
        o.mode = STATESRV_SCAN_KEY;
        for (int i = 0; i < 20; i++) {
            o.key = keys[i];
            o.key_len = klen[i];
            same_scan(&o, "one key");
        }
    }
    statesrv_scan_options bad = {
        .state = "alpha", .mode = STATESRV_SCAN_KEY_GROUPS, .kg_first = 5, .kg_last = 2};
    same_scan(&bad, "bad range");
    statesrv_scan_options none = {.state = "nostate", .mode = STATESRV_SCAN_STATE};
    same_scan(&none, "missing state");
}
END_TEST

START_TEST(a_write_is_visible_locally_once_acknowledged)
{
    for (int i = 0; i < 2000; i++) {
        char key[16], val[16];
        snprintf(key, sizeof(key), "k%d", i % 50);
        snprintf(val, sizeof(val), "v%d", i);
        statesrv_key k = {.state = "ryw", .key = key, .key_len = strlen(key)};
        statesrv_value v;
        if (i % 7 == 6) {
            OK(statesrv_delete(c, &k, NULL));
            ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_NOT_FOUND);
            continue;
        }
        OK(statesrv_put(c, &k, val, strlen(val)));
        ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_OK);
        ck_assert_uint_eq(v.len, strlen(val));
        ck_assert(memcmp(v.data, val, v.len) == 0);
        statesrv_value_free(&v);
    }
}
END_TEST

static void local_value(const statesrv_key *k, const char *want)
{
    statesrv_value v;
    int rc = statesrv_local_get(l, k, &v);
    ck_assert_msg(rc == STATESRV_OK, "local get: %s: %s", statesrv_strerror(rc),
                  statesrv_local_errmsg(l));
    ck_assert_uint_eq(v.len, strlen(want));
    ck_assert(memcmp(v.data, want, v.len) == 0);
    statesrv_value_free(&v);
}

/* After a restore's reply the local reader serves the new generation; after
 * a ranged restore it refuses the key groups the server refuses. */
START_TEST(restore_switches_the_local_reader_too)
{
    statesrv_key k = {.state = "r", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v1", 2));
    statesrv_checkpoint_info *info;
    OK(statesrv_snapshot(c, 0, 0, &info));
    char src[24];
    snprintf(src, sizeof(src), "%llu", (unsigned long long)info->id);
    statesrv_checkpoint_info_free(info);
    OK(statesrv_put(c, &k, "v2", 2));
    local_value(&k, "v2");
    uint64_t g1 = statesrv_local_generation(l);
    const char *sources[] = {src};
    OK(statesrv_restore(c, sources, 1, 0, 0, 0, NULL));
    local_value(&k, "v1");
    ck_assert_uint_gt(statesrv_local_generation(l), g1);

    /* Ranged: only key groups 0-63 are served now. */
    uint32_t kg = statesrv_key_group("k", 1, 128);
    uint32_t first = kg < 64 ? 64 : 0, last = kg < 64 ? 127 : 63;
    OK(statesrv_restore(c, sources, 1, 1, first, last, NULL));
    statesrv_value v;
    ck_assert_int_eq(statesrv_get(c, &k, &v), STATESRV_INVALID_ARGUMENT);
    ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_INVALID_ARGUMENT);
    ck_assert(strstr(statesrv_local_errmsg(l), "not served") != NULL);
}
END_TEST

/* statesrv_local_get_ref answers as statesrv_local_get, without a copy, and
 * its value stays what it was (its view is held) until the next call or
 * statesrv_local_release, even when the server overwrites the entry. */
START_TEST(a_zero_copy_get_holds_its_view_until_the_next_call)
{
    statesrv_key k = {.state = "z", .key = "k", .key_len = 1};
    const void *data;
    size_t len;
    int kind;
    ck_assert_int_eq(statesrv_local_get_ref(l, &k, &data, &len, &kind), STATESRV_NOT_FOUND);
    OK(statesrv_put(c, &k, "old", 3));
    ck_assert_int_eq(statesrv_local_get_ref(l, &k, &data, &len, &kind), STATESRV_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(kind, STATESRV_KIND_RAW);
    ck_assert(memcmp(data, "old", 3) == 0);
    static char big[3000];
    for (int i = 0; i < 200; i++) { /* enough commits to reuse unpinned pages */
        memset(big, 'a' + i % 26, sizeof(big));
        OK(statesrv_put(c, &k, big, sizeof(big)));
    }
    ck_assert(memcmp(data, "old", 3) == 0);
    statesrv_local_release(l);
    statesrv_local_release(l); /* twice is harmless */
    ck_assert_int_eq(statesrv_local_get_ref(l, &k, &data, &len, &kind), STATESRV_OK);
    ck_assert_uint_eq(len, sizeof(big));
    ck_assert(memcmp(data, big, len) == 0);
    /* The next call of any kind ends the view first. */
    statesrv_value v;
    ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_OK);
    ck_assert(v.len == sizeof(big) && memcmp(v.data, big, v.len) == 0);
    statesrv_value_free(&v);
    statesrv_key bad = {.state = "no such!", .key = "k", .key_len = 1};
    ck_assert_int_eq(statesrv_local_get_ref(l, &bad, &data, &len, &kind),
                     STATESRV_INVALID_ARGUMENT);
    ck_assert_int_eq(statesrv_local_get_ref(l, &k, NULL, &len, &kind), STATESRV_ERR_USAGE);
}
END_TEST

/* In a child process (LMDB forbids a second handle on an environment in
 * the process that holds the reader): copy generation `gen` of the data
 * directory to `copy` (a new directory), or, with copy NULL, commit
 * $meta "serving" = 0 in it as the server does before it leaves a
 * generation. */
static void in_child_lmdb(const char *gen, const char *copy)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char path[256];
        snprintf(path, sizeof(path), "%s/data/%s", srv.dir, gen);
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_val k = {7, "serving"}, v = {1, "\0"};
        if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 64) ||
            mdb_env_open(env, path, MDB_NOTLS, 0640))
            _exit(2);
        if (copy) {
            MDB_env *e2; /* opened once, so that it has its lock file */
            _exit(mkdir(copy, 0750) || mdb_env_copy(env, copy) || mdb_env_create(&e2) ||
                          mdb_env_open(e2, copy, MDB_NOTLS, 0640)
                      ? 3
                      : 0);
        }
        if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "$meta", 0, &dbi) ||
            mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn))
            _exit(4);
        mdb_env_close(env);
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child LMDB step failed (%d)", st);
}

static void point_current(const char *gen)
{
    char tmp[256], link[256];
    snprintf(tmp, sizeof(tmp), "%s/data/current.test", srv.dir);
    snprintf(link, sizeof(link), "%s/data/current", srv.dir);
    unlink(tmp);
    ck_assert_int_eq(symlink(gen, tmp), 0);
    ck_assert_int_eq(rename(tmp, link), 0);
}

/* How a reader notices a switch without reading `current` on every call:
 * while the generation it reads says "serving" and nothing was committed
 * since, `current` is not read (a switch made behind the server's back goes
 * unseen); the server's mark (serving = 0, committed before it moves
 * `current`) sends it to `current` at its next read. */
START_TEST(the_servers_mark_not_a_readlink_moves_the_reader)
{
    statesrv_key k = {.state = "m", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v1", 2));
    char link[256], gen[64], copy[256];
    snprintf(link, sizeof(link), "%s/data/current", srv.dir);
    ssize_t n = readlink(link, gen, sizeof(gen) - 1);
    ck_assert_int_gt(n, 0);
    gen[n] = '\0';
    snprintf(copy, sizeof(copy), "%s/data/gen-000099", srv.dir);
    in_child_lmdb(gen, copy); /* gen-000099 holds v1, and says serving */
    OK(statesrv_put(c, &k, "v2", 2));
    local_value(&k, "v2");
    uint64_t g1 = statesrv_local_generation(l);

    point_current("gen-000099");
    local_value(&k, "v2");
    ck_assert_uint_eq(statesrv_local_generation(l), g1);

    in_child_lmdb(gen, NULL);
    local_value(&k, "v1");
    ck_assert_uint_eq(statesrv_local_generation(l), 99);
    /* A generation that says "serving" is trusted again. */
    local_value(&k, "v1");
    point_current(gen);
    local_value(&k, "v1");
    ck_assert_uint_eq(statesrv_local_generation(l), 99);
}
END_TEST

/* A generation whose mark is not "serving" (one the server left, or a
 * restore's new one before the server opens it) is followed by a readlink
 * of `current` on every call. */
START_TEST(a_generation_without_the_mark_is_checked_on_every_read)
{
    statesrv_key k = {.state = "m", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v1", 2));
    char link[256], gen[64], copy[256];
    snprintf(link, sizeof(link), "%s/data/current", srv.dir);
    ssize_t n = readlink(link, gen, sizeof(gen) - 1);
    ck_assert_int_gt(n, 0);
    gen[n] = '\0';
    snprintf(copy, sizeof(copy), "%s/data/gen-000099", srv.dir);
    in_child_lmdb(gen, copy);
    in_child_lmdb("gen-000099", NULL); /* gen-000099: v1, no longer "serving" */
    OK(statesrv_put(c, &k, "v2", 2));
    in_child_lmdb(gen, NULL);
    local_value(&k, "v2");
    point_current("gen-000099");
    local_value(&k, "v1");
    ck_assert_uint_eq(statesrv_local_generation(l), 99);
    point_current(gen);
    local_value(&k, "v2");
    point_current("gen-000099");
    local_value(&k, "v1");
    point_current(gen);
}
END_TEST

/* The server doubles its map while the reader is open: the reader follows. */
START_TEST(map_growth_under_an_open_reader)
{
    statesrv_local_close(l);
    l = NULL;
    statesrv_close(c);
    ts_cleanup(&srv);
    ts_start_with_config(&srv, "map_size = 1M\n");
    open_both();
    static char big[60000];
    memset(big, 'x', sizeof(big));
    statesrv_key k = {.state = "g", .key = "k0", .key_len = 2};
    statesrv_value v;
    ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_NOT_FOUND);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        k.key = key;
        k.key_len = strlen(key);
        big[0] = (char)('a' + i % 26);
        OK(statesrv_put(c, &k, big, sizeof(big)));
        ck_assert_int_eq(statesrv_local_get(l, &k, &v), STATESRV_OK);
        ck_assert_uint_eq(v.len, sizeof(big));
        ck_assert_int_eq(((char *)v.data)[0], 'a' + i % 26);
        statesrv_value_free(&v);
    }
    statesrv_stats *st;
    OK(statesrv_stats_get(c, &st));
    ck_assert_uint_gt(st->map_size, 1u << 20); /* it did grow */
    statesrv_stats_free(st);
}
END_TEST

/* A reader process killed inside its read transaction leaves a slot; the
 * server clears it (its sweep runs mdb_reader_check every 5 s). */
START_TEST(reader_killed_inside_a_transaction_is_cleared)
{
    statesrv_key k = {.state = "kill", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v", 1));
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char dir[128], err[256];
        statesrv_local *cl;
        data_dir(dir, sizeof(dir));
        statesrv_local_scan *s;
        statesrv_scan_options o = {.state = "kill", .mode = STATESRV_SCAN_STATE};
        if (statesrv_local_open(dir, &cl, err, sizeof(err)) || statesrv_local_scan_open(cl, &o, &s))
            _exit(1);
        (void)!write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    char ch;
    ck_assert_int_eq(read(p[0], &ch, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    close(p[1]);
    long deadline = ts_now_ms() + 15000;
    while (!ts_log_contains(&srv, "stale reader slot") && ts_now_ms() < deadline)
        usleep(100000);
    ck_assert_msg(ts_log_contains(&srv, "cleared 1 stale reader slot"),
                  "the server did not clear the dead reader's slot");
    local_value(&k, "v");
}
END_TEST

/* A child process that runs as user nobody with the one group gid opens a
 * local reader on the data directory and reads k: its status (or 100 + a
 * step that failed). Needs root to change users. */
static int read_as_nobody(gid_t gid, const statesrv_key *k)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char dir[128], err[256];
        data_dir(dir, sizeof(dir));
        if (setgroups(1, &gid) || setgid(gid) || setuid(65534))
            _exit(101);
        statesrv_local *x;
        int rc = statesrv_local_open(dir, &x, err, sizeof(err));
        if (rc)
            _exit(rc == STATESRV_ERR_CONNECT ? 102 : 103);
        statesrv_value v;
        rc = statesrv_local_get(x, k, &v);
        _exit(rc == STATESRV_OK ? 0 : 104);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void mode_of(const char *rel, struct stat *st)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data%s%s", srv.dir, *rel ? "/" : "", rel);
    ck_assert_msg(stat(path, st) == 0, "stat %s", path);
}

/* The generation directory `current` names, relative to data_dir. */
static void current_name(char *out, size_t cap)
{
    char link[256];
    snprintf(link, sizeof(link), "%s/data/current", srv.dir);
    ssize_t n = readlink(link, out, cap - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
}

/* Checks what local_read_group grants on data_dir and the current
 * generation: the group, g+rx and setgid on directories (never g+w),
 * data.mdb g+r, lock.mdb g+rw, statesrvd.lock no group access. */
static void granted_to(gid_t g)
{
    char gen[64], rel[128];
    struct stat st;
    current_name(gen, sizeof(gen));
    mode_of("", &st);
    ck_assert_uint_eq(st.st_gid, g);
    ck_assert_uint_eq(st.st_mode & (S_ISGID | S_IRWXG), S_ISGID | S_IRGRP | S_IXGRP);
    mode_of(gen, &st);
    ck_assert_uint_eq(st.st_gid, g);
    ck_assert_uint_eq(st.st_mode & (S_ISGID | S_IRWXG), S_ISGID | S_IRGRP | S_IXGRP);
    snprintf(rel, sizeof(rel), "%s/data.mdb", gen);
    mode_of(rel, &st);
    ck_assert_uint_eq(st.st_gid, g);
    ck_assert_uint_eq(st.st_mode & S_IRWXG, S_IRGRP);
    snprintf(rel, sizeof(rel), "%s/lock.mdb", gen);
    mode_of(rel, &st);
    ck_assert_uint_eq(st.st_gid, g);
    ck_assert_uint_eq(st.st_mode & S_IRWXG, S_IRGRP | S_IWGRP);
    mode_of("statesrvd.lock", &st);
    ck_assert_uint_eq(st.st_mode & S_IRWXG, 0);
    ck_assert_uint_eq(st.st_mode & S_IRWXO, 0);
}

/* local_read_group hands the store to a group: a reader in it (another
 * user) opens and reads, one outside it cannot, and a restore's new
 * generation is granted before `current` names it. Without root only the
 * modes and group of the files are checked (with the process's own gid). */
START_TEST(local_read_group_grants_a_group_read_access)
{
    statesrv_local_close(l);
    l = NULL;
    statesrv_close(c);
    ts_cleanup(&srv);
    int root = geteuid() == 0;
    gid_t g = root ? 4242 : getgid();
    ts_start_with_configf(&srv, "local_read_group = %u\n", (unsigned)g);
    open_both();
    statesrv_key k = {.state = "grp", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v1", 2));
    granted_to(g);
    if (root) {
        ck_assert_int_eq(chmod(srv.dir, 0711), 0); /* the way to data_dir */
        ck_assert_int_eq(read_as_nobody(g, &k), 0);
        ck_assert_int_eq(read_as_nobody(4243, &k), 102);
    }
    statesrv_checkpoint_info *info;
    OK(statesrv_snapshot(c, 0, 0, &info));
    char src[24];
    snprintf(src, sizeof(src), "%llu", (unsigned long long)info->id);
    statesrv_checkpoint_info_free(info);
    const char *sources[] = {src};
    OK(statesrv_restore(c, sources, 1, 0, 0, 0, NULL));
    granted_to(g);
    if (root)
        ck_assert_int_eq(read_as_nobody(g, &k), 0);
}
END_TEST

/* Unset, nothing is relaxed: directories 0750 without setgid, files
 * without group write, so even a member of the server's own group cannot
 * register as a reader (lock.mdb is not group-writable). */
START_TEST(without_local_read_group_nothing_is_relaxed)
{
    statesrv_key k = {.state = "grp", .key = "k", .key_len = 1};
    OK(statesrv_put(c, &k, "v1", 2));
    char gen[64], rel[128];
    struct stat st;
    current_name(gen, sizeof(gen));
    mode_of(gen, &st);
    ck_assert_uint_eq(st.st_mode & (S_ISGID | S_IWGRP | S_IRWXO), 0);
    gid_t g = st.st_gid;
    snprintf(rel, sizeof(rel), "%s/lock.mdb", gen);
    mode_of(rel, &st);
    ck_assert_uint_eq(st.st_mode & (S_IWGRP | S_IRWXO), 0);
    snprintf(rel, sizeof(rel), "%s/data.mdb", gen);
    mode_of(rel, &st);
    ck_assert_uint_eq(st.st_mode & (S_IWGRP | S_IRWXO), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(chmod(srv.dir, 0711), 0);
        ck_assert_int_eq(read_as_nobody(g, &k), 102);
    }
}
END_TEST

/* Makes dir/gen-000001 an LMDB environment whose $meta says format fmt. */
static void fake_store(const char *dir, uint32_t fmt)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/gen-000001", dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    char link[256];
    snprintf(link, sizeof(link), "%s/current", dir);
    ck_assert_int_eq(symlink("gen-000001", link), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ck_assert_int_eq(mdb_env_open(env, path, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "$meta", MDB_CREATE, &dbi), 0);
    unsigned char f[4] = {0, 0, 0, (unsigned char)fmt}, g[4] = {0, 0, 0, 128};
    MDB_val fk = {6, "format"}, fv = {4, f}, gk = {10, "key_groups"}, gv = {4, g};
    ck_assert_int_eq(mdb_put(txn, dbi, &fk, &fv, 0), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &gk, &gv, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(refuses_what_is_not_a_store)
{
    char dir[256], err[512];
    statesrv_local *x = (statesrv_local *)1;
    snprintf(dir, sizeof(dir), "%s/empty", srv.dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(statesrv_local_open(dir, &x, err, sizeof(err)), STATESRV_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_assert(strstr(err, "not a statesrvd data directory") != NULL);
    ck_assert_int_eq(statesrv_local_open("/nonexistent/dir", &x, err, sizeof(err)),
                     STATESRV_ERR_CONNECT);

    snprintf(dir, sizeof(dir), "%s/future", srv.dir);
    fake_store(dir, 2);
    ck_assert_int_eq(statesrv_local_open(dir, &x, err, sizeof(err)), STATESRV_ERR_CONNECT);
    ck_assert_msg(strstr(err, "format 2") != NULL, "%s", err);

    snprintf(dir, sizeof(dir), "%s/ok", srv.dir);
    fake_store(dir, 1);
    ck_assert_int_eq(statesrv_local_open(dir, &x, err, sizeof(err)), STATESRV_OK);
    ck_assert_uint_eq(statesrv_local_key_groups(x), 128);
    statesrv_local_close(x);

    /* A lock file the reader cannot write: it would read unregistered. */
    char lock[300];
    snprintf(lock, sizeof(lock), "%s/gen-000001/lock.mdb", dir);
    ck_assert_int_eq(chmod(lock, 0400), 0);
    if (geteuid() != 0) {
        ck_assert_int_eq(statesrv_local_open(dir, &x, err, sizeof(err)), STATESRV_ERR_CONNECT);
        ck_assert(strstr(err, "lock file") != NULL);
    }
}
END_TEST

/* A list whose elements expire one by one: the local reader answers its live
 * elements as the server does (read locally first: the server's read would
 * clean the expired ones up), in a get and in a scan. */
START_TEST(timed_lists_read_locally_as_the_server_answers)
{
    teardown();
    ts_start_with_config(&srv, "ttl_sweep_budget = 0\n");
    open_both();
    const char *elems[] = {"a", "b", "c", "d"};
    uint64_t ttls[] = {3600000, 1, 3600000, 1};
    statesrv_key k = {.state = "tl", .key = "k", .key_len = 1, .ns = "", .ns_len = 0};
    for (int i = 0; i < 4; i++)
        OK(statesrv_append_ttl(c, &k, elems[i], 1, ttls[i]));
    usleep(30 * 1000);
    statesrv_scan_options o = {.state = "tl", .mode = STATESRV_SCAN_STATE};
    statesrv_local_scan *ls;
    const statesrv_entry *y;
    ck_assert_int_eq(statesrv_local_scan_open(l, &o, &ls), STATESRV_OK);
    ck_assert_int_eq(statesrv_local_scan_next(ls, &y), STATESRV_OK);
    ck_assert_ptr_nonnull(y);
    ck_assert_uint_eq(y->value_len, 4);
    ck_assert(memcmp(y->value,
                     "\x01"
                     "a\x01"
                     "c",
                     4) == 0);
    statesrv_local_scan_close(ls);
    statesrv_value b = {0};
    ck_assert_int_eq(statesrv_local_get(l, &k, &b), STATESRV_OK);
    ck_assert_int_eq(b.kind, STATESRV_KIND_LIST);
    ck_assert_uint_eq(b.len, 4);
    ck_assert(memcmp(b.data,
                     "\x01"
                     "a\x01"
                     "c",
                     4) == 0);
    statesrv_value_free(&b);
    same_get(&k, "timed list");
    same_scan(&o, "timed list");
}
END_TEST

Suite *sv_suite_local(void)
{
    Suite *s = suite_create("local");
    TCase *tc = tcase_create("local");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, local_reads_match_the_socket_on_random_data);
    tcase_add_test(tc, a_write_is_visible_locally_once_acknowledged);
    tcase_add_test(tc, restore_switches_the_local_reader_too);
    tcase_add_test(tc, the_servers_mark_not_a_readlink_moves_the_reader);
    tcase_add_test(tc, a_generation_without_the_mark_is_checked_on_every_read);
    tcase_add_test(tc, a_zero_copy_get_holds_its_view_until_the_next_call);
    tcase_add_test(tc, local_read_group_grants_a_group_read_access);
    tcase_add_test(tc, without_local_read_group_nothing_is_relaxed);
    tcase_add_test(tc, map_growth_under_an_open_reader);
    tcase_add_test(tc, reader_killed_inside_a_transaction_is_cleared);
    tcase_add_test(tc, refuses_what_is_not_a_store);
    tcase_add_test(tc, timed_lists_read_locally_as_the_server_answers);
    suite_add_tcase(s, tc);
    return s;
}
