/* libstatesrv, asynchronous: requests that never wait for a round trip.
 *
 * A `statesrv_async` handle is one connection, like a `statesrv`, driven by
 * the caller's event loop instead of blocking calls. Each request function
 * encodes its request into the handle's output buffer and returns at once;
 * the reply is delivered later to the request's callback. Nothing is sent
 * until the loop reports the socket writable (statesrv_async_write()), so
 * every request issued in one turn of the loop goes out in one write.
 *
 * Event loop contract (any loop; client/statesrv_uv.h adapts libuv):
 *   - watch statesrv_async_fd() for reading always, and for writing while
 *     statesrv_async_events() says so (or set a watch callback with
 *     statesrv_async_set_watch() and be told whenever that changes);
 *   - call statesrv_async_read() when it is readable and
 *     statesrv_async_write() when it is writable;
 *   - call statesrv_async_tick() now and then (the libuv adapter: every
 *     io_timeout_ms / 4) so that a server that stops answering is noticed.
 * Without a loop, statesrv_async_wait() polls the descriptor itself.
 *
 * Callbacks: if a request function returns anything but STATESRV_OK its
 * callback is never called; if it returns STATESRV_OK the callback is
 * called exactly once, from statesrv_async_read(), _write(), _tick(),
 * _wait() or _close(), never from inside the request function. Callbacks run
 * in issue order, which is also the order the server applies the requests
 * in (a get issued after a put of the same key sees the put). A callback
 * may issue new requests and may call statesrv_async_close() (the handle
 * is then freed once the callback returns; the call that ran it returns
 * STATESRV_ERR_CANCELLED and the handle must not be used again).
 *
 * Errors: r->status in the callback is the request's own outcome:
 * STATESRV_OK, a server status (NOT_FOUND, INVALID_ARGUMENT, BUSY, ...; the
 * connection stays up), or a connection error. Connection errors are sticky
 * as in the blocking API (statesrv.h): the first one (STATESRV_ERR_IO,
 * _TIMEOUT, _PROTOCOL, _NOMEM, or the status of the server's own
 * connection-level error frame) is delivered to every request still in
 * flight, in issue order, each once; later request functions return
 * STATESRV_ERR_IO or that code, and the descriptor is closed.
 * statesrv_async_close() delivers STATESRV_ERR_CANCELLED to what is left.
 *
 * Back-pressure: at most max_in_flight requests (sent or not) and about
 * max_queued_bytes of unsent requests per handle. Past either bound a
 * request function returns STATESRV_ERR_AGAIN and queues nothing: let the
 * loop run (callbacks free slots) and issue it again.
 *
 * Memory: the request functions copy what they need (keys, values, the
 * batch) before returning. Everything a callback's result points to is
 * borrowed and valid only until the callback returns.
 *
 * Threads: a handle is used from one thread at a time (the loop's).
 */
#ifndef STATESRV_ASYNC_H
#define STATESRV_ASYNC_H

#include "statesrv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct statesrv_async statesrv_async;

/** Defaults of statesrv_async_options. */
#define STATESRV_ASYNC_DEFAULT_IN_FLIGHT 1024
#define STATESRV_ASYNC_DEFAULT_QUEUED_BYTES (16u << 20)

typedef struct statesrv_async_options {
    /** Requests in flight at most (issued, reply not yet delivered);
     *  0: STATESRV_ASYNC_DEFAULT_IN_FLIGHT; at most 1048576. */
    uint32_t max_in_flight;
    /** Unsent request bytes after which requests are refused with
     *  STATESRV_ERR_AGAIN; 0: STATESRV_ASYNC_DEFAULT_QUEUED_BYTES. One
     *  request is always accepted into an empty buffer. */
    size_t max_queued_bytes;
} statesrv_async_options;

/** One item of a multi_get reply (borrowed). */
typedef struct statesrv_async_item {
    int found;
    const void *value; /**< non-NULL when found, even for an empty value */
    size_t value_len;
    int kind;
} statesrv_async_item;

/** A reply, as a callback sees it. Every pointer is borrowed until the
 *  callback returns. Fields not named for the request's op are zero. */
typedef struct statesrv_async_result {
    uint64_t id;         /**< what the request function returned in *id */
    int status;          /**< see "Errors" above */
    const char *message; /**< the server's or the library's detail; "" when OK */
    /* get: value (non-NULL when found, even if empty), kind, found.
     * delete: found. */
    const void *value;
    size_t value_len;
    int kind;
    int found;
    int64_t counter; /**< add: the counter's new value */
    uint64_t count;  /**< clear: entries deleted; batch: operations applied */
    /* multi_get: one item per key, in order. */
    const statesrv_async_item *items;
    size_t n_items;
    /* scan: one page of entries in stored order; cursor_len 0 when the scan
     * is complete, else pass cursor in statesrv_scan_options.cursor. */
    const statesrv_entry *entries;
    size_t n_entries;
    const void *cursor;
    size_t cursor_len;
} statesrv_async_result;

/** A request's callback: a is the handle, arg what was passed with the request. */
typedef void (*statesrv_async_cb)(statesrv_async *a, const statesrv_async_result *r, void *arg);

/** Event interest bits (statesrv_async_events(), the watch callback). */
#define STATESRV_ASYNC_READ 1
#define STATESRV_ASYNC_WRITE 2

/**
 * Told what the loop should watch for: events is a mask of
 * STATESRV_ASYNC_READ / _WRITE, or 0 when the descriptor is about to be
 * closed (stop watching it now: it is closed when the callback returns).
 * Called from the request functions (READ|WRITE once something is queued)
 * and from read/write/tick/close; it must not call back into the handle.
 */
typedef void (*statesrv_async_watch_cb)(statesrv_async *a, int events, void *arg);

/**
 * @brief Connects and performs the handshake like statesrv_connect2() (same
 *        addresses, options, auth token and errors); this part blocks, up to
 *        connect_timeout_ms. The handle returned never blocks again.
 * @param aopts NULL for defaults.
 * @param out receives the handle; NULL on failure.
 * @param errbuf if not NULL, receives a one-line reason on failure.
 * @return STATESRV_OK or an error of statesrv_connect2(), or STATESRV_ERR_USAGE
 *         for a bad option.
 */
STATESRV_API int statesrv_async_connect(const char *addr, const statesrv_options *opts,
                                        const statesrv_async_options *aopts, statesrv_async **out,
                                        char *errbuf, size_t errlen);

/**
 * @brief Closes the connection and frees the handle. Every request still in
 *        flight gets its callback with STATESRV_ERR_CANCELLED first (in issue
 *        order); the watch callback is told 0. NULL is ignored. From inside a
 *        callback the handle is freed once the callback returns.
 */
STATESRV_API void statesrv_async_close(statesrv_async *a);

/** @brief The socket to watch; -1 once the connection is closed. */
STATESRV_API int statesrv_async_fd(const statesrv_async *a);
/** @brief STATESRV_ASYNC_READ, plus _WRITE while requests wait to be sent; 0 when dead. */
STATESRV_API int statesrv_async_events(const statesrv_async *a);
/** @brief Sets (or with NULL clears) the watch callback; it is called at once with the current
 * interest. */
STATESRV_API void statesrv_async_set_watch(statesrv_async *a, statesrv_async_watch_cb cb,
                                           void *arg);

/**
 * @brief The socket is readable: reads what it has and runs the callback of
 *        every reply that is complete.
 * @return STATESRV_OK, the sticky connection error (after the callbacks got
 *         it), STATESRV_ERR_USAGE (called from a callback), or
 *         STATESRV_ERR_CANCELLED when a callback closed the handle.
 */
STATESRV_API int statesrv_async_read(statesrv_async *a);
/** @brief The socket is writable: sends what is queued, as much as it takes. Returns as _read(). */
STATESRV_API int statesrv_async_write(statesrv_async *a);
/**
 * @brief Checks io_timeout_ms: with requests in flight and neither bytes sent
 *        nor received for that long, fails the connection with
 *        STATESRV_ERR_TIMEOUT (every pending callback gets it).
 * @return as statesrv_async_read().
 */
STATESRV_API int statesrv_async_tick(statesrv_async *a);
/**
 * @brief Without an event loop: waits up to timeout_ms (-1: no limit) for the
 *        socket, then reads, writes and ticks as needed. Returns when some
 *        progress was made or the time is up.
 * @return as statesrv_async_read().
 */
STATESRV_API int statesrv_async_wait(statesrv_async *a, int timeout_ms);

/** @brief Requests issued whose callback has not run yet. */
STATESRV_API size_t statesrv_async_in_flight(const statesrv_async *a);
/** @brief The max_in_flight bound in force. */
STATESRV_API size_t statesrv_async_capacity(const statesrv_async *a);
/** @brief The handshake's answer; valid for the handle's lifetime. */
STATESRV_API const statesrv_server_info *statesrv_async_info(const statesrv_async *a);
/** @brief Detail of the last failure on the handle (a refused request, the connection error). */
STATESRV_API const char *statesrv_async_errmsg(const statesrv_async *a);

/*
 * Requests. Each returns STATESRV_OK (the callback will run once),
 * STATESRV_ERR_AGAIN (a bound is reached), STATESRV_ERR_USAGE (bad
 * argument, or cb is NULL), STATESRV_TOO_LARGE (the frame would exceed the
 * server's max_frame_size), STATESRV_ERR_NOMEM, or the sticky connection
 * error; only STATESRV_OK queues anything. id, when not NULL, receives the
 * request's id (also in the result). The arguments mean what they mean in
 * the blocking functions of the same name (statesrv.h).
 */
STATESRV_API int statesrv_async_ping(statesrv_async *a, statesrv_async_cb cb, void *arg,
                                     uint64_t *id);
STATESRV_API int statesrv_async_get(statesrv_async *a, const statesrv_key *k, statesrv_async_cb cb,
                                    void *arg, uint64_t *id);
STATESRV_API int statesrv_async_multi_get(statesrv_async *a, const statesrv_key *keys, size_t n,
                                          statesrv_async_cb cb, void *arg, uint64_t *id);
STATESRV_API int statesrv_async_put(statesrv_async *a, const statesrv_key *k, int kind,
                                    const void *val, size_t len, statesrv_async_cb cb, void *arg,
                                    uint64_t *id);
STATESRV_API int statesrv_async_delete(statesrv_async *a, const statesrv_key *k,
                                       statesrv_async_cb cb, void *arg, uint64_t *id);
STATESRV_API int statesrv_async_append(statesrv_async *a, const statesrv_key *k, const void *elem,
                                       size_t len, statesrv_async_cb cb, void *arg, uint64_t *id);
STATESRV_API int statesrv_async_add(statesrv_async *a, const statesrv_key *k, int64_t delta,
                                    statesrv_async_cb cb, void *arg, uint64_t *id);
/** k->ns is ignored; r->count is the number of entries deleted. */
STATESRV_API int statesrv_async_clear(statesrv_async *a, const statesrv_key *k,
                                      statesrv_async_cb cb, void *arg, uint64_t *id);
/** Applied atomically; b may be freed or reset as soon as this returns. */
STATESRV_API int statesrv_async_batch(statesrv_async *a, const statesrv_batch *b,
                                      statesrv_async_cb cb, void *arg, uint64_t *id);
/** One page of a scan (o->page_size entries at most), from o->cursor. */
STATESRV_API int statesrv_async_scan(statesrv_async *a, const statesrv_scan_options *o,
                                     statesrv_async_cb cb, void *arg, uint64_t *id);

#ifdef __cplusplus
}
#endif

#endif
