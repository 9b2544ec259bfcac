/* Checkpoints: snapshot the store to <checkpoint_dir>/chk-<id>/ and restore
 * from one or several checkpoints (rescaling by key-group range).
 *
 * One job (snapshot or restore) runs at a time, on libuv's thread pool; the
 * loop keeps serving. The connection that asked waits for the job's reply (its
 * later requests wait behind it, as replies are in order); other connections
 * are not held. While a restore runs, writes are refused with BUSY and reads
 * see the old state; the switch to the restored state is atomic.
 *
 * A request becomes a job only after the group commit that carried it: a
 * snapshot then holds exactly the writes acknowledged before it (see
 * sv_store_snapshot_begin), and a batch replay cannot start a job twice. */
#ifndef SV_CHECKPOINT_H
#define SV_CHECKPOINT_H

#include "statesrv.pb-c.h"

#include <stddef.h>
#include <stdint.h>

struct sv_server;
struct sv_conn;
struct sv_checkpoints;

#define SV_RESTORE_MAX_SOURCES 64

/* Creates checkpoint_dir if needed and removes temporary directories left by
 * a crash. 0 or an error with err filled. */
int sv_checkpoints_new(struct sv_server *srv, struct sv_checkpoints **out, char *err,
                       size_t errlen);
void sv_checkpoints_free(struct sv_checkpoints *ck);

/* A job runs, or one is queued for after the current commit. */
int sv_checkpoints_busy(const struct sv_checkpoints *ck);
/* A restore runs: writes must be refused. */
int sv_checkpoints_restoring(const struct sv_checkpoints *ck);

/* Dispatch: queue a job for connection c's request `req_id`. 0 means the
 * reply comes later (c waits); an error means answer now with msg. */
/* wait_remote: the reply waits for the checkpoint's upload (remote.h). */
int sv_checkpoints_queue_snapshot(struct sv_checkpoints *ck, struct sv_conn *c, uint64_t req_id,
                                  int has_id, uint64_t id, int full, int wait_remote, char *msg,
                                  size_t msglen);
int sv_checkpoints_queue_restore(struct sv_checkpoints *ck, struct sv_conn *c, uint64_t req_id,
                                 char *const *sources, size_t nsources, int has_range,
                                 uint32_t first, uint32_t last, char *msg, size_t msglen);

/* Batch: after a successful commit (no transaction open) start the queued
 * job; after a failed one, or a replay, drop it. */
void sv_checkpoints_start_queued(struct sv_checkpoints *ck);
void sv_checkpoints_drop_queued(struct sv_checkpoints *ck);

/* A connection is going away: a reply for it is no longer wanted. */
void sv_checkpoints_conn_gone(struct sv_checkpoints *ck, struct sv_conn *c);
/* Shutdown: ask a running job to stop early (it cleans up after itself),
 * stop uploading, and answer the snapshots waiting for an upload. */
void sv_checkpoints_cancel(struct sv_checkpoints *ck);
/* Shutdown: close the loop handles (the uploader's wake-up). */
void sv_checkpoints_close_handles(struct sv_checkpoints *ck);

/* list_checkpoints and delete_checkpoint (synchronous, small). The list's
 * messages are allocated with alloc. */
int sv_checkpoints_list(struct sv_checkpoints *ck, ProtobufCAllocator *alloc,
                        Statesrv__V1__CheckpointManifest ***out, size_t *n,
                        Statesrv__V1__CheckpointRemote ***remote, size_t *nremote,
                        Statesrv__V1__CheckpointProblem ***problems, size_t *nproblems, char *msg,
                        size_t msglen);
int sv_checkpoints_delete(struct sv_checkpoints *ck, uint64_t id, char *msg, size_t msglen);

/* Snapshots that failed since start. */
uint64_t sv_checkpoints_failures(const struct sv_checkpoints *ck);

/* Fills the checkpoint fields of a stats reply (progress from the arena). */
void sv_checkpoints_stats(struct sv_checkpoints *ck, ProtobufCAllocator *alloc,
                          Statesrv__V1__StatsResult *r);

/* `statesrvd --restore-from`: the whole restore, synchronously, before the
 * server listens. 0 or an error with err filled. */
int sv_checkpoints_restore_now(struct sv_checkpoints *ck, char *const *sources, size_t nsources,
                               int has_range, uint32_t first, uint32_t last, char *err,
                               size_t errlen);

#endif
