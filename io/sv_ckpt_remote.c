/* Fetching remote checkpoints. See sv_ckpt_remote.h. */
#include "sv_ckpt_remote.h"
#include "sv_ckpt.h"
#include "sv_error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int sv_ckpt_remote_fetch(struct sv_s3 *s, const char *parent, uint64_t id, const char *dir,
                         char *out, size_t cap, char *err, size_t errlen)
{
    char key[KEY_LEN], path[PATH_LEN], cdir[PATH_LEN], e[600];
    const char *bucket = sv_s3_bucket(s);
    snprintf(cdir, sizeof(cdir), "%.4000s/chk-%" PRIu64, dir, id);
    int rc = make_dir(cdir, err, errlen);
    if (rc)
        return rc;
    object_key(key, sizeof(key), parent, id, SV_CKPT_MANIFEST_FILE);
    snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, cdir);
    rc = sv_s3_get_file(s, key, path, SV_CKPT_MANIFEST_MAX, 0, NULL, e, sizeof(e));
    if (rc == SV_ENOTFOUND) {
        snprintf(err, errlen, "s3://%s/%.1100s: no such checkpoint (no MANIFEST in the store)",
                 bucket, key);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "%s", e);
        return rc;
    }
    struct sv_ckpt_manifest m;
    if ((rc = sv_ckpt_manifest_read(cdir, &m, e, sizeof(e)))) {
        snprintf(err, errlen, "s3://%s/%.1100s: %s", bucket, key, e);
        return SV_ECORRUPT;
    }
    size_t nl = m.n_links ? m.n_links : 1;
    for (size_t l = 0; l < nl && !rc; l++) {
        uint64_t lid = m.n_links ? m.links[l].checkpoint_id : id;
        uint64_t size = m.n_links ? m.links[l].data_bytes : m.data_bytes;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64, dir, lid);
        if ((rc = make_dir(path, err, errlen)))
            break;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, dir, lid);
        object_key(key, sizeof(key), parent, lid, SV_CKPT_DATA_FILE);
        rc = sv_s3_get_file(s, key, path, size, 1, NULL, e, sizeof(e));
        if (rc == SV_ENOTFOUND) {
            snprintf(err, errlen, "s3://%s/%.1100s: missing (the MANIFEST names it)", bucket, key);
            rc = SV_ECORRUPT;
        } else if (rc) {
            snprintf(err, errlen, "%s", e);
        }
    }
    sv_ckpt_manifest_free(&m);
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
