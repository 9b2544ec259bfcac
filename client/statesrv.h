/* libstatesrv — the client library for statesrvd.
 *
 * A `statesrv` handle is one connection. Calls on it block (with the
 * configured timeouts) and are thread-compatible: use one handle per thread,
 * or lock around a shared one. The library keeps no global state.
 *
 * Return values: every function that can fail returns an int code:
 * STATESRV_OK (0); a server status (1..99, equal to the wire's Status); or
 * a local failure (>= 100). statesrv_strerror() names any code and
 * statesrv_errmsg() gives the detail of the last failure on a handle (the
 * server's message, or the local cause).
 *
 * The library checks only what it cannot send (NULL pointers, an unknown
 * scan mode): state names, key sizes, key groups and the like are the
 * server's to judge, and its status and message come back unchanged. The one
 * local size check: a request whose frame would exceed the server's
 * max_frame_size (from the handshake) fails with STATESRV_TOO_LARGE before
 * anything is sent, because the server would have to drop the connection.
 *
 * After STATESRV_ERR_IO, STATESRV_ERR_TIMEOUT or STATESRV_ERR_PROTOCOL (and
 * STATESRV_ERR_NOMEM while reading a reply) the connection is closed and
 * every later call on the handle returns the same code; close it and
 * connect again. When the server ends the connection with an error of its
 * own (a frame with id 0, e.g. STATESRV_TOO_LARGE for an oversized frame or
 * STATESRV_UNAVAILABLE when it has max_connections clients), the
 * call that sees it returns that status with the server's message, and
 * later calls return STATESRV_ERR_IO.
 *
 * Memory: anything the library returns through a pointer-to-pointer is the
 * caller's and is released with the matching *_free function. Pointers inside
 * a statesrv_reply or a scan entry are borrowed and live until the next call
 * on the same handle (or scan).
 */
#ifndef STATESRV_H
#define STATESRV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STATESRV_BUILDING) && defined(__GNUC__)
#define STATESRV_API __attribute__((visibility("default")))
#else
#define STATESRV_API
#endif

#define STATESRV_PROTOCOL_VERSION 1
#define STATESRV_DEFAULT_ADDR "127.0.0.1:7420"

/** Result codes. 1..99 mirror the server's statuses. */
enum statesrv_code {
    STATESRV_OK = 0,
    STATESRV_NOT_FOUND = 1,
    STATESRV_INVALID_ARGUMENT = 2,
    STATESRV_TOO_LARGE = 3,
    STATESRV_UNAUTHENTICATED = 4,
    STATESRV_BUSY = 5,
    STATESRV_UNAVAILABLE = 6,
    STATESRV_INTERNAL = 7,
    STATESRV_NO_SPACE = 8,

    STATESRV_ERR_USAGE = 100,    /**< bad argument to the library; nothing was sent */
    STATESRV_ERR_CONNECT = 101,  /**< could not connect or handshake */
    STATESRV_ERR_IO = 102,       /**< the connection failed or was closed */
    STATESRV_ERR_TIMEOUT = 103,  /**< io_timeout_ms passed without progress */
    STATESRV_ERR_PROTOCOL = 104, /**< the server's reply did not make sense */
    STATESRV_ERR_NOMEM = 105,
    STATESRV_ERR_AGAIN = 106,     /**< asynchronous: a bound on requests in flight is reached */
    STATESRV_ERR_CANCELLED = 107, /**< asynchronous: the handle was closed first */
};

/** How the server interprets a value. */
enum statesrv_kind {
    STATESRV_KIND_RAW = 0,     /**< opaque bytes */
    STATESRV_KIND_LIST = 1,    /**< elements, each varint(length) || bytes */
    STATESRV_KIND_COUNTER = 2, /**< 8 bytes, big-endian two's complement int64 */
};

typedef struct statesrv statesrv;

typedef struct statesrv_options {
    /** Per address tried, and again for the handshake; 0: 5000; -1: no limit. */
    int connect_timeout_ms;
    int io_timeout_ms;       /**< per call without progress; 0: 30000; -1: no limit */
    const char *client_name; /**< shown in the server's logs; NULL: "libstatesrv" */
    /**
     * How long statesrv_snapshot() and statesrv_restore() wait for their
     * reply, which comes only when the job is complete (minutes for a large
     * store). io_timeout_ms does not apply to that wait. 0 or -1: no limit
     * (the default; a server that goes away still ends the wait, as the
     * connection closes). On expiry the call returns STATESRV_ERR_TIMEOUT
     * and the handle is closed, but the job goes on in the server.
     */
    int job_timeout_ms;
    /**
     * The server's auth token (its auth_token_file's first line), sent in the
     * handshake; NULL when the server needs none. A wrong or missing token
     * makes statesrv_connect() fail with STATESRV_UNAUTHENTICATED.
     */
    const char *auth_token;
} statesrv_options;

/** What the server said in the handshake. */
typedef struct statesrv_server_info {
    uint32_t protocol_version;
    char server_version[32];
    uint32_t key_groups;
    uint32_t max_frame_size;
    uint32_t max_value_size;
    uint32_t max_key_size;
    uint32_t max_batch_ops;
    uint32_t max_scan_limit;
    uint32_t max_states;
} statesrv_server_info;

/**
 * Addresses one entry: (state, key, namespace). Zero-initialise and set what
 * you need: `statesrv_key k = {.state = "clicks", .key = "u1", .key_len = 2};`
 * Without has_key_group the server computes the key group from the key.
 */
typedef struct statesrv_key {
    const char *state; /**< 1..64 bytes of [A-Za-z0-9_.-], NUL-terminated */
    const void *key;   /**< non-empty */
    size_t key_len;
    const void *ns; /**< namespace; may be empty */
    size_t ns_len;
    int has_key_group;
    uint32_t key_group;
} statesrv_key;

/** A value returned to the caller. data is malloc'd by the library. */
typedef struct statesrv_value {
    void *data; /**< NULL when len is 0; release with statesrv_value_free() */
    size_t len;
    int kind;  /**< enum statesrv_kind */
    int found; /**< multi_get: 0 when the entry does not exist */
} statesrv_value;

/* --- connections ------------------------------------------------------- */

/**
 * @brief Connects and performs the handshake (hello).
 * @param addr "host:port", "[v6addr]:port" or "unix:/path/to/socket";
 *        NULL means STATESRV_DEFAULT_ADDR.
 * @param opts NULL for defaults.
 * @param out receives the handle on success; *out is NULL on failure.
 * @return STATESRV_OK, STATESRV_ERR_USAGE (bad address), STATESRV_ERR_CONNECT,
 *         STATESRV_ERR_TIMEOUT, STATESRV_ERR_PROTOCOL (the peer is not a
 *         statesrv server), STATESRV_ERR_NOMEM, or the server's refusal (e.g.
 *         STATESRV_UNAVAILABLE when it is full).
 * @note On failure there is no handle to ask statesrv_errmsg(); use
 *       statesrv_connect2() to learn why.
 */
STATESRV_API int statesrv_connect(const char *addr, const statesrv_options *opts, statesrv **out);

/**
 * @brief Like statesrv_connect(), and on failure writes a one-line reason to
 *        errbuf (NUL-terminated, truncated to errlen).
 */
STATESRV_API int statesrv_connect2(const char *addr, const statesrv_options *opts, statesrv **out,
                                   char *errbuf, size_t errlen);

/** @brief Closes the connection and frees the handle. NULL is ignored. */
STATESRV_API void statesrv_close(statesrv *c);

/** @brief The handshake's answer; valid for the handle's lifetime. */
STATESRV_API const statesrv_server_info *statesrv_info(const statesrv *c);

/**
 * @brief A static name for any code: "OK", "NOT_FOUND", ... as on the wire,
 *        then "USAGE_ERROR", "CONNECT_ERROR", "IO_ERROR", "TIMEOUT",
 *        "PROTOCOL_ERROR", "OUT_OF_MEMORY", "AGAIN", "CANCELLED"; "UNKNOWN"
 *        otherwise.
 */
STATESRV_API const char *statesrv_strerror(int code);

/**
 * @brief Detail of the last failed call on c: the server's message or the
 *        local cause; "" after a success. Valid until the next call on c.
 */
STATESRV_API const char *statesrv_errmsg(const statesrv *c);

/** @brief TTL update types and visibilities (Flink's StateTtlConfig). */
enum {
    STATESRV_TTL_ON_CREATE_AND_WRITE = 0, /**< writes set an entry's expiry */
    STATESRV_TTL_ON_READ_AND_WRITE = 1,   /**< reads refresh it too */
};
enum {
    STATESRV_TTL_NEVER_RETURN_EXPIRED = 0,
    STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP = 1,
};

/** @brief A state's TTL setting; ttl_ms 0: none. */
typedef struct statesrv_ttl {
    uint64_t ttl_ms;
    int update;     /**< STATESRV_TTL_ON_CREATE_AND_WRITE or _ON_READ_AND_WRITE */
    int visibility; /**< STATESRV_TTL_NEVER_RETURN_EXPIRED or _RETURN_EXPIRED_IF_NOT_CLEANED_UP */
} statesrv_ttl;

/* --- single operations (send, wait for the reply) ----------------------- */

/** @brief Round trip. @return STATESRV_OK or an error. */
STATESRV_API int statesrv_ping(statesrv *c);

/**
 * @brief Reads one entry.
 * @param out on STATESRV_OK receives the value (caller frees with
 *        statesrv_value_free()); untouched otherwise.
 * @return STATESRV_OK, STATESRV_NOT_FOUND, or an error.
 */
STATESRV_API int statesrv_get(statesrv *c, const statesrv_key *k, statesrv_value *out);

/**
 * @brief Reads n entries in one round trip.
 * @param out array of n values; each gets found = 0/1 and, when found, data
 *        the caller frees (statesrv_values_free(out, n) frees them all).
 */
STATESRV_API int statesrv_multi_get(statesrv *c, const statesrv_key *keys, size_t n,
                                    statesrv_value *out);

/** @brief Writes a RAW value (replaces any previous value). */
STATESRV_API int statesrv_put(statesrv *c, const statesrv_key *k, const void *val, size_t len);

/**
 * @brief Writes a value of the given kind. The server checks LIST framing and
 *        COUNTER size and answers STATESRV_INVALID_ARGUMENT if they are wrong.
 */
STATESRV_API int statesrv_put_kind(statesrv *c, const statesrv_key *k, int kind, const void *val,
                                   size_t len);

/**
 * @brief TTL of one write: like statesrv_put(), statesrv_append() and
 *        statesrv_add(), with the entry's TTL in ms (0: the state's TTL, if
 *        it has one). The entry expires ttl_ms after the write by the
 *        server's clock; every write sets its expiry anew.
 */
STATESRV_API int statesrv_put_ttl(statesrv *c, const statesrv_key *k, const void *val, size_t len,
                                  uint64_t ttl_ms);
STATESRV_API int statesrv_append_ttl(statesrv *c, const statesrv_key *k, const void *elem,
                                     size_t len, uint64_t ttl_ms);
STATESRV_API int statesrv_add_ttl(statesrv *c, const statesrv_key *k, int64_t delta,
                                  uint64_t ttl_ms, int64_t *result);

/**
 * @brief Like statesrv_get(), and what is left of the entry's TTL.
 * @param ttl_remaining_ms receives the ms left; -1 when the entry has no
 *        expiry; 0 when it has expired (returned only under
 *        STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP).
 */
STATESRV_API int statesrv_get_with_ttl(statesrv *c, const statesrv_key *k, statesrv_value *out,
                                       int64_t *ttl_remaining_ms);

/**
 * @brief Sets a state's TTL (ttl->ttl_ms 0 removes it), creating the state
 *        (empty) if it does not exist; dropping the state removes it. The
 *        setting is kept by the server and its checkpoints. New writes follow
 *        it; entries already stored keep their expiry.
 */
STATESRV_API int statesrv_set_state_ttl(statesrv *c, const char *state, const statesrv_ttl *ttl);
/** @brief Reads a state's TTL setting into *out (ttl_ms 0: none). */
STATESRV_API int statesrv_get_state_ttl(statesrv *c, const char *state, statesrv_ttl *out);

/**
 * @brief Deletes one entry. Deleting a missing entry succeeds.
 * @param found if not NULL, set to 1 if the entry existed, else 0.
 */
STATESRV_API int statesrv_delete(statesrv *c, const statesrv_key *k, int *found);

/** @brief Appends one element to a LIST value, creating it if absent (ListState.add). */
STATESRV_API int statesrv_append(statesrv *c, const statesrv_key *k, const void *elem, size_t len);

/**
 * @brief Adds delta to a COUNTER value, creating it at 0 if absent.
 * @param result if not NULL, receives the new value.
 * @return STATESRV_INVALID_ARGUMENT if the entry is not a counter or the sum
 *         would overflow.
 */
STATESRV_API int statesrv_add(statesrv *c, const statesrv_key *k, int64_t delta, int64_t *result);

/**
 * @brief Deletes every namespace of k->key in k->state (Flink clear());
 *        k->ns is ignored.
 * @param deleted if not NULL, receives the number of entries removed.
 */
STATESRV_API int statesrv_clear(statesrv *c, const statesrv_key *k, uint64_t *deleted);

/** @brief Drops a whole state. @param deleted as for statesrv_clear(). */
STATESRV_API int statesrv_drop_state(statesrv *c, const char *state, uint64_t *deleted);

/* --- batches: several writes applied atomically ------------------------- */

typedef struct statesrv_batch statesrv_batch;

/** @brief A new empty batch, or NULL when out of memory. */
STATESRV_API statesrv_batch *statesrv_batch_new(void);
/** @brief Frees a batch. NULL is ignored. */
STATESRV_API void statesrv_batch_free(statesrv_batch *b);
/** @brief Empties a batch for reuse. */
STATESRV_API void statesrv_batch_reset(statesrv_batch *b);
/** @brief Number of operations queued. */
STATESRV_API size_t statesrv_batch_count(const statesrv_batch *b);

/* Each adds one operation; the batch copies k and the bytes.
 * @return STATESRV_OK, STATESRV_ERR_USAGE or STATESRV_ERR_NOMEM. */
STATESRV_API int statesrv_batch_put(statesrv_batch *b, const statesrv_key *k, const void *val,
                                    size_t len);
/* A value of a given kind (STATESRV_KIND_*), checked by the server as by
 * statesrv_put_kind(). */
STATESRV_API int statesrv_batch_put_kind(statesrv_batch *b, const statesrv_key *k, int kind,
                                         const void *val, size_t len);
STATESRV_API int statesrv_batch_delete(statesrv_batch *b, const statesrv_key *k);
STATESRV_API int statesrv_batch_append(statesrv_batch *b, const statesrv_key *k, const void *elem,
                                       size_t len);
STATESRV_API int statesrv_batch_add(statesrv_batch *b, const statesrv_key *k, int64_t delta);

/**
 * @brief Applies every operation of b in one transaction: all or none. On
 *        failure the message names the failing operation's index. b is left
 *        as it was (reset it to reuse).
 */
STATESRV_API int statesrv_batch_commit(statesrv *c, const statesrv_batch *b);

/* --- scans -------------------------------------------------------------- */

enum statesrv_scan_mode {
    STATESRV_SCAN_STATE = 0,      /**< every entry of the state */
    STATESRV_SCAN_KEY = 1,        /**< every namespace of one key */
    STATESRV_SCAN_KEY_GROUPS = 2, /**< key groups kg_first..kg_last inclusive */
};

typedef struct statesrv_scan_options {
    const char *state;
    int mode; /**< enum statesrv_scan_mode */
    const void *key;
    size_t key_len; /**< STATESRV_SCAN_KEY */
    int has_key_group;
    uint32_t key_group;         /**< STATESRV_SCAN_KEY with an explicit group */
    uint32_t kg_first, kg_last; /**< STATESRV_SCAN_KEY_GROUPS */
    uint32_t page_size;         /**< entries per round trip; 0: server default */
    const void *cursor;         /**< resume from statesrv_scan_cursor(); NULL to start */
    size_t cursor_len;
} statesrv_scan_options;

/** One entry; every pointer is borrowed (see statesrv_scan_next()). */
typedef struct statesrv_entry {
    const void *key;
    size_t key_len;
    const void *ns;
    size_t ns_len;
    uint32_t key_group;
    const void *value;
    size_t value_len;
    int kind;
} statesrv_entry;

typedef struct statesrv_scan statesrv_scan;

/**
 * @brief Starts a scan: fetches the first page now (so a bad state or range
 *        fails here) and later pages as statesrv_scan_next() needs them.
 *        While the scan is open every other call on c returns
 *        STATESRV_ERR_USAGE; close scans before closing c (a scan whose
 *        handle was closed only returns STATESRV_ERR_USAGE).
 * @return STATESRV_OK, STATESRV_ERR_USAGE (pipelined replies pending, a scan
 *         already open, bad options) or an error; *out is NULL on failure.
 */
STATESRV_API int statesrv_scan_open(statesrv *c, const statesrv_scan_options *o,
                                    statesrv_scan **out);
/**
 * @brief Next entry in stored order (key group, key, namespace).
 * @param e set to the entry, or to NULL when the scan is complete. The entry
 *        is valid until the next statesrv_scan_next() or statesrv_scan_close().
 * @return STATESRV_OK or an error; after a server status (e.g. BUSY) the
 *         scan stays where it was and the call may be repeated.
 */
STATESRV_API int statesrv_scan_next(statesrv_scan *s, const statesrv_entry **e);
/**
 * @brief A cursor that resumes the scan after the last entry returned (pass
 *        it in statesrv_scan_options.cursor). Borrowed, valid until the next
 *        statesrv_scan_next() or close.
 * @note The server's cursors mark page boundaries, so there is a resume point
 *       only once every entry of the current page has been returned: stop
 *       after a multiple of page_size entries, or after statesrv_scan_next()
 *       set NULL.
 * @return STATESRV_OK with the cursor (*len 0 and *cursor NULL: the scan is
 *         complete, nothing to resume), or STATESRV_ERR_USAGE in the middle
 *         of a page (*cursor NULL, *len 0).
 */
STATESRV_API int statesrv_scan_cursor(const statesrv_scan *s, const void **cursor, size_t *len);
/** @brief Ends the scan. NULL is ignored. */
STATESRV_API void statesrv_scan_close(statesrv_scan *s);

/* --- introspection ------------------------------------------------------ */

typedef struct statesrv_state_info {
    char name[65];
    uint64_t entries;
    uint64_t bytes;
    statesrv_ttl ttl; /**< the state's TTL setting (ttl_ms 0: none) */
} statesrv_state_info;

/**
 * @brief Lists the states. @param out receives an array (free with
 *        statesrv_free()) of *n entries; NULL when *n is 0. Names longer than
 *        64 bytes are truncated.
 */
STATESRV_API int statesrv_list_states(statesrv *c, statesrv_state_info **out, size_t *n);

/**
 * Requests of one op (statesrv_stats.ops[i]). This struct never grows (the
 * library hands out arrays of it, and a larger element would move every
 * element after the first for programs built against this header): the rest
 * of an op's figures are in statesrv_stats.op_details[i].
 */
typedef struct statesrv_op_stats {
    char op[24];     /**< "get", "put", ... as on the wire and in /metrics */
    uint64_t count;  /**< requests received (a running snapshot or restore included) */
    uint64_t errors; /**< answered with a status other than OK and NOT_FOUND */
} statesrv_op_stats;

/** Requests of one op answered with one status. */
typedef struct statesrv_status_count {
    int status;     /**< a server status (enum statesrv_code); statesrv_strerror() names it */
    uint64_t count; /**< never 0 */
} statesrv_status_count;

/** One kind of failure and how often it happened (statesrv_errors_total{kind}). */
typedef struct statesrv_error_count {
    char kind[24]; /**< "invalid_argument", "protocol", ... */
    uint64_t count;
} statesrv_error_count;

/**
 * The rest of an op's figures: statuses and latency, as /metrics exposes
 * them (statesrv_requests_total{op,status} and the histogram
 * statesrv_request_duration_seconds{op}). Latency runs from the start of the
 * group commit that decoded a request until its reply was ready (snapshot
 * and restore: until the job ended). The pointers belong to the
 * statesrv_stats and are freed by statesrv_stats_free(). Like
 * statesrv_op_stats, this struct never grows.
 */
typedef struct statesrv_op_detail {
    char op[24]; /**< the same op as statesrv_stats.ops[i] */
    /** Answered requests by status, ascending, only the non-zero ones (OK
     *  included); NULL when n_statuses is 0. */
    statesrv_status_count *statuses;
    size_t n_statuses;
    uint64_t latency_count;  /**< requests timed */
    uint64_t latency_sum_ns; /**< their total latency */
    /**
     * Requests per latency bucket, not cumulative: latency_buckets[i] took at
     * most statesrv_stats.latency_bounds_us[i] (and more than the bound
     * before it); the last one, latency_buckets[n_latency_buckets - 1],
     * took longer than the last bound. n_latency_buckets is
     * n_latency_bounds + 1; NULL and 0 when latency_count is 0.
     */
    uint64_t *latency_buckets;
    size_t n_latency_buckets;
    /**
     * Median and 99th percentile in microseconds, estimated from the buckets
     * the way Prometheus' histogram_quantile() does: linear interpolation
     * inside the bucket that holds the rank (from 0 for the first bucket);
     * a rank beyond the last bound gives the last bound. 0 when
     * latency_count is 0.
     */
    double latency_p50_us;
    double latency_p99_us;
} statesrv_op_detail;

/** A snapshot or restore running in the server (see statesrv_stats). */
typedef struct statesrv_checkpoint_progress {
    char kind[16];          /**< "snapshot" or "restore" */
    uint64_t checkpoint_id; /**< snapshot: the id being written; restore: 0 */
    uint64_t entries;       /**< entries written or restored so far */
    uint64_t bytes;         /**< uncompressed bytes (stored keys + values) so far */
    uint64_t elapsed_ms;
    uint64_t total_entries; /**< entries when it is done; 0 until known */
} statesrv_checkpoint_progress;

typedef struct statesrv_stats {
    char server_version[32];
    uint64_t uptime_seconds;
    uint32_t connections_current;
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t map_size; /**< the map's current size (it grows up to map_size_max) */
    uint64_t map_used; /**< high-water mark: deletes do not lower it (see map_in_use) */
    uint32_t key_groups;
    uint64_t commits;
    uint64_t bytes_in;
    uint64_t bytes_out;
    statesrv_op_stats *ops;
    size_t n_ops;
    statesrv_state_info *states;
    size_t n_states;
    /* Checkpoints since the server started; the last_* fields are 0 before the first. */
    uint64_t checkpoints_completed;
    uint64_t last_checkpoint_id;
    uint64_t last_checkpoint_bytes; /**< size of its data file */
    uint64_t last_checkpoint_duration_ms;
    uint64_t last_checkpoint_unix_ms; /**< when it completed, ms since the epoch */
    uint64_t restores_completed;
    uint64_t last_restore_duration_ms;
    int has_progress; /**< 1 when a snapshot or restore runs; progress is then set */
    statesrv_checkpoint_progress progress;
    /* Appended later: the fields above keep their offsets. From a server
     * too old to send these: NULL arrays and zeros. */
    /** n_ops entries: op_details[i] is the same op as ops[i]; NULL when n_ops is 0. */
    statesrv_op_detail *op_details;
    /** Upper bounds of the latency buckets, microseconds, ascending; NULL when 0. */
    uint64_t *latency_bounds_us;
    size_t n_latency_bounds;
    /** Requests answered with an error status, summed over the ops, by
     *  status: kind "invalid_argument" ... "no_space", zeros included. */
    statesrv_error_count *status_errors;
    size_t n_status_errors;
    /** Connections the server closed for a failure, by kind: "protocol"
     *  (bad framing, an oversized frame), "idle_timeout", "header_timeout",
     *  "output_timeout", "accept"; zeros included. */
    statesrv_error_count *connection_errors;
    size_t n_connection_errors;
    uint64_t checkpoint_failures;    /**< snapshots that failed since start */
    uint64_t last_checkpoint_age_ms; /**< by the server's clock; 0 before the first */
    /**
     * Where the store's map stands, in bytes, as of the last commit.
     * map_used above is the high-water mark (up to the last page ever
     * written): deletes do not lower it. map_in_use is that mark less the
     * freed pages the next write can reuse; puts and merges get
     * STATESRV_NO_SPACE once it would pass map_limit (map_size_max less a
     * reserve kept for deletes, which are never refused for space). All three
     * 0 from a server too old to send them.
     */
    uint64_t map_in_use;
    uint64_t map_limit;
    /** Freed pages (counted in map_in_use) that a checkpoint being written
     *  keeps from reuse until it completes. */
    uint64_t map_free_pinned;
    /** Remote checkpoints (checkpoint_remote; all 0 or empty when off). */
    int remote_enabled;
    uint64_t remote_pending;            /**< local checkpoints not yet remote */
    uint64_t remote_upload_lag_ms;      /**< age of the oldest of them; 0: none */
    uint64_t remote_uploads_completed;  /**< checkpoints uploaded since start */
    uint64_t remote_upload_failures;    /**< failed upload attempts (each is retried) */
    uint64_t remote_bytes_uploaded;     /**< bytes sent to the store since start */
    uint64_t last_remote_checkpoint_id; /**< the newest checkpoint uploaded since start */
    uint64_t remote_uploading_id;       /**< the one being uploaded; 0: none */
    char remote_last_error[512];        /**< the last failed attempt; empty after a success */
    /** State TTL: expired entries deleted since start by the reads that met
     *  them, by the checkpoints that left them out, and by the sweep; the
     *  sweep's time and the entries it looked at. */
    uint64_t ttl_expired_read;
    uint64_t ttl_expired_checkpoint;
    uint64_t ttl_expired_sweep;
    double ttl_sweep_seconds;
    uint64_t ttl_sweep_visited;
    /** Where the server is: the key groups it serves, its directories,
     *  listeners ("" when off), config file ("" when none), sync mode. */
    uint32_t kg_first, kg_last;
    char data_dir[4096];
    char checkpoint_dir[4096];
    char listen[256];
    char unix_socket[4096];
    char metrics_listen[256];
    char config_file[4096];
    char sync[16];
} statesrv_stats;

/**
 * @brief Server counters: the numbers the server's Prometheus endpoint
 *        (/metrics) serves, taken at one moment.
 * @param out on STATESRV_OK receives the stats, with every array they point
 *        to; free the whole with statesrv_stats_free(). NULL on failure.
 * @note The stats request itself is counted after the figures were taken.
 */
STATESRV_API int statesrv_stats_get(statesrv *c, statesrv_stats **out);
/** @brief Frees what statesrv_stats_get() returned, arrays included. NULL is ignored. */
STATESRV_API void statesrv_stats_free(statesrv_stats *s);

/* --- checkpoints ---------------------------------------------------------- */

/*
 * A checkpoint is a directory <checkpoint_dir>/chk-<id>/ on the server's
 * machine holding a consistent copy of every state. The server runs one
 * snapshot or restore at a time: another one, or deleting a checkpoint,
 * meanwhile fails with STATESRV_BUSY. statesrv_snapshot() and
 * statesrv_restore() wait until the job is complete (see
 * statesrv_options.job_timeout_ms); watch a job's progress from another
 * handle with statesrv_stats_get().
 */

/** One state in a checkpoint. */
typedef struct statesrv_checkpoint_state {
    char name[65];
    uint64_t entries;
    uint64_t raw_bytes;      /**< stored keys + stored values, uncompressed */
    uint32_t kg_min, kg_max; /**< key groups with entries; meaningful when entries > 0 */
    uint64_t blocks;
} statesrv_checkpoint_state;

/** What a checkpoint's manifest says. */
typedef struct statesrv_checkpoint_info {
    uint64_t id;
    uint64_t created_unix_ms;
    char server_version[32]; /**< of the server that wrote it */
    uint32_t format_version;
    uint32_t key_groups;
    uint32_t kg_first, kg_last; /**< key groups the checkpoint covers, inclusive */
    uint64_t entries;
    uint64_t raw_bytes;   /**< stored keys + stored values, uncompressed */
    uint64_t data_bytes;  /**< size of the data file */
    uint64_t data_xxh3;   /**< XXH3-64 of the data file */
    char compression[16]; /**< "zstd" or "none" */
    int compression_level;
    uint64_t blocks;
    uint64_t duration_ms; /**< how long writing it took */
    const char *path;     /**< statesrv_snapshot(): its directory on the server; else NULL */
    statesrv_checkpoint_state *states; /**< sorted by name; NULL when n_states is 0 */
    size_t n_states;
    /* Format version 2 (version 1: incremental 0, base_id = id, both byte
     * counts = data_bytes). */
    int incremental;      /**< holds only the changes since the checkpoint before it */
    uint64_t base_id;     /**< the full checkpoint its chain starts with */
    uint64_t added_bytes; /**< bytes it added: its own data file */
    uint64_t total_bytes; /**< bytes of every file of its chain: what a restore reads */
    /** With checkpoint_remote (else empty): "local" (not yet uploaded),
     *  "uploading" or "remote"; where it is (or goes); the last failed
     *  attempt's reason. statesrv_snapshot_remote() sets remote_url. */
    char remote_state[12];
    char remote_url[1200];
    char remote_error[512];
} statesrv_checkpoint_info;

/** What statesrv_restore() did. */
typedef struct statesrv_restore_info {
    uint64_t entries; /**< entries restored (the store now holds these only) */
    uint32_t states;  /**< states restored */
    uint32_t kg_first, kg_last;
    uint64_t duration_ms;
} statesrv_restore_info;

/**
 * @brief Writes a checkpoint of every state and waits until it is complete
 *        and durable. It holds exactly the writes acknowledged before it.
 * @param has_id 0: the server picks one more than the highest id present.
 * @param id with has_id, the id to use (>= 1, not yet present).
 * @param out on STATESRV_OK receives the manifest, with path and states;
 *        free with statesrv_checkpoint_info_free(). NULL on failure.
 * @return STATESRV_OK, STATESRV_BUSY (a snapshot or restore runs),
 *         STATESRV_INVALID_ARGUMENT (id 0 or already present),
 *         STATESRV_NO_SPACE, STATESRV_INTERNAL, STATESRV_ERR_TIMEOUT (see
 *         job_timeout_ms) or another error.
 */
STATESRV_API int statesrv_snapshot(statesrv *c, int has_id, uint64_t id,
                                   statesrv_checkpoint_info **out);

/**
 * @brief Like statesrv_snapshot(), but a full checkpoint (the whole state),
 *        even where the server would write an incremental one.
 * @return as statesrv_snapshot().
 */
STATESRV_API int statesrv_snapshot_full(statesrv *c, int has_id, uint64_t id,
                                        statesrv_checkpoint_info **out);

/**
 * @brief Like statesrv_snapshot() (full: as statesrv_snapshot_full()), but
 *        the reply waits until the checkpoint is also in the server's
 *        object store (checkpoint_remote): its MANIFEST uploaded, the
 *        remote commit record. out->remote_url is then its s3:// URL, which
 *        statesrv_restore() accepts as a source.
 * @return as statesrv_snapshot(); STATESRV_UNAVAILABLE when the upload
 *         attempt failed (the checkpoint is durable locally and its upload
 *         is retried: see statesrv_list_checkpoints()),
 *         STATESRV_INVALID_ARGUMENT when checkpoint_remote is not set.
 */
STATESRV_API int statesrv_snapshot_remote(statesrv *c, int has_id, uint64_t id, int full,
                                          statesrv_checkpoint_info **out);

/**
 * @brief Lists the complete checkpoints in the server's checkpoint_dir, by id.
 * @param out receives an array of *n manifests (path NULL; states as the
 *        server sends them), NULL when *n is 0; free it with
 *        statesrv_checkpoint_info_free().
 */
STATESRV_API int statesrv_list_checkpoints(statesrv *c, statesrv_checkpoint_info **out, size_t *n);

/** @brief A directory named chk-ID in checkpoint_dir that is not a readable checkpoint. */
typedef struct statesrv_checkpoint_problem {
    uint64_t id;       /**< from the directory's name */
    char path[4096];   /**< the directory, on the server */
    char problem[512]; /**< what is wrong: a corrupt MANIFEST, another id's MANIFEST, ... */
} statesrv_checkpoint_problem;

/**
 * @brief What statesrv_list_checkpoints() leaves out: the chk-ID directories
 *        that do not read as a checkpoint, by id.
 * @param out receives an array of *n (NULL when none); free it with
 *        statesrv_free().
 */
STATESRV_API int statesrv_list_checkpoint_problems(statesrv *c, statesrv_checkpoint_problem **out,
                                                   size_t *n);

/**
 * @brief Deletes checkpoint id from the server's checkpoint_dir.
 * @return STATESRV_OK, STATESRV_NOT_FOUND, STATESRV_BUSY (a snapshot or
 *         restore runs) or another error.
 */
STATESRV_API int statesrv_delete_checkpoint(statesrv *c, uint64_t id);

/**
 * @brief Replaces the whole live state with the entries of the sources in
 *        key groups first..last, and waits until it is done. Until then
 *        reads see the old state and writes fail with STATESRV_BUSY; the
 *        switch is atomic.
 * @param sources n strings: a checkpoint id in the server's checkpoint_dir
 *        ("42"), the path of a checkpoint directory under one of its
 *        restore_roots, or an s3://BUCKET/PREFIX/.../chk-<id> URL under its
 *        checkpoint_remote prefix. Several sources are merged (rescaling); they must not
 *        hold entries of the same state in the same key group.
 * @param has_range 0: all key groups.
 * @param out may be NULL; on STATESRV_OK receives what was restored.
 * @return STATESRV_OK, STATESRV_NOT_FOUND (a source does not exist),
 *         STATESRV_INVALID_ARGUMENT (a bad source, range or overlap, or a
 *         checkpoint that does not verify), STATESRV_BUSY,
 *         STATESRV_ERR_TIMEOUT (see job_timeout_ms) or another error.
 */
STATESRV_API int statesrv_restore(statesrv *c, const char *const *sources, size_t n, int has_range,
                                  uint32_t first, uint32_t last, statesrv_restore_info *out);

/**
 * @brief Frees what statesrv_snapshot() or statesrv_list_checkpoints()
 *        returned: the info or the whole array, with its states and paths.
 *        NULL is ignored.
 */
STATESRV_API void statesrv_checkpoint_info_free(statesrv_checkpoint_info *info);

/* --- pipelining: send many, then collect -------------------------------- */

/*
 * statesrv_send_* queue a request and return its id (id may be NULL) without
 * waiting. Queued requests go out on statesrv_flush(), on statesrv_recv(),
 * or whenever the send buffer passes 64 KiB. While the library writes it
 * also reads and buffers replies, so any number of requests may be queued
 * before the first statesrv_recv() without deadlocking against the server
 * (the replies are held in memory until collected). Replies arrive in
 * request order. While replies are outstanding (statesrv_pending() > 0)
 * the single-operation calls above return STATESRV_ERR_USAGE.
 *
 * Each returns STATESRV_OK, STATESRV_ERR_USAGE (bad argument; nothing queued),
 * STATESRV_TOO_LARGE (the frame would exceed max_frame_size; nothing queued)
 * or a connection error.
 */
STATESRV_API int statesrv_send_get(statesrv *c, const statesrv_key *k, uint64_t *id);
STATESRV_API int statesrv_send_put(statesrv *c, const statesrv_key *k, const void *val, size_t len,
                                   uint64_t *id);
STATESRV_API int statesrv_send_delete(statesrv *c, const statesrv_key *k, uint64_t *id);
STATESRV_API int statesrv_send_append(statesrv *c, const statesrv_key *k, const void *elem,
                                      size_t len, uint64_t *id);
STATESRV_API int statesrv_send_add(statesrv *c, const statesrv_key *k, int64_t delta, uint64_t *id);

/** @brief Sends everything queued. */
STATESRV_API int statesrv_flush(statesrv *c);

/** @brief Replies still to be collected with statesrv_recv(). */
STATESRV_API size_t statesrv_pending(const statesrv *c);

/** One reply to a pipelined request; pointers borrowed until the next call on c. */
typedef struct statesrv_reply {
    uint64_t id;
    int status;          /**< the server's status for this request */
    const char *message; /**< "" when OK */
    const void *value;   /**< get: the value (NULL if not found) */
    size_t value_len;
    int kind;        /**< get: enum statesrv_kind */
    int found;       /**< get/delete: whether the entry existed */
    int64_t counter; /**< add: the counter's new value */
} statesrv_reply;

/**
 * @brief Flushes, then waits for the next reply.
 * @return STATESRV_OK when a reply arrived (its own status is in r->status),
 *         STATESRV_ERR_USAGE if nothing is pending, or a connection error
 *         (including the status of a connection-level error from the server;
 *         see the top of this file).
 * @note r->value is non-NULL for any found value, even an empty one.
 */
STATESRV_API int statesrv_recv(statesrv *c, statesrv_reply *r);

/* --- value helpers (no I/O) --------------------------------------------- */

/**
 * @brief Walks a LIST value. Start with *offset = 0.
 * @return 1 with *elem and *elem_len set and *offset advanced, 0 at the end,
 *         -1 if the value is not well-formed list framing.
 */
STATESRV_API int statesrv_list_next(const void *list, size_t len, size_t *offset, const void **elem,
                                    size_t *elem_len);

/** @brief Decodes a COUNTER value. @return STATESRV_OK or STATESRV_INVALID_ARGUMENT. */
STATESRV_API int statesrv_counter_decode(const void *data, size_t len, int64_t *out);

/**
 * @brief Reads a token file (the format of the server's auth_token_file):
 *        the token is the first line, up to CR or LF, 1..cap-1 bytes.
 * @param out receives the NUL-terminated token; zeroed on failure.
 * @return STATESRV_OK, STATESRV_ERR_USAGE (NULL argument, the file cannot
 *         be opened, or its first line is empty or longer than cap-1).
 */
STATESRV_API int statesrv_read_token_file(const char *path, char *out, size_t cap);

/** @brief The key group the server assigns to key when none is given. */
STATESRV_API uint32_t statesrv_key_group(const void *key, size_t len, uint32_t key_groups);

/** @brief Frees a value's data and zeroes it. NULL is ignored. */
STATESRV_API void statesrv_value_free(statesrv_value *v);
/** @brief statesrv_value_free() on each of n values. */
STATESRV_API void statesrv_values_free(statesrv_value *v, size_t n);
/** @brief Frees memory the library returned (e.g. statesrv_list_states()). */
STATESRV_API void statesrv_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
