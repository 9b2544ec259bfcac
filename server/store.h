/* The LMDB store: named states (one LMDB database each), stored keys from
 * sv_keys.h, stored values from sv_value.h. The only module that includes
 * lmdb.h. Not thread-safe: the event loop thread owns it.
 *
 * Writes and reads happen inside the one write transaction of the current
 * group commit (sv_store_begin .. sv_store_commit). A nested "savepoint" makes
 * a batch atomic within it. After an LMDB failure that poisons the
 * transaction (sv_store_txn_error() != 0) the only way on is sv_store_abort();
 * the server then grows the map or fails the request that caused it and
 * replays the rest.
 *
 * Pointers into stored data (struct sv_value.data, scan callbacks) are valid
 * only until the next write in, or the end of, the transaction; a value with
 * `scratch` set (a timed list's live elements) only until the next read. */
#ifndef SV_STORE_H
#define SV_STORE_H

#include "sv_value.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sv_store;

struct sv_store_options {
    const char *dir;
    uint64_t map_size;
    uint64_t map_size_max;
    unsigned max_states;
    uint32_t max_value_size;
    int sync_always;
    /* Write through a writable memory map (MDB_WRITEMAP): no write(2) per
     * dirty page at commit. The map's whole size is allocated on disk first
     * (posix_fallocate), so a full disk shows up as NO_SPACE when the map
     * would grow, never as SIGBUS on a page fault; when that allocation
     * fails at open the store runs without it. */
    int writemap;
    uint32_t key_groups;
    int key_groups_set; /* refuse a directory recorded with another value */
    /* Map size of a snapshot's keep environment (0: the store's current
     * map size, at least 64 MiB); tests set it small to see a snapshot give
     * way. */
    uint64_t keep_map_size;
    /* Keep no change records (checkpoint_incremental = no): writes pay
     * nothing for incremental checkpoints, every checkpoint is full, and
     * records of an earlier run are dropped at open. */
    int untracked;
    /* checkpoint_changes_max: the change log's bound (0: 256 MiB). */
    uint64_t changes_max;
    /* local_read_group (server/readgroup.h): when read_group_set, the data
     * directory and every generation are handed to read_gid. */
    int read_group_set;
    gid_t read_gid;
};

/* State TTL (docs/protocol.md, "State TTL"): Flink's StateTtlConfig. */
enum sv_ttl_update { SV_TTL_ON_CREATE_AND_WRITE = 0, SV_TTL_ON_READ_AND_WRITE = 1 };
enum sv_ttl_visibility {
    SV_TTL_NEVER_RETURN_EXPIRED = 0,
    SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP = 1,
};
struct sv_ttl {
    uint64_t ttl_ms; /* 0: none */
    enum sv_ttl_update update;
    enum sv_ttl_visibility visibility;
};
#define SV_TTL_MAX_MS (100ull * 365 * 86400 * 1000) /* a century */

/* Opens (creating if needed) the store in o->dir. 0 or an error with a
 * message in err. Refuses a directory another process holds. */
int sv_store_open(const struct sv_store_options *o, struct sv_store **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Aborts any open transaction, flushes, closes. NULL is ignored. */
void sv_store_close(struct sv_store *s);

uint32_t sv_store_key_groups(const struct sv_store *s);
/* Largest stored key LMDB accepts. */
size_t sv_store_max_key_size(const struct sv_store *s);

int sv_store_begin(struct sv_store *s) __attribute__((warn_unused_result));
int sv_store_in_txn(const struct sv_store *s);
/* Commits (and with sync_always, makes durable). On failure the transaction
 * is gone; SV_EMAPFULL means "grow and replay". */
int sv_store_commit(struct sv_store *s) __attribute__((warn_unused_result));
void sv_store_abort(struct sv_store *s);
/* The error that poisoned the current transaction, or 0. */
int sv_store_txn_error(const struct sv_store *s);

/* A batch's all-or-nothing scope inside the group transaction. With
 * writemap there are no nested transactions: the savepoint then needs a
 * group transaction that has written nothing yet (a rollback discards it
 * whole), and sv_store_savepoint fails with SV_EINTERNAL otherwise; ask
 * sv_store_savepoint_needs_clean_txn first and end the group commit. */
int sv_store_savepoint_needs_clean_txn(const struct sv_store *s);
int sv_store_savepoint(struct sv_store *s) __attribute__((warn_unused_result));
int sv_store_release(struct sv_store *s) __attribute__((warn_unused_result));
void sv_store_rollback(struct sv_store *s);

/* Doubles the map (up to map_size_max). No transaction may be open.
 * 0, SV_ENOSPACE at the maximum, or an error. */
int sv_store_grow(struct sv_store *s) __attribute__((warn_unused_result));

/* Grows the map early (at 80% use), so a snapshot's reader rarely meets a
 * full map it cannot grow. No transaction may be open. 0 or an error. */
int sv_store_grow_if_needed(struct sv_store *s);

/* Entry operations; `state` is a validated name of `slen` bytes.
 *
 * Near map_size_max, puts and merges are refused with SV_EMAPFULL once the
 * pages in use would pass the limit in struct sv_store_space (map_size_max
 * less a reserve): that refusal leaves the transaction usable
 * (sv_store_txn_error() stays 0) and sv_store_nospace_msg() says why and what
 * to do. Deletes, delete_range and drop_state may use the reserve, so that
 * space can always be freed; a commit that freed pages near the limit is
 * followed by a small one of the store's own, so that the next transaction
 * can reuse them. An SV_EMAPFULL that does poison the transaction comes from
 * LMDB itself (the map is full at its current size: grow and replay). */
/* Clears the reader slots of processes that died inside a read transaction
 * (other processes may read the store: statesrv_local). Any thread. */
void sv_store_reader_check(struct sv_store *s);
/* Reads an entry. An expired one (out->expiry_ms at or before the clock) is
 * SV_ENOTFOUND under the state's NEVER_RETURN_EXPIRED (the default; it is
 * deleted in the transaction, as a clean-up on read), returned as it is
 * under RETURN_EXPIRED_IF_NOT_CLEANED_UP. Under ON_READ_AND_WRITE a read
 * refreshes the entry's expiry (a write: skipped if the store is full). */
int sv_store_get(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                 size_t sklen, struct sv_value *out) __attribute__((warn_unused_result));
int sv_store_put(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                 size_t sklen, enum sv_value_kind kind, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* The same with the entry's TTL in ms (0: the state's, if it has one): the
 * entry expires at the clock plus it. Every write sets the expiry anew. */
int sv_store_put_ttl(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                     size_t sklen, enum sv_value_kind kind, const uint8_t *data, size_t len,
                     uint64_t ttl_ms) __attribute__((warn_unused_result));
int sv_store_delete(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                    size_t sklen, int *found) __attribute__((warn_unused_result));

enum sv_merge_op { SV_MERGE_APPEND = 1, SV_MERGE_ADD_I64 = 2 };

/* Read-modify-write in place. SV_EINVAL (with msg) when the operand or the
 * stored value's kind does not fit the op, SV_ETOOLARGE when the result would
 * pass max_value_size. *counter: the new counter (ADD_I64). */
int sv_store_merge(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                   size_t sklen, enum sv_merge_op op, const uint8_t *operand, size_t oplen,
                   int64_t *counter, size_t *new_size, char *msg, size_t msglen)
    __attribute__((warn_unused_result));
/* The same with the entry's TTL (see sv_store_put_ttl). A merge onto an
 * entry expired (and not visible: NEVER_RETURN_EXPIRED) starts from empty.
 * An APPEND gives the element its own expiry (a timed list, sv_value.h),
 * the other elements keeping theirs; reads (get, scan) answer a plain list
 * of the live elements. *new_size: the size of that list. */
int sv_store_merge_ttl(struct sv_store *s, const char *state, size_t slen, const uint8_t *skey,
                       size_t sklen, enum sv_merge_op op, const uint8_t *operand, size_t oplen,
                       uint64_t ttl_ms, int64_t *counter, size_t *new_size, char *msg,
                       size_t msglen) __attribute__((warn_unused_result));

/* A state's TTL setting, in the group transaction (it commits and rolls
 * back with it). ttl_ms 0 removes it. Setting one creates the state (empty)
 * if it does not exist, so that checkpoints carry it; dropping the state
 * removes it. Entries already stored keep the expiry
 * they were written with; new writes follow the new setting; visibility
 * and update type apply at once. SV_EINVAL for a bad name or a TTL past
 * SV_TTL_MAX_MS, SV_ETOOLARGE past max_states settings. */
int sv_store_set_ttl(struct sv_store *s, const char *state, size_t slen, const struct sv_ttl *t)
    __attribute__((warn_unused_result));
/* The setting of a state: 1 and *out, or 0 (none). */
int sv_store_get_ttl(const struct sv_store *s, const char *state, size_t slen, struct sv_ttl *out);
/* The TTL sweep: one slice of at most budget_ns, in a write transaction of
 * its own (loop thread, none open), deleting expired entries where the last
 * slice stopped. It sleeps after a round that met no entry with an expiry,
 * until a write sets one. *expired: how many it deleted. */
int sv_store_sweep(struct sv_store *s, uint64_t budget_ns, uint64_t *expired)
    __attribute__((warn_unused_result));
struct sv_store_sweep_stats {
    uint64_t expired_sweep; /* deleted by the sweep */
    uint64_t expired_read;  /* deleted by the reads that met them */
    uint64_t visited;       /* entries the sweep looked at */
    uint64_t rounds;        /* walks over every state completed */
    double seconds;         /* time spent sweeping */
    int asleep;
};
void sv_store_sweep_stats(const struct sv_store *s, struct sv_store_sweep_stats *out);
/* The clock TTL is measured by: ms since the epoch (CLOCK_REALTIME). */
uint64_t sv_store_now_ms(void);

/* Called per entry in stored-key order. Return 0 to go on, 1 to stop before
 * this entry (it is not consumed), or a negative error to abort. */
typedef int (*sv_store_scan_fn)(void *ud, const uint8_t *skey, size_t sklen,
                                const struct sv_value *v);

/* Visits entries with lo <= stored key < hi (hi NULL: to the end). A missing
 * state has no entries. */
int sv_store_scan(struct sv_store *s, const char *state, size_t slen, const uint8_t *lo,
                  size_t lolen, const uint8_t *hi, size_t hilen, sv_store_scan_fn fn, void *ud)
    __attribute__((warn_unused_result));

/* Deletes entries with lo <= stored key < hi. */
int sv_store_delete_range(struct sv_store *s, const char *state, size_t slen, const uint8_t *lo,
                          size_t lolen, const uint8_t *hi, size_t hilen, uint64_t *deleted)
    __attribute__((warn_unused_result));

/* Removes a whole state. *deleted: its entry count (0 if it did not exist). */
int sv_store_drop_state(struct sv_store *s, const char *state, size_t slen, uint64_t *deleted)
    __attribute__((warn_unused_result));

struct sv_state_stat {
    char name[65];
    uint64_t entries;
    uint64_t bytes;
    struct sv_ttl ttl; /* ttl_ms 0: none */
};

/* Calls fn for each state in name order (inside the current transaction). */
int sv_store_list_states(struct sv_store *s, int (*fn)(void *ud, const struct sv_state_stat *st),
                         void *ud) __attribute__((warn_unused_result));

/* Map size and bytes up to the last page written (the high-water mark; it
 * does not go down when entries are deleted: see sv_store_space). */
void sv_store_usage(struct sv_store *s, uint64_t *map_size, uint64_t *map_used);

/* Where the map's space is, in bytes, by LMDB's rules for reusing freed
 * pages (a transaction's freed pages can be reused from the second write
 * transaction after it, and not while a reader that may see them lives). */
struct sv_store_space {
    uint64_t page_size;
    uint64_t map_size;      /* current */
    uint64_t map_max;       /* map_size_max (or a larger size the file has) */
    uint64_t reserve;       /* kept for deletes: 2% of map_max, at least 64 pages */
    uint64_t limit;         /* map_max - reserve: puts and merges stop here */
    uint64_t high_water;    /* up to the last page ever written */
    uint64_t used;          /* high_water - free_reusable */
    uint64_t free_reusable; /* freed pages the next write transaction can reuse */
    uint64_t free_pinned;   /* freed pages a read transaction (a snapshot) keeps */
    uint64_t free_recent;   /* freed by the last commit: reusable one commit later */
};

/* Counts the free-page lists (a read transaction of its own; with a write
 * transaction open, the count is of the committed state). 0 or an error. */
int sv_store_space(struct sv_store *s, struct sv_store_space *out)
    __attribute__((warn_unused_result));

/* The message for the last put or merge refused for space (or for the
 * current state if none was): what is in use, the reserve, what to do, and
 * whether a read transaction holds the freed pages. Always NUL-terminated. */
void sv_store_nospace_msg(struct sv_store *s, char *buf, size_t len);
/* 1 when the open environment writes through its memory map. */
int sv_store_writemap_active(const struct sv_store *s);

/* Forces buffers to disk (useful with sync = none before exit). */
int sv_store_sync(struct sv_store *s);

/* The key-group range this store covers (all of them unless a restore with
 * a range made it). */
void sv_store_kg_range(const struct sv_store *s, uint32_t *first, uint32_t *last);
/* Whether a snapshot runs (map growth and dropping states wait for it to
 * end). */
int sv_store_snapshot_active(const struct sv_store *s);

/* --- snapshots: a consistent cut read by a worker thread ------------------
 *
 * Begin on the loop thread with no transaction open (right after a commit):
 * the snapshot then holds exactly the committed state, the cut. Scan it from
 * one other thread; release it there; then call sv_store_snapshot_finished()
 * on the loop thread. The scan reads in short read transactions; a write
 * meanwhile to an entry it has not read yet first copies the entry as it was
 * at the cut into a file of the snapshot's own (<dir>/snapshot-keep.mdb,
 * removed when it finishes), so the scan still returns the cut. If a copy
 * cannot be made the write goes ahead and the scan fails with SV_EMAPFULL.
 * While a snapshot runs the map cannot grow and states cannot be dropped
 * (both SV_EBUSY); a write to a key longer than max_key_size (possible only
 * in data written by an older version) that would have to be copied is
 * refused with SV_EBUSY. */
struct sv_store_snapshot;

int sv_store_snapshot_begin(struct sv_store *s, struct sv_store_snapshot **out)
    __attribute__((warn_unused_result));
size_t sv_store_snapshot_nstates(const struct sv_store_snapshot *snap);
const char *sv_store_snapshot_state(const struct sv_store_snapshot *snap, size_t i);
/* Calls fn with every entry of state i, as at the cut, in stored-key order;
 * value is the stored value, header included, valid only during the call.
 * fn returns 0 to go on or an error. States are scanned in order, each once. */
typedef int (*sv_store_raw_fn)(void *ud, const uint8_t *skey, size_t sklen, const uint8_t *value,
                               size_t vlen);
int sv_store_snapshot_scan(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn, void *ud)
    __attribute__((warn_unused_result));
/* Incremental checkpoints. First, on the snapshot's thread, load the change
 * set: the keys recorded as changed since the base checkpoint
 * (sv_store_snapshot_base), read from the change log, sorted and each once,
 * in memory (at most about checkpoint_changes_max and 4 bytes a record).
 * 0, SV_ECORRUPT (a log entry is malformed: write a full checkpoint) or
 * -ENOMEM. */
int sv_store_snapshot_load_changes(struct sv_store_snapshot *snap)
    __attribute__((warn_unused_result));
/* Keys in the loaded change set (0 before it is loaded). */
uint64_t sv_store_snapshot_changes(const struct sv_store_snapshot *snap);
/* Like sv_store_snapshot_scan (and instead of it, for state i), but only the
 * entries of the change set, as at the cut; a deleted one with an empty
 * value (a tombstone). A superset: an unchanged entry may come too. */
int sv_store_snapshot_scan_changes(struct sv_store_snapshot *snap, size_t i, sv_store_raw_fn fn,
                                   void *ud) __attribute__((warn_unused_result));
/* Whether state i was reset since the base (dropped and made again): its
 * changes are then the whole state (sv_store_snapshot_scan). Needs the
 * change set loaded. */
int sv_store_snapshot_reset(struct sv_store_snapshot *snap, size_t i, int *reset)
    __attribute__((warn_unused_result));
/* Entries of state i at the cut, and its TTL setting then. */
uint64_t sv_store_snapshot_entries(const struct sv_store_snapshot *snap, size_t i);
void sv_store_snapshot_ttl(const struct sv_store_snapshot *snap, size_t i, struct sv_ttl *out);
/* The checkpoint whose cut the change set at this cut is relative to, 0 if
 * none (a full checkpoint is needed), and the cut's place in the change log,
 * to pass to sv_store_changes_done once this snapshot's checkpoint is
 * written. */
uint64_t sv_store_snapshot_base(const struct sv_store_snapshot *snap);
uint64_t sv_store_snapshot_log_cut(const struct sv_store_snapshot *snap);
void sv_store_snapshot_release(struct sv_store_snapshot *snap);
/* Entries the running (or last) snapshot kept as of its cut (loop thread). */
uint64_t sv_store_snapshot_kept(const struct sv_store *s);
void sv_store_snapshot_finished(struct sv_store *s);

/* --- changes: what an incremental checkpoint copies ------------------------
 *
 * Every write that changes an entry records it in the same transaction (see
 * store.c, "changes"), from the first snapshot on; a restore's new
 * generation starts with none (its first checkpoint is full). */

/* Loop thread, no transaction open: checkpoint_id (a snapshot whose cut
 * was at log_cut) is written; the changes before its cut are dropped and it
 * is the base from now on (unless the log passed checkpoint_changes_max
 * since the cut: then there is no base, the next checkpoint is full). In the
 * same transaction it deletes the entries the checkpoint left out as expired
 * (gone, as for sv_store_expire_keys; *expired: how many), since an
 * increment on this base counts them gone. 0 or an error (the old base then
 * stays, with a superset of the changes: still correct). */
int sv_store_changes_done(struct sv_store *s, uint64_t log_cut, uint64_t checkpoint_id,
                          const uint8_t *gone, size_t gone_len, uint64_t *expired)
    __attribute__((warn_unused_result));
/* Loop thread, no transaction open: forgets the base (the next checkpoint is
 * full). */
int sv_store_changes_forget(struct sv_store *s) __attribute__((warn_unused_result));
/* Clean-up in checkpoints. Loop thread, no transaction open: deletes, in one
 * transaction, the entries a checkpoint left out as expired, those still
 * expired (not written again since). recs: records of u8 name length, the
 * state name, u16 BE stored-key length, the stored key. *deleted: how many
 * went. */
int sv_store_expire_keys(struct sv_store *s, const uint8_t *recs, size_t len, uint64_t *deleted)
    __attribute__((warn_unused_result));
/* The base checkpoint (0: none), and the change log's size in bytes (about:
 * its pages). */
uint64_t sv_store_changes_base(const struct sv_store *s);
uint64_t sv_store_changes_log_bytes(const struct sv_store *s);

/* --- restore: a new generation built beside the live one ------------------
 *
 * The builder creates <data_dir>/gen-<next> with the same settings and fills
 * it by bulk load (entries in stored-key order per state; MDB_APPEND). It
 * touches nothing of the live store and may run on another thread.
 * sv_store_switch() (loop thread, no transaction open) makes it current with
 * one atomic rename and reopens; a crash before that leaves the old
 * generation current, and the new one is removed at the next start. */
struct sv_store_builder;

int sv_store_builder_open(struct sv_store *s, uint64_t size_hint, uint32_t kg_first,
                          uint32_t kg_last, struct sv_store_builder **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Records state name's TTL setting in the new generation (ttl_ms 0: none). */
int sv_store_builder_ttl(struct sv_store_builder *b, const char *name, const struct sv_ttl *t)
    __attribute__((warn_unused_result));
int sv_store_builder_state(struct sv_store_builder *b, const char *name)
    __attribute__((warn_unused_result));
int sv_store_builder_put(struct sv_store_builder *b, const uint8_t *skey, size_t sklen,
                         const uint8_t *value, size_t vlen) __attribute__((warn_unused_result));
/* Commits, syncs and closes the new environment. */
int sv_store_builder_finish(struct sv_store_builder *b, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees the builder; removes its directory unless it was switched in. */
void sv_store_builder_free(struct sv_store_builder *b);
int sv_store_switch(struct sv_store *s, struct sv_store_builder *b, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
