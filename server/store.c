#include "store.h"
#include "fsutil.h"
#include "keycache.h"
#include "readgroup.h"
#include "sv_be.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Internal databases have names no state can have ('$' is not allowed). */
#define META_DB "$meta"
/* Entries as they were at a running snapshot's cut (see "snapshots"): an
 * environment of its own beside the generations, removed when it ends. */
#define KEEP_FILE "snapshot-keep.mdb"
#define KEEP_PREFIX 2 /* a key: the state's index in the snapshot (BE), the stored key */
#define KEEP_ABSENT 0 /* a value: a tag, then the stored value if KEEP_PRESENT */
#define KEEP_PRESENT 1
#define SNAP_CHUNK 1024 /* entries a snapshot reads per read transaction */
#define SKEY_CAP 1024   /* > any stored key: LMDB's limit is 511 by default */
#define META_FORMAT_KEY "format"
#define META_KEY_GROUPS_KEY "key_groups"
#define META_KG_RANGE_KEY "kg_range"
/* u8: 1 while this is the generation the server serves, 0 once it is
 * leaving it; local readers (client/statesrv_local.c) skip their readlink of
 * `current` while they see 1 and no newer commit. */
#define META_SERVING_KEY "serving"
/* Change tracking (see "changes"): the log of the entries changed since a
 * checkpoint's cut, for an incremental checkpoint. */
#define CHANGE_LOG_DB "$changelog"
#define OLD_CHANGES_DB "$changes"    /* the per-key change set of 0.5: dropped at open */
#define META_CHG_BASE_KEY "chg_base" /* the checkpoint they are changes since; absent: none */
#define OLD_META_CHG_EPOCH_KEY "chg_epoch"
#define CHG_CHUNK 1900 /* most bytes of records in a log entry: it fits a leaf page */
#define CHG_REC_MAX (2 + SV_STATE_NAME_MAX + 1 + 511) /* a record, with LMDB's key limit */
#define CHG_CACHE_SLOTS 4096 /* 256 KiB: the hot keys a log need not hold twice */
#define CHG_MAX_DEFAULT (256ull << 20)
#define CHG_DONE_CHUNK 20000 /* log entries a transaction of sv_store_changes_done deletes */
#define TTL_DB "$ttl"        /* state name -> TTL setting (see "TTL") */
#define TTL_VALUE_SIZE 10    /* a $ttl value: ttl_ms u64 BE, update u8, visibility u8 */
#define STORE_FORMAT 1u
#define SV_STORE_PATH_MAX 4200
#define PATH_BUF (SV_STORE_PATH_MAX + 300) /* a path under dir */
#define CURRENT_LINK "current"
#define GEN_PREFIX "gen-"
#define GROW_RETRY_MS 1000 /* after the disk refused a map growth */

/* Where the map's pages are, by LMDB's rules for reusing a freed page: the
 * pages a transaction frees are listed in the free-page database (dbi 0)
 * under its id, and a write transaction may reuse a list only when its id is
 * below both its own id - 1 and every reader's snapshot. */
struct free_census {
    int valid;
    uint64_t last_txnid; /* the committed transaction it describes */
    uint64_t reader_min; /* oldest reader's snapshot, or UINT64_MAX */
    uint64_t hw;         /* pages up to the last one ever written */
    uint64_t reusable;   /* free pages the next write transaction can take */
    uint64_t pinned;     /* free pages a reader still keeps */
    uint64_t recent;     /* freed by the last commit: reusable one commit later */
};

/* State name -> DBI, open addressing. depth says in which transaction the
 * handle was opened: 0 committed, 1 the group transaction, 2 a savepoint.
 * LMDB closes handles opened in a transaction that aborts, so those entries
 * must be forgotten on abort. */
enum slot_status { SLOT_EMPTY, SLOT_USED, SLOT_TOMB };

struct state_slot {
    uint32_t hash;
    uint8_t status;
    uint8_t depth;
    uint8_t len;
    MDB_dbi dbi;
    char name[SV_STATE_NAME_MAX + 1];
    /* Space accounting (see "space" below): the write transaction that last
     * charged this state, and how many of its leaves that transaction may
     * still copy on write. */
    uint64_t acct_gen;
    uint64_t cow_left;
};

/* Per write transaction: the space it may take (see "space" below). Reset
 * by sv_store_begin, except what describes committed state (census, the
 * refusal, the last commit of the store's own). */
struct store_acct {
    uint64_t gen;              /* counts write transactions (and rollbacks) */
    int init;                  /* hw and base are set for this one */
    int counted;               /* start is set for this one */
    struct free_census start;  /* the free lists it started from */
    uint64_t hw;               /* committed high-water mark, pages */
    uint64_t base;             /* pages its commit may take whatever it does */
    uint64_t est;              /* upper bound of the pages it has taken */
    uint64_t est_sp;           /* est when the savepoint began */
    int freed;                 /* it deleted something */
    uint64_t deficit;          /* a write was refused: the smallest shortfall, pages */
    uint64_t bump_txnid;       /* the last commit made only to age the free list */
    struct free_census census; /* cached by (transaction, oldest reader) */
    uint64_t refused_txnid;    /* the last refusal came after this commit, */
    uint64_t refused_need;     /* for a write that needed this many pages */
};

/* Per snapshot, from sv_store_snapshot_begin to sv_store_snapshot_finished
 * (see "snapshots: the cut"). The keep environment's write side and idx
 * belong to the loop thread; mu guards what the snapshot has read so far,
 * published by its thread (states before pos_state are read whole, and of
 * state pos_state every key <= pos_key, nothing if pos_len is 0), and
 * broken. */
struct store_snap {
    int active; /* begun, not yet finished */
    MDB_env *keep_env;
    MDB_dbi keep_dbi;
    MDB_txn *keep_txn; /* alongside the group transaction, committed first */
    uint16_t *idx;     /* by DBI: 1 + the state's index in the snapshot, 0 = not in it */
    size_t ndbi;
    uint64_t saved; /* entries kept as of the cut by this snapshot */
    pthread_mutex_t mu;
    int broken; /* an entry could not be kept: the snapshot fails */
    size_t pos_state;
    size_t pos_len;
    uint8_t pos_key[SKEY_CAP];
};

/* Change tracking (see "changes"). The log and what is known about it: its
 * base, its next sequence number and size; this transaction's records, not
 * yet in the log (written at commit); the keys logged since the last cut. */
struct store_chg {
    MDB_dbi dbi;
    int track;             /* writes are logged */
    int lost;              /* since the cut, a write went unlogged: this cut is no base */
    uint64_t base;         /* the checkpoint the log is relative to; 0: none */
    uint64_t next_seq;     /* the key of the next log entry */
    uint64_t log_bytes;    /* the log's size, about (its pages) */
    uint64_t max_bytes;    /* checkpoint_changes_max */
    struct sv_buf pending; /* this transaction's records */
    struct sv_buf hashes;  /* and their keys' hashes (sv_keycache_hash), u64 each */
    size_t pending_sp;     /* pending.len when the savepoint began */
    size_t hashes_sp;
    uint64_t charged; /* pending bytes the space accounting has counted */
    uint64_t charged_sp;
    struct sv_keycache logged; /* keys with a record in the log since the cut */
};

/* State TTL settings (see "TTL"): what $ttl holds, as the group transaction
 * sees it. */
struct ttl_entry {
    char name[SV_STATE_NAME_MAX + 1];
    uint8_t len;
    struct sv_ttl t;
};

struct store_ttl {
    MDB_dbi dbi;
    struct ttl_entry *e;
    size_t n, cap; /* cap: max_states */
    int dirty;     /* changed in the open transaction */
};

/* Where the TTL sweep is (see "the TTL sweep"). */
struct sweep {
    char state[SV_STATE_NAME_MAX + 1]; /* "" between rounds */
    uint8_t key[SKEY_CAP];             /* the last key it looked at */
    size_t klen;
    /* The walk sleeps until the clock reaches `due` (ms; 0: awake): the
     * earliest expiry the last round left in the store, or that a write set
     * since (UINT64_MAX: none). round_min collects it during a round. */
    uint64_t due, round_min;
    uint64_t expired, visited, rounds, ns;
};

/* The store, grouped by lifetime: the environment (open to close), the
 * group transaction, the space accounting of a transaction, the snapshot,
 * change tracking. */
struct sv_store {
    /* The environment. Where it lives: dir/gen-<gen>, named by dir/current. */
    MDB_env *env;
    char dir[PATH_BUF];
    uint64_t gen;
    struct sv_store_options opts;
    int lock_fd;
    MDB_dbi meta_dbi;
    uint32_t key_groups;
    uint32_t kg_first, kg_last; /* key-group range this store covers */
    uint32_t max_value_size;
    unsigned max_states;
    uint64_t map_size;
    uint64_t map_size_max;
    size_t max_key;
    uint64_t psize;         /* page size */
    int writemap;           /* MDB_WRITEMAP is on: the map is backed on disk */
    int writemap_failed;    /* backing it failed at open: stay without */
    uint64_t grow_retry_ms; /* writemap growth failed: not before this */
    struct state_slot *slots;
    size_t nslots; /* power of two */
    size_t used, tombs;

    /* The group transaction. */
    MDB_txn *txn;   /* or NULL */
    MDB_txn *child; /* savepoint, or NULL */
    /* A batch's savepoint is open: the child transaction, or with writemap
     * (LMDB has no nested transactions then) the group transaction itself,
     * which the savepoint found clean and a rollback discards whole. */
    int savepoint;
    int txn_dirty; /* the group transaction has written something */
    int txn_error;
    int dropped_in_txn; /* it dropped a state */
    struct sv_buf scratch;
    struct sv_buf view; /* a timed list as read: its live elements, plain */

    /* Change tracking (see "changes"): on while a checkpoint's cut is the
     * base to track from, or a snapshot runs that will be. */
    struct store_chg chg;
    struct store_ttl ttl;     /* see "TTL" */
    uint64_t expired_on_read; /* entries a read found expired and deleted */
    struct sweep sweep;

    struct store_acct acct;
    struct store_snap snap;
};

/* The cut (see "snapshots: the cut", after the entries that use it). */
static int keep_for_snapshot(struct sv_store *s, MDB_dbi dbi, const uint8_t *skey, size_t sklen,
                             int absent_too);
static void keep_commit(struct sv_store *s);
static void keep_abort(struct sv_store *s);
static void keep_close(struct sv_store *s);

/* --- errors -------------------------------------------------------------- */

static int map_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return SV_ENOTFOUND;
    case MDB_MAP_FULL:
        return SV_EMAPFULL;
    case MDB_DBS_FULL:
        return SV_ENOSPACE;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return SV_ECORRUPT;
    default:
        return rc > 0 ? -rc : SV_EINTERNAL;
    }
}

/* An LMDB failure inside a write leaves the transaction unusable. */
static int txn_fail(struct sv_store *s, int rc)
{
    int e = map_err(rc);
    if (!s->txn_error)
        s->txn_error = e;
    if (rc != MDB_MAP_FULL)
        sv_warn("store: write failed: %s", mdb_strerror(rc));
    return e;
}

static MDB_txn *cur_txn(const struct sv_store *s)
{
    return s->child ? s->child : s->txn;
}

/* The transaction to write in; marks the group transaction as written. */
static MDB_txn *write_txn(struct sv_store *s)
{
    s->txn_dirty = 1;
    return cur_txn(s);
}

/* --- state table --------------------------------------------------------- */

static uint32_t name_hash(const char *name, size_t len)
{
    return sv_murmur3_32(name, len, 0x5eed);
}

static struct state_slot *slot_find(struct sv_store *s, const char *name, size_t len)
{
    uint32_t h = name_hash(name, len);
    size_t mask = s->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct state_slot *sl = &s->slots[i];
        if (sl->status == SLOT_EMPTY)
            return NULL;
        if (sl->status == SLOT_USED && sl->hash == h && sl->len == len &&
            memcmp(sl->name, name, len) == 0)
            return sl;
    }
}

static void slot_insert_raw(struct state_slot *slots, size_t nslots, const struct state_slot *src)
{
    size_t mask = nslots - 1;
    for (size_t i = src->hash & mask;; i = (i + 1) & mask) {
        if (slots[i].status != SLOT_USED) {
            slots[i] = *src;
            slots[i].status = SLOT_USED;
            return;
        }
    }
}

/* Rebuilds the table without tombstones. The table never needs to grow:
 * it is sized for max_states from the start. */
static int slots_rehash(struct sv_store *s)
{
    struct state_slot *n = calloc(s->nslots, sizeof(*n));
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < s->nslots; i++)
        if (s->slots[i].status == SLOT_USED)
            slot_insert_raw(n, s->nslots, &s->slots[i]);
    free(s->slots);
    s->slots = n;
    s->tombs = 0;
    return 0;
}

static int slot_add(struct sv_store *s, const char *name, size_t len, MDB_dbi dbi, int depth)
{
    if ((s->used + s->tombs + 1) * 4 > s->nslots * 3) {
        int rc = slots_rehash(s);
        if (rc)
            return rc;
    }
    struct state_slot sl = {
        .hash = name_hash(name, len), .depth = (uint8_t)depth, .len = (uint8_t)len, .dbi = dbi};
    memcpy(sl.name, name, len);
    sl.name[len] = '\0';
    size_t mask = s->nslots - 1;
    for (size_t i = sl.hash & mask;; i = (i + 1) & mask) {
        if (s->slots[i].status != SLOT_USED) {
            if (s->slots[i].status == SLOT_TOMB)
                s->tombs--;
            s->slots[i] = sl;
            s->slots[i].status = SLOT_USED;
            s->used++;
            return 0;
        }
    }
}

static void slot_remove(struct sv_store *s, struct state_slot *sl)
{
    sl->status = SLOT_TOMB;
    s->used--;
    s->tombs++;
}

/* Forgets handles opened at `depth` or deeper (their transaction aborted),
 * or, with commit, folds them into the enclosing level. */
static void slots_end_level(struct sv_store *s, int depth, int commit)
{
    for (size_t i = 0; i < s->nslots; i++) {
        struct state_slot *sl = &s->slots[i];
        if (sl->status != SLOT_USED || sl->depth < depth)
            continue;
        if (commit)
            sl->depth = (uint8_t)(depth - 1);
        else
            slot_remove(s, sl);
    }
}

/* Finds the DBI of a state. With create, makes the state if it is missing
 * (bounded by max_states). SV_ENOTFOUND when it does not exist. */
static int state_dbi(struct sv_store *s, const char *state, size_t slen, int create, MDB_dbi *dbi)
{
    struct state_slot *sl = slot_find(s, state, slen);
    if (sl) {
        *dbi = sl->dbi;
        return 0;
    }
    MDB_txn *txn = cur_txn(s);
    if (!txn)
        return SV_EINTERNAL;
    char name[SV_STATE_NAME_MAX + 1];
    memcpy(name, state, slen);
    name[slen] = '\0';
    /* An existing state is opened without MDB_CREATE first, so the count
     * check below only applies to new ones. */
    int rc = mdb_dbi_open(txn, name, 0, dbi);
    if (rc == MDB_NOTFOUND) {
        if (!create)
            return SV_ENOTFOUND;
        if (s->used >= s->max_states)
            return SV_ENOSPACE;
        rc = mdb_dbi_open(write_txn(s), name, MDB_CREATE, dbi);
        if (rc == MDB_DBS_FULL)
            return SV_ENOSPACE;
        if (rc)
            return txn_fail(s, rc);
    } else if (rc) {
        return map_err(rc);
    }
    rc = slot_add(s, state, slen, *dbi, s->savepoint ? 2 : 1);
    return rc;
}

/* --- open / close -------------------------------------------------------- */

static int put_kg_range(MDB_txn *txn, MDB_dbi meta, uint32_t first, uint32_t last)
{
    uint8_t be[8];
    sv_be32_put(be, first);
    sv_be32_put(be + 4, last);
    MDB_val k = {strlen(META_KG_RANGE_KEY), META_KG_RANGE_KEY}, v = {8, be};
    return mdb_put(txn, meta, &k, &v, 0);
}

static int changes_open(struct sv_store *s, MDB_txn *txn);
static int ttl_open(struct sv_store *s, MDB_txn *txn);
static void ttl_reload(struct sv_store *s, MDB_txn *txn);
static int changes_flush(struct sv_store *s, uint64_t *chunks, int *overflow);
static void changes_committed(struct sv_store *s, int ok, uint64_t chunks, int overflow);

static int meta_init(struct sv_store *s, const struct sv_store_options *o, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        snprintf(err, errlen, "%s: cannot begin transaction: %s", o->dir, mdb_strerror(rc));
        return map_err(rc);
    }
    rc = mdb_dbi_open(txn, META_DB, MDB_CREATE, &s->meta_dbi);
    if (rc)
        goto fail;

    MDB_val k = {strlen(META_KEY_GROUPS_KEY), META_KEY_GROUPS_KEY}, v;
    rc = mdb_get(txn, s->meta_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t be[4];
        sv_be32_put(be, o->key_groups);
        v.mv_size = 4;
        v.mv_data = be;
        if ((rc = mdb_put(txn, s->meta_dbi, &k, &v, 0)))
            goto fail;
        uint8_t fmt[4] = {0, 0, 0, STORE_FORMAT};
        MDB_val fk = {strlen(META_FORMAT_KEY), META_FORMAT_KEY}, fv = {4, fmt};
        if ((rc = mdb_put(txn, s->meta_dbi, &fk, &fv, 0)))
            goto fail;
        if ((rc = put_kg_range(txn, s->meta_dbi, 0, o->key_groups - 1)))
            goto fail;
        s->key_groups = o->key_groups;
        sv_info("store: new data directory %s with key_groups = %u", o->dir, s->key_groups);
    } else if (rc) {
        goto fail;
    } else {
        if (v.mv_size != 4) {
            snprintf(err, errlen, "%s: corrupt metadata (key_groups)", o->dir);
            mdb_txn_abort(txn);
            return SV_ECORRUPT;
        }
        const uint8_t *p = v.mv_data;
        uint32_t kg = sv_be32_get(p);
        if (kg < 1 || kg > SV_KEY_GROUPS_MAX) {
            snprintf(err, errlen, "%s: corrupt metadata (key_groups = %u)", o->dir, kg);
            mdb_txn_abort(txn);
            return SV_ECORRUPT;
        }
        if (o->key_groups_set && kg != o->key_groups) {
            snprintf(err, errlen,
                     "%s was created with key_groups = %u, but key_groups = %u is configured; "
                     "key groups are the job's max parallelism, fixed for the life of its "
                     "state (its checkpoints too: a restore needs the same value): set "
                     "key_groups = %u again, or, for a job whose state starts empty, give "
                     "it a new data_dir",
                     o->dir, kg, o->key_groups, kg);
            mdb_txn_abort(txn);
            return SV_EINVAL;
        }
        s->key_groups = kg;
    }
    s->kg_first = 0;
    s->kg_last = s->key_groups - 1;
    MDB_val rk = {strlen(META_KG_RANGE_KEY), META_KG_RANGE_KEY}, rv;
    if (mdb_get(txn, s->meta_dbi, &rk, &rv) == 0 && rv.mv_size == 8) {
        const uint8_t *p = rv.mv_data;
        uint32_t a = sv_be32_get(p), b = sv_be32_get(p + 4);
        if (a <= b && b < s->key_groups) {
            s->kg_first = a;
            s->kg_last = b;
        }
    }

    /* The change log, and what it is relative to. */
    if ((rc = changes_open(s, txn)) || (rc = ttl_open(s, txn)))
        goto fail;

    /* Open every existing state, so the table knows how many there are. */
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)))
        goto fail;
    if ((rc = mdb_cursor_open(txn, main_dbi, &cur)))
        goto fail;
    MDB_val name, data;
    int crc;
    while ((crc = mdb_cursor_get(cur, &name, &data, MDB_NEXT)) == 0) {
        if (!sv_state_name_valid(name.mv_data, name.mv_size))
            continue; /* internal ($meta) */
        char buf[SV_STATE_NAME_MAX + 1];
        memcpy(buf, name.mv_data, name.mv_size);
        buf[name.mv_size] = '\0';
        MDB_dbi dbi;
        if ((rc = mdb_dbi_open(txn, buf, 0, &dbi))) {
            mdb_cursor_close(cur);
            goto fail;
        }
        if ((rc = slot_add(s, buf, name.mv_size, dbi, 0)) != 0) {
            mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            snprintf(err, errlen, "%s: out of memory", o->dir);
            return rc;
        }
    }
    mdb_cursor_close(cur);
    if (crc != MDB_NOTFOUND) {
        rc = crc;
        goto fail;
    }
    if (s->used > s->max_states)
        sv_warn("store: %zu states exist but max_states = %u; no new state can be created", s->used,
                s->max_states);
    MDB_val sk = {strlen(META_SERVING_KEY), META_SERVING_KEY}, sv = {1, "\1"};
    if ((rc = mdb_put(txn, s->meta_dbi, &sk, &sv, 0)))
        goto fail;
    if ((rc = mdb_txn_commit(txn))) {
        snprintf(err, errlen, "%s: cannot commit: %s", o->dir, mdb_strerror(rc));
        return map_err(rc);
    }
    return 0;
fail:
    snprintf(err, errlen, "%s: cannot read metadata: %s", o->dir, mdb_strerror(rc));
    mdb_txn_abort(txn);
    return map_err(rc);
}

/* The generation "current" names, or 0 if there is none. */
static uint64_t current_gen(const char *dir)
{
    char link[PATH_BUF], target[64];
    snprintf(link, sizeof(link), "%.4000s/" CURRENT_LINK, dir);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return 0;
    target[n] = '\0';
    char *end;
    if (strncmp(target, GEN_PREFIX, strlen(GEN_PREFIX)) != 0)
        return 0;
    errno = 0;
    unsigned long long g = strtoull(target + strlen(GEN_PREFIX), &end, 10);
    return (*end || errno) ? 0 : (uint64_t)g;
}

static void gen_path(char *out, size_t cap, const char *dir, uint64_t gen)
{
    /* dir is at most SV_STORE_PATH_MAX - 32 bytes (checked at open). */
    int n = snprintf(out, cap, "%.4000s/" GEN_PREFIX "%06" PRIu64, dir, gen);
    (void)n;
}

/* Points dir/current at generation gen, atomically (symlink + rename), and
 * makes that durable. */
static int set_current(const char *dir, uint64_t gen)
{
    char tmp[PATH_BUF], link[PATH_BUF], target[64];
    snprintf(tmp, sizeof(tmp), "%.4000s/" CURRENT_LINK ".tmp", dir);
    snprintf(link, sizeof(link), "%.4000s/" CURRENT_LINK, dir);
    snprintf(target, sizeof(target), GEN_PREFIX "%06" PRIu64, gen);
    unlink(tmp);
    if (symlink(target, tmp))
        return -errno;
    if (rename(tmp, link)) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return sv_fs_fsync_dir(dir);
}

/* Removes generations other than the current one: a restore that did not
 * finish, or the one a finished restore replaced. */
static void remove_stale_generations(const char *dir, uint64_t keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_BUF];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, GEN_PREFIX, strlen(GEN_PREFIX)) != 0)
            continue;
        char *end;
        unsigned long long g = strtoull(e->d_name + strlen(GEN_PREFIX), &end, 10);
        if (*end || g == keep)
            continue;
        snprintf(path, sizeof(path), "%.4000s/%.255s", dir, e->d_name);
        sv_info("store: removing stale generation %s", path);
        sv_fs_rm_rf(path);
    }
    closedir(d);
    snprintf(path, sizeof(path), "%.4000s/" CURRENT_LINK ".tmp", dir);
    unlink(path);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Allocates the data file's blocks in [from, size), so that no page of the
 * writable map can fault on a full disk. The filesystem's free space is
 * checked first: a posix_fallocate that fails part-way may keep what it got
 * (ext4 does) and leave the disk full for everyone else. An errno value, or
 * 0. */
static int back_map(struct sv_store *s, uint64_t from, uint64_t size)
{
    mdb_filehandle_t fd;
    struct stat st;
    struct statvfs vfs;
    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st))
        return EINVAL;
    if (size > (uint64_t)INT64_MAX)
        return EFBIG;
    uint64_t have = (uint64_t)st.st_blocks * 512;
    uint64_t need = size > have ? size - have : 0;
    if (fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need)
        return ENOSPC;
    return posix_fallocate(fd, (off_t)from, (off_t)(size - from));
}

/* Whether a write to env that failed with rc failed because the disk is
 * full: without writemap LMDB writes its pages with pwrite, and one cut
 * short by a full disk comes back as EIO, not ENOSPC. Then the filesystem
 * has (next to) nothing left. */
static int disk_full(MDB_env *env, int rc)
{
    if (rc != EIO && rc != ENOSPC)
        return 0;
    mdb_filehandle_t fd;
    struct statvfs vfs;
    if (!env || mdb_env_get_fd(env, &fd) || fstatvfs(fd, &vfs))
        return rc == ENOSPC;
    uint64_t blocks = geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail;
    return rc == ENOSPC || blocks * vfs.f_frsize < ((uint64_t)1 << 20);
}

/* map_err for writes to env: a full disk is SV_ENOSPACE. */
static int write_err(MDB_env *env, int rc)
{
    return disk_full(env, rc) ? SV_ENOSPACE : map_err(rc);
}

/* Opens the LMDB environment of generation s->gen and loads its states. */
static int env_open(struct sv_store *s, char *err, size_t errlen)
{
    const struct sv_store_options *o = &s->opts;
    char path[PATH_BUF];
    gen_path(path, sizeof(path), s->dir, s->gen);
    int rc;
    if ((rc = mdb_env_create(&s->env))) {
        snprintf(err, errlen, "mdb_env_create: %s", mdb_strerror(rc));
        s->env = NULL;
        return map_err(rc);
    }
    /* $meta, $changelog, $ttl, max_states states, and one spare: LMDB needs
     * a free handle slot even to find out that a name does not exist (else
     * MDB_DBS_FULL). */
    mdb_env_set_maxdbs(s->env, o->max_states + 4);
    mdb_env_set_mapsize(s->env, s->map_size ? s->map_size : o->map_size);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (!o->sync_always)
        flags |= MDB_NOSYNC;
    if (o->writemap && !s->writemap_failed)
        flags |= MDB_WRITEMAP;
    if ((rc = mdb_env_open(s->env, path, flags, 0640))) {
        snprintf(err, errlen, "cannot open store in %s: %s", path, mdb_strerror(rc));
        mdb_env_close(s->env);
        s->env = NULL;
        return map_err(rc);
    }
    if (s->opts.read_group_set &&
        (rc = sv_readgroup_grant_generation(path, s->opts.read_gid, err, errlen))) {
        mdb_env_close(s->env);
        s->env = NULL;
        return rc;
    }
    /* LMDB has just created data.mdb and lock.mdb in a new generation:
     * their entries must be durable before any commit that relies on them
     * (ext4 and xfs do that with the first fdatasync; POSIX does not). */
    if ((rc = sv_fs_fsync_dir(path))) {
        snprintf(err, errlen, "cannot fsync %s: %s", path, strerror(-rc));
        mdb_env_close(s->env);
        s->env = NULL;
        return rc;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize; /* LMDB keeps a larger size recorded in the file */
    s->writemap = (flags & MDB_WRITEMAP) != 0;
    /* Before the first write transaction: with a writable map, a page of a
     * sparse file that the disk cannot hold would be a SIGBUS. */
    if (s->writemap && (rc = back_map(s, 0, s->map_size)) != 0) {
        sv_warn("store: cannot allocate %llu MiB on disk for the map of %s (%s): running "
                "without writemap (slower writes)",
                (unsigned long long)(s->map_size >> 20), path, strerror(rc));
        mdb_env_close(s->env);
        s->env = NULL;
        s->writemap_failed = 1;
        return env_open(s, err, errlen);
    }
    s->max_key = (size_t)mdb_env_get_maxkeysize(s->env);
    if (s->max_key + KEEP_PREFIX > SKEY_CAP)
        s->max_key = SKEY_CAP - KEEP_PREFIX;
    MDB_stat est;
    mdb_env_stat(s->env, &est);
    s->psize = est.ms_psize;
    s->acct.census.valid = 0;
    s->acct.refused_txnid = 0;
    s->acct.bump_txnid = 0;
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead)
        sv_info("store: cleared %d stale reader slot(s)", dead);
    memset(s->slots, 0, s->nslots * sizeof(*s->slots));
    s->used = s->tombs = 0;
    if ((rc = meta_init(s, o, err, errlen))) {
        mdb_env_close(s->env);
        s->env = NULL;
        return rc;
    }
    return 0;
}

/* More states exist than max_states allows (the setting was lowered): open
 * anyway with room for all of them; creating new ones stays refused. */
static int env_open_any(struct sv_store *s, char *err, size_t errlen)
{
    int rc = env_open(s, err, errlen);
    if (rc != SV_ENOSPACE)
        return rc;
    unsigned want = s->opts.max_states;
    s->opts.max_states = 32000;
    if (s->nslots < 32000 * 2 + 8) {
        free(s->slots);
        s->nslots = 65536 * 2;
        s->slots = calloc(s->nslots, sizeof(*s->slots));
        if (!s->slots) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    rc = env_open(s, err, errlen);
    s->opts.max_states = want;
    return rc;
}

int sv_store_open(const struct sv_store_options *o, struct sv_store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->lock_fd = -1;
    pthread_mutex_init(&s->snap.mu, NULL);
    s->opts = *o;
    s->opts.dir = s->dir;
    s->max_states = o->max_states;
    s->max_value_size = o->max_value_size;
    s->map_size_max = o->map_size_max;
    s->chg.max_bytes = o->changes_max ? o->changes_max : CHG_MAX_DEFAULT;
    if (!o->untracked && sv_keycache_init(&s->chg.logged, CHG_CACHE_SLOTS))
        sv_warn("store: no memory for the cache of logged keys; every write is logged");
    s->nslots = 16;
    while (s->nslots < (size_t)o->max_states * 2 + 8)
        s->nslots *= 2;
    s->slots = calloc(s->nslots, sizeof(*s->slots));
    int rc;
    if (!s->slots) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if (strlen(o->dir) >= sizeof(s->dir) - 32) {
        snprintf(err, errlen, "data directory path is too long");
        rc = SV_EINVAL;
        goto fail;
    }
    snprintf(s->dir, sizeof(s->dir), "%s", o->dir);

    if ((rc = sv_fs_mkdir_p(o->dir))) {
        snprintf(err, errlen, "cannot create data directory %s: %s", o->dir, strerror(-rc));
        goto fail;
    }
    /* LMDB lets several processes share an environment; two daemons on one
     * directory would still be a mistake, so hold a lock for our lifetime. */
    char lockpath[PATH_BUF];
    snprintf(lockpath, sizeof(lockpath), "%.4000s/statesrvd.lock", o->dir);
    s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", lockpath, strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB)) {
        rc = errno == EWOULDBLOCK ? SV_EBUSY : -errno;
        snprintf(err, errlen, "%s is in use by another statesrvd (lock %s)", o->dir, lockpath);
        goto fail;
    }
    if (o->read_group_set && (rc = sv_readgroup_grant_data_dir(o->dir, o->read_gid, err, errlen)))
        goto fail;

    s->gen = current_gen(o->dir);
    char probe[PATH_BUF];
    snprintf(probe, sizeof(probe), "%.4000s/" CURRENT_LINK, s->dir);
    struct stat lst;
    if (s->gen == 0 && lstat(probe, &lst) == 0) {
        snprintf(err, errlen, "%s is not a link to a generation directory; refusing to guess",
                 probe);
        rc = SV_ECORRUPT;
        goto fail;
    }
    snprintf(probe, sizeof(probe), "%.4000s/data.mdb", s->dir);
    if (s->gen == 0 && access(probe, F_OK) == 0) {
        /* Never serve an empty store next to one in another layout. */
        snprintf(err, errlen,
                 "%s holds an LMDB store but no 'current' link; move data.mdb into a "
                 "gen-000001 directory and link current -> gen-000001, or use an empty data_dir",
                 s->dir);
        rc = SV_EINVAL;
        goto fail;
    }
    if (s->gen == 0) {
        /* A new data directory: generation 1. */
        char path[PATH_BUF];
        s->gen = 1;
        gen_path(path, sizeof(path), s->dir, s->gen);
        if ((mkdir(path, 0750) && errno != EEXIST) || (rc = set_current(s->dir, s->gen))) {
            rc = rc ? rc : -errno;
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
            goto fail;
        }
    }
    gen_path(probe, sizeof(probe), s->dir, s->gen);
    if (access(probe, F_OK)) {
        snprintf(err, errlen,
                 "%s/current names %s, which does not exist; refusing to start "
                 "(nothing was removed)",
                 s->dir, probe);
        rc = SV_ECORRUPT;
        goto fail;
    }
    if ((rc = env_open_any(s, err, errlen)))
        goto fail;
    /* Only once the current generation is known good. */
    remove_stale_generations(s->dir, s->gen);
    keep_close(s); /* a snapshot's copies from before a crash */
    sv_info("store: %s open (generation %" PRIu64 "): %zu state(s), key_groups %u, map %llu "
            "MiB, sync %s, writemap %s",
            o->dir, s->gen, s->used, s->key_groups, (unsigned long long)(s->map_size >> 20),
            o->sync_always ? "always" : "none", s->writemap ? "on" : "off");
    *out = s;
    return 0;
fail:
    sv_store_close(s);
    return rc;
}

void sv_store_close(struct sv_store *s)
{
    if (!s)
        return;
    if (s->txn)
        sv_store_abort(s);
    if (s->env) {
        mdb_env_sync(s->env, 1);
        mdb_env_close(s->env);
    }
    if (s->snap.keep_env)
        keep_close(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    sv_buf_free(&s->scratch);
    sv_buf_free(&s->view);
    sv_buf_free(&s->chg.pending);
    sv_buf_free(&s->chg.hashes);
    sv_keycache_free(&s->chg.logged);
    free(s->ttl.e);
    free(s->slots);
    free(s->snap.idx);
    pthread_mutex_destroy(&s->snap.mu);
    free(s);
}

int sv_store_writemap_active(const struct sv_store *s)
{
    return s->writemap;
}

uint32_t sv_store_key_groups(const struct sv_store *s)
{
    return s->key_groups;
}

size_t sv_store_max_key_size(const struct sv_store *s)
{
    /* Room for the keep prefix: any key may have to be kept as of a cut. */
    return s->max_key - KEEP_PREFIX;
}

int sv_store_sync(struct sv_store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    return rc ? map_err(rc) : 0;
}

/* --- space: a reserve for deletes ----------------------------------------
 *
 * LMDB copies on write: a delete needs fresh pages too, and the pages a
 * commit frees can be reused only from the second write transaction after
 * it, and not while a reader that may still see them lives. A map filled to
 * its last page by puts would refuse the very deletes that could empty it.
 * So puts and merges stop at a line below the map's maximum, and the pages
 * above it are left to deletes, clears and drops, which are never refused
 * here.
 *
 * "In use" is the high-water mark minus the free pages the next write
 * transaction may reuse. Inside a transaction LMDB does not say how many
 * pages it has taken, so each write charges an upper bound: a copy of the
 * leaf it changes (at most once per leaf and transaction), the branch pages
 * of a state the first time the transaction writes to it, the growth of the
 * tree as LMDB counts it, and new overflow pages for a large value. What the
 * commit itself writes (the free-page and main databases, the list of the
 * pages it frees) is charged once. A put or merge is admitted when the
 * committed use plus the transaction's charge stays at or below the line; a
 * refused one changes nothing and leaves the transaction usable. */

#define RESERVE_PERCENT 2    /* of map_size_max, */
#define RESERVE_MIN_PAGES 64 /* and at least this */
#define FREE_DBI 0           /* LMDB's free-page database: dbi 0 in every environment */
#define META_TICK_KEY "tick"

/* The map's maximum in pages: map_size_max, or a larger size the data file
 * was made with. */
static uint64_t max_pages(const struct sv_store *s)
{
    uint64_t max = s->map_size_max > s->map_size ? s->map_size_max : s->map_size;
    return max / s->psize;
}

static uint64_t reserve_pages(const struct sv_store *s)
{
    uint64_t r = max_pages(s) * RESERVE_PERCENT / 100;
    return r > RESERVE_MIN_PAGES ? r : RESERVE_MIN_PAGES;
}

static uint64_t line_pages(const struct sv_store *s)
{
    uint64_t max = max_pages(s), r = reserve_pages(s);
    return max > r ? max - r : 0;
}

static uint64_t tree_pages(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    if (mdb_stat(txn, dbi, &st))
        return 0;
    return (uint64_t)st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
}

/* mdb_reader_list prints "pid thread txnid" per reader slot ("-" for a slot
 * between transactions); keeps the smallest txnid. */
static int reader_cb(const char *msg, void *ud)
{
    uint64_t *min = ud;
    int pid;
    unsigned long long thread, txnid;
    if (sscanf(msg, "%d %llx %llu", &pid, &thread, &txnid) == 3 && txnid < *min)
        *min = txnid;
    return 0;
}

/* Counts the committed free pages by when they can be reused. With a write
 * transaction open, the count is of the state it started from. */
static int take_census(struct sv_store *s, struct free_census *c)
{
    uint64_t rmin = UINT64_MAX;
    mdb_reader_list(s->env, reader_cb, &rmin);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (s->acct.census.valid && s->acct.census.last_txnid == info.me_last_txnid &&
        s->acct.census.reader_min == rmin) {
        *c = s->acct.census;
        return 0;
    }
    memset(c, 0, sizeof(*c));
    c->last_txnid = info.me_last_txnid;
    c->reader_min = rmin;
    c->hw = (uint64_t)info.me_last_pgno + 1;
    /* The next write transaction is last + 1: it reuses the lists of
     * transactions before `last`, and before the oldest reader's snapshot. */
    uint64_t oldest = rmin < c->last_txnid ? rmin : c->last_txnid;
    /* LMDB refuses a cursor on the free-page database in a write
     * transaction; a read transaction sees the same committed lists. */
    MDB_txn *rt;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rt);
    if (rc)
        return map_err(rc);
    if ((rc = mdb_cursor_open(rt, FREE_DBI, &cur))) {
        mdb_txn_abort(rt);
        return map_err(rc);
    }
    MDB_val k, v;
    int mrc;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        size_t id, n; /* key: the freeing txnid; data: a page count, then the pages */
        if (k.mv_size != sizeof(id) || v.mv_size < sizeof(n))
            continue;
        memcpy(&id, k.mv_data, sizeof(id));
        memcpy(&n, v.mv_data, sizeof(n));
        if (id < oldest)
            c->reusable += n;
        else if (id >= rmin)
            c->pinned += n;
        else
            c->recent += n;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(rt);
    if (mrc != MDB_NOTFOUND)
        return map_err(mrc);
    c->valid = 1;
    s->acct.census = *c;
    return 0;
}

/* The transaction's first write sets its baseline: the committed high-water
 * mark, and what its commit may write whatever it does (the paths of the
 * free-page and main databases, and the free lists it may rewrite: at most
 * their pages, plus a few). */
static void acct_start(struct sv_store *s)
{
    MDB_txn *txn = cur_txn(s);
    MDB_envinfo info;
    MDB_dbi main_dbi;
    mdb_env_info(s->env, &info);
    s->acct.hw = (uint64_t)info.me_last_pgno + 1;
    s->acct.base = 8 + tree_pages(txn, FREE_DBI);
    if (mdb_dbi_open(txn, NULL, 0, &main_dbi) == 0)
        s->acct.base += tree_pages(txn, main_dbi);
    s->acct.init = 1;
}

/* Pages the transaction may take in all once `more` is charged: with the
 * list of the pages it frees (8 bytes a page, at most one freed per page
 * taken), twice over. */
static uint64_t acct_need(const struct sv_store *s, uint64_t more)
{
    uint64_t est = s->acct.est + more;
    return s->acct.base + est + est / 256 + 1;
}

struct charge {
    struct state_slot *sl; /* NULL: the state does not exist yet */
    uint64_t pages;
    uint64_t cow_left; /* sl->cow_left once applied */
    uint64_t log_est;  /* of pages, those for its change record (replaced when applied) */
};

/* The copies `ops` changes to a state may make: its branch pages the first
 * time in the transaction, then a leaf per op while uncopied leaves remain.
 * Nothing changes until charge_apply. */
static void charge_cow(struct sv_store *s, struct state_slot *sl, uint64_t ops, struct charge *ch)
{
    ch->sl = sl;
    ch->pages = 0;
    ch->cow_left = 0;
    ch->log_est = 0;
    if (!sl) {
        ch->pages = 3; /* a new state: its root, and its record in main */
        return;
    }
    uint64_t left = sl->cow_left;
    if (sl->acct_gen != s->acct.gen) {
        MDB_stat st;
        left = 0;
        if (mdb_stat(cur_txn(s), sl->dbi, &st) == 0) {
            ch->pages += st.ms_branch_pages;
            left = st.ms_leaf_pages;
        }
    }
    uint64_t leaves = ops < left ? ops : left;
    ch->pages += leaves;
    ch->cow_left = left - leaves;
}

/* Pages that log entries holding `bytes` of change records take when the
 * commit appends them (see "changes"): a leaf page per entry at most (each
 * but the last holds more than CHG_CHUNK - CHG_REC_MAX bytes), and the log's
 * last leaf and branch pages. */
static uint64_t log_pages(const struct sv_store *s, uint64_t bytes)
{
    if (!bytes)
        return 0;
    (void)s;
    return bytes / (CHG_CHUNK - CHG_REC_MAX) + 1 + 4;
}

/* A write to be admitted may add a change record of up to rec bytes. */
static void charge_track(struct sv_store *s, size_t rec, struct charge *ch)
{
    if (!s->chg.track)
        return;
    ch->log_est = log_pages(s, s->chg.charged + rec) - log_pages(s, s->chg.charged);
    ch->pages += ch->log_est;
}

/* Charges what the write took: its estimate, except for the change records,
 * charged as they are (pending). */
static void charge_apply(struct sv_store *s, const struct charge *ch, uint64_t extra)
{
    if (ch->sl) {
        ch->sl->acct_gen = s->acct.gen;
        ch->sl->cow_left = ch->cow_left;
    }
    struct store_chg *c = &s->chg;
    uint64_t logged = 0;
    if (c->pending.len > c->charged) {
        logged = log_pages(s, c->pending.len) - log_pages(s, c->charged);
        c->charged = c->pending.len;
    }
    s->acct.est += ch->pages - ch->log_est + logged + extra;
}

static uint64_t grown(uint64_t before, uint64_t after)
{
    return after > before ? after - before : 0;
}

/* Formats a size for a message: KiB below 1 MiB, then MiB, then GiB. */
static const char *fmt_size(char *buf, size_t cap, uint64_t bytes)
{
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB"};
    uint64_t div = 1024;
    int u = 0;
    while (u < 3 && bytes >= div * 1024) {
        div *= 1024;
        u++;
    }
    snprintf(buf, cap, "%llu.%llu %s", (unsigned long long)(bytes / div),
             (unsigned long long)(bytes % div * 10 / div), unit[u]);
    return buf;
}

void sv_store_nospace_msg(struct sv_store *s, char *buf, size_t len)
{
    struct free_census c;
    if (take_census(s, &c))
        memset(&c, 0, sizeof(c));
    uint64_t need = c.last_txnid == s->acct.refused_txnid ? s->acct.refused_need : 1;
    uint64_t ps = s->psize, line = line_pages(s), used = c.hw - c.reusable;
    char a[48], b[48], r[48], p[48];
    int n = snprintf(buf, len,
                     "the store is full: %s of map_size_max %s in use, and the last %s are kept "
                     "for deletes; reads still work. Delete entries or clear states (writes work "
                     "again once the deletes commit), or raise map_size_max and restart",
                     fmt_size(a, sizeof(a), used * ps), fmt_size(b, sizeof(b), max_pages(s) * ps),
                     fmt_size(r, sizeof(r), reserve_pages(s) * ps));
    if (n < 0 || (size_t)n >= len || !c.pinned)
        return;
    if (used - c.pinned + need <= line)
        snprintf(buf + n, len - (size_t)n,
                 ". %s freed earlier cannot be reused until a read transaction ends (a "
                 "checkpoint reading a chunk): retry",
                 fmt_size(p, sizeof(p), c.pinned * ps));
    else
        snprintf(buf + n, len - (size_t)n,
                 ". A read transaction (a checkpoint reading a chunk) also holds %s freed "
                 "earlier",
                 fmt_size(p, sizeof(p), c.pinned * ps));
}

/* Admits a put or merge of an entry of `bytes` (key, header and value) into
 * a state, charging it; or refuses it with SV_EMAPFULL, which leaves the
 * transaction as it was. */
static int admit_write(struct sv_store *s, const char *state, size_t slen, size_t bytes,
                       struct charge *ch)
{
    static struct sv_log_limit limit;
    if (!s->txn)
        return SV_EINTERNAL;
    if (!s->acct.init)
        acct_start(s);
    charge_cow(s, slot_find(s, state, slen), 1, ch);
    charge_track(s, 2 + slen + 1 + (bytes < SKEY_CAP ? bytes : SKEY_CAP), ch);
    /* An entry too large for half a page goes to overflow pages, new ones
     * even when it replaces one of the same size. */
    if (bytes + 64 > s->psize / 2)
        ch->pages += (bytes + 16 + s->psize - 1) / s->psize;
    uint64_t need = acct_need(s, ch->pages), line = line_pages(s);
    if (s->acct.hw + need <= line)
        return 0; /* even with no page reusable */
    /* Counted once per transaction: nothing it does changes what it
     * started from, and a snapshot begins only between transactions. */
    struct free_census *c = &s->acct.start;
    if (!s->acct.counted) {
        if (take_census(s, c)) {
            memset(c, 0, sizeof(*c));
            c->hw = s->acct.hw;
        }
        s->acct.counted = 1;
    }
    uint64_t used = c->hw - c->reusable;
    if (used + need <= line)
        return 0;
    uint64_t deficit = used + need - line;
    if (!s->acct.deficit || deficit < s->acct.deficit)
        s->acct.deficit = deficit;
    s->acct.refused_txnid = c->last_txnid;
    s->acct.refused_need = need;
    char msg[512];
    sv_store_nospace_msg(s, msg, sizeof(msg));
    sv_log_limited(&limit, 1, SV_LOG_WARN, "store: write refused: %s", msg);
    return SV_EMAPFULL;
}

/* A delete is never refused, but what it takes counts against the writes
 * after it in the transaction. `before` and `after`: the state's pages. */
static void charge_delete(struct sv_store *s, struct state_slot *sl, uint64_t ops, uint64_t before,
                          uint64_t after)
{
    struct charge ch;
    if (!s->acct.init)
        acct_start(s);
    charge_cow(s, sl, ops, &ch);
    /* The pages it frees are listed at commit, 8 bytes each. */
    uint64_t freed = before > after ? before - after : 0;
    charge_apply(s, &ch, grown(before, after) + freed / 256 + 1);
    s->acct.freed = 1;
}

/* After a commit that freed pages near the line (or the end of a snapshot
 * that kept such pages), or one in which writes were refused for want of
 * pages the last commit freed: one more small commit, so that the next
 * write transaction may reuse them. No transaction may be open. LMDB reuses a
 * transaction's free list only from the second write transaction after it;
 * without this, deletes followed by refused puts (which commit nothing)
 * would leave the freed space out of reach. */
static void age_free_list(struct sv_store *s, int freed, uint64_t deficit)
{
    if (!freed && !deficit)
        return;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (!deficit && (uint64_t)info.me_last_pgno + 1 + reserve_pages(s) <= line_pages(s))
        return; /* far from the line: the writes after it reuse the pages in time */
    struct free_census c;
    if (take_census(s, &c) || c.recent == 0 || c.last_txnid == s->acct.bump_txnid)
        return;
    if (!freed && c.recent < deficit)
        return; /* would not make room for the write that was refused */
    if (!deficit && c.hw - c.reusable + reserve_pages(s) <= line_pages(s))
        return; /* writes are far from refused: their commits age the pages */
    MDB_txn *txn;
    uint8_t be[8];
    if (mdb_txn_begin(s->env, NULL, 0, &txn))
        return;
    uint64_t id = mdb_txn_id(txn);
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(id >> (56 - 8 * i));
    MDB_val k = {strlen(META_TICK_KEY), META_TICK_KEY}, v = {sizeof(be), be};
    int rc = mdb_put(txn, s->meta_dbi, &k, &v, 0);
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    if (rc) {
        sv_warn_limited("store: a commit to make freed pages reusable failed: %s",
                        mdb_strerror(rc));
        return;
    }
    s->acct.bump_txnid = id;
}

int sv_store_space(struct sv_store *s, struct sv_store_space *out)
{
    struct free_census c;
    int rc = take_census(s, &c);
    if (rc)
        return rc;
    uint64_t ps = s->psize;
    out->page_size = ps;
    out->map_size = s->map_size;
    out->map_max = max_pages(s) * ps;
    out->reserve = reserve_pages(s) * ps;
    out->limit = line_pages(s) * ps;
    out->high_water = c.hw * ps;
    out->used = (c.hw - c.reusable) * ps;
    out->free_reusable = c.reusable * ps;
    out->free_pinned = c.pinned * ps;
    out->free_recent = c.recent * ps;
    return 0;
}

/* --- transactions -------------------------------------------------------- */

int sv_store_begin(struct sv_store *s)
{
    if (s->txn)
        return SV_EINTERNAL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc) {
        s->txn = NULL;
        return map_err(rc);
    }
    s->txn_error = 0;
    s->txn_dirty = 0;
    s->acct.gen++;
    s->acct.init = 0;
    s->acct.counted = 0;
    s->acct.est = 0;
    s->acct.freed = 0;
    s->acct.deficit = 0;
    s->chg.pending.len = 0;
    s->chg.hashes.len = 0;
    s->chg.charged = 0;
    return 0;
}

int sv_store_savepoint_needs_clean_txn(const struct sv_store *s)
{
    return s->writemap && s->txn_dirty;
}

int sv_store_in_txn(const struct sv_store *s)
{
    return s->txn != NULL;
}

int sv_store_txn_error(const struct sv_store *s)
{
    return s->txn_error;
}

static void reload_states(struct sv_store *s);

int sv_store_commit(struct sv_store *s)
{
    if (!s->txn || s->savepoint)
        return SV_EINTERNAL;
    if (s->txn_error) {
        int e = s->txn_error;
        sv_store_abort(s);
        return e;
    }
    uint64_t chunks;
    int overflow;
    int rc = changes_flush(s, &chunks, &overflow);
    if (rc) {
        txn_fail(s, rc);
        int e = s->txn_error;
        sv_store_abort(s);
        return e;
    }
    int dropped = s->dropped_in_txn;
    s->dropped_in_txn = 0;
    keep_commit(s); /* first: a snapshot that sees a change sees its copy */
    rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    changes_committed(s, rc == 0, chunks, overflow);
    if (rc)
        ttl_reload(s, NULL);
    s->ttl.dirty = 0;
    if (rc) {
        /* The transaction is freed either way; its new handles are gone. */
        slots_end_level(s, 1, 0);
        sv_error("store: commit failed: %s", mdb_strerror(rc));
        if (dropped)
            reload_states(s); /* the drop did not happen */
        return write_err(s->env, rc);
    }
    slots_end_level(s, 1, 1);
    age_free_list(s, s->acct.freed, s->acct.deficit);
    return 0;
}

/* Opens every state the store holds that the table does not know, in a
 * transaction of its own (committed, so the handles stay). Used after an
 * aborted drop: the state still exists but its handle was closed. */
static void reload_states(struct sv_store *s)
{
    MDB_txn *txn;
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    if (mdb_txn_begin(s->env, NULL, 0, &txn))
        return;
    if (mdb_dbi_open(txn, NULL, 0, &main_dbi) || mdb_cursor_open(txn, main_dbi, &cur)) {
        mdb_txn_abort(txn);
        return;
    }
    MDB_val k, v;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        if (!sv_state_name_valid(k.mv_data, k.mv_size) || slot_find(s, k.mv_data, k.mv_size))
            continue;
        char name[SV_STATE_NAME_MAX + 1];
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_dbi dbi;
        if (mdb_dbi_open(txn, name, 0, &dbi) == 0 && slot_add(s, name, k.mv_size, dbi, 0) == 0)
            sv_debug("store: state '%s' restored to the table after an aborted drop", name);
    }
    mdb_cursor_close(cur);
    mdb_txn_commit(txn); /* nothing changed: no write, the handles stay */
}

void sv_store_abort(struct sv_store *s)
{
    changes_committed(s, 0, 0, 0);
    keep_abort(s);
    if (s->savepoint)
        sv_store_rollback(s);
    if (s->txn) {
        mdb_txn_abort(s->txn);
        s->txn = NULL;
    }
    slots_end_level(s, 1, 0);
    s->txn_error = 0;
    ttl_reload(s, NULL);
    if (s->dropped_in_txn) {
        s->dropped_in_txn = 0;
        reload_states(s);
    }
}

int sv_store_savepoint(struct sv_store *s)
{
    if (!s->txn || s->savepoint || s->txn_error)
        return SV_EINTERNAL;
    s->acct.est_sp = s->acct.est;
    s->chg.pending_sp = s->chg.pending.len;
    s->chg.hashes_sp = s->chg.hashes.len;
    s->chg.charged_sp = s->chg.charged;
    if (s->writemap) {
        if (s->txn_dirty)
            return SV_EINTERNAL; /* see sv_store_savepoint_needs_clean_txn */
        s->savepoint = 1;
        return 0;
    }
    int rc = mdb_txn_begin(s->env, s->txn, 0, &s->child);
    if (rc) {
        s->child = NULL;
        return txn_fail(s, rc);
    }
    s->savepoint = 1;
    return 0;
}

int sv_store_release(struct sv_store *s)
{
    if (!s->savepoint)
        return SV_EINTERNAL;
    s->savepoint = 0;
    if (s->child) {
        int rc = mdb_txn_commit(s->child);
        s->child = NULL;
        if (rc) {
            slots_end_level(s, 2, 0);
            return txn_fail(s, rc);
        }
    }
    slots_end_level(s, 2, 1);
    return 0;
}

void sv_store_rollback(struct sv_store *s)
{
    if (!s->savepoint)
        return;
    s->savepoint = 0;
    /* The pages the batch took are given back; the copies made before it
     * stay, but a state's branch pages are charged again at its next write
     * (too much, never too little). */
    s->acct.est = s->acct.est_sp;
    s->chg.pending.len = s->chg.pending_sp;
    s->chg.hashes.len = s->chg.hashes_sp;
    s->chg.charged = s->chg.charged_sp;
    s->acct.gen++;
    if (s->child) {
        mdb_txn_abort(s->child);
        s->child = NULL;
        slots_end_level(s, 2, 0);
        ttl_reload(s, s->txn);
        return;
    }
    s->acct.init = 0; /* a new transaction below */
    s->acct.counted = 0;
    /* Emulated: the transaction held nothing before the savepoint, so
     * discarding it and beginning afresh undoes exactly the batch. A state
     * it created had a handle of this transaction only (level 2). */
    mdb_txn_abort(s->txn);
    s->txn = NULL;
    slots_end_level(s, 2, 0);
    s->txn_dirty = 0;
    ttl_reload(s, NULL);
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc) {
        s->txn = NULL;
        txn_fail(s, rc); /* the group commit fails; its requests are answered */
    }
}

int sv_store_grow(struct sv_store *s)
{
    if (s->txn)
        return SV_EINTERNAL;
    if (s->snap.active)
        return SV_EBUSY; /* remapping would pull the pages from under the reader */
    if (s->map_size >= s->map_size_max)
        return SV_ENOSPACE;
    uint64_t next = s->map_size > s->map_size_max / 2 ? s->map_size_max : s->map_size * 2;
    int rc;
    /* After a failure, wait before asking the disk again: every group
     * commit would otherwise retry (and on some filesystems allocate and
     * release the free space each time). */
    if (s->writemap && s->grow_retry_ms && mono_ms() < s->grow_retry_ms)
        return SV_ENOSPACE;
    if (s->writemap && (rc = back_map(s, s->map_size, next)) != 0) {
        s->grow_retry_ms = mono_ms() + GROW_RETRY_MS;
        sv_warn_limited("store: cannot grow the map to %llu MiB: allocating it on disk failed: "
                        "%s",
                        (unsigned long long)(next >> 20), strerror(rc));
        return rc == ENOSPC || rc == EDQUOT || rc == EFBIG ? SV_ENOSPACE : -rc;
    }
    s->grow_retry_ms = 0;
    rc = mdb_env_set_mapsize(s->env, next);
    if (rc) {
        sv_error("store: cannot grow map to %llu bytes: %s", (unsigned long long)next,
                 mdb_strerror(rc));
        return map_err(rc);
    }
    sv_info("store: map grown from %llu MiB to %llu MiB", (unsigned long long)(s->map_size >> 20),
            (unsigned long long)(next >> 20));
    s->map_size = next;
    return 0;
}

int sv_store_grow_if_needed(struct sv_store *s)
{
    if (s->txn || s->snap.active || s->map_size >= s->map_size_max)
        return 0;
    uint64_t size, used;
    sv_store_usage(s, &size, &used);
    if (used < size / 5 * 4)
        return 0;
    return sv_store_grow(s);
}

/* --- entries ------------------------------------------------------------- */

void sv_store_reader_check(struct sv_store *s)
{
    int dead = 0;
    if (s && s->env && mdb_reader_check(s->env, &dead) == 0 && dead)
        sv_info("store: cleared %d stale reader slot(s)", dead);
}

/* --- TTL ------------------------------------------------------------------
 *
 * A state's TTL setting lives in $ttl (state name -> ttl_ms u64 BE, update
 * u8, visibility u8) and, for the hot path, in a small table in memory that
 * follows the group transaction: changed with it, read again from the store
 * when it aborts or rolls back. An entry's expiry is in its value header
 * (common/sv_value.h): every put or merge sets it anew from the write's TTL,
 * else the state's, else none. Reads compare it with the clock. */

uint64_t sv_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads every setting from $ttl in txn into the table. */
static int ttl_load(struct sv_store *s, MDB_txn *txn)
{
    struct store_ttl *t = &s->ttl;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, t->dbi, &cur);
    if (rc)
        return rc;
    t->n = 0;
    MDB_val k, v;
    int mrc;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (!sv_state_name_valid(k.mv_data, k.mv_size) || v.mv_size < TTL_VALUE_SIZE ||
            t->n >= t->cap) {
            sv_warn("store: a TTL setting is malformed or beyond max_states; ignored");
            continue;
        }
        struct ttl_entry *e = &t->e[t->n++];
        memcpy(e->name, k.mv_data, k.mv_size);
        e->name[k.mv_size] = '\0';
        e->len = (uint8_t)k.mv_size;
        const uint8_t *p = v.mv_data;
        e->t.ttl_ms = sv_be64_get(p);
        e->t.update = p[8] ? SV_TTL_ON_READ_AND_WRITE : SV_TTL_ON_CREATE_AND_WRITE;
        e->t.visibility =
            p[9] ? SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP : SV_TTL_NEVER_RETURN_EXPIRED;
    }
    mdb_cursor_close(cur);
    t->dirty = 0;
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int ttl_open(struct sv_store *s, MDB_txn *txn)
{
    struct store_ttl *t = &s->ttl;
    if (!t->e) {
        t->cap = s->opts.max_states ? s->opts.max_states : 1;
        if (!(t->e = calloc(t->cap, sizeof(*t->e))))
            return ENOMEM;
    }
    int rc = mdb_dbi_open(txn, TTL_DB, MDB_CREATE, &t->dbi);
    /* A new generation (a restore) may hold expiring entries: walk it. */
    s->sweep.due = 0;
    s->sweep.round_min = UINT64_MAX;
    s->sweep.state[0] = '\0';
    return rc ? rc : ttl_load(s, txn);
}

/* After the transaction that changed a setting failed: the committed ones. */
static void ttl_reload(struct sv_store *s, MDB_txn *txn)
{
    if (!s->ttl.dirty)
        return;
    MDB_txn *own = NULL;
    if (!txn && mdb_txn_begin(s->env, NULL, MDB_RDONLY, &own) == 0)
        txn = own;
    if (!txn || ttl_load(s, txn))
        sv_error("store: cannot read the TTL settings again; they stay as they were");
    if (own)
        mdb_txn_abort(own);
    else
        s->ttl.dirty = 1; /* read in a transaction that may still abort */
}

static const struct sv_ttl *ttl_find(const struct sv_store *s, const char *state, size_t slen)
{
    for (size_t i = 0; i < s->ttl.n; i++) {
        const struct ttl_entry *e = &s->ttl.e[i];
        if (e->len == slen && memcmp(e->name, state, slen) == 0)
            return &e->t;
    }
    return NULL;
}

/* A setting as $ttl holds it: ttl_ms u64 BE, update u8, visibility u8. */
static void ttl_encode(const struct sv_ttl *t, uint8_t out[TTL_VALUE_SIZE])
{
    sv_be64_put(out, t->ttl_ms);
    out[8] = t->update == SV_TTL_ON_READ_AND_WRITE;
    out[9] = t->visibility == SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP;
}

int sv_store_get_ttl(const struct sv_store *s, const char *state, size_t slen, struct sv_ttl *out)
{
    const struct sv_ttl *t = ttl_find(s, state, slen);
    if (t)
        *out = *t;
    else
        memset(out, 0, sizeof(*out));
    return t != NULL;
}

int sv_store_set_ttl(struct sv_store *s, const char *state, size_t slen, const struct sv_ttl *t)
{
    if (!s->txn)
        return SV_EINTERNAL;
    if (!sv_state_name_valid(state, slen) || t->ttl_ms > SV_TTL_MAX_MS)
        return SV_EINVAL;
    struct store_ttl *tt = &s->ttl;
    struct ttl_entry *e = NULL;
    for (size_t i = 0; i < tt->n && !e; i++)
        if (tt->e[i].len == slen && memcmp(tt->e[i].name, state, slen) == 0)
            e = &tt->e[i];
    MDB_val k = {slen, (void *)state};
    int rc;
    if (!t->ttl_ms) {
        if (!e)
            return 0;
        rc = mdb_del(write_txn(s), tt->dbi, &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return txn_fail(s, rc);
        tt->dirty = 1;
        *e = tt->e[--tt->n];
        return 0;
    }
    if (!e && tt->n >= tt->cap)
        return SV_ETOOLARGE;
    /* The setting goes with the state, which exists from now on (empty):
     * checkpoints carry the settings of the states they hold. */
    MDB_dbi dbi;
    if ((rc = state_dbi(s, state, slen, 1, &dbi)))
        return rc;
    uint8_t val[TTL_VALUE_SIZE];
    ttl_encode(t, val);
    MDB_val v = {sizeof(val), val};
    if ((rc = mdb_put(write_txn(s), tt->dbi, &k, &v, 0)))
        return txn_fail(s, rc);
    tt->dirty = 1;
    if (!e) {
        e = &tt->e[tt->n++];
        memcpy(e->name, state, slen);
        e->name[slen] = '\0';
        e->len = (uint8_t)slen;
    }
    e->t = *t;
    return 0;
}

/* A write set an expiry: the sweep is due by then, and this round (which
 * may have passed the entry) counts it. */
static void sweep_note(struct sv_store *s, uint64_t expiry)
{
    if (expiry < s->sweep.due)
        s->sweep.due = expiry;
    if (expiry < s->sweep.round_min)
        s->sweep.round_min = expiry;
}

/* The expiry a write sets: the clock plus its TTL, else the state's, else
 * none (0). */
static uint64_t write_expiry(const struct sv_ttl *st, uint64_t ttl_ms)
{
    uint64_t ttl = ttl_ms ? ttl_ms : st ? st->ttl_ms : 0;
    if (!ttl)
        return 0;
    if (ttl > SV_TTL_MAX_MS)
        ttl = SV_TTL_MAX_MS;
    return sv_store_now_ms() + ttl;
}

/* Whether an entry read is to be treated as absent: expired, and the state
 * does not show expired entries. */
static int hidden_expired(const struct sv_ttl *st, uint64_t expiry_ms, uint64_t now)
{
    return expiry_ms && expiry_ms <= now &&
           !(st && st->visibility == SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP);
}

static int put_reserve(struct sv_store *s, MDB_dbi dbi, const uint8_t *skey, size_t sklen,
                       enum sv_value_kind kind, uint64_t expiry, size_t len, uint8_t **data);
static int track_change(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                        size_t sklen);

/* ON_READ_AND_WRITE: a read sets the entry's expiry anew, a write of the
 * same bytes; *v then points at the rewritten value. A store too full for it
 * leaves the entry as it was (a read is never refused for space). */
static int refresh_expiry(struct sv_store *s, MDB_dbi dbi, const char *state, size_t slen,
                          const uint8_t *skey, size_t sklen, const struct sv_ttl *st,
                          struct sv_value *v)
{
    uint64_t expiry = write_expiry(st, 0);
    struct charge ch;
    if (admit_write(s, state, slen, sklen + sv_value_header_size(expiry) + v->len, &ch))
        return 0;
    int rc;
    if ((rc = keep_for_snapshot(s, dbi, skey, sklen, 1)))
        return rc;
    /* The bytes may sit on the page mdb_put rewrites: copy them first. */
    s->scratch.len = 0;
    if (v->len && (rc = sv_buf_append(&s->scratch, v->data, v->len)))
        return rc;
    uint64_t before = tree_pages(cur_txn(s), dbi);
    uint8_t *dst;
    if ((rc = put_reserve(s, dbi, skey, sklen, v->kind, expiry, v->len, &dst)))
        return rc;
    if (v->len)
        memcpy(dst, s->scratch.data, v->len);
    if ((rc = track_change(s, state, slen, skey, sklen)))
        return rc;
    charge_apply(s, &ch, grown(before, tree_pages(cur_txn(s), dbi)));
    sweep_note(s, expiry); /* a shortened TTL may make it the earliest */
    v->data = dst;
    v->expiry_ms = expiry;
    return 0;
}

/* Writes a whole stored value (header and data, not in the map: LMDB may
 * move the map's pages) under skey, as a write: kept for a running
 * snapshot, logged as a change. A store too full for it leaves the entry
 * as it was (*done 0): clean-ups use it, and they are never refused. */
static int put_stored(struct sv_store *s, MDB_dbi dbi, const char *state, size_t slen,
                      const uint8_t *skey, size_t sklen, const uint8_t *val, size_t vlen,
                      const struct charge *ch)
{
    int rc;
    if ((rc = keep_for_snapshot(s, dbi, skey, sklen, 1)))
        return rc;
    uint64_t before = tree_pages(cur_txn(s), dbi);
    MDB_val k = {sklen, (void *)skey}, v = {vlen, (void *)val};
    if ((rc = mdb_put(write_txn(s), dbi, &k, &v, 0)))
        return txn_fail(s, rc);
    if ((rc = track_change(s, state, slen, skey, sklen)))
        return rc;
    charge_apply(s, ch, grown(before, tree_pages(cur_txn(s), dbi)));
    return 0;
}

static int write_stored(struct sv_store *s, MDB_dbi dbi, const char *state, size_t slen,
                        const uint8_t *skey, size_t sklen, const uint8_t *val, size_t vlen,
                        int *done)
{
    struct charge ch;
    *done = 0;
    if (admit_write(s, state, slen, sklen + vlen, &ch))
        return 0;
    *done = 1;
    return put_stored(s, dbi, state, slen, skey, sklen, val, vlen, &ch);
}

/* Trims the elements expired at now from the timed list v stored under
 * skey (deleting the entry if none is left); *dropped: how many left it. */
static int trim_timed(struct sv_store *s, MDB_dbi dbi, const char *state, size_t slen,
                      const uint8_t *skey, size_t sklen, const struct sv_value *v, uint64_t now,
                      size_t *dropped)
{
    size_t left, n;
    int done, rc;
    *dropped = 0;
    s->scratch.len = 0;
    if ((rc = sv_tlist_trim(v, now, &s->scratch, &left, &n)) || !n)
        return rc;
    if (!left) {
        if ((rc = sv_store_delete(s, state, slen, skey, sklen, &done)))
            return rc;
    } else if ((rc = write_stored(s, dbi, state, slen, skey, sklen, s->scratch.data, s->scratch.len,
                                  &done))) {
        return rc;
    }
    if (done)
        *dropped = n;
    return 0;
}

/* A timed list read: *out becomes the plain list of its elements alive at
 * now (all of them under RETURN_EXPIRED_IF_NOT_CLEANED_UP), in s->view;
 * with clean, those expired leave the stored entry in the open write
 * transaction (a clean-up on read). */
static int timed_view(struct sv_store *s, MDB_dbi dbi, const char *state, size_t slen,
                      const uint8_t *skey, size_t sklen, const struct sv_ttl *st, uint64_t now,
                      int clean, struct sv_value *out)
{
    int keep = st && st->visibility == SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP;
    size_t dropped;
    s->view.len = 0;
    int rc = sv_tlist_plain(out, now, keep, &s->view, &dropped);
    if (rc)
        return rc;
    if (dropped && clean && s->txn) {
        size_t trimmed;
        if ((rc = trim_timed(s, dbi, state, slen, skey, sklen, out, now, &trimmed)))
            return rc;
        s->expired_on_read += trimmed;
    }
    if (s->view.cap > 1024 * 1024 && !s->view.len)
        sv_buf_clear(&s->view, 0);
    out->data = s->view.data;
    out->len = s->view.len;
    out->timed = 0;
    out->scratch = 1;
    return 0;
}

int sv_store_get(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                 size_t sklen, struct sv_value *out)
{
    MDB_dbi dbi;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    if (rc)
        return rc;
    MDB_val k = {sklen, (void *)skey}, v;
    rc = mdb_get(cur_txn(s), dbi, &k, &v);
    if (rc)
        return map_err(rc);
    if ((rc = sv_value_parse(v.mv_data, v.mv_size, out)) || (!out->expiry_ms && !out->timed))
        return rc;
    const struct sv_ttl *st = s->ttl.n ? ttl_find(s, state, slen) : NULL;
    uint64_t now = sv_store_now_ms();
    if (hidden_expired(st, out->expiry_ms, now)) {
        /* Clean-up on read: gone in this transaction, as a delete. */
        int found = 0;
        if (s->txn && (rc = sv_store_delete(s, state, slen, skey, sklen, &found)))
            return rc;
        s->expired_on_read += found;
        return SV_ENOTFOUND;
    }
    int refresh = st && st->update == SV_TTL_ON_READ_AND_WRITE && st->ttl_ms &&
                  (!out->expiry_ms || out->expiry_ms > now) && s->txn;
    int timed = out->timed;
    if (timed && (rc = timed_view(s, dbi, state, slen, skey, sklen, st, now, !refresh, out)))
        return rc;
    if (timed && !out->len) /* every element hidden: as an expired entry */
        return SV_ENOTFOUND;
    if (refresh && (out->expiry_ms || timed))
        return refresh_expiry(s, dbi, state, slen, skey, sklen, st, out);
    return 0;
}

/* --- changes --------------------------------------------------------------
 *
 * While tracking is on, every write that changes an entry records its key
 * in the change log ($changelog), in the same transaction as the change: a
 * change and its record commit together or not at all, so a restart (clean
 * or not) knows every change since the base checkpoint. A record is its
 * length (u16 BE), the state name, a 0 byte (no name has one) and the stored
 * key; the name and the 0 byte alone mark the state reset (dropped: the next
 * checkpoint copies the whole state). Records are a superset: a key may be
 * recorded and not changed, or recorded twice; never changed and not
 * recorded.
 *
 * A transaction's records collect in memory (pending) and go into the log
 * at commit, appended in entries of up to CHG_CHUNK bytes keyed by a
 * sequence number (u64 BE): no search and no page copied but the log's
 * last, where a second B-tree insert per write (the per-key change set of
 * 0.5) cost 44 % more instructions per put and 25-40 % of the PUT
 * throughput. Entries stay below half a page: LMDB's search of its free list
 * for a run of overflow pages cost as much again. A key in the cache of keys
 * logged since the last cut (`logged`, filled after each commit;
 * direct-mapped, exact) is not recorded again, so a hot key is logged about
 * once per checkpoint. The cache is small on purpose: a set of every logged
 * key, tried first, cost a quarter of the PUT throughput at 1 M keys in
 * cache misses.
 *
 * A snapshot's cut splits the log: the entries before the cut's sequence
 * number are its change set (sv_store_snapshot_load_changes reads, sorts and
 * dedups them), later ones belong to the next checkpoint, and `logged`
 * starts empty. When its checkpoint is written, sv_store_changes_done removes
 * the entries before the cut, in one transaction with the new base.
 *
 * The log is bounded by checkpoint_changes_max. A commit that would take it
 * past the bound records nothing, removes the base (the next checkpoint is
 * full) and, unless a snapshot may be reading the log, empties it; tracking
 * stops until the next cut. A snapshot running meanwhile still completes,
 * but its checkpoint is no base (`lost`), and the log is emptied when it
 * ends. */

static uint64_t log_size(MDB_txn *txn, MDB_dbi dbi, uint64_t psize)
{
    MDB_stat st;
    if (mdb_stat(txn, dbi, &st))
        return 0;
    return ((uint64_t)st.ms_leaf_pages + st.ms_overflow_pages) * psize;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t val)
{
    uint8_t be[8];
    sv_be64_put(be, val);
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof(be), be};
    return mdb_put(txn, meta, &k, &v, 0);
}

static int meta_del(MDB_txn *txn, MDB_dbi meta, const char *key)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_del(txn, meta, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* At open, in the store's first transaction: the log of this generation,
 * its base and where it ends. */
static int changes_open(struct sv_store *s, MDB_txn *txn)
{
    struct store_chg *c = &s->chg;
    MDB_dbi old;
    int rc;
    c->base = 0;
    MDB_val bk = {strlen(META_CHG_BASE_KEY), META_CHG_BASE_KEY}, bv;
    if (mdb_get(txn, s->meta_dbi, &bk, &bv) == 0 && bv.mv_size == 8)
        c->base = sv_be64_get(bv.mv_data);
    /* The per-key change set of an older version is not a log: the next
     * checkpoint is full. */
    if ((rc = mdb_dbi_open(txn, OLD_CHANGES_DB, 0, &old)) == 0) {
        if ((rc = mdb_drop(txn, old, 1)) ||
            (rc = meta_del(txn, s->meta_dbi, OLD_META_CHG_EPOCH_KEY)))
            return rc;
        sv_info("store: the change records of an older version were dropped; the next "
                "checkpoint is full");
        c->base = 0;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    if ((rc = mdb_dbi_open(txn, CHANGE_LOG_DB, MDB_CREATE, &c->dbi)))
        return rc;
    c->next_seq = 1;
    if (c->base && !s->opts.untracked) {
        MDB_cursor *cur;
        MDB_val k, v;
        if ((rc = mdb_cursor_open(txn, c->dbi, &cur)))
            return rc;
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        mdb_cursor_close(cur);
        if (rc == 0 && k.mv_size == 8 && sv_be64_get(k.mv_data) < UINT64_MAX / 2) {
            c->next_seq = sv_be64_get(k.mv_data) + 1;
        } else if (rc == 0) {
            sv_warn("store: the change log is corrupt (an entry's key is not a sequence "
                    "number); the next checkpoint is full");
            c->base = 0;
        } else if (rc != MDB_NOTFOUND) {
            return rc;
        }
    }
    if (!c->base || s->opts.untracked) {
        /* No base to build on (or incremental checkpoints are off: none may
         * ever be built on what is recorded now): nothing to keep. */
        if ((rc = meta_del(txn, s->meta_dbi, META_CHG_BASE_KEY)) || (rc = mdb_drop(txn, c->dbi, 0)))
            return rc;
        c->base = 0;
    }
    c->log_bytes = log_size(txn, c->dbi, s->psize);
    c->track = !s->opts.untracked && c->base != 0;
    c->lost = 0;
    c->pending.len = 0;
    c->hashes.len = 0;
    c->charged = 0;
    sv_keycache_clear(&c->logged);
    return 0;
}

/* Records that (state, skey) changed; skey NULL: the whole state (reset). */
static int track_change(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                        size_t sklen)
{
    struct store_chg *c = &s->chg;
    if (!c->track)
        return 0;
    size_t n = slen + 1 + (skey ? sklen : 0);
    if (slen > SV_STATE_NAME_MAX || (skey && sklen > SKEY_CAP))
        return SV_EINTERNAL;
    /* Written in place after the pending records, kept only if new. */
    int rc = sv_buf_reserve(&c->pending, n + 2);
    if (!rc)
        rc = sv_buf_reserve(&c->hashes, sizeof(uint64_t));
    if (rc) {
        if (!s->txn_error)
            s->txn_error = rc; /* the change is made: it must not commit unrecorded */
        return rc;
    }
    uint8_t *rec = c->pending.data + c->pending.len;
    sv_be16_put(rec, (uint16_t)n);
    memcpy(rec + 2, state, slen);
    rec[2 + slen] = 0;
    if (skey)
        memcpy(rec + 3 + slen, skey, sklen);
    uint64_t h = sv_keycache_hash(rec + 2, n);
    if (sv_keycache_has(&c->logged, rec + 2, n, h))
        return 0;
    c->pending.len += n + 2;
    memcpy(c->hashes.data + c->hashes.len, &h, sizeof(h));
    c->hashes.len += sizeof(h);
    return 0;
}

/* Empties the log and removes the base, in a transaction of its own (none
 * may be open): the next checkpoint is full. */
static int changes_reset(struct sv_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return map_err(rc);
    if ((rc = mdb_drop(txn, s->chg.dbi, 0)) ||
        (rc = meta_del(txn, s->meta_dbi, META_CHG_BASE_KEY))) {
        mdb_txn_abort(txn);
        return write_err(s->env, rc);
    }
    if ((rc = mdb_txn_commit(txn)))
        return write_err(s->env, rc);
    s->chg.base = 0;
    s->chg.log_bytes = 0;
    return 0;
}

/* At commit, in the group transaction: this transaction's records into the
 * log, or, past the bound, the end of tracking until the next cut.
 * *overflow tells which, for changes_committed. */
static int changes_flush(struct sv_store *s, uint64_t *chunks, int *overflow)
{
    struct store_chg *c = &s->chg;
    *chunks = 0;
    *overflow = 0;
    if (!c->pending.len)
        return 0;
    int rc;
    if (c->log_bytes + c->pending.len > c->max_bytes) {
        *overflow = 1;
        if ((rc = meta_del(s->txn, s->meta_dbi, META_CHG_BASE_KEY)))
            return rc;
        return s->snap.active ? 0 : mdb_drop(s->txn, c->dbi, 0);
    }
    const uint8_t *p = c->pending.data, *end = p + c->pending.len;
    while (p < end) {
        /* Whole records, up to CHG_CHUNK bytes (at least one). */
        const uint8_t *q = p + 2 + sv_be16_get(p);
        while (q < end && (size_t)(q + 2 + sv_be16_get(q) - p) <= CHG_CHUNK)
            q += 2 + sv_be16_get(q);
        uint8_t kb[8];
        sv_be64_put(kb, c->next_seq + *chunks);
        MDB_val k = {sizeof(kb), kb}, v = {(size_t)(q - p), (void *)p};
        if ((rc = mdb_put(s->txn, c->dbi, &k, &v, MDB_APPEND)))
            return rc;
        (*chunks)++;
        p = q;
    }
    return 0;
}

/* After the group transaction: what its commit (ok or not) means for the
 * log. */
static void changes_committed(struct sv_store *s, int ok, uint64_t chunks, int overflow)
{
    struct store_chg *c = &s->chg;
    static struct sv_log_limit limit;
    if (ok && overflow) {
        c->track = 0;
        c->lost = 1;
        c->base = 0;
        if (!s->snap.active)
            c->log_bytes = 0;
        sv_keycache_clear(&c->logged);
        sv_log_limited(&limit, 1, SV_LOG_WARN,
                       "store: the change log would pass checkpoint_changes_max (%" PRIu64
                       " bytes): changes are no longer recorded and the next checkpoint is full",
                       c->max_bytes);
    } else if (ok && c->pending.len) { /* (no arithmetic on a NULL buffer) */
        c->next_seq += chunks;
        c->log_bytes += c->pending.len;
        const uint8_t *p = c->pending.data, *end = p + c->pending.len;
        for (size_t i = 0; p < end; i++) {
            size_t n = sv_be16_get(p);
            uint64_t h;
            memcpy(&h, c->hashes.data + i * sizeof(h), sizeof(h));
            sv_keycache_put(&c->logged, p + 2, n, h);
            p += 2 + n;
        }
    }
    c->pending.len = 0;
    c->hashes.len = 0;
    c->charged = 0;
    if (c->pending.cap > 4 * CHG_CHUNK) {
        sv_buf_clear(&c->pending, 4 * CHG_CHUNK);
        sv_buf_clear(&c->hashes, CHG_CHUNK);
    }
}

/* Deletes log entries before cut in the open write transaction: all of
 * them with one mdb_drop when nothing came after (no page copied), else up
 * to CHG_DONE_CHUNK. *more: some are left. */
static int log_trim(struct sv_store *s, uint64_t cut, uint64_t *removed, int *more)
{
    struct store_chg *c = &s->chg;
    MDB_txn *txn = write_txn(s);
    MDB_cursor *cur;
    MDB_val k, v;
    *more = 0;
    int rc = mdb_cursor_open(txn, c->dbi, &cur);
    if (rc)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND || (rc == 0 && k.mv_size == 8 && sv_be64_get(k.mv_data) < cut)) {
        mdb_cursor_close(cur);
        return rc == MDB_NOTFOUND ? 0 : mdb_drop(txn, c->dbi, 0);
    }
    for (uint64_t n = 0; rc == 0 && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
                         k.mv_size == 8 && sv_be64_get(k.mv_data) < cut;
         n++) {
        if (n == CHG_DONE_CHUNK) {
            *more = 1;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) == 0)
            (*removed)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The clean-up in checkpoints, in the open write transaction: deletes the
 * records' entries that are still expired (see sv_store_expire_keys). */
static int expire_records(struct sv_store *s, const uint8_t *recs, size_t len, uint64_t *deleted)
{
    uint64_t now = sv_store_now_ms();
    int rc = 0;
    for (size_t off = 0; off < len && !rc;) {
        if (len - off < 1 + 2 || len - off < 1 + (size_t)recs[off] + 2)
            return SV_EINVAL;
        const char *name = (const char *)recs + off + 1;
        size_t nl = recs[off];
        size_t sklen = sv_be16_get(recs + off + 1 + nl);
        const uint8_t *skey = recs + off + 1 + nl + 2;
        if (off + 1 + nl + 2 + sklen > len)
            return SV_EINVAL;
        off += 1 + nl + 2 + sklen;
        MDB_dbi dbi;
        if (state_dbi(s, name, nl, 0, &dbi))
            continue; /* dropped since */
        MDB_val k = {sklen, (void *)skey}, v;
        struct sv_value val;
        if (mdb_get(cur_txn(s), dbi, &k, &v) || sv_value_parse(v.mv_data, v.mv_size, &val) ||
            !val.expiry_ms || val.expiry_ms > now)
            continue; /* gone, or written again since */
        int found;
        if ((rc = sv_store_delete(s, name, nl, skey, sklen, &found)) == 0 && found)
            (*deleted)++;
    }
    return rc;
}

int sv_store_changes_done(struct sv_store *s, uint64_t cut, uint64_t checkpoint_id,
                          const uint8_t *gone, size_t gone_len, uint64_t *expired)
{
    struct store_chg *c = &s->chg;
    *expired = 0;
    if (s->txn)
        return SV_EINTERNAL;
    if (s->opts.untracked || c->lost) {
        /* No base (nothing recorded, or a change after the cut went
         * unrecorded): the next checkpoint is full and counts afresh. */
        int rc = !s->opts.untracked && (c->log_bytes || c->base) ? changes_reset(s) : 0;
        return rc ? rc : sv_store_expire_keys(s, gone, gone_len, expired);
    }
    /* One transaction: the new base, the first part of the log before the
     * cut, and the deletes of what the checkpoint left out as expired (an
     * increment on this base counts them gone). */
    uint64_t removed = 0;
    int more = 0;
    int rc = sv_store_begin(s);
    if (rc)
        return rc;
    if ((rc = log_trim(s, cut, &removed, &more)) ||
        (rc = meta_put_u64(write_txn(s), s->meta_dbi, META_CHG_BASE_KEY, checkpoint_id))) {
        txn_fail(s, rc);
        sv_store_abort(s);
        return write_err(s->env, rc);
    }
    if ((rc = expire_records(s, gone, gone_len, expired))) {
        sv_store_abort(s);
        *expired = 0;
        return rc;
    }
    if ((rc = sv_store_commit(s))) {
        *expired = 0;
        return rc;
    }
    c->base = checkpoint_id;
    c->track = 1;
    /* The rest before the cut, in bounded transactions: the base no longer
     * needs them (left by a crash, they only widen the next change set). */
    while (more && !rc) {
        if ((rc = sv_store_begin(s)))
            break;
        if ((rc = log_trim(s, cut, &removed, &more))) {
            txn_fail(s, rc);
            sv_store_abort(s);
            break;
        }
        rc = sv_store_commit(s);
    }
    MDB_txn *rt;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rt) == 0) {
        c->log_bytes = log_size(rt, c->dbi, s->psize);
        mdb_txn_abort(rt);
    }
    sv_debug("store: change log before checkpoint %" PRIu64 "'s cut cleared (%" PRIu64
             " entries; %" PRIu64 " bytes since)",
             checkpoint_id, removed, c->log_bytes);
    return rc ? map_err(rc) : 0;
}

int sv_store_changes_forget(struct sv_store *s)
{
    if (s->txn)
        return SV_EINTERNAL;
    if (s->opts.untracked || (!s->chg.base && !s->chg.log_bytes))
        return 0;
    return changes_reset(s);
}

int sv_store_expire_keys(struct sv_store *s, const uint8_t *recs, size_t len, uint64_t *deleted)
{
    *deleted = 0;
    if (s->txn)
        return SV_EINTERNAL;
    if (!len)
        return 0;
    int rc = sv_store_begin(s);
    if (rc)
        return rc;
    if ((rc = expire_records(s, recs, len, deleted))) {
        sv_store_abort(s);
        *deleted = 0;
        return rc;
    }
    return sv_store_commit(s);
}

uint64_t sv_store_changes_base(const struct sv_store *s)
{
    return s->chg.base;
}

uint64_t sv_store_changes_log_bytes(const struct sv_store *s)
{
    return s->chg.log_bytes;
}

/* Reserves space for a value of `len` bytes with a header and returns where
 * the bytes go. */
static int put_reserve(struct sv_store *s, MDB_dbi dbi, const uint8_t *skey, size_t sklen,
                       enum sv_value_kind kind, uint64_t expiry, size_t len, uint8_t **data)
{
    size_t hdr = sv_value_header_size(expiry);
    MDB_val k = {sklen, (void *)skey}, v = {hdr + len, NULL};
    int rc = mdb_put(write_txn(s), dbi, &k, &v, MDB_RESERVE);
    if (rc)
        return txn_fail(s, rc);
    sv_value_header_put(v.mv_data, kind, expiry);
    *data = (uint8_t *)v.mv_data + hdr;
    return 0;
}

int sv_store_put(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                 size_t sklen, enum sv_value_kind kind, const uint8_t *data, size_t len)
{
    return sv_store_put_ttl(s, state, slen, skey, sklen, kind, data, len, 0);
}

int sv_store_put_ttl(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                     size_t sklen, enum sv_value_kind kind, const uint8_t *data, size_t len,
                     uint64_t ttl_ms)
{
    struct charge ch;
    uint64_t expiry = write_expiry(s->ttl.n ? ttl_find(s, state, slen) : NULL, ttl_ms);
    if (expiry)
        sweep_note(s, expiry);
    int rc = admit_write(s, state, slen, sklen + sv_value_header_size(expiry) + len, &ch);
    if (rc)
        return rc;
    MDB_dbi dbi;
    if ((rc = state_dbi(s, state, slen, 1, &dbi)))
        return rc;
    if ((rc = keep_for_snapshot(s, dbi, skey, sklen, 1)))
        return rc;
    uint64_t before = ch.sl ? tree_pages(cur_txn(s), dbi) : 0;
    uint8_t *dst;
    if ((rc = put_reserve(s, dbi, skey, sklen, kind, expiry, len, &dst)))
        return rc;
    if (len)
        memcpy(dst, data, len);
    if ((rc = track_change(s, state, slen, skey, sklen)))
        return rc;
    charge_apply(s, &ch, grown(before, tree_pages(cur_txn(s), dbi)));
    return 0;
}

int sv_store_delete(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                    size_t sklen, int *found)
{
    MDB_dbi dbi;
    *found = 0;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    if (rc == SV_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if ((rc = keep_for_snapshot(s, dbi, skey, sklen, 0)))
        return rc;
    MDB_val k = {sklen, (void *)skey};
    uint64_t before = tree_pages(cur_txn(s), dbi);
    rc = mdb_del(write_txn(s), dbi, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return txn_fail(s, rc);
    *found = 1;
    if ((rc = track_change(s, state, slen, skey, sklen)))
        return rc;
    charge_delete(s, slot_find(s, state, slen), 1, before, tree_pages(cur_txn(s), dbi));
    return 0;
}

/* Builds in s->scratch the stored value of list old with operand appended
 * as an element expiring at expiry (0: never), each old element keeping its
 * own expiry (a plain list's: the entry's), those expired and hidden left
 * out (*dropped: how many). A list whose elements end up sharing one
 * expiry is stored plain. *entry_expiry: the value's expiry; *plain_size:
 * the size of the list a read answers now. */
static int timed_append(struct sv_store *s, const struct sv_ttl *st, const struct sv_value *old,
                        const uint8_t *operand, size_t oplen, uint64_t expiry,
                        uint64_t *entry_expiry, size_t *dropped, size_t *plain_size)
{
    struct sv_tlist_builder b;
    uint64_t now = sv_store_now_ms(), exp = old->expiry_ms;
    size_t off = 0, elen;
    const uint8_t *e;
    int rc;
    *dropped = *plain_size = 0;
    s->scratch.len = 0;
    if ((rc = sv_tlist_begin(&b, &s->scratch)))
        return rc;
    for (;;) {
        rc = old->timed ? sv_tlist_next(old->data, old->len, &off, &e, &elen, &exp)
                        : sv_list_next(old->data, old->len, &off, &e, &elen);
        if (rc != 1)
            break;
        if (old->timed && hidden_expired(st, exp, now)) {
            ++*dropped;
            continue;
        }
        if ((rc = sv_tlist_add(&b, e, elen, exp)))
            return rc;
        if (!hidden_expired(st, exp, now))
            *plain_size += sv_list_elem_size(elen);
    }
    if (rc)
        return SV_ECORRUPT;
    if ((rc = sv_tlist_add(&b, operand, oplen, expiry)))
        return rc;
    *plain_size += sv_list_elem_size(oplen);
    *entry_expiry = sv_tlist_finish(&b);
    return 0;
}

int sv_store_merge(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                   size_t sklen, enum sv_merge_op op, const uint8_t *operand, size_t oplen,
                   int64_t *counter, size_t *new_size, char *msg, size_t msglen)
{
    return sv_store_merge_ttl(s, state, slen, skey, sklen, op, operand, oplen, 0, counter, new_size,
                              msg, msglen);
}

int sv_store_merge_ttl(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                       size_t sklen, enum sv_merge_op op, const uint8_t *operand, size_t oplen,
                       uint64_t ttl_ms, int64_t *counter, size_t *new_size, char *msg,
                       size_t msglen)
{
    enum sv_value_kind want = op == SV_MERGE_APPEND ? SV_KIND_LIST : SV_KIND_COUNTER;
    if (op == SV_MERGE_ADD_I64 && oplen != SV_COUNTER_SIZE) {
        snprintf(msg, msglen, "ADD_I64 operand must be 8 bytes (big-endian int64), got %zu", oplen);
        return SV_EINVAL;
    }
    /* Look first, create the state only once the merge is known to apply:
     * a refused merge must not leave an empty state behind. */
    MDB_dbi dbi;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    int exists = rc == 0;
    if (rc && rc != SV_ENOTFOUND)
        return rc;
    /* Copied before anything is checked: a copy of the current entry is
     * harmless even if the merge is then refused. */
    if (exists && (rc = keep_for_snapshot(s, dbi, skey, sklen, 1)))
        return rc;
    MDB_val k = {sklen, (void *)skey}, v;
    struct sv_value old = {.kind = want, .data = NULL, .len = 0};
    int expired_entry = 0;
    rc = exists ? mdb_get(cur_txn(s), dbi, &k, &v) : MDB_NOTFOUND;
    const struct sv_ttl *st = s->ttl.n ? ttl_find(s, state, slen) : NULL;
    if (rc == 0) {
        if ((rc = sv_value_parse(v.mv_data, v.mv_size, &old)))
            return rc;
        if (hidden_expired(st, old.expiry_ms, sv_store_now_ms())) {
            /* Expired: the merge starts from empty, of any kind (the entry
             * it replaces counts as cleaned up on read). */
            expired_entry = 1;
            old.kind = want;
            old.timed = 0;
            old.data = NULL;
            old.len = 0;
        } else if (old.kind != want) {
            snprintf(msg, msglen, "%s needs a %s value, but the stored value is %s",
                     op == SV_MERGE_APPEND ? "APPEND" : "ADD_I64", sv_value_kind_name(want),
                     sv_value_kind_name(old.kind));
            return SV_EINVAL;
        }
    } else if (rc != MDB_NOTFOUND) {
        return map_err(rc);
    }
    /* Every write sets the expiry anew (Flink's update on write); in a list,
     * the appended element's alone. */
    uint64_t expiry = write_expiry(st, ttl_ms), written = expiry;
    int timed = op == SV_MERGE_APPEND && (old.timed || (old.len && old.expiry_ms != expiry));
    size_t grown_to = old.len + sv_list_elem_size(oplen), dropped = 0, answered = 0;
    if (timed) {
        if ((rc = timed_append(s, st, &old, operand, oplen, expiry, &expiry, &dropped, &answered)))
            return rc;
        struct sv_value nv;
        if ((rc = sv_value_parse(s->scratch.data, s->scratch.len, &nv)))
            return rc;
        grown_to = nv.len;
    }
    if (op == SV_MERGE_APPEND && grown_to > s->max_value_size) {
        snprintf(msg, msglen, "the list would grow to %zu bytes; max_value_size is %u", grown_to,
                 s->max_value_size);
        return SV_ETOOLARGE;
    }
    /* The new counter is known before any space is taken: an overflow is
     * refused like a kind mismatch, with nothing changed. */
    int64_t sum = 0;
    if (op == SV_MERGE_ADD_I64) {
        if (old.data && old.len != SV_COUNTER_SIZE)
            return SV_ECORRUPT;
        int64_t cur = old.data ? sv_i64_get(old.data) : 0;
        if (__builtin_add_overflow(cur, sv_i64_get(operand), &sum)) {
            snprintf(msg, msglen, "counter overflow: %lld + %lld", (long long)cur,
                     (long long)sv_i64_get(operand));
            return SV_EINVAL;
        }
    }
    if (written) /* the element's (in a timed list, expiry is now the entry's) */
        sweep_note(s, written);
    size_t entry = timed ? sklen + s->scratch.len
                         : sklen + sv_value_header_size(expiry) +
                               (op == SV_MERGE_ADD_I64 ? SV_COUNTER_SIZE : grown_to);
    struct charge ch;
    if ((rc = admit_write(s, state, slen, entry, &ch))) {
        sv_store_nospace_msg(s, msg, msglen);
        return rc;
    }
    if (!exists && (rc = state_dbi(s, state, slen, 1, &dbi)))
        return rc;
    uint64_t before = exists ? tree_pages(cur_txn(s), dbi) : 0;

    uint8_t *dst;
    if (op == SV_MERGE_ADD_I64) {
        if ((rc = put_reserve(s, dbi, skey, sklen, SV_KIND_COUNTER, expiry, SV_COUNTER_SIZE, &dst)))
            return rc;
        sv_i64_put(dst, sum);
        if ((rc = track_change(s, state, slen, skey, sklen)))
            return rc;
        *counter = sum;
        *new_size = SV_COUNTER_SIZE;
        charge_apply(s, &ch, grown(before, tree_pages(cur_txn(s), dbi)));
        s->expired_on_read += expired_entry;
        return 0;
    }

    if (timed) {
        if ((rc = put_stored(s, dbi, state, slen, skey, sklen, s->scratch.data, s->scratch.len,
                             &ch)))
            return rc;
        s->expired_on_read += dropped; /* the merge read them: a clean-up on read */
        *new_size = answered;
        *counter = 0;
        return 0;
    }
    size_t add = sv_list_elem_size(oplen);
    /* The old bytes may sit on the page mdb_put rewrites: copy them first. */
    s->scratch.len = 0;
    if (old.len && (rc = sv_buf_append(&s->scratch, old.data, old.len)))
        return rc;
    if ((rc = put_reserve(s, dbi, skey, sklen, SV_KIND_LIST, expiry, old.len + add, &dst)))
        return rc;
    if (old.len)
        memcpy(dst, s->scratch.data, old.len);
    sv_list_elem_put(dst + old.len, operand, oplen);
    if ((rc = track_change(s, state, slen, skey, sklen)))
        return rc;
    if (s->scratch.cap > 1024 * 1024)
        sv_buf_clear(&s->scratch, 0);
    *new_size = old.len + add;
    *counter = 0;
    charge_apply(s, &ch, grown(before, tree_pages(cur_txn(s), dbi)));
    s->expired_on_read += expired_entry;
    return 0;
}

/* Positions a cursor at the first entry >= lo. */
static int range_first(MDB_cursor *cur, const uint8_t *lo, size_t lolen, MDB_val *k, MDB_val *v)
{
    if (lo && lolen) {
        k->mv_size = lolen;
        k->mv_data = (void *)lo;
        return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    }
    return mdb_cursor_get(cur, k, v, MDB_FIRST);
}

static int below(const MDB_val *k, const uint8_t *hi, size_t hilen)
{
    if (!hi)
        return 1;
    size_t n = k->mv_size < hilen ? k->mv_size : hilen;
    int c = memcmp(k->mv_data, hi, n);
    return c < 0 || (c == 0 && k->mv_size < hilen);
}

int sv_store_scan(struct sv_store *s, const char *state, size_t slen, const uint8_t *lo,
                  size_t lolen, const uint8_t *hi, size_t hilen, sv_store_scan_fn fn, void *ud)
{
    MDB_dbi dbi;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    if (rc == SV_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(cur_txn(s), dbi, &cur)))
        return map_err(rc);
    MDB_val k, v;
    int mrc = range_first(cur, lo, lolen, &k, &v);
    const struct sv_ttl *st = s->ttl.n ? ttl_find(s, state, slen) : NULL;
    uint64_t now = 0;
    rc = 0;
    while (mrc == 0 && below(&k, hi, hilen)) {
        struct sv_value val;
        if ((rc = sv_value_parse(v.mv_data, v.mv_size, &val)))
            break;
        if (val.expiry_ms &&
            hidden_expired(st, val.expiry_ms, now ? now : (now = sv_store_now_ms()))) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* expired: not shown */
            continue;
        }
        if (val.timed) { /* its live elements, plain; no clean-up in a scan */
            size_t dropped;
            s->view.len = 0;
            if ((rc =
                     sv_tlist_plain(&val, now ? now : (now = sv_store_now_ms()),
                                    st && st->visibility == SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP,
                                    &s->view, &dropped)))
                break;
            val.data = s->view.data;
            val.len = s->view.len;
            val.timed = 0;
            val.scratch = 1;
        }
        rc = fn(ud, k.mv_data, k.mv_size, &val);
        if (rc)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (!rc && mrc && mrc != MDB_NOTFOUND)
        rc = map_err(mrc);
    mdb_cursor_close(cur);
    return rc < 0 ? rc : 0;
}

int sv_store_delete_range(struct sv_store *s, const char *state, size_t slen, const uint8_t *lo,
                          size_t lolen, const uint8_t *hi, size_t hilen, uint64_t *deleted)
{
    MDB_dbi dbi;
    *deleted = 0;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    if (rc == SV_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    MDB_cursor *cur;
    uint64_t before = tree_pages(cur_txn(s), dbi);
    if ((rc = mdb_cursor_open(write_txn(s), dbi, &cur)))
        return txn_fail(s, rc);
    MDB_val k, v;
    int mrc = range_first(cur, lo, lolen, &k, &v);
    while (mrc == 0 && below(&k, hi, hilen)) {
        if ((rc = keep_for_snapshot(s, dbi, k.mv_data, k.mv_size, 0))) {
            /* Half a clear must not commit. */
            if (*deleted && !s->txn_error)
                s->txn_error = rc;
            break;
        }
        /* Recorded first: k is the cursor's entry, gone after the delete. A
         * failure poisons the transaction, so nothing half-done commits. */
        if ((rc = track_change(s, state, slen, k.mv_data, k.mv_size)))
            break;
        if ((mrc = mdb_cursor_del(cur, 0)))
            break;
        (*deleted)++;
        /* Seek again rather than trust the cursor's position after a delete:
         * when the tree becomes empty, MDB_GET_CURRENT fails with EINVAL. */
        mrc = range_first(cur, lo, lolen, &k, &v);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc && mrc != MDB_NOTFOUND)
        return txn_fail(s, mrc);
    if (*deleted)
        charge_delete(s, slot_find(s, state, slen), *deleted, before, tree_pages(cur_txn(s), dbi));
    return 0;
}

int sv_store_drop_state(struct sv_store *s, const char *state, size_t slen, uint64_t *deleted)
{
    MDB_dbi dbi;
    *deleted = 0;
    int rc = state_dbi(s, state, slen, 0, &dbi);
    if (rc == SV_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    MDB_stat st;
    if ((rc = mdb_stat(cur_txn(s), dbi, &st)))
        return txn_fail(s, rc);
    /* mdb_drop(…, 1) closes the handle for the whole environment at once,
     * even if this transaction later aborts; forget it now. A snapshot
     * reading it on another thread would be left with a dead handle. */
    if (s->snap.active)
        return SV_EBUSY;
    struct state_slot *sl = slot_find(s, state, slen);
    uint64_t before = (uint64_t)st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    if ((rc = mdb_drop(write_txn(s), dbi, 1)))
        return txn_fail(s, rc);
    if ((rc = track_change(s, state, slen, NULL, 0)))
        return rc;
    /* Its TTL setting goes with it (a state registered again sets one). */
    struct sv_ttl none = {0, SV_TTL_ON_CREATE_AND_WRITE, SV_TTL_NEVER_RETURN_EXPIRED};
    if (ttl_find(s, state, slen) && (rc = sv_store_set_ttl(s, state, slen, &none)))
        return rc;
    /* Its record in main is rewritten, and every page it had is listed. */
    charge_delete(s, NULL, 1, before, 0);
    if (sl)
        slot_remove(s, sl);
    s->dropped_in_txn = 1; /* an abort must bring the state back */
    *deleted = st.ms_entries;
    return 0;
}

int sv_store_list_states(struct sv_store *s, int (*fn)(void *ud, const struct sv_state_stat *st),
                         void *ud)
{
    MDB_txn *txn = cur_txn(s);
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    int rc;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)))
        return map_err(rc);
    if ((rc = mdb_cursor_open(txn, main_dbi, &cur)))
        return map_err(rc);
    MDB_val k, v;
    int mrc;
    rc = 0;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (!sv_state_name_valid(k.mv_data, k.mv_size))
            continue;
        struct sv_state_stat st;
        memset(&st, 0, sizeof(st));
        memcpy(st.name, k.mv_data, k.mv_size);
        sv_store_get_ttl(s, st.name, k.mv_size, &st.ttl);
        MDB_dbi dbi;
        if ((rc = state_dbi(s, st.name, k.mv_size, 0, &dbi)))
            break;
        MDB_stat ms;
        if ((rc = mdb_stat(txn, dbi, &ms))) {
            rc = map_err(rc);
            break;
        }
        st.entries = ms.ms_entries;
        st.bytes =
            (uint64_t)(ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages) * ms.ms_psize;
        if ((rc = fn(ud, &st)))
            break;
    }
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND)
        rc = map_err(mrc);
    return rc;
}

void sv_store_usage(struct sv_store *s, uint64_t *map_size, uint64_t *map_used)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    *map_size = info.me_mapsize;
    *map_used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

void sv_store_kg_range(const struct sv_store *s, uint32_t *first, uint32_t *last)
{
    *first = s->kg_first;
    *last = s->kg_last;
}

int sv_store_snapshot_active(const struct sv_store *s)
{
    return s->snap.active;
}

/* --- snapshots: the cut ---------------------------------------------------
 *
 * A snapshot does not hold one read transaction while it streams: LMDB could
 * not reuse any page freed meanwhile, the file would grow by every page the
 * writes copied, and LMDB's oldest-first reuse of that pool would leave
 * writes slower long after the snapshot. Instead it reads in chunks of
 * SNAP_CHUNK entries, each in a short read transaction, and the cut is the
 * commit it began after. The first write after the cut to an entry the
 * snapshot has not read yet first copies the entry as it was at the cut (or
 * that it was absent) into the keep environment; the snapshot merges those
 * copies into what it reads.
 *
 * The keep environment is a file of its own (KEEP_FILE), so the copies never
 * become free pages of the store: the file is removed when the snapshot
 * ends. Its transaction commits just before the group transaction, and a
 * chunk opens its read transaction on it just after the one on the store: a
 * chunk that sees a change also sees the copy. A copy whose change then
 * aborted holds the value the store still has, so it is harmless. If a copy
 * cannot be made (its file full, an I/O error), the write still happens and
 * the snapshot fails: a checkpoint can be taken again, a write is the
 * client's. */

/* Whether the running snapshot still has to read (dbi, skey); its index. */
static int snap_unread(struct sv_store *s, MDB_dbi dbi, const uint8_t *skey, size_t sklen,
                       size_t *idx)
{
    if (!s->snap.active || dbi >= s->snap.ndbi || !s->snap.idx[dbi])
        return 0;
    size_t i = s->snap.idx[dbi] - 1u;
    pthread_mutex_lock(&s->snap.mu);
    int unread =
        !s->snap.broken &&
        (i > s->snap.pos_state ||
         (i == s->snap.pos_state &&
          (!s->snap.pos_len || sv_skey_cmp(skey, sklen, s->snap.pos_key, s->snap.pos_len) > 0)));
    pthread_mutex_unlock(&s->snap.mu);
    *idx = i;
    return unread;
}

/* The snapshot cannot be the cut any more: it fails at its next chunk. */
static void snap_break(struct sv_store *s, const char *why, int rc)
{
    sv_warn("store: the running snapshot is abandoned: %s: %s", why, mdb_strerror(rc));
    if (s->snap.keep_txn) {
        mdb_txn_abort(s->snap.keep_txn);
        s->snap.keep_txn = NULL;
    }
    pthread_mutex_lock(&s->snap.mu);
    s->snap.broken = 1;
    pthread_mutex_unlock(&s->snap.mu);
}

/* Before a write to (dbi, skey): keeps the entry as it is now, which is as
 * it was at the cut unless it was kept already. A missing entry is kept as
 * absent only if absent_too (a delete of a missing key changes nothing). */
static int keep_for_snapshot(struct sv_store *s, MDB_dbi dbi, const uint8_t *skey, size_t sklen,
                             int absent_too)
{
    size_t i;
    if (!snap_unread(s, dbi, skey, sklen, &i))
        return 0;
    if (sklen + KEEP_PREFIX > s->max_key)
        return SV_EBUSY; /* longer than keys may be now: from an older version */
    int rc;
    if (!s->snap.keep_txn && (rc = mdb_txn_begin(s->snap.keep_env, NULL, 0, &s->snap.keep_txn))) {
        s->snap.keep_txn = NULL;
        snap_break(s, "cannot begin a transaction to keep entries", rc);
        return 0;
    }
    uint8_t kb[SKEY_CAP];
    sv_be16_put(kb, (uint16_t)i);
    memcpy(kb + KEEP_PREFIX, skey, sklen);
    MDB_val pk = {sklen + KEEP_PREFIX, kb}, k = {sklen, (void *)skey}, v;
    rc = mdb_get(s->snap.keep_txn, s->snap.keep_dbi, &pk, &v);
    if (rc == 0)
        return 0; /* kept already */
    if (rc != MDB_NOTFOUND) {
        snap_break(s, "cannot read the kept entries", rc);
        return 0;
    }
    rc = mdb_get(cur_txn(s), dbi, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return map_err(rc);
    if (rc && !absent_too)
        return 0;
    uint8_t tag = rc ? KEEP_ABSENT : KEEP_PRESENT;
    MDB_val pv = {1 + (tag == KEEP_PRESENT ? v.mv_size : 0), NULL};
    if ((rc = mdb_put(s->snap.keep_txn, s->snap.keep_dbi, &pk, &pv, MDB_RESERVE))) {
        snap_break(s, "cannot keep an entry", rc);
        return 0;
    }
    uint8_t *dst = pv.mv_data;
    dst[0] = tag;
    if (tag == KEEP_PRESENT && v.mv_size)
        memcpy(dst + 1, v.mv_data, v.mv_size);
    s->snap.saved++;
    return 0;
}

/* Commits the copies the group transaction made, before it commits. */
static void keep_commit(struct sv_store *s)
{
    if (!s->snap.keep_txn)
        return;
    int rc = mdb_txn_commit(s->snap.keep_txn);
    s->snap.keep_txn = NULL;
    if (rc)
        snap_break(s, "cannot commit the kept entries", rc);
}

static void keep_abort(struct sv_store *s)
{
    if (s->snap.keep_txn) {
        mdb_txn_abort(s->snap.keep_txn);
        s->snap.keep_txn = NULL;
    }
}

static void keep_path(const struct sv_store *s, char *out, size_t cap, int lock)
{
    snprintf(out, cap, "%.4000s/" KEEP_FILE "%s", s->dir, lock ? "-lock" : "");
}

/* Closes the keep environment and removes its files (also leftovers). */
static void keep_close(struct sv_store *s)
{
    keep_abort(s);
    if (s->snap.keep_env) {
        mdb_env_close(s->snap.keep_env);
        s->snap.keep_env = NULL;
    }
    char path[PATH_BUF];
    for (int lock = 0; lock < 2; lock++) {
        keep_path(s, path, sizeof(path), lock);
        if (unlink(path) && errno != ENOENT)
            sv_warn("store: cannot remove %s: %s", path, strerror(errno));
    }
}

/* A fresh, empty keep environment. Not synced: it is never read after a
 * restart. Its map is the store's current one (at least 64 MiB, at most
 * map_size_max): the copies are at most the entries at the cut, plus a
 * marker per key created meanwhile; if they outgrow it the snapshot fails.
 * Not map_size_max itself: address space may be limited (RLIMIT_AS,
 * valgrind). */
static int keep_open(struct sv_store *s)
{
    keep_close(s);
    char path[PATH_BUF];
    keep_path(s, path, sizeof(path), 0);
    MDB_txn *txn;
    uint64_t size = s->map_size > (64ull << 20) ? s->map_size : (64ull << 20);
    if (size > s->map_size_max)
        size = s->map_size_max;
    if (s->opts.keep_map_size)
        size = s->opts.keep_map_size;
    int rc = mdb_env_create(&s->snap.keep_env);
    if (rc) {
        s->snap.keep_env = NULL;
        return map_err(rc);
    }
    if ((rc = mdb_env_set_mapsize(s->snap.keep_env, size)) ||
        (rc = mdb_env_open(s->snap.keep_env, path,
                           MDB_NOSUBDIR | MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0640)) ||
        (rc = mdb_txn_begin(s->snap.keep_env, NULL, 0, &txn))) {
        sv_error("store: cannot create %s: %s", path, mdb_strerror(rc));
        keep_close(s);
        return map_err(rc);
    }
    /* Empty even if an old file could not be removed: stale copies would be
     * taken for the cut. */
    MDB_stat st;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->snap.keep_dbi)) ||
        (rc = mdb_stat(txn, s->snap.keep_dbi, &st)) ||
        (st.ms_entries && (rc = mdb_drop(txn, s->snap.keep_dbi, 0)))) {
        mdb_txn_abort(txn);
        keep_close(s);
        return map_err(rc);
    }
    if ((rc = mdb_txn_commit(txn))) {
        keep_close(s);
        return map_err(rc);
    }
    return 0;
}

/* --- snapshots ------------------------------------------------------------ */

struct snap_state {
    char name[SV_STATE_NAME_MAX + 1];
    MDB_dbi dbi;
    uint64_t entries;  /* at the cut */
    struct sv_ttl ttl; /* its setting at the cut */
};

struct sv_store_snapshot {
    struct sv_store *s;
    MDB_txn *txn;      /* on the store, reset between chunks */
    MDB_txn *keep_txn; /* on the keep environment, likewise */
    size_t n;
    struct snap_state *states;
    /* What the scan of the current state has read: the keep key of the last
     * entry (index, stored key); plen 0 = nothing yet. */
    uint8_t pos[SKEY_CAP];
    size_t plen;
    /* The change set at the cut: the checkpoint it is relative to (0: none)
     * and the log's first sequence number after the cut; once loaded, its
     * records (length-prefixed, as in the log) and their offsets in chg_buf,
     * sorted, each key once; of the state being scanned, the records left. */
    uint64_t chg_base;
    uint64_t chg_cut;
    int chg_loaded;
    struct sv_buf chg_buf;
    uint32_t *chg_recs;
    size_t chg_n;
    size_t chg_at, chg_end;
};

/* Publishes what the snapshot has read: states before `state` whole, and of
 * `state` every key <= key (none if klen is 0). */
static int snap_publish(struct sv_store *s, size_t state, const uint8_t *key, size_t klen)
{
    pthread_mutex_lock(&s->snap.mu);
    s->snap.pos_state = state;
    s->snap.pos_len = klen;
    if (klen)
        memcpy(s->snap.pos_key, key, klen);
    int broken = s->snap.broken;
    pthread_mutex_unlock(&s->snap.mu);
    return broken ? SV_EMAPFULL : 0;
}

int sv_store_snapshot_begin(struct sv_store *s, struct sv_store_snapshot **out)
{
    *out = NULL;
    if (s->txn || s->snap.active)
        return SV_EBUSY;
    /* The map cannot grow while the snapshot's thread may be reading, and
     * pages the writes meanwhile take must fit: start with half the map
     * free.
     * A failure to grow is not the snapshot's: writes get NO_SPACE if the
     * map does fill up. */
    uint64_t size, used;
    sv_store_usage(s, &size, &used);
    if (used > size / 2 && s->map_size < s->map_size_max && sv_store_grow(s) != 0)
        sv_info("store: snapshot starts with the map %llu%% full",
                (unsigned long long)(used * 100 / size));
    int rc;
    struct sv_store_snapshot *snap = calloc(1, sizeof(*snap));
    if (!snap)
        return -ENOMEM;
    snap->s = s;
    if ((rc = keep_open(s))) {
        free(snap);
        return rc;
    }
    if ((rc = mdb_txn_begin(s->snap.keep_env, NULL, MDB_RDONLY, &snap->keep_txn))) {
        keep_close(s);
        free(snap);
        return map_err(rc);
    }
    mdb_txn_reset(snap->keep_txn);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &snap->txn))) {
        mdb_txn_abort(snap->keep_txn);
        keep_close(s);
        free(snap);
        return map_err(rc);
    }
    /* Every committed state has a committed handle (depth 0): states are
     * opened at start and created only in transactions that committed. */
    size_t cap = s->used ? s->used : 1;
    snap->states = calloc(cap, sizeof(*snap->states));
    MDB_dbi main_dbi;
    MDB_cursor *cur = NULL;
    MDB_dbi top = 0;
    if (!snap->states) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = mdb_dbi_open(snap->txn, NULL, 0, &main_dbi)) ||
        (rc = mdb_cursor_open(snap->txn, main_dbi, &cur))) {
        rc = map_err(rc);
        goto fail;
    }
    MDB_val k, v;
    int mrc;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (!sv_state_name_valid(k.mv_data, k.mv_size))
            continue;
        struct state_slot *sl = slot_find(s, k.mv_data, k.mv_size);
        if (!sl || sl->depth != 0 || snap->n == cap || snap->n >= UINT16_MAX) {
            sv_error("snapshot: state '%.*s' has no committed handle or is beyond the %u "
                     "a snapshot can hold",
                     (int)k.mv_size, (const char *)k.mv_data, (unsigned)UINT16_MAX);
            rc = SV_EINTERNAL;
            goto fail;
        }
        memcpy(snap->states[snap->n].name, sl->name, sl->len + 1);
        snap->states[snap->n].dbi = sl->dbi;
        sv_store_get_ttl(s, sl->name, sl->len, &snap->states[snap->n].ttl);
        MDB_stat st;
        if ((rc = mdb_stat(snap->txn, sl->dbi, &st))) {
            rc = map_err(rc);
            goto fail;
        }
        snap->states[snap->n].entries = st.ms_entries;
        if (sl->dbi > top)
            top = sl->dbi;
        snap->n++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (mrc != MDB_NOTFOUND) {
        rc = map_err(mrc);
        goto fail;
    }
    uint16_t *idx = calloc((size_t)top + 1, sizeof(*idx));
    if (!idx) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < snap->n; i++)
        idx[snap->states[i].dbi] = (uint16_t)(i + 1);
    free(s->snap.idx);
    s->snap.idx = idx;
    s->snap.ndbi = (size_t)top + 1;
    s->snap.saved = 0;
    s->snap.broken = 0;
    (void)snap_publish(s, 0, NULL, 0);
    mdb_txn_reset(snap->txn); /* the cut holds without it: see "the cut" */
    s->snap.active = 1;
    /* From the cut on, changes belong to the next checkpoint: a new epoch,
     * tracked even if there was no base (this snapshot becomes one). */
    snap->chg_base = s->chg.base;
    snap->chg_cut = s->chg.next_seq;
    s->chg.track = !s->opts.untracked;
    s->chg.lost = 0;
    sv_keycache_clear(&s->chg.logged);
    *out = snap;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(snap->txn);
    mdb_txn_abort(snap->keep_txn);
    keep_close(s);
    free(snap->states);
    free(snap);
    return rc;
}

size_t sv_store_snapshot_nstates(const struct sv_store_snapshot *snap)
{
    return snap->n;
}

const char *sv_store_snapshot_state(const struct sv_store_snapshot *snap, size_t i)
{
    return i < snap->n ? snap->states[i].name : NULL;
}

/* Positions cur at the first entry >= key, or > key with after (klen 0:
 * at the first entry). */
static int seek(MDB_cursor *cur, const uint8_t *key, size_t klen, int after, MDB_val *k, MDB_val *v)
{
    k->mv_size = klen;
    k->mv_data = (void *)key;
    if (!klen)
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == 0 && after && k->mv_size == klen && memcmp(k->mv_data, key, klen) == 0)
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return rc;
}

/* Reads up to SNAP_CHUNK entries of state i after snap->pos in one read
 * transaction, merging the kept copies in: a copy is the entry at the cut. */
static int scan_chunk(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn, void *ud,
                      int *done)
{
    struct sv_store *s = snap->s;
    MDB_cursor *lc = NULL, *pc = NULL;
    /* The store first, then the copies: see "the cut". */
    int rc = mdb_txn_renew(snap->txn);
    if (rc)
        return map_err(rc);
    if ((rc = mdb_txn_renew(snap->keep_txn))) {
        mdb_txn_reset(snap->txn);
        return map_err(rc);
    }
    if ((rc = mdb_cursor_open(snap->txn, snap->states[i].dbi, &lc)) ||
        (rc = mdb_cursor_open(snap->keep_txn, s->snap.keep_dbi, &pc))) {
        rc = map_err(rc);
        goto out;
    }
    MDB_val lk, lv, pk, pv;
    size_t plen = snap->plen;
    /* After what was read; with nothing read yet, the store's first entry
     * and the copies' bare prefix of state i (which sorts first). */
    int lrc = seek(lc, snap->pos + KEEP_PREFIX, plen ? plen - KEEP_PREFIX : 0, 1, &lk, &lv);
    int prc = seek(pc, snap->pos, plen ? plen : KEEP_PREFIX, plen != 0, &pk, &pv);
    const uint8_t *last = NULL;
    size_t lastlen = 0;
    for (size_t n = 0; n < SNAP_CHUNK && !rc; n++) {
        int have_l = lrc == 0;
        int have_p =
            prc == 0 && pk.mv_size > KEEP_PREFIX && memcmp(pk.mv_data, snap->pos, KEEP_PREFIX) == 0;
        if (!have_l && !have_p) {
            *done = 1;
            break;
        }
        const uint8_t *pkey = have_p ? (const uint8_t *)pk.mv_data + KEEP_PREFIX : NULL;
        size_t pklen = have_p ? pk.mv_size - KEEP_PREFIX : 0;
        int c = !have_p ? -1 : !have_l ? 1 : sv_skey_cmp(lk.mv_data, lk.mv_size, pkey, pklen);
        if (c < 0) {
            last = lk.mv_data;
            lastlen = lk.mv_size;
            rc = fn(ud, lk.mv_data, lk.mv_size, lv.mv_data, lv.mv_size);
            lrc = mdb_cursor_get(lc, &lk, &lv, MDB_NEXT);
            continue;
        }
        const uint8_t *pval = pv.mv_data;
        if (pv.mv_size < 1 || pval[0] > KEEP_PRESENT) {
            sv_error("snapshot: a kept entry of state '%s' is corrupt", snap->states[i].name);
            rc = SV_ECORRUPT;
            break;
        }
        last = pkey;
        lastlen = pklen;
        if (pval[0] == KEEP_PRESENT)
            rc = fn(ud, pkey, pklen, pval + 1, pv.mv_size - 1);
        prc = mdb_cursor_get(pc, &pk, &pv, MDB_NEXT);
        if (c == 0) /* the live entry is newer than the cut */
            lrc = mdb_cursor_get(lc, &lk, &lv, MDB_NEXT);
    }
    if (!rc && lrc && lrc != MDB_NOTFOUND)
        rc = map_err(lrc);
    if (!rc && prc && prc != MDB_NOTFOUND)
        rc = map_err(prc);
    if (last && lastlen > sizeof(snap->pos) - KEEP_PREFIX) {
        rc = SV_EINTERNAL; /* an LMDB built for longer keys than SKEY_CAP */
    } else if (last) {
        memcpy(snap->pos + KEEP_PREFIX, last, lastlen);
        snap->plen = KEEP_PREFIX + lastlen;
    }
out:
    if (lc)
        mdb_cursor_close(lc);
    if (pc)
        mdb_cursor_close(pc);
    mdb_txn_reset(snap->keep_txn);
    mdb_txn_reset(snap->txn);
    return rc;
}

typedef int (*chunk_fn)(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn, void *ud,
                        int *done);

static int snapshot_scan(struct sv_store_snapshot *snap, size_t i, chunk_fn chunk,
                         sv_store_raw_fn fn, void *ud);

int sv_store_snapshot_scan(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn, void *ud)
{
    return snapshot_scan(snap, i, scan_chunk, fn, ud);
}

/* The change set's records in the order of their stored keys, state by
 * state: name, the 0 byte, the key (a reset, the bare name, first). */
static _Thread_local const uint8_t *sort_buf;

static int rec_cmp(const void *a, const void *b)
{
    const uint8_t *p = sort_buf + *(const uint32_t *)a, *q = sort_buf + *(const uint32_t *)b;
    return sv_skey_cmp(p + 2, sv_be16_get(p), q + 2, sv_be16_get(q));
}

/* Checks a log entry's records: each whole, with a state name that could be
 * one and a key that fits. */
static int records_valid(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p < end) {
        if (end - p < 2)
            return 0;
        size_t len = sv_be16_get(p);
        if (len < 1 || len > (size_t)(end - p) - 2)
            return 0;
        const uint8_t *zero =
            memchr(p + 2, 0, len < SV_STATE_NAME_MAX + 1 ? len : SV_STATE_NAME_MAX + 1);
        if (!zero || !sv_state_name_valid((const char *)p + 2, (size_t)(zero - p - 2)) ||
            len - (size_t)(zero - p - 2) - 1 > SKEY_CAP - KEEP_PREFIX)
            return 0;
        p += 2 + len;
    }
    return 1;
}

int sv_store_snapshot_load_changes(struct sv_store_snapshot *snap)
{
    if (snap->chg_loaded)
        return 0;
    struct sv_store *s = snap->s;
    MDB_cursor *cur;
    int rc = mdb_txn_renew(snap->txn);
    if (rc)
        return map_err(rc);
    if ((rc = mdb_cursor_open(snap->txn, s->chg.dbi, &cur))) {
        mdb_txn_reset(snap->txn);
        return map_err(rc);
    }
    /* The log only grows at its end while the snapshot runs: the entries
     * before the cut are all there, in one read transaction. */
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    snap->chg_buf.len = 0;
    for (; mrc == 0 && !rc; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || !records_valid(v.mv_data, v.mv_size)) {
            sv_error("snapshot: an entry of the change log is corrupt");
            rc = SV_ECORRUPT;
        } else if (sv_be64_get(k.mv_data) >= snap->chg_cut) {
            break;
        } else if (snap->chg_buf.len + v.mv_size > UINT32_MAX) {
            rc = SV_ETOOLARGE;
        } else {
            rc = sv_buf_append(&snap->chg_buf, v.mv_data, v.mv_size);
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_reset(snap->txn);
    if (!rc && mrc && mrc != MDB_NOTFOUND)
        rc = map_err(mrc);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t off = 0; off < snap->chg_buf.len; off += 2 + sv_be16_get(snap->chg_buf.data + off))
        n++;
    free(snap->chg_recs);
    snap->chg_recs = malloc((n ? n : 1) * sizeof(*snap->chg_recs));
    if (!snap->chg_recs)
        return -ENOMEM;
    n = 0;
    for (size_t off = 0; off < snap->chg_buf.len; off += 2 + sv_be16_get(snap->chg_buf.data + off))
        snap->chg_recs[n++] = (uint32_t)off;
    sort_buf = snap->chg_buf.data;
    qsort(snap->chg_recs, n, sizeof(*snap->chg_recs), rec_cmp);
    size_t m = 0; /* each key once */
    for (size_t i = 0; i < n; i++)
        if (!m || rec_cmp(&snap->chg_recs[m - 1], &snap->chg_recs[i]) != 0)
            snap->chg_recs[m++] = snap->chg_recs[i];
    snap->chg_n = m;
    snap->chg_loaded = 1;
    sv_debug("snapshot: %zu changed keys (%zu records, %zu bytes) since checkpoint %" PRIu64, m, n,
             snap->chg_buf.len, snap->chg_base);
    return 0;
}

/* The first record of the change set >= name followed by the byte `after`. */
static size_t changes_lower(const struct sv_store_snapshot *snap, const char *name, uint8_t after)
{
    uint8_t key[SV_STATE_NAME_MAX + 1];
    size_t nl = strlen(name), lo = 0, hi = snap->chg_n;
    memcpy(key, name, nl);
    key[nl] = after;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *r = snap->chg_buf.data + snap->chg_recs[mid];
        if (sv_skey_cmp(r + 2, sv_be16_get(r), key, nl + 1) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether the change set's record at index i is state `name`'s reset. */
static int is_reset(const struct sv_store_snapshot *snap, size_t i, size_t nl)
{
    return i < snap->chg_n && sv_be16_get(snap->chg_buf.data + snap->chg_recs[i]) == nl + 1;
}

/* Reads up to SNAP_CHUNK changed keys of state i in one read transaction,
 * and calls fn with each key's entry at the cut: the kept copy if there is
 * one (the key was written since), else the store's; an absent entry as a
 * tombstone (an empty value). */
static int changes_chunk(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn, void *ud,
                         int *done)
{
    struct sv_store *s = snap->s;
    int rc = mdb_txn_renew(snap->txn);
    if (rc)
        return map_err(rc);
    if ((rc = mdb_txn_renew(snap->keep_txn))) {
        mdb_txn_reset(snap->txn);
        return map_err(rc);
    }
    size_t nl = strlen(snap->states[i].name);
    uint8_t kb[SKEY_CAP];
    const uint8_t *last = NULL;
    size_t lastlen = 0;
    for (size_t n = 0; n < SNAP_CHUNK && !rc && snap->chg_at < snap->chg_end; n++) {
        const uint8_t *r = snap->chg_buf.data + snap->chg_recs[snap->chg_at++];
        const uint8_t *sk = r + 2 + nl + 1;
        size_t skl = sv_be16_get(r) - nl - 1;
        sv_be16_put(kb, (uint16_t)i);
        memcpy(kb + KEEP_PREFIX, sk, skl);
        MDB_val pk = {skl + KEEP_PREFIX, kb}, pv, lk = {skl, (void *)sk}, lv;
        int prc = mdb_get(snap->keep_txn, s->snap.keep_dbi, &pk, &pv);
        if (prc == 0) {
            const uint8_t *p = pv.mv_data;
            if (pv.mv_size < 1 || p[0] > KEEP_PRESENT) {
                rc = SV_ECORRUPT;
                break;
            }
            rc = fn(ud, sk, skl, p + 1, p[0] == KEEP_PRESENT ? pv.mv_size - 1 : 0);
        } else if (prc != MDB_NOTFOUND) {
            rc = map_err(prc);
        } else if ((prc = mdb_get(snap->txn, snap->states[i].dbi, &lk, &lv)) == 0) {
            rc = fn(ud, sk, skl, lv.mv_data, lv.mv_size);
        } else if (prc == MDB_NOTFOUND) {
            rc = fn(ud, sk, skl, (const uint8_t *)"", 0); /* deleted */
        } else {
            rc = map_err(prc);
        }
        last = sk;
        lastlen = skl;
    }
    if (snap->chg_at >= snap->chg_end)
        *done = 1;
    if (!rc && last) {
        memcpy(snap->pos + KEEP_PREFIX, last, lastlen);
        snap->plen = KEEP_PREFIX + lastlen;
    }
    mdb_txn_reset(snap->keep_txn);
    mdb_txn_reset(snap->txn);
    return rc;
}

uint64_t sv_store_snapshot_changes(const struct sv_store_snapshot *snap)
{
    return snap->chg_loaded ? snap->chg_n : 0;
}

int sv_store_snapshot_scan_changes(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn,
                                   void *ud)
{
    if (i >= snap->n || !snap->chg_loaded)
        return SV_EINVAL;
    const char *name = snap->states[i].name;
    snap->chg_at = changes_lower(snap, name, 0);
    snap->chg_end = changes_lower(snap, name, 1);
    if (is_reset(snap, snap->chg_at, strlen(name)) && snap->chg_at < snap->chg_end)
        snap->chg_at++;
    return snapshot_scan(snap, i, changes_chunk, fn, ud);
}

int sv_store_snapshot_reset(struct sv_store_snapshot *snap, size_t i, int *reset)
{
    *reset = 0;
    if (i >= snap->n || !snap->chg_loaded)
        return SV_EINVAL;
    const char *name = snap->states[i].name;
    size_t at = changes_lower(snap, name, 0);
    *reset = at < changes_lower(snap, name, 1) && is_reset(snap, at, strlen(name));
    return 0;
}

void sv_store_snapshot_ttl(const struct sv_store_snapshot *snap, size_t i, struct sv_ttl *out)
{
    if (i < snap->n)
        *out = snap->states[i].ttl;
    else
        memset(out, 0, sizeof(*out));
}

uint64_t sv_store_snapshot_entries(const struct sv_store_snapshot *snap, size_t i)
{
    return i < snap->n ? snap->states[i].entries : 0;
}

uint64_t sv_store_snapshot_base(const struct sv_store_snapshot *snap)
{
    return snap->chg_base;
}

uint64_t sv_store_snapshot_log_cut(const struct sv_store_snapshot *snap)
{
    return snap->chg_cut;
}

static int snapshot_scan(struct sv_store_snapshot *snap, size_t i, chunk_fn chunk,
                         sv_store_raw_fn fn, void *ud)
{
    if (i >= snap->n)
        return SV_EINVAL;
    struct sv_store *s = snap->s;
    /* In order, each once: the writes copy by the published position. */
    pthread_mutex_lock(&s->snap.mu);
    int in_order = s->snap.pos_state == i && s->snap.pos_len == 0;
    pthread_mutex_unlock(&s->snap.mu);
    if (!in_order)
        return SV_EINVAL;
    sv_be16_put(snap->pos, (uint16_t)i);
    snap->plen = 0;
    int done = 0, rc = 0;
    while (!done && !rc) {
        rc = chunk(snap, i, fn, ud, &done);
        /* Only now: every key up to pos is in the checkpoint, so a write to
         * one of them need not be kept any more. */
        if (!rc && !done && snap->plen)
            rc = snap_publish(s, i, snap->pos + KEEP_PREFIX, snap->plen - KEEP_PREFIX);
    }
    if (!rc)
        rc = snap_publish(s, i + 1, NULL, 0);
    /* Whatever failed after a copy could not be made, that is the cause. */
    pthread_mutex_lock(&s->snap.mu);
    if (rc && s->snap.broken)
        rc = SV_EMAPFULL;
    pthread_mutex_unlock(&s->snap.mu);
    return rc < 0 ? rc : 0;
}

void sv_store_snapshot_release(struct sv_store_snapshot *snap)
{
    if (!snap)
        return;
    mdb_txn_abort(snap->txn);
    mdb_txn_abort(snap->keep_txn);
    sv_buf_free(&snap->chg_buf);
    free(snap->chg_recs);
    free(snap->states);
    free(snap);
}

uint64_t sv_store_snapshot_kept(const struct sv_store *s)
{
    return s->snap.saved;
}

void sv_store_snapshot_finished(struct sv_store *s)
{
    s->snap.active = 0;
    free(s->snap.idx);
    s->snap.idx = NULL;
    s->snap.ndbi = 0;
    /* The copies are not needed any more: their file goes, and with it
     * their pages (never free pages of the store). */
    keep_close(s);
    /* Tracking stopped while it ran (the log passed its bound): the log
     * could not be emptied then, it can now. */
    if (s->chg.lost && !s->txn && s->chg.log_bytes && changes_reset(s) == 0)
        sv_debug("store: the change log, past its bound, emptied");
    /* What deletes freed while it read is reusable now, but the last of it
     * only after one more commit. */
    if (!s->txn)
        age_free_list(s, 1, 0);
}

/* --- the TTL sweep ----------------------------------------------------------
 *
 * Expired entries nobody reads and no checkpoint meets leave the store
 * through the sweep: a walk over every state in stored-key order, in slices
 * of a time budget (like Redis's active expire cycle), each slice one write
 * transaction between group commits. It remembers where it stopped, so the
 * walk goes round; after a round it sleeps until the earliest expiry it
 * left behind, or that a write set since (for ever when none: a store
 * without TTL pays nothing, one whose entries live an hour is walked once
 * and then about hourly). A slice collects up to SWEEP_BATCH expired
 * keys with a cursor, then deletes them as a client's deletes would (kept
 * for a running snapshot, logged as changes). */

#define SWEEP_BATCH 256
#define SWEEP_CHECK_EVERY 64 /* entries between looks at the clock */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sets the state the walk is in to the first one after `after` (or the
 * first of all, with after ""), in name order: 0, or SV_ENOTFOUND past the
 * last. */
static int sweep_next_state(struct sv_store *s, const char *after)
{
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    int rc;
    if ((rc = mdb_dbi_open(cur_txn(s), NULL, 0, &main_dbi)) ||
        (rc = mdb_cursor_open(cur_txn(s), main_dbi, &cur)))
        return map_err(rc);
    size_t al = strlen(after);
    MDB_val k = {al, (void *)after}, v;
    rc = al ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && (!sv_state_name_valid(k.mv_data, k.mv_size) ||
                       (al && k.mv_size == al && memcmp(k.mv_data, after, al) == 0)))
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    if (rc == 0) {
        memcpy(s->sweep.state, k.mv_data, k.mv_size);
        s->sweep.state[k.mv_size] = '\0';
        s->sweep.klen = 0;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? SV_ENOTFOUND : rc ? map_err(rc) : 0;
}

/* One pass of the cursor over the current state from the remembered key:
 * up to SWEEP_BATCH expired keys into keys (back to back, lengths in lens),
 * *end set when the state is done. */
static int sweep_collect(struct sv_store *s, uint64_t now_ms, uint64_t deadline_ns, uint8_t *keys,
                         size_t *lens, uint8_t *trim, size_t *n, int *end)
{
    struct sweep *w = &s->sweep;
    MDB_dbi dbi;
    *n = 0;
    *end = 0;
    size_t sl = strlen(w->state);
    if (state_dbi(s, w->state, sl, 0, &dbi)) {
        *end = 1; /* dropped since */
        return 0;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(cur_txn(s), dbi, &cur);
    if (rc)
        return map_err(rc);
    MDB_val k, v;
    rc = seek(cur, w->key, w->klen, 1, &k, &v);
    size_t off = 0;
    for (uint64_t i = 1; rc == 0; i++) {
        struct sv_value val;
        w->visited++;
        if (sv_value_parse(v.mv_data, v.mv_size, &val) == 0 && (val.expiry_ms || val.timed)) {
            int gone = val.expiry_ms && val.expiry_ms <= now_ms, part = 0;
            uint64_t next = gone ? UINT64_MAX : val.expiry_ms ? val.expiry_ms : UINT64_MAX;
            if (!gone && val.timed) { /* some of its elements may have expired */
                size_t eo = 0, elen;
                const uint8_t *e;
                uint64_t exp;
                next = UINT64_MAX;
                while (sv_tlist_next(val.data, val.len, &eo, &e, &elen, &exp) == 1) {
                    if (exp && exp <= now_ms)
                        part = 1;
                    else if (exp && exp < next)
                        next = exp; /* what stays: the earliest */
                }
            }
            if ((gone || part) && k.mv_size > SKEY_CAP)
                next = now_ms; /* cannot be collected: stay awake */
            if (next < w->round_min)
                w->round_min = next;
            if ((gone || part) && k.mv_size <= SKEY_CAP) {
                memcpy(keys + off, k.mv_data, k.mv_size);
                trim[*n] = (uint8_t)part;
                lens[(*n)++] = k.mv_size;
                off += k.mv_size;
            }
        }
        if (k.mv_size <= sizeof(w->key)) {
            memcpy(w->key, k.mv_data, k.mv_size);
            w->klen = k.mv_size;
        }
        if (*n == SWEEP_BATCH || (i % SWEEP_CHECK_EVERY == 0 && mono_ns() >= deadline_ns))
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *end = 1;
        rc = 0;
    }
    return rc ? map_err(rc) : 0;
}

/* The sweep's clean-up of a timed list some of whose elements expired. */
static int sweep_trim(struct sv_store *s, const char *state, const uint8_t *skey, size_t sklen,
                      uint64_t now_ms, size_t *dropped)
{
    size_t sl = strlen(state);
    MDB_dbi dbi;
    *dropped = 0;
    if (state_dbi(s, state, sl, 0, &dbi))
        return 0;
    MDB_val k = {sklen, (void *)skey}, v;
    struct sv_value val;
    if (mdb_get(cur_txn(s), dbi, &k, &v) || sv_value_parse(v.mv_data, v.mv_size, &val) ||
        !val.timed)
        return 0; /* gone or rewritten since it was collected */
    return trim_timed(s, dbi, state, sl, skey, sklen, &val, now_ms, dropped);
}

int sv_store_sweep(struct sv_store *s, uint64_t budget_ns, uint64_t *expired)
{
    struct sweep *w = &s->sweep;
    *expired = 0;
    if (s->txn)
        return SV_EINTERNAL;
    uint64_t now_ms = sv_store_now_ms();
    if (w->due > now_ms)
        return 0; /* asleep */
    uint64_t t0 = mono_ns(), deadline = t0 + budget_ns;
    int rc = sv_store_begin(s);
    if (rc)
        return rc;
    static uint8_t keys[SWEEP_BATCH * SKEY_CAP];
    size_t lens[SWEEP_BATCH];
    uint8_t trim[SWEEP_BATCH];
    while (!rc && mono_ns() < deadline) {
        if (!w->state[0] && (rc = sweep_next_state(s, "")) != 0) {
            if (rc == SV_ENOTFOUND) { /* no state at all */
                w->due = w->round_min;
                w->round_min = UINT64_MAX;
                rc = 0;
            }
            break;
        }
        size_t n;
        int end;
        if ((rc = sweep_collect(s, now_ms, deadline, keys, lens, trim, &n, &end)))
            break;
        size_t off = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            if (trim[i]) {
                size_t dropped;
                rc = sweep_trim(s, w->state, keys + off, lens[i], now_ms, &dropped);
                *expired += dropped;
            } else {
                int found;
                rc = sv_store_delete(s, w->state, strlen(w->state), keys + off, lens[i], &found);
                *expired += found;
            }
            off += lens[i];
        }
        if (rc || !end)
            continue;
        char done[SV_STATE_NAME_MAX + 1];
        memcpy(done, w->state, sizeof(done));
        if ((rc = sweep_next_state(s, done)) == SV_ENOTFOUND) {
            /* A round is over: asleep until the earliest expiry left. */
            rc = 0;
            w->state[0] = '\0';
            w->rounds++;
            w->due = w->round_min;
            w->round_min = UINT64_MAX;
            break;
        }
    }
    if (rc) {
        sv_store_abort(s);
        if (w->round_min > now_ms) /* what it collected is still there */
            w->round_min = now_ms;
        return rc;
    }
    rc = sv_store_commit(s);
    w->expired += *expired;
    w->ns += mono_ns() - t0;
    return rc;
}

void sv_store_sweep_stats(const struct sv_store *s, struct sv_store_sweep_stats *out)
{
    out->expired_sweep = s->sweep.expired;
    out->expired_read = s->expired_on_read;
    out->visited = s->sweep.visited;
    out->rounds = s->sweep.rounds;
    out->seconds = (double)s->sweep.ns / 1e9;
    out->asleep = s->sweep.due > sv_store_now_ms();
}

/* --- restore builder ------------------------------------------------------ */

#define BUILDER_COMMIT_EVERY 100000
#define BUILDER_COMMIT_BYTES (64ull << 20)

struct sv_store_builder {
    struct sv_store *s;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int has_dbi;
    uint64_t gen;
    char path[PATH_BUF];
    uint64_t pending;
    uint64_t pending_bytes;
    uint64_t map_size;
    int switched;
};

int sv_store_builder_open(struct sv_store *s, uint64_t size_hint, uint32_t kg_first,
                          uint32_t kg_last, struct sv_store_builder **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_store_builder *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    b->s = s;
    b->gen = s->gen + 1;
    gen_path(b->path, sizeof(b->path), s->dir, b->gen);
    sv_fs_rm_rf(b->path); /* a leftover of an attempt that failed */
    int rc;
    if (mkdir(b->path, 0750)) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", b->path, strerror(errno));
        free(b);
        return rc;
    }
    /* Bulk-loaded B-trees are dense; room for twice the data avoids growth
     * in the middle of the load. */
    b->map_size = s->map_size;
    while (b->map_size < size_hint * 2 + (64ull << 20) && b->map_size < (1ull << 46))
        b->map_size *= 2;
    if ((rc = mdb_env_create(&b->env))) {
        b->env = NULL;
        goto lmdb_fail;
    }
    mdb_env_set_maxdbs(b->env, s->max_states + 3); /* and $meta, $ttl */
    mdb_env_set_mapsize(b->env, b->map_size);
    /* Durability comes from one sync at the end. */
    if ((rc = mdb_env_open(b->env, b->path, MDB_NOTLS | MDB_NOSYNC, 0640)) ||
        (rc = mdb_txn_begin(b->env, NULL, 0, &b->txn)))
        goto lmdb_fail;
    /* Readable by the group before `current` can name it. */
    if (s->opts.read_group_set &&
        (rc = sv_readgroup_grant_generation(b->path, s->opts.read_gid, err, errlen))) {
        sv_store_builder_free(b);
        return rc;
    }
    MDB_dbi meta;
    uint8_t be[4];
    sv_be32_put(be, s->key_groups);
    uint8_t fmt[4] = {0, 0, 0, STORE_FORMAT};
    MDB_val kk = {strlen(META_KEY_GROUPS_KEY), META_KEY_GROUPS_KEY}, kv = {4, be};
    MDB_val fk = {strlen(META_FORMAT_KEY), META_FORMAT_KEY}, fv = {4, fmt};
    if ((rc = mdb_dbi_open(b->txn, META_DB, MDB_CREATE, &meta)) ||
        (rc = mdb_put(b->txn, meta, &kk, &kv, 0)) || (rc = mdb_put(b->txn, meta, &fk, &fv, 0)) ||
        (rc = put_kg_range(b->txn, meta, kg_first, kg_last)))
        goto lmdb_fail;
    *out = b;
    return 0;
lmdb_fail:
    snprintf(err, errlen, "cannot create the new store in %s: %s", b->path, mdb_strerror(rc));
    rc = write_err(b->env, rc);
    sv_store_builder_free(b);
    return rc;
}

int sv_store_builder_state(struct sv_store_builder *b, const char *name)
{
    int rc = mdb_dbi_open(b->txn, name, MDB_CREATE, &b->dbi);
    if (rc)
        return write_err(b->env, rc);
    b->has_dbi = 1;
    return 0;
}

int sv_store_builder_ttl(struct sv_store_builder *b, const char *name, const struct sv_ttl *t)
{
    if (!t->ttl_ms)
        return 0;
    if (!sv_state_name_valid(name, strlen(name)) || t->ttl_ms > SV_TTL_MAX_MS)
        return SV_EINVAL;
    MDB_dbi dbi;
    int rc = mdb_dbi_open(b->txn, TTL_DB, MDB_CREATE, &dbi);
    if (rc)
        return write_err(b->env, rc);
    uint8_t val[TTL_VALUE_SIZE];
    ttl_encode(t, val);
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof(val), val};
    if ((rc = mdb_put(b->txn, dbi, &k, &v, 0)))
        return write_err(b->env, rc);
    return 0;
}

int sv_store_builder_put(struct sv_store_builder *b, const uint8_t *skey, size_t sklen,
                         const uint8_t *value, size_t vlen)
{
    if (!b->has_dbi)
        return SV_EINVAL;
    MDB_val k = {sklen, (void *)skey}, v = {vlen, (void *)value};
    int rc = mdb_put(b->txn, b->dbi, &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        return SV_ECORRUPT; /* input out of order */
    if (rc)
        return write_err(b->env, rc);
    b->pending_bytes += sklen + vlen;
    if (++b->pending >= BUILDER_COMMIT_EVERY || b->pending_bytes >= BUILDER_COMMIT_BYTES) {
        /* Bounded transactions keep the dirty-page list (memory) small. */
        if ((rc = mdb_txn_commit(b->txn))) {
            b->txn = NULL;
            return write_err(b->env, rc);
        }
        b->pending_bytes = 0;
        /* No transaction is open: the map may grow here (small entries
         * take more room than their bytes suggest). */
        MDB_envinfo info;
        MDB_stat st;
        mdb_env_info(b->env, &info);
        mdb_env_stat(b->env, &st);
        uint64_t used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
        /* Room for the next chunk several times over (B-tree overhead). */
        if (used + 4 * BUILDER_COMMIT_BYTES > b->map_size || used > b->map_size / 2) {
            uint64_t next = b->map_size * 2;
            while (used + 4 * BUILDER_COMMIT_BYTES > next)
                next *= 2;
            if ((rc = mdb_env_set_mapsize(b->env, next))) {
                b->txn = NULL;
                return write_err(b->env, rc);
            }
            b->map_size = next;
        }
        if ((rc = mdb_txn_begin(b->env, NULL, 0, &b->txn))) {
            b->txn = NULL;
            return write_err(b->env, rc);
        }
        b->pending = 0;
    }
    return 0;
}

int sv_store_builder_finish(struct sv_store_builder *b, char *err, size_t errlen)
{
    int rc = mdb_txn_commit(b->txn);
    b->txn = NULL;
    if (rc) {
        int e = write_err(b->env, rc);
        snprintf(err, errlen, "restore: commit of the new store failed: %s",
                 e == SV_ENOSPACE ? "the disk holding the data directory is full"
                                  : mdb_strerror(rc));
        return e;
    }
    if ((rc = mdb_env_sync(b->env, 1))) {
        snprintf(err, errlen, "restore: sync of the new store failed: %s", mdb_strerror(rc));
        return write_err(b->env, rc);
    }
    mdb_env_close(b->env);
    b->env = NULL;
    if ((rc = sv_fs_fsync_dir(b->path)) || (rc = sv_fs_fsync_dir(b->s->dir))) {
        snprintf(err, errlen, "restore: fsync of %s failed: %s", b->path, strerror(-rc));
        return rc;
    }
    return 0;
}

void sv_store_builder_free(struct sv_store_builder *b)
{
    if (!b)
        return;
    if (b->txn)
        mdb_txn_abort(b->txn);
    if (b->env)
        mdb_env_close(b->env);
    if (!b->switched)
        sv_fs_rm_rf(b->path);
    free(b);
}

int sv_store_switch(struct sv_store *s, struct sv_store_builder *b, char *err, size_t errlen)
{
    if (s->txn || s->snap.active || b->env) {
        snprintf(err, errlen, "restore: the store is busy");
        return SV_EBUSY;
    }
    uint64_t old_gen = s->gen;
    /* Before `current` moves: a local reader that sees the mark goes back
     * to following `current` on every read. */
    MDB_txn *mt;
    MDB_val sk = {strlen(META_SERVING_KEY), META_SERVING_KEY}, sv = {1, "\0"};
    int rc = mdb_txn_begin(s->env, NULL, 0, &mt);
    if (rc == 0 && (rc = mdb_put(mt, s->meta_dbi, &sk, &sv, 0)))
        mdb_txn_abort(mt);
    else if (rc == 0)
        rc = mdb_txn_commit(mt);
    if (rc) {
        snprintf(err, errlen, "restore: cannot mark the old store: %s", mdb_strerror(rc));
        return map_err(rc);
    }
    rc = set_current(s->dir, b->gen);
    if (rc) {
        snprintf(err, errlen, "restore: cannot switch %s/current: %s", s->dir, strerror(-rc));
        return rc;
    }
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    s->env = NULL;
    s->gen = b->gen;
    s->map_size = b->map_size;
    if ((rc = env_open_any(s, err, errlen))) {
        /* Back to the old generation, which is intact. */
        sv_error("restore: cannot open the new store (%s); keeping the old one", err);
        s->gen = old_gen;
        s->map_size = 0;
        char err2[256];
        int back = set_current(s->dir, old_gen);
        if (back || env_open_any(s, err2, sizeof(err2))) {
            /* Neither generation can be served, and `current` may name the
             * new one: stop here rather than run without a store or let the
             * builder's cleanup remove what current points at. */
            sv_error("restore: cannot switch back to generation %" PRIu64 ": %s; stopping", old_gen,
                     back ? strerror(-back) : err2);
            abort();
        }
        return rc;
    }
    b->switched = 1;
    char old[PATH_BUF];
    gen_path(old, sizeof(old), s->dir, old_gen);
    sv_fs_rm_rf(old);
    sv_info("store: generation %" PRIu64 " is current: %zu state(s), key groups %u-%u", s->gen,
            s->used, s->kg_first, s->kg_last);
    return 0;
}
