/* libstatesrv, local reads: the server's own LMDB store, read in-process.
 *
 * A sidecar runs on the operator's machine; LMDB lets several processes
 * read one environment through the page cache. statesrv_local_open() opens
 * the live store of a statesrvd (its data_dir) read-only, and the reads
 * below answer exactly what the server would answer to the same request
 * (value, kind, NOT_FOUND, INVALID_ARGUMENT for a bad name or a key group it
 * does not serve, TOO_LARGE for an oversized key) without a round trip.
 *
 * Consistency: every call reads in a fresh read transaction, so once the
 * reply to a write has arrived (the server replies after its commit), a
 * local read sees it. After a restore's reply the new generation is served,
 * never the old one: the server marks a generation it leaves (a commit in
 * it, before it moves the directory's `current` link and so before the
 * reply), and a reader reads `current` again only when its generation's
 * view has changed since it last found it unmarked, so a read of an
 * unchanged store makes no system call. The store's map growing under the
 * reader is followed (MDB_MAP_RESIZED). The mark is written by statesrvd
 * from this version on: run no older statesrvd on a data directory that
 * this library reads.
 *
 * Safety: the environment is opened MDB_RDONLY (the process cannot write
 * it) and registers its read transactions in the environment's lock file
 * like any LMDB reader, so the server never reuses pages a reader still
 * sees. A reader that dies inside a transaction leaves a stale slot, which
 * the server clears (mdb_reader_check). A scan holds its read transaction
 * until it is closed: close scans promptly, or the store cannot reuse the
 * pages freed meanwhile. Needs read access to data_dir and read-write
 * access to each generation's lock.mdb: the server's own user, or a member
 * of the group its local_read_group setting names (docs/security.md).
 *
 * Threads and processes: a handle is used by one thread at a time (lock
 * around a shared one), and a process opens one handle per data_dir at most:
 * LMDB forbids opening one environment twice in a process (closing the
 * second would drop the first's file locks).
 * Codes are those of statesrv.h; STATESRV_ERR_USAGE for bad arguments and
 * STATESRV_ERR_CONNECT when the store cannot be opened (the reason in
 * errbuf or statesrv_local_errmsg()).
 */
#ifndef STATESRV_LOCAL_H
#define STATESRV_LOCAL_H

#include "statesrv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct statesrv_local statesrv_local;
typedef struct statesrv_local_scan statesrv_local_scan;

/**
 * @brief Opens the store of the statesrvd whose data_dir is data_dir.
 * @return STATESRV_OK; STATESRV_ERR_CONNECT when data_dir is not a
 *         statesrvd store (no `current` link to a gen-N directory, no
 *         metadata), its format version is one this library does not know,
 *         or LMDB refuses (permissions); STATESRV_ERR_USAGE, STATESRV_ERR_NOMEM.
 *         *out is NULL on failure and errbuf (if not NULL) says why.
 */
STATESRV_API int statesrv_local_open(const char *data_dir, statesrv_local **out, char *errbuf,
                                     size_t errlen);
/** @brief Closes the environment and frees the handle; open scans must be closed first. NULL is
 * ignored. */
STATESRV_API void statesrv_local_close(statesrv_local *l);
/** @brief Detail of the last failure on l; "" after a success. */
STATESRV_API const char *statesrv_local_errmsg(const statesrv_local *l);
/** @brief The generation (gen-N) the last call read; 0 before the first. */
STATESRV_API uint64_t statesrv_local_generation(const statesrv_local *l);
/** @brief The store's key groups (fixed for its life). */
STATESRV_API uint32_t statesrv_local_key_groups(const statesrv_local *l);

/**
 * @brief Reads one entry, as statesrv_get().
 * @param out on STATESRV_OK receives a copy (free with statesrv_value_free()).
 * @return STATESRV_OK, STATESRV_NOT_FOUND, STATESRV_INVALID_ARGUMENT,
 *         STATESRV_TOO_LARGE, STATESRV_INTERNAL (a corrupt entry),
 *         STATESRV_ERR_IO (LMDB failed; the message says how).
 */
STATESRV_API int statesrv_local_get(statesrv_local *l, const statesrv_key *k, statesrv_value *out);
/**
 * @brief Reads one entry as statesrv_local_get(), without a copy.
 * @param data on STATESRV_OK points at the value (*len bytes; *kind its
 *        kind) inside the store's map (a list whose elements expire one by
 *        one: in l's own buffer, its live elements). Valid until the next
 *        call on l (any of these functions) or statesrv_local_release(l);
 *        never written through or freed. Until then l holds its read
 *        transaction, which keeps the pages it sees from being reused:
 *        release promptly when the next read is not imminent.
 * @return as statesrv_local_get().
 */
STATESRV_API int statesrv_local_get_ref(statesrv_local *l, const statesrv_key *k, const void **data,
                                        size_t *len, int *kind);
/** @brief Ends what statesrv_local_get_ref() holds (its value becomes invalid); a no-op
 * otherwise. NULL is ignored. */
STATESRV_API void statesrv_local_release(statesrv_local *l);
/**
 * @brief Reads n entries in one read transaction (one consistent view), as
 *        statesrv_multi_get(): out[i].found 0 or 1; free with
 *        statesrv_values_free(). A bad key fails the whole call.
 */
STATESRV_API int statesrv_local_multi_get(statesrv_local *l, const statesrv_key *keys, size_t n,
                                          statesrv_value *out);

/**
 * @brief Starts a scan as statesrv_scan_open() (o->page_size and o->cursor
 *        are not used: a local scan has no pages; o->cursor must be NULL).
 *        The scan reads one consistent view, held until it is closed; while
 *        it is open other calls on l return STATESRV_ERR_USAGE.
 */
STATESRV_API int statesrv_local_scan_open(statesrv_local *l, const statesrv_scan_options *o,
                                          statesrv_local_scan **out);
/**
 * @brief Next entry in stored order; *e NULL at the end. Zero-copy: the
 *        entry points into the map and is valid until the next call on the
 *        scan.
 */
STATESRV_API int statesrv_local_scan_next(statesrv_local_scan *s, const statesrv_entry **e);
/** @brief Ends the scan and its read transaction. NULL is ignored. */
STATESRV_API void statesrv_local_scan_close(statesrv_local_scan *s);

#ifdef __cplusplus
}
#endif

#endif
