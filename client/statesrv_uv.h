/* libstatesrv's libuv adapter: drives a statesrv_async handle from a
 * uv_loop_t. Header-only (as hiredis ships its adapters), so libstatesrv
 * itself does not depend on libuv: include this after uv.h in a program
 * that links libuv.
 *
 *     statesrv_async *a;
 *     statesrv_async_connect("unix:/run/statesrvd/w1.sock", NULL, NULL, &a, why, sizeof(why));
 *     statesrv_uv_attach(loop, a);
 *     statesrv_async_get(a, &k, on_value, ctx, NULL);   // goes out on the next loop turn
 *     uv_run(loop, UV_RUN_DEFAULT);
 *
 * The adapter keeps a uv_poll_t on the handle's socket (readable always,
 * writable while requests wait to be sent: every request issued in one turn
 * leaves in one write) and an unreferenced uv_timer_t that calls
 * statesrv_async_tick() every 100 ms for io_timeout_ms. The poll handle
 * keeps uv_run() going while attached; it goes away by itself when the
 * connection dies or the handle is closed (statesrv_async_close()), and the
 * adapter's memory is freed in libuv's close callbacks.
 */
#ifndef STATESRV_UV_H
#define STATESRV_UV_H

#include "statesrv_async.h"

#include <stdlib.h>
#include <uv.h>

#define STATESRV_UV_TICK_MS 100

typedef struct statesrv_uv {
    uv_poll_t poll;
    uv_timer_t timer;
    statesrv_async *a; /* NULL once detached */
    int open;          /* libuv handles not yet closed */
} statesrv_uv;

static void statesrv_uv__closed(uv_handle_t *h)
{
    statesrv_uv *u = (statesrv_uv *)h->data;
    if (--u->open == 0)
        free(u);
}

static void statesrv_uv__poll_cb(uv_poll_t *p, int status, int events)
{
    statesrv_uv *u = (statesrv_uv *)p->data;
    /* An error on the socket: let the library read it and report it. */
    if (status < 0)
        events = UV_READABLE;
    if (u->a && (events & UV_WRITABLE))
        (void)statesrv_async_write(u->a);
    if (u->a && (events & UV_READABLE))
        (void)statesrv_async_read(u->a);
}

static void statesrv_uv__timer_cb(uv_timer_t *t)
{
    statesrv_uv *u = (statesrv_uv *)t->data;
    if (u->a)
        (void)statesrv_async_tick(u->a);
}

/* The library's watch callback. 0: the socket closes right after this
 * returns, so stop polling it now and let the handles go. */
static void statesrv_uv__watch(statesrv_async *a, int events, void *arg)
{
    statesrv_uv *u = (statesrv_uv *)arg;
    (void)a;
    if (events == 0) {
        u->a = NULL;
        uv_poll_stop(&u->poll);
        uv_timer_stop(&u->timer);
        uv_close((uv_handle_t *)&u->poll, statesrv_uv__closed);
        uv_close((uv_handle_t *)&u->timer, statesrv_uv__closed);
        return;
    }
    int uvev = 0;
    if (events & STATESRV_ASYNC_READ)
        uvev |= UV_READABLE;
    if (events & STATESRV_ASYNC_WRITE)
        uvev |= UV_WRITABLE;
    uv_poll_start(&u->poll, uvev, statesrv_uv__poll_cb);
}

/**
 * @brief Attaches a to loop. The attachment lasts until the connection dies
 *        or a is closed; a handle is attached to one loop at most.
 * @return 0, UV_ENOMEM, UV_EINVAL (a is NULL or already dead), or libuv's
 *         error for the poll handle.
 */
static inline int statesrv_uv_attach(uv_loop_t *loop, statesrv_async *a)
{
    int fd = statesrv_async_fd(a);
    if (!loop || fd < 0)
        return UV_EINVAL;
    statesrv_uv *u = (statesrv_uv *)calloc(1, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    int rc = uv_poll_init(loop, &u->poll, fd);
    if (rc) {
        free(u);
        return rc;
    }
    u->open = 1;
    u->poll.data = u;
    if ((rc = uv_timer_init(loop, &u->timer))) {
        uv_close((uv_handle_t *)&u->poll, statesrv_uv__closed);
        return rc;
    }
    u->open = 2;
    u->timer.data = u;
    uv_timer_start(&u->timer, statesrv_uv__timer_cb, STATESRV_UV_TICK_MS, STATESRV_UV_TICK_MS);
    uv_unref((uv_handle_t *)&u->timer);
    u->a = a;
    statesrv_async_set_watch(a, statesrv_uv__watch, u);
    return 0;
}

#endif
