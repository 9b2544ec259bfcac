/* Metrics: the server's counters, served in the Prometheus text exposition
 * format (version 0.0.4) by a small HTTP endpoint on the server's own loop
 * (metrics_listen), and gathered for the `stats` op.
 *
 * The endpoint answers GET (and HEAD) /metrics, /healthz (200 while the loop
 * answers) and /readyz (503 with the reason while a restore runs, during
 * shutdown, or while the store is full); any other path gets 404 and
 * any other method 405. Requests are parsed with http-parser, bounded to
 * SV_METRICS_MAX_REQUEST bytes (431 beyond), and a connection is closed
 * SV_METRICS_TIMEOUT_MS after it was accepted, answered or not. Every
 * response closes its connection. */
#ifndef SV_METRICS_H
#define SV_METRICS_H

#include "statesrv.pb-c.h"
#include "sv_error.h"

#include <stddef.h>
#include <stdint.h>

#define SV_METRICS_MAX_REQUEST (8 * 1024)
#define SV_METRICS_TIMEOUT_MS 10000
#define SV_METRICS_MAX_CONNS 64

struct sv_server;
struct sv_buf;

/* Listens on cfg->metrics_listen (nothing to do when it is empty). 0, or an
 * error with a message in err. */
int sv_metrics_start(struct sv_server *srv, char *err, size_t errlen);
/* Closes the listener and every scrape connection (shutdown). */
void sv_metrics_stop(struct sv_server *srv);

/* Counts a request's status for its op: by status, and as an error unless
 * OK or NOT_FOUND (a miss is an answer). */
void sv_metrics_count_status(struct sv_server *srv, unsigned op_slot, enum sv_status status);
/* Records a request's latency: t0_ns is uv_hrtime() when it was decoded. */
void sv_metrics_observe(struct sv_server *srv, unsigned op_slot, uint64_t t0_ns);
/* The same latency for n requests of one op (a group commit's). */
void sv_metrics_observe_n(struct sv_server *srv, unsigned op_slot, uint64_t t0_ns, uint64_t n);

/* Every state with its entry count and page bytes, from alloc. Uses the
 * store's group transaction when one is open, else opens and aborts one. */
int sv_stats_states(struct sv_server *srv, ProtobufCAllocator *alloc,
                    Statesrv__V1__StateInfo ***items, size_t *n);

/* Fills r with the server's counters, states, map space and checkpoint
 * figures (the `stats` op): everything /metrics exposes, which
 * sv_metrics_render() takes from this result, so the two cannot disagree.
 * Memory comes from alloc (r->latency_bounds_us points at a static table).
 * Needs the store's group transaction when one is open, else opens (and
 * aborts) one itself; the map space comes from a read transaction of its own
 * (sv_store_space), so it is the last commit's. 0 or an error. */
int sv_stats_fill(struct sv_server *srv, ProtobufCAllocator *alloc, Statesrv__V1__StatsResult *r);

/* Appends the whole exposition to out. 0 or an error (-ENOMEM, store). */
int sv_metrics_render(struct sv_server *srv, struct sv_buf *out);

#endif
