/* libstatesrv, local reads (statesrv_local.h is the contract).
 *
 * The layout read here is the server's (server/store.c): data_dir/current
 * is a symlink to gen-NNNNNN, an LMDB environment holding one named
 * database per state, keyed by the stored key of common/sv_keys.h, with
 * values behind the header of common/sv_value.h, and the database "$meta"
 * holding format (u32 BE, 1), key_groups (u32 BE) and kg_range (two u32
 * BE: the key groups served after a ranged restore). This file is the only
 * code besides the store that reads LMDB; it never writes (MDB_RDONLY).
 *
 * Every call: renew the handle's one read transaction (so a write
 * acknowledged before the call is seen), make sure its environment is the
 * generation the server serves (see follow()), read, reset. Requests are
 * validated as the server's dispatch does, so a local read and a socket
 * read of the same request agree. */
#include "statesrv_local.h"

#include "sv_be.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_value.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_PATH_MAX 4096
#define LOCAL_FORMAT 1u
/* The store's states plus $meta, $changes and slack; the server opens up
 * to 32000 states when max_states was lowered under existing ones. */
#define LOCAL_MAXDBS 32768
#define LOCAL_SKEY_MAX 1024

struct dbi_slot {
    char name[SV_STATE_NAME_MAX + 1];
    MDB_dbi dbi;
};

struct statesrv_local {
    char dir[LOCAL_PATH_MAX];
    uint64_t gen; /* of env; 0: none open */
    MDB_env *env;
    MDB_txn *txn; /* reset between calls, renewed by each */
    MDB_dbi meta; /* $meta of env */
    /* The view of txnid seen_txnid said "serving": until a newer commit,
     * env is the generation the server serves, without a readlink. */
    int trusted;
    size_t seen_txnid;
    int held; /* txn is live: statesrv_local_get_ref's value points into it */
    uint32_t key_groups, kg_first, kg_last;
    size_t max_key;
    struct dbi_slot *dbis;             /* states opened in env */
    size_t n_dbis, cap_dbis, last_dbi; /* last_dbi: the last one used */
    statesrv_local_scan *scan;
    struct sv_buf view; /* a timed list's live elements, as the last read answered */
    char errmsg[512];
};

struct statesrv_local_scan {
    statesrv_local *l;
    MDB_cursor *cur; /* NULL: the state does not exist */
    uint8_t hi[LOCAL_SKEY_MAX];
    size_t hilen; /* 0: to the end */
    int started, done;
    uint8_t lo[LOCAL_SKEY_MAX];
    size_t lolen;
    statesrv_entry e;
    char state[SV_STATE_NAME_MAX + 1];
};

static int lfail(statesrv_local *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lfail(statesrv_local *l, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

/* The generation `current` names, or 0 when it names none. */
static uint64_t current_gen(const char *dir)
{
    char link[LOCAL_PATH_MAX + 16], target[64];
    snprintf(link, sizeof(link), "%s/current", dir);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 4)
        return 0;
    target[n] = '\0';
    if (strncmp(target, "gen-", 4) != 0)
        return 0;
    uint64_t g = 0;
    for (const char *p = target + 4; *p; p++) {
        if (*p < '0' || *p > '9' || g > UINT64_MAX / 10 - 1)
            return 0;
        g = g * 10 + (uint64_t)(*p - '0');
    }
    return g;
}

static void close_env(statesrv_local *l)
{
    if (l->txn)
        mdb_txn_abort(l->txn);
    l->txn = NULL;
    if (l->env)
        mdb_env_close(l->env);
    l->env = NULL;
    l->gen = 0;
    l->n_dbis = 0;
    l->trusted = 0;
    l->held = 0;
}

static int meta_u32s(MDB_txn *txn, MDB_dbi meta, const char *key, size_t n, uint32_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != n * 4)
        return MDB_CORRUPTED;
    for (size_t i = 0; i < n; i++)
        out[i] = sv_be32_get((const uint8_t *)v.mv_data + 4 * i);
    return 0;
}

/* Reads $meta: the format, key groups and the range served. */
static int read_meta(statesrv_local *l, const char *path)
{
    MDB_txn *txn;
    MDB_dbi meta;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lfail(l, STATESRV_ERR_CONNECT, "%s: cannot begin a read transaction: %s", path,
                     mdb_strerror(rc));
    uint32_t fmt = 0, kg = 0, range[2];
    if ((rc = mdb_dbi_open(txn, "$meta", 0, &meta))) {
        mdb_txn_abort(txn);
        return lfail(l, STATESRV_ERR_CONNECT, "%s is not a statesrvd store (no metadata: %s)", path,
                     mdb_strerror(rc));
    }
    if ((rc = meta_u32s(txn, meta, "format", 1, &fmt)) || fmt != LOCAL_FORMAT) {
        rc = rc ? lfail(l, STATESRV_ERR_CONNECT, "%s: no store format version (%s)", path,
                        mdb_strerror(rc))
                : lfail(l, STATESRV_ERR_CONNECT,
                        "%s has store format %" PRIu32 "; this library reads format %u only", path,
                        fmt, LOCAL_FORMAT);
        goto out;
    }
    if ((rc = meta_u32s(txn, meta, "key_groups", 1, &kg)) || kg < 1 || kg > SV_KEY_GROUPS_MAX) {
        rc = lfail(l, STATESRV_ERR_CONNECT, "%s: corrupt metadata (key_groups)", path);
        goto out;
    }
    l->key_groups = kg;
    l->kg_first = 0;
    l->kg_last = kg - 1;
    if (meta_u32s(txn, meta, "kg_range", 2, range) == 0 && range[0] <= range[1] && range[1] < kg) {
        l->kg_first = range[0];
        l->kg_last = range[1];
    }
    /* Committed, so that the handle of $meta stays open for later reads. */
    if ((rc = mdb_txn_commit(txn)))
        return lfail(l, STATESRV_ERR_CONNECT, "%s: %s", path, mdb_strerror(rc));
    l->meta = meta;
    return 0;
out:
    mdb_txn_abort(txn);
    return rc;
}

/* Opens generation gen of l->dir, replacing whatever was open. */
static int open_gen(statesrv_local *l, uint64_t gen)
{
    close_env(l);
    char path[LOCAL_PATH_MAX + 32], lock[LOCAL_PATH_MAX + 48];
    snprintf(path, sizeof(path), "%s/gen-%06" PRIu64, l->dir, gen);
    snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
    /* On a read-only lock file LMDB would read without registering, and the
     * server could reuse pages under us: refuse instead. */
    if (access(lock, R_OK | W_OK))
        return lfail(l, STATESRV_ERR_CONNECT,
                     "%s: %s (a local reader must register in the lock file: it needs read and "
                     "write access to it)",
                     lock, strerror(errno));
    int rc = mdb_env_create(&l->env);
    if (rc) {
        l->env = NULL;
        return lfail(l, STATESRV_ERR_NOMEM, "mdb_env_create: %s", mdb_strerror(rc));
    }
    mdb_env_set_maxdbs(l->env, LOCAL_MAXDBS);
    if ((rc = mdb_env_open(l->env, path, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0))) {
        mdb_env_close(l->env);
        l->env = NULL;
        return lfail(l, STATESRV_ERR_CONNECT, "cannot open the store in %s: %s", path,
                     mdb_strerror(rc));
    }
    if ((rc = read_meta(l, path)) ||
        (rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->txn)
                  ? lfail(l, STATESRV_ERR_CONNECT, "%s: cannot begin a read transaction", path)
                  : 0)) {
        l->txn = NULL;
        close_env(l);
        return rc;
    }
    mdb_txn_reset(l->txn);
    int mk = mdb_env_get_maxkeysize(l->env);
    /* The server keeps 2 bytes of LMDB's limit for a snapshot's copies. */
    l->max_key = mk > 2 ? (size_t)mk - 2 : 0;
    if (l->max_key > LOCAL_SKEY_MAX)
        l->max_key = LOCAL_SKEY_MAX;
    l->gen = gen;
    return 0;
}

/* Renews the read transaction: a fresh view of the last commit. */
static int renew(statesrv_local *l)
{
    int rc = mdb_txn_renew(l->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* The server grew the map: take the size the file now has. */
        if ((rc = mdb_env_set_mapsize(l->env, 0)) == 0)
            rc = mdb_txn_renew(l->txn);
    }
    if (rc)
        return lfail(l, STATESRV_ERR_IO, "cannot begin a read transaction: %s", mdb_strerror(rc));
    return 0;
}

/* Whether the renewed view says the server serves this generation: the
 * server sets $meta "serving" to 1 when it opens a generation as current and
 * to 0 (committed) before it moves `current` away from it. */
static int view_serving(statesrv_local *l)
{
    MDB_val k = {7, "serving"}, v;
    return mdb_get(l->txn, l->meta, &k, &v) == 0 && v.mv_size == 1 &&
           ((const uint8_t *)v.mv_data)[0] == 1;
}

/* Renews the read transaction on the generation the server serves; on 0 it
 * is renewed, for the caller to read and reset.
 *
 * Without a syscall when it can: a view that says "serving" at a txnid seen
 * before means no commit has happened since, so the server cannot have
 * begun to leave this generation (its mark is a commit, made before it
 * switches `current` and so before any restore's reply). Otherwise, as
 * when the mark says 0, when it is missing (a builder's generation the
 * server has not opened yet, or one it fell back from) or after any new
 * commit that may carry it, `current` is read again. A generation that
 * vanishes between the readlink and the open (a second restore) is looked
 * up again, once. */
static int follow(statesrv_local *l)
{
    if (l->scan)
        return lfail(l, STATESRV_ERR_USAGE, "a scan is open on this handle");
    statesrv_local_release(l);
    int rc;
    uint64_t g = 0;
    if (l->env) {
        if ((rc = renew(l)))
            return rc;
        size_t id = mdb_txn_id(l->txn);
        if (l->trusted && id == l->seen_txnid)
            return 0;
        if (view_serving(l)) {
            l->trusted = 1;
            l->seen_txnid = id;
            return 0;
        }
        l->trusted = 0;
        if ((g = current_gen(l->dir)) == l->gen)
            return 0;
        mdb_txn_reset(l->txn);
    }
    for (int attempt = 0;; attempt++) {
        if (attempt || !g)
            g = current_gen(l->dir);
        if (g == 0)
            return lfail(l, STATESRV_ERR_IO, "%s/current names no generation", l->dir);
        if ((rc = open_gen(l, g)) == 0)
            break;
        if (attempt)
            return rc;
    }
    /* `current` named g during this call, and the server writes no
     * generation it has left: g's view is this call's answer. */
    if ((rc = renew(l)))
        return rc;
    if (view_serving(l)) {
        l->trusted = 1;
        l->seen_txnid = mdb_txn_id(l->txn);
    }
    return 0;
}

/* The state's database: 0 with *dbi, STATESRV_NOT_FOUND when the state does
 * not exist, or an error; inside the renewed transaction. A handle is opened
 * in a short transaction of its own (it then stays valid for the
 * environment's life), and a transaction sees only handles opened before it
 * began: the read transaction is renewed after that. */
static int state_dbi(statesrv_local *l, const char *state, MDB_dbi *dbi)
{
    if (l->last_dbi < l->n_dbis && strcmp(l->dbis[l->last_dbi].name, state) == 0) {
        *dbi = l->dbis[l->last_dbi].dbi;
        return 0;
    }
    for (size_t i = 0; i < l->n_dbis; i++)
        if (strcmp(l->dbis[i].name, state) == 0) {
            *dbi = l->dbis[i].dbi;
            l->last_dbi = i;
            return 0;
        }
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t);
    if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(l->env, 0)) == 0)
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t);
    if (rc)
        return lfail(l, STATESRV_ERR_IO, "cannot begin a read transaction: %s", mdb_strerror(rc));
    rc = mdb_dbi_open(t, state, 0, dbi);
    if (rc) {
        mdb_txn_abort(t);
        return rc == MDB_NOTFOUND
                   ? STATESRV_NOT_FOUND
                   : lfail(l, STATESRV_ERR_IO, "state %s: %s", state, mdb_strerror(rc));
    }
    if ((rc = mdb_txn_commit(t)))
        return lfail(l, STATESRV_ERR_IO, "state %s: %s", state, mdb_strerror(rc));
    mdb_txn_reset(l->txn);
    if ((rc = renew(l)))
        return rc;
    if (l->n_dbis == l->cap_dbis) {
        size_t cap = l->cap_dbis ? 2 * l->cap_dbis : 8;
        struct dbi_slot *d = realloc(l->dbis, cap * sizeof(*d));
        if (!d)
            return 0; /* used uncached; it is looked up again next time */
        l->dbis = d;
        l->cap_dbis = cap;
    }
    snprintf(l->dbis[l->n_dbis].name, sizeof(l->dbis[0].name), "%s", state);
    l->dbis[l->n_dbis++].dbi = *dbi;
    return 0;
}

/* What the server's resolve() checks, with its statuses. On 0, skey holds
 * the stored key (*sklen bytes; *prefix_len of them without the namespace). */
static int resolve(statesrv_local *l, const statesrv_key *k, int with_ns, uint8_t *skey,
                   size_t *sklen, size_t *prefix_len)
{
    if (!k || !k->state || (!k->key && k->key_len) || (with_ns && !k->ns && k->ns_len))
        return lfail(l, STATESRV_ERR_USAGE, "a key, state or namespace is NULL");
    /* A state opened before has a valid name (state_dbi checks it first). */
    if (!(l->last_dbi < l->n_dbis && strcmp(l->dbis[l->last_dbi].name, k->state) == 0) &&
        !sv_state_name_valid(k->state, strlen(k->state)))
        return lfail(l, STATESRV_INVALID_ARGUMENT, "state name '%.64s' is invalid", k->state);
    if (k->key_len == 0)
        return lfail(l, STATESRV_INVALID_ARGUMENT, "key is empty");
    if (k->has_key_group && k->key_group >= l->key_groups)
        return lfail(l, STATESRV_INVALID_ARGUMENT, "key_group %u is out of range (%u key groups)",
                     k->key_group, l->key_groups);
    size_t ns_len = with_ns ? k->ns_len : 0;
    if (k->key_len > l->max_key || ns_len > l->max_key ||
        sv_skey_size(k->key_len, ns_len) > l->max_key)
        return lfail(l, STATESRV_TOO_LARGE, "key and namespace encode to more than %zu bytes",
                     l->max_key);
    uint32_t kg =
        k->has_key_group ? k->key_group : sv_key_group_of(k->key, k->key_len, l->key_groups);
    if (kg < l->kg_first || kg > l->kg_last)
        return lfail(l, STATESRV_INVALID_ARGUMENT,
                     "key group %u is not served here: this store holds key groups %u-%u", kg,
                     l->kg_first, l->kg_last);
    *sklen = sv_skey_encode(skey, kg, k->key, k->key_len, with_ns ? k->ns : NULL, ns_len);
    *prefix_len = *sklen - ns_len;
    return 0;
}

/* Whether an entry with this expiry is absent to reads, as the server has
 * it (docs/protocol.md, "State TTL"): expired by the clock, and its state
 * does not return expired entries (the setting is in the store's $ttl:
 * state name -> ttl_ms u64 BE, update u8, visibility u8). Local reads never
 * refresh an expiry (ON_READ_AND_WRITE needs a write: the server's). In the
 * renewed transaction. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether state returns expired entries (RETURN_EXPIRED_IF_NOT_CLEANED_UP). */
static int returns_expired(statesrv_local *l, const char *state)
{
    MDB_dbi dbi;
    MDB_val k = {strlen(state), (void *)state}, v;
    if (mdb_dbi_open(l->txn, "$ttl", 0, &dbi) || mdb_get(l->txn, dbi, &k, &v) || v.mv_size < 10)
        return 0; /* no setting: never returned */
    return ((const uint8_t *)v.mv_data)[9] != 0;
}

static int hidden_expired(statesrv_local *l, const char *state, uint64_t expiry_ms)
{
    if (!expiry_ms || expiry_ms > now_ms())
        return 0;
    return !returns_expired(l, state);
}

/* A timed list (sv_value.h) as the server answers it: the plain list of its
 * live elements, in l->view (valid until the next read). */
static int timed_view(statesrv_local *l, const char *state, struct sv_value *sv)
{
    size_t dropped;
    l->view.len = 0;
    int keep = returns_expired(l, state);
    int rc = sv_tlist_plain(sv, now_ms(), keep, &l->view, &dropped);
    if (rc == SV_ECORRUPT)
        return lfail(l, STATESRV_INTERNAL, "corrupt stored list");
    if (rc)
        return lfail(l, STATESRV_ERR_NOMEM, "out of memory reading a list");
    sv->data = l->view.data;
    sv->len = l->view.len;
    sv->timed = 0;
    return 0;
}

/* Finds one stored key in the renewed transaction: *sv points into the map. */
static int find_one(statesrv_local *l, const char *state, MDB_dbi dbi, const uint8_t *skey,
                    size_t sklen, struct sv_value *sv)
{
    MDB_val key = {sklen, (void *)skey}, v;
    int rc = mdb_get(l->txn, dbi, &key, &v);
    if (rc == MDB_NOTFOUND)
        return STATESRV_NOT_FOUND;
    if (rc)
        return lfail(l, STATESRV_ERR_IO, "read: %s", mdb_strerror(rc));
    if (sv_value_parse(v.mv_data, v.mv_size, sv))
        return lfail(l, STATESRV_INTERNAL, "corrupt stored value");
    if (hidden_expired(l, state, sv->expiry_ms))
        return STATESRV_NOT_FOUND;
    return sv->timed ? timed_view(l, state, sv) : 0;
}

/* Reads one stored key in the renewed transaction into out (a copy). */
static int read_one(statesrv_local *l, const char *state, MDB_dbi dbi, const uint8_t *skey,
                    size_t sklen, statesrv_value *out)
{
    struct sv_value sv;
    int rc = find_one(l, state, dbi, skey, sklen, &sv);
    if (rc)
        return rc;
    void *p = NULL;
    if (sv.len && !(p = malloc(sv.len)))
        return lfail(l, STATESRV_ERR_NOMEM, "out of memory copying %zu bytes", sv.len);
    if (sv.len)
        memcpy(p, sv.data, sv.len);
    out->data = p;
    out->len = sv.len;
    out->kind = (int)sv.kind;
    out->found = 1;
    return 0;
}

int statesrv_local_get(statesrv_local *l, const statesrv_key *k, statesrv_value *out)
{
    if (!l || !out)
        return STATESRV_ERR_USAGE;
    uint8_t skey[LOCAL_SKEY_MAX];
    size_t sklen, plen;
    MDB_dbi dbi;
    int rc = follow(l);
    if (rc)
        return rc;
    if ((rc = resolve(l, k, 1, skey, &sklen, &plen)) == 0 &&
        (rc = state_dbi(l, k->state, &dbi)) == 0)
        rc = read_one(l, k->state, dbi, skey, sklen, out);
    mdb_txn_reset(l->txn);
    if (rc == 0)
        l->errmsg[0] = '\0';
    return rc == STATESRV_NOT_FOUND ? lfail(l, rc, "not found") : rc;
}

int statesrv_local_get_ref(statesrv_local *l, const statesrv_key *k, const void **data, size_t *len,
                           int *kind)
{
    if (!l || !data || !len || !kind)
        return STATESRV_ERR_USAGE;
    uint8_t skey[LOCAL_SKEY_MAX];
    size_t sklen, plen;
    MDB_dbi dbi;
    struct sv_value sv;
    int rc = follow(l);
    if (rc)
        return rc;
    if ((rc = resolve(l, k, 1, skey, &sklen, &plen)) == 0 &&
        (rc = state_dbi(l, k->state, &dbi)) == 0 &&
        (rc = find_one(l, k->state, dbi, skey, sklen, &sv)) == 0) {
        /* The view stays until the next call or statesrv_local_release(). */
        l->held = 1;
        *data = sv.len ? (const void *)sv.data : (const void *)"";
        *len = sv.len;
        *kind = (int)sv.kind;
        l->errmsg[0] = '\0';
        return STATESRV_OK;
    }
    mdb_txn_reset(l->txn);
    return rc == STATESRV_NOT_FOUND ? lfail(l, rc, "not found") : rc;
}

void statesrv_local_release(statesrv_local *l)
{
    if (l && l->held) {
        mdb_txn_reset(l->txn);
        l->held = 0;
    }
}

int statesrv_local_multi_get(statesrv_local *l, const statesrv_key *keys, size_t n,
                             statesrv_value *out)
{
    if (!l || (n && (!keys || !out)))
        return STATESRV_ERR_USAGE;
    int rc = follow(l);
    if (rc)
        return rc;
    uint8_t skey[LOCAL_SKEY_MAX];
    size_t sklen, plen;
    /* Every key is checked before anything is read, as the server does. */
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if ((rc = resolve(l, &keys[i], 1, skey, &sklen, &plen))) {
            mdb_txn_reset(l->txn);
            return rc;
        }
    }
    MDB_dbi *dbis = malloc((n ? n : 1) * sizeof(*dbis));
    int *absent = calloc(n ? n : 1, sizeof(*absent));
    if (!dbis || !absent) {
        free(dbis);
        free(absent);
        mdb_txn_reset(l->txn);
        return lfail(l, STATESRV_ERR_NOMEM, "out of memory for %zu keys", n);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = state_dbi(l, keys[i].state, &dbis[i]);
        if (rc == STATESRV_NOT_FOUND) {
            absent[i] = 1;
            rc = 0;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (absent[i])
            continue;
        resolve(l, &keys[i], 1, skey, &sklen, &plen);
        rc = read_one(l, keys[i].state, dbis[i], skey, sklen, &out[i]);
        if (rc == STATESRV_NOT_FOUND)
            rc = 0;
    }
    mdb_txn_reset(l->txn);
    free(dbis);
    free(absent);
    if (rc)
        statesrv_values_free(out, n);
    else
        l->errmsg[0] = '\0';
    return rc;
}

/* The least byte string above every string with this prefix, in place:
 * its length, or 0 when there is none (all 0xff). */
static size_t prefix_above(uint8_t *p, size_t n)
{
    while (n > 0 && p[n - 1] == 0xff)
        n--;
    if (n > 0)
        p[n - 1]++;
    return n;
}

int statesrv_local_scan_open(statesrv_local *l, const statesrv_scan_options *o,
                             statesrv_local_scan **out)
{
    if (!l || !o || !out)
        return STATESRV_ERR_USAGE;
    *out = NULL;
    if (o->cursor || o->cursor_len)
        return lfail(l, STATESRV_ERR_USAGE, "a local scan takes no cursor");
    if (!o->state)
        return lfail(l, STATESRV_ERR_USAGE, "state is NULL");
    int rc = follow(l);
    if (rc)
        return rc;
    statesrv_local_scan *s = calloc(1, sizeof(*s));
    if (!s) {
        rc = lfail(l, STATESRV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s->l = l;
    if (!sv_state_name_valid(o->state, strlen(o->state))) {
        rc = lfail(l, STATESRV_INVALID_ARGUMENT, "state name '%.64s' is invalid", o->state);
        goto fail;
    }
    memcpy(s->state, o->state, strlen(o->state) + 1);
    if (o->mode == STATESRV_SCAN_KEY) {
        statesrv_key k = {.state = o->state,
                          .key = o->key,
                          .key_len = o->key_len,
                          .has_key_group = o->has_key_group,
                          .key_group = o->key_group};
        size_t sklen;
        if ((rc = resolve(l, &k, 0, s->lo, &sklen, &s->lolen)))
            goto fail;
        memcpy(s->hi, s->lo, s->lolen);
        s->hilen = prefix_above(s->hi, s->lolen);
    } else if (o->mode == STATESRV_SCAN_KEY_GROUPS) {
        if (o->kg_first > o->kg_last || o->kg_last >= l->key_groups) {
            rc = lfail(l, STATESRV_INVALID_ARGUMENT,
                       "key group range %u-%u is invalid: need first <= last < %u", o->kg_first,
                       o->kg_last, l->key_groups);
            goto fail;
        }
        sv_be16_put(s->lo, (uint16_t)o->kg_first);
        s->lolen = 2;
        sv_be16_put(s->hi, (uint16_t)(o->kg_last + 1));
        s->hilen = 2;
    } else if (o->mode != STATESRV_SCAN_STATE) {
        rc = lfail(l, STATESRV_ERR_USAGE, "unknown scan mode %d", o->mode);
        goto fail;
    }
    MDB_dbi dbi;
    rc = state_dbi(l, o->state, &dbi);
    if (rc == STATESRV_NOT_FOUND) {
        s->done = 1; /* a state that does not exist has no entries */
        mdb_txn_reset(l->txn);
    } else if (rc) {
        goto fail;
    } else if ((rc = mdb_cursor_open(l->txn, dbi, &s->cur))) {
        rc = lfail(l, STATESRV_ERR_IO, "cursor: %s", mdb_strerror(rc));
        goto fail;
    }
    l->scan = s;
    l->errmsg[0] = '\0';
    *out = s;
    return STATESRV_OK;
fail:
    mdb_txn_reset(l->txn);
    free(s);
    return rc;
}

int statesrv_local_scan_next(statesrv_local_scan *s, const statesrv_entry **e)
{
    if (!s || !e)
        return STATESRV_ERR_USAGE;
    *e = NULL;
    if (s->done)
        return STATESRV_OK;
    statesrv_local *l = s->l;
    MDB_val k = {s->lolen, s->lo}, v;
    int rc;
    struct sv_skey sk;
    struct sv_value sv;
    for (;;) { /* expired entries are skipped, as the server's scan does */
        if (!s->started) {
            s->started = 1;
            rc = s->lolen ? mdb_cursor_get(s->cur, &k, &v, MDB_SET_RANGE)
                          : mdb_cursor_get(s->cur, &k, &v, MDB_FIRST);
        } else {
            rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND ||
            (rc == 0 && s->hilen && sv_skey_cmp(k.mv_data, k.mv_size, s->hi, s->hilen) >= 0)) {
            s->done = 1;
            return STATESRV_OK;
        }
        if (rc)
            return lfail(l, STATESRV_ERR_IO, "scan: %s", mdb_strerror(rc));
        if (sv_skey_decode(k.mv_data, k.mv_size, &sk) || sv_value_parse(v.mv_data, v.mv_size, &sv))
            return lfail(l, STATESRV_INTERNAL, "corrupt stored entry");
        if (!hidden_expired(l, s->state, sv.expiry_ms))
            break;
    }
    if (sv.timed && (rc = timed_view(l, s->state, &sv)))
        return rc;
    s->e.key = sk.key;
    s->e.key_len = sk.key_len;
    s->e.ns = sk.ns;
    s->e.ns_len = sk.ns_len;
    s->e.key_group = sk.kg;
    s->e.value = sv.data;
    s->e.value_len = sv.len;
    s->e.kind = (int)sv.kind;
    *e = &s->e;
    return STATESRV_OK;
}

void statesrv_local_scan_close(statesrv_local_scan *s)
{
    if (!s)
        return;
    if (s->cur) {
        mdb_cursor_close(s->cur);
        mdb_txn_reset(s->l->txn);
    }
    s->l->scan = NULL;
    free(s);
}

int statesrv_local_open(const char *data_dir, statesrv_local **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out || !data_dir)
        return STATESRV_ERR_USAGE;
    *out = NULL;
    if (strlen(data_dir) >= LOCAL_PATH_MAX - 64) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "data directory path is too long");
        return STATESRV_ERR_USAGE;
    }
    statesrv_local *l = calloc(1, sizeof(*l));
    if (!l)
        return STATESRV_ERR_NOMEM;
    snprintf(l->dir, sizeof(l->dir), "%s", data_dir);
    uint64_t g = current_gen(data_dir);
    int rc = g ? open_gen(l, g)
               : lfail(l, STATESRV_ERR_CONNECT,
                       "%s is not a statesrvd data directory (no 'current' link to a gen-N "
                       "directory)",
                       data_dir);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", l->errmsg);
        statesrv_local_close(l);
        return rc;
    }
    l->errmsg[0] = '\0';
    *out = l;
    return STATESRV_OK;
}

void statesrv_local_close(statesrv_local *l)
{
    if (!l)
        return;
    if (l->scan)
        statesrv_local_scan_close(l->scan);
    close_env(l);
    free(l->dbis);
    sv_buf_free(&l->view);
    free(l);
}

const char *statesrv_local_errmsg(const statesrv_local *l)
{
    return l ? l->errmsg : "";
}

uint64_t statesrv_local_generation(const statesrv_local *l)
{
    return l ? l->gen : 0;
}

uint32_t statesrv_local_key_groups(const statesrv_local *l)
{
    return l ? l->key_groups : 0;
}
