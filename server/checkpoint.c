/* Snapshot and restore jobs. See checkpoint.h for the rules. */
#include "checkpoint.h"
#include "failpoint.h"
#include "fsutil.h"
#include "metrics.h"
#include "remote.h"
#include "server.h"
#include "store.h"
#include "sv_ckpt.h"
#include "sv_ckpt_remote.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"
#include "sv_value.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CKPT_PREFIX "chk-"
#define TMP_PREFIX ".chk-"
/* Under data_dir: where a restore downloads remote sources (removed after
 * it, and at start). */
#define FETCH_DIR ".s3-restore"
#define PATH_LEN 4352
#define CANCEL_CHECK_EVERY 4096
/* Snapshots run below the event loop's priority: on a machine whose cores
 * are all busy the loop keeps answering at its usual latency, and the
 * snapshot takes the time left over. */
#define SNAPSHOT_NICE 10

enum job_kind { JOB_SNAPSHOT, JOB_RESTORE };

struct job {
    enum job_kind kind;
    struct sv_checkpoints *ck;
    uv_work_t work;
    struct sv_conn *waiter; /* NULL when nobody waits any more */
    uint64_t req_id;
    uint64_t id; /* snapshot: the checkpoint id */
    uint64_t started_ms;
    uint64_t duration_ms;
    uint64_t t0_ns; /* when its request was dispatched (metrics) */
    int rc;
    char msg[512];

    /* snapshot */
    struct sv_store_snapshot *snap;
    int full;         /* asked for a full one */
    int wait_remote;  /* reply when the checkpoint is remote */
    struct job *next; /* in the list of jobs waiting for their upload */
    uint64_t log_cut; /* the change log's place at the cut (sv_store_changes_done) */
    char tmpdir[PATH_LEN], dir[PATH_LEN];
    struct sv_ckpt_manifest manifest;
    int has_manifest;

    /* restore */
    char *sources[SV_RESTORE_MAX_SOURCES];
    /* For an s3:// source, the directory its download (or the local copy)
     * is read from; NULL for a local source. */
    char *local[SV_RESTORE_MAX_SOURCES];
    int sparse[SV_RESTORE_MAX_SOURCES]; /* downloaded by key-group range only */
    size_t nsources;
    uint32_t first, last;
    int has_range; /* first..last were asked for; else they are the sources' */
    struct sv_store_builder *builder;
    uint64_t restored_entries;
    uint64_t restored_expired; /* entries expired since their checkpoint: dropped */
    uint64_t *expired;         /* snapshot: per state, expired entries left out */
    struct sv_buf gone;        /* their keys (sv_store_expire_keys) */
    struct sv_buf trimmed;     /* restore: a timed list without its expired elements */
    int gone_full;             /* not all of them fit: the next checkpoint is full */
    uint32_t restored_states;
};

struct sv_checkpoints {
    struct sv_server *srv;
    const struct sv_config *cfg;
    struct job *queued;       /* waits for the commit of its batch */
    struct job *running;      /* on the thread pool */
    struct job *waiting;      /* snapshots done locally whose reply waits for their upload */
    struct sv_remote *remote; /* NULL: checkpoint_remote is off */
    int restoring;
    atomic_uint_fast64_t prog_entries, prog_bytes, prog_total;
    atomic_int cancel;

    uint64_t completed;
    uint64_t last_id, last_bytes, last_duration_ms, last_unix_ms;
    uint64_t expired_deleted; /* expired entries checkpoints left out, then deleted */
    uint64_t restores;
    uint64_t last_restore_ms;
    uint64_t snapshot_failures;
};

uint64_t sv_checkpoints_failures(const struct sv_checkpoints *ck)
{
    return ck->snapshot_failures;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int job_fail(struct job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int job_fail(struct job *j, int rc, const char *fmt, ...)
{
    if (j->rc)
        return j->rc; /* keep the first reason */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
    va_end(ap);
    j->rc = rc;
    return rc;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nsources; i++) {
        free(j->sources[i]);
        free(j->local[i]);
    }
    if (j->has_manifest)
        sv_ckpt_manifest_free(&j->manifest);
    free(j->expired);
    sv_buf_free(&j->gone);
    sv_buf_free(&j->trimmed);
    free(j);
}

/* --- the checkpoint directory --------------------------------------------- */

/* Parses "chk-<id>"; 0 if the name is something else. */
static int parse_ckpt_name(const char *name, uint64_t *id)
{
    if (strncmp(name, CKPT_PREFIX, strlen(CKPT_PREFIX)) != 0)
        return 0;
    const char *p = name + strlen(CKPT_PREFIX);
    if (*p < '0' || *p > '9' || (*p == '0' && p[1]))
        return 0; /* "chk-01" would alias chk-1 */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end || errno)
        return 0;
    *id = v;
    return 1;
}

/* Ids of the complete checkpoints (a chk-<id> directory with a MANIFEST),
 * ascending; with `all`, of every chk-<id> name. *ids is malloc'd. */
static int list_ids_all(const char *dir, uint64_t **ids, size_t *n, int all);

static int list_ids(const char *dir, uint64_t **ids, size_t *n)
{
    return list_ids_all(dir, ids, n, 0);
}

static int list_ids_all(const char *dir, uint64_t **ids, size_t *n, int all)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    struct dirent *e;
    char path[PATH_LEN];
    while ((e = readdir(d))) {
        uint64_t id;
        if (!parse_ckpt_name(e->d_name, &id))
            continue;
        snprintf(path, sizeof(path), "%.4000s/%.255s/" SV_CKPT_MANIFEST_FILE, dir, e->d_name);
        if (!all && access(path, F_OK))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *m = realloc(*ids, cap * sizeof(*m));
            if (!m) {
                closedir(d);
                free(*ids);
                *ids = NULL;
                return -ENOMEM;
            }
            *ids = m;
        }
        (*ids)[(*n)++] = id;
    }
    closedir(d);
    for (size_t i = 1; i < *n; i++) /* insertion sort: a handful of ids */
        for (size_t k = i; k > 0 && (*ids)[k - 1] > (*ids)[k]; k--) {
            uint64_t t = (*ids)[k];
            (*ids)[k] = (*ids)[k - 1];
            (*ids)[k - 1] = t;
        }
    return 0;
}

static void ckpt_path(const struct sv_checkpoints *ck, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%.4000s/" CKPT_PREFIX "%" PRIu64, ck->cfg->checkpoint_dir, id);
}

/* Every data file a listed checkpoint names (its own, and with version 2
 * its chain's), as checkpoint ids, from the MANIFESTs on disk: reference
 * counts are never kept in memory. `except`: a checkpoint not to count.
 * *unknown is set when a MANIFEST cannot be read (what it names is not
 * known: nothing may then be deleted for want of a name). */
static int named_files(const struct sv_checkpoints *ck, uint64_t except, uint64_t **out,
                       size_t *nout, int *unknown)
{
    uint64_t *ids;
    size_t n, cap = 0;
    *out = NULL;
    *nout = 0;
    *unknown = 0;
    int rc = list_ids(ck->cfg->checkpoint_dir, &ids, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        if (ids[i] == except)
            continue;
        char dir[PATH_LEN], err[256];
        snprintf(dir, sizeof(dir), "%.4000s/" CKPT_PREFIX "%" PRIu64, ck->cfg->checkpoint_dir,
                 ids[i]);
        struct sv_ckpt_manifest m;
        if (sv_ckpt_manifest_read(dir, &m, err, sizeof(err))) {
            sv_warn("checkpoints: %s", err);
            *unknown = 1;
            continue;
        }
        size_t k = m.n_links ? m.n_links : 1;
        for (size_t l = 0; l < k; l++) {
            if (*nout == cap) {
                cap = cap ? 2 * cap : 32;
                uint64_t *p = realloc(*out, cap * sizeof(*p));
                if (!p) {
                    rc = -ENOMEM;
                    break;
                }
                *out = p;
            }
            (*out)[(*nout)++] = m.n_links ? m.links[l].checkpoint_id : ids[i];
        }
        sv_ckpt_manifest_free(&m);
    }
    free(ids);
    if (rc) {
        free(*out);
        *out = NULL;
        *nout = 0;
    }
    return rc;
}

static int id_in(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/* Removes a directory chk-<id> that is no checkpoint any more: renamed away
 * first, so no half-deleted directory ever looks like one. */
static int remove_dir(const struct sv_checkpoints *ck, uint64_t id, const char *why)
{
    char dir[PATH_LEN], doomed[PATH_LEN];
    ckpt_path(ck, id, dir, sizeof(dir));
    snprintf(doomed, sizeof(doomed), "%.4000s/" TMP_PREFIX "%" PRIu64 ".%s",
             ck->cfg->checkpoint_dir, id, why);
    if (rename(dir, doomed))
        return -errno;
    sv_fs_fsync_dir(ck->cfg->checkpoint_dir);
    sv_failpoint("checkpoint-dir-renamed");
    return sv_fs_rm_rf(doomed);
}

/* Removes the data of retired checkpoints (a chk-<id> without MANIFEST)
 * that no listed checkpoint names any more. */
static void collect_garbage(const struct sv_checkpoints *ck)
{
    uint64_t *named, *all;
    size_t nn, na;
    int unknown;
    if (named_files(ck, 0, &named, &nn, &unknown))
        return;
    if (unknown || list_ids_all(ck->cfg->checkpoint_dir, &all, &na, 1)) {
        free(named);
        return;
    }
    for (size_t i = 0; i < na; i++) {
        char manifest[PATH_LEN];
        snprintf(manifest, sizeof(manifest),
                 "%.4000s/" CKPT_PREFIX "%" PRIu64 "/" SV_CKPT_MANIFEST_FILE,
                 ck->cfg->checkpoint_dir, all[i]);
        if (access(manifest, F_OK) == 0 || id_in(named, nn, all[i]))
            continue;
        int rc = remove_dir(ck, all[i], "gc");
        if (rc)
            sv_warn("checkpoints: cannot remove the data of chk-%" PRIu64 ": %s", all[i],
                    strerror(-rc));
        else
            sv_info("checkpoints: removed the data of chk-%" PRIu64 " (no checkpoint needs it)",
                    all[i]);
    }
    free(named);
    free(all);
}

/* Deletes checkpoint id. Its data file goes too unless another checkpoint's
 * chain names it: then only its MANIFEST goes (it is no checkpoint any
 * more; its directory keeps the data for the others until none names it).
 * Each step leaves every listed checkpoint readable: a MANIFEST goes before
 * the data it names, and data goes only when no MANIFEST on disk names it. */
static int remove_checkpoint(const struct sv_checkpoints *ck, uint64_t id)
{
    uint64_t *named;
    size_t nn;
    int unknown;
    int rc = named_files(ck, id, &named, &nn, &unknown);
    if (rc)
        return rc;
    int shared = unknown || id_in(named, nn, id);
    free(named);
    if (!shared) {
        rc = remove_dir(ck, id, "del");
    } else {
        char dir[PATH_LEN], path[PATH_LEN];
        ckpt_path(ck, id, dir, sizeof(dir));
        snprintf(path, sizeof(path), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
        if (unlink(path))
            return -errno;
        rc = sv_fs_fsync_dir(dir);
        sv_failpoint("checkpoint-manifest-removed");
    }
    if (!rc)
        collect_garbage(ck);
    return rc;
}

/* The last checkpoint's figures, from the newest one that reads, so stats
 * and the checkpoint-age alert mean the same after a restart as before. */
static void recover_last(struct sv_checkpoints *ck)
{
    uint64_t *ids;
    size_t n;
    if (list_ids(ck->cfg->checkpoint_dir, &ids, &n))
        return;
    for (size_t i = n; i-- > 0;) {
        char dir[PATH_LEN], err[256];
        struct sv_ckpt_manifest m;
        ckpt_path(ck, ids[i], dir, sizeof(dir));
        if (sv_ckpt_manifest_read(dir, &m, err, sizeof(err))) {
            sv_warn("checkpoints: %s", err);
            continue;
        }
        int ok = m.checkpoint_id == ids[i];
        if (ok) {
            ck->last_id = m.checkpoint_id;
            ck->last_bytes = m.data_bytes;
            ck->last_duration_ms = m.duration_ms;
            ck->last_unix_ms = m.created_unix_ms;
        }
        sv_ckpt_manifest_free(&m);
        if (ok)
            break;
    }
    free(ids);
    if (ck->last_id)
        sv_info("checkpoints: the last is chk-%" PRIu64 ", %" PRIu64 " s old", ck->last_id,
                wall_ms() > ck->last_unix_ms ? (wall_ms() - ck->last_unix_ms) / 1000 : 0);
}

static void on_remote_done(void *ud, uint64_t id, int rc, const char *url, const char *msg);

int sv_checkpoints_new(struct sv_server *srv, struct sv_checkpoints **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sv_checkpoints *ck = calloc(1, sizeof(*ck));
    if (!ck) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ck->srv = srv;
    ck->cfg = srv->cfg;
    const char *dir = ck->cfg->checkpoint_dir;
    int rc = sv_fs_mkdir_p(dir);
    if (rc) {
        snprintf(err, errlen, "cannot create checkpoint_dir %s: %s", dir, strerror(-rc));
        free(ck);
        return rc;
    }
    /* A crash during a snapshot or a delete leaves a ".chk-*" directory;
     * it never was a checkpoint. */
    DIR *d = opendir(dir);
    if (!d) {
        rc = -errno;
        snprintf(err, errlen, "cannot read checkpoint_dir %s: %s", dir, strerror(errno));
        free(ck);
        return rc;
    }
    struct dirent *e;
    char path[PATH_LEN], manifest[PATH_LEN], aside[PATH_LEN];
    /* What the checkpoints name, read from their MANIFESTs now: a chk-<id>
     * without MANIFEST that one of them names holds data of its chain. */
    uint64_t *named = NULL;
    size_t nn = 0;
    int unknown = 0;
    if (named_files(ck, 0, &named, &nn, &unknown))
        unknown = 1;
    while ((e = readdir(d))) {
        uint64_t id;
        snprintf(path, sizeof(path), "%.4000s/%.255s", dir, e->d_name);
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            sv_info("checkpoints: removing leftover %s", path);
            sv_fs_rm_rf(path);
        } else if (parse_ckpt_name(e->d_name, &id)) {
            /* A chk-<id> without MANIFEST is not a checkpoint (a removal cut
             * short); move it aside so it cannot block its id. */
            snprintf(manifest, sizeof(manifest), "%.4300s/" SV_CKPT_MANIFEST_FILE, path);
            if (access(manifest, F_OK) == 0 || unknown || id_in(named, nn, id))
                continue;
            snprintf(aside, sizeof(aside), "%.4000s/" TMP_PREFIX "%" PRIu64 ".incomplete", dir, id);
            sv_warn("checkpoints: %s has no MANIFEST; removing it", path);
            if (rename(path, aside) == 0)
                sv_fs_rm_rf(aside);
        }
    }
    closedir(d);
    free(named);
    recover_last(ck);
    /* A restore from the store that was cut short left its downloads. */
    snprintf(path, sizeof(path), "%.4000s/" FETCH_DIR, ck->cfg->data_dir);
    sv_fs_rm_rf(path);
    /* After the leftovers: the uploader queues what is left to upload. */
    if ((rc = sv_remote_new(ck->cfg, srv->loop, on_remote_done, ck, &ck->remote, err, errlen))) {
        free(ck);
        return rc;
    }
    *out = ck;
    return 0;
}

void sv_checkpoints_free(struct sv_checkpoints *ck)
{
    if (!ck)
        return;
    job_free(ck->queued);
    for (struct job *j = ck->waiting, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    sv_remote_free(ck->remote);
    free(ck);
}

void sv_checkpoints_close_handles(struct sv_checkpoints *ck)
{
    if (ck)
        sv_remote_close_handles(ck->remote);
}

int sv_checkpoints_busy(const struct sv_checkpoints *ck)
{
    return ck->queued || ck->running;
}

int sv_checkpoints_restoring(const struct sv_checkpoints *ck)
{
    return ck->restoring;
}

/* --- manifest to wire ----------------------------------------------------- */

static void *pb_alloc(ProtobufCAllocator *a, size_t n)
{
    return a->alloc(a->allocator_data, n);
}

static char *pb_strdup(ProtobufCAllocator *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = pb_alloc(a, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static Statesrv__V1__CheckpointManifest *manifest_to_pb(const struct sv_ckpt_manifest *m,
                                                        ProtobufCAllocator *a, int with_states)
{
    Statesrv__V1__CheckpointManifest *p = pb_alloc(a, sizeof(*p));
    if (!p)
        return NULL;
    statesrv__v1__checkpoint_manifest__init(p);
    p->format_version = m->format_version;
    p->checkpoint_id = m->checkpoint_id;
    p->created_unix_ms = m->created_unix_ms;
    p->server_version = pb_strdup(a, m->server_version);
    p->key_groups = m->key_groups;
    p->kg_first = m->kg_first;
    p->kg_last = m->kg_last;
    p->entries = m->entries;
    p->raw_bytes = m->raw_bytes;
    p->data_bytes = m->data_bytes;
    p->data_xxh3 = m->data_xxh3;
    p->compression = m->compression == SV_CKPT_COMPRESS_ZSTD ? "zstd" : "none";
    p->compression_level = m->compression_level;
    p->blocks = m->blocks;
    p->duration_ms = m->duration_ms;
    p->incremental = m->incremental != 0;
    p->base_id = m->base_id;
    p->added_bytes = m->added_bytes;
    p->total_bytes = m->total_bytes;
    if (!p->server_version)
        return NULL;
    if (with_states && m->n_states) {
        p->states = pb_alloc(a, m->n_states * sizeof(*p->states));
        Statesrv__V1__CheckpointStateInfo *si = pb_alloc(a, m->n_states * sizeof(*si));
        if (!p->states || !si)
            return NULL;
        for (size_t i = 0; i < m->n_states; i++) {
            statesrv__v1__checkpoint_state_info__init(&si[i]);
            si[i].name = pb_strdup(a, m->states[i].name);
            if (!si[i].name)
                return NULL;
            si[i].entries = m->states[i].entries;
            si[i].raw_bytes = m->states[i].raw_bytes;
            si[i].kg_min = m->states[i].kg_min;
            si[i].kg_max = m->states[i].kg_max;
            si[i].blocks = m->states[i].blocks;
            p->states[i] = &si[i];
        }
        p->n_states = m->n_states;
    }
    return p;
}

/* --- replies -------------------------------------------------------------- */

static void reply(struct job *j, Statesrv__V1__Response *resp)
{
    struct sv_server *srv = j->ck->srv;
    if (j->t0_ns) { /* its request was counted when dispatched; its status is known now */
        unsigned slot = j->kind == JOB_SNAPSHOT ? STATESRV__V1__REQUEST__OP_SNAPSHOT
                                                : STATESRV__V1__REQUEST__OP_RESTORE;
        sv_metrics_count_status(srv, slot, (enum sv_status)resp->status);
        sv_metrics_observe(srv, slot, j->t0_ns);
        j->t0_ns = 0;
    }
    struct sv_conn *c = j->waiter;
    if (!c)
        return;
    j->waiter = NULL;
    resp->id = j->req_id;
    sv_conn_reply_deferred(c, resp);
}

static void reply_error(struct job *j, int rc, const char *msg)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    r.status = (Statesrv__V1__Status)sv_error_status(rc);
    char text[1024];
    snprintf(text, sizeof(text), "%s", msg);
    sv_utf8_scrub(text);
    r.message = text;
    reply(j, &r);
}

void sv_checkpoints_conn_gone(struct sv_checkpoints *ck, struct sv_conn *c)
{
    if (ck->queued && ck->queued->waiter == c)
        ck->queued->waiter = NULL;
    if (ck->running && ck->running->waiter == c)
        ck->running->waiter = NULL;
    for (struct job *j = ck->waiting; j; j = j->next)
        if (j->waiter == c)
            j->waiter = NULL;
}

void sv_checkpoints_cancel(struct sv_checkpoints *ck)
{
    atomic_store(&ck->cancel, 1);
    sv_remote_cancel(ck->remote);
    /* Nobody uploads any more: the snapshots waiting for it are answered. */
    while (ck->waiting) {
        struct job *j = ck->waiting;
        ck->waiting = j->next;
        char msg[PATH_LEN + 256];
        snprintf(msg, sizeof(msg),
                 "checkpoint %" PRIu64 " is durable locally (%s); the server is shutting down "
                 "before its upload finished, which goes on at the next start",
                 j->id, j->dir);
        reply_error(j, SV_EUNAVAIL, msg);
        job_free(j);
    }
}

/* --- snapshot ------------------------------------------------------------- */

struct snap_ctx {
    struct job *j;
    struct sv_ckpt_writer *w;
    uint64_t n;
    int incremental; /* the file is incremental: expired entries are tombstones */
    uint64_t expired;
    const char *state;     /* the state being read */
    struct sv_buf *gone;   /* the expired entries left out, for sv_store_expire_keys */
    int *gone_full;        /* some did not fit in gone */
    struct sv_buf trimmed; /* a timed list without its expired elements */
};

#define GONE_MAX (1u << 20) /* bytes of keys of expired entries a checkpoint deletes after */

static int snap_add(void *ud, const uint8_t *skey, size_t sklen, const uint8_t *value, size_t vlen)
{
    struct snap_ctx *x = ud;
    /* Clean-up in checkpoints: an expired entry is never written; in an
     * incremental file it is a tombstone (an older link may hold it
     * unexpired). Checked against the clock when read. */
    struct sv_value v;
    uint64_t now = sv_store_now_ms();
    size_t left = 1, dropped = 0;
    int parsed = vlen && sv_value_parse(value, vlen, &v) == 0;
    if (parsed && v.timed && (!v.expiry_ms || v.expiry_ms > now)) {
        /* Its expired elements are left out; with none left, as expired. */
        x->trimmed.len = 0;
        int trc = sv_tlist_trim(&v, now, &x->trimmed, &left, &dropped);
        if (trc)
            return trc == SV_ECORRUPT ? SV_EINTERNAL : trc;
        if (dropped && left) {
            value = x->trimmed.data;
            vlen = x->trimmed.len;
        }
    }
    if (parsed && ((v.expiry_ms && v.expiry_ms <= now) || !left)) {
        x->expired++;
        /* The store deletes it once the checkpoint is written, so that no
         * later increment counts an entry no link holds. */
        size_t nl = strlen(x->state);
        if (x->gone->len + 1 + nl + 2 + sklen > GONE_MAX || sklen > UINT16_MAX) {
            *x->gone_full = 1;
        } else {
            uint8_t hdr[1 + SV_STATE_NAME_MAX + 2];
            hdr[0] = (uint8_t)nl;
            memcpy(hdr + 1, x->state, nl);
            sv_be16_put(hdr + 1 + nl, (uint16_t)sklen);
            int arc = sv_buf_append(x->gone, hdr, 1 + nl + 2);
            if (!arc)
                arc = sv_buf_append(x->gone, skey, sklen);
            if (arc)
                *x->gone_full = 1;
        }
        if (!x->incremental)
            return 0;
        vlen = 0;
    }
    int rc = sv_ckpt_writer_add(x->w, skey, sklen, value, vlen);
    if (rc)
        return rc;
    struct sv_checkpoints *ck = x->j->ck;
    atomic_fetch_add(&ck->prog_entries, 1);
    atomic_fetch_add(&ck->prog_bytes, sklen + vlen);
    if (++x->n % CANCEL_CHECK_EVERY == 0 && atomic_load(&ck->cancel))
        return SV_EUNAVAIL;
    return 0;
}

/* Keeps the newest checkpoint_retain checkpoints (by id), and never the one
 * just written (`keep`), whatever its id. */
static void apply_retention(struct sv_checkpoints *ck, uint64_t keep)
{
    uint64_t *ids;
    size_t n;
    if (list_ids(ck->cfg->checkpoint_dir, &ids, &n))
        return;
    size_t excess = n > ck->cfg->checkpoint_retain ? n - ck->cfg->checkpoint_retain : 0;
    for (size_t i = 0; i < n && excess; i++) {
        if (ids[i] == keep)
            continue;
        excess--;
        int rc = remove_checkpoint(ck, ids[i]);
        if (rc)
            sv_warn("checkpoints: cannot remove chk-%" PRIu64 ": %s", ids[i], strerror(-rc));
        else
            sv_info("checkpoints: removed chk-%" PRIu64 " (checkpoint_retain = %u)", ids[i],
                    ck->cfg->checkpoint_retain);
        if (!rc && ck->remote)
            sv_remote_forget(ck->remote, ids[i]);
    }
    free(ids);
}

static const char *io_reason(int rc)
{
    return rc == -ENOSPC || rc == -EFBIG || rc == -EDQUOT ? "the disk is full" : sv_strerror(rc);
}

/* Lowers the calling thread's priority (Linux: nice is per thread). An
 * unprivileged thread cannot raise it again: only a thread of the snapshot's
 * own calls it (see snapshot_work). Best effort. */
static void lower_priority(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0 && nice < SNAPSHOT_NICE)
        (void)setpriority(PRIO_PROCESS, (id_t)tid, SNAPSHOT_NICE);
}

/* The chain an incremental checkpoint would extend: the base checkpoint's
 * manifest, if it is there, readable, of this store's key groups, and short
 * enough (checkpoint_chain_max files, and checkpoint_chain_ratio: the
 * incremental files may add that percentage of the full file's bytes).
 * 0 and *why set: a full checkpoint instead. */
static int pick_base(struct job *j, uint64_t base, uint32_t first, uint32_t last,
                     struct sv_ckpt_manifest *prev, const char **why)
{
    const struct sv_config *cfg = j->ck->cfg;
    char dir[PATH_LEN], err[512];
    *why = NULL;
    if (j->full)
        *why = "asked for";
    else if (!cfg->checkpoint_incremental)
        *why = "checkpoint_incremental = no";
    else if (!base)
        *why = "no earlier checkpoint of this store's state to build on";
    if (*why)
        return 0;
    ckpt_path(j->ck, base, dir, sizeof(dir));
    if (sv_ckpt_manifest_read(dir, prev, err, sizeof(err))) {
        sv_info("checkpoint %" PRIu64 ": the base %s: %s", j->id, dir, err);
        *why = "the checkpoint it would build on is gone or unreadable";
        return 0;
    }
    uint64_t full_bytes = prev->n_links ? prev->links[0].data_bytes : 0;
    uint64_t added = prev->total_bytes - full_bytes;
    if (prev->format_version != SV_CKPT_FORMAT_V2)
        *why = "the previous checkpoint is version 1";
    else if (prev->key_groups != sv_store_key_groups(j->ck->srv->store) ||
             prev->kg_first != first || prev->kg_last != last)
        *why = "the previous checkpoint covers other key groups";
    else if (j->id <= prev->checkpoint_id)
        *why = "its id is not above the previous checkpoint's";
    else if (prev->n_links + 1 > cfg->checkpoint_chain_max)
        *why = "the chain reached checkpoint_chain_max";
    else if (added > full_bytes / 100 * cfg->checkpoint_chain_ratio +
                         full_bytes % 100 * cfg->checkpoint_chain_ratio / 100)
        *why = "the incremental files passed checkpoint_chain_ratio";
    if (*why) {
        sv_ckpt_manifest_free(prev);
        return 0;
    }
    return 1;
}

/* The version-2 MANIFEST of this checkpoint: the states at the cut, the
 * chain (prev's, if incremental, then own). Takes own's states. */
static int build_manifest(struct job *j, const struct sv_ckpt_writer_options *o,
                          const struct sv_ckpt_manifest *prev, struct sv_ckpt_link *own,
                          struct sv_ckpt_manifest *m)
{
    memset(m, 0, sizeof(*m));
    size_t n = (prev ? prev->n_links : 0) + 1;
    m->links = calloc(n, sizeof(*m->links));
    m->states = calloc(own->n_states ? own->n_states : 1, sizeof(*m->states));
    if (!m->links || !m->states) {
        free(own->states);
        sv_ckpt_manifest_free(m);
        return -ENOMEM;
    }
    m->n_links = n;
    for (size_t i = 0; i + 1 < n; i++) {
        m->links[i] = prev->links[i];
        m->links[i].states = calloc(prev->links[i].n_states ? prev->links[i].n_states : 1,
                                    sizeof(*m->links[i].states));
        if (!m->links[i].states) {
            m->links[i].n_states = 0;
            free(own->states);
            sv_ckpt_manifest_free(m);
            return -ENOMEM;
        }
        memcpy(m->links[i].states, prev->links[i].states,
               prev->links[i].n_states * sizeof(*m->links[i].states));
    }
    m->links[n - 1] = *own;
    m->format_version = SV_CKPT_FORMAT_V2;
    m->checkpoint_id = j->id;
    m->created_unix_ms = wall_ms();
    snprintf(m->server_version, sizeof(m->server_version), "%s", SV_VERSION);
    m->key_groups = o->key_groups;
    m->kg_first = o->kg_first;
    m->kg_last = o->kg_last;
    m->compression = o->compression;
    m->compression_level = o->compression == SV_CKPT_COMPRESS_ZSTD ? o->compression_level : 0;
    m->n_states = own->n_states;
    for (size_t i = 0; i < own->n_states; i++) {
        memcpy(m->states[i].name, own->states[i].name, sizeof(m->states[i].name));
        /* What a restore of the chain finds: the store's entries at the cut
         * less those that had expired, left out or made tombstones (see
         * snap_add; an unchanged one expired since the base is still in the
         * base, and counted). */
        uint64_t at_cut = sv_store_snapshot_entries(j->snap, i), gone = j->expired[i];
        m->states[i].entries = at_cut > gone ? at_cut - gone : 0;
        m->entries += m->states[i].entries;
        struct sv_ttl t;
        sv_store_snapshot_ttl(j->snap, i, &t);
        m->states[i].ttl_ms = t.ttl_ms;
        m->states[i].ttl_update = t.update;
        m->states[i].ttl_visibility = t.visibility;
    }
    m->data_bytes = m->added_bytes = own->data_bytes;
    m->data_xxh3 = own->data_xxh3;
    m->raw_bytes = own->raw_bytes;
    m->blocks = own->blocks;
    m->incremental = n > 1;
    m->base_id = m->links[0].checkpoint_id;
    for (size_t i = 0; i < n; i++)
        m->total_bytes += m->links[i].data_bytes;
    m->duration_ms = sv_now_ms() - j->started_ms;
    return 0;
}

/* The snapshot itself, at SNAPSHOT_NICE. */
static void snapshot_run(struct job *j)
{
    struct sv_checkpoints *ck = j->ck;
    const struct sv_config *cfg = ck->cfg;
    char err[512] = "";
    struct sv_ckpt_manifest prev;
    int have_prev = 0;
    int rc;
    if (mkdir(j->tmpdir, 0750)) {
        rc = -errno;
        job_fail(j, rc, "cannot create %s: %s", j->tmpdir, strerror(errno));
        goto out;
    }
    uint32_t first, last;
    sv_store_kg_range(ck->srv->store, &first, &last);
    const char *why;
    have_prev = pick_base(j, sv_store_snapshot_base(j->snap), first, last, &prev, &why);
    if (have_prev && (rc = sv_store_snapshot_load_changes(j->snap))) {
        why = rc == SV_ECORRUPT ? "the change log is corrupt"
                                : "the change set did not fit in memory";
        have_prev = 0;
    }
    if (have_prev)
        sv_info("checkpoint %" PRIu64 ": incremental on chk-%" PRIu64 " (a chain of %zu)", j->id,
                prev.checkpoint_id, prev.n_links + 1);
    else
        sv_info("checkpoint %" PRIu64 ": full (%s)", j->id, why);
    struct sv_ckpt_writer_options o = {
        .checkpoint_id = j->id,
        .key_groups = sv_store_key_groups(ck->srv->store),
        .kg_first = first,
        .kg_last = last,
        .compression = (enum sv_ckpt_compression)cfg->checkpoint_compression,
        .compression_level = cfg->checkpoint_compression_level,
        .server_version = SV_VERSION,
        .format_version = SV_CKPT_FORMAT_V2,
        .incremental = have_prev,
    };
    struct snap_ctx x = {
        .j = j, .incremental = have_prev, .gone = &j->gone, .gone_full = &j->gone_full};
    if ((rc = sv_ckpt_writer_open(j->tmpdir, &o, &x.w, err, sizeof(err)))) {
        job_fail(j, rc, "%s", err);
        goto out;
    }
    size_t n = sv_store_snapshot_nstates(j->snap);
    if (!(j->expired = calloc(n ? n : 1, sizeof(*j->expired)))) {
        sv_store_snapshot_release(j->snap);
        j->snap = NULL;
        sv_ckpt_writer_abort(x.w);
        job_fail(j, -ENOMEM, "out of memory");
        goto out;
    }
    uint64_t total = have_prev ? sv_store_snapshot_changes(j->snap) : 0;
    for (size_t i = 0; i < n && !have_prev; i++)
        total += sv_store_snapshot_entries(j->snap, i);
    atomic_store(&ck->prog_total, total);
    sv_failpoint_delay("snapshot-counted");
    for (size_t i = 0; i < n && !rc; i++) {
        int reset = 0;
        x.expired = 0;
        x.state = sv_store_snapshot_state(j->snap, i);
        if ((rc = sv_ckpt_writer_state(x.w, sv_store_snapshot_state(j->snap, i))))
            break;
        if (have_prev && (rc = sv_store_snapshot_reset(j->snap, i, &reset)) == 0 && reset)
            rc = sv_ckpt_writer_reset(x.w);
        if (rc)
            break;
        if (have_prev && !reset)
            rc = sv_store_snapshot_scan_changes(j->snap, i, snap_add, &x);
        else
            rc = sv_store_snapshot_scan(j->snap, i, snap_add, &x);
        j->expired[i] = x.expired;
    }
    sv_buf_free(&x.trimmed);
    /* Every entry is in the writer; the rest (the last block, fsync) needs
     * no store, but the manifest needs the entry counts at the cut. */
    if (rc) {
        sv_store_snapshot_release(j->snap);
        j->snap = NULL;
        sv_ckpt_writer_abort(x.w);
        if (rc == SV_EUNAVAIL)
            job_fail(j, rc, "the snapshot was cancelled: the server is shutting down");
        else if (rc == SV_EMAPFULL)
            job_fail(j, rc,
                     "the snapshot was abandoned: entries written while it ran could not be "
                     "copied as of its start (see the log; the data disk may be full); the "
                     "writes were applied; take it again");
        else /* the writer refusing our input is our bug, not the client's */
            job_fail(j, rc == SV_EINVAL ? SV_EINTERNAL : rc, "writing %s failed: %s", j->tmpdir,
                     io_reason(rc));
        goto out;
    }
    struct sv_ckpt_link own;
    rc = sv_ckpt_writer_finish_link(x.w, &own, err, sizeof(err));
    if (!rc)
        rc = build_manifest(j, &o, have_prev ? &prev : NULL, &own, &j->manifest);
    sv_store_snapshot_release(j->snap);
    j->snap = NULL;
    if (rc) {
        job_fail(j, rc, "finishing %s failed: %s (%s)", j->tmpdir, io_reason(rc), err);
        goto out;
    }
    j->has_manifest = 1;
    if ((rc = sv_ckpt_manifest_write(j->tmpdir, &j->manifest, err, sizeof(err)))) {
        job_fail(j, rc, "writing the MANIFEST of %s failed: %s (%s)", j->tmpdir, io_reason(rc),
                 err);
        goto out;
    }
    /* Atomic: the directory appears complete under its final name or not
     * at all. */
    if (rename(j->tmpdir, j->dir)) {
        rc = -errno;
        job_fail(j, rc, "cannot rename %s to %s: %s", j->tmpdir, j->dir, strerror(errno));
        goto out;
    }
    if ((rc = sv_fs_fsync_dir(cfg->checkpoint_dir))) {
        /* The rename may not survive a crash: not a durable checkpoint. */
        job_fail(j, rc, "fsync of %s failed: %s", cfg->checkpoint_dir, strerror(-rc));
        remove_checkpoint(ck, j->id); /* renamed away first: never half a checkpoint */
        goto out;
    }
    apply_retention(ck, j->id);
out:
    if (have_prev)
        sv_ckpt_manifest_free(&prev);
    if (j->rc)
        sv_fs_rm_rf(j->tmpdir);
    j->duration_ms = sv_now_ms() - j->started_ms;
}

static void *snapshot_thread(void *arg)
{
    lower_priority();
    snapshot_run(arg);
    return NULL;
}

/* Worker thread (libuv's pool, shared with restores): the snapshot runs on
 * a thread of its own, so that only that thread's priority is lowered. */
static void snapshot_work(uv_work_t *w)
{
    struct job *j = w->data;
    pthread_t t;
    if (pthread_create(&t, NULL, snapshot_thread, j) == 0)
        pthread_join(t, NULL);
    else
        snapshot_run(j); /* at the pool's priority */
}

/* --- restore -------------------------------------------------------------- */

struct restore_src {
    struct sv_ckpt_chain *c; /* the checkpoint and every file of its chain */
    const char *path;
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Index of state `name` in a source, or -1. */
/* Index of state `name` in a source, or -1. States are sorted by name
 * (checked when the source is opened), so a binary search. */
static long find_state(const struct sv_ckpt_manifest *m, const char *name)
{
    size_t lo = 0, hi = m->n_states;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->states[mid].name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int states_sorted(const struct sv_ckpt_manifest *m)
{
    for (size_t i = 1; i < m->n_states; i++)
        if (strcmp(m->states[i - 1].name, m->states[i].name) >= 0)
            return 0;
    return 1;
}

/* For one state, which source owns each key group of [first, last] that has
 * entries (owner[kg - first] = source + 1, 0: none). Two sources with
 * entries in one key group: SV_EINVAL. *entries: the state's total. */
static int plan_state(struct job *j, struct restore_src *src, size_t nsrc, const char *name,
                      uint16_t *owner, uint64_t *entries)
{
    size_t span = (size_t)j->last - j->first + 1;
    memset(owner, 0, span * sizeof(*owner));
    *entries = 0;
    for (size_t s = 0; s < nsrc; s++) {
        const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(src[s].c);
        long idx = find_state(m, name);
        if (idx < 0 || m->states[idx].entries == 0)
            continue;
        uint32_t lo = m->kg_first > j->first ? m->kg_first : j->first;
        uint32_t hi = m->kg_last < j->last ? m->kg_last : j->last;
        /* The entries to restore: the MANIFEST's live count when the whole
         * source is taken, else what its files hold in the range (an upper
         * bound: a chain's older links hold entries a newer one replaces). */
        int whole = lo == m->kg_first && hi == m->kg_last;
        if (whole && lo <= hi)
            *entries += m->states[idx].entries;
        for (uint32_t kg = lo; kg <= hi && lo <= hi; kg++) {
            if (!sv_ckpt_chain_kg_has(src[s].c, name, kg))
                continue;
            uint64_t n = 0; /* entries in kg, when not whole */
            for (size_t l = 0; !whole && l < sv_ckpt_chain_length(src[s].c); l++) {
                struct sv_ckpt_reader *f = sv_ckpt_chain_file(src[s].c, l);
                const struct sv_ckpt_manifest *fm = sv_ckpt_file_manifest(f);
                long k = find_state(fm, name);
                if (k >= 0)
                    n += sv_ckpt_kg_entries(f, (size_t)k, kg);
            }
            uint16_t *o = &owner[kg - j->first];
            if (*o)
                return job_fail(j, SV_EINVAL,
                                "sources %s and %s both hold key group %u of state '%s'; each "
                                "key group must come from one source (give a --key-groups "
                                "range that picks one)",
                                src[*o - 1].path, src[s].path, kg, name);
            *o = (uint16_t)(s + 1);
            *entries += n;
        }
    }
    return 0;
}

/* Copies state `name` from the planned sources into the builder, key groups
 * in order, one contiguous run per source at a time. */
/* Whether a restored entry is one the server could have stored itself: a
 * stored key the store can hold, in the key groups being read, and a value
 * whose header and framing a put or merge would have written. Checksums only
 * say the file is what its writer wrote; a forged or foreign checkpoint must
 * not plant values that every later read answers INTERNAL. 0, or SV_EINVAL
 * with why filled. */
static int check_entry(const struct job *j, uint32_t kg_lo, uint32_t kg_hi, const uint8_t *sk,
                       size_t skl, const uint8_t *v, size_t vl, char *why, size_t cap)
{
    const struct sv_config *cfg = j->ck->srv->cfg;
    size_t max_key = sv_store_max_key_size(j->ck->srv->store);
    struct sv_skey key;
    struct sv_value val;
    if (skl > max_key)
        snprintf(why, cap, "a stored key of %zu bytes (at most %zu)", skl, max_key);
    else if (sv_skey_decode(sk, skl, &key) || key.key_len == 0)
        snprintf(why, cap, "a stored key that is not a key group, key and namespace");
    else if (key.kg < kg_lo || key.kg > kg_hi)
        snprintf(why, cap, "a key of key group %u filed under key groups %u-%u", key.kg, kg_lo,
                 kg_hi);
    else if (sv_value_parse(v, vl, &val))
        snprintf(why, cap, "a stored value of %zu bytes whose header is not valid", vl);
    else if (val.len > cfg->max_value_size)
        snprintf(why, cap, "a %s value of %zu bytes, over max_value_size (%u): raise it to restore",
                 sv_value_kind_name(val.kind), val.len, cfg->max_value_size);
    else if (sv_value_check(&val))
        snprintf(why, cap, "a %s value of %zu bytes that is not well-formed for its kind",
                 sv_value_kind_name(val.kind), val.len);
    else
        return 0;
    return SV_EINVAL;
}

/* The TTL setting of state name in the sources: the first that has one
 * (sources of one job agree; a difference is logged). */
static void source_ttl(const struct job *j, const struct restore_src *src, size_t nsrc,
                       const char *name, struct sv_ttl *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t s = 0; s < nsrc; s++) {
        const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(src[s].c);
        long idx = find_state(m, name);
        if (idx < 0 || !m->states[idx].ttl_ms)
            continue;
        const struct sv_ckpt_state *st = &m->states[idx];
        if (!out->ttl_ms) {
            out->ttl_ms = st->ttl_ms;
            out->update = st->ttl_update ? SV_TTL_ON_READ_AND_WRITE : SV_TTL_ON_CREATE_AND_WRITE;
            out->visibility = st->ttl_visibility ? SV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP
                                                 : SV_TTL_NEVER_RETURN_EXPIRED;
        } else if (st->ttl_ms != out->ttl_ms) {
            sv_warn("restore: state '%s' has a TTL of %" PRIu64 " ms in %s and %" PRIu64
                    " ms in an earlier source; the first is kept",
                    name, st->ttl_ms, src[s].path, out->ttl_ms);
        }
    }
    (void)j;
}

static void remote_names(const struct job *j, size_t i, char *msg, size_t cap);

static int load_state(struct job *j, struct restore_src *src, size_t nsrc, const char *name,
                      const uint16_t *owner)
{
    struct sv_checkpoints *ck = j->ck;
    int rc = sv_store_builder_state(j->builder, name);
    if (rc)
        return job_fail(j, rc, "restore: cannot create state '%s': %s", name, sv_strerror(rc));
    struct sv_ttl ttl;
    source_ttl(j, src, nsrc, name, &ttl);
    if ((rc = sv_store_builder_ttl(j->builder, name, &ttl)))
        return job_fail(j, rc, "restore: cannot record the TTL of state '%s': %s", name,
                        sv_strerror(rc));
    uint64_t now = sv_store_now_ms();
    size_t span = (size_t)j->last - j->first + 1;
    for (size_t i = 0; i < span;) {
        if (!owner[i]) {
            i++;
            continue;
        }
        size_t k = i;
        while (k + 1 < span && owner[k + 1] == owner[i])
            k++;
        struct restore_src *s = &src[owner[i] - 1];
        struct sv_ckpt_chain_iter *it;
        if ((rc = sv_ckpt_chain_iter_open(s->c, name, j->first + (uint32_t)i,
                                          j->first + (uint32_t)k, &it)))
            return job_fail(j, rc, "restore: %s: %s", s->path, sv_ckpt_chain_errmsg(s->c));
        const uint8_t *sk, *v;
        size_t skl, vl;
        uint64_t n = 0;
        char why[160] = "";
        while ((rc = sv_ckpt_chain_iter_next(it, &sk, &skl, &v, &vl)) == 1) {
            if ((rc = check_entry(j, j->first + (uint32_t)i, j->first + (uint32_t)k, sk, skl, v, vl,
                                  why, sizeof(why))))
                break;
            struct sv_value val;
            if (sv_value_parse(v, vl, &val) == 0 && val.expiry_ms && val.expiry_ms <= now) {
                j->restored_expired++; /* expired since the checkpoint: dropped */
                continue;
            }
            if (val.timed) { /* without the elements expired since */
                size_t left, dropped;
                j->trimmed.len = 0;
                if ((rc = sv_tlist_trim(&val, now, &j->trimmed, &left, &dropped)))
                    break;
                if (dropped && !left) {
                    j->restored_expired++;
                    continue;
                }
                if (dropped) {
                    v = j->trimmed.data;
                    vl = j->trimmed.len;
                }
            }
            if ((rc = sv_store_builder_put(j->builder, sk, skl, v, vl)))
                break;
            j->restored_entries++;
            atomic_fetch_add(&ck->prog_entries, 1);
            atomic_fetch_add(&ck->prog_bytes, skl + vl);
            if (++n % CANCEL_CHECK_EVERY == 0 && atomic_load(&ck->cancel)) {
                rc = SV_EUNAVAIL;
                break;
            }
        }
        sv_ckpt_chain_iter_close(it);
        if (rc == SV_EUNAVAIL)
            return job_fail(j, rc, "the restore was cancelled: the server is shutting down");
        if (rc == SV_EINVAL)
            return job_fail(j, rc,
                            "restore: %s: state '%s', key groups %u-%u, entry %llu: %s; "
                            "nothing was restored",
                            s->path, name, j->first + (unsigned)i, j->first + (unsigned)k,
                            (unsigned long long)n + 1, why);
        if (rc < 0) {
            char detail[512];
            snprintf(detail, sizeof(detail), "%s",
                     rc == SV_ECORRUPT ? sv_ckpt_chain_errmsg(s->c) : "");
            remote_names(j, (size_t)(owner[i] - 1), detail, sizeof(detail));
            /* A damaged block is the source's fault, as in verify. */
            return job_fail(j, rc == SV_ECORRUPT ? SV_EINVAL : rc,
                            "restore: reading %s or writing the new store failed: %s%s%s", s->path,
                            sv_strerror(rc), rc == SV_ECORRUPT ? ": " : "", detail);
        }
        i = k + 1;
    }
    j->restored_states++;
    return 0;
}

/* Appends key groups [a, b] to a list "0-31, 64-95" in buf. */
static void append_run(char *buf, size_t cap, uint32_t a, uint32_t b)
{
    size_t n = strlen(buf);
    if (n + 32 >= cap) {
        if (n + 4 < cap && strcmp(buf + n - (n >= 3 ? 3 : n), "...") != 0)
            snprintf(buf + n, cap - n, "...");
        return;
    }
    if (a == b)
        snprintf(buf + n, cap - n, "%s%u", n ? ", " : "", a);
    else
        snprintf(buf + n, cap - n, "%s%u-%u", n ? ", " : "", a, b);
}

/* The key groups the sources served at their cuts (their MANIFESTs' ranges)
 * against the range to restore. Asked for: it must be covered whole (a key
 * group none of them served would come back empty, and the server would
 * then claim it). Not asked for: the range is what they cover, which must
 * be one run. 0, or the job failed (SV_EINVAL). */
static int check_coverage(struct job *j, struct restore_src *src, size_t nsrc)
{
    uint32_t groups = sv_store_key_groups(j->ck->srv->store);
    uint8_t *cov = calloc(groups, 1);
    if (!cov)
        return job_fail(j, -ENOMEM, "restore: out of memory");
    for (size_t s = 0; s < nsrc; s++) {
        const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(src[s].c);
        for (uint32_t kg = m->kg_first; kg <= m->kg_last && kg < groups; kg++)
            cov[kg] = 1;
    }
    char have[256] = "", missing[256] = "";
    uint32_t lo = groups, hi = 0, runs = 0;
    for (uint32_t kg = 0; kg < groups; kg++) {
        if (!cov[kg] || (kg > 0 && cov[kg - 1]))
            continue;
        uint32_t end = kg;
        while (end + 1 < groups && cov[end + 1])
            end++;
        append_run(have, sizeof(have), kg, end);
        runs++;
        if (kg < lo)
            lo = kg;
        hi = end;
    }
    int rc = 0;
    if (j->has_range) {
        for (uint32_t kg = j->first; kg <= j->last; kg++) {
            if (cov[kg])
                continue;
            uint32_t end = kg;
            while (end + 1 <= j->last && !cov[end + 1])
                end++;
            append_run(missing, sizeof(missing), kg, end);
            kg = end;
        }
        if (missing[0])
            rc = job_fail(j, SV_EINVAL,
                          "restore: the sources served key groups %s, not %s of the range %u-%u "
                          "asked for; add the checkpoint of the sidecar that served them, or "
                          "ask for less",
                          have, missing, j->first, j->last);
    } else if (runs != 1) {
        rc = job_fail(j, SV_EINVAL,
                      "restore: the sources served key groups %s, which is not one range; give "
                      "the range to restore (--key-groups A-B) and the sources that cover it",
                      runs ? have : "none");
    } else if (lo != j->first || hi != j->last) {
        sv_info("restore: the sources served key groups %u-%u: this server will serve those", lo,
                hi);
        j->first = lo;
        j->last = hi;
    }
    free(cov);
    return rc;
}

/* Messages that name a downloaded file of source i name its object. */
static void remote_names(const struct job *j, size_t i, char *msg, size_t cap)
{
    if (!j->local[i] || strncmp(j->sources[i], "s3://", 5) ||
        !strstr(j->local[i], "/" FETCH_DIR "/"))
        return; /* not downloaded: a local copy, named as it is */
    const char *ls = strrchr(j->local[i], '/'), *us = strrchr(j->sources[i], '/');
    if (!ls || !us)
        return;
    char dir[PATH_LEN], parent[PATH_LEN];
    snprintf(dir, sizeof(dir), "%.*s", (int)(ls - j->local[i]), j->local[i]);
    snprintf(parent, sizeof(parent), "%.*s", (int)(us - j->sources[i]), j->sources[i]);
    sv_ckpt_remote_names(msg, cap, dir, parent);
}

/* The remote sources: this sidecar's own checkpoint from checkpoint_dir
 * when it is there and verifies (local recovery), else a download of the
 * chain into data_dir/FETCH_DIR/<i>. */
static int fetch_sources(struct job *j)
{
    struct sv_checkpoints *ck = j->ck;
    char base[PATH_LEN], dir[PATH_LEN], got[PATH_LEN], err[1024];
    snprintf(base, sizeof(base), "%.4000s/" FETCH_DIR, ck->cfg->data_dir);
    for (size_t i = 0; i < j->nsources; i++) {
        if (strncmp(j->sources[i], "s3://", 5))
            continue;
        char own[SV_PATH_MAX + 128];
        const char *slash = strrchr(j->sources[i], '/');
        uint64_t id = 0;
        if (slash && parse_ckpt_name(slash + 1, &id) &&
            sv_remote_state(ck->remote, id, own, sizeof(own), NULL, 0) != SV_REMOTE_NONE &&
            strcmp(own, j->sources[i]) == 0) {
            struct sv_ckpt_chain *c;
            ckpt_path(ck, id, dir, sizeof(dir));
            if (sv_ckpt_chain_open(dir, &c, err, sizeof(err)) == 0) {
                int vr = sv_ckpt_chain_verify(c, 0, err, sizeof(err));
                sv_ckpt_chain_close(c);
                if (vr == 0) {
                    sv_info("restore: %s is also in checkpoint_dir and verifies: reading %s",
                            j->sources[i], dir);
                    if (!(j->local[i] = strdup(dir)))
                        return job_fail(j, -ENOMEM, "restore: out of memory");
                    continue;
                }
            }
            sv_warn("restore: the local copy of %s does not verify (%s); downloading it",
                    j->sources[i], err);
        }
        snprintf(dir, sizeof(dir), "%.4000s/%zu", base, i);
        int rc = sv_fs_mkdir_p(dir);
        if (rc)
            return job_fail(j, rc, "restore: cannot create %s: %s", dir, strerror(-rc));
        uint64_t t0 = sv_now_ms(), fetched = 0, total = 0;
        /* A range: only its blocks (ranged GETs through the index). */
        int ranged = j->first > 0 || j->last + 1 < sv_store_key_groups(ck->srv->store);
        rc = sv_remote_fetch(ck->remote, j->sources[i], dir, ranged, j->first, j->last, got,
                             sizeof(got), &fetched, &total, err, sizeof(err));
        if (rc)
            return job_fail(j,
                            rc == SV_ECORRUPT || rc == SV_EINVAL ? SV_EINVAL
                            : rc == SV_ENOTFOUND                 ? SV_ENOTFOUND
                                                                 : rc,
                            "restore: %s", err);
        sv_info("restore: downloaded %s in %" PRIu64 " ms: %" PRIu64 " of %" PRIu64 " bytes%s",
                j->sources[i], sv_now_ms() - t0, fetched, total,
                ranged ? " (the blocks of the key-group range)" : "");
        j->sparse[i] = ranged;
        if (!(j->local[i] = strdup(got)))
            return job_fail(j, -ENOMEM, "restore: out of memory");
        if (atomic_load(&ck->cancel))
            return job_fail(j, SV_EUNAVAIL,
                            "the restore was cancelled: the server is shutting down");
    }
    return 0;
}

/* Worker thread (or the main thread at start-up). The live store is not
 * touched: everything goes into a new generation. */
static void restore_work(uv_work_t *w)
{
    struct job *j = w->data;
    struct sv_store *store = j->ck->srv->store;
    struct restore_src src[SV_RESTORE_MAX_SOURCES];
    size_t nsrc = 0;
    char err[512];
    const char **names = NULL;
    uint16_t *owner = NULL;
    size_t nnames = 0;
    int rc;

    /* 0. Remote sources: the local copy if it is this sidecar's and
     * verifies, else a download into data_dir. */
    if (fetch_sources(j))
        goto out;

    /* 1. Open and verify every source before anything is written. */
    uint64_t size_hint = 0;
    for (size_t i = 0; i < j->nsources; i++) {
        src[i].path = j->sources[i];
        const char *dir = j->local[i] ? j->local[i] : j->sources[i];
        if ((rc = sv_ckpt_chain_open(dir, &src[i].c, err, sizeof(err)))) {
            remote_names(j, i, err, sizeof(err));
            /* A bad or missing file is the request's fault, not the server's. */
            job_fail(j,
                     rc == SV_ECORRUPT                 ? SV_EINVAL
                     : rc == -ENOENT || rc == -ENOTDIR ? SV_ENOTFOUND
                                                       : rc,
                     "restore: %s", err);
            goto out;
        }
        nsrc++;
        const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(src[i].c);
        if (!states_sorted(m)) {
            job_fail(j, SV_EINVAL, "restore: %s: the manifest's states are not in order",
                     j->sources[i]);
            goto out;
        }
        if (atomic_load(&j->ck->cancel)) {
            job_fail(j, SV_EUNAVAIL, "the restore was cancelled: the server is shutting down");
            goto out;
        }
        if (m->key_groups != sv_store_key_groups(store)) {
            job_fail(j, SV_EINVAL,
                     "restore: %s has key_groups = %u but this server has %u; key groups "
                     "cannot change in a restore",
                     j->sources[i], m->key_groups, sv_store_key_groups(store));
            goto out;
        }
        /* The data is verified in the same pass that loads it: every block
         * read is checked (its checksum, framing and key order) before its
         * entries go into the new generation, and every entry as strictly as
         * a put; a damaged block fails the job, the new generation is thrown
         * away and the live state is never touched. Reading each file once
         * halves a restore's I/O and decompression against verifying first
         * (docs/benchmarks.md, part 3). */
        for (size_t l = 0; l < sv_ckpt_chain_length(src[i].c); l++)
            size_hint += sv_ckpt_file_manifest(sv_ckpt_chain_file(src[i].c, l))->raw_bytes;
    }

    /* 2. What the sources cover must hold what is restored. */
    if (check_coverage(j, src, nsrc))
        goto out;

    /* 3. Plan: every state, and who owns each key group, before building. */
    size_t cap = 0;
    for (size_t i = 0; i < nsrc; i++)
        cap += sv_ckpt_chain_manifest(src[i].c)->n_states;
    names = calloc(cap ? cap : 1, sizeof(*names));
    owner = calloc((size_t)j->last - j->first + 1, sizeof(*owner));
    if (!names || !owner) {
        job_fail(j, -ENOMEM, "restore: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nsrc; i++) {
        const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(src[i].c);
        for (size_t k = 0; k < m->n_states; k++)
            names[nnames++] = m->states[k].name;
    }
    qsort(names, nnames, sizeof(*names), cmp_names);
    size_t u = 0;
    for (size_t i = 0; i < nnames; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0)
            names[u++] = names[i];
    nnames = u;
    if (nnames > j->ck->cfg->max_states) {
        job_fail(j, SV_EINVAL, "restore: the sources hold %zu states; max_states is %u", nnames,
                 j->ck->cfg->max_states);
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        uint64_t n;
        if (atomic_load(&j->ck->cancel)) {
            job_fail(j, SV_EUNAVAIL, "the restore was cancelled: the server is shutting down");
            goto out;
        }
        if (plan_state(j, src, nsrc, names[i], owner, &n))
            goto out;
    }

    /* 4. Build the new generation. */
    if ((rc = sv_store_builder_open(store, size_hint, j->first, j->last, &j->builder, err,
                                    sizeof(err)))) {
        job_fail(j, rc, "%s", err);
        goto out;
    }
    /* The total for progress: what the indexes count in the range. */
    uint64_t total = 0;
    for (size_t i = 0; i < nnames; i++) {
        uint64_t n;
        if (plan_state(j, src, nsrc, names[i], owner, &n))
            goto out;
        total += n;
    }
    atomic_store(&j->ck->prog_total, total);
    for (size_t i = 0; i < nnames; i++) {
        uint64_t n;
        if (plan_state(j, src, nsrc, names[i], owner, &n))
            goto out;
        if (n && load_state(j, src, nsrc, names[i], owner))
            goto out;
        if (!n) { /* no entries in the range: its TTL setting still holds */
            struct sv_ttl ttl;
            source_ttl(j, src, nsrc, names[i], &ttl);
            if ((rc = sv_store_builder_ttl(j->builder, names[i], &ttl))) {
                job_fail(j, rc, "restore: cannot record the TTL of state '%s': %s", names[i],
                         sv_strerror(rc));
                goto out;
            }
        }
    }
    if ((rc = sv_store_builder_finish(j->builder, err, sizeof(err))))
        job_fail(j, rc, "%s", err);
out:
    for (size_t i = 0; i < nsrc; i++)
        sv_ckpt_chain_close(src[i].c);
    free(names);
    free(owner);
    if (j->rc && j->builder) {
        sv_store_builder_free(j->builder);
        j->builder = NULL;
    }
    char fetched[PATH_LEN];
    snprintf(fetched, sizeof(fetched), "%.4000s/" FETCH_DIR, j->ck->cfg->data_dir);
    sv_fs_rm_rf(fetched); /* read whole into the new generation, or failed */
    j->duration_ms = sv_now_ms() - j->started_ms;
}

/* Loop thread: put a finished restore in place. */
static void restore_switch(struct job *j)
{
    char err[512];
    if (!j->rc) {
        int rc = sv_store_switch(j->ck->srv->store, j->builder, err, sizeof(err));
        if (rc)
            job_fail(j, rc, "%s", err);
    }
    sv_store_builder_free(j->builder);
    j->builder = NULL;
}

/* --- job lifecycle -------------------------------------------------------- */

/* The snapshot's result (url: its remote copy, or NULL). */
static void reply_snapshot(struct job *j, const char *url)
{
    struct sv_server *srv = j->ck->srv;
    Statesrv__V1__Response resp = STATESRV__V1__RESPONSE__INIT;
    Statesrv__V1__SnapshotResult *r = sv_arena_alloc(&srv->arena, sizeof(*r));
    if (r) {
        statesrv__v1__snapshot_result__init(r);
        r->manifest = manifest_to_pb(&j->manifest, &srv->arena.pb, 1);
        r->path = j->dir;
        if (url)
            r->remote_url = (char *)url;
    }
    if (!r || !r->manifest) {
        reply_error(j, -ENOMEM, "out of memory for the reply");
    } else {
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_SNAPSHOT;
        resp.snapshot = r;
        reply(j, &resp);
    }
}

/* Loop thread: an upload attempt ended. The snapshots that wait for it are
 * answered: with their URL, or with why the attempt failed (the checkpoint
 * is durable locally either way, and the upload is tried again). */
static void on_remote_done(void *ud, uint64_t id, int rc, const char *url, const char *msg)
{
    struct sv_checkpoints *ck = ud;
    struct sv_server *srv = ck->srv;
    for (struct job **pp = &ck->waiting; *pp;) {
        struct job *j = *pp;
        if (j->id != id) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        if (rc == 0) {
            reply_snapshot(j, url);
        } else {
            char text[1024];
            snprintf(
                text, sizeof(text),
                "checkpoint %" PRIu64 " is durable locally (%.300s) but is not remote: %.500s%s",
                id, j->dir, msg,
                rc == SV_ENOTFOUND ? "" : "; the upload is tried again (statectl checkpoints)");
            reply_error(j, rc == SV_ENOTFOUND ? SV_ENOTFOUND : SV_EUNAVAIL, text);
        }
        sv_arena_reset(&srv->arena);
        job_free(j);
    }
}

static void job_done(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct sv_checkpoints *ck = j->ck;
    struct sv_server *srv = ck->srv;
    if (status == UV_ECANCELED)
        job_fail(j, SV_EUNAVAIL, "the job was cancelled");
    if (j->kind == JOB_SNAPSHOT) {
        sv_store_snapshot_release(j->snap); /* only if the work never ran */
        j->snap = NULL;
        sv_store_snapshot_finished(srv->store);
    } else {
        restore_switch(j);
        ck->restoring = 0;
    }
    ck->running = NULL;

    if (j->rc) {
        if (j->kind == JOB_SNAPSHOT)
            ck->snapshot_failures++;
        if (j->kind == JOB_SNAPSHOT)
            sv_error("snapshot %" PRIu64 " failed: %s", j->id, j->msg);
        else /* restores have no id */
            sv_error("restore failed: %s", j->msg);
        reply_error(j, j->rc, j->msg);
        job_free(j);
        return;
    }
    Statesrv__V1__Response resp = STATESRV__V1__RESPONSE__INIT;
    if (j->kind == JOB_SNAPSHOT) {
        /* Only now are the changes before its cut no longer needed; and
         * what it left out as expired leaves the store in the same
         * transaction (an increment on it counts those entries gone). If
         * not all of them could be listed, it is no base: the next
         * checkpoint is full. */
        uint64_t deleted = 0;
        int crc;
        if (!j->gone_full) {
            crc = sv_store_changes_done(srv->store, j->log_cut, j->id, j->gone.data, j->gone.len,
                                        &deleted);
            if (crc)
                sv_warn("checkpoint %" PRIu64 ": cannot clear the changes it holds (%s); the "
                        "next checkpoint builds on the one before it",
                        j->id, sv_strerror(crc));
        } else {
            sv_info("checkpoint %" PRIu64 ": too many expired entries to delete after it; the "
                    "next checkpoint is full",
                    j->id);
            if ((crc = sv_store_changes_forget(srv->store)))
                sv_warn("checkpoint %" PRIu64 ": cannot forget the base: %s", j->id,
                        sv_strerror(crc));
            if ((crc = sv_store_expire_keys(srv->store, j->gone.data, j->gone.len, &deleted)))
                sv_warn("checkpoint %" PRIu64 ": cannot delete the expired entries it left out: %s",
                        j->id, sv_strerror(crc));
        }
        ck->expired_deleted += deleted;
        if (deleted)
            sv_info("checkpoint %" PRIu64 ": %" PRIu64 " expired entries it left out deleted",
                    j->id, deleted);
        ck->completed++;
        ck->last_id = j->id;
        ck->last_bytes = j->manifest.data_bytes;
        ck->last_duration_ms = j->duration_ms;
        ck->last_unix_ms = wall_ms();
        sv_info("checkpoint %" PRIu64 " complete: %" PRIu64 " entries, %" PRIu64
                " bytes in %s, %" PRIu64 " ms; %" PRIu64 " entries written meanwhile were kept "
                "as of the cut",
                j->id, j->manifest.entries, j->manifest.data_bytes, j->dir, j->duration_ms,
                sv_store_snapshot_kept(srv->store));
        if (ck->remote)
            sv_remote_enqueue(ck->remote, j->id, j->manifest.created_unix_ms);
        if (ck->remote && j->wait_remote) {
            /* The reply waits for the upload (on_remote_done). */
            j->next = ck->waiting;
            ck->waiting = j;
            return;
        }
        reply_snapshot(j, NULL);
    } else {
        ck->restores++;
        ck->last_restore_ms = j->duration_ms;
        sv_info("restore complete: %" PRIu64 " entries in %u state(s), key groups %u-%u, %" PRIu64
                " ms",
                j->restored_entries, j->restored_states, j->first, j->last, j->duration_ms);
        if (j->restored_expired)
            sv_info("restore: %" PRIu64 " entries that expired since their checkpoint were left "
                    "out",
                    j->restored_expired);
        Statesrv__V1__RestoreResult r = STATESRV__V1__RESTORE_RESULT__INIT;
        r.entries = j->restored_entries;
        r.states = j->restored_states;
        r.kg_first = j->first;
        r.kg_last = j->last;
        r.duration_ms = j->duration_ms;
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_RESTORE;
        resp.restore = &r;
        reply(j, &resp);
    }
    sv_arena_reset(&srv->arena);
    job_free(j);
}

static struct job *job_new(struct sv_checkpoints *ck, enum job_kind kind, struct sv_conn *c,
                           uint64_t req_id)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->ck = ck;
    j->waiter = c;
    j->req_id = req_id;
    j->work.data = j;
    j->t0_ns = c ? uv_hrtime() : 0;
    return j;
}

static int busy_msg(const struct sv_checkpoints *ck, char *msg, size_t msglen)
{
    const struct job *j = ck->running ? ck->running : ck->queued;
    if (j->kind == JOB_SNAPSHOT)
        snprintf(msg, msglen, "checkpoint %" PRIu64 " is being written; try again when it is done",
                 j->id);
    else
        snprintf(msg, msglen, "a restore is running; try again when it is done");
    return SV_EBUSY;
}

int sv_checkpoints_queue_snapshot(struct sv_checkpoints *ck, struct sv_conn *c, uint64_t req_id,
                                  int has_id, uint64_t id, int full, int wait_remote, char *msg,
                                  size_t msglen)
{
    if (sv_checkpoints_busy(ck))
        return busy_msg(ck, msg, msglen);
    if (wait_remote && !ck->remote) {
        snprintf(msg, msglen,
                 "wait_remote: checkpoint_remote is not set, so there is no remote "
                 "copy to wait for");
        return SV_EINVAL;
    }
    uint64_t *ids;
    size_t n;
    /* Every chk-<id> name counts, complete or not: an id is never reused. */
    int rc = list_ids_all(ck->cfg->checkpoint_dir, &ids, &n, 1);
    if (rc) {
        snprintf(msg, msglen, "cannot read checkpoint_dir %s: %s", ck->cfg->checkpoint_dir,
                 strerror(-rc));
        return rc;
    }
    uint64_t highest = n ? ids[n - 1] : 0;
    free(ids);
    /* Nor is an id the store holds under this sidecar's prefix (a new
     * machine under the same name): its objects are never overwritten. */
    if (sv_remote_highest(ck->remote) > highest)
        highest = sv_remote_highest(ck->remote);
    char dir[PATH_LEN];
    if (has_id) {
        if (id == 0) {
            snprintf(msg, msglen, "checkpoint id 0 is not allowed (ids start at 1)");
            return SV_EINVAL;
        }
        ckpt_path(ck, id, dir, sizeof(dir));
        if (access(dir, F_OK) == 0) {
            snprintf(msg, msglen, "checkpoint %" PRIu64 " already exists (%s)", id, dir);
            return SV_EINVAL;
        }
    } else {
        if (highest == UINT64_MAX) {
            snprintf(msg, msglen, "no checkpoint id is left after %" PRIu64, highest);
            return SV_EINVAL;
        }
        id = highest + 1;
    }
    struct job *j = job_new(ck, JOB_SNAPSHOT, c, req_id);
    if (!j) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    j->id = id;
    j->full = full;
    j->wait_remote = wait_remote;
    ckpt_path(ck, id, j->dir, sizeof(j->dir));
    snprintf(j->tmpdir, sizeof(j->tmpdir), "%.4000s/" TMP_PREFIX "%" PRIu64 ".tmp",
             ck->cfg->checkpoint_dir, id);
    ck->queued = j;
    return 0;
}

/* A restore source: a checkpoint id here, or a checkpoint directory under
 * checkpoint_dir or one of restore_roots, after resolving .. and symlinks. */
static int resolve_source(struct sv_checkpoints *ck, const char *s, char **out, char *msg,
                          size_t msglen)
{
    char path[PATH_LEN], real[PATH_MAX];
    size_t len = strlen(s);
    int numeric = len > 0 && len <= 20 && strspn(s, "0123456789") == len;
    if (len == 0 || len >= PATH_MAX) {
        snprintf(msg, msglen, "restore source %s", len ? "is too long" : "is empty");
        return SV_EINVAL;
    }
    if (strncmp(s, "s3://", 5) == 0) {
        /* Confined to checkpoint_remote's prefix; fetched by the job. */
        int rc = sv_remote_check_source(ck->remote, s, msg, msglen);
        if (rc)
            return rc;
        if (!(*out = strdup(s))) {
            snprintf(msg, msglen, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
    if (numeric) {
        errno = 0;
        uint64_t id = strtoull(s, NULL, 10);
        if (errno) {
            snprintf(msg, msglen, "restore source '%s' is not a checkpoint id", s);
            return SV_EINVAL;
        }
        ckpt_path(ck, id, path, sizeof(path));
        s = path;
    }
    if (!realpath(s, real)) {
        /* Say no more than "not found": the answer must not map the
         * server's filesystem for the client. */
        snprintf(msg, msglen,
                 "restore source %.200s: no such checkpoint under checkpoint_dir "
                 "or restore_roots",
                 numeric ? s + strlen(ck->cfg->checkpoint_dir) + 1 : s);
        return SV_ENOTFOUND;
    }
    /* Allowed roots: checkpoint_dir, then each of restore_roots. */
    char roots[sizeof(ck->cfg->restore_roots) + PATH_LEN];
    snprintf(roots, sizeof(roots), "%s:%s", ck->cfg->checkpoint_dir, ck->cfg->restore_roots);
    int allowed = 0;
    for (char *save = NULL, *r = strtok_r(roots, ":", &save); r && !allowed;
         r = strtok_r(NULL, ":", &save)) {
        char rr[PATH_MAX];
        if (!*r || !realpath(r, rr))
            continue;
        size_t n = strlen(rr);
        allowed = strncmp(real, rr, n) == 0 && real[n] == '/' && real[n + 1] != '\0';
    }
    if (!allowed) {
        snprintf(msg, msglen, "restore source %.200s is outside checkpoint_dir and restore_roots",
                 s);
        return SV_EINVAL;
    }
    /* A checkpoint is a directory; anything else is the client's mistake,
     * answered here (stat does not open: a FIFO cannot block it). */
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "restore source %.200s is not a checkpoint directory", s);
        return SV_EINVAL;
    }
    *out = strdup(real);
    if (!*out) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int prepare_restore(struct sv_checkpoints *ck, struct job *j, char *const *sources,
                           size_t nsources, int has_range, uint32_t first, uint32_t last, char *msg,
                           size_t msglen)
{
    uint32_t groups = sv_store_key_groups(ck->srv->store);
    if (nsources == 0 || nsources > SV_RESTORE_MAX_SOURCES) {
        snprintf(msg, msglen, "restore needs 1 to %d sources, got %zu", SV_RESTORE_MAX_SOURCES,
                 nsources);
        return SV_EINVAL;
    }
    if (has_range && (first > last || last >= groups)) {
        snprintf(msg, msglen, "key group range %u-%u is invalid: need first <= last < %u", first,
                 last, groups);
        return SV_EINVAL;
    }
    j->first = has_range ? first : 0;
    j->last = has_range ? last : groups - 1;
    j->has_range = has_range;
    for (size_t i = 0; i < nsources; i++) {
        int rc = resolve_source(ck, sources[i], &j->sources[i], msg, msglen);
        if (rc)
            return rc;
        j->nsources++;
        /* The same checkpoint twice would only be refused as an overlap
         * after verifying it twice: refuse it now. */
        for (size_t k = 0; k < i; k++) {
            if (strcmp(j->sources[k], j->sources[i]) == 0) {
                snprintf(msg, msglen, "restore sources %zu and %zu are the same checkpoint", k, i);
                return SV_EINVAL;
            }
        }
    }
    return 0;
}

int sv_checkpoints_queue_restore(struct sv_checkpoints *ck, struct sv_conn *c, uint64_t req_id,
                                 char *const *sources, size_t nsources, int has_range,
                                 uint32_t first, uint32_t last, char *msg, size_t msglen)
{
    if (sv_checkpoints_busy(ck))
        return busy_msg(ck, msg, msglen);
    struct job *j = job_new(ck, JOB_RESTORE, c, req_id);
    if (!j) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    int rc = prepare_restore(ck, j, sources, nsources, has_range, first, last, msg, msglen);
    if (rc) {
        job_free(j);
        return rc;
    }
    ck->queued = j;
    return 0;
}

void sv_checkpoints_drop_queued(struct sv_checkpoints *ck)
{
    job_free(ck->queued);
    ck->queued = NULL;
}

void sv_checkpoints_start_queued(struct sv_checkpoints *ck)
{
    struct job *j = ck->queued;
    if (!j)
        return;
    ck->queued = NULL;
    struct sv_server *srv = ck->srv;
    j->started_ms = sv_now_ms();
    atomic_store(&ck->prog_entries, 0);
    atomic_store(&ck->prog_total, 0);
    atomic_store(&ck->prog_bytes, 0);
    if (j->kind == JOB_SNAPSHOT) {
        int rc = sv_store_snapshot_begin(srv->store, &j->snap);
        if (rc) {
            job_fail(j, rc, "cannot begin the snapshot: %s", sv_strerror(rc));
            reply_error(j, rc, j->msg);
            job_free(j);
            return;
        }
        j->log_cut = sv_store_snapshot_log_cut(j->snap);
        sv_info("checkpoint %" PRIu64 ": snapshot of %zu state(s) begins", j->id,
                sv_store_snapshot_nstates(j->snap));
    } else {
        ck->restoring = 1;
        sv_info("restore from %zu source(s), key groups %u-%u, begins", j->nsources, j->first,
                j->last);
    }
    ck->running = j;
    int rc = uv_queue_work(srv->loop, &j->work,
                           j->kind == JOB_SNAPSHOT ? snapshot_work : restore_work, job_done);
    if (rc) {
        /* The callback never runs: finish here. */
        job_fail(j, SV_EINTERNAL, "cannot start the job: %s", uv_strerror(rc));
        job_done(&j->work, 0);
    }
}

/* --- synchronous ops ------------------------------------------------------ */

/* The remote state of checkpoint id, for list_checkpoints. */
static Statesrv__V1__CheckpointRemote *remote_to_pb(struct sv_checkpoints *ck, uint64_t id,
                                                    ProtobufCAllocator *a)
{
    Statesrv__V1__CheckpointRemote *p = pb_alloc(a, sizeof(*p));
    char url[SV_PATH_MAX + 128], err[512];
    if (!p)
        return NULL;
    statesrv__v1__checkpoint_remote__init(p);
    enum sv_remote_state st = sv_remote_state(ck->remote, id, url, sizeof(url), err, sizeof(err));
    p->checkpoint_id = id;
    p->state = (char *)sv_remote_state_name(st == SV_REMOTE_NONE ? SV_REMOTE_LOCAL : st);
    p->url = pb_strdup(a, url);
    p->error = pb_strdup(a, err);
    return p->url && p->error ? p : NULL;
}

int sv_checkpoints_list(struct sv_checkpoints *ck, ProtobufCAllocator *alloc,
                        Statesrv__V1__CheckpointManifest ***out, size_t *n,
                        Statesrv__V1__CheckpointRemote ***remote, size_t *nremote,
                        Statesrv__V1__CheckpointProblem ***problems, size_t *nproblems, char *msg,
                        size_t msglen)
{
    *remote = NULL;
    *nremote = 0;
    *problems = NULL;
    *nproblems = 0;
    uint64_t *ids;
    size_t count;
    int rc = list_ids(ck->cfg->checkpoint_dir, &ids, &count);
    if (rc) {
        snprintf(msg, msglen, "cannot read checkpoint_dir %s: %s", ck->cfg->checkpoint_dir,
                 strerror(-rc));
        return rc;
    }
    *n = 0;
    *out = pb_alloc(alloc, (count ? count : 1) * sizeof(**out));
    if (ck->remote)
        *remote = pb_alloc(alloc, (count ? count : 1) * sizeof(**remote));
    *problems = pb_alloc(alloc, (count ? count : 1) * sizeof(**problems));
    if (!*out || (ck->remote && !*remote) || !*problems) {
        free(ids);
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        char dir[PATH_LEN], err[256];
        ckpt_path(ck, ids[i], dir, sizeof(dir));
        struct sv_ckpt_reader *r;
        if (sv_ckpt_open(dir, &r, err, sizeof(err))) {
            /* Not checked: the other files of its chain (verify does). */
            sv_warn("checkpoints: skipping %s: %s", dir, err);
            Statesrv__V1__CheckpointProblem *p = pb_alloc(alloc, sizeof(*p));
            char *path = pb_alloc(alloc, strlen(dir) + 1), *why = pb_alloc(alloc, strlen(err) + 1);
            if (!p || !path || !why) {
                free(ids);
                return -ENOMEM;
            }
            statesrv__v1__checkpoint_problem__init(p);
            p->id = ids[i];
            p->path = strcpy(path, dir);
            p->problem = strcpy(why, err);
            sv_utf8_scrub(p->path);
            sv_utf8_scrub(p->problem);
            (*problems)[(*nproblems)++] = p;
            continue;
        }
        Statesrv__V1__CheckpointManifest *m = manifest_to_pb(sv_ckpt_manifest(r), alloc, 1);
        sv_ckpt_close(r);
        Statesrv__V1__CheckpointRemote *rm = ck->remote ? remote_to_pb(ck, ids[i], alloc) : NULL;
        if (!m || (ck->remote && !rm)) {
            free(ids);
            return -ENOMEM;
        }
        (*out)[(*n)++] = m;
        if (rm)
            (*remote)[(*nremote)++] = rm;
    }
    free(ids);
    return 0;
}

int sv_checkpoints_delete(struct sv_checkpoints *ck, uint64_t id, char *msg, size_t msglen)
{
    if (sv_checkpoints_busy(ck))
        return busy_msg(ck, msg, msglen);
    char dir[PATH_LEN], manifest[PATH_LEN];
    ckpt_path(ck, id, dir, sizeof(dir));
    snprintf(manifest, sizeof(manifest), "%.4200s/" SV_CKPT_MANIFEST_FILE, dir);
    struct stat st;
    /* A directory without MANIFEST is no checkpoint (a deleted one whose
     * data another one's chain still names). */
    if (stat(manifest, &st)) {
        snprintf(msg, msglen, "checkpoint %" PRIu64 " does not exist", id);
        return SV_ENOTFOUND;
    }
    int rc = remove_checkpoint(ck, id);
    if (rc) {
        snprintf(msg, msglen, "cannot remove %s: %s", dir, strerror(-rc));
        return rc;
    }
    sv_info("checkpoints: deleted chk-%" PRIu64, id);
    if (ck->remote)
        sv_remote_forget(ck->remote, id);
    return 0;
}

void sv_checkpoints_stats(struct sv_checkpoints *ck, ProtobufCAllocator *alloc,
                          Statesrv__V1__StatsResult *r)
{
    r->checkpoints_completed = ck->completed;
    r->last_checkpoint_id = ck->last_id;
    r->last_checkpoint_bytes = ck->last_bytes;
    r->last_checkpoint_duration_ms = ck->last_duration_ms;
    r->last_checkpoint_unix_ms = ck->last_unix_ms;
    r->restores_completed = ck->restores;
    r->last_restore_duration_ms = ck->last_restore_ms;
    r->ttl_expired_checkpoint = ck->expired_deleted;
    struct sv_store_sweep_stats sw;
    sv_store_sweep_stats(ck->srv->store, &sw);
    r->ttl_expired_read = sw.expired_read;
    r->ttl_expired_sweep = sw.expired_sweep;
    r->ttl_sweep_seconds = sw.seconds;
    r->ttl_sweep_visited = sw.visited;
    sv_remote_stats(ck->remote, alloc, r);
    const struct job *j = ck->running;
    if (!j)
        return;
    Statesrv__V1__CheckpointProgress *p = pb_alloc(alloc, sizeof(*p));
    if (!p)
        return;
    statesrv__v1__checkpoint_progress__init(p);
    p->kind = j->kind == JOB_SNAPSHOT ? "snapshot" : "restore";
    p->checkpoint_id = j->id;
    p->entries = atomic_load(&ck->prog_entries);
    p->total_entries = atomic_load(&ck->prog_total);
    p->bytes = atomic_load(&ck->prog_bytes);
    p->elapsed_ms = sv_now_ms() - j->started_ms;
    r->checkpoint_in_progress = p;
}

int sv_checkpoints_restore_now(struct sv_checkpoints *ck, char *const *sources, size_t nsources,
                               int has_range, uint32_t first, uint32_t last, char *err,
                               size_t errlen)
{
    struct job *j = job_new(ck, JOB_RESTORE, NULL, 0);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = prepare_restore(ck, j, sources, nsources, has_range, first, last, err, errlen);
    if (rc) {
        job_free(j);
        return rc;
    }
    j->started_ms = sv_now_ms();
    restore_work(&j->work);
    restore_switch(j);
    rc = j->rc;
    if (rc)
        snprintf(err, errlen, "%s", j->msg);
    else
        sv_info("restored %" PRIu64 " entries in %u state(s) from %zu source(s), key groups "
                "%u-%u, in %" PRIu64 " ms",
                j->restored_entries, j->restored_states, j->nsources, j->first, j->last,
                j->duration_ms);
    job_free(j);
    return rc;
}
