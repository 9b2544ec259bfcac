/* Fetching remote checkpoints. See sv_ckpt_remote.h. */
#include "sv_ckpt_remote.h"
#include "sv_ckpt.h"
#include "sv_error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN 4352
#define KEY_LEN (SV_S3_KEY_MAX + 64)

int sv_ckpt_remote_split(const char *path, char *parent, size_t cap, uint64_t *id)
{
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    char *end;
    if (strncmp(last, "chk-", 4) || last[4] < '1' || last[4] > '9')
        return SV_EINVAL;
    errno = 0;
    *id = strtoull(last + 4, &end, 10);
    if (*end || errno)
        return SV_EINVAL;
    size_t pl = (size_t)(last - path);
    pl = pl ? pl - 1 : 0;
    if (pl >= cap)
        return SV_EINVAL;
    memcpy(parent, path, pl);
    parent[pl] = '\0';
    return 0;
}

static void object_key(char *out, size_t cap, const char *parent, uint64_t id, const char *file)
{
    snprintf(out, cap, "%s%schk-%" PRIu64 "/%s", parent, parent[0] ? "/" : "", id, file);
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST)
        return 0;
    int rc = -errno;
    snprintf(err, errlen, "cannot create %.300s: %s", path, strerror(errno));
    return rc;
}

/* PARENT/chk-<id>/MANIFEST into dir/chk-<id>/ (its path to cdir), read
 * and checked into *m; its size to *size. */
static int fetch_manifest(struct sv_s3 *s, const char *parent, uint64_t id, const char *dir,
                          char *cdir, size_t ccap, struct sv_ckpt_manifest *m, uint64_t *size,
                          char *err, size_t errlen)
{
    char key[KEY_LEN], path[PATH_LEN], e[600];
    const char *bucket = sv_s3_bucket(s);
    snprintf(cdir, ccap, "%.4000s/chk-%" PRIu64, dir, id);
    int rc = make_dir(cdir, err, errlen);
    if (rc)
        return rc;
    object_key(key, sizeof(key), parent, id, SV_CKPT_MANIFEST_FILE);
    snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, cdir);
    rc = sv_s3_get_file(s, key, path, SV_CKPT_MANIFEST_MAX, 0, size, e, sizeof(e));
    if (rc == SV_ENOTFOUND) {
        snprintf(err, errlen, "s3://%s/%.1100s: no such checkpoint (no MANIFEST in the store)",
                 bucket, key);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "%s", e);
        return rc;
    }
    if (sv_ckpt_manifest_read(cdir, m, e, sizeof(e))) {
        snprintf(err, errlen, "s3://%s/%.1100s: %s", bucket, key, e);
        return SV_ECORRUPT;
    }
    return 0;
}

/* Every data file m names, whole. */
static int fetch_files(struct sv_s3 *s, const char *parent, uint64_t id, const char *dir,
                       const struct sv_ckpt_manifest *m, char *err, size_t errlen)
{
    char key[KEY_LEN], path[PATH_LEN], e[600];
    size_t nl = m->n_links ? m->n_links : 1;
    int rc = 0;
    for (size_t l = 0; l < nl && !rc; l++) {
        uint64_t lid = m->n_links ? m->links[l].checkpoint_id : id;
        uint64_t size = m->n_links ? m->links[l].data_bytes : m->data_bytes;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64, dir, lid);
        if ((rc = make_dir(path, err, errlen)))
            break;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, dir, lid);
        object_key(key, sizeof(key), parent, lid, SV_CKPT_DATA_FILE);
        rc = sv_s3_get_file(s, key, path, size, 1, NULL, e, sizeof(e));
        if (rc == SV_ENOTFOUND) {
            snprintf(err, errlen, "s3://%s/%.1100s: missing (the MANIFEST names it)",
                     sv_s3_bucket(s), key);
            rc = SV_ECORRUPT;
        } else if (rc) {
            snprintf(err, errlen, "%s", e);
        }
    }
    return rc;
}

int sv_ckpt_remote_fetch(struct sv_s3 *s, const char *parent, uint64_t id, const char *dir,
                         char *out, size_t cap, char *err, size_t errlen)
{
    char cdir[PATH_LEN];
    struct sv_ckpt_manifest m;
    uint64_t size;
    int rc = fetch_manifest(s, parent, id, dir, cdir, sizeof(cdir), &m, &size, err, errlen);
    if (rc)
        return rc;
    rc = fetch_files(s, parent, id, dir, &m, err, errlen);
    sv_ckpt_manifest_free(&m);
    if (!rc)
        snprintf(out, cap, "%s", cdir);
    return rc;
}

/* Reads back len bytes at off of fd into a new buffer. */
static int read_back(int fd, uint64_t off, size_t len, uint8_t **out)
{
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return -ENOMEM;
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(fd, b + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(b);
            return -EIO;
        }
        got += (size_t)n;
    }
    *out = b;
    return 0;
}

/* Link l of m as a sparse local file: header, footer, index, and the runs
 * of blocks in first..last. */
static int fetch_link_range(struct sv_s3 *s, const struct sv_ckpt_manifest *m, size_t l,
                            const char *key, const char *path, uint32_t first, uint32_t last,
                            uint64_t *fetched, char *err, size_t errlen)
{
    const char *bucket = sv_s3_bucket(s);
    uint64_t size = m->links[l].data_bytes, have_size, have_xxh3;
    int has_xxh3;
    char e[600], why[256];
    int rc = sv_s3_head(s, key, &have_size, &have_xxh3, &has_xxh3, e, sizeof(e));
    if (rc == SV_ENOTFOUND) {
        snprintf(err, errlen, "s3://%s/%.1100s: missing (the MANIFEST names it)", bucket, key);
        return SV_ECORRUPT;
    }
    if (rc) {
        snprintf(err, errlen, "%s", e);
        return rc;
    }
    if (have_size != size || !has_xxh3 || have_xxh3 != m->links[l].data_xxh3) {
        snprintf(err, errlen,
                 "s3://%s/%.1100s: %" PRIu64 " bytes%s, not the file the MANIFEST names (%" PRIu64
                 " bytes, XXH3 %016" PRIx64 ")",
                 bucket, key, have_size, has_xxh3 ? " of another XXH3" : " without an XXH3", size,
                 m->links[l].data_xxh3);
        return SV_ECORRUPT;
    }
    if (size < SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE) {
        snprintf(err, errlen, "s3://%s/%.1100s: too short for a data file", bucket, key);
        return SV_ECORRUPT;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %.300s: %s", path, strerror(errno));
        return rc;
    }
    struct sv_ckpt_manifest lm;
    int have_lm = 0;
    uint8_t *foot = NULL, *index = NULL;
    struct sv_ckpt_block_info *recs = NULL;
    struct sv_ckpt_footer f;
    if (ftruncate(fd, (off_t)size)) {
        rc = -errno;
        snprintf(err, errlen, "cannot size %.300s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = sv_s3_get_range(s, key, 0, SV_CKPT_DATA_HEADER_SIZE, fd, err, errlen)) ||
        (rc = sv_s3_get_range(s, key, size - SV_CKPT_FOOTER_SIZE, SV_CKPT_FOOTER_SIZE, fd, err,
                              errlen)))
        goto out;
    *fetched += SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE;
    if ((rc = read_back(fd, size - SV_CKPT_FOOTER_SIZE, SV_CKPT_FOOTER_SIZE, &foot)))
        goto io;
    if ((rc = sv_ckpt_footer_decode(foot, size, &f, why, sizeof(why))))
        goto corrupt;
    if ((rc = sv_s3_get_range(s, key, f.index_offset, f.index_len, fd, err, errlen)))
        goto out;
    *fetched += f.index_len;
    if ((rc = read_back(fd, f.index_offset, (size_t)f.index_len, &index)))
        goto io;
    if ((rc = sv_ckpt_link_manifest(m, l, &lm)))
        goto io;
    have_lm = 1;
    if ((rc = sv_ckpt_index_decode(index, &f, &lm, &recs, why, sizeof(why))))
        goto corrupt;
    /* Runs of adjacent blocks in the range (records are in file order). */
    for (uint64_t i = 0; i < f.index_count;) {
        if (recs[i].kg < first || recs[i].kg > last) {
            i++;
            continue;
        }
        uint64_t from = recs[i].offset, to = from;
        while (i < f.index_count && recs[i].kg >= first && recs[i].kg <= last &&
               recs[i].offset == to) {
            to = recs[i].offset + SV_CKPT_BLOCK_HEADER_SIZE + recs[i].stored;
            i++;
        }
        if ((rc = sv_s3_get_range(s, key, from, to - from, fd, err, errlen)))
            goto out;
        *fetched += to - from;
    }
    if (fsync(fd)) {
        rc = -errno;
        snprintf(err, errlen, "fsync of %.300s: %s", path, strerror(errno));
    }
    goto out;
corrupt:
    snprintf(err, errlen, "s3://%s/%.1100s: %s", bucket, key, why);
    goto out;
io:
    snprintf(err, errlen, "%.300s: %s", path, sv_strerror(rc));
out:
    if (have_lm)
        sv_ckpt_manifest_free(&lm);
    free(foot);
    free(index);
    free(recs);
    close(fd);
    if (rc)
        unlink(path);
    return rc;
}

int sv_ckpt_remote_fetch_range(struct sv_s3 *s, const char *parent, uint64_t id, uint32_t first,
                               uint32_t last, const char *dir, char *out, size_t cap,
                               uint64_t *fetched, uint64_t *total, char *err, size_t errlen)
{
    char key[KEY_LEN], path[PATH_LEN], cdir[PATH_LEN];
    struct sv_ckpt_manifest m;
    uint64_t msize = 0;
    int rc = fetch_manifest(s, parent, id, dir, cdir, sizeof(cdir), &m, &msize, err, errlen);
    if (rc)
        return rc;
    uint64_t got = msize, all = msize;
    if (!m.n_links) { /* version 1: one file, fetched whole */
        rc = fetch_files(s, parent, id, dir, &m, err, errlen);
        got = all = msize + m.data_bytes;
    }
    for (size_t l = 0; l < m.n_links && !rc; l++) {
        uint64_t lid = m.links[l].checkpoint_id;
        all += m.links[l].data_bytes;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64, dir, lid);
        if ((rc = make_dir(path, err, errlen)))
            break;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, dir, lid);
        object_key(key, sizeof(key), parent, lid, SV_CKPT_DATA_FILE);
        rc = fetch_link_range(s, &m, l, key, path, first, last, &got, err, errlen);
    }
    sv_ckpt_manifest_free(&m);
    if (fetched)
        *fetched = got;
    if (total)
        *total = all;
    if (!rc)
        snprintf(out, cap, "%s", cdir);
    return rc;
}

void sv_ckpt_remote_names(char *msg, size_t cap, const char *dir, const char *url_parent)
{
    size_t dl = strlen(dir), ul = strlen(url_parent);
    char out[2048];
    size_t o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof(out);) {
        if (dl && strncmp(p, dir, dl) == 0 && o + ul + 1 < sizeof(out)) {
            memcpy(out + o, url_parent, ul);
            o += ul;
            p += dl;
        } else {
            out[o++] = *p++;
        }
    }
    if (o >= cap)
        o = cap - 1;
    memcpy(msg, out, o);
    msg[o] = '\0';
}
