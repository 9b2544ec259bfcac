/* Checkpoint files: a streaming writer and a verifying reader.
 *
 * A checkpoint is a directory with two files (docs/checkpoint-format.md):
 *   data      header | blocks | index | footer
 *   MANIFEST  magic | length | CheckpointManifest (protobuf) | XXH3-64
 *
 * Blocks hold the entries of one state and one key group, in stored-key
 * order, at most ~block_size bytes uncompressed (a single larger entry gets a
 * block of its own), each compressed (zstd or none) and checksummed. The index
 * lists every block as (state, key group, offset, sizes, entries), sorted the
 * same way, so a key-group range of one state is a contiguous run of blocks:
 * a reader seeks to it and reads nothing else.
 *
 * This is the file side: it opens, reads, writes and fsyncs, and runs the
 * iterator's read-ahead thread. The bytes themselves are encoded and checked
 * by the format module (common/sv_ckpt_format.h, no I/O). It lives in io/,
 * beside fsutil, because both statesrvd (snapshot, restore) and statectl's
 * offline tools link it, and libstatesrv must not. It never holds more than
 * one block and the index in memory (the iterator: two blocks).
 *
 * Errors: 0 or a negative code — -errno for I/O (ENOSPC, EIO from fsync, ...),
 * SV_ECORRUPT for anything in a file that is not as it must be, SV_EINVAL for
 * misuse (out-of-order input), SV_ETOOLARGE for an entry above
 * SV_CKPT_BLOCK_RAW_MAX, -ENOMEM. Functions that take err/errlen put a
 * one-line reason there naming the file and the part (manifest, index, block
 * at offset N, footer, data checksum).
 *
 * Threads: a writer, and a reader with its iterators, are used by one thread
 * at a time (sv_ckpt_writer_progress excepted). */
#ifndef SV_CKPT_H
#define SV_CKPT_H

#include "sv_ckpt_format.h"

#include <stddef.h>
#include <stdint.h>

/* --- writer ---------------------------------------------------------------- */

struct sv_ckpt_writer_options {
    uint64_t checkpoint_id;
    uint32_t key_groups;
    uint32_t kg_first, kg_last;
    enum sv_ckpt_compression compression;
    int compression_level; /* zstd level; 0: zstd's default */
    size_t block_size;     /* 0: SV_CKPT_BLOCK_SIZE_DEFAULT */
    const char *server_version;
    /* 0 or SV_CKPT_FORMAT_V1: one self-contained checkpoint, finished with
     * sv_ckpt_writer_finish. SV_CKPT_FORMAT_V2: one data file of a chain,
     * finished with sv_ckpt_writer_finish_link; the caller writes the
     * MANIFEST (sv_ckpt_manifest_write). */
    uint32_t format_version;
    /* Version 2: the file holds changes (entries with an empty value are
     * tombstones); otherwise an empty value is refused. */
    int incremental;
};

struct sv_ckpt_writer;

/* Creates dir/data (dir must exist and be empty: -ENOTEMPTY otherwise).
 * Options out of range (key groups, level, block_size above
 * SV_CKPT_BLOCK_RAW_MAX, server_version over 31 bytes) give SV_EINVAL. */
int sv_ckpt_writer_open(const char *dir, const struct sv_ckpt_writer_options *o,
                        struct sv_ckpt_writer **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Starts the next state; names valid (sv_state_name_valid) and strictly
 * increasing (memcmp order). A state may have no entries.
 *
 * Errors from _state and _add are sticky: every later call, and finish,
 * returns the first one, and finish's err names it. */
int sv_ckpt_writer_state(struct sv_ckpt_writer *w, const char *name);
/* Adds one entry of the current state: skey is a stored key of at most
 * SV_CKPT_SKEY_MAX bytes (its first two bytes are the key group, which must
 * be within kg_first..kg_last), strictly increasing within the state; value is the stored value
 * (header included). SV_EINVAL for any of that not holding, SV_ETOOLARGE for an entry above
 * SV_CKPT_BLOCK_RAW_MAX. */
int sv_ckpt_writer_add(struct sv_ckpt_writer *w, const uint8_t *skey, size_t sklen,
                       const uint8_t *value, size_t vlen);
/* Marks the current state of an incremental file reset: older links of the
 * chain hold nothing of it (it was dropped since). */
int sv_ckpt_writer_reset(struct sv_ckpt_writer *w);
/* Entries and uncompressed bytes (keys + values) added so far (for progress;
 * any thread may read them while the writer runs, values may lag; w must
 * not have been finished or aborted). */
void sv_ckpt_writer_progress(const struct sv_ckpt_writer *w, uint64_t *entries, uint64_t *bytes);
/* Writes the last block, index and footer, fsyncs data, writes MANIFEST
 * (fsynced), fsyncs dir; fills *m (may be NULL) and frees the writer. On
 * failure the writer is freed too, no MANIFEST is left, and the directory
 * must be discarded. */
int sv_ckpt_writer_finish(struct sv_ckpt_writer *w, struct sv_ckpt_manifest *m, char *err,
                          size_t errlen) __attribute__((warn_unused_result));
/* Version 2: writes the last block, index and footer and fsyncs data (no
 * MANIFEST), fills *l (its states become the caller's: free l->states) and
 * frees the writer. */
int sv_ckpt_writer_finish_link(struct sv_ckpt_writer *w, struct sv_ckpt_link *l, char *err,
                               size_t errlen) __attribute__((warn_unused_result));
/* Writes dir/MANIFEST for m: MANIFEST.tmp, fsync, rename, fsync dir. */
int sv_ckpt_manifest_write(const char *dir, const struct sv_ckpt_manifest *m, char *err,
                           size_t errlen) __attribute__((warn_unused_result));
/* Stops and frees; leaves what was written for the caller to remove. */
void sv_ckpt_writer_abort(struct sv_ckpt_writer *w);

/* --- reader ---------------------------------------------------------------- */

struct sv_ckpt_reader;

/* Opens dir: reads and checks MANIFEST (magic, checksum, version), the data
 * file's header, footer and index (checksum, order, bounds, agreement with
 * the manifest). Does not read the blocks. */
int sv_ckpt_open(const char *dir, struct sv_ckpt_reader **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sv_ckpt_close(struct sv_ckpt_reader *r);
/* Reads and checks dir/MANIFEST alone (no data file) into *m (free it with
 * sv_ckpt_manifest_free): what a checkpoint names, for retention. */
int sv_ckpt_manifest_read(const char *dir, struct sv_ckpt_manifest *m, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The MANIFEST (version 2: the whole chain's; see sv_ckpt_chain_open). */
const struct sv_ckpt_manifest *sv_ckpt_manifest(const struct sv_ckpt_reader *r);
/* What the data file holds (version 1: the MANIFEST; version 2: the
 * checkpoint's own link); state numbers of iterators index its states. */
const struct sv_ckpt_manifest *sv_ckpt_file_manifest(const struct sv_ckpt_reader *r);

/* Reads everything in one sequential pass: every block (checksums,
 * decompression, entry framing, order, key groups, counts against the index
 * and the manifest), then the whole-file checksum. progress (may be NULL) is
 * called now and then with the bytes checked so far. */
int sv_ckpt_verify(struct sv_ckpt_reader *r, void (*progress)(void *ud, uint64_t bytes), void *ud,
                   char *err, size_t errlen);

/* Entries of state number state_idx (into manifest states) in key groups
 * first..last, in stored-key order, reading only their blocks. Each block is
 * checksummed and checked as it is read. SV_EINVAL for a state_idx out of
 * range or first > last. The iterator reads ahead: a thread of its own loads
 * and checks the next block while the caller reads the current one (at most
 * two blocks in memory). Use one iterator of a reader at a time, and close it
 * before r. */
struct sv_ckpt_iter;
int sv_ckpt_iter_open(struct sv_ckpt_reader *r, size_t state_idx, uint32_t kg_first,
                      uint32_t kg_last, struct sv_ckpt_iter **out)
    __attribute__((warn_unused_result));
/* 1 with the entry set (pointers valid until the next call), 0 at the end,
 * or an error (message in sv_ckpt_errmsg(r); sticky). */
int sv_ckpt_iter_next(struct sv_ckpt_iter *it, const uint8_t **skey, size_t *sklen,
                      const uint8_t **value, size_t *vlen);
void sv_ckpt_iter_close(struct sv_ckpt_iter *it);

/* Entries of a state in one key group, from the index (no block reads). */
uint64_t sv_ckpt_kg_entries(const struct sv_ckpt_reader *r, size_t state_idx, uint32_t kg);

/* The reason for the last failure on r. */
const char *sv_ckpt_errmsg(const struct sv_ckpt_reader *r);

/* --- chains (version 2) ---------------------------------------------------
 *
 * A checkpoint is read through its chain: the files its MANIFEST names, the
 * full one first, each found as <parent of dir>/chk-<id>/data (its own as
 * dir/data), each opened and checked against what the MANIFEST says of it
 * (size, index, per-state counts). A version-1 checkpoint is a chain of one.
 * A missing file is SV_ECORRUPT naming it. Lifetimes: readers and paths
 * returned are the chain's; one iterator at a time. */
struct sv_ckpt_chain;
int sv_ckpt_chain_open(const char *dir, struct sv_ckpt_chain **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sv_ckpt_chain_close(struct sv_ckpt_chain *c);
const struct sv_ckpt_manifest *sv_ckpt_chain_manifest(const struct sv_ckpt_chain *c);
size_t sv_ckpt_chain_length(const struct sv_ckpt_chain *c);
/* File i (0: the full one), and its path. */
struct sv_ckpt_reader *sv_ckpt_chain_file(const struct sv_ckpt_chain *c, size_t i);
const char *sv_ckpt_chain_path(const struct sv_ckpt_chain *c, size_t i);
const char *sv_ckpt_chain_errmsg(const struct sv_ckpt_chain *c);
/* sv_ckpt_verify on every file; with merge, also that the merged chain
 * holds, per state, the live entries the MANIFEST counted. */
int sv_ckpt_chain_verify(struct sv_ckpt_chain *c, int merge, char *err, size_t errlen);
/* Whether a file of the state's run has entries in key group kg (index
 * only; tombstones count). */
int sv_ckpt_chain_kg_has(const struct sv_ckpt_chain *c, const char *name, uint32_t kg);

/* The live entries of state `name` in key groups first..last, in stored-key
 * order: a merge of the links from the newest back to the one that reset
 * the state (newest wins, tombstones hide). A state not at the cut has
 * none. Entries are valid until the next call. */
struct sv_ckpt_chain_iter;
int sv_ckpt_chain_iter_open(struct sv_ckpt_chain *c, const char *name, uint32_t kg_first,
                            uint32_t kg_last, struct sv_ckpt_chain_iter **out)
    __attribute__((warn_unused_result));
/* 1 with an entry, 0 at the end, or an error (sv_ckpt_chain_errmsg). */
int sv_ckpt_chain_iter_next(struct sv_ckpt_chain_iter *it, const uint8_t **skey, size_t *sklen,
                            const uint8_t **value, size_t *vlen);
void sv_ckpt_chain_iter_close(struct sv_ckpt_chain_iter *it);

#endif
