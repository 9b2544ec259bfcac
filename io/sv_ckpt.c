/* Checkpoint files: the streaming writer and the verifying reader.
 *
 * The bytes are the format module's (common/sv_ckpt_format.h): this file
 * only moves them between it and the disk (open, read, write, fsync, the
 * read-ahead thread), checks what only a file has (its type and size), and
 * prefixes each reason with the file's path. Everything a reader takes from
 * a file is treated as hostile; the format module checks each length,
 * offset and count before anything is allocated or read. */
#include "sv_ckpt.h"
#include "fsutil.h"
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
#define MANIFEST_TMP "MANIFEST.tmp"

#define OUT_BUF_SIZE (1u << 20)
#define READ_CHUNK (1u << 20)
#define PROGRESS_EVERY (16u << 20)

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
    uint32_t version;
    int incremental;
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
    struct sv_ckpt_block_encoder enc;
    uint32_t blk_kg;
    uint32_t blk_entries;

    struct sv_buf index; /* SV_CKPT_INDEX_RECORD_SIZE-byte records */
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
    struct sv_ckpt_block_info x = {
        .offset = w->offset,
        .state = (uint32_t)(w->n_states - 1),
        .kg = w->blk_kg,
        .entries = w->blk_entries,
        .raw = (uint32_t)w->raw.len,
    };
    uint8_t hdr[SV_CKPT_BLOCK_HEADER_SIZE];
    const uint8_t *payload;
    char why[256];
    int rc = sv_ckpt_block_encode(&w->enc, &x, w->raw.data, hdr, &payload, why, sizeof(why));
    if (rc)
        return werr(w, rc, "%s: %s", w->data_path, why);
    if (sv_buf_reserve(&w->index, SV_CKPT_INDEX_RECORD_SIZE))
        return werr(w, -ENOMEM, "%s: out of memory", w->data_path);
    sv_ckpt_index_put(w->index.data + w->index.len, &x);
    w->index.len += SV_CKPT_INDEX_RECORD_SIZE;
    rc = out_write(w, hdr, sizeof(hdr));
    if (!rc)
        rc = out_write(w, payload, x.stored);
    if (rc)
        return rc;
    w->states[w->n_states - 1].blocks++;
    w->blocks++;
    w->blk_entries = 0;
    /* Keep the usual block buffer; drop one grown for a single huge entry. */
    sv_buf_clear(&w->raw, 2 * w->block_size + 4096);
    sv_buf_clear(&w->enc.cbuf, 2 * w->block_size + 4096);
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
    if (o->format_version > SV_CKPT_FORMAT_V2 || (o->incremental && o->format_version != 2)) {
        snprintf(why, whylen, "format version %u%s", (unsigned)o->format_version,
                 o->incremental ? " cannot be incremental" : " is unknown");
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
    w->version = o->format_version ? o->format_version : SV_CKPT_FORMAT_V1;
    w->incremental = o->incremental && w->version == SV_CKPT_FORMAT_V2;
    snprintf(w->server_version, sizeof(w->server_version), "%s",
             o->server_version ? o->server_version : SV_VERSION);
    w->created_unix_ms = now_ms(CLOCK_REALTIME);
    w->start_mono_ms = now_ms(CLOCK_MONOTONIC);
    w->dir = strdup(dir);
    w->data_path = path_join(dir, SV_CKPT_DATA_FILE);
    w->out = malloc(OUT_BUF_SIZE);
    w->hash = XXH3_createState();
    int enc_rc = sv_ckpt_block_encoder_init(&w->enc, w->compression, w->level);
    if (!w->dir || !w->data_path || !w->out || !w->hash || enc_rc) {
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
    uint8_t hdr[SV_CKPT_DATA_HEADER_SIZE];
    sv_ckpt_data_header_put(hdr, w->version);
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

int sv_ckpt_writer_reset(struct sv_ckpt_writer *w)
{
    if (w->err)
        return w->err;
    if (!w->n_states || !w->incremental)
        return werr(w, SV_EINVAL, "a reset needs a state of an incremental checkpoint");
    w->states[w->n_states - 1].reset = 1;
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
    if (sklen > SV_CKPT_SKEY_MAX)
        return werr(w, SV_EINVAL, "state %s, entry %llu: a stored key of %zu bytes is above %u",
                    s->name, (unsigned long long)s->entries, sklen, SV_CKPT_SKEY_MAX);
    if (k.kg >= w->key_groups || k.kg < w->kg_first || k.kg > w->kg_last)
        return werr(w, SV_EINVAL, "state %s, entry %llu: key group %u outside %u..%u", s->name,
                    (unsigned long long)s->entries, (unsigned)k.kg, (unsigned)w->kg_first,
                    (unsigned)w->kg_last);
    if (w->have_last && sv_skey_cmp(w->lastkey.data, w->lastkey.len, skey, sklen) >= 0)
        return werr(w, SV_EINVAL, "state %s, entry %llu: stored keys not strictly increasing",
                    s->name, (unsigned long long)s->entries);
    if (sklen > SV_CKPT_BLOCK_RAW_MAX || vlen > SV_CKPT_BLOCK_RAW_MAX ||
        sv_ckpt_entry_size(sklen, vlen) > SV_CKPT_BLOCK_RAW_MAX)
        return werr(w, SV_ETOOLARGE, "state %s, entry %llu: %zu bytes is above the block limit",
                    s->name, (unsigned long long)s->entries, sklen + vlen);
    if (vlen == 0 && w->version == SV_CKPT_FORMAT_V2 && !w->incremental)
        return werr(w, SV_EINVAL, "state %s, entry %llu: a tombstone in a full checkpoint", s->name,
                    (unsigned long long)s->entries);
    size_t esz = sv_ckpt_entry_size(sklen, vlen);
    int rc;
    if (w->blk_entries && (k.kg != w->blk_kg || w->raw.len + esz > w->block_size)) {
        rc = flush_block(w);
        if (rc)
            return rc;
    }
    if (sv_buf_reserve(&w->raw, esz))
        return werr(w, -ENOMEM, "out of memory");
    w->raw.len += sv_ckpt_entry_put(w->raw.data + w->raw.len, skey, sklen, value, vlen);
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
    if (vlen == 0 && w->incremental)
        s->tombstones++;
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
    struct sv_ckpt_footer f = {
        .index_offset = w->offset,
        .index_len = w->index.len,
        .index_count = w->index.len / SV_CKPT_INDEX_RECORD_SIZE,
        .index_xxh3 = XXH3_64bits(w->index.data, w->index.len),
    };
    uint8_t footer[SV_CKPT_FOOTER_SIZE];
    sv_ckpt_footer_put(footer, &f);
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
static int write_manifest_in(struct sv_ckpt_writer *w, const char *dir, const uint8_t *img,
                             size_t n)
{
    char *tmp = path_join(dir, MANIFEST_TMP);
    char *final = path_join(dir, SV_CKPT_MANIFEST_FILE);
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
    if ((rc = sv_fs_fsync_dir(dir)) != 0) {
        werr(w, rc, "%s: fsync directory: %s", dir, sv_strerror(rc));
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

int sv_ckpt_writer_finish_link(struct sv_ckpt_writer *w, struct sv_ckpt_link *l, char *err,
                               size_t errlen)
{
    memset(l, 0, sizeof(*l));
    int rc = w->err ? w->err : w->version != SV_CKPT_FORMAT_V2 ? SV_EINVAL : finish_data(w);
    if (!rc) {
        l->checkpoint_id = w->checkpoint_id;
        snprintf(l->file, sizeof(l->file), "chk-%llu/" SV_CKPT_DATA_FILE,
                 (unsigned long long)w->checkpoint_id);
        l->data_bytes = w->offset;
        l->data_xxh3 = XXH3_64bits_digest(w->hash);
        l->incremental = w->incremental;
        l->entries = w->entries;
        l->raw_bytes = w->raw_bytes;
        l->blocks = w->blocks;
        l->n_states = w->n_states;
        l->states = w->states;
        w->states = NULL; /* now the caller's */
    } else {
        if (rc == SV_EINVAL && !w->err)
            werr(w, rc, "a version-2 writer finishes with a link");
        copy_err(err, errlen, w->errmsg);
    }
    sv_ckpt_writer_abort(w);
    return rc;
}

int sv_ckpt_manifest_write(const char *dir, const struct sv_ckpt_manifest *m, char *err,
                           size_t errlen)
{
    struct sv_ckpt_writer w = {.fd = -1};
    uint8_t *img = NULL;
    size_t n = 0;
    int rc = sv_ckpt_manifest_encode(m, &img, &n);
    if (rc)
        rc = werr(&w, rc, "%s: MANIFEST: cannot encode: %s", dir, sv_strerror(rc));
    else
        rc = write_manifest_in(&w, dir, img, n);
    free(img);
    if (rc)
        copy_err(err, errlen, w.errmsg);
    return rc;
}

int sv_ckpt_writer_finish(struct sv_ckpt_writer *w, struct sv_ckpt_manifest *m, char *err,
                          size_t errlen)
{
    if (m)
        memset(m, 0, sizeof(*m));
    int rc = w->err ? w->err : w->version != SV_CKPT_FORMAT_V1 ? SV_EINVAL : finish_data(w);
    if (rc == SV_EINVAL && !w->err)
        werr(w, rc, "a version-2 writer finishes with sv_ckpt_writer_finish_link");
    struct sv_ckpt_manifest mf = {
        .format_version = SV_CKPT_FORMAT_V1,
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
        rc = sv_ckpt_manifest_encode(&mf, &img, &n);
        if (rc)
            rc = werr(w, rc, "MANIFEST: cannot encode: %s", sv_strerror(rc));
        else
            rc = write_manifest_in(w, w->dir, img, n);
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
    sv_ckpt_block_encoder_free(&w->enc);
    sv_buf_free(&w->raw);
    sv_buf_free(&w->index);
    sv_buf_free(&w->lastkey);
    free(w->states);
    free(w);
}

/* --- reader ---------------------------------------------------------------- */

/* One block in memory: the bytes as read (header + stored payload), the
 * decoder that holds a compressed block's payload decompressed, and data/len,
 * the raw payload. */
struct blockbuf {
    struct sv_buf io;
    struct sv_ckpt_block_decoder dec;
    const uint8_t *data;
    size_t len;
};

struct sv_ckpt_reader {
    char *manifest_path;
    char *data_path;
    int fd;
    uint64_t size;
    struct sv_ckpt_manifest m;   /* what the data file must be */
    struct sv_ckpt_manifest top; /* the MANIFEST (version 2; version 1: unused, see m) */
    int has_top;
    uint8_t header[SV_CKPT_DATA_HEADER_SIZE];
    uint64_t index_offset;
    struct sv_ckpt_block_info *idx;
    size_t n_idx;
    struct blockbuf blk; /* verify's */
    char errmsg[ERRMSG_LEN];
};

/* A reason from the format module, before the path is put in front. */
#define WHY_LEN (ERRMSG_LEN - 128)

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
    sv_ckpt_block_decoder_free(&b->dec);
}

/* Opens a checkpoint file for reading: a regular file, never a symbolic
 * link (that could lead out of the directory a server confined the source
 * to), a FIFO or a device (whose open or read can block for ever: the server
 * lists checkpoints on its event loop). O_NONBLOCK makes the open of a FIFO
 * return at once; it changes nothing for a regular file. *fd and *st on
 * success; SV_ECORRUPT for a file of the wrong kind, or -errno. */
static int open_regular(struct sv_ckpt_reader *r, const char *path, int *fd, struct stat *st)
{
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0) {
        int rc = -errno;
        if (rc == -ELOOP)
            return rerr(r, SV_ECORRUPT,
                        "%s: a symbolic link (checkpoint files must be regular files)", path);
        return rerr(r, rc, "%s: %s", path, sv_strerror(rc));
    }
    int rc = 0;
    if (fstat(*fd, st) != 0) {
        rc = -errno;
        rerr(r, rc, "%s: %s", path, sv_strerror(rc));
    } else if (!S_ISREG(st->st_mode)) {
        rc = rerr(r, SV_ECORRUPT, "%s: not a regular file", path);
    }
    if (rc) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

/* Reads a MANIFEST file into *m (r for the error). */
/* Whether the directory holding file path is named chk-<id> (digits, no
 * leading zero): 1 and *id, else 0. */
static int dir_names_id(const char *path, uint64_t *id)
{
    const char *end = strrchr(path, '/');
    if (!end)
        return 0;
    const char *start = end;
    while (start > path && start[-1] != '/')
        start--;
    size_t n = (size_t)(end - start);
    if (n < 5 || n > 24 || memcmp(start, "chk-", 4) != 0 || start[4] == '0')
        return 0;
    uint64_t v = 0;
    for (const char *p = start + 4; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *id = v;
    return 1;
}

/* A directory named chk-<id> holds checkpoint <id>: a copied or renamed
 * one would list, and restore, as another. Checked after the files, so that
 * a damaged file is named for what it is. */
static int check_dir_id(struct sv_ckpt_reader *r, uint64_t id)
{
    uint64_t named;
    if (!dir_names_id(r->manifest_path, &named) || named == id)
        return 0;
    return rerr(r, SV_ECORRUPT,
                "%s: holds the MANIFEST of checkpoint %llu, not %llu (a copied or renamed "
                "directory?)",
                r->manifest_path, (unsigned long long)id, (unsigned long long)named);
}

static int read_manifest_file(struct sv_ckpt_reader *r, struct sv_ckpt_manifest *m)
{
    int fd;
    struct stat st;
    int rc = open_regular(r, r->manifest_path, &fd, &st);
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    if (st.st_size < (off_t)SV_CKPT_MANIFEST_OVERHEAD || st.st_size > (off_t)SV_CKPT_MANIFEST_MAX) {
        rc = rerr(r, SV_ECORRUPT, "%s: MANIFEST: not a regular file of %u..%u bytes",
                  r->manifest_path, SV_CKPT_MANIFEST_OVERHEAD, SV_CKPT_MANIFEST_MAX);
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
    char why[WHY_LEN];
    rc = sv_ckpt_manifest_decode(buf, n, m, why, sizeof(why));
    if (rc)
        rerr(r, rc, "%s: %s", r->manifest_path, why);
out:
    free(buf);
    close(fd);
    return rc;
}

/* Reads the MANIFEST: version 1 into r->m; version 2 into r->top, and the
 * description of its own file (the chain's last) into r->m. */
static int read_manifest(struct sv_ckpt_reader *r)
{
    struct sv_ckpt_manifest top;
    int rc = read_manifest_file(r, &top);
    if (rc)
        return rc;
    if (top.format_version == SV_CKPT_FORMAT_V1) {
        r->m = top;
        return 0;
    }
    r->top = top;
    r->has_top = 1;
    if ((rc = sv_ckpt_link_manifest(&top, top.n_links - 1, &r->m)))
        return rerr(r, rc, "%s: out of memory", r->manifest_path);
    return 0;
}

/* Reads the data file's header, footer and index, and checks them against
 * each other and against the manifest. */
static int read_data_meta(struct sv_ckpt_reader *r)
{
    const struct sv_ckpt_manifest *m = &r->m;
    const char *path = r->data_path;
    struct stat st;
    int rc = open_regular(r, path, &r->fd, &st);
    if (rc == -ENOENT) /* the MANIFEST names it: a damaged checkpoint, not a missing one */
        return rerr(r, SV_ECORRUPT, "%s: missing (the MANIFEST names it)", path);
    if (rc)
        return rc;
    r->size = (uint64_t)st.st_size;
    if (r->size != m->data_bytes)
        return rerr(r, SV_ECORRUPT,
                    "%s: data file size: %llu bytes, MANIFEST says %llu (truncated or extended)",
                    path, (unsigned long long)r->size, (unsigned long long)m->data_bytes);
    if (r->size < SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE)
        return rerr(r, SV_ECORRUPT, "%s: data file size: %llu bytes is too short", path,
                    (unsigned long long)r->size);

    char why[WHY_LEN];
    rc = pread_full(r->fd, r->header, SV_CKPT_DATA_HEADER_SIZE, 0);
    if (rc)
        return rerr(r, rc, "%s: data header: read: %s", path, sv_strerror(rc));
    if ((rc = sv_ckpt_data_header_check(r->header, m->format_version, why, sizeof(why))))
        return rerr(r, rc, "%s: %s", path, why);

    uint8_t fb[SV_CKPT_FOOTER_SIZE];
    rc = pread_full(r->fd, fb, SV_CKPT_FOOTER_SIZE, r->size - SV_CKPT_FOOTER_SIZE);
    if (rc)
        return rerr(r, rc, "%s: footer: read: %s", path, sv_strerror(rc));
    struct sv_ckpt_footer f;
    if ((rc = sv_ckpt_footer_decode(fb, r->size, &f, why, sizeof(why))))
        return rerr(r, rc, "%s: %s", path, why);
    r->index_offset = f.index_offset;

    /* The index is shorter than the file, so this allocation is bounded by
     * what is on disk. */
    uint8_t *raw = malloc(f.index_len ? (size_t)f.index_len : 1);
    if (!raw)
        return rerr(r, -ENOMEM, "%s: index: out of memory", path);
    rc = pread_full(r->fd, raw, (size_t)f.index_len, f.index_offset);
    if (rc)
        rerr(r, rc, "%s: index: read: %s", path, sv_strerror(rc));
    else if ((rc = sv_ckpt_index_decode(raw, &f, m, &r->idx, why, sizeof(why))))
        rerr(r, rc, "%s: %s", path, why);
    else
        r->n_idx = (size_t)f.index_count;
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
    else if ((rc = read_manifest(r)) == 0 && (rc = read_data_meta(r)) == 0)
        rc = check_dir_id(r, r->has_top ? r->top.checkpoint_id : r->m.checkpoint_id);
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
    sv_ckpt_manifest_free(&r->top);
    free(r->idx);
    blockbuf_free(&r->blk);
    free(r);
}

const struct sv_ckpt_manifest *sv_ckpt_manifest(const struct sv_ckpt_reader *r)
{
    return r->has_top ? &r->top : &r->m;
}

const struct sv_ckpt_manifest *sv_ckpt_file_manifest(const struct sv_ckpt_reader *r)
{
    return &r->m;
}

/* Opens link i of the version-2 manifest top: its data file at data_path,
 * checked against the link (no MANIFEST of its own is read). */
static int open_link(const struct sv_ckpt_manifest *top, size_t i, const char *data_path,
                     struct sv_ckpt_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_ckpt_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        copy_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->fd = -1;
    r->data_path = strdup(data_path);
    r->manifest_path = strdup(data_path);
    int rc;
    if (!r->data_path || !r->manifest_path || sv_ckpt_link_manifest(top, i, &r->m))
        rc = rerr(r, -ENOMEM, "out of memory");
    else
        rc = read_data_meta(r);
    if (rc) {
        copy_err(err, errlen, r->errmsg);
        sv_ckpt_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

const char *sv_ckpt_errmsg(const struct sv_ckpt_reader *r)
{
    return r->errmsg;
}

/* Reads block x into b and checks it and its entries (sv_ckpt_block_decode,
 * sv_ckpt_entries_check, with *prev the last key before this block in the
 * same state, or empty). On success b->data/len is the raw payload, *prev
 * holds the block's last key, and *kv_bytes (may be NULL) the bytes of its
 * keys and values. If fh is not NULL the block's bytes are fed to it
 * (verify's whole-file checksum). */
static int block_load(struct sv_ckpt_reader *r, char *msg, const struct sv_ckpt_block_info *x,
                      struct blockbuf *b, struct sv_buf *prev, uint64_t *kv_bytes, XXH3_state_t *fh)
{
    size_t n = SV_CKPT_BLOCK_HEADER_SIZE + (size_t)x->stored;
    char why[WHY_LEN];
    b->io.len = 0;
    b->data = NULL;
    b->len = 0;
    if (sv_buf_reserve(&b->io, n))
        return berr(
            msg, -ENOMEM, "%s: block at offset %llu (state %u, key group %u): out of memory",
            r->data_path, (unsigned long long)x->offset, (unsigned)x->state, (unsigned)x->kg);
    int rc = pread_full(r->fd, b->io.data, n, x->offset);
    if (rc)
        return berr(msg, rc, "%s: block at offset %llu (state %u, key group %u): read: %s",
                    r->data_path, (unsigned long long)x->offset, (unsigned)x->state,
                    (unsigned)x->kg, sv_strerror(rc));
    if (fh)
        XXH3_64bits_update(fh, b->io.data, n);
    const uint8_t *data;
    if ((rc = sv_ckpt_block_decode(&b->dec, x, b->io.data, &data, why, sizeof(why))) ||
        (rc = sv_ckpt_entries_check(data, x, prev, kv_bytes, why, sizeof(why))))
        return berr(msg, rc, "%s: %s", r->data_path, why);
    b->data = data;
    b->len = x->raw;
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
    XXH3_64bits_update(fh, r->header, SV_CKPT_DATA_HEADER_SIZE);
    uint64_t next_report = PROGRESS_EVERY;
    for (size_t i = 0; i < r->n_idx; i++) {
        const struct sv_ckpt_block_info *x = &r->idx[i];
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
        const struct sv_ckpt_block_info *x = &r->idx[mid];
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
    size_t used =
        sv_ckpt_entry_parse(b->data + it->pos, b->len - it->pos, skey, sklen, value, vlen);
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

int sv_ckpt_manifest_read(const char *dir, struct sv_ckpt_manifest *m, char *err, size_t errlen)
{
    struct sv_ckpt_reader r = {.fd = -1};
    memset(m, 0, sizeof(*m));
    r.manifest_path = path_join(dir, SV_CKPT_MANIFEST_FILE);
    int rc = r.manifest_path ? read_manifest_file(&r, m) : -ENOMEM;
    if (rc == 0 && (rc = check_dir_id(&r, m->checkpoint_id)))
        sv_ckpt_manifest_free(m);
    if (rc)
        copy_err(err, errlen, r.manifest_path ? r.errmsg : "out of memory");
    free(r.manifest_path);
    return rc;
}

/* --- chains ---------------------------------------------------------------- */

struct sv_ckpt_chain {
    struct sv_ckpt_manifest m; /* the MANIFEST */
    size_t n;
    struct sv_ckpt_reader **files; /* oldest first; files[n - 1] is the checkpoint's own */
    char **paths;
    struct sv_ckpt_reader *v1; /* a version-1 checkpoint: its one reader */
    char errmsg[ERRMSG_LEN];
};

/* The directory that holds dir (dir without its last component). */
static char *parent_dir(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n > 0 && dir[n - 1] != '/')
        n--;
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0)
        return strdup(".");
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, dir, n);
        p[n] = '\0';
    }
    return p;
}

int sv_ckpt_chain_open(const char *dir, struct sv_ckpt_chain **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_ckpt_chain *c = calloc(1, sizeof(*c));
    struct sv_ckpt_reader *r = NULL;
    char *parent = NULL;
    if (!c) {
        copy_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* The checkpoint's own MANIFEST and file first: a version-1 checkpoint
     * is then complete. */
    int rc = sv_ckpt_open(dir, &r, c->errmsg, sizeof(c->errmsg));
    if (rc)
        goto fail;
    if (!r->has_top) {
        c->v1 = r;
        c->n = 1;
        c->files = calloc(1, sizeof(*c->files));
        c->paths = calloc(1, sizeof(*c->paths));
        if (!c->files || !c->paths || !(c->paths[0] = strdup(r->data_path))) {
            rc = berr(c->errmsg, -ENOMEM, "out of memory");
            goto fail;
        }
        c->files[0] = r;
        c->m = r->m;
        memset(&r->m, 0, sizeof(r->m));
        r->m = c->m; /* shared: the reader's copy is freed with it, c->m never */
        *out = c;
        return 0;
    }
    c->m = r->top;
    memset(&r->top, 0, sizeof(r->top));
    r->has_top = 0;
    c->n = c->m.n_links;
    c->files = calloc(c->n, sizeof(*c->files));
    c->paths = calloc(c->n, sizeof(*c->paths));
    parent = parent_dir(dir);
    if (!c->files || !c->paths || !parent) {
        rc = berr(c->errmsg, -ENOMEM, "out of memory");
        goto fail;
    }
    c->files[c->n - 1] = r;
    r = NULL;
    if (!(c->paths[c->n - 1] = strdup(c->files[c->n - 1]->data_path))) {
        rc = berr(c->errmsg, -ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i + 1 < c->n; i++) {
        char *path = path_join(parent, c->m.links[i].file);
        if (!path) {
            rc = berr(c->errmsg, -ENOMEM, "out of memory");
            goto fail;
        }
        c->paths[i] = path;
        if ((rc = open_link(&c->m, i, path, &c->files[i], c->errmsg, sizeof(c->errmsg))))
            goto fail;
    }
    free(parent);
    *out = c;
    return 0;
fail:
    copy_err(err, errlen, c->errmsg);
    sv_ckpt_close(r);
    free(parent);
    sv_ckpt_chain_close(c);
    return rc;
}

void sv_ckpt_chain_close(struct sv_ckpt_chain *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->files && i < c->n; i++) {
        sv_ckpt_close(c->files[i]);
        if (c->paths)
            free(c->paths[i]);
    }
    free(c->files);
    free(c->paths);
    if (!c->v1)
        sv_ckpt_manifest_free(&c->m);
    free(c);
}

const struct sv_ckpt_manifest *sv_ckpt_chain_manifest(const struct sv_ckpt_chain *c)
{
    return &c->m;
}

size_t sv_ckpt_chain_length(const struct sv_ckpt_chain *c)
{
    return c->n;
}

const char *sv_ckpt_chain_path(const struct sv_ckpt_chain *c, size_t i)
{
    return i < c->n ? c->paths[i] : NULL;
}

struct sv_ckpt_reader *sv_ckpt_chain_file(const struct sv_ckpt_chain *c, size_t i)
{
    return i < c->n ? c->files[i] : NULL;
}

const char *sv_ckpt_chain_errmsg(const struct sv_ckpt_chain *c)
{
    return c->errmsg;
}

/* Index of state `name` in a file's states (sorted, checked), or -1. */
static long file_state(const struct sv_ckpt_manifest *m, const char *name)
{
    size_t lo = 0, hi = m->n_states;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(m->states[mid].name, name);
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The links a state's entries come from: from the newest back to the first
 * that resets it (a full link resets every state), and not past a link
 * that does not list it (it did not exist then). *oldest is the first of
 * them; 0 when the state is not in the newest link (not at the cut). */
static int state_run(const struct sv_ckpt_chain *c, const char *name, size_t *oldest)
{
    size_t i = c->n;
    while (i > 0) {
        const struct sv_ckpt_manifest *m = &c->files[i - 1]->m;
        long k = file_state(m, name);
        if (k < 0)
            break;
        i--;
        if (!m->incremental || m->states[k].reset)
            break;
    }
    *oldest = i;
    return i < c->n;
}

int sv_ckpt_chain_kg_has(const struct sv_ckpt_chain *c, const char *name, uint32_t kg)
{
    size_t oldest;
    if (!state_run(c, name, &oldest))
        return 0;
    for (size_t i = oldest; i < c->n; i++) {
        long k = file_state(&c->files[i]->m, name);
        if (k >= 0 && sv_ckpt_kg_entries(c->files[i], (size_t)k, kg))
            return 1;
    }
    return 0;
}

struct chain_head {
    struct sv_ckpt_iter *it;
    int live; /* has an entry in k/v */
    int advance;
    int v2; /* an empty value is a tombstone (in version 1 it is just bad data) */
    const uint8_t *k, *v;
    size_t kl, vl;
};

struct sv_ckpt_chain_iter {
    struct sv_ckpt_chain *c;
    size_t n;
    struct chain_head *h; /* h[n - 1] is the newest */
    int err;
    /* The smallest of the newer links' heads (h[1..n-1]; of equal keys the
     * newest), NULL if none is live; valid until one of them advances. */
    struct chain_head *newer_min;
    int newer_stale;
};

int sv_ckpt_chain_iter_open(struct sv_ckpt_chain *c, const char *name, uint32_t kg_first,
                            uint32_t kg_last, struct sv_ckpt_chain_iter **out)
{
    *out = NULL;
    struct sv_ckpt_chain_iter *it = calloc(1, sizeof(*it));
    if (!it || !(it->h = calloc(c->n, sizeof(*it->h)))) {
        free(it);
        return berr(c->errmsg, -ENOMEM, "out of memory");
    }
    it->c = c;
    size_t oldest;
    if (!state_run(c, name, &oldest)) {
        *out = it; /* no such state: no entries */
        return 0;
    }
    for (size_t i = oldest; i < c->n; i++) {
        struct sv_ckpt_reader *r = c->files[i];
        long k = file_state(&r->m, name);
        struct chain_head *h = &it->h[it->n++];
        if (k < 0 || r->m.states[k].entries == 0)
            continue;
        int rc = sv_ckpt_iter_open(r, (size_t)k, kg_first, kg_last, &h->it);
        if (rc) {
            berr(c->errmsg, rc, "%s", r->errmsg);
            sv_ckpt_chain_iter_close(it);
            return rc;
        }
        h->advance = 1;
        h->v2 = r->m.format_version == SV_CKPT_FORMAT_V2;
    }
    *out = it;
    return 0;
}

/* A merge of the links' entries: the smallest key next; of equal keys the
 * newest link's, which, if it is a tombstone, hides the key. The oldest
 * link (h[0], a full file) holds nearly every entry and the newer ones are
 * small: the smallest of the newer heads is kept, so an entry of h[0]
 * alone costs one comparison, and the newer heads are looked at again only
 * when one of them moves. */
int sv_ckpt_chain_iter_next(struct sv_ckpt_chain_iter *it, const uint8_t **skey, size_t *sklen,
                            const uint8_t **value, size_t *vlen)
{
    if (it->err)
        return it->err;
    for (;;) {
        for (size_t i = 0; i < it->n; i++) {
            struct chain_head *h = &it->h[i];
            if (!h->advance)
                continue;
            h->advance = 0;
            int rc = sv_ckpt_iter_next(h->it, &h->k, &h->kl, &h->v, &h->vl);
            if (rc < 0) {
                struct sv_ckpt_reader *r = it->c->files[it->c->n - it->n + i];
                berr(it->c->errmsg, rc, "%s", r->errmsg);
                return it->err = rc;
            }
            h->live = rc == 1;
            if (i > 0)
                it->newer_stale = 1;
        }
        if (it->newer_stale) {
            it->newer_stale = 0;
            it->newer_min = NULL;
            for (size_t i = it->n; i-- > 1;) { /* newest first: it wins a tie */
                struct chain_head *h = &it->h[i];
                if (h->live && (!it->newer_min ||
                                sv_skey_cmp(h->k, h->kl, it->newer_min->k, it->newer_min->kl) < 0))
                    it->newer_min = h;
            }
        }
        struct chain_head *base = &it->h[0], *nm = it->newer_min, *win;
        int c = !base->live ? 1 : !nm ? -1 : sv_skey_cmp(base->k, base->kl, nm->k, nm->kl);
        if (c < 0) {
            win = base; /* the common case: the full file's entry alone */
            base->advance = 1;
        } else if (!nm) {
            return 0; /* every link is done */
        } else {
            /* A newer link's: it and every head with the same key move on. */
            win = nm;
            if (c == 0)
                base->advance = 1;
            for (size_t i = 1; i < it->n; i++) {
                struct chain_head *h = &it->h[i];
                if (h->live && (h == nm || sv_skey_cmp(h->k, h->kl, nm->k, nm->kl) == 0))
                    h->advance = 1;
            }
        }
        if (win->vl == 0 && win->v2)
            continue; /* deleted */
        *skey = win->k;
        *sklen = win->kl;
        *value = win->v;
        *vlen = win->vl;
        return 1;
    }
}

void sv_ckpt_chain_iter_close(struct sv_ckpt_chain_iter *it)
{
    if (!it)
        return;
    for (size_t i = 0; i < it->n; i++)
        sv_ckpt_iter_close(it->h[i].it);
    free(it->h);
    free(it);
}

int sv_ckpt_chain_verify(struct sv_ckpt_chain *c, int merge, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < c->n && !rc; i++)
        if ((rc = sv_ckpt_verify(c->files[i], NULL, NULL, c->errmsg, sizeof(c->errmsg))))
            goto out;
    if (!merge || c->m.format_version == SV_CKPT_FORMAT_V1)
        goto out;
    /* The merge must come to the live entries the MANIFEST counted at the
     * cut, state by state. */
    for (size_t s = 0; s < c->m.n_states && !rc; s++) {
        struct sv_ckpt_chain_iter *it;
        if ((rc =
                 sv_ckpt_chain_iter_open(c, c->m.states[s].name, c->m.kg_first, c->m.kg_last, &it)))
            goto out;
        const uint8_t *k, *v;
        size_t kl, vl;
        uint64_t n = 0;
        while ((rc = sv_ckpt_chain_iter_next(it, &k, &kl, &v, &vl)) == 1)
            n++;
        sv_ckpt_chain_iter_close(it);
        if (rc == 0 && n != c->m.states[s].entries)
            rc = berr(c->errmsg, SV_ECORRUPT,
                      "%s: state %s: the chain's %zu files merge to %llu entries, the "
                      "MANIFEST says %llu",
                      c->paths[c->n - 1], c->m.states[s].name, c->n, (unsigned long long)n,
                      (unsigned long long)c->m.states[s].entries);
    }
out:
    if (rc)
        copy_err(err, errlen, c->errmsg);
    return rc;
}
