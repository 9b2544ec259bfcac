/* Remote checkpoints: copies of the local checkpoints on S3-compatible
 * object storage (checkpoint_remote = s3://BUCKET/PREFIX).
 *
 * Layout (docs/checkpoint-format.md): s3://BUCKET/PREFIX/NODE/chk-<id>/data
 * and .../chk-<id>/MANIFEST, NODE being checkpoint_remote_node (the host
 * name by default) — the local directory's layout, so a remote MANIFEST's
 * chain names its files as a local one does, and a file that several
 * checkpoints share is one object, uploaded once.
 *
 * An upload thread copies each checkpoint once it is durable locally: every
 * file of its chain that is not there yet (HEAD: same size and the same
 * XXH3 in x-amz-meta-xxh3), then the MANIFEST, last: the remote commit
 * record, as it is locally. Only then is the checkpoint remote, and a marker
 * file chk-<id>/REMOTE says so locally (so a restart knows). A failed upload
 * is tried again with backoff (1 s doubling to 60 s); local checkpoints go
 * on meanwhile. At start every local checkpoint without the marker is
 * queued again. An existing remote object whose XXH3 differs is never
 * overwritten (another sidecar writing under the same NODE): the upload
 * fails, naming it.
 *
 * Threads: sv_remote_new, _free, _enqueue, _state and _stats are called on
 * the loop thread; _fetch on any thread (a restore job). Completions reach
 * the loop thread through a uv_async handle and the done callback. */
#ifndef SV_REMOTE_H
#define SV_REMOTE_H

#include "config.h"
#include "statesrv.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum sv_remote_state {
    SV_REMOTE_NONE,      /* remote copies are off, or the id is unknown */
    SV_REMOTE_LOCAL,     /* local only: waiting for its upload (or for a retry) */
    SV_REMOTE_UPLOADING, /* being uploaded */
    SV_REMOTE_REMOTE,    /* its MANIFEST is in the store */
    SV_REMOTE_STATE_MAX
};

const char *sv_remote_state_name(enum sv_remote_state st);

struct sv_remote;

/* Called on the loop thread after each upload attempt of a checkpoint: rc 0
 * (it is remote; url set) or the failure (msg set; it is tried again). */
typedef void (*sv_remote_done_fn)(void *ud, uint64_t id, int rc, const char *url, const char *msg);

/* *out NULL when checkpoint_remote is empty. Reads the credentials
 * (s3_credentials_file, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY),
 * queues the local checkpoints not yet remote and starts the upload thread.
 * 0 or an error with err filled (the server does not start). */
int sv_remote_new(const struct sv_config *cfg, uv_loop_t *loop, sv_remote_done_fn done, void *ud,
                  struct sv_remote **out, char *err, size_t errlen);
/* Closes the async handle (call before the loop's last run). */
void sv_remote_close_handles(struct sv_remote *r);
/* Stops the thread soon (an upload in flight is abandoned; it is redone
 * at the next start). */
void sv_remote_cancel(struct sv_remote *r);
/* Joins the thread and frees (after the loop has run its last). */
void sv_remote_free(struct sv_remote *r);

/* A checkpoint is durable locally: upload it. */
void sv_remote_enqueue(struct sv_remote *r, uint64_t id, uint64_t created_unix_ms);
/* A checkpoint was removed locally: forget it. */
void sv_remote_forget(struct sv_remote *r, uint64_t id);
/* The state of checkpoint id; its URL into url (cap bytes), and the last
 * upload error into msg (may be NULL). */
enum sv_remote_state sv_remote_state(struct sv_remote *r, uint64_t id, char *url, size_t cap,
                                     char *msg, size_t msgcap);
/* The highest checkpoint id the store holds under this node's prefix, as
 * listed when the thread started (0 before that or when none). */
uint64_t sv_remote_highest(struct sv_remote *r);
/* Fills the remote fields of a stats reply. */
void sv_remote_stats(struct sv_remote *r, ProtobufCAllocator *alloc, Statesrv__V1__StatsResult *s);

/* Whether url names a checkpoint restore may read: s3://BUCKET/PREFIX/.../
 * chk-<id> under checkpoint_remote's prefix. 0 or SV_EINVAL with msg. */
int sv_remote_check_source(const struct sv_remote *r, const char *url, char *msg, size_t msglen);
/* Downloads the checkpoint at url (checked by sv_remote_check_source) and
 * every file of its chain into dir (which must exist), as dir/chk-<id>/
 * MANIFEST and dir/chk-<link>/data, each file bounded by and exactly of the
 * size its MANIFEST gives; the local chain reader then checks every byte.
 * With ranged, of each file only what key groups first..last need
 * (sv_ckpt_remote_fetch_range: such files are read by range, not
 * verified whole). The checkpoint's directory goes to out; the bytes
 * fetched and the chain's to *fetched and *total. 0 or an error naming the
 * object. */
int sv_remote_fetch(struct sv_remote *r, const char *url, const char *dir, int ranged,
                    uint32_t first, uint32_t last, char *out, size_t cap, uint64_t *fetched,
                    uint64_t *total, char *err, size_t errlen);

#endif
