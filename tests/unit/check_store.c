/* The LMDB store on real files in a temporary directory. */
#include "store.h"
#include "suites.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_value.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static struct sv_store_options opts(void)
{
    struct sv_store_options o = {
        .dir = dir,
        .map_size = 8u << 20,
        .map_size_max = 1u << 30,
        .max_states = 8,
        .max_value_size = 1u << 20,
        .key_groups = 128,
    };
    return o;
}

static struct sv_store *open_store(const struct sv_store_options *o)
{
    struct sv_store *s;
    char err[512];
    int rc = sv_store_open(o, &s, err, sizeof(err));
    ck_assert_msg(rc == 0, "open: %s", err);
    return s;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/svstore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static size_t key(uint8_t *out, const char *k, const char *ns)
{
    return sv_skey_encode(out, sv_key_group_of(k, strlen(k), 128), k, strlen(k), ns, strlen(ns));
}

static void put(struct sv_store *s, const char *state, const char *k, const char *ns, const char *v)
{
    uint8_t sk[600];
    size_t n = key(sk, k, ns);
    ck_assert_int_eq(
        sv_store_put(s, state, strlen(state), sk, n, SV_KIND_RAW, (const uint8_t *)v, strlen(v)),
        0);
}

/* Returns 1 and checks the value if present, 0 if not found. */
static int get_is(struct sv_store *s, const char *state, const char *k, const char *ns,
                  const char *want)
{
    uint8_t sk[600];
    size_t n = key(sk, k, ns);
    struct sv_value v;
    int rc = sv_store_get(s, state, strlen(state), sk, n, &v);
    if (rc == SV_ENOTFOUND)
        return 0;
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(v.len, strlen(want));
    ck_assert(memcmp(v.data, want, v.len) == 0);
    return 1;
}

START_TEST(put_get_delete_survive_reopen)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "users", "alice", "", "1");
    put(s, "users", "alice", "w1", "2");
    put(s, "users", "bob", "", "3");
    ck_assert(get_is(s, "users", "alice", "w1", "2")); /* reads see own writes */
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);

    s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(get_is(s, "users", "alice", "", "1"));
    ck_assert(get_is(s, "users", "alice", "w1", "2"));
    ck_assert(!get_is(s, "users", "carol", "", ""));
    ck_assert(!get_is(s, "nostate", "alice", "", ""));
    uint8_t sk[64];
    size_t n = key(sk, "bob", "");
    int found = -1;
    ck_assert_int_eq(sv_store_delete(s, "users", 5, sk, n, &found), 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(sv_store_delete(s, "users", 5, sk, n, &found), 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(!get_is(s, "users", "bob", "", ""));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

START_TEST(abort_discards_and_forgets_new_state)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "fresh", "k", "", "v");
    sv_store_abort(s);
    /* The state's handle was opened in the aborted transaction: the store
     * must not use it again. */
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(!get_is(s, "fresh", "k", "", ""));
    put(s, "fresh", "k", "", "again");
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(get_is(s, "fresh", "k", "", "again"));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

START_TEST(savepoint_rollback)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "a", "k1", "", "outer");
    ck_assert_int_eq(sv_store_savepoint(s), 0);
    put(s, "a", "k2", "", "inner");
    put(s, "b", "k3", "", "inner-new-state");
    sv_store_rollback(s);
    ck_assert(get_is(s, "a", "k1", "", "outer"));
    ck_assert(!get_is(s, "a", "k2", "", ""));
    ck_assert(!get_is(s, "b", "k3", "", ""));
    ck_assert_int_eq(sv_store_savepoint(s), 0);
    put(s, "b", "k4", "", "kept");
    ck_assert_int_eq(sv_store_release(s), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(get_is(s, "b", "k4", "", "kept"));
    ck_assert(!get_is(s, "a", "k2", "", ""));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

/* With writemap LMDB has no nested transactions: a savepoint needs a group
 * transaction that has written nothing, and its rollback discards it. */
START_TEST(savepoint_rollback_writemap)
{
    struct sv_store_options o = opts();
    o.writemap = 1;
    struct sv_store *s = open_store(&o);
    ck_assert(sv_store_writemap_active(s));
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "a", "k1", "", "committed");
    ck_assert_int_eq(sv_store_commit(s), 0);

    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(!sv_store_savepoint_needs_clean_txn(s));
    ck_assert(get_is(s, "a", "k1", "", "committed")); /* reads keep it clean */
    ck_assert(!sv_store_savepoint_needs_clean_txn(s));
    ck_assert_int_eq(sv_store_savepoint(s), 0);
    put(s, "a", "k2", "", "inner");
    put(s, "b", "k3", "", "inner-new-state");
    sv_store_rollback(s);
    ck_assert(sv_store_in_txn(s));
    ck_assert(!get_is(s, "a", "k2", "", ""));
    ck_assert(!get_is(s, "b", "k3", "", ""));
    ck_assert(get_is(s, "a", "k1", "", "committed"));
    /* The transaction goes on: a savepoint again, released, then more. */
    ck_assert_int_eq(sv_store_savepoint(s), 0);
    put(s, "b", "k4", "", "kept");
    ck_assert_int_eq(sv_store_release(s), 0);
    ck_assert(sv_store_savepoint_needs_clean_txn(s));
    ck_assert_int_eq(sv_store_savepoint(s), SV_EINTERNAL);
    put(s, "a", "k5", "", "after");
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(get_is(s, "b", "k4", "", "kept"));
    ck_assert(get_is(s, "a", "k5", "", "after"));
    ck_assert(!get_is(s, "a", "k2", "", ""));
    sv_store_abort(s);
    sv_store_close(s);
    /* The map's size is allocated on disk up front. */
    char path[128];
    snprintf(path, sizeof(path), "%s/current/data.mdb", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_ge((long long)st.st_blocks * 512, (long long)o.map_size);
}
END_TEST

START_TEST(merge_append_and_add)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint8_t sk[64];
    size_t n = key(sk, "k", "");
    int64_t ctr = 0;
    size_t size = 0;
    char msg[256];
    const char *elems[] = {"x", "", "hello world"};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sv_store_merge(s, "l", 1, sk, n, SV_MERGE_APPEND,
                                        (const uint8_t *)elems[i], strlen(elems[i]), &ctr, &size,
                                        msg, sizeof(msg)),
                         0);
    struct sv_value v;
    ck_assert_int_eq(sv_store_get(s, "l", 1, sk, n, &v), 0);
    ck_assert_int_eq(v.kind, SV_KIND_LIST);
    ck_assert_uint_eq(v.len, size);
    size_t off = 0, elen;
    const uint8_t *e;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sv_list_next(v.data, v.len, &off, &e, &elen), 1);
        ck_assert_uint_eq(elen, strlen(elems[i]));
        ck_assert(memcmp(e, elems[i], elen) == 0);
    }
    ck_assert_int_eq(sv_list_next(v.data, v.len, &off, &e, &elen), 0);

    uint8_t d[8];
    sv_i64_put(d, 40);
    ck_assert_int_eq(
        sv_store_merge(s, "c", 1, sk, n, SV_MERGE_ADD_I64, d, 8, &ctr, &size, msg, sizeof(msg)), 0);
    sv_i64_put(d, 2);
    ck_assert_int_eq(
        sv_store_merge(s, "c", 1, sk, n, SV_MERGE_ADD_I64, d, 8, &ctr, &size, msg, sizeof(msg)), 0);
    ck_assert_int_eq(ctr, 42);
    /* Overflow is refused and leaves the counter alone. */
    sv_i64_put(d, INT64_MAX);
    ck_assert_int_eq(
        sv_store_merge(s, "c", 1, sk, n, SV_MERGE_ADD_I64, d, 8, &ctr, &size, msg, sizeof(msg)),
        SV_EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "overflow"));
    ck_assert_int_eq(sv_store_get(s, "c", 1, sk, n, &v), 0);
    ck_assert_int_eq(sv_i64_get(v.data), 42);
    /* Mismatched kinds and operands. */
    ck_assert_int_eq(
        sv_store_merge(s, "c", 1, sk, n, SV_MERGE_APPEND, d, 8, &ctr, &size, msg, sizeof(msg)),
        SV_EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "counter"));
    ck_assert_int_eq(
        sv_store_merge(s, "l", 1, sk, n, SV_MERGE_ADD_I64, d, 8, &ctr, &size, msg, sizeof(msg)),
        SV_EINVAL);
    ck_assert_int_eq(
        sv_store_merge(s, "c", 1, sk, n, SV_MERGE_ADD_I64, d, 4, &ctr, &size, msg, sizeof(msg)),
        SV_EINVAL);
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

START_TEST(append_respects_max_value_size)
{
    struct sv_store_options o = opts();
    o.max_value_size = 100;
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint8_t sk[64], elem[40] = {0};
    size_t n = key(sk, "k", ""), size;
    int64_t ctr;
    char msg[256];
    ck_assert_int_eq(
        sv_store_merge(s, "l", 1, sk, n, SV_MERGE_APPEND, elem, 40, &ctr, &size, msg, sizeof(msg)),
        0);
    ck_assert_int_eq(
        sv_store_merge(s, "l", 1, sk, n, SV_MERGE_APPEND, elem, 40, &ctr, &size, msg, sizeof(msg)),
        0);
    ck_assert_int_eq(
        sv_store_merge(s, "l", 1, sk, n, SV_MERGE_APPEND, elem, 40, &ctr, &size, msg, sizeof(msg)),
        SV_ETOOLARGE);
    ck_assert_ptr_nonnull(strstr(msg, "max_value_size"));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

struct collected {
    int n;
    char keys[64][32];
};

static int collect(void *ud, const uint8_t *skey, size_t sklen, const struct sv_value *v)
{
    struct collected *c = ud;
    struct sv_skey k;
    (void)v;
    ck_assert_int_eq(sv_skey_decode(skey, sklen, &k), 0);
    snprintf(c->keys[c->n++], 32, "%.*s/%.*s", (int)k.key_len, k.key, (int)k.ns_len, k.ns);
    return 0;
}

START_TEST(scan_and_delete_range)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "m", "u1", "a", "1");
    put(s, "m", "u1", "b", "2");
    put(s, "m", "u1", "c", "3");
    put(s, "m", "u10", "a", "4"); /* a longer key with the same bytes as prefix */
    put(s, "m", "u2", "", "5");

    /* Every namespace of u1 and nothing of u10. */
    uint8_t lo[64], hi[64];
    uint32_t kg = sv_key_group_of("u1", 2, 128);
    size_t lolen = sv_skey_prefix(lo, kg, "u1", 2);
    memcpy(hi, lo, lolen);
    hi[lolen - 1]++;
    struct collected c = {0};
    ck_assert_int_eq(sv_store_scan(s, "m", 1, lo, lolen, hi, lolen, collect, &c), 0);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.keys[0], "u1/a");
    ck_assert_str_eq(c.keys[2], "u1/c");

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(sv_store_scan(s, "m", 1, NULL, 0, NULL, 0, collect, &c), 0);
    ck_assert_int_eq(c.n, 5);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(sv_store_scan(s, "missing", 7, NULL, 0, NULL, 0, collect, &c), 0);
    ck_assert_int_eq(c.n, 0);

    uint64_t deleted = 0;
    ck_assert_int_eq(sv_store_delete_range(s, "m", 1, lo, lolen, hi, lolen, &deleted), 0);
    ck_assert_uint_eq(deleted, 3);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(sv_store_scan(s, "m", 1, NULL, 0, NULL, 0, collect, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert(get_is(s, "m", "u10", "a", "4"));

    ck_assert_int_eq(sv_store_drop_state(s, "m", 1, &deleted), 0);
    ck_assert_uint_eq(deleted, 2);

    /* A key that holds every entry of its state: the tree ends up empty. */
    put(s, "only", "k", "a", "1");
    put(s, "only", "k", "b", "2");
    kg = sv_key_group_of("k", 1, 128);
    lolen = sv_skey_prefix(lo, kg, "k", 1);
    memcpy(hi, lo, lolen);
    hi[lolen - 1]++;
    ck_assert_int_eq(sv_store_delete_range(s, "only", 4, lo, lolen, hi, lolen, &deleted), 0);
    ck_assert_uint_eq(deleted, 2);
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert(!get_is(s, "only", "k", "a", ""));
    ck_assert(!get_is(s, "m", "u2", "", ""));
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

START_TEST(delete_range_many)
{
    /* Deleting across many pages with one cursor. */
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint8_t sk[64];
    size_t pn = sv_skey_prefix(sk, 5, "big", 3);
    char ns[16];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(ns, sizeof(ns), "%06d", i);
        size_t n = sv_skey_encode(sk, 5, "big", 3, ns, (size_t)len);
        ck_assert_int_eq(sv_store_put(s, "x", 1, sk, n, SV_KIND_RAW, (const uint8_t *)ns, 6), 0);
    }
    put(s, "x", "other", "", "stays");
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint8_t lo[64], hi[64];
    sv_skey_prefix(lo, 5, "big", 3);
    memcpy(hi, lo, pn);
    hi[pn - 1]++;
    uint64_t deleted = 0;
    ck_assert_int_eq(sv_store_delete_range(s, "x", 1, lo, pn, hi, pn, &deleted), 0);
    ck_assert_uint_eq(deleted, 5000);
    ck_assert(get_is(s, "x", "other", "", "stays"));
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

START_TEST(max_states_enforced)
{
    struct sv_store_options o = opts();
    o.max_states = 2;
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "s1", "k", "", "v");
    put(s, "s2", "k", "", "v");
    uint8_t sk[64];
    size_t n = key(sk, "k", "");
    ck_assert_int_eq(sv_store_put(s, "s3", 2, sk, n, SV_KIND_RAW, (const uint8_t *)"v", 1),
                     SV_ENOSPACE);
    ck_assert_int_eq(sv_store_txn_error(s), 0); /* the transaction is still good */
    put(s, "s1", "k2", "", "v");
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

START_TEST(key_groups_recorded)
{
    struct sv_store_options o = opts();
    o.key_groups = 256;
    o.key_groups_set = 1;
    struct sv_store *s = open_store(&o);
    ck_assert_uint_eq(sv_store_key_groups(s), 256);
    sv_store_close(s);

    /* Not configured: the directory's value is used. */
    o.key_groups = 128;
    o.key_groups_set = 0;
    s = open_store(&o);
    ck_assert_uint_eq(sv_store_key_groups(s), 256);
    sv_store_close(s);

    /* Configured differently: refused with a message naming both. */
    o.key_groups_set = 1;
    char err[512];
    ck_assert_int_eq(sv_store_open(&o, &s, err, sizeof(err)), SV_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "key_groups = 256"));
    ck_assert_ptr_nonnull(strstr(err, "key_groups = 128"));
}
END_TEST

START_TEST(second_open_refused)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o), *t;
    char err[512];
    ck_assert_int_eq(sv_store_open(&o, &t, err, sizeof(err)), SV_EBUSY);
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    sv_store_close(s);
}
END_TEST

START_TEST(map_full_then_grow)
{
    struct sv_store_options o = opts();
    o.map_size = 1u << 20;
    o.map_size_max = 4u << 20;
    struct sv_store *s = open_store(&o);
    static uint8_t val[64 * 1024];
    uint8_t sk[64];
    char k[16];
    int grew = 0, full = 0;
    /* Write 64 KiB values until the map is full; grow; go on until the
     * maximum refuses with SV_ENOSPACE. */
    for (int i = 0; i < 200 && !full; i++) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        snprintf(k, sizeof(k), "k%d", i);
        size_t n = key(sk, k, "");
        int rc = sv_store_put(s, "big", 3, sk, n, SV_KIND_RAW, val, sizeof(val));
        if (rc == 0)
            rc = sv_store_commit(s);
        else
            sv_store_abort(s);
        if (rc == SV_EMAPFULL) {
            int g = sv_store_grow(s);
            if (g == SV_ENOSPACE) {
                full = 1;
            } else {
                ck_assert_int_eq(g, 0);
                grew++;
                i--; /* the same key again, in the bigger map */
            }
            continue;
        }
        ck_assert_int_eq(rc, 0);
    }
    ck_assert_int_ge(grew, 2);
    ck_assert_int_eq(full, 1);
    uint64_t size, used;
    sv_store_usage(s, &size, &used);
    ck_assert_uint_eq(size, 4u << 20);
    /* Reads still work when full. */
    ck_assert_int_eq(sv_store_begin(s), 0);
    size_t n = key(sk, "k0", "");
    struct sv_value v;
    ck_assert_int_eq(sv_store_get(s, "big", 3, sk, n, &v), 0);
    ck_assert_uint_eq(v.len, sizeof(val));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

/* --- a full map: the reserve for deletes ---------------------------------- */

#define BIG 8192 /* a value in overflow pages of its own: a delete frees them */

static void big_value(uint8_t *v, int i)
{
    memset(v, 'a' + i % 26, BIG);
    memcpy(v, &i, sizeof(i));
}

/* Puts value i under key "k<i>" of `state`; SV_EMAPFULL as the store says. */
static int put_big(struct sv_store *s, const char *state, int i)
{
    static uint8_t v[BIG];
    uint8_t sk[64];
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    big_value(v, i);
    return sv_store_put(s, state, strlen(state), sk, key(sk, k, ""), SV_KIND_RAW, v, BIG);
}

static int del_big(struct sv_store *s, const char *state, int i)
{
    uint8_t sk[64];
    char k[16];
    int found = 0;
    snprintf(k, sizeof(k), "k%d", i);
    int rc = sv_store_delete(s, state, strlen(state), sk, key(sk, k, ""), &found);
    ck_assert(rc != 0 || found);
    return rc;
}

/* 1 if key "k<i>" holds value i, 0 if it is missing. */
static int has_big(struct sv_store *s, const char *state, int i)
{
    static uint8_t want[BIG];
    uint8_t sk[64];
    char k[16];
    struct sv_value v;
    snprintf(k, sizeof(k), "k%d", i);
    int rc = sv_store_get(s, state, strlen(state), sk, key(sk, k, ""), &v);
    if (rc == SV_ENOTFOUND)
        return 0;
    ck_assert_int_eq(rc, 0);
    big_value(want, i);
    ck_assert_uint_eq(v.len, BIG);
    ck_assert(memcmp(v.data, want, BIG) == 0);
    return 1;
}

/* Puts keys from..from+limit in transactions of `group`, the way the server
 * does: a refused put (SV_EMAPFULL with the transaction still good) ends its
 * transaction, which commits the puts before it; an LMDB map-full (the
 * transaction poisoned) grows the map and replays the transaction. The map
 * is full when two transactions in a row are refused their first put (one
 * refusal may want only the pages the last commit freed, which the store
 * makes reusable at once). Returns how many puts were acknowledged. */
static int fill(struct sv_store *s, const char *state, int from, int limit, int group)
{
    int done = 0, refused = 0, grows = 0;
    while (refused < 2 && done < limit) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        int n = 0, rc = 0;
        for (; n < group && done + n < limit; n++) {
            rc = put_big(s, state, from + done + n);
            if (rc)
                break;
        }
        if (rc == SV_EMAPFULL && sv_store_txn_error(s)) {
            sv_store_abort(s);
            ck_assert_int_lt(grows++, 10);
            ck_assert_msg(sv_store_grow(s) == 0,
                          "LMDB's map filled up to map_size_max: the reserve was used by puts");
            continue;
        }
        if (rc) {
            ck_assert_int_eq(rc, SV_EMAPFULL);
            ck_assert_int_eq(sv_store_txn_error(s), 0); /* a refusal does not poison */
            refused = n ? 1 : refused + 1;
        } else {
            refused = 0;
        }
        ck_assert_int_eq(sv_store_commit(s), 0);
        done += n;
    }
    ck_assert_msg(refused == 2, "the map never filled");
    return done;
}

static struct sv_store_options small_map(int writemap)
{
    struct sv_store_options o = opts();
    o.map_size = 1u << 20;
    o.map_size_max = 2u << 20;
    o.writemap = writemap;
    return o;
}

static struct sv_store_space space(struct sv_store *s)
{
    struct sv_store_space sp;
    ck_assert_int_eq(sv_store_space(s, &sp), 0);
    return sp;
}

/* Filled to map_size_max by puts, the store refuses further puts below the
 * maximum; deletes then commit, the next puts succeed without a restart, and
 * every acknowledged value is intact. With writemap off (_i 0) and on. */
START_TEST(full_map_deletes_make_room)
{
    struct sv_store_options o = small_map(_i);
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_writemap_active(s), _i);
    int n = fill(s, "big", 0, 400, 4);
    struct sv_store_space full = space(s);
    ck_assert_uint_eq(full.map_size, 2u << 20);
    ck_assert_uint_le(full.used, full.limit);
    ck_assert_uint_ge(full.reserve, 64 * full.page_size);
    ck_assert_uint_eq(full.limit + full.reserve, full.map_max);
    ck_assert_int_gt(n, 20);
    char msg[512];
    sv_store_nospace_msg(s, msg, sizeof(msg));
    ck_assert_msg(strstr(msg, "map_size_max") && strstr(msg, "Delete entries") &&
                      strstr(msg, "reads still work"),
                  "%s", msg);
    ck_assert_ptr_null(strstr(msg, "read transaction")); /* nothing holds pages */

    /* Puts stay refused, merges too, each leaving the transaction usable;
     * reads work. */
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert_int_eq(put_big(s, "big", n), SV_EMAPFULL);
    ck_assert_int_eq(put_big(s, "other", 0), SV_EMAPFULL); /* no new state either */
    uint8_t sk[64];
    size_t skl = key(sk, "list", "");
    int64_t counter;
    size_t size;
    static uint8_t elem[BIG];
    ck_assert_int_eq(sv_store_merge(s, "big", 3, sk, skl, SV_MERGE_APPEND, elem, sizeof(elem),
                                    &counter, &size, msg, sizeof(msg)),
                     SV_EMAPFULL);
    ck_assert_msg(strstr(msg, "map_size_max"), "%s", msg);
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert(has_big(s, "big", 0) && has_big(s, "big", n - 1));
    ck_assert_int_eq(sv_store_commit(s), 0);

    /* Deletes use the reserve. */
    ck_assert_int_eq(sv_store_begin(s), 0);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(del_big(s, "big", i * 2), 0);
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    struct sv_store_space after = space(s);
    ck_assert_uint_lt(after.used + 24 * after.page_size, full.used); /* 12 values, 3 pages each */
    ck_assert_uint_gt(after.free_reusable, 0);

    /* The very next transaction puts again, until the map is full again. */
    int more = fill(s, "big", n, 400, 1);
    ck_assert_int_ge(more, 4);
    ck_assert_uint_le(space(s).used, full.limit);

    /* Nothing acknowledged was lost, nothing deleted came back. */
    ck_assert_int_eq(sv_store_begin(s), 0);
    for (int i = 0; i < n + more; i++)
        ck_assert_int_eq(has_big(s, "big", i), !(i < 24 && i % 2 == 0));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

/* A full map where only deletes come in: a transaction of deletes spread
 * over many leaves (each copied: more pages than the commit's slack, fewer
 * than the reserve), one delete per transaction, a range, a dropped state;
 * none is refused, and puts work after. */
START_TEST(full_map_only_deletes)
{
    struct sv_store_options o = small_map(_i);
    struct sv_store *s = open_store(&o);
    /* Small entries over about 80 leaves: their deletes copy leaves and free
     * no page. */
    char k[16], v[200];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int t = 0; t < 10; t++) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        for (int i = t * 100; i < t * 100 + 100; i++) {
            snprintf(k, sizeof(k), "s%d", i);
            put(s, "small", k, "", v);
        }
        ck_assert_int_eq(sv_store_commit(s), 0);
    }
    int n = fill(s, "big", 0, 400, 2);
    ck_assert_int_eq(sv_store_begin(s), 0);
    for (int i = 0; i < 40; i++) {
        uint8_t sk[64];
        int found = 0;
        snprintf(k, sizeof(k), "s%d", i * 25 + 1);
        ck_assert_int_eq(sv_store_delete(s, "small", 5, sk, key(sk, k, ""), &found), 0);
        ck_assert_int_eq(found, 1);
    }
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        uint8_t sk[64];
        int found = 0;
        snprintf(k, sizeof(k), "s%d", i * 25 + 13);
        ck_assert_int_eq(sv_store_delete(s, "small", 5, sk, key(sk, k, ""), &found), 0);
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(sv_store_txn_error(s), 0);
        ck_assert_int_eq(sv_store_commit(s), 0);
    }
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint64_t deleted = 0;
    uint8_t hi[2] = {0, 32}; /* stored keys start with the key group, 2 bytes big-endian */
    ck_assert_int_eq(sv_store_delete_range(s, "small", 5, NULL, 0, hi, 2, &deleted), 0);
    ck_assert_uint_gt(deleted, 0);
    ck_assert_int_eq(sv_store_txn_error(s), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert_int_eq(sv_store_drop_state(s, "small", 5, &deleted), 0);
    ck_assert_uint_gt(deleted, 100);
    ck_assert_int_eq(sv_store_commit(s), 0);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        ck_assert_int_eq(del_big(s, "big", i), 0);
        ck_assert_int_eq(sv_store_commit(s), 0);
    }
    /* The space is back for puts. */
    ck_assert_int_ge(fill(s, "big", n, 400, 1), 20);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(!has_big(s, "big", 0) && has_big(s, "big", n - 1) && has_big(s, "big", 20));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

static int count_raw(void *ud, const uint8_t *skey, size_t sklen, const uint8_t *value, size_t vlen)
{
    (void)skey, (void)sklen, (void)value, (void)vlen;
    ++*(size_t *)ud;
    return 0;
}

static int keep_file_exists(void)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/snapshot-keep.mdb", dir);
    return stat(path, &st) == 0;
}

/* A snapshot holds no read transaction between chunks, and keeps its copies
 * in a file of its own: on a full map, pages deletes free are reusable at
 * once, the snapshot still returns the cut, and its file goes when it ends. */
START_TEST(full_map_snapshot_keeps_copies_beside)
{
    struct sv_store_options o = small_map(_i);
    struct sv_store *s = open_store(&o);
    int n = fill(s, "big", 0, 400, 4);
    struct sv_store_snapshot *snap;
    ck_assert_int_eq(sv_store_snapshot_begin(s, &snap), 0);
    ck_assert(keep_file_exists());
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert_int_eq(put_big(s, "big", 0), SV_EMAPFULL);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(del_big(s, "big", i), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(space(s).free_pinned, 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert_int_eq(put_big(s, "big", n), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    size_t seen = 0;
    ck_assert_int_eq(sv_store_snapshot_scan(snap, 0, count_raw, &seen), 0);
    ck_assert_uint_eq(seen, (size_t)n); /* the cut: the 12 deleted in, the new one not */
    ck_assert_uint_eq(sv_store_snapshot_kept(s), 13); /* 12 deleted, 1 absent */
    sv_store_snapshot_release(snap);
    sv_store_snapshot_finished(s);
    ck_assert(!keep_file_exists());
    ck_assert_int_eq(sv_store_begin(s), 0);
    ck_assert(has_big(s, "big", n) && has_big(s, "big", 12) && !has_big(s, "big", 11));
    sv_store_abort(s);
    sv_store_close(s);
}
END_TEST

static void load_ab(struct sv_store *s);

/* When copies cannot be made (here their file is too small), writes still
 * succeed and the snapshot fails; the next one is whole. */
START_TEST(snapshot_gives_way_when_copies_fail)
{
    struct sv_store_options o = opts();
    o.map_size = 64u << 20;
    o.keep_map_size = 64u << 10;
    struct sv_store *s = open_store(&o);
    load_ab(s);
    struct sv_store_snapshot *snap;
    ck_assert_int_eq(sv_store_snapshot_begin(s, &snap), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint64_t deleted = 0;
    ck_assert_int_eq(sv_store_delete_range(s, "a", 1, NULL, 0, NULL, 0, &deleted), 0);
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_uint_eq(deleted, 2300);
    size_t seen = 0;
    ck_assert_int_eq(sv_store_snapshot_scan(snap, 0, count_raw, &seen), SV_EMAPFULL);
    sv_store_snapshot_release(snap);
    sv_store_snapshot_finished(s);
    ck_assert(!keep_file_exists());
    ck_assert_int_eq(sv_store_snapshot_begin(s, &snap), 0);
    seen = 0;
    ck_assert_int_eq(sv_store_snapshot_scan(snap, 0, count_raw, &seen), 0);
    ck_assert_uint_eq(seen, 0);
    seen = 0;
    ck_assert_int_eq(sv_store_snapshot_scan(snap, 1, count_raw, &seen), 0);
    ck_assert_uint_eq(seen, 1000);
    sv_store_snapshot_release(snap);
    sv_store_snapshot_finished(s);
    sv_store_close(s);
}
END_TEST

static int count_entry(void *ud, const uint8_t *skey, size_t sklen, const struct sv_value *v)
{
    (void)skey;
    (void)sklen;
    (void)v;
    (*(int *)ud)++;
    return 0;
}

/* At max_states every state handle is open, and LMDB refuses to look up one
 * more name (MDB_DBS_FULL) before it knows whether it exists: a missing state
 * must still read as missing, not as "no space" (found by fuzz_request). */
START_TEST(missing_state_at_max_states)
{
    struct sv_store_options o = opts();
    o.max_states = 2;
    struct sv_store *s = open_store(&o);
    for (int reopen = 0; reopen < 2; reopen++) {
        ck_assert_int_eq(sv_store_begin(s), 0);
        if (!reopen) {
            put(s, "s1", "k", "", "v");
            put(s, "s2", "k", "", "v");
        }
        ck_assert_int_eq(get_is(s, "missing", "k", "", ""), 0);
        uint8_t sk[64];
        size_t n = key(sk, "k", "");
        int found = 1, entries = 0;
        uint64_t deleted = 1;
        ck_assert_int_eq(sv_store_delete(s, "missing", 7, sk, n, &found), 0);
        ck_assert_int_eq(found, 0);
        ck_assert_int_eq(sv_store_scan(s, "missing", 7, NULL, 0, NULL, 0, count_entry, &entries),
                         0);
        ck_assert_int_eq(entries, 0);
        ck_assert_int_eq(sv_store_drop_state(s, "missing", 7, &deleted), 0);
        ck_assert_uint_eq(deleted, 0);
        ck_assert_int_eq(sv_store_put(s, "s3", 2, sk, n, SV_KIND_RAW, (const uint8_t *)"v", 1),
                         SV_ENOSPACE);
        ck_assert_int_eq(get_is(s, "s1", "k", "", "v"), 1);
        ck_assert_int_eq(sv_store_txn_error(s), 0);
        ck_assert_int_eq(sv_store_commit(s), 0);
        sv_store_close(s);
        s = open_store(&o);
    }
    sv_store_close(s);
}
END_TEST

static int count_states(void *ud, const struct sv_state_stat *st)
{
    int *n = ud;
    ck_assert(sv_state_name_valid(st->name, strlen(st->name)));
    ck_assert_uint_ge(st->entries, 1);
    ck_assert_uint_gt(st->bytes, 0);
    (*n)++;
    return 0;
}

START_TEST(list_states_hides_internal)
{
    struct sv_store_options o = opts();
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "one", "k", "", "v");
    put(s, "two", "k", "", "v");
    int n = 0;
    ck_assert_int_eq(sv_store_list_states(s, count_states, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

START_TEST(aborted_drop_keeps_the_state_counted)
{
    /* Found by fuzzing: a drop whose transaction aborts closed the state's
     * handle and the table forgot it, so max_states could be exceeded. */
    struct sv_store_options o = opts();
    o.max_states = 2;
    struct sv_store *s = open_store(&o);
    ck_assert_int_eq(sv_store_begin(s), 0);
    put(s, "a", "k", "", "va");
    put(s, "b", "k", "", "vb");
    ck_assert_int_eq(sv_store_commit(s), 0);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint64_t deleted;
    ck_assert_int_eq(sv_store_drop_state(s, "a", 1, &deleted), 0);
    sv_store_abort(s);
    ck_assert_int_eq(sv_store_begin(s), 0);
    uint8_t sk[64];
    size_t n = key(sk, "k", "");
    ck_assert_int_eq(sv_store_put(s, "c", 1, sk, n, SV_KIND_RAW, (const uint8_t *)"v", 1),
                     SV_ENOSPACE);            /* a and b exist: no third */
    ck_assert(get_is(s, "a", "k", "", "va")); /* still there, still readable */
    ck_assert_int_eq(sv_store_commit(s), 0);
    sv_store_close(s);
}
END_TEST

/* --- snapshots: the cut --------------------------------------------------- */

struct entry {
    uint8_t *k, *v; /* v: the kind, then the data */
    size_t klen, vlen;
};
struct entries {
    struct entry *e;
    size_t n, cap;
};

static void entries_add(struct entries *es, const uint8_t *k, size_t klen, const struct sv_value *v)
{
    if (es->n == es->cap) {
        es->cap = es->cap ? es->cap * 2 : 256;
        es->e = realloc(es->e, es->cap * sizeof(*es->e));
        ck_assert_ptr_nonnull(es->e);
    }
    struct entry *e = &es->e[es->n++];
    e->k = malloc(klen);
    e->v = malloc(v->len + 1);
    ck_assert(e->k && e->v);
    memcpy(e->k, k, klen);
    e->klen = klen;
    e->v[0] = (uint8_t)v->kind;
    if (v->len)
        memcpy(e->v + 1, v->data, v->len);
    e->vlen = v->len + 1;
}

static void entries_free(struct entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->e[i].k);
        free(es->e[i].v);
    }
    free(es->e);
    memset(es, 0, sizeof(*es));
}

static int collect_live(void *ud, const uint8_t *skey, size_t sklen, const struct sv_value *v)
{
    entries_add(ud, skey, sklen, v);
    return 0;
}

/* Every entry of the states, read in one transaction now. */
static void read_live(struct sv_store *s, const char *const *states, size_t n, struct entries *out)
{
    ck_assert_int_eq(sv_store_begin(s), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(
            sv_store_scan(s, states[i], strlen(states[i]), NULL, 0, NULL, 0, collect_live, out), 0);
    sv_store_abort(s);
}

static void entries_equal(const struct entries *got, const struct entries *want)
{
    ck_assert_uint_eq(got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        const struct entry *g = &got->e[i], *w = &want->e[i];
        ck_assert_msg(g->klen == w->klen && memcmp(g->k, w->k, w->klen) == 0,
                      "entry %zu: another key", i);
        ck_assert_msg(g->vlen == w->vlen && memcmp(g->v, w->v, w->vlen) == 0,
                      "entry %zu: another value (%zu bytes, want %zu)", i, g->vlen, w->vlen);
    }
}

/* One transaction of random writes to keys the snapshot has read and has
 * not: overwrites, new keys, deletes, appends, clears of every namespace of
 * a key, a new state; one transaction in five aborts. */
static void random_writes(struct sv_store *s, unsigned *seed, int nops)
{
    static const char *const nss[] = {"", "n1", "n2"};
    ck_assert_int_eq(sv_store_begin(s), 0);
    /* One transaction in three runs in a savepoint (a batch's), rolled back
     * or released: its copies stay and must still be the cut. */
    int sp = rand_r(seed) % 3 == 0;
    if (sp)
        ck_assert_int_eq(sv_store_savepoint(s), 0);
    for (int i = 0; i < nops; i++) {
        const char *state = rand_r(seed) % 2 ? "a" : "b";
        char k[16], v[32];
        int r = rand_r(seed);
        snprintf(k, sizeof(k), "k%04d", r % 1200); /* 1000 exist at first */
        const char *ns = nss[(r >> 12) % 3];
        snprintf(v, sizeof(v), "w%d", rand_r(seed));
        uint8_t sk[600];
        size_t n = key(sk, k, ns);
        int found, op = rand_r(seed) % 7;
        if (op <= 1) {
            put(s, state, k, ns, v);
        } else if (op == 2) {
            ck_assert_int_eq(sv_store_delete(s, state, 1, sk, n, &found), 0);
        } else if (op == 3) {
            snprintf(k, sizeof(k), "l%03d", r % 300);
            n = key(sk, k, "");
            int64_t ctr;
            size_t size;
            char msg[128];
            ck_assert_int_eq(sv_store_merge(s, "a", 1, sk, n, SV_MERGE_APPEND, (const uint8_t *)v,
                                            strlen(v), &ctr, &size, msg, sizeof(msg)),
                             0);
        } else if (op == 4) {
            uint8_t lo[64], hi[64];
            size_t len = sv_skey_prefix(lo, sv_key_group_of(k, strlen(k), 128), k, strlen(k));
            memcpy(hi, lo, len);
            hi[len - 1]++;
            uint64_t deleted;
            ck_assert_int_eq(sv_store_delete_range(s, state, 1, lo, len, hi, len, &deleted), 0);
        } else if (op == 5) {
            put(s, "c", k, ns, v); /* a state the snapshot does not have */
        } else {
            put(s, state, k, "", v);
        }
    }
    if (sp && rand_r(seed) % 2)
        sv_store_rollback(s);
    else if (sp)
        ck_assert_int_eq(sv_store_release(s), 0);
    if (rand_r(seed) % 5 == 0)
        sv_store_abort(s);
    else
        ck_assert_int_eq(sv_store_commit(s), 0);
}

struct cut_scan {
    struct sv_store *s;
    struct entries got;
    unsigned seed;
    size_t calls, stop_at;
};

/* Collects what the snapshot returns and writes in between, from the same
 * thread: the snapshot's read transaction and the writes interleave. */
static int collect_cut(void *ud, const uint8_t *skey, size_t sklen, const uint8_t *value,
                       size_t vlen)
{
    struct cut_scan *x = ud;
    struct sv_value v;
    ck_assert_int_eq(sv_value_parse(value, vlen, &v), 0);
    entries_add(&x->got, skey, sklen, &v);
    if (++x->calls % 97 == 0)
        random_writes(x->s, &x->seed, 40);
    return x->stop_at && x->calls >= x->stop_at ? SV_EUNAVAIL : 0;
}

/* Snapshots states a and b while random writes go on, and checks that it
 * returns exactly what was committed when it began. */
static void snapshot_under_writes(struct sv_store *s, unsigned seed)
{
    struct sv_store_snapshot *snap;
    ck_assert_int_eq(sv_store_snapshot_begin(s, &snap), 0);
    size_t n = sv_store_snapshot_nstates(snap);
    const char *states[8];
    ck_assert(n >= 2 && n <= 8);
    for (size_t i = 0; i < n; i++)
        states[i] = sv_store_snapshot_state(snap, i);
    struct entries want = {0};
    read_live(s, states, n, &want); /* nothing written since it began */
    random_writes(s, &seed, 200);   /* before the first chunk */
    struct cut_scan x = {.s = s, .seed = seed};
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(sv_store_snapshot_scan(snap, i, collect_cut, &x), 0);
    sv_store_snapshot_release(snap);
    ck_assert_uint_gt(sv_store_snapshot_kept(s), 100);
    sv_store_snapshot_finished(s);
    entries_equal(&x.got, &want);
    entries_free(&x.got);
    entries_free(&want);
}

static void load_ab(struct sv_store *s)
{
    ck_assert_int_eq(sv_store_begin(s), 0);
    char k[16], v[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        snprintf(v, sizeof(v), "base-%d", i);
        put(s, "a", k, "", v);
        put(s, "a", k, "n1", v);
        put(s, "b", k, "", v);
        if (i < 300) {
            uint8_t sk[64];
            int64_t ctr;
            size_t size;
            char msg[128];
            snprintf(k, sizeof(k), "l%03d", i);
            size_t n = key(sk, k, "");
            ck_assert_int_eq(sv_store_merge(s, "a", 1, sk, n, SV_MERGE_APPEND, (const uint8_t *)v,
                                            strlen(v), &ctr, &size, msg, sizeof(msg)),
                             0);
        }
    }
    ck_assert_int_eq(sv_store_commit(s), 0);
}

START_TEST(snapshot_returns_the_cut_under_writes)
{
    struct sv_store_options o = opts();
    o.writemap = _i;
    o.map_size = 64u << 20;
    struct sv_store *s = open_store(&o);
    load_ab(s);
    snapshot_under_writes(s, 1);
    /* Again: what the first one kept must be gone, or this one would
     * return the first cut for keys it kept. */
    snapshot_under_writes(s, 2);
    sv_store_close(s);
}
END_TEST

/* A snapshot that never finished: closing removes its copies, and a copy
 * file left by a crash is removed at open; the next snapshot is exact. */
START_TEST(unfinished_snapshot_leaves_nothing_behind)
{
    struct sv_store_options o = opts();
    o.map_size = 64u << 20;
    struct sv_store *s = open_store(&o);
    load_ab(s);
    struct sv_store_snapshot *snap;
    ck_assert_int_eq(sv_store_snapshot_begin(s, &snap), 0);
    struct cut_scan x = {.s = s, .seed = 3, .stop_at = 600};
    ck_assert_int_eq(sv_store_snapshot_scan(snap, 0, collect_cut, &x), SV_EUNAVAIL);
    ck_assert_uint_gt(sv_store_snapshot_kept(s), 100);
    sv_store_snapshot_release(snap);
    sv_store_close(s); /* without finishing */
    entries_free(&x.got);
    ck_assert(!keep_file_exists());
    char path[128];
    snprintf(path, sizeof(path), "%s/snapshot-keep.mdb", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("left by a crash", f);
    fclose(f);
    s = open_store(&o);
    ck_assert(!keep_file_exists());
    snapshot_under_writes(s, 4);
    sv_store_close(s);
}
END_TEST

Suite *sv_suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, put_get_delete_survive_reopen);
    tcase_add_test(tc, abort_discards_and_forgets_new_state);
    tcase_add_test(tc, savepoint_rollback);
    tcase_add_test(tc, savepoint_rollback_writemap);
    tcase_add_test(tc, merge_append_and_add);
    tcase_add_test(tc, append_respects_max_value_size);
    tcase_add_test(tc, scan_and_delete_range);
    tcase_add_test(tc, delete_range_many);
    tcase_add_test(tc, max_states_enforced);
    tcase_add_test(tc, missing_state_at_max_states);
    tcase_add_test(tc, key_groups_recorded);
    tcase_add_test(tc, second_open_refused);
    tcase_add_test(tc, map_full_then_grow);
    tcase_add_test(tc, list_states_hides_internal);
    tcase_add_test(tc, aborted_drop_keeps_the_state_counted);
    tcase_add_loop_test(tc, full_map_deletes_make_room, 0, 2);
    tcase_add_loop_test(tc, full_map_only_deletes, 0, 2);
    tcase_add_loop_test(tc, full_map_snapshot_keeps_copies_beside, 0, 2);
    tcase_add_test(tc, snapshot_gives_way_when_copies_fail);
    tcase_add_loop_test(tc, snapshot_returns_the_cut_under_writes, 0, 2);
    tcase_add_test(tc, unfinished_snapshot_leaves_nothing_behind);
    suite_add_tcase(s, tc);
    return s;
}
