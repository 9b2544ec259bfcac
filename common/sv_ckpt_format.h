/* Checkpoint format, versions 1 and 2: the layout and its codec, with no I/O.
 *
 * docs/checkpoint-format.md specifies the bytes; this module is the only code
 * that encodes them. Every function takes bytes in memory and gives structs
 * (or bytes) back: nothing here opens, reads, writes or syncs a file, starts
 * a thread or looks at the clock. The file reader and writer (io/sv_ckpt.h)
 * move the bytes between these functions and the disk, so a parser can be
 * unit-tested and fuzzed on a buffer, and a new format version is a change
 * here first.
 *
 * Everything decoded is hostile: every length, offset and count is checked
 * against the sizes given and the other parts (footer, index, MANIFEST)
 * before anything is allocated. Decoders return 0, SV_ECORRUPT with a
 * one-line reason in why (naming the part, never a path: the caller prefixes
 * the file), or -ENOMEM. why may be NULL when whylen is 0. */
#ifndef SV_CKPT_FORMAT_H
#define SV_CKPT_FORMAT_H

#include "sv_buf.h"

#include <stddef.h>
#include <stdint.h>

/* Version 1: one data file, the whole state. Version 2: the MANIFEST names a
 * chain of data files (a full one, then the changes of each incremental
 * checkpoint; an empty value is a tombstone). Readers take both. */
#define SV_CKPT_FORMAT_V1 1u
#define SV_CKPT_FORMAT_V2 2u
#define SV_CKPT_FORMAT_VERSION SV_CKPT_FORMAT_V2 /* the newest */
/* A reader refuses chains longer than this (the server bounds them far
 * lower: checkpoint_chain_max). */
#define SV_CKPT_CHAIN_MAX 1024u
#define SV_CKPT_DATA_FILE "data"
#define SV_CKPT_MANIFEST_FILE "MANIFEST"
#define SV_CKPT_BLOCK_SIZE_DEFAULT (256u * 1024)
/* A reader refuses blocks claiming more than this uncompressed. */
#define SV_CKPT_BLOCK_RAW_MAX (1100u * 1024 * 1024)
/* The longest stored key an entry may have: LMDB's key size limit (511 in
 * its default build, which statesrvd uses), so no store holds a longer one
 * and a restore could not put one in. New writes are held to 509 (the store
 * keeps 2 bytes for a snapshot's copies); 510-511 bytes can come from data
 * directories of earlier builds and still restore. */
#define SV_CKPT_SKEY_MAX 511u

/* Layout (docs/checkpoint-format.md). */
#define SV_CKPT_DATA_HEADER_SIZE 16u
#define SV_CKPT_BLOCK_HEADER_SIZE 44u
#define SV_CKPT_INDEX_RECORD_SIZE 32u
#define SV_CKPT_FOOTER_SIZE 40u
#define SV_CKPT_MANIFEST_OVERHEAD 20u /* magic, length, checksum */
#define SV_CKPT_MANIFEST_MAX (64u << 20)
/* The smallest entry: varint(3), a 3-byte stored key, varint(0). */
#define SV_CKPT_ENTRY_MIN 5u

enum sv_ckpt_compression { SV_CKPT_COMPRESS_NONE = 0, SV_CKPT_COMPRESS_ZSTD = 1 };

struct sv_ckpt_state {
    char name[65];
    uint64_t entries;
    uint64_t raw_bytes;
    uint32_t kg_min, kg_max; /* meaningful when entries > 0 */
    uint64_t blocks;
    /* Version 2, in a chain link: older links hold nothing of this state
     * (it was dropped since, or the link is a full one), and the entries
     * with an empty value (deletions since the previous link). */
    int reset;
    uint64_t tombstones;
    /* In a MANIFEST's states: the state's TTL setting at the cut (ttl_ms 0:
     * none; update and visibility as the protocol's TtlUpdate and
     * TtlVisibility, 0 or 1). */
    uint64_t ttl_ms;
    uint32_t ttl_update, ttl_visibility;
};

/* Version 2: one data file of a chain. file is "chk-<checkpoint_id>/data",
 * relative to the directory that holds the checkpoint's directory. states
 * (owned, freed with the manifest) are the file's: its blocks' state
 * numbers index them. */
struct sv_ckpt_link {
    uint64_t checkpoint_id;
    char file[48];
    uint64_t data_bytes;
    uint64_t data_xxh3;
    int incremental;
    uint64_t entries; /* tombstones included */
    uint64_t raw_bytes;
    uint64_t blocks;
    size_t n_states;
    struct sv_ckpt_state *states;
};

/* What a MANIFEST says. states is owned by whoever filled the struct (the
 * writer's finish, the reader, sv_ckpt_manifest_decode) and freed with
 * sv_ckpt_manifest_free(). */
struct sv_ckpt_manifest {
    uint32_t format_version;
    uint64_t checkpoint_id;
    uint64_t created_unix_ms;
    char server_version[32];
    uint32_t key_groups;
    uint32_t kg_first, kg_last;
    uint64_t entries;
    uint64_t raw_bytes;
    uint64_t data_bytes;
    uint64_t data_xxh3;
    enum sv_ckpt_compression compression;
    int compression_level;
    uint64_t blocks;
    uint64_t duration_ms;
    size_t n_states;
    struct sv_ckpt_state *states;
    /* Version 2 (docs/checkpoint-format.md): states are the states at the
     * cut, with entries the live entries (the other per-state numbers are
     * the links'); data_bytes, data_xxh3, raw_bytes and blocks are this
     * checkpoint's own file's. links: the chain, the full checkpoint first
     * and this checkpoint's own file last. A version-1 manifest has none. */
    int incremental;
    uint64_t base_id;
    uint64_t added_bytes;
    uint64_t total_bytes;
    size_t n_links;
    struct sv_ckpt_link *links;
};

void sv_ckpt_manifest_free(struct sv_ckpt_manifest *m);

/* A block header, or an index record: the same fields (offset is the
 * block's, and only in the index). comp is the on-disk byte, 0 or 1. */
struct sv_ckpt_block_info {
    uint64_t offset;
    uint32_t state;
    uint32_t kg;
    uint32_t entries;
    uint32_t raw;
    uint32_t stored;
    uint8_t comp;
};

struct sv_ckpt_footer {
    uint64_t index_offset;
    uint64_t index_len;
    uint64_t index_count;
    uint64_t index_xxh3;
};

/* --- MANIFEST -------------------------------------------------------------- */

/* The whole MANIFEST file image (magic, length, body, checksum) in a new
 * malloc'd buffer. 0, SV_ETOOLARGE (over SV_CKPT_MANIFEST_MAX) or -ENOMEM. */
int sv_ckpt_manifest_encode(const struct sv_ckpt_manifest *m, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));
/* Decodes and checks a MANIFEST file image of n bytes into m (version,
 * compression, key-group range, state names in order, per-state counts,
 * totals). On failure m holds nothing to free. */
int sv_ckpt_manifest_decode(const uint8_t *p, size_t n, struct sv_ckpt_manifest *m, char *why,
                            size_t whylen) __attribute__((warn_unused_result));

/* The version-1-shaped description of link i of a version-2 manifest m (one
 * data file on its own, as sv_ckpt_index_decode checks a file against):
 * its own copy of the link's states, freed with sv_ckpt_manifest_free. 0 or
 * -ENOMEM. */
int sv_ckpt_link_manifest(const struct sv_ckpt_manifest *m, size_t i, struct sv_ckpt_manifest *out)
    __attribute__((warn_unused_result));

/* The body (the packed CheckpointManifest) of a MANIFEST image of n bytes,
 * as its size says, unchecked; NULL if n is below SV_CKPT_MANIFEST_OVERHEAD.
 * For tools that edit an image; readers use sv_ckpt_manifest_decode. */
const uint8_t *sv_ckpt_manifest_body(const uint8_t *p, size_t n, size_t *body_len);
/* Rewrites the length field and checksum of the MANIFEST image of n bytes
 * (at least SV_CKPT_MANIFEST_OVERHEAD) to match its body. */
void sv_ckpt_manifest_seal(uint8_t *p, size_t n);

/* --- data file: header, footer, index -------------------------------------- */

/* version: SV_CKPT_FORMAT_V1 or V2. */
void sv_ckpt_data_header_put(uint8_t *out, uint32_t version);
/* Magic, version (as the MANIFEST says: `version`), flags of the
 * SV_CKPT_DATA_HEADER_SIZE bytes at p. */
int sv_ckpt_data_header_check(const uint8_t *p, uint32_t version, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* f->index_len must be SV_CKPT_INDEX_RECORD_SIZE x f->index_count. */
void sv_ckpt_footer_put(uint8_t *out, const struct sv_ckpt_footer *f);
/* The SV_CKPT_FOOTER_SIZE bytes at p, the last of a data file of file_size
 * bytes (at least header + footer): magic, and an index that fits between
 * the header and the footer. */
int sv_ckpt_footer_decode(const uint8_t *p, uint64_t file_size, struct sv_ckpt_footer *f, char *why,
                          size_t whylen) __attribute__((warn_unused_result));

void sv_ckpt_index_put(uint8_t *out, const struct sv_ckpt_block_info *x);
/* Decodes the f->index_len index bytes at p: their checksum against the
 * footer's, every record (bounds, order, offsets that tile the file from the
 * header to the index) and the records against m (f->index_count against
 * m->blocks, first; blocks, entries, sizes and key groups per state). *out (malloc'd,
 * f->index_count records, at least one allocated) is the caller's. */
int sv_ckpt_index_decode(const uint8_t *p, const struct sv_ckpt_footer *f,
                         const struct sv_ckpt_manifest *m, struct sv_ckpt_block_info **out,
                         char *why, size_t whylen) __attribute__((warn_unused_result));

/* --- blocks ---------------------------------------------------------------- */

/* The fields of the block header at p as they stand, unchecked (offset is
 * left alone), and a header for x with its payload's checksum and its own:
 * for tools that inspect or repair files. Readers use sv_ckpt_block_decode. */
void sv_ckpt_block_header_get(const uint8_t *p, struct sv_ckpt_block_info *x);
void sv_ckpt_block_header_put(uint8_t *out, const struct sv_ckpt_block_info *x,
                              uint64_t payload_xxh3);

/* Makes a block of a raw payload: compresses it (zstd, when asked and when
 * that makes it smaller), fills the header. One per writer; reusable. */
struct sv_ckpt_block_encoder {
    enum sv_ckpt_compression compression;
    int level;
    struct sv_buf cbuf;
    void *cctx; /* ZSTD_CCtx */
};

/* 0 or -ENOMEM. level: zstd's (ignored for none). */
int sv_ckpt_block_encoder_init(struct sv_ckpt_block_encoder *e, enum sv_ckpt_compression c,
                               int level) __attribute__((warn_unused_result));
void sv_ckpt_block_encoder_free(struct sv_ckpt_block_encoder *e);
/* Encodes raw[0..x->raw) as the block x describes (state, kg, entries, raw
 * set by the caller; stored and comp filled here): header into
 * hdr[SV_CKPT_BLOCK_HEADER_SIZE], *payload to the stored bytes (raw itself,
 * or the encoder's buffer until its next use). 0, -ENOMEM or SV_EINTERNAL
 * (zstd failed; reason in why). */
int sv_ckpt_block_encode(struct sv_ckpt_block_encoder *e, struct sv_ckpt_block_info *x,
                         const uint8_t *raw, uint8_t *hdr, const uint8_t **payload, char *why,
                         size_t whylen) __attribute__((warn_unused_result));

/* Turns a block's bytes back into its raw payload. One per thread. */
struct sv_ckpt_block_decoder {
    struct sv_buf raw;
    void *dctx; /* ZSTD_DCtx */
};

void sv_ckpt_block_decoder_free(struct sv_ckpt_block_decoder *d);
/* Checks the SV_CKPT_BLOCK_HEADER_SIZE + x->stored bytes at p as the block
 * index record x describes (header magic and checksum, every field equal to
 * x's, reserved bytes, payload checksum, one zstd frame decompressing to
 * exactly x->raw bytes) and sets *raw to its x->raw payload bytes: inside p,
 * or in d's buffer until d's next use. x must have passed
 * sv_ckpt_index_decode (x->raw is bounded). */
int sv_ckpt_block_decode(struct sv_ckpt_block_decoder *d, const struct sv_ckpt_block_info *x,
                         const uint8_t *p, const uint8_t **raw, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* --- entries --------------------------------------------------------------- */

/* Bytes an entry takes in a raw payload. */
size_t sv_ckpt_entry_size(size_t sklen, size_t vlen);
/* Writes one entry (sv_ckpt_entry_size bytes). Returns its size. */
size_t sv_ckpt_entry_put(uint8_t *out, const uint8_t *skey, size_t sklen, const uint8_t *value,
                         size_t vlen);
/* Splits the entry at p[0..n): the bytes it takes, or 0 if it is not one
 * (framing only: see sv_ckpt_entries_check). Pointers are into p. */
size_t sv_ckpt_entry_parse(const uint8_t *p, size_t n, const uint8_t **skey, size_t *sklen,
                           const uint8_t **value, size_t *vlen);
/* Checks every entry of the raw payload of block x: framing to exactly
 * x->raw bytes, stored keys that decode, are at most SV_CKPT_SKEY_MAX bytes, carry x->kg and
 * strictly increase, also from *prev (the last key before this block in the same state, or empty),
 * and x->entries of them. On success *prev holds the block's last key and *kv_bytes (may be NULL)
 * the bytes of its keys and values. */
int sv_ckpt_entries_check(const uint8_t *raw, const struct sv_ckpt_block_info *x,
                          struct sv_buf *prev, uint64_t *kv_bytes, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
