/* State TTL against a real statesrvd: Flink's semantics (update types,
 * visibility, per-write TTL, merges onto expired entries, a changed
 * setting), and TTL through restarts, checkpoints, restores and rescaling.
 *
 * No test depends on timing luck: an entry meant to live has a TTL of an
 * hour; one meant to expire has 1 ms and is read after a sleep, so a slow
 * machine only makes it more expired. Bounds on what is left of a TTL are
 * inequalities that hold however long a step takes. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOUR_MS 3600000ull

static struct ts srv, other;
static statesrv *c;

static statesrv *connect_to(const struct ts *t)
{
    statesrv *x = NULL;
    statesrv_options o = {0};
    o.job_timeout_ms = 60000;
    ck_assert_int_eq(statesrv_connect(t->tcp_addr, &o, &x), STATESRV_OK);
    return x;
}

static void setup(void)
{
    ts_start(&srv, NULL);
    c = connect_to(&srv);
}

static void teardown(void)
{
    statesrv_close(c);
    c = NULL;
    ts_cleanup(&srv);
    ts_cleanup(&other);
    memset(&other, 0, sizeof(other));
}

/* For tests that read an expired entry back (RETURN_EXPIRED_IF_NOT_CLEANED_UP):
 * a server without the sweep, which could clean it up first on a slow
 * machine (it did under valgrind). */
static void restart_without_sweep(void)
{
    statesrv_close(c);
    ts_cleanup(&srv);
    memset(&srv, 0, sizeof(srv));
    ts_start_with_config(&srv, "ttl_sweep_budget = 0\n");
    c = connect_to(&srv);
}

static statesrv_key K(const char *state, const char *key)
{
    statesrv_key k = {.state = state, .key = key, .key_len = strlen(key), .ns = "", .ns_len = 0};
    return k;
}

static void set_ttl(const char *state, uint64_t ms, int update, int visibility)
{
    statesrv_ttl t = {ms, update, visibility};
    ck_assert_int_eq(statesrv_set_state_ttl(c, state, &t), STATESRV_OK);
}

/* Status of a get, and what is left of the TTL. */
static int get_left(statesrv *x, const char *state, const char *key, int64_t *left)
{
    statesrv_key k = K(state, key);
    statesrv_value v = {0};
    int rc = statesrv_get_with_ttl(x, &k, &v, left);
    statesrv_value_free(&v);
    return rc;
}

START_TEST(writes_set_an_expiry_and_expired_entries_are_not_returned)
{
    statesrv_ttl t;
    ck_assert_int_eq(statesrv_get_state_ttl(c, "s", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, 0);
    set_ttl("s", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    ck_assert_int_eq(statesrv_get_state_ttl(c, "s", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, HOUR_MS);

    statesrv_key live = K("s", "live"), brief = K("s", "brief");
    ck_assert_int_eq(statesrv_put(c, &live, "v", 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_put_ttl(c, &brief, "v", 1, 1), STATESRV_OK); /* per write */
    statesrv_key plain = K("nottl", "k"), cnt = K("n", "c"), lst = K("l", "e");
    ck_assert_int_eq(statesrv_put(c, &plain, "v", 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_add_ttl(c, &cnt, 5, 1, NULL), STATESRV_OK);
    ck_assert_int_eq(statesrv_append_ttl(c, &lst, "a", 1, 1), STATESRV_OK);
    usleep(30 * 1000);

    int64_t left = 0;
    ck_assert_int_eq(get_left(c, "s", "live", &left), STATESRV_OK);
    ck_assert_int_gt(left, 0);
    ck_assert_int_le(left, (int64_t)HOUR_MS);
    ck_assert_int_eq(get_left(c, "nottl", "k", &left), STATESRV_OK);
    ck_assert_int_eq(left, -1); /* no expiry */
    /* Expired: not by get, multi_get or scan. */
    ck_assert_int_eq(get_left(c, "s", "brief", &left), STATESRV_NOT_FOUND);
    statesrv_key both[2] = {live, brief};
    statesrv_value out[2];
    memset(out, 0, sizeof(out));
    ck_assert_int_eq(statesrv_multi_get(c, both, 2, out), STATESRV_OK);
    ck_assert_int_eq(out[0].found, 1);
    ck_assert_int_eq(out[1].found, 0);
    statesrv_values_free(out, 2);
    /* A merge onto an expired entry starts from empty. */
    int64_t result = 0;
    ck_assert_int_eq(statesrv_add(c, &cnt, 2, &result), STATESRV_OK);
    ck_assert_int_eq(result, 2);
    ck_assert_int_eq(statesrv_append(c, &lst, "b", 1), STATESRV_OK);
    statesrv_value v = {0};
    ck_assert_int_eq(statesrv_get(c, &lst, &v), STATESRV_OK);
    ck_assert_uint_eq(v.len, 2); /* one element: varint(1) 'b' */
    statesrv_value_free(&v);
    /* The merges had no TTL of their own and the states none: no expiry. */
    ck_assert_int_eq(get_left(c, "n", "c", &left), STATESRV_OK);
    ck_assert_int_eq(left, -1);
    /* A scan shows only the live entry; the states list the TTL. */
    statesrv_state_info *st;
    size_t n;
    ck_assert_int_eq(statesrv_list_states(c, &st, &n), STATESRV_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(st[i].name, "s") == 0) {
            seen = 1;
            ck_assert_uint_eq(st[i].ttl.ttl_ms, HOUR_MS);
            ck_assert_uint_eq(st[i].entries, 1); /* the read deleted the expired one */
        }
    ck_assert(seen);
    statesrv_free(st);
    /* Removing the TTL: new writes have none; written ones keep theirs. */
    set_ttl("s", 0, 0, 0);
    ck_assert_int_eq(statesrv_get_state_ttl(c, "s", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, 0);
    statesrv_key later = K("s", "later");
    ck_assert_int_eq(statesrv_put(c, &later, "v", 1), STATESRV_OK);
    ck_assert_int_eq(get_left(c, "s", "later", &left), STATESRV_OK);
    ck_assert_int_eq(left, -1);
    ck_assert_int_eq(get_left(c, "s", "live", &left), STATESRV_OK);
    ck_assert_int_gt(left, 0);
    /* Bad settings are refused. */
    statesrv_ttl bad = {HOUR_MS, 7, 0};
    ck_assert_int_eq(statesrv_set_state_ttl(c, "s", &bad), STATESRV_ERR_USAGE);
    bad.update = 0;
    bad.ttl_ms = 200ull * 365 * 86400 * 1000;
    ck_assert_int_eq(statesrv_set_state_ttl(c, "s", &bad), STATESRV_INVALID_ARGUMENT);
}
END_TEST

START_TEST(update_type_and_visibility)
{
    restart_without_sweep();
    /* ON_READ_AND_WRITE: a read sets the expiry anew. */
    set_ttl("rw", HOUR_MS, STATESRV_TTL_ON_READ_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    set_ttl("cw", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    statesrv_key a = K("rw", "k"), b = K("cw", "k");
    ck_assert_int_eq(statesrv_put(c, &a, "v", 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_put(c, &b, "v", 1), STATESRV_OK);
    long t0 = ts_now_ms();
    usleep(300 * 1000);
    int64_t la, lb;
    ck_assert_int_eq(get_left(c, "rw", "k", &la), STATESRV_OK);
    ck_assert_int_eq(get_left(c, "cw", "k", &lb), STATESRV_OK);
    long waited = ts_now_ms() - t0;
    /* Refreshed by the read itself: nearly an hour left (the reply comes
     * within the request's own time). */
    ck_assert_int_ge(la, (int64_t)HOUR_MS - 250);
    /* Not refreshed: at least the time waited is gone. */
    ck_assert_int_le(lb, (int64_t)HOUR_MS - (waited > 300 ? 300 : waited) + 5);
    ck_assert_int_lt(lb, la);

    /* RETURN_EXPIRED_IF_NOT_CLEANED_UP: an expired entry still comes back,
     * with nothing left of its TTL. */
    set_ttl("ret", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE,
            STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
    statesrv_key r = K("ret", "k");
    ck_assert_int_eq(statesrv_put_ttl(c, &r, "old", 3, 1), STATESRV_OK);
    usleep(30 * 1000);
    int64_t lr = 99;
    ck_assert_int_eq(get_left(c, "ret", "k", &lr), STATESRV_OK);
    ck_assert_int_eq(lr, 0);
    /* Switched to NEVER_RETURN_EXPIRED: the same entry is gone at once. */
    set_ttl("ret", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    ck_assert_int_eq(get_left(c, "ret", "k", &lr), STATESRV_NOT_FOUND);
}
END_TEST

/* Offline verify of a checkpoint of srv: 0 when it is whole. */
static int verify(uint64_t id)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/checkpoints/chk-%llu >/dev/null",
             statectl_path(), srv.dir, (unsigned long long)id);
    return run_cmd(cmd, NULL, 0);
}

static uint64_t snapshot(statesrv *x, int full)
{
    statesrv_checkpoint_info *m;
    int rc = full ? statesrv_snapshot_full(x, 0, 0, &m) : statesrv_snapshot(x, 0, 0, &m);
    ck_assert_msg(rc == STATESRV_OK, "snapshot: %s", statesrv_errmsg(x));
    uint64_t id = m->id;
    statesrv_checkpoint_info_free(m);
    return id;
}

/* Checkpoints leave expired entries out (an incremental one as tombstones),
 * every checkpoint of a chain verifies, the entries left out leave the
 * store, and a restore drops what expired since its checkpoint. The TTL
 * setting goes with the checkpoint, through a ranged restore too. */
START_TEST(checkpoints_and_restores_leave_expired_entries_out)
{
    set_ttl("s", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = K("s", key);
        ck_assert_int_eq(i % 4 ? statesrv_put(c, &k, "v", 1) : statesrv_put_ttl(c, &k, "v", 1, 1),
                         STATESRV_OK);
    }
    usleep(30 * 1000);
    uint64_t id1 = snapshot(c, 1);
    ck_assert_int_eq(verify(id1), 0);
    /* The ten expired entries left the checkpoint and then the store. */
    statesrv_state_info *st;
    size_t n;
    ck_assert_int_eq(statesrv_list_states(c, &st, &n), STATESRV_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(st[0].entries, 30);
    statesrv_free(st);
    /* Since: some rewritten with 1 ms, some unexpired ones expire. */
    for (int i = 1; i < 40; i += 4) {
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = K("s", key);
        ck_assert_int_eq(statesrv_put_ttl(c, &k, "w", 1, 1), STATESRV_OK);
    }
    statesrv_key extra = K("s", "extra");
    ck_assert_int_eq(statesrv_put_ttl(c, &extra, "x", 1, 1), STATESRV_OK);
    usleep(30 * 1000);
    uint64_t id2 = snapshot(c, 0);
    ck_assert_int_eq(verify(id2), 0);
    ck_assert_int_eq(verify(id1), 0);
    uint64_t id3 = snapshot(c, 0); /* nothing changed but the clean-up */
    ck_assert_int_eq(verify(id3), 0);

    char conf[512];
    snprintf(conf, sizeof(conf), "restore_roots = %s/checkpoints\n", srv.dir);
    ts_start_with_config(&other, conf);
    statesrv *o = connect_to(&other);
    for (uint64_t id = id1; id <= id3; id++) {
        char src[300];
        snprintf(src, sizeof(src), "%s/checkpoints/chk-%llu", srv.dir, (unsigned long long)id);
        const char *srcs[] = {src};
        ck_assert_int_eq(statesrv_restore(o, srcs, 1, 0, 0, 0, NULL), STATESRV_OK);
        ck_assert_int_eq(statesrv_list_states(o, &st, &n), STATESRV_OK);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(st[0].entries, id == id1 ? 30 : 20);
        ck_assert_uint_eq(st[0].ttl.ttl_ms, HOUR_MS); /* the setting came along */
        statesrv_free(st);
        int64_t left;
        ck_assert_int_eq(get_left(o, "s", "k2", &left), STATESRV_OK);
        ck_assert_int_gt(left, 0);
        ck_assert_int_eq(get_left(o, "s", "k1", &left),
                         id == id1 ? STATESRV_OK : STATESRV_NOT_FOUND);
        /* A ranged restore keeps the TTL too. */
        ck_assert_int_eq(statesrv_restore(o, srcs, 1, 1, 0, 63, NULL), STATESRV_OK);
        statesrv_ttl t;
        ck_assert_int_eq(statesrv_get_state_ttl(o, "s", &t), STATESRV_OK);
        ck_assert_uint_eq(t.ttl_ms, HOUR_MS);
    }

    /* Expired since the checkpoint: dropped by the restore. 2 s is ample
     * for a snapshot even under valgrind; were it not, the entry would be
     * left out of the checkpoint instead, and still be absent. */
    statesrv_key soon = K("s", "soon");
    ck_assert_int_eq(statesrv_put_ttl(c, &soon, "v", 1, 2000), STATESRV_OK);
    long t0 = ts_now_ms();
    uint64_t id4 = snapshot(c, 1);
    while (ts_now_ms() - t0 < 2100)
        usleep(20 * 1000);
    char src[300];
    snprintf(src, sizeof(src), "%s/checkpoints/chk-%llu", srv.dir, (unsigned long long)id4);
    const char *srcs[] = {src};
    ck_assert_int_eq(statesrv_restore(o, srcs, 1, 0, 0, 0, NULL), STATESRV_OK);
    int64_t left;
    ck_assert_int_eq(get_left(o, "s", "soon", &left), STATESRV_NOT_FOUND);
    statesrv_close(o);
}
END_TEST

/* The elements of a list value, joined by ','; "" when empty. */
static void join(const void *data, size_t len, char *out, size_t cap)
{
    size_t off = 0, n, w = 0;
    const void *e;
    out[0] = '\0';
    while (statesrv_list_next(data, len, &off, &e, &n) == 1) {
        ck_assert(w + n + 2 < cap);
        if (w)
            out[w++] = ',';
        memcpy(out + w, e, n);
        w += n;
        out[w] = '\0';
    }
}

/* Status of a get of a list, its elements in out. */
static int get_list(statesrv *x, const char *state, const char *key, char *out, size_t cap)
{
    statesrv_key k = K(state, key);
    statesrv_value v = {0};
    int rc = statesrv_get(x, &k, &v);
    out[0] = '\0';
    if (rc == STATESRV_OK) {
        ck_assert_int_eq(v.kind, STATESRV_KIND_LIST);
        join(v.data, v.len, out, cap);
    }
    statesrv_value_free(&v);
    return rc;
}

static void append(const char *state, const char *key, const char *elem, uint64_t ttl_ms)
{
    statesrv_key k = K(state, key);
    ck_assert_int_eq(ttl_ms ? statesrv_append_ttl(c, &k, elem, strlen(elem), ttl_ms)
                            : statesrv_append(c, &k, elem, strlen(elem)),
                     STATESRV_OK);
}

static uint64_t stat_expired_read(void)
{
    statesrv_stats *s;
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    uint64_t n = s->ttl_expired_read;
    statesrv_stats_free(s);
    return n;
}

/* Flink's ListState TTL: each appended element expires on its own; get,
 * multi_get and scan return the live ones (all of them under
 * RETURN_EXPIRED_IF_NOT_CLEANED_UP); a read cleans the expired ones up;
 * an entry whose elements all expired is gone, and an append onto it
 * starts a new list. */
START_TEST(list_elements_expire_one_by_one)
{
    restart_without_sweep();
    char got[256];
    set_ttl("l", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    append("l", "k", "a", 1);
    append("l", "k", "b", 0); /* the state's hour */
    append("l", "k", "c", 1);
    append("l", "k", "d", 0);
    /* No TTL on the state: only the element written with one expires. */
    append("p", "k", "p", 0);
    append("p", "k", "q", 1);
    append("p", "k", "r", 0);
    set_ttl("ret", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE,
            STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
    append("ret", "k", "old", 1);
    append("ret", "k", "new", 0);
    append("l", "k1", "x1", 0);
    append("l", "k1", "z1", 0);
    append("l", "k1", "y1", 1); /* last: no append after it cleans it up */
    usleep(30 * 1000);

    /* scan first: it cleans nothing up. Several timed lists in one page:
     * each keeps its own elements. */
    statesrv_scan_options so = {.state = "l", .mode = STATESRV_SCAN_STATE};
    statesrv_scan *sc;
    ck_assert_int_eq(statesrv_scan_open(c, &so, &sc), STATESRV_OK);
    const statesrv_entry *e;
    for (int i = 0; i < 2; i++) { /* in stored order: key group first */
        ck_assert_int_eq(statesrv_scan_next(sc, &e), STATESRV_OK);
        ck_assert_ptr_nonnull(e);
        join(e->value, e->value_len, got, sizeof(got));
        ck_assert_str_eq(got, e->key_len == 1 ? "b,d" : "x1,z1");
    }
    ck_assert_int_eq(statesrv_scan_next(sc, &e), STATESRV_OK);
    ck_assert_ptr_null(e);
    statesrv_scan_close(sc);

    statesrv_key mk[2] = {K("l", "k"), K("p", "k")};
    statesrv_value mv[2];
    memset(mv, 0, sizeof(mv));
    ck_assert_int_eq(statesrv_multi_get(c, mk, 2, mv), STATESRV_OK);
    join(mv[0].data, mv[0].len, got, sizeof(got));
    ck_assert_str_eq(got, "b,d");
    join(mv[1].data, mv[1].len, got, sizeof(got));
    ck_assert_str_eq(got, "p,r");
    statesrv_values_free(mv, 2);
    /* a, c and q left their lists: at the read, or at an append after
     * them (a merge reads the list too). */
    uint64_t cleaned = stat_expired_read();
    ck_assert_uint_eq(cleaned, 3);

    ck_assert_int_eq(get_list(c, "l", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "b,d");
    ck_assert_uint_eq(stat_expired_read(), cleaned); /* nothing left to clean */
    int64_t left;
    ck_assert_int_eq(get_left(c, "l", "k", &left), STATESRV_OK);
    ck_assert_int_gt(left, (int64_t)HOUR_MS - 60000); /* the latest element's */
    ck_assert_int_eq(get_left(c, "p", "k", &left), STATESRV_OK);
    ck_assert_int_eq(left, -1); /* p and r never expire */
    /* Every element expires, each at its own time: the entry is gone. */
    append("p", "gone", "x", 1);
    append("p", "gone", "y", 2);
    usleep(30 * 1000);
    ck_assert_int_eq(get_list(c, "p", "gone", got, sizeof(got)), STATESRV_NOT_FOUND);
    append("p", "gone", "z", 0); /* starts from empty */
    ck_assert_int_eq(get_list(c, "p", "gone", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "z");
    ck_assert_int_eq(get_list(c, "ret", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "old,new");

    /* Appends onto a list with expired elements leave them out. */
    cleaned = stat_expired_read();
    append("l", "k2", "e1", 1);
    append("l", "k2", "e2", 0);
    usleep(30 * 1000);
    append("l", "k2", "e3", 0);
    ck_assert_uint_eq(stat_expired_read(), cleaned + 1); /* e1, by an append */
    ck_assert_int_eq(get_list(c, "l", "k2", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "e2,e3");
    /* A put of the whole list gives every element the same expiry. */
    statesrv_key pk = K("l", "k2");
    ck_assert_int_eq(statesrv_put_kind(c, &pk, STATESRV_KIND_LIST, "\x01z", 2), STATESRV_OK);
    ck_assert_int_eq(get_list(c, "l", "k2", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "z");
}
END_TEST

/* Under ON_READ_AND_WRITE a read gives every live element of a list the
 * state's TTL anew. 2 s is ample between an append and the read after it
 * even under valgrind; the wait after is longer than that. */
START_TEST(a_read_refreshes_every_element_of_a_list)
{
    restart_without_sweep();
    char got[64];
    set_ttl("rw", HOUR_MS, STATESRV_TTL_ON_READ_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    append("rw", "k", "a", 2000);
    append("rw", "k", "b", 0);
    ck_assert_int_eq(get_list(c, "rw", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "a,b");
    long t0 = ts_now_ms();
    while (ts_now_ms() - t0 < 2100)
        usleep(20 * 1000);
    ck_assert_int_eq(get_list(c, "rw", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "a,b");
    int64_t left;
    ck_assert_int_eq(get_left(c, "rw", "k", &left), STATESRV_OK);
    ck_assert_int_gt(left, (int64_t)HOUR_MS - 60000);
}
END_TEST

/* Checkpoints leave a list's expired elements out and keep each live
 * element's expiry; a restore drops the elements expired since. */
START_TEST(list_elements_through_checkpoints_restores)
{
    char got[256];
    set_ttl("l", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    append("l", "k", "e1", 1);
    append("l", "k", "e2", 0);
    append("l", "k", "soon", 2000);
    append("l", "k", "e4", 0);
    usleep(30 * 1000);
    long t0 = ts_now_ms();
    uint64_t id = snapshot(c, 1);
    ck_assert_int_eq(verify(id), 0);
    /* statectl's offline dump shows the timed list as a list. */
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s checkpoint dump %s/checkpoints/chk-%llu --json", statectl_path(),
             srv.dir, (unsigned long long)id);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "\"value\":[\"e2\",\"soon\",\"e4\"]") ||
                      strstr(out, "\"value\":[\"e2\",\"e4\"]"),
                  "%s", out);
    char conf[512];
    snprintf(conf, sizeof(conf), "restore_roots = %s/checkpoints\nttl_sweep_budget = 0\n", srv.dir);
    ts_start_with_config(&other, conf);
    statesrv *o = connect_to(&other);
    char src[300];
    snprintf(src, sizeof(src), "%s/checkpoints/chk-%llu", srv.dir, (unsigned long long)id);
    const char *srcs[] = {src};
    ck_assert_int_eq(statesrv_restore(o, srcs, 1, 0, 0, 0, NULL), STATESRV_OK);
    /* Were the restore later than 2 s, "soon" would be absent too: then
     * the check below is all this run can show. */
    int early = ts_now_ms() - t0 < 1900;
    ck_assert_int_eq(get_list(o, "l", "k", got, sizeof(got)), STATESRV_OK);
    if (early)
        ck_assert_str_eq(got, "e2,soon,e4");
    while (ts_now_ms() - t0 < 2100)
        usleep(20 * 1000);
    ck_assert_int_eq(get_list(o, "l", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "e2,e4");
    /* And a restore after it expired drops it at once. */
    ck_assert_int_eq(statesrv_restore(o, srcs, 1, 0, 0, 0, NULL), STATESRV_OK);
    statesrv_stats *st;
    ck_assert_int_eq(statesrv_stats_get(o, &st), STATESRV_OK);
    uint64_t before = st->ttl_expired_read;
    statesrv_stats_free(st);
    ck_assert_int_eq(get_list(o, "l", "k", got, sizeof(got)), STATESRV_OK);
    ck_assert_str_eq(got, "e2,e4");
    ck_assert_int_eq(statesrv_stats_get(o, &st), STATESRV_OK);
    ck_assert_uint_eq(st->ttl_expired_read, before); /* the restore had dropped it */
    statesrv_stats_free(st);
    statesrv_close(o);
}
END_TEST

/* The sweep trims lists nobody reads, and keeps their entries. */
START_TEST(the_sweep_trims_lists_nobody_reads)
{
    char got[64];
    statesrv_stats *st;
    long t0;
    enum { N = 200 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        append("sw", key, "new", HOUR_MS); /* first: no append can clean up "old" */
        append("sw", key, "old", 1);
    }
    t0 = ts_now_ms();
    uint64_t swept = 0;
    while (swept < N && ts_now_ms() - t0 < 30000) {
        usleep(50 * 1000);
        ck_assert_int_eq(statesrv_stats_get(c, &st), STATESRV_OK);
        swept = st->ttl_expired_sweep;
        statesrv_stats_free(st);
    }
    ck_assert_uint_eq(swept, N);
    uint64_t read0 = stat_expired_read();
    for (int i = 0; i < N; i += 37) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert_int_eq(get_list(c, "sw", key, got, sizeof(got)), STATESRV_OK);
        ck_assert_str_eq(got, "new");
    }
    ck_assert_uint_eq(stat_expired_read(), read0); /* the sweep had trimmed them */
    statesrv_state_info *si;
    size_t n;
    ck_assert_int_eq(statesrv_list_states(c, &si, &n), STATESRV_OK);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(si[i].name, "sw"))
            ck_assert_uint_eq(si[i].entries, N);
    statesrv_free(si);
}
END_TEST

/* The setting and the entries' expiry survive a restart. */
START_TEST(ttl_survives_a_restart)
{
    restart_without_sweep();
    set_ttl("s", HOUR_MS, STATESRV_TTL_ON_READ_AND_WRITE,
            STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
    statesrv_key k = K("s", "k"), gone = K("s", "gone");
    ck_assert_int_eq(statesrv_put(c, &k, "v", 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_put_ttl(c, &gone, "v", 1, 1), STATESRV_OK);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&srv), 0);
    ts_restart(&srv, ts_config_args(&srv));
    c = connect_to(&srv);
    statesrv_ttl t;
    ck_assert_int_eq(statesrv_get_state_ttl(c, "s", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, HOUR_MS);
    ck_assert_int_eq(t.update, STATESRV_TTL_ON_READ_AND_WRITE);
    ck_assert_int_eq(t.visibility, STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
    int64_t left;
    ck_assert_int_eq(get_left(c, "s", "k", &left), STATESRV_OK);
    ck_assert_int_gt(left, 0);
    ck_assert_int_eq(get_left(c, "s", "gone", &left), STATESRV_OK); /* visible, expired */
    ck_assert_int_eq(left, 0);
}
END_TEST

/* The sweep deletes expired entries nobody reads, within its budget, and
 * the metrics say so; without expiring entries it sleeps. Bounded wait: up
 * to 30 s for 5000 entries a 1 ms TTL made expired long before. */
START_TEST(the_sweep_deletes_what_nobody_reads)
{
    enum { N = 5000 };
    statesrv_batch *b = statesrv_batch_new();
    ck_assert_ptr_nonnull(b);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = K(i % 2 ? "a" : "b", key);
        ck_assert_int_eq(statesrv_batch_put(b, &k, "v", 1), STATESRV_OK);
    }
    ck_assert_int_eq(statesrv_batch_commit(c, b), STATESRV_OK);
    statesrv_batch_free(b);
    statesrv_key keep = K("a", "keep");
    ck_assert_int_eq(statesrv_put(c, &keep, "v", 1), STATESRV_OK);
    /* Rewritten with a TTL of 1 ms: expired at once, never read again. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = K(i % 2 ? "a" : "b", key);
        ck_assert_int_eq(statesrv_put_ttl(c, &k, "v", 1, 1), STATESRV_OK);
    }
    long t0 = ts_now_ms();
    uint64_t left = N;
    while (left && ts_now_ms() - t0 < 30000) {
        usleep(50 * 1000);
        statesrv_state_info *st;
        size_t n;
        ck_assert_int_eq(statesrv_list_states(c, &st, &n), STATESRV_OK);
        left = 0;
        for (size_t i = 0; i < n; i++)
            left += st[i].entries;
        statesrv_free(st);
        left -= 1; /* keep */
    }
    ck_assert_msg(left == 0, "%llu expired entries still stored after 30 s",
                  (unsigned long long)left);
    statesrv_stats *s;
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    ck_assert_uint_eq(s->ttl_expired_sweep, N);
    ck_assert_uint_ge(s->ttl_sweep_visited, N);
    ck_assert(s->ttl_sweep_seconds > 0);
    statesrv_stats_free(s);
    ck_assert_int_eq(get_left(c, "a", "keep", NULL), STATESRV_OK);
}
END_TEST

/* A multi_get whose later items write (a refresh under ON_READ_AND_WRITE,
 * the clean-up of an expired one) returns every earlier item whole: each
 * is copied as it is read (the bytes of the first item sat on the page the
 * later ones changed). */
START_TEST(multi_get_items_survive_the_writes_of_later_items)
{
    set_ttl("rw", HOUR_MS, STATESRV_TTL_ON_READ_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    statesrv_key keys[4] = {K("rw", "k1"), K("rw", "k2"), K("rw", "k3"), K("rw", "k4")};
    ck_assert_int_eq(statesrv_put_ttl(c, &keys[1], "gone", 4, 1), STATESRV_OK);
    ck_assert_int_eq(statesrv_put(c, &keys[0], big, strlen(big)), STATESRV_OK);
    ck_assert_int_eq(statesrv_put(c, &keys[2], "three", 5), STATESRV_OK);
    ck_assert_int_eq(statesrv_put_ttl(c, &keys[3], "gone", 4, 1), STATESRV_OK);
    usleep(30 * 1000);
    statesrv_value out[4];
    memset(out, 0, sizeof(out));
    ck_assert_int_eq(statesrv_multi_get(c, keys, 4, out), STATESRV_OK);
    ck_assert_int_eq(out[0].found, 1);
    ck_assert_uint_eq(out[0].len, strlen(big));
    ck_assert(memcmp(out[0].data, big, out[0].len) == 0);
    ck_assert_int_eq(out[1].found, 0);
    ck_assert_int_eq(out[2].found, 1);
    ck_assert_uint_eq(out[2].len, 5);
    ck_assert(memcmp(out[2].data, "three", 5) == 0);
    ck_assert_int_eq(out[3].found, 0);
    statesrv_values_free(out, 4);
}
END_TEST

/* A TTL set before the state's first write (as Flink registers states) is
 * carried by a checkpoint into a restore; dropping the state drops it. */
START_TEST(a_ttl_set_before_any_write_survives_a_restore)
{
    set_ttl("fresh", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    uint64_t id = snapshot(c, 1);
    char conf[512], src[300];
    snprintf(conf, sizeof(conf), "restore_roots = %s/checkpoints\n", srv.dir);
    ts_start_with_config(&other, conf);
    statesrv *o = connect_to(&other);
    snprintf(src, sizeof(src), "%s/checkpoints/chk-%llu", srv.dir, (unsigned long long)id);
    const char *srcs[] = {src};
    ck_assert_int_eq(statesrv_restore(o, srcs, 1, 0, 0, 0, NULL), STATESRV_OK);
    statesrv_ttl t;
    ck_assert_int_eq(statesrv_get_state_ttl(o, "fresh", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, HOUR_MS);
    statesrv_key k = K("fresh", "k");
    ck_assert_int_eq(statesrv_put(o, &k, "v", 1), STATESRV_OK);
    int64_t left;
    ck_assert_int_eq(get_left(o, "fresh", "k", &left), STATESRV_OK);
    ck_assert_int_gt(left, 0);
    uint64_t deleted;
    ck_assert_int_eq(statesrv_drop_state(o, "fresh", &deleted), STATESRV_OK);
    ck_assert_int_eq(statesrv_get_state_ttl(o, "fresh", &t), STATESRV_OK);
    ck_assert_uint_eq(t.ttl_ms, 0);
    statesrv_close(o);
}
END_TEST

/* The sweep asleep (a round met no expiry) wakes for a write that sets one. */
START_TEST(the_sweep_wakes_for_a_new_expiry)
{
    statesrv_key plain = K("p", "k"), brief = K("p", "brief");
    ck_assert_int_eq(statesrv_put(c, &plain, "v", 1), STATESRV_OK);
    usleep(500 * 1000); /* rounds over one entry: asleep long before this */
    ck_assert_int_eq(statesrv_put_ttl(c, &brief, "v", 1, 1), STATESRV_OK);
    long t0 = ts_now_ms();
    uint64_t swept = 0;
    while (!swept && ts_now_ms() - t0 < 30000) {
        usleep(50 * 1000);
        statesrv_stats *s;
        ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
        swept = s->ttl_expired_sweep;
        statesrv_stats_free(s);
    }
    ck_assert_uint_eq(swept, 1);
}
END_TEST

/* Entries that live an hour are walked at most once, then the sweep sleeps
 * until the earliest of them is due (it does not walk them again and
 * again); a write with an earlier expiry wakes it for that one. */
START_TEST(the_sweep_sleeps_until_the_earliest_expiry)
{
    enum { N = 2000 };
    set_ttl("h", HOUR_MS, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    statesrv_batch *b = statesrv_batch_new();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = K("h", key);
        ck_assert_int_eq(statesrv_batch_put(b, &k, "v", 1), STATESRV_OK);
    }
    ck_assert_int_eq(statesrv_batch_commit(c, b), STATESRV_OK);
    statesrv_batch_free(b);
    /* At most one round over them (none when the sweep learnt of the hour
     * from the writes themselves), then quiet. */
    statesrv_stats *s;
    usleep(1000 * 1000);
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    uint64_t visited = s->ttl_sweep_visited;
    statesrv_stats_free(s);
    ck_assert_uint_le(visited, N);
    usleep(1000 * 1000);
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    ck_assert_uint_eq(s->ttl_sweep_visited, visited); /* asleep */
    statesrv_stats_free(s);
    long t0;
    statesrv_key brief = K("h", "brief");
    ck_assert_int_eq(statesrv_put_ttl(c, &brief, "v", 1, 1), STATESRV_OK);
    t0 = ts_now_ms();
    uint64_t swept = 0;
    while (!swept && ts_now_ms() - t0 < 30000) {
        usleep(50 * 1000);
        ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
        swept = s->ttl_expired_sweep;
        statesrv_stats_free(s);
    }
    ck_assert_uint_eq(swept, 1);
}
END_TEST

/* A read that refreshes an expiry (ON_READ_AND_WRITE) under a shortened
 * TTL wakes a sleeping sweep for it. */
START_TEST(a_refresh_to_a_shorter_ttl_wakes_the_sweep)
{
    set_ttl("r", HOUR_MS, STATESRV_TTL_ON_READ_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    statesrv_key k = K("r", "k");
    ck_assert_int_eq(statesrv_put(c, &k, "v", 1), STATESRV_OK);
    usleep(1000 * 1000); /* the sweep knows of nothing due before an hour */
    set_ttl("r", 1, STATESRV_TTL_ON_READ_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED);
    ck_assert_int_eq(get_left(c, "r", "k", NULL), STATESRV_OK); /* now due in 1 ms */
    long t0 = ts_now_ms();
    uint64_t swept = 0;
    while (!swept && ts_now_ms() - t0 < 30000) {
        usleep(50 * 1000);
        statesrv_stats *s;
        ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
        swept = s->ttl_expired_sweep;
        statesrv_stats_free(s);
    }
    ck_assert_uint_eq(swept, 1);
}
END_TEST

Suite *sv_suite_ttl(void)
{
    Suite *s = suite_create("ttl");
    TCase *tc = tcase_create("ttl");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, writes_set_an_expiry_and_expired_entries_are_not_returned);
    tcase_add_test(tc, update_type_and_visibility);
    tcase_add_test(tc, checkpoints_and_restores_leave_expired_entries_out);
    tcase_add_test(tc, ttl_survives_a_restart);
    tcase_add_test(tc, the_sweep_deletes_what_nobody_reads);
    tcase_add_test(tc, multi_get_items_survive_the_writes_of_later_items);
    tcase_add_test(tc, a_ttl_set_before_any_write_survives_a_restore);
    tcase_add_test(tc, the_sweep_wakes_for_a_new_expiry);
    tcase_add_test(tc, the_sweep_sleeps_until_the_earliest_expiry);
    tcase_add_test(tc, a_refresh_to_a_shorter_ttl_wakes_the_sweep);
    tcase_add_test(tc, list_elements_expire_one_by_one);
    tcase_add_test(tc, a_read_refreshes_every_element_of_a_list);
    tcase_add_test(tc, list_elements_through_checkpoints_restores);
    tcase_add_test(tc, the_sweep_trims_lists_nobody_reads);
    suite_add_tcase(s, tc);
    return s;
}
