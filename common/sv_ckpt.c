/* Checkpoint files: the streaming writer and the verifying reader.
 *
 * The byte layout is specified in docs/checkpoint-format.md; the constants and
 * the put/get helpers below are the only place that encodes it. Everything a
 * reader takes from a file is treated as hostile: each length, offset and
 * count is checked against the file size, SV_CKPT_BLOCK_RAW_MAX and the other
 * parts (index, footer, MANIFEST) before anything is allocated or read. */
#include "sv_ckpt.h"
#include "checkpoint.pb-c.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_msg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define ERRMSG_LEN 512 /* a writer's or reader's error message */

/* --- layout ---------------------------------------------------------------- */

#define DATA_MAGIC "SVCKDAT1"
#define DATA_HEADER_SIZE 16u
#define BLOCK_MAGIC "SVBK"
#define BLOCK_HEADER_SIZE 44u
#define BLOCK_HEADER_HASHED 36u /* the header checksum covers bytes 0..35 */
#define INDEX_RECORD_SIZE 32u
#define FOOTER_MAGIC "SVCKEND1"
#define FOOTER_SIZE 40u
#define MANIFEST_MAGIC "SVCKMAN1"
#define MANIFEST_OVERHEAD 20u /* magic, length, checksum */
#define MANIFEST_MAX (64u << 20)
#define MANIFEST_TMP "MANIFEST.tmp"
/* The smallest entry: varint(3), a 3-byte stored key, varint(0). */
#define ENTRY_MIN 5u
/* Per entry, the two varints take 2..20 bytes. */
#define ENTRY_OVERHEAD_MIN 2u
#define ENTRY_OVERHEAD_MAX 20u

#define OUT_BUF_SIZE (1u << 20)
#define READ_CHUNK (1u << 20)
#define PROGRESS_EVERY (16u << 20)

/* Block compression byte values (on disk, same numbers as the enum). */
#define COMP_NONE 0u
#define COMP_ZSTD 1u

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

struct block_header {
    uint32_t state;
    uint32_t kg;
    uint32_t entries;
    uint32_t raw;
    uint32_t stored;
    uint8_t comp;
    uint64_t payload_xxh3;
};

/* One index record, decoded. The block it describes starts at offset. */
struct idx_rec {
    uint64_t offset;
    uint32_t state;
    uint32_t kg;
    uint32_t stored;
    uint32_t raw;
    uint32_t entries;
    uint8_t comp;
};

static void block_header_put(uint8_t *p, const struct block_header *h)
{
    memcpy(p, BLOCK_MAGIC, 4);
    put32(p + 4, h->state);
    put32(p + 8, h->kg);
    put32(p + 12, h->entries);
    put32(p + 16, h->raw);
    put32(p + 20, h->stored);
    p[24] = h->comp;
    p[25] = p[26] = p[27] = 0;
    put64(p + 28, h->payload_xxh3);
    put64(p + 36, XXH3_64bits(p, BLOCK_HEADER_HASHED));
}

static void idx_rec_put(uint8_t *p, const struct idx_rec *x)
{
    put32(p, x->state);
    put32(p + 4, x->kg);
    put64(p + 8, x->offset);
    put32(p + 16, x->stored);
    put32(p + 20, x->raw);
    put32(p + 24, x->entries);
    p[28] = x->comp;
    p[29] = p[30] = p[31] = 0;
}

/* Stored keys sort as LMDB's default comparator does: bytewise, and a key
 * before every longer key it is a prefix of. */
static int skey_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static size_t entry_size(size_t sklen, size_t vlen)
{
    return sv_varint_size(sklen) + sklen + sv_varint_size(vlen) + vlen;
}

/* Splits the entry at p[0..n): bytes it takes, or 0 if it is not one. */
static size_t entry_parse(const uint8_t *p, size_t n, const uint8_t **k, size_t *kl,
                          const uint8_t **v, size_t *vl)
{
    uint64_t len;
    int vn = sv_varint_get(p, n, &len);
    if (vn < 0 || len > n - (size_t)vn)
        return 0;
    size_t off = (size_t)vn;
    *k = p + off;
    *kl = (size_t)len;
    off += (size_t)len;
    vn = sv_varint_get(p + off, n - off, &len);
    if (vn < 0 || len > n - off - (size_t)vn)
        return 0;
    off += (size_t)vn;
    *v = p + off;
    *vl = (size_t)len;
    return off + (size_t)len;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes at off; SV_ECORRUPT if the file ends first (it
 * shrank under us: its size was checked on open). */
static int pread_full(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return SV_ECORRUPT;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void copy_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

void sv_ckpt_manifest_free(struct sv_ckpt_manifest *m)
{
    if (!m)
        return;
    free(m->states);
    m->states = NULL;
    m->n_states = 0;
}

/* --- MANIFEST encoding ----------------------------------------------------- */

static const char *compression_name(enum sv_ckpt_compression c)
{
    return c == SV_CKPT_COMPRESS_ZSTD ? "zstd" : "none";
}

/* Packs m as a MANIFEST file image (magic, length, body, checksum) into a
 * new buffer. 0, SV_ETOOLARGE (over MANIFEST_MAX) or -ENOMEM. */
static int manifest_encode(const struct sv_ckpt_manifest *m, uint8_t **out, size_t *outlen)
{
    Statesrv__V1__CheckpointManifest pm = STATESRV__V1__CHECKPOINT_MANIFEST__INIT;
    Statesrv__V1__CheckpointStateInfo *infos =
        calloc(m->n_states ? m->n_states : 1, sizeof(*infos));
    Statesrv__V1__CheckpointStateInfo **ptrs = calloc(m->n_states ? m->n_states : 1, sizeof(*ptrs));
    int rc = -ENOMEM;
    if (!infos || !ptrs)
        goto out;
    for (size_t i = 0; i < m->n_states; i++) {
        const struct sv_ckpt_state *s = &m->states[i];
        Statesrv__V1__CheckpointStateInfo init = STATESRV__V1__CHECKPOINT_STATE_INFO__INIT;
        infos[i] = init;
        infos[i].name = (char *)s->name;
        infos[i].entries = s->entries;
        infos[i].raw_bytes = s->raw_bytes;
        infos[i].kg_min = s->kg_min;
        infos[i].kg_max = s->kg_max;
        infos[i].blocks = s->blocks;
        ptrs[i] = &infos[i];
    }
    pm.format_version = m->format_version;
    pm.checkpoint_id = m->checkpoint_id;
    pm.created_unix_ms = m->created_unix_ms;
    pm.server_version = (char *)m->server_version;
    pm.key_groups = m->key_groups;
    pm.kg_first = m->kg_first;
    pm.kg_last = m->kg_last;
    pm.entries = m->entries;
    pm.raw_bytes = m->raw_bytes;
    pm.data_bytes = m->data_bytes;
    pm.data_xxh3 = m->data_xxh3;
    pm.compression = (char *)compression_name(m->compression);
    pm.compression_level = m->compression_level;
    pm.n_states = m->n_states;
    pm.states = ptrs;
    pm.blocks = m->blocks;
    pm.duration_ms = m->duration_ms;

    size_t body = statesrv__v1__checkpoint_manifest__get_packed_size(&pm);
    if (body > MANIFEST_MAX - MANIFEST_OVERHEAD) {
        rc = SV_ETOOLARGE;
        goto out;
    }
    uint8_t *buf = malloc(body + MANIFEST_OVERHEAD);
    if (!buf)
        goto out;
    memcpy(buf, MANIFEST_MAGIC, 8);
    put32(buf + 8, (uint32_t)body);
    statesrv__v1__checkpoint_manifest__pack(&pm, buf + 12);
    put64(buf + 12 + body, XXH3_64bits(buf + 12, body));
    *out = buf;
    *outlen = body + MANIFEST_OVERHEAD;
    rc = 0;
out:
    free(infos);
    free(ptrs);
    return rc;
}

/* Adds b to *a unless that overflows; 0 or -1. */
static int add_u64(uint64_t *a, uint64_t b)
{
    if (*a > UINT64_MAX - b)
        return -1;
    *a += b;
    return 0;
}

/* Decodes and checks a MANIFEST file image into m. 0, SV_ECORRUPT (reason
 * in why) or -ENOMEM. */
static int manifest_decode(const uint8_t *p, size_t n, struct sv_ckpt_manifest *m, char *why,
                           size_t whylen)
{
    memset(m, 0, sizeof(*m));
    if (n < MANIFEST_OVERHEAD) {
        snprintf(why, whylen, "too short (%zu bytes)", n);
        return SV_ECORRUPT;
    }
    if (memcmp(p, MANIFEST_MAGIC, 8) != 0) {
        snprintf(why, whylen, "bad magic");
        return SV_ECORRUPT;
    }
    uint32_t body = get32(p + 8);
    if ((uint64_t)body != n - MANIFEST_OVERHEAD) {
        snprintf(why, whylen, "length field says %u bytes, the file holds %zu", (unsigned)body,
                 n - MANIFEST_OVERHEAD);
        return SV_ECORRUPT;
    }
    if (XXH3_64bits(p + 12, body) != get64(p + 12 + body)) {
        snprintf(why, whylen, "checksum mismatch");
        return SV_ECORRUPT;
    }
    Statesrv__V1__CheckpointManifest *pm =
        statesrv__v1__checkpoint_manifest__unpack(NULL, body, p + 12);
    if (!pm) {
        snprintf(why, whylen, "body is not a CheckpointManifest");
        return SV_ECORRUPT;
    }
    int rc = SV_ECORRUPT;
    if (pm->format_version != SV_CKPT_FORMAT_VERSION) {
        snprintf(why, whylen, "format version %u is not supported (this reader knows %u)",
                 (unsigned)pm->format_version, SV_CKPT_FORMAT_VERSION);
        goto out;
    }
    m->format_version = pm->format_version;
    m->checkpoint_id = pm->checkpoint_id;
    m->created_unix_ms = pm->created_unix_ms;
    if (strlen(pm->server_version) >= sizeof(m->server_version)) {
        snprintf(why, whylen, "server_version too long");
        goto out;
    }
    snprintf(m->server_version, sizeof(m->server_version), "%s", pm->server_version);
    m->key_groups = pm->key_groups;
    m->kg_first = pm->kg_first;
    m->kg_last = pm->kg_last;
    if (m->key_groups == 0 || m->key_groups > SV_KEY_GROUPS_MAX || m->kg_first > m->kg_last ||
        m->kg_last >= m->key_groups) {
        snprintf(why, whylen, "key groups %u..%u of %u are not a valid range",
                 (unsigned)m->kg_first, (unsigned)m->kg_last, (unsigned)m->key_groups);
        goto out;
    }
    m->entries = pm->entries;
    m->raw_bytes = pm->raw_bytes;
    m->data_bytes = pm->data_bytes;
    m->data_xxh3 = pm->data_xxh3;
    if (strcmp(pm->compression, "zstd") == 0) {
        m->compression = SV_CKPT_COMPRESS_ZSTD;
    } else if (strcmp(pm->compression, "none") == 0) {
        m->compression = SV_CKPT_COMPRESS_NONE;
    } else {
        snprintf(why, whylen, "unknown compression \"%.32s\"", pm->compression);
        goto out;
    }
    m->compression_level = pm->compression_level;
    m->blocks = pm->blocks;
    m->duration_ms = pm->duration_ms;

    if (pm->n_states) {
        m->states = calloc(pm->n_states, sizeof(*m->states));
        if (!m->states) {
            rc = -ENOMEM;
            goto out;
        }
    }
    m->n_states = pm->n_states;
    uint64_t entries = 0, raw = 0, blocks = 0;
    for (size_t i = 0; i < pm->n_states; i++) {
        const Statesrv__V1__CheckpointStateInfo *si = pm->states[i];
        struct sv_ckpt_state *s = &m->states[i];
        size_t nl = strlen(si->name);
        if (!sv_state_name_valid(si->name, nl)) {
            snprintf(why, whylen, "state %zu: invalid name", i);
            goto out;
        }
        memcpy(s->name, si->name, nl + 1);
        if (i > 0 && strcmp(m->states[i - 1].name, s->name) >= 0) {
            snprintf(why, whylen, "state %zu (%s): names not in increasing order", i, s->name);
            goto out;
        }
        s->entries = si->entries;
        s->raw_bytes = si->raw_bytes;
        s->kg_min = si->kg_min;
        s->kg_max = si->kg_max;
        s->blocks = si->blocks;
        int bad = s->entries ? (s->kg_min > s->kg_max || s->kg_min < m->kg_first ||
                                s->kg_max > m->kg_last || s->blocks == 0 || s->blocks > s->entries)
                             : (s->blocks != 0 || s->raw_bytes != 0);
        if (bad) {
            snprintf(why, whylen, "state %s: inconsistent counts or key groups", s->name);
            goto out;
        }
        if (add_u64(&entries, s->entries) || add_u64(&raw, s->raw_bytes) ||
            add_u64(&blocks, s->blocks)) {
            snprintf(why, whylen, "state totals overflow");
            goto out;
        }
    }
    if (entries != m->entries || raw != m->raw_bytes || blocks != m->blocks) {
        snprintf(why, whylen, "totals do not match the sum of the states");
        goto out;
    }
    rc = 0;
out:
    statesrv__v1__checkpoint_manifest__free_unpacked(pm, NULL);
    if (rc)
        sv_ckpt_manifest_free(m);
    return rc;
}

/* --- writer ---------------------------------------------------------------- */

struct sv_ckpt_writer {
    char *dir;
    char *data_path;
    int fd;
    uint32_t key_groups, kg_first, kg_last;
    enum sv_ckpt_compression compression;
    int level;
    size_t block_size;
    uint64_t checkpoint_id;
    char server_version[32];
    uint64_t created_unix_ms;
    uint64_t start_mono_ms;

    /* Output: a large buffer in front of write(2); every byte passes the
     * whole-file hash on its way in. offset counts bytes emitted so far. */
    uint8_t *out;
    size_t out_len;
    uint64_t offset;
    XXH3_state_t *hash;

    /* The block being filled. */
    struct sv_buf raw;
    struct sv_buf cbuf;
    ZSTD_CCtx *cctx;
    uint32_t blk_kg;
    uint32_t blk_entries;

    struct sv_buf index; /* INDEX_RECORD_SIZE-byte records */
    struct sv_buf lastkey;
    int have_last;

    struct sv_ckpt_state *states;
    size_t n_states, cap_states;
    uint64_t blocks, entries, raw_bytes;
    /* Progress counters, read by other threads with __atomic loads. */
    uint64_t prog_entries, prog_bytes;

    int err; /* sticky: the first failure */
    char errmsg[ERRMSG_LEN];
};

/* Records the writer's first failure (later calls return it) and returns rc. */
__attribute__((format(printf, 3, 4))) static int werr(struct sv_ckpt_writer *w, int rc,
                                                      const char *fmt, ...)
{
    if (w->err)
        return w->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
    va_end(ap);
    w->err = rc;
    return rc;
}

static int out_flush(struct sv_ckpt_writer *w)
{
    if (!w->out_len)
        return 0;
    int rc = write_all(w->fd, w->out, w->out_len);
    if (rc)
        return werr(w, rc, "%s: write: %s", w->data_path, sv_strerror(rc));
    w->out_len = 0;
    return 0;
}

static int out_write(struct sv_ckpt_writer *w, const void *p, size_t n)
{
    XXH3_64bits_update(w->hash, p, n);
    w->offset += n;
    if (w->out_len + n <= OUT_BUF_SIZE) {
        memcpy(w->out + w->out_len, p, n);
        w->out_len += n;
        return 0;
    }
    int rc = out_flush(w);
    if (rc)
        return rc;
    if (n >= OUT_BUF_SIZE / 2) {
        rc = write_all(w->fd, p, n);
        if (rc)
            return werr(w, rc, "%s: write: %s", w->data_path, sv_strerror(rc));
        return 0;
    }
    memcpy(w->out, p, n);
    w->out_len = n;
    return 0;
}

/* Compresses and emits the block being filled, and indexes it. */
static int flush_block(struct sv_ckpt_writer *w)
{
    if (!w->blk_entries)
        return 0;
    const uint8_t *payload = w->raw.data;
    size_t stored = w->raw.len;
    uint8_t comp = COMP_NONE;
    if (w->compression == SV_CKPT_COMPRESS_ZSTD) {
        size_t bound = ZSTD_compressBound(w->raw.len);
        w->cbuf.len = 0;
        if (sv_buf_reserve(&w->cbuf, bound))
            return werr(w, -ENOMEM, "%s: out of memory", w->data_path);
        size_t c =
            ZSTD_compressCCtx(w->cctx, w->cbuf.data, bound, w->raw.data, w->raw.len, w->level);
        if (ZSTD_isError(c))
            return werr(w, SV_EINTERNAL, "%s: zstd: %s", w->data_path, ZSTD_getErrorName(c));
        /* A block zstd cannot shrink is stored as it is. */
        if (c < w->raw.len) {
            payload = w->cbuf.data;
            stored = c;
            comp = COMP_ZSTD;
        }
    }
    struct block_header h = {
        .state = (uint32_t)(w->n_states - 1),
        .kg = w->blk_kg,
        .entries = w->blk_entries,
        .raw = (uint32_t)w->raw.len,
        .stored = (uint32_t)stored,
        .comp = comp,
        .payload_xxh3 = XXH3_64bits(payload, stored),
    };
    struct idx_rec x = {
        .offset = w->offset,
        .state = h.state,
        .kg = h.kg,
        .stored = h.stored,
        .raw = h.raw,
        .entries = h.entries,
        .comp = comp,
    };
    uint8_t hdr[BLOCK_HEADER_SIZE];
    block_header_put(hdr, &h);
    if (sv_buf_reserve(&w->index, INDEX_RECORD_SIZE))
        return werr(w, -ENOMEM, "%s: out of memory", w->data_path);
    idx_rec_put(w->index.data + w->index.len, &x);
    w->index.len += INDEX_RECORD_SIZE;
    int rc = out_write(w, hdr, sizeof(hdr));
    if (!rc)
        rc = out_write(w, payload, stored);
    if (rc)
        return rc;
    w->states[w->n_states - 1].blocks++;
    w->blocks++;
    w->blk_entries = 0;
    /* Keep the usual block buffer; drop one grown for a single huge entry. */
    sv_buf_clear(&w->raw, 2 * w->block_size + 4096);
    sv_buf_clear(&w->cbuf, 2 * w->block_size + 4096);
    return 0;
}

static int check_options(const struct sv_ckpt_writer_options *o, char *why, size_t whylen)
{
    if (o->key_groups == 0 || o->key_groups > SV_KEY_GROUPS_MAX) {
        snprintf(why, whylen, "key_groups %u is not in 1..%u", (unsigned)o->key_groups,
                 SV_KEY_GROUPS_MAX);
        return SV_EINVAL;
    }
    if (o->kg_first > o->kg_last || o->kg_last >= o->key_groups) {
        snprintf(why, whylen, "key-group range %u..%u is not within 0..%u", (unsigned)o->kg_first,
                 (unsigned)o->kg_last, (unsigned)o->key_groups - 1);
        return SV_EINVAL;
    }
    if (o->compression != SV_CKPT_COMPRESS_NONE && o->compression != SV_CKPT_COMPRESS_ZSTD) {
        snprintf(why, whylen, "unknown compression %d", (int)o->compression);
        return SV_EINVAL;
    }
    if (o->compression == SV_CKPT_COMPRESS_ZSTD && o->compression_level != 0 &&
        (o->compression_level < ZSTD_minCLevel() || o->compression_level > ZSTD_maxCLevel())) {
        snprintf(why, whylen, "zstd level %d is not in %d..%d", o->compression_level,
                 ZSTD_minCLevel(), ZSTD_maxCLevel());
        return SV_EINVAL;
    }
    if (o->block_size > SV_CKPT_BLOCK_RAW_MAX) {
        snprintf(why, whylen, "block_size %zu is above %u", o->block_size, SV_CKPT_BLOCK_RAW_MAX);
        return SV_EINVAL;
    }
    if (o->server_version && strlen(o->server_version) >= 32) {
        snprintf(why, whylen, "server_version is longer than 31 bytes");
        return SV_EINVAL;
    }
    return 0;
}

/* 0 if dir exists and holds nothing, else -ENOTEMPTY or -errno. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            rc = -ENOTEMPTY;
            break;
        }
    }
    closedir(d);
    return rc;
}

int sv_ckpt_writer_open(const char *dir, const struct sv_ckpt_writer_options *o,
                        struct sv_ckpt_writer **out, char *err, size_t errlen)
{
    char why[256];
    *out = NULL;
    int rc = check_options(o, why, sizeof(why));
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "checkpoint options: %s", why);
        return rc;
    }
    rc = dir_empty(dir);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", dir, sv_strerror(rc));
        return rc;
    }
    struct sv_ckpt_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        copy_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    w->fd = -1;
    w->key_groups = o->key_groups;
    w->kg_first = o->kg_first;
    w->kg_last = o->kg_last;
    w->compression = o->compression;
    w->level = o->compression == SV_CKPT_COMPRESS_ZSTD
                   ? (o->compression_level ? o->compression_level : ZSTD_CLEVEL_DEFAULT)
                   : 0;
    w->block_size = o->block_size ? o->block_size : SV_CKPT_BLOCK_SIZE_DEFAULT;
    w->checkpoint_id = o->checkpoint_id;
    snprintf(w->server_version, sizeof(w->server_version), "%s",
             o->server_version ? o->server_version : SV_VERSION);
    w->created_unix_ms = now_ms(CLOCK_REALTIME);
    w->start_mono_ms = now_ms(CLOCK_MONOTONIC);
    w->dir = strdup(dir);
    w->data_path = path_join(dir, SV_CKPT_DATA_FILE);
    w->out = malloc(OUT_BUF_SIZE);
    w->hash = XXH3_createState();
    if (w->compression == SV_CKPT_COMPRESS_ZSTD)
        w->cctx = ZSTD_createCCtx();
    if (!w->dir || !w->data_path || !w->out || !w->hash ||
        (w->compression == SV_CKPT_COMPRESS_ZSTD && !w->cctx)) {
        copy_err(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    XXH3_64bits_reset(w->hash);
    w->fd = open(w->data_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = -errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", w->data_path, sv_strerror(rc));
        goto fail;
    }
    uint8_t hdr[DATA_HEADER_SIZE];
    memcpy(hdr, DATA_MAGIC, 8);
    put32(hdr + 8, SV_CKPT_FORMAT_VERSION);
    put32(hdr + 12, 0);
    rc = out_write(w, hdr, sizeof(hdr)); /* buffered: cannot fail */
    if (rc)
        goto fail;
    *out = w;
    return 0;
fail:
    sv_ckpt_writer_abort(w);
    return rc;
}

int sv_ckpt_writer_state(struct sv_ckpt_writer *w, const char *name)
{
    if (w->err)
        return w->err;
    size_t nl = strlen(name);
    if (!sv_state_name_valid(name, nl))
        return werr(w, SV_EINVAL, "state name \"%.64s\" is not valid", name);
    if (w->n_states && strcmp(w->states[w->n_states - 1].name, name) >= 0)
        return werr(w, SV_EINVAL, "state \"%s\" does not follow \"%s\"", name,
                    w->states[w->n_states - 1].name);
    if (w->n_states >= UINT32_MAX)
        return werr(w, SV_EINVAL, "too many states");
    int rc = flush_block(w);
    if (rc)
        return rc;
    if (w->n_states == w->cap_states) {
        size_t cap = w->cap_states ? 2 * w->cap_states : 8;
        struct sv_ckpt_state *s = realloc(w->states, cap * sizeof(*s));
        if (!s)
            return werr(w, -ENOMEM, "out of memory");
        w->states = s;
        w->cap_states = cap;
    }
    struct sv_ckpt_state *s = &w->states[w->n_states++];
    memset(s, 0, sizeof(*s));
    memcpy(s->name, name, nl + 1);
    w->have_last = 0;
    return 0;
}

int sv_ckpt_writer_add(struct sv_ckpt_writer *w, const uint8_t *skey, size_t sklen,
                       const uint8_t *value, size_t vlen)
{
    if (w->err)
        return w->err;
    if (!w->n_states)
        return werr(w, SV_EINVAL, "entry added before any state");
    struct sv_ckpt_state *s = &w->states[w->n_states - 1];
    struct sv_skey k;
    if (sv_skey_decode(skey, sklen, &k) != 0)
        return werr(w, SV_EINVAL, "state %s, entry %llu: not a stored key", s->name,
                    (unsigned long long)s->entries);
    if (k.kg >= w->key_groups || k.kg < w->kg_first || k.kg > w->kg_last)
        return werr(w, SV_EINVAL, "state %s, entry %llu: key group %u outside %u..%u", s->name,
                    (unsigned long long)s->entries, (unsigned)k.kg, (unsigned)w->kg_first,
                    (unsigned)w->kg_last);
    if (w->have_last && skey_cmp(w->lastkey.data, w->lastkey.len, skey, sklen) >= 0)
        return werr(w, SV_EINVAL, "state %s, entry %llu: stored keys not strictly increasing",
                    s->name, (unsigned long long)s->entries);
    if (sklen > SV_CKPT_BLOCK_RAW_MAX || vlen > SV_CKPT_BLOCK_RAW_MAX ||
        entry_size(sklen, vlen) > SV_CKPT_BLOCK_RAW_MAX)
        return werr(w, SV_ETOOLARGE, "state %s, entry %llu: %zu bytes is above the block limit",
                    s->name, (unsigned long long)s->entries, sklen + vlen);
    size_t esz = entry_size(sklen, vlen);
    int rc;
    if (w->blk_entries && (k.kg != w->blk_kg || w->raw.len + esz > w->block_size)) {
        rc = flush_block(w);
        if (rc)
            return rc;
    }
    if (sv_buf_reserve(&w->raw, esz))
        return werr(w, -ENOMEM, "out of memory");
    uint8_t *p = w->raw.data + w->raw.len;
    p += sv_varint_put(p, sklen);
    memcpy(p, skey, sklen);
    p += sklen;
    p += sv_varint_put(p, vlen);
    if (vlen)
        memcpy(p, value, vlen);
    w->raw.len += esz;
    w->blk_kg = k.kg;
    w->blk_entries++;

    w->lastkey.len = 0;
    if (sv_buf_append(&w->lastkey, skey, sklen))
        return werr(w, -ENOMEM, "out of memory");
    w->have_last = 1;
    if (!s->entries || k.kg < s->kg_min)
        s->kg_min = k.kg;
    if (!s->entries || k.kg > s->kg_max)
        s->kg_max = k.kg;
    s->entries++;
    s->raw_bytes += sklen + vlen;
    w->entries++;
    w->raw_bytes += sklen + vlen;
    __atomic_store_n(&w->prog_entries, w->entries, __ATOMIC_RELAXED);
    __atomic_store_n(&w->prog_bytes, w->raw_bytes, __ATOMIC_RELAXED);

    /* A block at or past block_size is done (a lone entry that big included). */
    if (w->raw.len >= w->block_size)
        return flush_block(w);
    return 0;
}

void sv_ckpt_writer_progress(const struct sv_ckpt_writer *w, uint64_t *entries, uint64_t *bytes)
{
    if (entries)
        *entries = __atomic_load_n(&w->prog_entries, __ATOMIC_RELAXED);
    if (bytes)
        *bytes = __atomic_load_n(&w->prog_bytes, __ATOMIC_RELAXED);
}

/* Writes the index and the footer, flushes and fsyncs the data file. */
static int finish_data(struct sv_ckpt_writer *w)
{
    int rc = flush_block(w);
    if (rc)
        return rc;
    uint8_t footer[FOOTER_SIZE];
    put64(footer, w->offset);
    put64(footer + 8, w->index.len);
    put64(footer + 16, w->index.len / INDEX_RECORD_SIZE);
    put64(footer + 24, XXH3_64bits(w->index.data, w->index.len));
    memcpy(footer + 32, FOOTER_MAGIC, 8);
    if (w->index.len && (rc = out_write(w, w->index.data, w->index.len)) != 0)
        return rc;
    if ((rc = out_write(w, footer, sizeof(footer))) != 0 || (rc = out_flush(w)) != 0)
        return rc;
    if (fsync(w->fd) != 0) {
        rc = -errno;
        return werr(w, rc, "%s: fsync: %s", w->data_path, sv_strerror(rc));
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) {
        rc = -errno;
        return werr(w, rc, "%s: close: %s", w->data_path, sv_strerror(rc));
    }
    return 0;
}

/* Writes MANIFEST the safe way: MANIFEST.tmp, fsync, rename, fsync the
 * directory. On failure neither file is left behind. */
static int write_manifest(struct sv_ckpt_writer *w, const uint8_t *img, size_t n)
{
    char *tmp = path_join(w->dir, MANIFEST_TMP);
    char *final = path_join(w->dir, SV_CKPT_MANIFEST_FILE);
    int rc = 0, fd = -1, renamed = 0;
    if (!tmp || !final) {
        rc = werr(w, -ENOMEM, "out of memory");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        werr(w, rc, "%s: %s", tmp, sv_strerror(rc));
        goto out;
    }
    rc = write_all(fd, img, n);
    if (rc) {
        werr(w, rc, "%s: write: %s", tmp, sv_strerror(rc));
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        werr(w, rc, "%s: fsync: %s", tmp, sv_strerror(rc));
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = -errno;
        werr(w, rc, "%s: close: %s", tmp, sv_strerror(rc));
        goto out;
    }
    if (rename(tmp, final) != 0) {
        rc = -errno;
        werr(w, rc, "%s: rename: %s", final, sv_strerror(rc));
        goto out;
    }
    renamed = 1;
    fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        rc = -errno;
        werr(w, rc, "%s: fsync directory: %s", w->dir, sv_strerror(rc));
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc && tmp)
        unlink(tmp);
    if (rc && renamed)
        unlink(final);
    free(tmp);
    free(final);
    return rc;
}

int sv_ckpt_writer_finish(struct sv_ckpt_writer *w, struct sv_ckpt_manifest *m, char *err,
                          size_t errlen)
{
    if (m)
        memset(m, 0, sizeof(*m));
    int rc = w->err ? w->err : finish_data(w);
    struct sv_ckpt_manifest mf = {
        .format_version = SV_CKPT_FORMAT_VERSION,
        .checkpoint_id = w->checkpoint_id,
        .created_unix_ms = w->created_unix_ms,
        .key_groups = w->key_groups,
        .kg_first = w->kg_first,
        .kg_last = w->kg_last,
        .entries = w->entries,
        .raw_bytes = w->raw_bytes,
        .data_bytes = w->offset,
        .data_xxh3 = XXH3_64bits_digest(w->hash),
        .compression = w->compression,
        .compression_level = w->level,
        .blocks = w->blocks,
        .duration_ms = now_ms(CLOCK_MONOTONIC) - w->start_mono_ms,
        .n_states = w->n_states,
        .states = w->states,
    };
    memcpy(mf.server_version, w->server_version, sizeof(mf.server_version));
    if (!rc) {
        uint8_t *img = NULL;
        size_t n = 0;
        rc = manifest_encode(&mf, &img, &n);
        if (rc)
            rc = werr(w, rc, "MANIFEST: cannot encode: %s", sv_strerror(rc));
        else
            rc = write_manifest(w, img, n);
        free(img);
    }
    if (!rc && m) {
        *m = mf;
        w->states = NULL; /* now the caller's */
    }
    if (rc)
        copy_err(err, errlen, w->errmsg);
    sv_ckpt_writer_abort(w);
    return rc;
}

void sv_ckpt_writer_abort(struct sv_ckpt_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->dir);
    free(w->data_path);
    free(w->out);
    XXH3_freeState(w->hash);
    ZSTD_freeCCtx(w->cctx);
    sv_buf_free(&w->raw);
    sv_buf_free(&w->cbuf);
    sv_buf_free(&w->index);
    sv_buf_free(&w->lastkey);
    free(w->states);
    free(w);
}

/* --- reader ---------------------------------------------------------------- */

/* One block in memory: the bytes as read (header + stored payload) and, for
 * a compressed block, the payload decompressed. data/len is the raw payload. */
struct blockbuf {
    struct sv_buf io;
    struct sv_buf raw;
    ZSTD_DCtx *dctx;
    const uint8_t *data;
    size_t len;
};

struct sv_ckpt_reader {
    char *manifest_path;
    char *data_path;
    int fd;
    uint64_t size;
    struct sv_ckpt_manifest m;
    uint8_t header[DATA_HEADER_SIZE];
    uint64_t index_offset;
    struct idx_rec *idx;
    size_t n_idx;
    struct blockbuf blk; /* verify's */
    char errmsg[ERRMSG_LEN];
};

/* Formats an error message into msg (ERRMSG_LEN bytes); returns rc. */
__attribute__((format(printf, 3, 4))) static int berr(char *msg, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, ERRMSG_LEN, fmt, ap);
    va_end(ap);
    return rc;
}

#define rerr(r, ...) berr((r)->errmsg, __VA_ARGS__)

static void blockbuf_free(struct blockbuf *b)
{
    sv_buf_free(&b->io);
    sv_buf_free(&b->raw);
    ZSTD_freeDCtx(b->dctx);
    b->dctx = NULL;
}

/* Reads the MANIFEST into r->m. */
static int read_manifest(struct sv_ckpt_reader *r)
{
    int fd = open(r->manifest_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return rerr(r, rc, "%s: %s", r->manifest_path, sv_strerror(rc));
    }
    uint8_t *buf = NULL;
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        rerr(r, rc, "%s: %s", r->manifest_path, sv_strerror(rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)MANIFEST_OVERHEAD ||
        st.st_size > (off_t)MANIFEST_MAX) {
        rc = rerr(r, SV_ECORRUPT, "%s: MANIFEST: not a regular file of %u..%u bytes",
                  r->manifest_path, MANIFEST_OVERHEAD, MANIFEST_MAX);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n);
    if (!buf) {
        rc = rerr(r, -ENOMEM, "%s: out of memory", r->manifest_path);
        goto out;
    }
    rc = pread_full(fd, buf, n, 0);
    if (rc) {
        rerr(r, rc, "%s: read: %s", r->manifest_path, sv_strerror(rc));
        goto out;
    }
    char why[256];
    rc = manifest_decode(buf, n, &r->m, why, sizeof(why));
    if (rc)
        rerr(r, rc, "%s: MANIFEST: %s", r->manifest_path, why);
out:
    free(buf);
    close(fd);
    return rc;
}

/* Reads the data file's header, footer and index, and checks them against
 * each other and against the manifest. */
static int read_data_meta(struct sv_ckpt_reader *r)
{
    const struct sv_ckpt_manifest *m = &r->m;
    const char *path = r->data_path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = -errno;
        return rerr(r, rc, "%s: %s", path, sv_strerror(rc));
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        int rc = -errno;
        return rerr(r, rc, "%s: %s", path, sv_strerror(rc));
    }
    if (!S_ISREG(st.st_mode))
        return rerr(r, SV_ECORRUPT, "%s: not a regular file", path);
    r->size = (uint64_t)st.st_size;
    if (r->size != m->data_bytes)
        return rerr(r, SV_ECORRUPT,
                    "%s: data file size: %llu bytes, MANIFEST says %llu (truncated or extended)",
                    path, (unsigned long long)r->size, (unsigned long long)m->data_bytes);
    if (r->size < DATA_HEADER_SIZE + FOOTER_SIZE)
        return rerr(r, SV_ECORRUPT, "%s: data file size: %llu bytes is too short", path,
                    (unsigned long long)r->size);

    int rc = pread_full(r->fd, r->header, DATA_HEADER_SIZE, 0);
    if (rc)
        return rerr(r, rc, "%s: data header: read: %s", path, sv_strerror(rc));
    if (memcmp(r->header, DATA_MAGIC, 8) != 0)
        return rerr(r, SV_ECORRUPT, "%s: data header: bad magic", path);
    if (get32(r->header + 8) != SV_CKPT_FORMAT_VERSION)
        return rerr(r, SV_ECORRUPT, "%s: data header: format version %u is not supported", path,
                    (unsigned)get32(r->header + 8));
    if (get32(r->header + 12) != 0)
        return rerr(r, SV_ECORRUPT, "%s: data header: unknown flags %#x", path,
                    (unsigned)get32(r->header + 12));

    uint8_t f[FOOTER_SIZE];
    uint64_t foot_off = r->size - FOOTER_SIZE;
    rc = pread_full(r->fd, f, FOOTER_SIZE, foot_off);
    if (rc)
        return rerr(r, rc, "%s: footer: read: %s", path, sv_strerror(rc));
    if (memcmp(f + 32, FOOTER_MAGIC, 8) != 0)
        return rerr(r, SV_ECORRUPT, "%s: footer: bad magic", path);
    uint64_t ioff = get64(f), ilen = get64(f + 8), icount = get64(f + 16);
    if (icount > foot_off / INDEX_RECORD_SIZE || ilen != icount * INDEX_RECORD_SIZE)
        return rerr(r, SV_ECORRUPT, "%s: footer: index count %llu does not fit index length %llu",
                    path, (unsigned long long)icount, (unsigned long long)ilen);
    if (ioff < DATA_HEADER_SIZE || ioff > foot_off || foot_off - ioff != ilen)
        return rerr(r, SV_ECORRUPT,
                    "%s: footer: index at %llu (+%llu) does not end where the footer starts (%llu)",
                    path, (unsigned long long)ioff, (unsigned long long)ilen,
                    (unsigned long long)foot_off);
    if (icount != m->blocks)
        return rerr(r, SV_ECORRUPT, "%s: footer: %llu blocks, MANIFEST says %llu", path,
                    (unsigned long long)icount, (unsigned long long)m->blocks);
    r->index_offset = ioff;

    /* ilen < file size, so this allocation is bounded by what is on disk. */
    uint8_t *raw = malloc(ilen ? (size_t)ilen : 1);
    r->idx = calloc(icount ? (size_t)icount : 1, sizeof(*r->idx));
    if (!raw || !r->idx) {
        free(raw);
        return rerr(r, -ENOMEM, "%s: index: out of memory", path);
    }
    rc = pread_full(r->fd, raw, (size_t)ilen, ioff);
    if (rc) {
        free(raw);
        return rerr(r, rc, "%s: index: read: %s", path, sv_strerror(rc));
    }
    if (XXH3_64bits(raw, (size_t)ilen) != get64(f + 24)) {
        free(raw);
        return rerr(r, SV_ECORRUPT, "%s: index: checksum does not match the footer's", path);
    }

    /* Per-state sums, to compare with the manifest. */
    struct sv_ckpt_state *sum = calloc(m->n_states ? m->n_states : 1, sizeof(*sum));
    if (!sum) {
        free(raw);
        return rerr(r, -ENOMEM, "%s: index: out of memory", path);
    }
    rc = 0;
    uint64_t expect = DATA_HEADER_SIZE;
    for (size_t i = 0; i < (size_t)icount; i++) {
        const uint8_t *p = raw + i * INDEX_RECORD_SIZE;
        struct idx_rec *x = &r->idx[i];
        x->state = get32(p);
        x->kg = get32(p + 4);
        x->offset = get64(p + 8);
        x->stored = get32(p + 16);
        x->raw = get32(p + 20);
        x->entries = get32(p + 24);
        x->comp = p[28];
        const char *bad = NULL;
        if (p[29] || p[30] || p[31])
            bad = "reserved bytes are not zero";
        else if (x->state >= m->n_states)
            bad = "state out of range";
        else if (x->kg < m->kg_first || x->kg > m->kg_last)
            bad = "key group outside the checkpoint's range";
        else if (i > 0 && (x->state < r->idx[i - 1].state ||
                           (x->state == r->idx[i - 1].state && x->kg < r->idx[i - 1].kg)))
            bad = "not sorted by (state, key group)";
        else if (x->offset != expect)
            bad = "offset is not where the previous block ends";
        else if (x->entries == 0 || x->raw > SV_CKPT_BLOCK_RAW_MAX ||
                 x->raw / ENTRY_MIN < x->entries)
            bad = "entry count or raw length out of bounds";
        else if (x->comp == COMP_NONE ? x->stored != x->raw
                 : x->comp == COMP_ZSTD
                     ? x->stored == 0 || x->stored > ZSTD_COMPRESSBOUND((uint64_t)x->raw)
                     : 1)
            bad = "bad compression or stored length";
        else if (x->stored > ioff - x->offset || ioff - x->offset - x->stored < BLOCK_HEADER_SIZE)
            bad = "block runs past the index";
        if (bad) {
            rc = rerr(r, SV_ECORRUPT, "%s: index: record %zu (block at offset %llu): %s", path, i,
                      (unsigned long long)x->offset, bad);
            goto out;
        }
        expect = x->offset + BLOCK_HEADER_SIZE + x->stored;
        struct sv_ckpt_state *s = &sum[x->state];
        if (!s->entries || x->kg < s->kg_min)
            s->kg_min = x->kg;
        if (!s->entries || x->kg > s->kg_max)
            s->kg_max = x->kg;
        if (add_u64(&s->entries, x->entries) || add_u64(&s->raw_bytes, x->raw)) {
            rc = rerr(r, SV_ECORRUPT, "%s: index: record %zu: totals overflow", path, i);
            goto out;
        }
        s->blocks++;
    }
    if (expect != ioff) {
        rc = rerr(r, SV_ECORRUPT, "%s: index: blocks end at %llu but the index starts at %llu",
                  path, (unsigned long long)expect, (unsigned long long)ioff);
        goto out;
    }
    for (size_t i = 0; i < m->n_states; i++) {
        const struct sv_ckpt_state *ms = &m->states[i], *s = &sum[i];
        /* raw_bytes counts keys and values; the index's raw lengths add the
         * two varints of each entry. */
        int bad = s->entries != ms->entries || s->blocks != ms->blocks ||
                  (s->entries && (s->kg_min != ms->kg_min || s->kg_max != ms->kg_max)) ||
                  ms->raw_bytes > s->raw_bytes - ENTRY_OVERHEAD_MIN * s->entries ||
                  ms->raw_bytes + ENTRY_OVERHEAD_MAX * s->entries < s->raw_bytes;
        if (bad) {
            rc = rerr(r, SV_ECORRUPT,
                      "%s: index: state %s: blocks, entries, sizes or key groups differ from "
                      "the MANIFEST",
                      path, ms->name);
            goto out;
        }
    }
    r->n_idx = (size_t)icount;
out:
    free(sum);
    free(raw);
    return rc;
}

int sv_ckpt_open(const char *dir, struct sv_ckpt_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_ckpt_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        copy_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->fd = -1;
    r->manifest_path = path_join(dir, SV_CKPT_MANIFEST_FILE);
    r->data_path = path_join(dir, SV_CKPT_DATA_FILE);
    int rc;
    if (!r->manifest_path || !r->data_path)
        rc = rerr(r, -ENOMEM, "out of memory");
    else if ((rc = read_manifest(r)) == 0)
        rc = read_data_meta(r);
    if (rc) {
        copy_err(err, errlen, r->errmsg);
        sv_ckpt_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void sv_ckpt_close(struct sv_ckpt_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->manifest_path);
    free(r->data_path);
    sv_ckpt_manifest_free(&r->m);
    free(r->idx);
    blockbuf_free(&r->blk);
    free(r);
}

const struct sv_ckpt_manifest *sv_ckpt_manifest(const struct sv_ckpt_reader *r)
{
    return &r->m;
}

const char *sv_ckpt_errmsg(const struct sv_ckpt_reader *r)
{
    return r->errmsg;
}

#define BLOCK_FMT "%s: block at offset %llu (state %u, key group %u): "
#define BLOCK_ARGS(r, x)                                                                           \
    (r)->data_path, (unsigned long long)(x)->offset, (unsigned)(x)->state, (unsigned)(x)->kg

/* Reads block x into b and checks it: header checksum, agreement with the
 * index, payload checksum, decompression to exactly the raw length, and
 * every entry (framing to exactly the raw length, stored keys that decode,
 * carry the block's key group and strictly increase, also from *prev, the
 * last key before this block in the same state, or empty). On success
 * b->data/len is the raw payload, *prev holds the block's last key, and
 * *kv_bytes (may be NULL) the bytes of its keys and values. If fh is not
 * NULL the block's bytes are fed to it (verify's whole-file checksum). */
static int block_load(struct sv_ckpt_reader *r, char *msg, const struct idx_rec *x,
                      struct blockbuf *b, struct sv_buf *prev, uint64_t *kv_bytes, XXH3_state_t *fh)
{
    size_t n = BLOCK_HEADER_SIZE + (size_t)x->stored;
    b->io.len = 0;
    b->data = NULL;
    b->len = 0;
    if (sv_buf_reserve(&b->io, n))
        return berr(msg, -ENOMEM, BLOCK_FMT "out of memory", BLOCK_ARGS(r, x));
    int rc = pread_full(r->fd, b->io.data, n, x->offset);
    if (rc)
        return berr(msg, rc, BLOCK_FMT "read: %s", BLOCK_ARGS(r, x), sv_strerror(rc));
    if (fh)
        XXH3_64bits_update(fh, b->io.data, n);
    const uint8_t *h = b->io.data;
    if (memcmp(h, BLOCK_MAGIC, 4) != 0)
        return berr(msg, SV_ECORRUPT, BLOCK_FMT "block header: bad magic", BLOCK_ARGS(r, x));
    if (XXH3_64bits(h, BLOCK_HEADER_HASHED) != get64(h + 36))
        return berr(msg, SV_ECORRUPT, BLOCK_FMT "block header: checksum mismatch",
                    BLOCK_ARGS(r, x));
    if (get32(h + 4) != x->state || get32(h + 8) != x->kg || get32(h + 12) != x->entries ||
        get32(h + 16) != x->raw || get32(h + 20) != x->stored || h[24] != x->comp || h[25] ||
        h[26] || h[27])
        return berr(msg, SV_ECORRUPT, BLOCK_FMT "block header does not match the index",
                    BLOCK_ARGS(r, x));
    const uint8_t *payload = h + BLOCK_HEADER_SIZE;
    if (XXH3_64bits(payload, x->stored) != get64(h + 28))
        return berr(msg, SV_ECORRUPT, BLOCK_FMT "payload checksum mismatch", BLOCK_ARGS(r, x));

    if (x->comp == COMP_ZSTD) {
        if (!b->dctx && !(b->dctx = ZSTD_createDCtx()))
            return berr(msg, -ENOMEM, BLOCK_FMT "out of memory", BLOCK_ARGS(r, x));
        /* x->raw <= SV_CKPT_BLOCK_RAW_MAX was checked with the index. */
        b->raw.len = 0;
        if (sv_buf_reserve(&b->raw, x->raw ? x->raw : 1))
            return berr(msg, -ENOMEM, BLOCK_FMT "out of memory for %u bytes", BLOCK_ARGS(r, x),
                        (unsigned)x->raw);
        if (ZSTD_findFrameCompressedSize(payload, x->stored) != x->stored)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "payload is not one zstd frame",
                        BLOCK_ARGS(r, x));
        size_t got = ZSTD_decompressDCtx(b->dctx, b->raw.data, x->raw, payload, x->stored);
        if (ZSTD_isError(got))
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "zstd: %s", BLOCK_ARGS(r, x),
                        ZSTD_getErrorName(got));
        if (got != x->raw)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "decompressed to %zu bytes, not %u",
                        BLOCK_ARGS(r, x), got, (unsigned)x->raw);
        b->data = b->raw.data;
    } else {
        b->data = payload;
    }
    b->len = x->raw;

    /* Every entry, before any is handed out. */
    const uint8_t *lk = prev->len ? prev->data : NULL;
    size_t lkl = prev->len;
    uint64_t count = 0, kv = 0;
    for (size_t off = 0; off < b->len;) {
        const uint8_t *k, *v;
        size_t kl, vl;
        size_t used = entry_parse(b->data + off, b->len - off, &k, &kl, &v, &vl);
        struct sv_skey sk;
        if (!used)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "entry %llu: bad framing", BLOCK_ARGS(r, x),
                        (unsigned long long)count);
        if (sv_skey_decode(k, kl, &sk) != 0)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "entry %llu: not a stored key",
                        BLOCK_ARGS(r, x), (unsigned long long)count);
        if (sk.kg != x->kg)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "entry %llu: key group %u", BLOCK_ARGS(r, x),
                        (unsigned long long)count, (unsigned)sk.kg);
        if (lk && skey_cmp(lk, lkl, k, kl) >= 0)
            return berr(msg, SV_ECORRUPT, BLOCK_FMT "entry %llu: keys not strictly increasing",
                        BLOCK_ARGS(r, x), (unsigned long long)count);
        lk = k;
        lkl = kl;
        count++;
        kv += kl + vl;
        off += used;
    }
    if (count != x->entries)
        return berr(msg, SV_ECORRUPT, BLOCK_FMT "%llu entries, the index says %u", BLOCK_ARGS(r, x),
                    (unsigned long long)count, (unsigned)x->entries);
    prev->len = 0;
    if (sv_buf_append(prev, lk, lkl))
        return berr(msg, -ENOMEM, BLOCK_FMT "out of memory", BLOCK_ARGS(r, x));
    if (kv_bytes)
        *kv_bytes = kv;
    return 0;
}

int sv_ckpt_verify(struct sv_ckpt_reader *r, void (*progress)(void *ud, uint64_t bytes), void *ud,
                   char *err, size_t errlen)
{
    XXH3_state_t *fh = XXH3_createState();
    uint64_t *kv = calloc(r->m.n_states ? r->m.n_states : 1, sizeof(*kv));
    struct sv_buf prev = SV_BUF_INIT;
    int rc = 0;
    if (!fh || !kv) {
        rc = rerr(r, -ENOMEM, "%s: out of memory", r->data_path);
        goto out;
    }
    XXH3_64bits_reset(fh);
    XXH3_64bits_update(fh, r->header, DATA_HEADER_SIZE);
    uint64_t next_report = PROGRESS_EVERY;
    for (size_t i = 0; i < r->n_idx; i++) {
        const struct idx_rec *x = &r->idx[i];
        if (i == 0 || x->state != r->idx[i - 1].state)
            prev.len = 0;
        uint64_t bytes;
        rc = block_load(r, r->errmsg, x, &r->blk, &prev, &bytes, fh);
        if (rc)
            goto out;
        kv[x->state] += bytes;
        if (progress && x->offset >= next_report) {
            progress(ud, x->offset);
            next_report = x->offset + PROGRESS_EVERY;
        }
    }
    for (size_t i = 0; i < r->m.n_states; i++) {
        if (kv[i] != r->m.states[i].raw_bytes) {
            rc = rerr(r, SV_ECORRUPT,
                      "%s: state %s holds %llu bytes of keys and values, "
                      "the MANIFEST says %llu",
                      r->data_path, r->m.states[i].name, (unsigned long long)kv[i],
                      (unsigned long long)r->m.states[i].raw_bytes);
            goto out;
        }
    }
    /* The index and the footer, for the whole-file checksum. */
    for (uint64_t off = r->index_offset; off < r->size;) {
        size_t n = r->size - off < READ_CHUNK ? (size_t)(r->size - off) : READ_CHUNK;
        r->blk.io.len = 0;
        if (sv_buf_reserve(&r->blk.io, n)) {
            rc = rerr(r, -ENOMEM, "%s: out of memory", r->data_path);
            goto out;
        }
        rc = pread_full(r->fd, r->blk.io.data, n, off);
        if (rc) {
            rerr(r, rc, "%s: index: read: %s", r->data_path, sv_strerror(rc));
            goto out;
        }
        XXH3_64bits_update(fh, r->blk.io.data, n);
        off += n;
    }
    if (XXH3_64bits_digest(fh) != r->m.data_xxh3) {
        rc = rerr(r, SV_ECORRUPT,
                  "%s: data checksum: the whole file does not match the MANIFEST's XXH3",
                  r->data_path);
        goto out;
    }
    if (progress)
        progress(ud, r->size);
out:
    if (rc)
        copy_err(err, errlen, r->errmsg);
    XXH3_freeState(fh);
    free(kv);
    sv_buf_free(&prev);
    return rc;
}

/* --- iteration ------------------------------------------------------------- */

/* An iterator reads ahead: a thread of its own loads the next block (reads,
 * checks, decompresses it) while the caller consumes the current one, so a
 * restore decompresses on one core and builds the store on another. Blocks
 * pass between them through ITER_SLOTS slots, in index order. A range of a
 * single block is loaded in the caller's thread. */
#define ITER_SLOTS 2

struct sv_ckpt_iter {
    struct sv_ckpt_reader *r;
    /* The loader's (the thread's, once it runs). */
    size_t next, end; /* index records still to load */
    struct sv_buf prev;
    /* Shared, under mu. */
    struct blockbuf slot[ITER_SLOTS];
    int full[ITER_SLOTS]; /* loaded, not yet consumed */
    int loader_done;      /* no more blocks: loader_rc is 0 or the error */
    int loader_rc;
    char errmsg[ERRMSG_LEN]; /* the loader's error */
    int stop;
    /* The caller's. */
    size_t cur; /* the slot it reads */
    size_t pos; /* in that slot */
    int holding;
    int err;
    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Loads the next block into slot i; 1 when there was none. */
static int load_slot(struct sv_ckpt_iter *it, size_t i)
{
    if (it->next >= it->end)
        return 1;
    /* The loader thread keeps its message apart: the caller's thread copies
     * it into the reader when it takes the error (next_slot). */
    char *msg = it->threaded ? it->errmsg : it->r->errmsg;
    int rc = block_load(it->r, msg, &it->r->idx[it->next], &it->slot[i], &it->prev, NULL, NULL);
    if (rc)
        return rc;
    it->next++;
    return 0;
}

static void *loader_main(void *arg)
{
    struct sv_ckpt_iter *it = arg;
    for (size_t i = 0;; i = (i + 1) % ITER_SLOTS) {
        pthread_mutex_lock(&it->mu);
        while (it->full[i] && !it->stop)
            pthread_cond_wait(&it->cv, &it->mu);
        int stop = it->stop;
        pthread_mutex_unlock(&it->mu);
        if (stop)
            return NULL;
        int rc = load_slot(it, i); /* slot i is the loader's while not full */
        pthread_mutex_lock(&it->mu);
        if (rc == 0) {
            it->full[i] = 1;
        } else {
            it->loader_done = 1;
            it->loader_rc = rc == 1 ? 0 : rc;
        }
        pthread_cond_broadcast(&it->cv);
        pthread_mutex_unlock(&it->mu);
        if (rc)
            return NULL;
    }
}

/* The first index record at or after (state, kg). */
static size_t idx_lower_bound(const struct sv_ckpt_reader *r, uint32_t state, uint32_t kg)
{
    size_t lo = 0, hi = r->n_idx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct idx_rec *x = &r->idx[mid];
        if (x->state < state || (x->state == state && x->kg < kg))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sv_ckpt_iter_open(struct sv_ckpt_reader *r, size_t state_idx, uint32_t kg_first,
                      uint32_t kg_last, struct sv_ckpt_iter **out)
{
    *out = NULL;
    if (state_idx >= r->m.n_states || kg_first > kg_last)
        return rerr(r, SV_EINVAL, "iteration: state %zu, key groups %u..%u: invalid", state_idx,
                    (unsigned)kg_first, (unsigned)kg_last);
    struct sv_ckpt_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return rerr(r, -ENOMEM, "out of memory");
    it->r = r;
    it->next = idx_lower_bound(r, (uint32_t)state_idx, kg_first);
    it->end = it->next;
    while (it->end < r->n_idx && r->idx[it->end].state == state_idx &&
           r->idx[it->end].kg <= kg_last)
        it->end++;
    if (it->end - it->next >= 2 && pthread_mutex_init(&it->mu, NULL) == 0) {
        if (pthread_cond_init(&it->cv, NULL) == 0) {
            it->threaded = 1; /* before the thread starts: it reads it */
            if (pthread_create(&it->thread, NULL, loader_main, it) != 0) {
                it->threaded = 0;
                pthread_cond_destroy(&it->cv);
            }
        }
        if (!it->threaded)
            pthread_mutex_destroy(&it->mu);
    }
    *out = it;
    return 0;
}

/* Makes it->cur a loaded slot: 1, 0 at the end, or an error. */
static int next_slot(struct sv_ckpt_iter *it)
{
    if (!it->threaded) {
        int rc = load_slot(it, 0);
        return rc == 0 ? 1 : rc == 1 ? 0 : rc;
    }
    pthread_mutex_lock(&it->mu);
    if (it->holding) {
        it->full[it->cur] = 0;
        it->cur = (it->cur + 1) % ITER_SLOTS;
        it->holding = 0;
        pthread_cond_broadcast(&it->cv);
    }
    while (!it->full[it->cur] && !it->loader_done)
        pthread_cond_wait(&it->cv, &it->mu);
    /* The loader fills the slots in order: an empty one here is the end. */
    int rc = it->full[it->cur] ? 1 : it->loader_rc;
    it->holding = rc == 1;
    if (rc < 0)
        memcpy(it->r->errmsg, it->errmsg, sizeof(it->errmsg));
    pthread_mutex_unlock(&it->mu);
    return rc;
}

int sv_ckpt_iter_next(struct sv_ckpt_iter *it, const uint8_t **skey, size_t *sklen,
                      const uint8_t **value, size_t *vlen)
{
    if (it->err)
        return it->err;
    /* A slot is the caller's to read only while it holds it (threaded); an
     * empty block is passed over. */
    while (!(it->threaded ? it->holding : 1) || it->pos >= it->slot[it->cur].len) {
        int rc = next_slot(it);
        if (rc <= 0) {
            it->err = rc;
            return rc;
        }
        it->pos = 0;
    }
    const struct blockbuf *b = &it->slot[it->cur];
    /* The block was checked entry by entry when it was loaded. */
    size_t used = entry_parse(b->data + it->pos, b->len - it->pos, skey, sklen, value, vlen);
    if (!used) {
        it->err = rerr(it->r, SV_EINTERNAL, "%s: iteration lost its place", it->r->data_path);
        return it->err;
    }
    it->pos += used;
    return 1;
}

void sv_ckpt_iter_close(struct sv_ckpt_iter *it)
{
    if (!it)
        return;
    if (it->threaded) {
        pthread_mutex_lock(&it->mu);
        it->stop = 1;
        pthread_cond_broadcast(&it->cv);
        pthread_mutex_unlock(&it->mu);
        pthread_join(it->thread, NULL);
        pthread_cond_destroy(&it->cv);
        pthread_mutex_destroy(&it->mu);
    }
    for (size_t i = 0; i < ITER_SLOTS; i++)
        blockbuf_free(&it->slot[i]);
    sv_buf_free(&it->prev);
    free(it);
}

uint64_t sv_ckpt_kg_entries(const struct sv_ckpt_reader *r, size_t state_idx, uint32_t kg)
{
    if (state_idx >= r->m.n_states)
        return 0;
    uint64_t n = 0;
    for (size_t i = idx_lower_bound(r, (uint32_t)state_idx, kg);
         i < r->n_idx && r->idx[i].state == state_idx && r->idx[i].kg == kg; i++)
        n += r->idx[i].entries;
    return n;
}
