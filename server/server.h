/* statesrvd's event loop: listeners, connections, group commit, shutdown.
 *
 * Request flow: libuv reads bytes into a connection's frame reader (read_cb)
 * and marks the connection ready. Once per loop iteration, in the check
 * phase, the server takes the frames of every ready connection, decodes and
 * dispatches them inside one LMDB write transaction, appends the replies to
 * each connection's output, commits, and only then writes the replies out:
 * a reply never acknowledges a write that is not committed.
 *
 * If the transaction fails part-way (the map is full, or LMDB poisons it),
 * the server aborts, rewinds every connection of the batch to where the batch
 * began (input frames are kept until commit), grows the map or marks the
 * offending request as failed, and runs the batch again. */
#ifndef SV_SERVER_H
#define SV_SERVER_H

#include "config.h"
#include "statesrv.pb-c.h"
#include "store.h"
#include "sv_arena.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_frame.h"

#include <stdint.h>
#include <uv.h>

#define SV_OP_SLOTS 32 /* indexed by Request op case */

enum sv_conn_state {
    SV_CONN_OPEN,     /* reading and answering */
    SV_CONN_DRAINING, /* a fatal error or shutdown: flush replies, then shut down */
    SV_CONN_LINGER,   /* write side shut; discarding input until EOF or timeout */
    SV_CONN_CLOSING,  /* uv_close issued */
    SV_CONN_STATE_MAX
};

const char *sv_conn_state_name(enum sv_conn_state st);

/* What an open connection does once the replies it has been given leave.
 * DRAIN and CLOSE are decided inside a group commit and carried out when it
 * ends (batch.c); AWAIT lasts until the checkpoint job replies. */
enum sv_conn_fate {
    SV_FATE_SERVE, /* take its next requests */
    SV_FATE_AWAIT, /* a checkpoint job owes it a reply; its next requests wait */
    SV_FATE_DRAIN, /* its last reply is an error (framing, authentication): write, then close */
    SV_FATE_CLOSE, /* not even that error could be queued: close at once */
    SV_FATE_MAX
};

const char *sv_conn_fate_name(enum sv_conn_fate f);

struct sv_server;

struct sv_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    struct sv_server *srv;
    enum sv_conn_state state;
    uint64_t id;
    char peer[64];
    char client_name[129];

    struct sv_frame_reader in;
    struct sv_buf out;  /* replies not yet handed to libuv */
    struct sv_buf wbuf; /* replies being written */
    size_t wsent;       /* of wbuf, already sent before uv_write took the rest */
    uv_write_t wreq;
    int writing;
    int reading;
    int eof;

    /* Group-commit bookkeeping, valid while the connection is in a batch. */
    size_t in_mark;
    size_t out_mark;
    int in_batch;
    enum sv_conn_fate fate;
    int authed;                /* hello carried the token (always 1 without auth) */
    int preauth;               /* counted in srv->npreauth: open, token not yet given */
    uint64_t accepted_ms;      /* the handshake's deadline runs from here */
    uint64_t last_read_ms;     /* for idle_timeout */
    uint64_t frame_since_ms;   /* the incomplete frame at the tail began; 0: none */
    uint64_t blocked_since_ms; /* output over the limit since; 0: not */
    uint64_t drain_since_ms;   /* DRAINING: since the last reply bytes left */
    size_t drain_pending;      /* DRAINING: bytes not yet sent at the last sweep */
    uint64_t discarded;        /* bytes read and dropped while lingering */

    struct sv_conn *ready_prev, *ready_next;
    int on_ready;
    struct sv_conn *all_prev, *all_next;

    uv_shutdown_t sreq;
    uv_timer_t linger;
    int linger_open;
};

#define SV_STATUS_SLOTS 16 /* wire statuses 0..8, with room */
/* Requests by op: saved and restored with the batch when it is replayed. */
struct sv_op_counter {
    uint64_t count;
    uint64_t errors;
    uint64_t by_status[SV_STATUS_SLOTS];
};

/* Latency by op (the metrics' histogram); bounds in metrics.c. */
#define SV_LAT_BUCKETS 21
struct sv_op_latency {
    uint64_t buckets[SV_LAT_BUCKETS]; /* not cumulative; beyond the last: count only */
    uint64_t count;
    uint64_t sum_ns;
};

/* Connection-level failures, for statesrv_errors_total{kind}. */
enum sv_conn_error {
    SV_CERR_PROTOCOL,
    SV_CERR_IDLE_TIMEOUT,
    SV_CERR_HEADER_TIMEOUT,
    SV_CERR_OUTPUT_TIMEOUT,
    SV_CERR_ACCEPT,
    SV_CERR_AUTH_TIMEOUT,
    SV_CERR_DRAIN_TIMEOUT,
    SV_CERR_PREAUTH_EVICTED,
    SV_CERR_COUNT
};

struct sv_metrics;

struct sv_server {
    uv_loop_t *loop;
    const struct sv_config *cfg;
    struct sv_store *store;
    struct sv_checkpoints *ckpt;

    uv_tcp_t tcp;
    uv_pipe_t unix_sock;
    int tcp_open, unix_open;
    uv_signal_t sigterm, sigint;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t stop_timer;
    uv_timer_t retry_timer; /* after a transaction could not begin */
    uv_timer_t sweep_timer; /* idle, header and output timeouts; stale readers */
    uv_timer_t ckpt_timer;  /* checkpoint_interval */
    uv_timer_t ttl_timer;   /* the TTL sweep, every TTL_SWEEP_TICK_MS */
    unsigned sweeps;
    double sweep_yield; /* TTL sweep: moving average of the expired fraction it meets */
    char token[1024];   /* auth token; token_len 0: no authentication */
    char tcp_bound[80], metrics_bound[80]; /* HOST:PORT they listen on ("" when off) */
    size_t token_len;
    int backoff;
    int stopping;
    int exit_code;

    struct sv_conn *ready_head, *ready_tail;
    struct sv_conn *all_head;
    uint32_t nconns;
    uint32_t npreauth; /* open connections that have not authenticated (auth on) */
    uint64_t next_conn_id;

    struct sv_conn **batch; /* connections in the current batch */
    size_t nbatch, batch_cap;
    struct sv_conn *batch_next_first; /* its request ended the batch: goes first next */
    struct sv_arena arena;

    uint64_t started_ms;   /* monotonic */
    double started_unix_s; /* wall clock, for process_start_time_seconds */
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t commits;
    uint64_t bytes_in, bytes_out;
    struct sv_op_counter ops[SV_OP_SLOTS];
    struct sv_op_latency lat[SV_OP_SLOTS];
    uint64_t conn_errors[SV_CERR_COUNT];
    struct sv_metrics *metrics; /* NULL: metrics_listen is off */
};

/* A restore to perform before serving (statesrvd --restore-from). */
struct sv_startup_restore {
    char **sources;
    size_t nsources;
    int has_range;
    uint32_t first, last;
};

/* Sets up checkpoints (and runs the start-up restore, if any), then
 * listeners and handles on loop. 0, or an error with err filled. */
int sv_server_init(struct sv_server *srv, uv_loop_t *loop, const struct sv_config *cfg,
                   struct sv_store *store, const struct sv_startup_restore *restore, char *err,
                   size_t errlen);
/* Refuses a TCP listener other hosts can reach when no auth token is set
 * (unless allow_insecure_remote). Call before opening anything. */
int sv_server_check_exposure(const struct sv_config *cfg, char *err, size_t errlen);
/* Binds the TCP listen address once and lets it go, so that a port in use
 * is refused before the data directory is created or opened. 0 or -errno
 * with err filled. */
int sv_server_probe_listen(const struct sv_config *cfg, char *err, size_t errlen);
struct sockaddr_storage;
/* HOST:PORT or [V6]:PORT (a name is resolved) into ss. 0 or SV_EINVAL. */
int sv_server_parse_listen(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen);
int sv_server_is_loopback(const struct sockaddr_storage *ss);
/* "1.2.3.4" or "[::1]", and the port. */
void sv_server_addr_name(const struct sockaddr_storage *ss, char *out, size_t cap, int *port);
/* Runs until SIGTERM/SIGINT has drained every connection. Returns the exit code. */
int sv_server_run(struct sv_server *srv);
void sv_server_free(struct sv_server *srv);
/* A connection's memory is gone; during shutdown the last one ends the loop. */
void sv_server_conn_gone(struct sv_server *srv);
/* Work is waiting: make the next poll return at once. */
void sv_server_wake(struct sv_server *srv);

/* conn.c */
void sv_conn_accept(struct sv_server *srv, uv_stream_t *listener, int is_unix);
void sv_conn_flush(struct sv_conn *c);
void sv_conn_drain(struct sv_conn *c); /* flush what is queued, then close */
void sv_conn_close(struct sv_conn *c); /* at once */
/* A checkpoint job's reply to the request c waits on (resp->id set by the
 * caller): queued and written, and c takes requests again. */
void sv_conn_reply_deferred(struct sv_conn *c, Statesrv__V1__Response *resp);
/* Queues one connection-level error (id 0) after the pending replies, then
 * drains. */
void sv_conn_fail(struct sv_conn *c, enum sv_status status, const char *msg);
void sv_conn_ready(struct sv_conn *c);       /* queue for the next batch */
void sv_conn_ready_first(struct sv_conn *c); /* ... at the head of the queue */
void sv_conn_unready(struct sv_conn *c);
/* hello carried the right token: full-size frames from now on. */
void sv_conn_authenticated(struct sv_conn *c);
/* Shutdown: take no new requests from this connection. */
void sv_conn_stop_reading(struct sv_conn *c);
/* Closes connections past their deadlines: idle_timeout, header_timeout
 * (a whole frame, and with auth the handshake), output_timeout (unread
 * replies, also while draining). */
void sv_conn_sweep(struct sv_server *srv, uint64_t now_ms);
/* Before authentication a client may send only small frames. */
#define SV_PREAUTH_MAX_FRAME 4096u
/* Bytes of replies not yet written. */
size_t sv_conn_output(const struct sv_conn *c);

/* batch.c */
void sv_batch_run_all(struct sv_server *srv);

/* dispatch.c: answers one request inside the current transaction. resp is
 * filled with status, message and result (allocated in srv->arena). Returns
 * SV_DISPATCH_DEFERRED when a checkpoint job will answer later instead (the
 * connection then waits). */
/* The op's name ("get", "put", ...; "unknown" for none), and whether a
 * checkpoint job answers it (snapshot, restore), from dispatch.c's op table. */
const char *sv_op_name(unsigned op_slot);
int sv_op_is_job(unsigned op_slot);
#define SV_DISPATCH_REPLY 0
#define SV_DISPATCH_DEFERRED 1
int sv_dispatch(struct sv_server *srv, struct sv_conn *c, const Statesrv__V1__Request *req,
                Statesrv__V1__Response *resp);

uint64_t sv_now_ms(void);

#endif
