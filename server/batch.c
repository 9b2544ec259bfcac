/* Group commit: every request that arrived in one loop iteration runs in one
 * LMDB write transaction, and replies leave only after it commits.
 *
 * One batch, in order:
 *   take_requests()    each ready connection's frames, decoded and answered
 *                      inside the transaction (replies go to its output);
 *   replay()           when the transaction fails part-way, everything the
 *                      batch did is undone and it runs again: whole after
 *                      MDB_MAP_FULL grew the map, or up to the request that
 *                      LMDB refused, which is answered with the error (so
 *                      every batch makes progress);
 *   release_replies()  after the commit (or its failure, answered), each
 *                      connection's replies leave and its fate is carried
 *                      out.
 * Input frames stay in each connection's reader until the commit, which is
 * what makes the replay possible. */
#include "checkpoint.h"
#include "metrics.h"
#include "server.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_REQUESTS 8192u
#define BATCH_MAX_BYTES (16u * 1024 * 1024)
#define CONN_MAX_REQUESTS 1024u /* per connection per batch: others get a turn */
#define BATCHES_PER_TURN 8

/* One group commit's progress, and what a replay must restore. */
struct batch_run {
    size_t nreq, bytes;  /* taken so far (the batch's bounds) */
    uint64_t seq;        /* requests taken, counting from 1 in every run */
    uint64_t poison_seq; /* answer request #poison_seq with poison_err, then stop */
    int poison_err;
    /* The counters as the batch found them: a replay counts again. */
    struct sv_op_counter saved_ops[SV_OP_SLOTS];
    uint64_t saved_cerr[SV_CERR_COUNT];
};

/* What taking requests from a connection asks of the batch. */
enum take_result {
    TAKE_MORE,   /* go on with the next connection */
    TAKE_STOP,   /* commit now: nothing after this request may join the batch */
    TAKE_REPLAY, /* the transaction failed: replay() has undone the batch */
};

/* What decoding one request may allocate: protobuf-c materialises every
 * repeated item and unknown field, so a hostile 16 MiB frame of empty
 * submessages would otherwise take about a gigabyte. Real requests need the
 * payload bytes plus a few hundred bytes per item, and items are bounded by
 * max_batch_ops. */
static size_t decode_budget(const struct sv_config *cfg, size_t frame_len)
{
    return 2 * frame_len + (size_t)cfg->max_batch_ops * 512 + 64 * 1024;
}

/* The id of a request whose decoding failed, read straight off the wire
 * (field 1, varint), or 0. */
static uint64_t peek_request_id(const uint8_t *p, size_t n)
{
    uint64_t id;
    if (n >= 2 && p[0] == 0x08 && sv_varint_get(p + 1, n - 1, &id) > 0)
        return id;
    return 0;
}

static int batch_add(struct sv_server *srv, struct sv_conn *c)
{
    if (c->in_batch)
        return 0;
    if (srv->nbatch == srv->batch_cap) {
        size_t cap = srv->batch_cap ? srv->batch_cap * 2 : 64;
        struct sv_conn **n = realloc(srv->batch, cap * sizeof(*n));
        if (!n)
            return -1;
        srv->batch = n;
        srv->batch_cap = cap;
    }
    srv->batch[srv->nbatch++] = c;
    c->in_batch = 1;
    c->in_mark = c->in.pos;
    c->out_mark = c->out.len;
    c->fate = SV_FATE_SERVE;
    return 0;
}

/* Undoes everything the batch did to its connections. */
static void batch_rewind(struct sv_server *srv)
{
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        c->in.pos = c->in_mark;
        c->out.len = c->out_mark;
        c->fate = SV_FATE_SERVE;
        c->in_batch = 0;
    }
    srv->nbatch = 0;
    sv_arena_reset(&srv->arena);
    /* The replay queues it again. */
    sv_checkpoints_drop_queued(srv->ckpt);
}

/* The batch failed with err (its transaction is gone): set up the next run.
 * After MDB_MAP_FULL the map grows and the whole batch runs again; otherwise
 * (or when the map cannot grow) it runs up to request #at_seq, which is
 * answered with the error. 1 when the batch was undone to run again; 0 when
 * it cannot run again (the map cannot grow and at_seq is 0, a failed commit
 * with no request to blame): the batch is left as it is, to be answered. */
static int replay(struct sv_server *srv, struct batch_run *b, int err, uint64_t at_seq)
{
    int grown = err == SV_EMAPFULL ? sv_store_grow(srv->store) : err;
    if (grown && !at_seq)
        return 0;
    batch_rewind(srv);
    memcpy(srv->ops, b->saved_ops, sizeof(b->saved_ops));
    memcpy(srv->conn_errors, b->saved_cerr, sizeof(b->saved_cerr));
    if (grown) {
        b->poison_seq = at_seq;
        b->poison_err = err != SV_EMAPFULL ? err : grown == SV_EBUSY ? SV_EBUSY : SV_ENOSPACE;
    }
    return 1;
}

static int append_error(struct sv_conn *c, uint64_t id, int err, const char *msg)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    r.id = id;
    r.status = (Statesrv__V1__Status)sv_error_status(err);
    char text[1024];
    snprintf(text, sizeof(text), "%s", msg);
    sv_utf8_scrub(text);
    r.message = text;
    return sv_msg_append(&c->out, &r.base, UINT32_MAX);
}

/* A framing error: one reply with id 0, then the connection drains. */
static void fatal_reply(struct sv_conn *c, int err, const char *msg)
{
    if (err == SV_EPROTO || err == SV_ETOOLARGE)
        c->srv->conn_errors[SV_CERR_PROTOCOL]++;
    sv_warn_limited("conn %llu (%s): %s; closing", (unsigned long long)c->id, c->peer, msg);
    c->fate = append_error(c, 0, err, msg) == 0 ? SV_FATE_DRAIN : SV_FATE_CLOSE;
}

static int encode_reply(struct sv_server *srv, struct sv_conn *c, Statesrv__V1__Response *resp)
{
    int rc = sv_msg_append(&c->out, &resp->base, srv->cfg->max_frame_size);
    if (rc == SV_ETOOLARGE) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the reply would exceed max_frame_size (%u bytes)",
                 srv->cfg->max_frame_size);
        rc = append_error(c, resp->id, SV_ETOOLARGE, msg);
    }
    return rc;
}

/* The message for the request a failed transaction is blamed on. */
static void poison_msg(struct sv_server *srv, int err, char *msg, size_t cap)
{
    uint64_t map_size, map_used;
    sv_store_usage(srv->store, &map_size, &map_used);
    if (err == SV_ENOSPACE && map_size < srv->cfg->map_size_max)
        snprintf(msg, cap,
                 "the disk is full: the store map cannot grow past %llu MiB; reads still work",
                 (unsigned long long)(map_size >> 20));
    else if (err == SV_ENOSPACE)
        sv_store_nospace_msg(srv->store, msg, cap);
    else if (err == SV_EBUSY)
        snprintf(msg, cap,
                 "the store map is full and cannot grow while a checkpoint is being written; "
                 "retry when it completes");
    else
        snprintf(msg, cap, "store error: %s", sv_strerror(err));
}

/* The frame reader refused a frame's announced length. */
static void refuse_oversize(struct sv_conn *c)
{
    char msg[128];
    if (c->authed)
        snprintf(msg, sizeof(msg), "frame of %u bytes exceeds max_frame_size (%u)", c->in.bad_len,
                 c->srv->cfg->max_frame_size);
    else
        snprintf(msg, sizeof(msg),
                 "frame of %u bytes before authentication (the limit is %u until hello carries "
                 "the token)",
                 c->in.bad_len, SV_PREAUTH_MAX_FRAME);
    fatal_reply(c, SV_ETOOLARGE, msg);
}

/* Whether this batch may take one more request from c. */
static int room_for(const struct sv_server *srv, const struct batch_run *b, const struct sv_conn *c,
                    size_t conn_nreq)
{
    return b->nreq < BATCH_MAX_REQUESTS && b->bytes < BATCH_MAX_BYTES &&
           conn_nreq < CONN_MAX_REQUESTS && sv_conn_output(c) <= srv->cfg->max_output_buffer;
}

/* Takes c's requests while the batch has room: each is decoded, dispatched
 * in the transaction and its reply appended to c's output (sent only after
 * the commit). */
static enum take_result take_requests(struct sv_server *srv, struct batch_run *b, struct sv_conn *c)
{
    const struct sv_config *cfg = srv->cfg;
    size_t conn_nreq = 0;
    while (c->fate == SV_FATE_SERVE && room_for(srv, b, c, conn_nreq)) {
        const uint8_t *p;
        size_t n;
        size_t frame_pos = c->in.pos;
        int fr = sv_frame_reader_next(&c->in, &p, &n);
        if (fr == 0)
            break;
        if (fr < 0) {
            refuse_oversize(c);
            break;
        }
        b->nreq++;
        conn_nreq++;
        b->bytes += n + SV_FRAME_HEADER_SIZE;
        b->seq++;
        Statesrv__V1__Request *req;
        srv->arena.limit = srv->arena.used + decode_budget(cfg, n);
        int urc = sv_msg_unpack_request(p, n, &srv->arena.pb, &req);
        srv->arena.limit = 0;
        if (urc && srv->arena.exhausted) {
            /* Well-formed, perhaps, but far too many items: refuse it and
             * keep the connection. */
            srv->arena.exhausted = 0;
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the request has too many items to decode (frame of %zu bytes); at most "
                     "max_batch_ops = %u items per request",
                     n, cfg->max_batch_ops);
            if (append_error(c, peek_request_id(p, n), SV_ETOOLARGE, msg))
                fatal_reply(c, SV_EUNAVAIL, "out of memory for the reply");
            continue;
        }
        if (urc) {
            fatal_reply(c, SV_EPROTO,
                        "malformed request: not a statesrv.v1.Request with a known op");
            break;
        }
        int rc;
        if (!c->authed && req->op_case != STATESRV__V1__REQUEST__OP_HELLO) {
            rc = append_error(c, req->id, SV_EUNAUTH,
                              "authentication required: send hello with the token first");
            c->fate = rc ? SV_FATE_CLOSE : SV_FATE_DRAIN;
            break;
        }
        if (b->seq == b->poison_seq) {
            char msg[512];
            poison_msg(srv, b->poison_err, msg, sizeof(msg));
            if (append_error(c, req->id, b->poison_err, msg))
                fatal_reply(c, SV_EINTERNAL,
                            "out of memory encoding a reply; the request's effect is unknown");
            return TAKE_STOP;
        }
        if (req->op_case == STATESRV__V1__REQUEST__OP_BATCH &&
            sv_store_savepoint_needs_clean_txn(srv->store)) {
            /* With writemap a batch's savepoint is the whole group
             * transaction: end this group commit before it, and let it start
             * the next one, but only when this batch is the connection's
             * first request of the run: one that streams batches alternates
             * with the others instead of taking every group commit. */
            c->in.pos = frame_pos;
            b->nreq--;
            if (conn_nreq == 1)
                srv->batch_next_first = c;
            return TAKE_STOP;
        }
        Statesrv__V1__Response resp;
        int deferred = sv_dispatch(srv, c, req, &resp) == SV_DISPATCH_DEFERRED;
        int terr = sv_store_txn_error(srv->store);
        if (terr) {
            sv_store_abort(srv->store);
            replay(srv, b, terr, b->seq);
            return TAKE_REPLAY;
        }
        if (deferred) {
            /* The job's cut is this request: nothing after it (from any
             * connection) may enter this commit. */
            c->fate = SV_FATE_AWAIT;
            return TAKE_STOP;
        }
        /* A refused hello set DRAIN: its reply is the last. */
        if (encode_reply(srv, c, &resp)) {
            /* The request may have been applied: do not invite a retry. */
            fatal_reply(c, SV_EINTERNAL,
                        "out of memory encoding a reply; the request's effect is unknown");
            break;
        }
    }
    return TAKE_MORE;
}

/* Begins the transaction and takes the requests of every ready connection,
 * in ready-list order, until the batch is full or must stop. 0, TAKE_REPLAY,
 * or a store error (no transaction could begin). */
static int take_all(struct sv_server *srv, struct batch_run *b)
{
    int rc = sv_store_begin(srv->store);
    if (rc)
        return rc;
    b->nreq = b->bytes = 0;
    b->seq = 0;
    struct sv_conn *next;
    for (struct sv_conn *c = srv->ready_head; c; c = next) {
        next = c->ready_next;
        if (c->fate == SV_FATE_AWAIT) {
            /* Its next request waits for a checkpoint job's reply, which
             * puts it back on the ready list. */
            sv_conn_unready(c);
            continue;
        }
        if (c->state != SV_CONN_OPEN || sv_conn_output(c) > srv->cfg->max_output_buffer) {
            /* Back-pressure: it returns to the ready list when it drains. */
            sv_conn_unready(c);
            sv_conn_flush(c); /* starts its output_timeout clock */
            continue;
        }
        if (b->nreq >= BATCH_MAX_REQUESTS || b->bytes >= BATCH_MAX_BYTES)
            break;
        if (batch_add(srv, c)) {
            sv_error("batch: out of memory");
            break;
        }
        enum take_result t = take_requests(srv, b, c);
        if (t == TAKE_REPLAY)
            return TAKE_REPLAY;
        if (t == TAKE_STOP)
            break;
    }
    return 0;
}

/* The commit failed: every request of the batch was lost. Re-answer each of
 * them (the frames are still in the readers) with the error. */
static void answer_commit_failure(struct sv_server *srv, int err, int map_full)
{
    char msg[200];
    if (map_full)
        sv_store_nospace_msg(srv->store, msg, sizeof(msg));
    else if (err == SV_ENOSPACE)
        snprintf(msg, sizeof(msg),
                 "commit failed: the disk holding the store is full; the request was not "
                 "applied (reads still work; free space on the data directory's filesystem)");
    else
        snprintf(msg, sizeof(msg), "commit failed (%s); the request was not applied",
                 sv_strerror(err));
    /* Nothing was applied, so a retry is safe (UNAVAILABLE), unless the
     * store is full. */
    if (sv_error_status(err) != SV_STATUS_NO_SPACE)
        err = SV_EUNAVAIL;
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        size_t end = c->in.pos;
        enum sv_conn_fate fate = c->fate;
        c->in.pos = c->in_mark;
        c->out.len = c->out_mark;
        c->fate = SV_FATE_SERVE;
        const uint8_t *p;
        size_t n;
        while (c->in.pos < end && sv_frame_reader_next(&c->in, &p, &n) == 1) {
            Statesrv__V1__Request *req;
            if (sv_msg_unpack_request(p, n, &srv->arena.pb, &req))
                break; /* the framing error already answered below */
            if (append_error(c, req->id, err, msg))
                break;
        }
        c->in.pos = end;
        if (fate == SV_FATE_DRAIN || fate == SV_FATE_CLOSE)
            fatal_reply(c, SV_EPROTO, "malformed request");
    }
}

/* Every request of the batch waited for the same commit: one latency per op,
 * counted as many times as the op ran (snapshot and restore are observed
 * when their job replies). */
static void observe_latency(struct sv_server *srv, const struct batch_run *b, uint64_t t0_ns)
{
    for (unsigned i = 0; i < SV_OP_SLOTS; i++) {
        uint64_t n = srv->ops[i].count - b->saved_ops[i].count;
        if (!n || sv_op_is_job(i))
            continue;
        sv_metrics_observe_n(srv, i, t0_ns, n);
    }
}

/* After the commit (commit_rc 0) or its answered failure: each connection's
 * replies leave, and its fate is carried out. */
static void release_replies(struct sv_server *srv, int commit_rc)
{
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        c->in_batch = 0;
        if (commit_rc && c->fate == SV_FATE_AWAIT)
            c->fate = SV_FATE_SERVE; /* the job was dropped; its request answered */
        sv_frame_reader_discard(&c->in);
        switch (c->fate) {
        case SV_FATE_CLOSE:
            sv_conn_close(c);
            continue;
        case SV_FATE_DRAIN:
            sv_conn_drain(c);
            continue;
        case SV_FATE_AWAIT:
            sv_conn_unready(c); /* the job's reply puts it back */
            sv_conn_flush(c);
            continue;
        case SV_FATE_SERVE:
        case SV_FATE_MAX:
            break;
        }
        if (!sv_frame_reader_ready(&c->in)) {
            sv_conn_unready(c);
            if (c->eof) {
                sv_conn_drain(c);
                continue;
            }
            if (srv->stopping) {
                sv_conn_fail(c, SV_STATUS_UNAVAILABLE, "server is shutting down");
                continue;
            }
        }
        sv_conn_flush(c);
    }
}

/* Rotates the ready list: connections still holding requests go to the
 * back, so a busy client cannot take every batch. */
static void rotate_ready(struct sv_server *srv)
{
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        if (c->on_ready) {
            sv_conn_unready(c);
            sv_conn_ready(c);
        }
    }
    struct sv_conn *first = srv->batch_next_first;
    srv->batch_next_first = NULL;
    if (first && first->on_ready && first->fate == SV_FATE_SERVE)
        sv_conn_ready_first(first);
}

/* Runs one batch. */
static void run_batch(struct sv_server *srv)
{
    struct batch_run b = {0};
    memcpy(b.saved_ops, srv->ops, sizeof(b.saved_ops));
    memcpy(b.saved_cerr, srv->conn_errors, sizeof(b.saved_cerr));
    sv_store_grow_if_needed(srv->store);
    uint64_t t0_ns = uv_hrtime();
    srv->batch_next_first = NULL;
    int rc;
    for (;;) {
        srv->nbatch = 0;
        rc = take_all(srv, &b);
        if (rc == TAKE_REPLAY)
            continue;
        if (rc) {
            /* Without a transaction nothing can be answered: back off (the
             * check callback retries from a timer) rather than spin. */
            if (!srv->backoff)
                sv_error("store: cannot begin a transaction: %s; retrying", sv_strerror(rc));
            srv->backoff = 1;
            return;
        }
        if (srv->nbatch == 0) {
            /* Nothing ran (every ready connection waits or is back-pressured). */
            sv_store_abort(srv->store);
            return;
        }
        rc = sv_store_commit(srv->store);
        /* The commit itself may need pages (free-list bookkeeping). */
        if (rc == SV_EMAPFULL && replay(srv, &b, rc, 0))
            continue;
        break;
    }
    int map_full = rc == SV_EMAPFULL; /* and it cannot grow */
    if (map_full)
        rc = SV_ENOSPACE;
    if (rc) {
        sv_error("batch of %zu request(s) failed to commit: %s", b.nreq, sv_strerror(rc));
        sv_checkpoints_drop_queued(srv->ckpt); /* its request is answered below */
        /* Re-answering counts each malformed frame again. */
        memcpy(srv->conn_errors, b.saved_cerr, sizeof(b.saved_cerr));
        answer_commit_failure(srv, rc, map_full);
    } else {
        srv->commits++;
        /* A snapshot taken now holds exactly the acknowledged writes. */
        sv_checkpoints_start_queued(srv->ckpt);
    }
    observe_latency(srv, &b, t0_ns);
    release_replies(srv, rc);
    rotate_ready(srv);
    srv->nbatch = 0;
    sv_arena_reset(&srv->arena);
}

void sv_batch_run_all(struct sv_server *srv)
{
    for (int i = 0; i < BATCHES_PER_TURN && srv->ready_head && !srv->backoff; i++)
        run_batch(srv);
}
