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
    suite_add_tcase(s, tc);
    return s;
}
