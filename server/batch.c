/* Group commit: every request that arrived in one loop iteration runs in one
 * LMDB write transaction, and replies leave only after it commits.
 *
 * Input frames stay in each connection's reader until the commit, so a batch
 * can be rewound and run again: after MDB_MAP_FULL (grow the map, replay), or
 * when LMDB poisons the transaction (replay up to the request that failed,
 * answer it with the error, and leave the rest for the next batch — every
 * batch makes progress). */
#include "checkpoint.h"
#include "metrics.h"
#include "server.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_log.h"
#include "sv_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_REQUESTS 8192u
#define BATCH_MAX_BYTES (16u * 1024 * 1024)
#define CONN_MAX_REQUESTS 1024u /* per connection per batch: others get a turn */
#define BATCHES_PER_TURN 8

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
    c->fatal = 0;
    return 0;
}

/* Undoes everything the batch did to its connections. */
static void batch_rewind(struct sv_server *srv)
{
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        c->in.pos = c->in_mark;
        c->out.len = c->out_mark;
        c->fatal = 0;
        c->waiting = 0;
        c->close_after = 0;
        c->in_batch = 0;
    }
    srv->nbatch = 0;
    sv_arena_reset(&srv->arena);
    /* The replay queues it again. */
    sv_checkpoints_drop_queued(srv->ckpt);
}

static int append_error(struct sv_conn *c, uint64_t id, int err, const char *msg);

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
}

static int append_error(struct sv_conn *c, uint64_t id, int err, const char *msg)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    r.id = id;
    r.status = (Statesrv__V1__Status)sv_error_status(err);
    r.message = (char *)msg;
    return sv_msg_append(&c->out, &r.base, UINT32_MAX);
}

/* A framing error: one reply with id 0, then the connection drains. */
static void fatal_reply(struct sv_conn *c, int err, const char *msg)
{
    if (err == SV_EPROTO || err == SV_ETOOLARGE)
        c->srv->conn_errors[SV_CERR_PROTOCOL]++;
    sv_warn_limited("conn %llu (%s): %s; closing", (unsigned long long)c->id, c->peer, msg);
    if (append_error(c, 0, err, msg) == 0)
        c->fatal = 1;
    else
        c->fatal = 2; /* could not even queue it: close at once */
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

/* The commit failed: every request of the batch was lost. Re-answer each of
 * them (the frames are still in the readers) with the error. */
static void answer_commit_failure(struct sv_server *srv, int err)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "commit failed (%s); the request was not applied", sv_strerror(err));
    /* Nothing was applied, so a retry is safe (UNAVAILABLE), unless the
     * store is full. */
    if (sv_error_status(err) != SV_STATUS_NO_SPACE)
        err = SV_EUNAVAIL;
    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        size_t end = c->in.pos;
        int fatal = c->fatal;
        c->in.pos = c->in_mark;
        c->out.len = c->out_mark;
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
        if (fatal)
            fatal_reply(c, SV_EPROTO, "malformed request");
    }
}

/* Runs one batch. */
static void run_batch(struct sv_server *srv)
{
    const struct sv_config *cfg = srv->cfg;
    /* A replay counts again: counters go back with the rewind. */
    struct sv_op_counter saved_ops[SV_OP_SLOTS];
    uint64_t saved_cerr[SV_CERR_COUNT];
    memcpy(saved_ops, srv->ops, sizeof(saved_ops));
    memcpy(saved_cerr, srv->conn_errors, sizeof(saved_cerr));
    uint64_t poison_seq = 0;
    int poison_err = 0;
    int rc;

    sv_store_grow_if_needed(srv->store);
    uint64_t t0_ns = uv_hrtime();
    srv->batch_next_first = NULL;
redo:
    srv->nbatch = 0;
    if ((rc = sv_store_begin(srv->store))) {
        /* Without a transaction nothing can be answered: back off (the
         * check callback retries from a timer) rather than spin. */
        if (!srv->backoff)
            sv_error("store: cannot begin a transaction: %s; retrying", sv_strerror(rc));
        srv->backoff = 1;
        return;
    }
    size_t nreq = 0, bytes = 0;
    uint64_t seq = 0;
    int stop = 0;
    struct sv_conn *next;
    for (struct sv_conn *c = srv->ready_head; c && !stop; c = next) {
        next = c->ready_next;
        if (c->waiting) {
            /* Its next request waits for a checkpoint job's reply, which
             * puts it back on the ready list. */
            sv_conn_unready(c);
            continue;
        }
        if (c->state != SV_CONN_OPEN || sv_conn_output(c) > cfg->max_output_buffer) {
            /* Back-pressure: it returns to the ready list when it drains. */
            sv_conn_unready(c);
            sv_conn_flush(c); /* starts its output_timeout clock */
            continue;
        }
        if (nreq >= BATCH_MAX_REQUESTS || bytes >= BATCH_MAX_BYTES)
            break;
        if (batch_add(srv, c)) {
            sv_error("batch: out of memory");
            break;
        }
        size_t conn_nreq = 0;
        while (!c->fatal && !c->waiting) {
            if (nreq >= BATCH_MAX_REQUESTS || bytes >= BATCH_MAX_BYTES ||
                conn_nreq >= CONN_MAX_REQUESTS || sv_conn_output(c) > cfg->max_output_buffer)
                break;
            const uint8_t *p;
            size_t n;
            size_t frame_pos = c->in.pos;
            int fr = sv_frame_reader_next(&c->in, &p, &n);
            if (fr == 0)
                break;
            if (fr < 0) {
                char msg[128];
                if (c->authed)
                    snprintf(msg, sizeof(msg), "frame of %u bytes exceeds max_frame_size (%u)",
                             c->in.bad_len, cfg->max_frame_size);
                else
                    snprintf(msg, sizeof(msg),
                             "frame of %u bytes before authentication (the limit is %u until "
                             "hello carries the token)",
                             c->in.bad_len, SV_PREAUTH_MAX_FRAME);
                fatal_reply(c, SV_ETOOLARGE, msg);
                break;
            }
            nreq++;
            conn_nreq++;
            bytes += n + SV_FRAME_HEADER_SIZE;
            seq++;
            Statesrv__V1__Request *req;
            srv->arena.limit = srv->arena.used + decode_budget(cfg, n);
            int urc = sv_msg_unpack_request(p, n, &srv->arena.pb, &req);
            srv->arena.limit = 0;
            if (urc && srv->arena.exhausted) {
                /* Well-formed, perhaps, but far too many items: refuse it
                 * and keep the connection. */
                srv->arena.exhausted = 0;
                char msg[160];
                snprintf(msg, sizeof(msg),
                         "the request has too many items to decode (frame of %zu bytes); "
                         "at most max_batch_ops = %u items per request",
                         n, cfg->max_batch_ops);
                if (append_error(c, peek_request_id(p, n), SV_ETOOLARGE, msg)) {
                    fatal_reply(c, SV_EUNAVAIL, "out of memory for the reply");
                    break;
                }
                continue;
            }
            if (urc) {
                fatal_reply(c, SV_EPROTO,
                            "malformed request: not a statesrv.v1.Request with a known op");
                break;
            }
            Statesrv__V1__Response resp;
            if (!c->authed && req->op_case != STATESRV__V1__REQUEST__OP_HELLO) {
                rc = append_error(c, req->id, SV_EUNAUTH,
                                  "authentication required: send hello with the token first");
                c->fatal = rc ? 2 : 1;
                break;
            }
            if (seq == poison_seq) {
                char msg[512];
                uint64_t map_size, map_used;
                sv_store_usage(srv->store, &map_size, &map_used);
                if (poison_err == SV_ENOSPACE && map_size < cfg->map_size_max)
                    snprintf(msg, sizeof(msg),
                             "the disk is full: the store map cannot grow past %llu MiB; reads "
                             "still work",
                             (unsigned long long)(map_size >> 20));
                else if (poison_err == SV_ENOSPACE)
                    sv_store_nospace_msg(srv->store, msg, sizeof(msg));
                else if (poison_err == SV_EBUSY)
                    snprintf(msg, sizeof(msg),
                             "the store map is full and cannot grow while a checkpoint is "
                             "being written; retry when it completes");
                else
                    snprintf(msg, sizeof(msg), "store error: %s", sv_strerror(poison_err));
                rc = append_error(c, req->id, poison_err, msg);
                stop = 1;
            } else if (req->op_case == STATESRV__V1__REQUEST__OP_BATCH &&
                       sv_store_savepoint_needs_clean_txn(srv->store)) {
                /* With writemap a batch's savepoint is the whole group
                 * transaction: end this group commit before it, and let it
                 * start the next one. */
                c->in.pos = frame_pos;
                nreq--;
                /* Only when this batch is the connection's first request
                 * of the run: one that streams batches alternates with the
                 * others instead of taking every group commit. */
                if (conn_nreq == 1)
                    srv->batch_next_first = c;
                stop = 1;
                break;
            } else {
                int deferred = sv_dispatch(srv, c, req, &resp) == SV_DISPATCH_DEFERRED;
                int terr = sv_store_txn_error(srv->store);
                if (terr) {
                    sv_store_abort(srv->store);
                    batch_rewind(srv);
                    memcpy(srv->ops, saved_ops, sizeof(saved_ops));
                    memcpy(srv->conn_errors, saved_cerr, sizeof(saved_cerr));
                    int grown = terr == SV_EMAPFULL ? sv_store_grow(srv->store) : terr;
                    if (grown == 0)
                        goto redo;
                    poison_seq = seq;
                    poison_err = terr != SV_EMAPFULL ? terr
                                 : grown == SV_EBUSY ? SV_EBUSY
                                                     : SV_ENOSPACE;
                    goto redo;
                }
                if (deferred) {
                    /* The job's cut is this request: nothing after it (from
                     * any connection) may enter this commit. */
                    c->waiting = 1;
                    stop = 1;
                    break;
                }
                rc = encode_reply(srv, c, &resp);
                if (!rc && c->close_after) {
                    c->fatal = 1; /* refused authentication: drain and close */
                    break;
                }
            }
            if (rc) {
                /* The request may have been applied: do not invite a retry. */
                fatal_reply(c, SV_EINTERNAL,
                            "out of memory encoding a reply; the request's effect is unknown");
                break;
            }
            if (stop)
                break;
        }
    }

    if (srv->nbatch == 0) {
        /* Nothing ran (every ready connection waits or is back-pressured). */
        sv_store_abort(srv->store);
        return;
    }
    rc = sv_store_commit(srv->store);
    if (rc == SV_EMAPFULL) {
        /* The commit itself needed pages (free-list bookkeeping). */
        if (sv_store_grow(srv->store) == 0) {
            batch_rewind(srv);
            memcpy(srv->ops, saved_ops, sizeof(saved_ops));
            memcpy(srv->conn_errors, saved_cerr, sizeof(saved_cerr));
            goto redo;
        }
        rc = SV_ENOSPACE;
    }
    if (rc) {
        sv_error("batch of %zu request(s) failed to commit: %s", nreq, sv_strerror(rc));
        sv_checkpoints_drop_queued(srv->ckpt); /* its request is answered below */
        /* Re-answering counts each malformed frame again. */
        memcpy(srv->conn_errors, saved_cerr, sizeof(saved_cerr));
        answer_commit_failure(srv, rc);
    } else {
        srv->commits++;
        /* A snapshot taken now holds exactly the acknowledged writes. */
        sv_checkpoints_start_queued(srv->ckpt);
    }
    /* Every request of the batch waited for the same commit: one latency
     * per op, counted as many times as the op ran (snapshot and restore
     * are observed when their job replies). */
    for (unsigned i = 0; i < SV_OP_SLOTS; i++) {
        uint64_t n = srv->ops[i].count - saved_ops[i].count;
        if (!n || i == STATESRV__V1__REQUEST__OP_SNAPSHOT || i == STATESRV__V1__REQUEST__OP_RESTORE)
            continue;
        sv_metrics_observe_n(srv, i, t0_ns, n);
    }

    for (size_t i = 0; i < srv->nbatch; i++) {
        struct sv_conn *c = srv->batch[i];
        c->in_batch = 0;
        if (rc)
            c->waiting = 0;
        sv_frame_reader_discard(&c->in);
        if (c->fatal == 2) {
            sv_conn_close(c);
            continue;
        }
        if (c->fatal) {
            sv_conn_drain(c);
            continue;
        }
        if (c->waiting) {
            sv_conn_unready(c); /* the job's reply puts it back */
            sv_conn_flush(c);
            continue;
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
    rotate_ready(srv);
    struct sv_conn *first = srv->batch_next_first;
    srv->batch_next_first = NULL;
    if (first && first->on_ready && !first->fatal)
        sv_conn_ready_first(first);
    srv->nbatch = 0;
    sv_arena_reset(&srv->arena);
}

void sv_batch_run_all(struct sv_server *srv)
{
    for (int i = 0; i < BATCHES_PER_TURN && srv->ready_head && !srv->backoff; i++)
        run_batch(srv);
}
