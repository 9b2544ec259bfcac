/* libstatesrv's connection core, shared by the blocking API (statesrv.c)
 * and the asynchronous one (statesrv_async.c). Internal: never installed,
 * and its sv_client_* symbols are hidden in libstatesrv.so.
 *
 * A core is one non-blocking socket after the handshake, an output buffer
 * of encoded request frames, a frame reader for replies and the ring of
 * result cases the owed replies must carry. It does no waiting of its own:
 * the blocking API polls around it, the asynchronous one leaves that to the
 * caller's event loop. Request encoding, reply checking and the error rules
 * (sticky connection errors, the server's id-0 error frame) live here once,
 * so the two APIs cannot drift apart. */
#ifndef STATESRV_CORE_H
#define STATESRV_CORE_H

#include "statesrv.h"
#include "statesrv.pb-c.h"
#include "sv_buf.h"
#include "sv_frame.h"

#include <stddef.h>
#include <stdint.h>

struct statesrv {
    int fd;
    int dead; /* 0, or the code every later call returns */
    int eof;  /* the server closed its side */
    /* The asynchronous API closes the socket itself, after its event loop
     * has stopped watching it (libuv must not poll a closed descriptor). */
    int keep_fd_on_death;
    int io_timeout_ms;
    int job_timeout_ms; /* snapshot and restore: -1 for no limit */
    uint32_t max_send;  /* largest request payload the server accepts */
    uint64_t next_id;   /* id of the next request queued */
    uint64_t expect_id;
    /* Result cases the owed replies must carry, oldest at exp_head: a ring
     * of exp_cap slots holding `pending` of them. */
    uint8_t *exp;
    size_t exp_cap, exp_head, pending;
    struct sv_buf out; /* encoded frames; out_off of them already sent */
    size_t out_off;
    struct sv_frame_reader in;
    Statesrv__V1__Response *resp; /* the last reply taken */
    int resp_expect;              /* the result case it had to carry */
    statesrv_scan *scan;          /* the open scan, if any */
    statesrv_server_info info;
    char errmsg[512];
};

/* Errors. fail: the connection stays usable; die: it is closed and every
 * later call returns `code`; die_io: like die, but first looks for the
 * server's id-0 error frame and returns its status if there is one. */
int sv_client_fail(statesrv *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sv_client_die(statesrv *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sv_client_die_io(statesrv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sv_client_close_fd(statesrv *c);

/* Non-blocking I/O: whatever the socket takes or has now. 0 (*progress set
 * when bytes moved; c->eof when the server closed) or a sticky error. */
int sv_client_read(statesrv *c, int *progress);
int sv_client_write(statesrv *c, int *progress);

/* Encodes req at the end of the output buffer with the next id and records
 * the result case its reply must carry. Nothing is queued on failure
 * (STATESRV_TOO_LARGE, STATESRV_ERR_NOMEM; the connection stays usable). */
int sv_client_enqueue(statesrv *c, Statesrv__V1__Request *req, int expect, uint64_t *id);

/* Takes the next buffered reply, if a whole one is there, into c->resp
 * (with c->resp_expect), checking framing, id and id-0 error frames.
 * 0 with *got 1 or 0, or a sticky error. */
int sv_client_take(statesrv *c, int *got);
/* c->resp's status as a code (a server status keeps the connection; an
 * unknown status or a wrong result case kills it). */
int sv_client_reply_status(statesrv *c);
void sv_client_drop_resp(statesrv *c);

/* Request builders: protobuf messages that point at the caller's bytes. */
int sv_client_check_bytes(const void *p, size_t n);
int sv_client_check_key(statesrv *c, const statesrv_key *k);
ProtobufCBinaryData sv_client_bin(const void *p, size_t n);
void sv_client_build_get(Statesrv__V1__Get *m, const statesrv_key *k);
void sv_client_build_put(Statesrv__V1__Put *m, const statesrv_key *k, int kind, const void *val,
                         size_t len);
void sv_client_build_delete(Statesrv__V1__Delete *m, const statesrv_key *k);
void sv_client_build_merge(Statesrv__V1__Merge *m, const statesrv_key *k, Statesrv__V1__MergeOp op,
                           const void *operand, size_t len);
/* The message of one keyed request. */
union sv_client_keyed {
    Statesrv__V1__Get get;
    Statesrv__V1__Put put;
    Statesrv__V1__Delete del;
    Statesrv__V1__Merge merge;
};
/* Checks k (and val, NULL only when len is 0) and builds a get, put, delete
 * or merge (op: STATESRV__V1__REQUEST__OP_*) in m and req, with how the
 * server interprets val (put: the kind; merge: the MergeOp); *expect gets
 * the result case of its reply. 0 or STATESRV_ERR_USAGE. */
int sv_client_keyed_request(statesrv *c, int op, const statesrv_key *k, int how, const void *val,
                            size_t len, union sv_client_keyed *m, Statesrv__V1__Request *req,
                            int *expect);
/* Clear of one key's namespaces (k) or of the whole state (k NULL). */
void sv_client_build_clear(Statesrv__V1__Clear *m, Statesrv__V1__KeySelector *sel,
                           const char *state, const statesrv_key *k);

/* A multi_get's arrays (freed with sv_client_multi_get_free). */
struct sv_client_multi_get {
    Statesrv__V1__Get *gets;
    Statesrv__V1__Get **ptrs;
    Statesrv__V1__MultiGet m;
};
int sv_client_build_multi_get(statesrv *c, const statesrv_key *keys, size_t n,
                              struct sv_client_multi_get *mg);
void sv_client_multi_get_free(struct sv_client_multi_get *mg);

/* A batch's messages (freed with sv_client_batch_msg_free). */
struct sv_client_batch_msg {
    void *msgs;
    Statesrv__V1__BatchOp *ops;
    Statesrv__V1__BatchOp **ptrs;
    Statesrv__V1__Batch m;
};
int sv_client_build_batch(statesrv *c, const statesrv_batch *b, struct sv_client_batch_msg *bm);
void sv_client_batch_msg_free(struct sv_client_batch_msg *bm);

/* One scan page request for options o, resuming at cursor. */
struct sv_client_scan_msg {
    Statesrv__V1__Scan m;
    Statesrv__V1__KeySelector sel;
    Statesrv__V1__KeyGroupRange kgr;
};
int sv_client_check_scan(statesrv *c, const statesrv_scan_options *o);
void sv_client_build_scan(struct sv_client_scan_msg *sm, const statesrv_scan_options *o,
                          const void *cursor, size_t cursor_len);

#endif
