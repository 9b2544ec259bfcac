/* libstatesrv, asynchronous (statesrv_async.h is the contract).
 *
 * A handle is a connection core (statesrv_core.h: the same encoder, frame
 * reader, reply checks and error rules as the blocking API) plus a ring of
 * the callbacks owed, oldest first. The core already guarantees that
 * replies come back in request order with the ids it handed out, so a reply
 * always belongs to the ring's head. Nothing here waits: the caller's loop
 * says when the socket is readable or writable.
 *
 * Exactly once: a request enters the ring only when the core has queued its
 * frame, and leaves it only just before its callback runs, so every
 * callback is reached by exactly one path: its reply, the connection's
 * death (deliver_error_all), or the handle's close. */
#include "statesrv_async.h"
#include "statesrv_core.h"
#include "sv_value.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASYNC_MAX_IN_FLIGHT (1u << 20)
/* Reads per statesrv_async_read(): a socket that never runs dry must not
 * keep the caller's loop from its other work. */
#define ASYNC_READS_PER_CALL 16

struct async_req {
    statesrv_async_cb cb;
    void *arg;
    uint64_t id;
    size_t n_keys; /* multi_get: items the reply must carry */
};

struct statesrv_async {
    statesrv *c;
    struct async_req *reqs; /* ring: n of cap slots, oldest at head */
    size_t cap, head, n;
    size_t max_queued;
    statesrv_async_watch_cb watch;
    void *watch_arg;
    int told;        /* the interest the watch callback was last given; -1: none yet */
    int depth;       /* callbacks running */
    int closing;     /* statesrv_async_close() was called from a callback */
    int64_t last_ms; /* last progress, for io_timeout_ms */
    /* Scratch for a result's arrays, kept between replies. */
    statesrv_async_item *items;
    size_t items_cap;
    statesrv_entry *entries;
    size_t entries_cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unsent(const statesrv *c)
{
    return c->out_off < c->out.len;
}

int statesrv_async_events(const statesrv_async *a)
{
    if (!a || a->c->dead || a->c->fd < 0)
        return 0;
    return STATESRV_ASYNC_READ | (unsent(a->c) ? STATESRV_ASYNC_WRITE : 0);
}

/* Tells the watch callback when the interest changed. After 0 (the socket
 * is about to close) it is forgotten: it is never called again. */
static void update_watch(statesrv_async *a)
{
    int ev = statesrv_async_events(a);
    if (!a->watch || ev == a->told)
        return;
    a->told = ev;
    statesrv_async_watch_cb w = a->watch;
    if (ev == 0)
        a->watch = NULL;
    w(a, ev, a->watch_arg);
}

static void call(statesrv_async *a, const struct async_req *q, statesrv_async_result *r)
{
    a->depth++;
    q->cb(a, r, q->arg);
    a->depth--;
}

static struct async_req pop(statesrv_async *a)
{
    struct async_req q = a->reqs[a->head];
    a->head = (a->head + 1) % a->cap;
    a->n--;
    return q;
}

/* Every request in flight gets code, oldest first, each once. Callbacks may
 * issue requests meanwhile: those fail at once (the handle is dead or
 * closing), so the ring only shrinks. */
static void deliver_error_all(statesrv_async *a, int code, const char *why)
{
    char msg[sizeof(a->c->errmsg)];
    snprintf(msg, sizeof(msg), "%s", why);
    while (a->n) {
        struct async_req q = pop(a);
        statesrv_async_result r;
        memset(&r, 0, sizeof(r));
        r.id = q.id;
        r.status = code;
        r.message = msg;
        call(a, &q, &r);
    }
    a->c->pending = 0;
}

/* The core reported a connection error (rc): stop the loop watching, close
 * the socket, and fail everything in flight with rc. */
static int on_death(statesrv_async *a, int rc)
{
    statesrv *c = a->c;
    char why[sizeof(c->errmsg)];
    snprintf(why, sizeof(why), "%s", c->errmsg);
    update_watch(a); /* 0: the socket is about to close */
    sv_client_close_fd(c);
    sv_client_drop_resp(c);
    deliver_error_all(a, rc, why);
    /* A callback may have set another message; the handle's is the cause. */
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
    return rc;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    if (n > SIZE_MAX / size)
        return -1;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* The result arrays of a multi_get or scan reply, borrowed from resp.
 * 0, or STATESRV_ERR_NOMEM / STATESRV_ERR_PROTOCOL. */
static int fill_arrays(statesrv_async *a, const struct async_req *q,
                       const Statesrv__V1__Response *resp, statesrv_async_result *r)
{
    if (resp->result_case == STATESRV__V1__RESPONSE__RESULT_MULTI_GET) {
        const Statesrv__V1__MultiGetResult *m = resp->multi_get;
        if (m->n_items != q->n_keys)
            return sv_client_die(a->c, STATESRV_ERR_PROTOCOL,
                                 "multi_get of %zu keys answered with %zu items", q->n_keys,
                                 m->n_items);
        if (grow((void **)&a->items, &a->items_cap, m->n_items, sizeof(*a->items)))
            return STATESRV_ERR_NOMEM;
        for (size_t i = 0; i < m->n_items; i++) {
            const Statesrv__V1__MultiGetItem *it = m->items[i];
            statesrv_async_item *o = &a->items[i];
            o->found = it->found ? 1 : 0;
            o->value = it->found ? (it->value.len ? (const void *)it->value.data : "") : NULL;
            o->value_len = it->found ? it->value.len : 0;
            o->kind = it->found ? (int)it->kind : 0;
        }
        r->items = m->n_items ? a->items : NULL;
        r->n_items = m->n_items;
    } else if (resp->result_case == STATESRV__V1__RESPONSE__RESULT_SCAN) {
        const Statesrv__V1__ScanResult *s = resp->scan;
        if (grow((void **)&a->entries, &a->entries_cap, s->n_entries, sizeof(*a->entries)))
            return STATESRV_ERR_NOMEM;
        for (size_t i = 0; i < s->n_entries; i++) {
            const Statesrv__V1__Entry *en = s->entries[i];
            statesrv_entry *e = &a->entries[i];
            e->key = en->key.data;
            e->key_len = en->key.len;
            e->ns = en->namespace_.data;
            e->ns_len = en->namespace_.len;
            e->key_group = en->key_group;
            e->value = en->value.data;
            e->value_len = en->value.len;
            e->kind = (int)en->kind;
        }
        r->entries = s->n_entries ? a->entries : NULL;
        r->n_entries = s->n_entries;
        r->cursor = s->cursor.len ? s->cursor.data : NULL;
        r->cursor_len = s->cursor.len;
    }
    return 0;
}

/* The reply in c->resp belongs to the ring's head: run its callback. 0, or
 * the connection error the reply revealed (after the head got it). */
static int deliver(statesrv_async *a)
{
    statesrv *c = a->c;
    struct async_req q = pop(a);
    statesrv_async_result r;
    memset(&r, 0, sizeof(r));
    r.id = q.id;
    int st = sv_client_reply_status(c);
    const Statesrv__V1__Response *resp = c->resp;
    if (!c->dead && st == STATESRV_OK)
        st = fill_arrays(a, &q, resp, &r);
    if (c->dead) {
        r.status = st;
        r.message = c->errmsg;
        call(a, &q, &r);
        return st;
    }
    r.status = st;
    r.message = st == STATESRV_ERR_NOMEM ? "out of memory for a reply's items"
                                         : (resp->message ? resp->message : "");
    if (st == STATESRV_OK) {
        switch (resp->result_case) {
        case STATESRV__V1__RESPONSE__RESULT_GET:
            r.value = resp->get->value.len ? (const void *)resp->get->value.data : "";
            r.value_len = resp->get->value.len;
            r.kind = (int)resp->get->kind;
            r.found = 1;
            break;
        case STATESRV__V1__RESPONSE__RESULT_DELETE:
            r.found = resp->delete_->found ? 1 : 0;
            break;
        case STATESRV__V1__RESPONSE__RESULT_MERGE:
            r.counter = resp->merge->counter;
            break;
        case STATESRV__V1__RESPONSE__RESULT_CLEAR:
            r.count = resp->clear->deleted;
            break;
        case STATESRV__V1__RESPONSE__RESULT_BATCH:
            r.count = resp->batch->applied;
            break;
        default:
            break;
        }
    }
    call(a, &q, &r);
    sv_client_drop_resp(c);
    return 0;
}

/* Runs the callback of every whole reply buffered. */
static int dispatch(statesrv_async *a)
{
    while (!a->closing && a->n) {
        int got;
        int rc = sv_client_take(a->c, &got);
        if (rc == 0 && !got)
            return 0;
        if (rc == 0)
            rc = deliver(a);
        if (rc)
            return on_death(a, rc);
    }
    /* Bytes with nothing owed: a reply to no request, or an error frame. */
    if (!a->closing && !a->n && sv_frame_reader_ready(&a->c->in)) {
        int got;
        int rc = sv_client_take(a->c, &got);
        if (rc)
            return on_death(a, rc);
    }
    return 0;
}

/* --- entry and exit of the public calls --------------------------------- */

static void really_close(statesrv_async *a)
{
    a->closing = 1;
    if (a->watch && a->told != 0) {
        statesrv_async_watch_cb w = a->watch;
        a->watch = NULL;
        a->told = 0;
        w(a, 0, a->watch_arg);
    }
    sv_client_close_fd(a->c);
    deliver_error_all(a, STATESRV_ERR_CANCELLED,
                      "the handle was closed with the request in flight");
    statesrv_close(a->c);
    free(a->reqs);
    free(a->items);
    free(a->entries);
    free(a);
}

/* A call that may run callbacks: refused from inside one, and on a dead
 * connection it only repeats the sticky error. */
static int enter(statesrv_async *a)
{
    if (!a)
        return STATESRV_ERR_USAGE;
    if (a->depth)
        return sv_client_fail(a->c, STATESRV_ERR_USAGE, "called from inside a callback");
    return a->c->dead;
}

/* After callbacks ran: a close requested by one of them happens now. */
static int leave(statesrv_async *a, int rc)
{
    if (a->closing) {
        really_close(a);
        return STATESRV_ERR_CANCELLED;
    }
    update_watch(a);
    return rc;
}

void statesrv_async_close(statesrv_async *a)
{
    if (!a)
        return;
    if (a->depth) {
        a->closing = 1; /* freed when the callback returns to the library */
        return;
    }
    if (!a->closing)
        really_close(a);
}

/* --- the loop's calls --------------------------------------------------- */

int statesrv_async_read(statesrv_async *a)
{
    int rc = enter(a);
    if (rc)
        return rc;
    statesrv *c = a->c;
    for (int i = 0; i < ASYNC_READS_PER_CALL && !a->closing; i++) {
        int progress = 0;
        rc = sv_client_read(c, &progress);
        if (rc)
            return leave(a, on_death(a, rc));
        if (progress)
            a->last_ms = now_ms();
        if ((rc = dispatch(a)))
            return leave(a, rc);
        if (!progress || c->eof)
            break;
    }
    if (c->eof && !a->closing && !c->dead) {
        /* Everything the server sent is delivered; what is still owed will
         * never come. */
        rc = sv_client_die_io(c, "connection closed by the server");
        return leave(a, on_death(a, rc));
    }
    return leave(a, 0);
}

int statesrv_async_write(statesrv_async *a)
{
    int rc = enter(a);
    if (rc)
        return rc;
    statesrv *c = a->c;
    while (unsent(c)) {
        int progress = 0;
        if ((rc = sv_client_write(c, &progress)))
            return leave(a, on_death(a, rc));
        if (!progress)
            break;
        a->last_ms = now_ms();
    }
    return leave(a, 0);
}

int statesrv_async_tick(statesrv_async *a)
{
    int rc = enter(a);
    if (rc)
        return rc;
    statesrv *c = a->c;
    if (a->n && c->io_timeout_ms >= 0 && now_ms() - a->last_ms >= c->io_timeout_ms) {
        rc = sv_client_die(c, STATESRV_ERR_TIMEOUT,
                           "no progress for %d ms with %zu requests in flight", c->io_timeout_ms,
                           a->n);
        return leave(a, on_death(a, rc));
    }
    return leave(a, 0);
}

int statesrv_async_wait(statesrv_async *a, int timeout_ms)
{
    int rc = enter(a);
    if (rc)
        return rc;
    statesrv *c = a->c;
    int t = timeout_ms;
    if (a->n && c->io_timeout_ms >= 0) {
        int64_t left = (int64_t)c->io_timeout_ms - (now_ms() - a->last_ms);
        left = left < 0 ? 0 : left;
        if (t < 0 || left < t)
            t = left > INT_MAX ? INT_MAX : (int)left;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (unsent(c))
        pfd.events |= POLLOUT;
    int n = poll(&pfd, 1, t);
    if (n < 0 && errno != EINTR) {
        rc = sv_client_die(c, STATESRV_ERR_IO, "poll: %s", strerror(errno));
        return leave(a, on_death(a, rc));
    }
    if (n > 0 && (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) && unsent(c)) {
        rc = statesrv_async_write(a);
        if (rc == STATESRV_ERR_CANCELLED || c->dead)
            return rc;
    }
    if (n > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))) {
        rc = statesrv_async_read(a);
        if (rc == STATESRV_ERR_CANCELLED || c->dead)
            return rc;
    }
    return statesrv_async_tick(a);
}

/* --- requests ----------------------------------------------------------- */

/* Queues req and owes cb a callback. Nothing is queued on failure. */
static int issue(statesrv_async *a, Statesrv__V1__Request *req, int expect, size_t n_keys,
                 statesrv_async_cb cb, void *arg, uint64_t *id)
{
    statesrv *c = a->c;
    if (a->n == a->cap)
        return sv_client_fail(c, STATESRV_ERR_AGAIN, "%zu requests in flight (max_in_flight)",
                              a->n);
    if (c->out.len - c->out_off >= a->max_queued)
        return sv_client_fail(c, STATESRV_ERR_AGAIN,
                              "%zu request bytes wait to be sent (max_queued_bytes)",
                              c->out.len - c->out_off);
    uint64_t rid;
    int rc = sv_client_enqueue(c, req, expect, &rid);
    if (rc)
        return rc;
    if (a->n == 0)
        a->last_ms = now_ms(); /* the timeout counts from the first request owed */
    struct async_req *q = &a->reqs[(a->head + a->n) % a->cap];
    q->cb = cb;
    q->arg = arg;
    q->id = rid;
    q->n_keys = n_keys;
    a->n++;
    if (id)
        *id = rid;
    if (!a->depth)
        update_watch(a); /* from a callback: the library updates it on the way out */
    c->errmsg[0] = '\0';
    return STATESRV_OK;
}

/* The checks every request starts with. */
static int begin(statesrv_async *a, statesrv_async_cb cb)
{
    if (!a)
        return STATESRV_ERR_USAGE;
    if (a->closing)
        return STATESRV_ERR_CANCELLED;
    if (a->c->dead)
        return a->c->dead;
    if (!cb)
        return sv_client_fail(a->c, STATESRV_ERR_USAGE, "callback is NULL");
    return 0;
}

int statesrv_async_ping(statesrv_async *a, statesrv_async_cb cb, void *arg, uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc)
        return rc;
    Statesrv__V1__Ping m = STATESRV__V1__PING__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_PING;
    req.ping = &m;
    return issue(a, &req, STATESRV__V1__RESPONSE__RESULT_PING, 0, cb, arg, id);
}

/* get, put, delete and merge: built by the core. */
static int keyed(statesrv_async *a, int op, const statesrv_key *k, int how, const void *val,
                 size_t len, statesrv_async_cb cb, void *arg, uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc)
        return rc;
    union sv_client_keyed m;
    Statesrv__V1__Request req;
    int expect;
    if ((rc = sv_client_keyed_request(a->c, op, k, how, val, len, &m, &req, &expect)))
        return rc;
    return issue(a, &req, expect, 0, cb, arg, id);
}

int statesrv_async_get(statesrv_async *a, const statesrv_key *k, statesrv_async_cb cb, void *arg,
                       uint64_t *id)
{
    return keyed(a, STATESRV__V1__REQUEST__OP_GET, k, 0, NULL, 0, cb, arg, id);
}

int statesrv_async_multi_get(statesrv_async *a, const statesrv_key *keys, size_t n,
                             statesrv_async_cb cb, void *arg, uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc)
        return rc;
    struct sv_client_multi_get mg;
    if ((rc = sv_client_build_multi_get(a->c, keys, n, &mg)))
        return rc;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_MULTI_GET;
    req.multi_get = &mg.m;
    rc = issue(a, &req, STATESRV__V1__RESPONSE__RESULT_MULTI_GET, n, cb, arg, id);
    sv_client_multi_get_free(&mg);
    return rc;
}

int statesrv_async_put(statesrv_async *a, const statesrv_key *k, int kind, const void *val,
                       size_t len, statesrv_async_cb cb, void *arg, uint64_t *id)
{
    return keyed(a, STATESRV__V1__REQUEST__OP_PUT, k, kind, val, len, cb, arg, id);
}

int statesrv_async_delete(statesrv_async *a, const statesrv_key *k, statesrv_async_cb cb, void *arg,
                          uint64_t *id)
{
    return keyed(a, STATESRV__V1__REQUEST__OP_DELETE, k, 0, NULL, 0, cb, arg, id);
}

static int merge(statesrv_async *a, const statesrv_key *k, Statesrv__V1__MergeOp op,
                 const void *operand, size_t len, statesrv_async_cb cb, void *arg, uint64_t *id)
{
    return keyed(a, STATESRV__V1__REQUEST__OP_MERGE, k, (int)op, operand, len, cb, arg, id);
}

int statesrv_async_append(statesrv_async *a, const statesrv_key *k, const void *elem, size_t len,
                          statesrv_async_cb cb, void *arg, uint64_t *id)
{
    return merge(a, k, STATESRV__V1__MERGE_OP__APPEND, elem, len, cb, arg, id);
}

int statesrv_async_add(statesrv_async *a, const statesrv_key *k, int64_t delta,
                       statesrv_async_cb cb, void *arg, uint64_t *id)
{
    uint8_t operand[SV_COUNTER_SIZE];
    sv_i64_put(operand, delta);
    return merge(a, k, STATESRV__V1__MERGE_OP__ADD_I64, operand, sizeof(operand), cb, arg, id);
}

int statesrv_async_clear(statesrv_async *a, const statesrv_key *k, statesrv_async_cb cb, void *arg,
                         uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc || (rc = sv_client_check_key(a->c, k)))
        return rc;
    Statesrv__V1__Clear m;
    Statesrv__V1__KeySelector sel;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_clear(&m, &sel, k->state, k);
    req.op_case = STATESRV__V1__REQUEST__OP_CLEAR;
    req.clear = &m;
    return issue(a, &req, STATESRV__V1__RESPONSE__RESULT_CLEAR, 0, cb, arg, id);
}

int statesrv_async_batch(statesrv_async *a, const statesrv_batch *b, statesrv_async_cb cb,
                         void *arg, uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc)
        return rc;
    struct sv_client_batch_msg bm;
    if ((rc = sv_client_build_batch(a->c, b, &bm)))
        return rc;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_BATCH;
    req.batch = &bm.m;
    rc = issue(a, &req, STATESRV__V1__RESPONSE__RESULT_BATCH, 0, cb, arg, id);
    sv_client_batch_msg_free(&bm);
    return rc;
}

int statesrv_async_scan(statesrv_async *a, const statesrv_scan_options *o, statesrv_async_cb cb,
                        void *arg, uint64_t *id)
{
    int rc = begin(a, cb);
    if (rc || (rc = sv_client_check_scan(a->c, o)))
        return rc;
    struct sv_client_scan_msg sm;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_scan(&sm, o, o->cursor, o->cursor_len);
    req.op_case = STATESRV__V1__REQUEST__OP_SCAN;
    req.scan = &sm.m;
    return issue(a, &req, STATESRV__V1__RESPONSE__RESULT_SCAN, 0, cb, arg, id);
}

/* --- the handle --------------------------------------------------------- */

int statesrv_async_connect(const char *addr, const statesrv_options *opts,
                           const statesrv_async_options *aopts, statesrv_async **out, char *errbuf,
                           size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out)
        return STATESRV_ERR_USAGE;
    *out = NULL;
    uint32_t cap =
        aopts && aopts->max_in_flight ? aopts->max_in_flight : STATESRV_ASYNC_DEFAULT_IN_FLIGHT;
    size_t queued = aopts && aopts->max_queued_bytes ? aopts->max_queued_bytes
                                                     : STATESRV_ASYNC_DEFAULT_QUEUED_BYTES;
    if (cap > ASYNC_MAX_IN_FLIGHT) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "max_in_flight %u is above %u", cap, ASYNC_MAX_IN_FLIGHT);
        return STATESRV_ERR_USAGE;
    }
    statesrv_async *a = calloc(1, sizeof(*a));
    struct async_req *reqs = calloc(cap, sizeof(*reqs));
    if (!a || !reqs) {
        free(a);
        free(reqs);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return STATESRV_ERR_NOMEM;
    }
    int rc = statesrv_connect2(addr, opts, &a->c, errbuf, errlen);
    if (rc) {
        free(a);
        free(reqs);
        return rc;
    }
    a->c->keep_fd_on_death = 1;
    a->reqs = reqs;
    a->cap = cap;
    a->max_queued = queued;
    a->told = -1;
    a->last_ms = now_ms();
    *out = a;
    return STATESRV_OK;
}

void statesrv_async_set_watch(statesrv_async *a, statesrv_async_watch_cb cb, void *arg)
{
    if (!a)
        return;
    a->watch = cb;
    a->watch_arg = arg;
    a->told = -1;
    if (cb && !a->depth)
        update_watch(a);
}

int statesrv_async_fd(const statesrv_async *a)
{
    return a && !a->c->dead ? a->c->fd : -1;
}

size_t statesrv_async_in_flight(const statesrv_async *a)
{
    return a ? a->n : 0;
}

size_t statesrv_async_capacity(const statesrv_async *a)
{
    return a ? a->cap : 0;
}

const statesrv_server_info *statesrv_async_info(const statesrv_async *a)
{
    return a ? statesrv_info(a->c) : NULL;
}

const char *statesrv_async_errmsg(const statesrv_async *a)
{
    return a ? statesrv_errmsg(a->c) : "";
}
