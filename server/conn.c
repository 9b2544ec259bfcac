/* Connections: accept, read into the frame reader, write replies, and the
 * orderly close.
 *
 * States: OPEN reads and answers. DRAINING (after a framing error, EOF or
 * shutdown) answers nothing new; its input buffer is freed and what still
 * arrives is dropped, at most LINGER_MAX_BYTES. Once every queued reply is
 * written it shuts the write side down; if no reply leaves for
 * output_timeout it is closed. LINGER discards
 * input until the peer's EOF, LINGER_MS or LINGER_MAX_BYTES, so the kernel
 * does not turn unread input into a reset that would destroy the error reply
 * in flight. CLOSING waits for libuv to release the handles; memory goes in
 * the last close callback.
 *
 * Every connection has a deadline for what it owes: a whole frame within
 * header_timeout of its first byte, with auth the token within
 * header_timeout of connecting, its replies read within output_timeout. While
 * the server itself stops reading (back-pressure) no client clock runs. */
#include "checkpoint.h"
#include "server.h"
#include "sv_error.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64u * 1024) /* at most KEEP_CAP: an idle connection keeps its buffer */
#define KEEP_CAP (64u * 1024)
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (4u * 1024 * 1024) /* discarded while lingering, then close */

const char *sv_conn_state_name(enum sv_conn_state st)
{
    static const char *const names[SV_CONN_STATE_MAX] = {"open", "draining", "linger", "closing"};
    return st < SV_CONN_STATE_MAX ? names[st] : "?";
}

const char *sv_conn_fate_name(enum sv_conn_fate f)
{
    static const char *const names[SV_FATE_MAX] = {"serve", "await", "drain", "close"};
    return f < SV_FATE_MAX ? names[f] : "?";
}

size_t sv_conn_output(const struct sv_conn *c)
{
    return c->out.len + c->wbuf.len - c->wsent;
}

void sv_conn_ready(struct sv_conn *c)
{
    struct sv_server *srv = c->srv;
    if (c->on_ready)
        return;
    /* Callers run outside the check phase too (write callbacks): the loop
     * must not block in poll while this connection waits. */
    sv_server_wake(srv);
    c->on_ready = 1;
    c->ready_next = NULL;
    c->ready_prev = srv->ready_tail;
    if (srv->ready_tail)
        srv->ready_tail->ready_next = c;
    else
        srv->ready_head = c;
    srv->ready_tail = c;
}

void sv_conn_ready_first(struct sv_conn *c)
{
    struct sv_server *srv = c->srv;
    sv_conn_unready(c);
    sv_server_wake(srv);
    c->on_ready = 1;
    c->ready_prev = NULL;
    c->ready_next = srv->ready_head;
    if (srv->ready_head)
        srv->ready_head->ready_prev = c;
    else
        srv->ready_tail = c;
    srv->ready_head = c;
}

void sv_conn_unready(struct sv_conn *c)
{
    struct sv_server *srv = c->srv;
    if (!c->on_ready)
        return;
    if (c->ready_prev)
        c->ready_prev->ready_next = c->ready_next;
    else
        srv->ready_head = c->ready_next;
    if (c->ready_next)
        c->ready_next->ready_prev = c->ready_prev;
    else
        srv->ready_tail = c->ready_prev;
    c->ready_prev = c->ready_next = NULL;
    c->on_ready = 0;
}

/* Whether output is small enough to take more requests from this client. */
static int output_ok(const struct sv_conn *c)
{
    return sv_conn_output(c) <= c->srv->cfg->max_output_buffer;
}

/* A client this far ahead waits in the kernel until its frames are taken. */
static int input_full(const struct sv_conn *c)
{
    return c->in.len - c->in.pos > (size_t)c->in.max_frame + 2 * READ_CHUNK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sv_conn *c = h->data;
    static char discard[16384]; /* input nobody will look at (loop thread only) */
    (void)suggested;
    if (c->state != SV_CONN_OPEN) {
        *buf = uv_buf_init(discard, sizeof(discard));
        return;
    }
    uint8_t *p;
    size_t avail;
    if (sv_frame_reader_space(&c->in, READ_CHUNK, &p, &avail)) {
        *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(avail < READ_CHUNK ? avail : READ_CHUNK));
}

static void read_stop(struct sv_conn *c)
{
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct sv_conn *c)
{
    /* While shutting down, open connections take no new requests. */
    if (c->srv->stopping && c->state == SV_CONN_OPEN)
        return;
    if (!c->reading && !c->eof && c->state != SV_CONN_CLOSING) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0) {
            c->reading = 1;
            /* The client's clocks ran not while we did not read. */
            c->last_read_ms = sv_now_ms();
            c->frame_since_ms = 0;
        }
    }
}

/* Reads again once neither its input nor its output is over the limit. */
static void take_more(struct sv_conn *c)
{
    if (c->state == SV_CONN_OPEN && output_ok(c) && !input_full(c))
        read_start(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sv_conn *c = s->data;
    (void)buf;
    if (nread > 0) {
        uint64_t now = sv_now_ms();
        c->srv->bytes_in += (uint64_t)nread;
        c->last_read_ms = now;
        if (c->state != SV_CONN_OPEN) {
            /* Draining or lingering: discarded, up to a bound (a client
             * that writes everything before it reads can finish writing
             * and read its replies; one that streams without end cannot
             * make the server read for ever). */
            c->discarded += (uint64_t)nread;
            if (c->discarded > LINGER_MAX_BYTES)
                sv_conn_close(c);
            return;
        }
        sv_frame_reader_produced(&c->in, (size_t)nread);
        int ready = sv_frame_reader_ready(&c->in);
        if (ready)
            c->frame_since_ms = 0;
        else if (!c->frame_since_ms)
            c->frame_since_ms = now; /* the first bytes of a frame */
        if (ready && c->fate != SV_FATE_AWAIT)
            sv_conn_ready(c);
        /* Input back-pressure: a client far ahead of us waits in the kernel
         * until the batch has taken its frames (take_more). */
        if (ready && input_full(c))
            read_stop(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        c->eof = 1;
        read_stop(c);
        if (c->state == SV_CONN_LINGER) {
            sv_conn_close(c);
        } else if (c->state == SV_CONN_OPEN && !sv_frame_reader_ready(&c->in) &&
                   c->fate != SV_FATE_AWAIT) {
            /* Nothing left to answer: finish writing, then close. Requests
             * still buffered (a back-pressured client) are answered first;
             * the batch drains the connection after the last. */
            sv_conn_drain(c);
        } else if (c->state == SV_CONN_DRAINING) {
            sv_conn_flush(c);
        }
        return;
    }
    if (nread == UV_ENOBUFS)
        sv_warn("conn %llu (%s): out of memory for input; closing", (unsigned long long)c->id,
                c->peer);
    else if (nread != UV_ECONNRESET)
        sv_debug("conn %llu (%s): read error: %s", (unsigned long long)c->id, c->peer,
                 uv_strerror((int)nread));
    sv_conn_close(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct sv_conn *c = h->data;
    if (c->linger_open) {
        /* The timer closes next and frees the connection. */
        c->linger_open = 0;
        uv_close((uv_handle_t *)&c->linger, on_handle_closed);
        return;
    }
    struct sv_server *srv = c->srv;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        srv->all_head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    srv->nconns--;
    sv_frame_reader_free(&c->in);
    sv_buf_free(&c->out);
    sv_buf_free(&c->wbuf);
    sv_debug("conn %llu (%s) closed", (unsigned long long)c->id, c->peer);
    free(c);
    sv_server_conn_gone(srv);
}

/* It no longer counts as a connection waiting to authenticate. */
static void preauth_done(struct sv_conn *c)
{
    if (c->preauth) {
        c->preauth = 0;
        c->srv->npreauth--;
    }
}

void sv_conn_authenticated(struct sv_conn *c)
{
    c->authed = 1;
    c->in.max_frame = c->srv->cfg->max_frame_size;
    preauth_done(c);
}

void sv_conn_close(struct sv_conn *c)
{
    if (c->state == SV_CONN_CLOSING)
        return;
    preauth_done(c);
    c->state = SV_CONN_CLOSING;
    sv_conn_unready(c);
    if (c->srv->ckpt)
        sv_checkpoints_conn_gone(c->srv->ckpt, c);
    read_stop(c);
    if (c->linger_open)
        uv_timer_stop(&c->linger);
    uv_close(&c->h.handle, on_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    sv_conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct sv_conn *c = req->data;
    if (c->state == SV_CONN_CLOSING)
        return;
    if (status < 0 || c->eof) {
        sv_conn_close(c);
        return;
    }
    c->state = SV_CONN_LINGER;
    c->discarded = 0;
    if (uv_timer_init(c->srv->loop, &c->linger) == 0) {
        c->linger.data = c;
        c->linger_open = 1;
        uv_timer_start(&c->linger, on_linger_timeout, LINGER_MS, 0);
        read_start(c);
    } else {
        sv_conn_close(c);
    }
}

/* In DRAINING with nothing left to write: end the conversation. */
static void finish_if_drained(struct sv_conn *c)
{
    if (c->state != SV_CONN_DRAINING || c->writing || c->out.len)
        return;
    if (c->eof) {
        sv_conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, &c->h.stream, on_shutdown))
        sv_conn_close(c);
}

/* Every queued reply has left: account for it and, if the client was
 * back-pressured, take its requests again. */
static void wrote_all(struct sv_conn *c, size_t n)
{
    c->srv->bytes_out += n;
    c->blocked_since_ms = 0;
    finish_if_drained(c);
    if (c->state == SV_CONN_OPEN) {
        take_more(c);
        if (sv_frame_reader_ready(&c->in) && c->fate != SV_FATE_AWAIT)
            sv_conn_ready(c);
    }
}

/* Replies left the connection: a draining one is not stuck. */
static void progressed(struct sv_conn *c)
{
    if (c->state == SV_CONN_DRAINING)
        c->drain_since_ms = sv_now_ms();
}

static void on_write(uv_write_t *req, int status)
{
    struct sv_conn *c = req->data;
    c->writing = 0;
    if (c->state == SV_CONN_CLOSING)
        return;
    if (status >= 0)
        progressed(c);
    if (status < 0) {
        sv_debug("conn %llu (%s): write error: %s", (unsigned long long)c->id, c->peer,
                 uv_strerror(status));
        sv_conn_close(c);
        return;
    }
    size_t n = c->wbuf.len;
    sv_buf_clear(&c->wbuf, KEEP_CAP);
    c->wsent = 0;
    if (c->out.len) {
        c->srv->bytes_out += n;
        if (output_ok(c)) {
            c->blocked_since_ms = 0;
            /* Below the limit again: take its requests while the rest
             * is written (a client that reads its replies is never cut off
             * by waiting for all of them). */
            take_more(c);
            if (c->state == SV_CONN_OPEN && sv_frame_reader_ready(&c->in) &&
                c->fate != SV_FATE_AWAIT)
                sv_conn_ready(c);
        }
        sv_conn_flush(c);
        return;
    }
    wrote_all(c, n);
}

/* Replies pile up unread: take no more requests, and start the clock
 * output_timeout runs on. */
static void note_backpressure(struct sv_conn *c)
{
    read_stop(c);
    if (!c->blocked_since_ms)
        c->blocked_since_ms = sv_now_ms();
}

void sv_conn_flush(struct sv_conn *c)
{
    if (c->state == SV_CONN_CLOSING)
        return;
    if (c->writing || c->out.len == 0) {
        /* Far behind on reading its replies: stop taking its requests,
         * also while a write is in flight. */
        if (!output_ok(c)) {
            note_backpressure(c);
        } else {
            c->blocked_since_ms = 0;
            take_more(c);
        }
        finish_if_drained(c);
        return;
    }
    /* Write what the socket takes now, straight from the buffer: usually
     * all of it, with no write request, callback or epoll change (uv_write
     * costs an epoll_ctl per call on this libuv). */
    int sent =
        uv_try_write(&c->h.stream, &(uv_buf_t){.base = (char *)c->out.data, .len = c->out.len}, 1);
    if (sent > 0)
        progressed(c);
    if (sent >= 0 && (size_t)sent == c->out.len) {
        size_t n = c->out.len;
        sv_buf_clear(&c->out, KEEP_CAP);
        wrote_all(c, n);
        return;
    }
    if (sent < 0 && sent != UV_EAGAIN) {
        sv_debug("conn %llu (%s): write failed: %s", (unsigned long long)c->id, c->peer,
                 uv_strerror(sent));
        sv_conn_close(c);
        return;
    }
    /* The rest goes through libuv, which waits for the socket; new replies
     * gather in the other buffer meanwhile. */
    size_t off = sent > 0 ? (size_t)sent : 0;
    struct sv_buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    c->wsent = off;
    uv_buf_t b = uv_buf_init((char *)c->wbuf.data + off, (unsigned)(c->wbuf.len - off));
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write);
    if (rc) {
        sv_debug("conn %llu (%s): write failed: %s", (unsigned long long)c->id, c->peer,
                 uv_strerror(rc));
        sv_conn_close(c);
        return;
    }
    c->writing = 1;
    if (!output_ok(c)) {
        note_backpressure(c);
    } else {
        c->blocked_since_ms = 0;
        take_more(c);
    }
}

void sv_conn_drain(struct sv_conn *c)
{
    if (c->state != SV_CONN_OPEN)
        return;
    c->state = SV_CONN_DRAINING;
    c->drain_since_ms = sv_now_ms();
    preauth_done(c);
    sv_conn_unready(c);
    /* Input from now on is read and dropped, at most LINGER_MAX_BYTES of
     * it; the input already answered goes now. */
    c->discarded = 0;
    if (!c->eof)
        read_start(c);
    if (!c->in_batch) {
        uint32_t max = c->in.max_frame;
        sv_frame_reader_free(&c->in);
        sv_frame_reader_init(&c->in, max);
    }
    sv_conn_flush(c);
}

void sv_conn_reply_deferred(struct sv_conn *c, Statesrv__V1__Response *resp)
{
    struct sv_server *srv = c->srv;
    if (sv_msg_append(&c->out, &resp->base, srv->cfg->max_frame_size)) {
        sv_conn_close(c);
        return;
    }
    c->fate = SV_FATE_SERVE;
    sv_conn_flush(c);
    /* Requests that queued up behind this one run in the next batch. */
    if (c->state == SV_CONN_OPEN && sv_frame_reader_ready(&c->in))
        sv_conn_ready(c);
    else if (c->state == SV_CONN_OPEN && (c->eof || srv->stopping))
        sv_conn_drain(c);
}

void sv_conn_fail(struct sv_conn *c, enum sv_status status, const char *msg)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    r.status = (Statesrv__V1__Status)status;
    char text[512];
    snprintf(text, sizeof(text), "%s", msg);
    sv_utf8_scrub(text);
    r.message = text;
    if (sv_msg_append(&c->out, &r.base, UINT32_MAX)) {
        sv_conn_close(c);
        return;
    }
    sv_conn_drain(c);
}

static void peer_name(struct sv_conn *c, int is_unix)
{
    if (is_unix) {
        snprintf(c->peer, sizeof(c->peer), "unix");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
            uv_ip4_name(sin, host, sizeof(host));
            port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(sin6, host, sizeof(host));
            port = ntohs(sin6->sin6_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
}

static uint32_t preauth_cap(const struct sv_server *srv)
{
    uint32_t cap = srv->cfg->max_connections / 2;
    return cap ? cap : 1;
}

/* Closes the longest-waiting connection that has not authenticated (other
 * than keep). 1 if there was one. */
static int evict_oldest_preauth(struct sv_server *srv, struct sv_conn *keep)
{
    struct sv_conn *oldest = NULL;
    for (struct sv_conn *c = srv->all_head; c; c = c->all_next)
        if (c != keep && c->preauth && c->state == SV_CONN_OPEN && !c->on_ready &&
            !sv_frame_reader_ready(&c->in) && (!oldest || c->accepted_ms <= oldest->accepted_ms))
            oldest = c;
    if (!oldest)
        return 0;
    srv->conn_errors[SV_CERR_PREAUTH_EVICTED]++;
    sv_warn_limited("conn %llu (%s): not authenticated after %llu ms; closed to make room",
                    (unsigned long long)oldest->id, oldest->peer,
                    (unsigned long long)(sv_now_ms() - oldest->accepted_ms));
    sv_conn_fail(oldest, SV_STATUS_UNAVAILABLE,
                 "closed to make room for other clients: send hello with the token first");
    return 1;
}

void sv_conn_accept(struct sv_server *srv, uv_stream_t *listener, int is_unix)
{
    struct sv_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        sv_error("accept: out of memory");
        return;
    }
    c->srv = srv;
    int rc = is_unix ? uv_pipe_init(srv->loop, &c->h.pipe, 0) : uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc) {
        sv_error("accept: %s", uv_strerror(rc));
        free(c);
        return;
    }
    c->h.handle.data = c;
    c->id = ++srv->next_conn_id;
    /* Until hello carries the token only small frames are read. */
    c->authed = srv->token_len == 0;
    sv_frame_reader_init(&c->in, c->authed ? srv->cfg->max_frame_size : SV_PREAUTH_MAX_FRAME);
    c->accepted_ms = c->last_read_ms = sv_now_ms();
    c->all_next = srv->all_head;
    if (srv->all_head)
        srv->all_head->all_prev = c;
    srv->all_head = c;
    srv->nconns++;

    if ((rc = uv_accept(listener, &c->h.stream))) {
        srv->conn_errors[SV_CERR_ACCEPT]++;
        sv_warn("accept: %s", uv_strerror(rc));
        sv_conn_close(c);
        return;
    }
    if (!is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    peer_name(c, is_unix);
    srv->connections_total++;

    int over = srv->nconns > srv->cfg->max_connections;
    if (!c->authed) {
        c->preauth = 1;
        srv->npreauth++;
        /* Connections that have not authenticated may hold at most half the
         * slots, and a newcomer takes the slot of the oldest of them rather
         * than be refused: silent clients cannot lock out the token's holders. */
        if ((over || srv->npreauth > preauth_cap(srv)) && evict_oldest_preauth(srv, c))
            over = 0;
    }
    if (over) {
        srv->connections_rejected++;
        sv_warn_limited("conn %llu (%s): rejected, max_connections (%u) reached",
                        (unsigned long long)c->id, c->peer, srv->cfg->max_connections);
        char msg[96];
        snprintf(msg, sizeof(msg), "too many connections (max_connections = %u)",
                 srv->cfg->max_connections);
        sv_conn_fail(c, SV_STATUS_UNAVAILABLE, msg);
        return;
    }
    sv_debug("conn %llu (%s) accepted", (unsigned long long)c->id, c->peer);
    read_start(c);
    if (!c->reading) {
        sv_warn("conn %llu (%s): cannot start reading", (unsigned long long)c->id, c->peer);
        sv_conn_close(c);
    }
}

void sv_conn_stop_reading(struct sv_conn *c)
{
    read_stop(c);
}

/* Runs every half second. A connection is closed when it
 * - has not finished a frame within header_timeout of its first byte (half a
 *   request, or one trickled a byte at a time),
 * - with auth, has not authenticated within header_timeout of connecting,
 * - has sent nothing for idle_timeout (if set) and is owed nothing,
 * - has left more than max_output_buffer of replies unread for
 *   output_timeout (it sends but never reads),
 * - is draining (an error, EOF or shutdown ended it) and none of its
 *   replies has left for output_timeout.
 * Those the server does not read from (back-pressure) are not timed for
 * their input. The first three get an id-0 error first; the others could not
 * read it. */
void sv_conn_sweep(struct sv_server *srv, uint64_t now)
{
    const struct sv_config *cfg = srv->cfg;
    uint64_t header_ms = (uint64_t)cfg->header_timeout * 1000;
    uint64_t output_ms = (uint64_t)cfg->output_timeout * 1000;
    struct sv_conn *next;
    for (struct sv_conn *c = srv->all_head; c; c = next) {
        next = c->all_next;
        if (c->state == SV_CONN_DRAINING) {
            /* libuv reports a write only when all of it is out: progress
             * is what its queue shrank by since the last sweep. */
            size_t pending = c->out.len + uv_stream_get_write_queue_size(&c->h.stream);
            if (pending != c->drain_pending) {
                c->drain_pending = pending;
                c->drain_since_ms = now;
            }
        }
        if (c->state == SV_CONN_DRAINING && now - c->drain_since_ms > output_ms) {
            srv->conn_errors[SV_CERR_DRAIN_TIMEOUT]++;
            sv_warn_limited("conn %llu (%s): ending, %zu bytes of replies not read for %u s; "
                            "closing",
                            (unsigned long long)c->id, c->peer, sv_conn_output(c),
                            cfg->output_timeout);
            sv_conn_close(c);
            continue;
        }
        if (c->state != SV_CONN_OPEN)
            continue;
        if (c->blocked_since_ms && now - c->blocked_since_ms > output_ms) {
            srv->conn_errors[SV_CERR_OUTPUT_TIMEOUT]++;
            sv_warn_limited("conn %llu (%s): %zu bytes of replies unread for %u s; closing",
                            (unsigned long long)c->id, c->peer, sv_conn_output(c),
                            cfg->output_timeout);
            sv_conn_close(c);
            continue;
        }
        if (c->fate == SV_FATE_AWAIT || c->on_ready || c->in_batch)
            continue;
        if (!c->reading) {
            c->frame_since_ms = 0; /* our silence, not the client's */
            continue;
        }
        if (c->preauth && now - c->accepted_ms > header_ms) {
            srv->conn_errors[SV_CERR_AUTH_TIMEOUT]++;
            sv_warn_limited("conn %llu (%s): no hello with the token within %u s; closing",
                            (unsigned long long)c->id, c->peer, cfg->header_timeout);
            sv_conn_fail(c, SV_STATUS_UNAUTHENTICATED,
                         "authentication timed out: send hello with the token within "
                         "header_timeout");
            continue;
        }
        int partial = c->in.len > c->in.pos;
        if (partial && !c->frame_since_ms)
            c->frame_since_ms = now;
        if (partial && now - c->frame_since_ms > header_ms) {
            srv->conn_errors[SV_CERR_HEADER_TIMEOUT]++;
            sv_warn_limited("conn %llu (%s): a frame not whole after %u s; closing",
                            (unsigned long long)c->id, c->peer, cfg->header_timeout);
            sv_conn_fail(c, SV_STATUS_UNAVAILABLE, "timed out in the middle of a frame");
        } else if (!partial && cfg->idle_timeout && !sv_conn_output(c) &&
                   now - c->last_read_ms > (uint64_t)cfg->idle_timeout * 1000) {
            srv->conn_errors[SV_CERR_IDLE_TIMEOUT]++;
            sv_info("conn %llu (%s): idle for %u s; closing", (unsigned long long)c->id, c->peer,
                    cfg->idle_timeout);
            sv_conn_fail(c, SV_STATUS_UNAVAILABLE, "idle timeout");
        }
    }
}
