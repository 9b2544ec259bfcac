/* Remote checkpoints: the upload thread, the credentials, fetching for a
 * restore. See remote.h for the rules. */
#include "remote.h"
#include "fsutil.h"
#include "sv_ckpt.h"
#include "sv_ckpt_remote.h"
#include "sv_error.h"
#include "sv_log.h"
#include "sv_s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MARKER_FILE "REMOTE"
#define PATH_LEN 4352
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
#define REQUEST_RETRIES 2
#define REMOTE_ROOTS_MAX 16

struct item {
    uint64_t id;
    uint64_t created_ms; /* wall clock, for the upload lag */
    enum sv_remote_state state;
    unsigned attempts;
    uint64_t next_try_ms; /* monotonic */
    char err[384];
};

struct event {
    struct event *next;
    uint64_t id;
    int rc;
    char url[SV_PATH_MAX + 128];
    char msg[512];
};

struct sv_remote {
    const struct sv_config *cfg;
    struct sv_s3 *s3;
    char bucket[64];
    char prefix[SV_PATH_MAX];      /* the job's prefix ("" for the bucket's root) */
    char node_prefix[SV_PATH_MAX]; /* PREFIX/NODE */
    /* restore_remote_roots: further prefixes of the bucket restore reads */
    char roots[REMOTE_ROOTS_MAX][SV_PATH_MAX];
    size_t n_roots;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *items;
    size_t n, cap;
    struct event *ev_head, *ev_tail;
    uv_async_t async;
    int async_open;
    sv_remote_done_fn done;
    void *ud;
    atomic_int cancel;
    int stop;
    atomic_uint_fast64_t highest;
    uint64_t completed, failures, last_remote_id;
    uint64_t uploading;
    char last_error[512];
};

const char *sv_remote_state_name(enum sv_remote_state st)
{
    static const char *const names[SV_REMOTE_STATE_MAX] = {"none", "local", "uploading", "remote"};
    return st < SV_REMOTE_STATE_MAX ? names[st] : "?";
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- credentials ------------------------------------------------------------ */

/* Trims blanks at both ends in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* s3_credentials_file: `aws_access_key_id = ...` and `aws_secret_access_key
 * = ...` lines (the AWS credentials file's names; `access_key` and
 * `secret_key` too), '#' or ';' comments, [section] lines ignored. Not
 * readable by others, as auth_token_file. */
static int load_credentials(const struct sv_config *cfg, char *access, size_t acap, char *secret,
                            size_t scap, char *err, size_t errlen)
{
    const char *path = cfg->s3_credentials_file;
    access[0] = secret[0] = '\0';
    if (!path[0]) {
        const char *a = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY");
        if (!a || !*a || !s || !*s || strlen(a) >= acap || strlen(s) >= scap) {
            snprintf(err, errlen,
                     "checkpoint_remote is set but there are no credentials: set "
                     "s3_credentials_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                     "environment");
            return SV_EINVAL;
        }
        snprintf(access, acap, "%s", a);
        snprintf(secret, scap, "%s", s);
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "s3_credentials_file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077)) {
        fclose(f);
        snprintf(err, errlen, "s3_credentials_file %s is readable by others (mode %04o); use 0600",
                 path, (unsigned)(st.st_mode & 0777));
        return SV_EINVAL;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#' || *l == ';' || *l == '[')
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            snprintf(err, errlen, "s3_credentials_file %s:%d: expected 'name = value'", path,
                     lineno);
            rc = SV_EINVAL;
            break;
        }
        *eq = '\0';
        char *name = trim(l), *value = trim(eq + 1);
        char *dst = NULL;
        size_t cap = 0;
        if (!strcmp(name, "aws_access_key_id") || !strcmp(name, "access_key"))
            dst = access, cap = acap;
        else if (!strcmp(name, "aws_secret_access_key") || !strcmp(name, "secret_key"))
            dst = secret, cap = scap;
        if (dst && (strlen(value) == 0 || strlen(value) >= cap)) {
            snprintf(err, errlen, "s3_credentials_file %s:%d: %s is empty or too long", path,
                     lineno, name);
            rc = SV_EINVAL;
        } else if (dst) {
            memcpy(dst, value, strlen(value) + 1);
        }
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    if (!rc && (!access[0] || !secret[0])) {
        snprintf(err, errlen,
                 "s3_credentials_file %s: needs aws_access_key_id and "
                 "aws_secret_access_key",
                 path);
        rc = SV_EINVAL;
    }
    return rc;
}

/* --- the table of checkpoints ---------------------------------------------- */

static struct item *find_item(struct sv_remote *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id)
            return &r->items[i];
    return NULL;
}

/* Adds (or finds) id, with the lock held. */
static struct item *add_item(struct sv_remote *r, uint64_t id, uint64_t created_ms)
{
    struct item *it = find_item(r, id);
    if (it)
        return it;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        struct item *p = realloc(r->items, cap * sizeof(*p));
        if (!p)
            return NULL;
        r->items = p;
        r->cap = cap;
    }
    it = &r->items[r->n++];
    memset(it, 0, sizeof(*it));
    it->id = id;
    it->created_ms = created_ms;
    it->state = SV_REMOTE_LOCAL;
    return it;
}

static void remove_item(struct sv_remote *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].id == id) {
            r->items[i] = r->items[--r->n];
            return;
        }
}

static void url_of(const struct sv_remote *r, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap,
             "s3://%s/%s/"
             "chk-%" PRIu64,
             r->bucket, r->node_prefix, id);
}

/* --- uploading one checkpoint ------------------------------------------------ */

/* Uploads the file at path to key unless the store has it already (same
 * size and XXH3). An object of other content is never overwritten. */
static int upload_file(struct sv_remote *r, const char *key, const char *path, uint64_t size,
                       uint64_t xxh3, const void *buf, char *err, size_t errlen)
{
    uint64_t have_size, have_xxh3;
    int has_xxh3;
    int rc = sv_s3_head(r->s3, key, &have_size, &have_xxh3, &has_xxh3, err, errlen);
    if (rc == 0) {
        if (has_xxh3 && have_xxh3 == xxh3 && have_size == size)
            return 0; /* uploaded before: by an earlier checkpoint of the chain, or try */
        snprintf(err, errlen,
                 "s3://%s/%s exists with other content (%" PRIu64 " bytes); it is not "
                 "overwritten: does another sidecar write under the same prefix? (set "
                 "checkpoint_remote_node)",
                 r->bucket, key, have_size);
        return SV_EINVAL;
    }
    if (rc != SV_ENOTFOUND)
        return rc;
    if (buf)
        return sv_s3_put_buf(r->s3, key, buf, (size_t)size, xxh3, err, errlen);
    return sv_s3_put_file(r->s3, key, path, size, xxh3, err, errlen);
}

/* Reads a whole small file (the MANIFEST). */
static int read_small(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) || st.st_size < 0 || (uint64_t)st.st_size > max) {
        close(fd);
        return SV_ETOOLARGE;
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return b ? -EIO : -ENOMEM;
    }
    *out = b;
    *len = got;
    return 0;
}

/* Writes dir/REMOTE (the URL): the checkpoint is remote, for a restart. */
static void write_marker(const char *dir, const char *url)
{
    char tmp[PATH_LEN], path[PATH_LEN];
    snprintf(tmp, sizeof(tmp), "%.4200s/" MARKER_FILE ".tmp", dir);
    snprintf(path, sizeof(path), "%.4200s/" MARKER_FILE, dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return; /* the checkpoint was removed meanwhile: nothing to mark */
    size_t n = strlen(url);
    int ok = write(fd, url, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (ok && rename(tmp, path) == 0)
        sv_fs_fsync_dir(dir);
    else
        unlink(tmp);
}

static int upload_checkpoint(struct sv_remote *r, uint64_t id, char *err, size_t errlen)
{
    const char *cdir = r->cfg->checkpoint_dir;
    char dir[PATH_LEN], path[PATH_LEN], key[SV_PATH_MAX + 64], url[SV_PATH_MAX + 128];
    snprintf(dir, sizeof(dir), "%.4000s/chk-%" PRIu64, cdir, id);
    struct sv_ckpt_manifest m;
    char merr[512];
    snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
    if (access(path, F_OK)) {
        snprintf(err, errlen, "chk-%" PRIu64 " is no longer here", id);
        return SV_ENOTFOUND;
    }
    int rc = sv_ckpt_manifest_read(dir, &m, merr, sizeof(merr));
    if (rc) {
        snprintf(err, errlen, "%s", merr);
        return rc;
    }
    size_t nl = m.n_links ? m.n_links : 1;
    for (size_t l = 0; l < nl && !rc; l++) {
        uint64_t lid = m.n_links ? m.links[l].checkpoint_id : id;
        uint64_t size = m.n_links ? m.links[l].data_bytes : m.data_bytes;
        uint64_t xxh = m.n_links ? m.links[l].data_xxh3 : m.data_xxh3;
        snprintf(path, sizeof(path), "%.4000s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, cdir, lid);
        snprintf(key, sizeof(key), "%s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, r->node_prefix, lid);
        rc = upload_file(r, key, path, size, xxh, NULL, err, errlen);
    }
    sv_ckpt_manifest_free(&m);
    if (rc)
        return rc;
    /* The MANIFEST last: the remote checkpoint exists from here on. */
    char *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
    if ((rc = read_small(path, SV_CKPT_MANIFEST_MAX, &buf, &len))) {
        snprintf(err, errlen, "cannot read %.300s: %s", path, sv_strerror(rc));
        return rc;
    }
    snprintf(key, sizeof(key), "%s/chk-%" PRIu64 "/" SV_CKPT_MANIFEST_FILE, r->node_prefix, id);
    rc = upload_file(r, key, NULL, len, XXH3_64bits(buf, len), buf, err, errlen);
    free(buf);
    if (rc)
        return rc;
    url_of(r, id, url, sizeof(url));
    write_marker(dir, url);
    return 0;
}

/* --- remote retention --------------------------------------------------------- */

struct listing {
    struct sv_remote *r;
    uint64_t *manifests, *datas;
    size_t nm, nd, cm, cd;
};

static int push_id(uint64_t **a, size_t *n, size_t *cap, uint64_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        uint64_t *p = realloc(*a, c * sizeof(*p));
        if (!p)
            return -ENOMEM;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = id;
    return 0;
}

/* NODE/chk-<id>/MANIFEST and NODE/chk-<id>/data, from a listing (the
 * store's answer is not trusted to hold only what was asked for). */
static int listing_cb(void *ud, const char *key, uint64_t size)
{
    (void)size;
    struct listing *l = ud;
    size_t pl = strlen(l->r->node_prefix);
    if (strncmp(key, l->r->node_prefix, pl) != 0 || key[pl] != '/')
        return 0;
    const char *p = key + pl + 1;
    char *end;
    if (strncmp(p, "chk-", 4) || p[4] < '1' || p[4] > '9')
        return 0;
    uint64_t id = strtoull(p + 4, &end, 10);
    if (strcmp(end, "/" SV_CKPT_MANIFEST_FILE) == 0)
        return push_id(&l->manifests, &l->nm, &l->cm, id);
    if (strcmp(end, "/" SV_CKPT_DATA_FILE) == 0)
        return push_id(&l->datas, &l->nd, &l->cd, id);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int has_id(const uint64_t *a, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == id)
            return 1;
    return 0;
}

/* The data files remote checkpoint id names, from its MANIFEST: the local
 * copy when this sidecar has it (marked remote: the same bytes), else the
 * store's, fetched into checkpoint_dir/.chk-remote.tmp (a leftover is
 * removed at start). */
static int remote_links(struct sv_remote *r, uint64_t id, uint64_t **named, size_t *nn, size_t *cap,
                        char *err, size_t errlen)
{
    char dir[PATH_LEN], marker[PATH_LEN], key[SV_PATH_MAX + 64], path[PATH_LEN];
    snprintf(dir, sizeof(dir), "%.4000s/chk-%" PRIu64, r->cfg->checkpoint_dir, id);
    snprintf(marker, sizeof(marker), "%.4200s/" MARKER_FILE, dir);
    snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
    int fetched = 0, rc;
    /* A retired local checkpoint keeps its marker but not its MANIFEST. */
    if (access(marker, F_OK) != 0 || access(path, F_OK) != 0) {
        snprintf(dir, sizeof(dir), "%.4000s/.chk-remote.tmp", r->cfg->checkpoint_dir);
        sv_fs_rm_rf(dir);
        if (mkdir(dir, 0750)) {
            rc = -errno;
            snprintf(err, errlen, "cannot create %.300s: %s", dir, strerror(errno));
            return rc;
        }
        fetched = 1;
        snprintf(key, sizeof(key), "%s/chk-%" PRIu64 "/" SV_CKPT_MANIFEST_FILE, r->node_prefix, id);
        snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
        if ((rc = sv_s3_get_file(r->s3, key, path, SV_CKPT_MANIFEST_MAX, 0, NULL, err, errlen))) {
            sv_fs_rm_rf(dir);
            return rc;
        }
    }
    struct sv_ckpt_manifest m;
    rc = sv_ckpt_manifest_read(dir, &m, err, errlen);
    if (fetched)
        sv_fs_rm_rf(dir);
    if (rc)
        return rc;
    size_t k = m.n_links ? m.n_links : 1;
    for (size_t l = 0; l < k && !rc; l++)
        rc = push_id(named, nn, cap, m.n_links ? m.links[l].checkpoint_id : id);
    sv_ckpt_manifest_free(&m);
    return rc;
}

/* Keeps the newest checkpoint_retain remote checkpoints of this sidecar:
 * the MANIFESTs of older ones go first (they are no checkpoints from then
 * on), then the data files no remaining MANIFEST names. A crash between
 * the two leaves only unnamed data, removed the next time; a MANIFEST that
 * cannot be read stops the data deletion (what it names is not known). */
static void remote_retention(struct sv_remote *r)
{
    struct listing l = {.r = r};
    uint64_t *named = NULL;
    size_t nn = 0, cap = 0, retain = r->cfg->checkpoint_retain, drop;
    char err[512], prefix[SV_PATH_MAX + 8], key[SV_PATH_MAX + 64];
    snprintf(prefix, sizeof(prefix), "%s/", r->node_prefix);
    int rc = sv_s3_list(r->s3, prefix, listing_cb, &l, err, sizeof(err));
    if (rc) {
        sv_warn("checkpoint_remote: retention: cannot list s3://%s/%s: %s", r->bucket, prefix,
                rc == -ENOMEM ? "out of memory" : err);
        goto out;
    }
    qsort(l.manifests, l.nm, sizeof(*l.manifests), cmp_u64);
    drop = l.nm > retain ? l.nm - retain : 0;
    for (size_t i = 0; i < drop; i++) {
        snprintf(key, sizeof(key), "%s/chk-%" PRIu64 "/" SV_CKPT_MANIFEST_FILE, r->node_prefix,
                 l.manifests[i]);
        if ((rc = sv_s3_delete(r->s3, key, err, sizeof(err)))) {
            sv_warn("checkpoint_remote: retention: %s", err);
            goto out;
        }
        sv_info("checkpoint_remote: removed s3://%s/%s/chk-%" PRIu64 " (checkpoint_retain = %zu)",
                r->bucket, r->node_prefix, l.manifests[i], retain);
    }
    for (size_t i = drop; i < l.nm; i++) {
        if ((rc = remote_links(r, l.manifests[i], &named, &nn, &cap, err, sizeof(err)))) {
            sv_warn("checkpoint_remote: retention keeps every data file (chk-%" PRIu64 "): %s",
                    l.manifests[i], err);
            goto out;
        }
    }
    for (size_t i = 0; i < l.nd; i++) {
        if (has_id(named, nn, l.datas[i]))
            continue;
        snprintf(key, sizeof(key), "%s/chk-%" PRIu64 "/" SV_CKPT_DATA_FILE, r->node_prefix,
                 l.datas[i]);
        if (sv_s3_delete(r->s3, key, err, sizeof(err)))
            sv_warn("checkpoint_remote: retention: %s", err);
    }
out:
    free(named);
    free(l.manifests);
    free(l.datas);
}

/* --- the thread ------------------------------------------------------------- */

static void push_event(struct sv_remote *r, uint64_t id, int rc, const char *msg)
{
    struct event *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->id = id;
    e->rc = rc;
    url_of(r, id, e->url, sizeof(e->url));
    snprintf(e->msg, sizeof(e->msg), "%s", msg ? msg : "");
    if (r->ev_tail)
        r->ev_tail->next = e;
    else
        r->ev_head = e;
    r->ev_tail = e;
}

static int highest_cb(void *ud, const char *key, uint64_t size)
{
    (void)size;
    struct sv_remote *r = ud;
    size_t pl = strlen(r->node_prefix);
    /* The store's answer is not trusted to hold only what was asked for. */
    if (strncmp(key, r->node_prefix, pl) != 0 || key[pl] != '/')
        return 0;
    const char *p = key + pl + 1, *slash = strchr(p, '/');
    if (strncmp(p, "chk-", 4) || !slash || strcmp(slash, "/" SV_CKPT_MANIFEST_FILE))
        return 0;
    char *end;
    uint64_t id = strtoull(p + 4, &end, 10);
    if (end == slash && id > atomic_load(&r->highest))
        atomic_store(&r->highest, id);
    return 0;
}

static void *upload_thread(void *arg)
{
    struct sv_remote *r = arg;
    char err[512], listprefix[SV_PATH_MAX + 8];
    snprintf(listprefix, sizeof(listprefix), "%s/", r->node_prefix);
    if (sv_s3_list(r->s3, listprefix, highest_cb, r, err, sizeof(err)))
        sv_warn("checkpoint_remote: cannot list s3://%s/%s: %s", r->bucket, listprefix, err);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        struct item *next = NULL;
        uint64_t now = mono_ms(), wake = UINT64_MAX;
        for (size_t i = 0; i < r->n; i++) {
            struct item *it = &r->items[i];
            if (it->state != SV_REMOTE_LOCAL)
                continue;
            if (it->next_try_ms <= now) {
                if (!next || it->id < next->id)
                    next = it;
            } else if (it->next_try_ms < wake) {
                wake = it->next_try_ms;
            }
        }
        if (r->stop)
            break;
        if (!next) {
            if (wake == UINT64_MAX) {
                pthread_cond_wait(&r->cv, &r->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t ms = wake - now;
                ts.tv_sec += (time_t)(ms / 1000);
                ts.tv_nsec += (long)(ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            }
            continue;
        }
        uint64_t id = next->id;
        next->state = SV_REMOTE_UPLOADING;
        r->uploading = id;
        pthread_mutex_unlock(&r->mu);

        uint64_t t0 = mono_ms();
        err[0] = '\0';
        int rc = upload_checkpoint(r, id, err, sizeof(err));
        if (rc == 0)
            sv_info("checkpoint %" PRIu64 " is remote: s3://%s/%s/chk-%" PRIu64 " (%" PRIu64 " ms)",
                    id, r->bucket, r->node_prefix, id, mono_ms() - t0);
        else if (rc != SV_ENOTFOUND && !atomic_load(&r->cancel))
            sv_warn("checkpoint %" PRIu64 ": upload failed (%s); local checkpoints go on, the "
                    "upload is tried again",
                    id, err);

        pthread_mutex_lock(&r->mu);
        r->uploading = 0;
        struct item *it = find_item(r, id);
        if (rc == SV_ENOTFOUND) {
            remove_item(r, id); /* retired locally before it could be uploaded */
        } else if (it && rc == 0) {
            it->state = SV_REMOTE_REMOTE;
            it->err[0] = '\0';
            r->completed++;
            if (id > r->last_remote_id)
                r->last_remote_id = id;
            if (id > atomic_load(&r->highest))
                atomic_store(&r->highest, id);
            r->last_error[0] = '\0';
            /* The store answers again: the others need not wait out their pause. */
            for (size_t i = 0; i < r->n; i++)
                if (r->items[i].state == SV_REMOTE_LOCAL)
                    r->items[i].next_try_ms = 0;
        } else if (it) {
            it->state = SV_REMOTE_LOCAL;
            it->attempts++;
            unsigned shift = it->attempts - 1 < 6 ? it->attempts - 1 : 6;
            uint64_t pause = (uint64_t)RETRY_FIRST_MS << shift;
            it->next_try_ms = mono_ms() + (pause > RETRY_MAX_MS ? RETRY_MAX_MS : pause);
            snprintf(it->err, sizeof(it->err), "%s", err);
            snprintf(r->last_error, sizeof(r->last_error), "chk-%" PRIu64 ": %s", id, err);
            r->failures++;
        }
        if (!atomic_load(&r->cancel))
            push_event(r, id, rc, err);
        pthread_mutex_unlock(&r->mu);
        if (!atomic_load(&r->cancel)) /* else the loop is closing its handles */
            uv_async_send(&r->async);
        /* After the reply: what the store no longer needs to keep. */
        if (rc == 0 && !atomic_load(&r->cancel))
            remote_retention(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void on_async(uv_async_t *h)
{
    struct sv_remote *r = h->data;
    pthread_mutex_lock(&r->mu);
    struct event *e = r->ev_head;
    r->ev_head = r->ev_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (e) {
        struct event *next = e->next;
        if (r->done)
            r->done(r->ud, e->id, e->rc, e->url, e->msg);
        free(e);
        e = next;
    }
}

/* The local checkpoints, and whether each is remote already (the marker). */
static void scan_local(struct sv_remote *r)
{
    DIR *d = opendir(r->cfg->checkpoint_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        char *end;
        if (strncmp(e->d_name, "chk-", 4) || e->d_name[4] < '1' || e->d_name[4] > '9')
            continue;
        id = strtoull(e->d_name + 4, &end, 10);
        if (*end)
            continue;
        char dir[PATH_LEN], marker[PATH_LEN], merr[256];
        snprintf(dir, sizeof(dir), "%.4000s/%.255s", r->cfg->checkpoint_dir, e->d_name);
        snprintf(marker, sizeof(marker), "%.4200s/" MARKER_FILE, dir);
        struct sv_ckpt_manifest m;
        if (sv_ckpt_manifest_read(dir, &m, merr, sizeof(merr)))
            continue; /* no checkpoint (its data may be another's chain link) */
        struct item *it = add_item(r, id, m.created_unix_ms);
        sv_ckpt_manifest_free(&m);
        if (it && access(marker, F_OK) == 0)
            it->state = SV_REMOTE_REMOTE;
        else if (it)
            sv_info("checkpoint %" PRIu64 ": not yet remote; queued for upload", id);
    }
    closedir(d);
}

static int valid_node(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 128 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n &&
           strcmp(s, ".") && strcmp(s, "..");
}

/* restore_remote_roots: s3://BUCKET/PREFIX entries separated by ',' (blanks
 * around them ignored), each in checkpoint_remote's bucket (one client, one
 * bucket). */
static int parse_roots(struct sv_remote *r, const char *list, char *err, size_t errlen)
{
    char buf[sizeof(((struct sv_config *)0)->restore_remote_roots)];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        char bucket[64];
        if (r->n_roots == REMOTE_ROOTS_MAX) {
            snprintf(err, errlen, "restore_remote_roots: more than %d prefixes", REMOTE_ROOTS_MAX);
            return SV_EINVAL;
        }
        if (sv_s3_parse_url(tok, bucket, sizeof(bucket), r->roots[r->n_roots],
                            sizeof(r->roots[0]))) {
            snprintf(err, errlen,
                     "restore_remote_roots: '%.300s' is not s3://BUCKET/PREFIX (a bucket name "
                     "of 3-63 a-z 0-9 . -, a prefix of non-empty segments)",
                     tok);
            return SV_EINVAL;
        }
        if (strcmp(bucket, r->bucket) != 0) {
            snprintf(err, errlen,
                     "restore_remote_roots: '%.300s' is in bucket %s, not in checkpoint_remote's "
                     "%s: restore reads one bucket",
                     tok, bucket, r->bucket);
            return SV_EINVAL;
        }
        r->n_roots++;
    }
    return 0;
}

/* Whether path (BUCKET's key prefix of a checkpoint) is under prefix p ("" is
 * the whole bucket). */
static int under(const char *path, const char *p)
{
    size_t pl = strlen(p);
    return !pl || (strncmp(path, p, pl) == 0 && path[pl] == '/');
}

static void on_closed_free(uv_handle_t *h)
{
    sv_remote_free(h->data);
}

int sv_remote_new(const struct sv_config *cfg, uv_loop_t *loop, sv_remote_done_fn done, void *ud,
                  struct sv_remote **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->checkpoint_remote[0])
        return 0;
    struct sv_remote *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->cfg = cfg;
    r->done = done;
    r->ud = ud;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = sv_s3_parse_url(cfg->checkpoint_remote, r->bucket, sizeof(r->bucket), r->prefix,
                             sizeof(r->prefix));
    if (rc) {
        snprintf(err, errlen,
                 "checkpoint_remote = '%s': expected s3://BUCKET/PREFIX (a bucket name of 3-63 "
                 "a-z 0-9 . -, a prefix of non-empty segments)",
                 cfg->checkpoint_remote);
        goto fail;
    }
    char node[256];
    if (cfg->checkpoint_remote_node[0])
        snprintf(node, sizeof(node), "%s", cfg->checkpoint_remote_node);
    else if (gethostname(node, sizeof(node)))
        node[0] = '\0';
    node[sizeof(node) - 1] = '\0';
    if (!valid_node(node)) {
        snprintf(err, errlen,
                 "checkpoint_remote_node = '%s': expected 1-128 of A-Z a-z 0-9 . _ - (when it "
                 "is empty, the host name is used)",
                 node);
        rc = SV_EINVAL;
        goto fail;
    }
    snprintf(r->node_prefix, sizeof(r->node_prefix), "%.3500s%s%s", r->prefix,
             r->prefix[0] ? "/" : "", node);
    if ((rc = parse_roots(r, cfg->restore_remote_roots, err, errlen)))
        goto fail;
    char access[256], secret[256], endpoint[512];
    if ((rc = load_credentials(cfg, access, sizeof(access), secret, sizeof(secret), err, errlen)))
        goto fail;
    if (cfg->s3_endpoint[0])
        snprintf(endpoint, sizeof(endpoint), "%s", cfg->s3_endpoint);
    else
        snprintf(endpoint, sizeof(endpoint), "https://s3.%s.amazonaws.com", cfg->s3_region);
    struct sv_s3_options o = {
        .endpoint = endpoint,
        .region = cfg->s3_region,
        .bucket = r->bucket,
        .access_key = access,
        .secret_key = secret,
        .part_size = cfg->s3_part_size,
        .multipart_threshold = cfg->s3_multipart_threshold,
        .max_parts = cfg->s3_max_parts,
        .checksum = cfg->s3_checksum ? SV_S3_CHECKSUM_CRC32C : SV_S3_CHECKSUM_MD5,
        .concurrency = cfg->s3_upload_concurrency,
        .retries = REQUEST_RETRIES,
        .cancel = &r->cancel,
    };
    rc = sv_s3_new(&o, &r->s3, err, errlen);
    explicit_bzero(secret, sizeof(secret));
    if (rc)
        goto fail;
    scan_local(r);
    if (uv_async_init(loop, &r->async, on_async)) {
        snprintf(err, errlen, "checkpoint_remote: cannot create the loop's wake-up handle");
        rc = SV_EINTERNAL;
        goto fail;
    }
    r->async.data = r;
    r->async_open = 1;
    uv_unref((uv_handle_t *)&r->async);
    if ((rc = pthread_create(&r->thread, NULL, upload_thread, r))) {
        snprintf(err, errlen, "checkpoint_remote: cannot start the upload thread: %s",
                 strerror(rc));
        /* The handle is closed, and r freed, by the loop's last run. */
        r->async_open = 0;
        uv_close((uv_handle_t *)&r->async, on_closed_free);
        return -rc;
    }
    r->thread_started = 1;
    sv_info("checkpoint_remote: uploading checkpoints to s3://%s/%s/ through %s", r->bucket,
            r->node_prefix, endpoint);
    *out = r;
    return 0;
fail:
    sv_remote_free(r);
    return rc ? rc : SV_EINVAL;
}

void sv_remote_cancel(struct sv_remote *r)
{
    if (!r)
        return;
    atomic_store(&r->cancel, 1);
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void sv_remote_close_handles(struct sv_remote *r)
{
    if (r && r->async_open) {
        r->async_open = 0;
        uv_close((uv_handle_t *)&r->async, NULL);
    }
}

void sv_remote_free(struct sv_remote *r)
{
    if (!r)
        return;
    sv_remote_cancel(r);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    for (struct event *e = r->ev_head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    sv_s3_free(r->s3);
    free(r->items);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void sv_remote_enqueue(struct sv_remote *r, uint64_t id, uint64_t created_unix_ms)
{
    pthread_mutex_lock(&r->mu);
    struct item *it = add_item(r, id, created_unix_ms);
    if (it) {
        it->state = SV_REMOTE_LOCAL;
        it->next_try_ms = 0;
    }
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void sv_remote_forget(struct sv_remote *r, uint64_t id)
{
    pthread_mutex_lock(&r->mu);
    struct item *it = find_item(r, id);
    if (it && it->state != SV_REMOTE_UPLOADING)
        remove_item(r, id);
    pthread_mutex_unlock(&r->mu);
}

enum sv_remote_state sv_remote_state(struct sv_remote *r, uint64_t id, char *url, size_t cap,
                                     char *msg, size_t msgcap)
{
    if (url && cap)
        url[0] = '\0';
    if (msg && msgcap)
        msg[0] = '\0';
    if (!r)
        return SV_REMOTE_NONE;
    pthread_mutex_lock(&r->mu);
    struct item *it = find_item(r, id);
    enum sv_remote_state st = it ? it->state : SV_REMOTE_NONE;
    if (it && msg)
        snprintf(msg, msgcap, "%s", it->err);
    pthread_mutex_unlock(&r->mu);
    if (it && url)
        url_of(r, id, url, cap);
    return st;
}

uint64_t sv_remote_highest(struct sv_remote *r)
{
    return r ? atomic_load(&r->highest) : 0;
}

static char *pb_strdup(ProtobufCAllocator *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = a->alloc(a->allocator_data, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void sv_remote_stats(struct sv_remote *r, ProtobufCAllocator *alloc, Statesrv__V1__StatsResult *s)
{
    if (!r)
        return;
    uint64_t now = wall_ms(), sent, received;
    sv_s3_traffic(r->s3, &sent, &received);
    pthread_mutex_lock(&r->mu);
    s->remote_enabled = 1;
    for (size_t i = 0; i < r->n; i++) {
        const struct item *it = &r->items[i];
        if (it->state == SV_REMOTE_REMOTE)
            continue;
        s->remote_pending++;
        uint64_t lag = now > it->created_ms ? now - it->created_ms : 0;
        if (lag > s->remote_upload_lag_ms)
            s->remote_upload_lag_ms = lag;
    }
    s->remote_uploads_completed = r->completed;
    s->remote_upload_failures = r->failures;
    s->last_remote_checkpoint_id = r->last_remote_id;
    s->remote_uploading_id = r->uploading;
    s->remote_bytes_uploaded = sent;
    char *e = r->last_error[0] ? pb_strdup(alloc, r->last_error) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (e)
        s->remote_last_error = e;
}

/* --- restore sources ----------------------------------------------------------- */

/* Splits an s3:// checkpoint URL into its parent key prefix and id, and
 * checks it is under the job's prefix. */
static int split_source(const struct sv_remote *r, const char *url, char *parent, size_t cap,
                        uint64_t *id, char *msg, size_t msglen)
{
    char bucket[64], path[SV_PATH_MAX];
    if (sv_s3_parse_url(url, bucket, sizeof(bucket), path, sizeof(path)) || !path[0]) {
        snprintf(msg, msglen, "restore source %.300s is not an s3://BUCKET/PREFIX/chk-<id> URL",
                 url);
        return SV_EINVAL;
    }
    if (sv_ckpt_remote_split(path, parent, cap, id)) {
        snprintf(msg, msglen, "restore source %.300s does not end in chk-<id>", url);
        return SV_EINVAL;
    }
    size_t pl = strlen(r->prefix);
    int ok = strcmp(bucket, r->bucket) == 0 && under(path, r->prefix);
    for (size_t i = 0; !ok && i < r->n_roots; i++)
        ok = strcmp(bucket, r->bucket) == 0 && under(path, r->roots[i]);
    if (!ok) {
        snprintf(msg, msglen,
                 "restore source %.300s is outside checkpoint_remote (s3://%s%s%s/)%s: restore "
                 "reads only the job's prefix%s",
                 url, r->bucket, pl ? "/" : "", r->prefix,
                 r->n_roots ? " and restore_remote_roots" : "",
                 r->n_roots ? " and those" : " (and restore_remote_roots)");
        return SV_EINVAL;
    }
    return 0;
}

int sv_remote_check_source(const struct sv_remote *r, const char *url, char *msg, size_t msglen)
{
    char parent[SV_PATH_MAX];
    uint64_t id;
    if (!r) {
        snprintf(msg, msglen,
                 "restore source %.300s: checkpoint_remote is not set, so no object store is "
                 "configured",
                 url);
        return SV_EINVAL;
    }
    return split_source(r, url, parent, sizeof(parent), &id, msg, msglen);
}

int sv_remote_fetch(struct sv_remote *r, const char *url, const char *dir, int ranged,
                    uint32_t first, uint32_t last, char *out, size_t cap, uint64_t *fetched,
                    uint64_t *total, char *err, size_t errlen)
{
    char parent[SV_PATH_MAX];
    uint64_t id, before, after, sent;
    int rc = split_source(r, url, parent, sizeof(parent), &id, err, errlen);
    if (rc)
        return rc;
    if (ranged)
        return sv_ckpt_remote_fetch_range(r->s3, parent, id, first, last, dir, out, cap, fetched,
                                          total, err, errlen);
    sv_s3_traffic(r->s3, &sent, &before);
    rc = sv_ckpt_remote_fetch(r->s3, parent, id, dir, out, cap, err, errlen);
    sv_s3_traffic(r->s3, &sent, &after);
    *fetched = *total = after - before; /* whole files: all of them */
    return rc;
}
