/* A whole server in the test process, for the suites of batch.c, conn.c and
 * dispatch.c: real config, a real store in a temporary directory, a real
 * libuv loop, and a client on the server's Unix socket. The test drives the
 * loop itself (sv_fixture_run) and looks at the server's own counters. */
#ifndef SV_TESTS_UNIT_SERVER_FIXTURE_H
#define SV_TESTS_UNIT_SERVER_FIXTURE_H

#include "config.h"
#include "server.h"
#include "statesrv.pb-c.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

struct sv_fixture {
    char dir[64];
    struct sv_config cfg;
    struct sv_store *store;
    uv_loop_t loop;
    struct sv_server srv;
    int started;
};

/* Fills f->cfg with defaults for a temporary directory (no TCP listener, a
 * Unix socket, checkpoints beside the data); change f->cfg, then start. */
void sv_fixture_init(struct sv_fixture *f);
/* Opens the store and the server. Fails the test on error. */
void sv_fixture_start(struct sv_fixture *f);
/* Closes every connection, the server, the store, and removes the files. */
void sv_fixture_stop(struct sv_fixture *f);

/* A blocking client socket connected to the server (not yet accepted: run
 * the loop). */
int sv_fixture_connect(struct sv_fixture *f);
/* Runs the loop for about ms milliseconds. */
void sv_fixture_run(struct sv_fixture *f, unsigned ms);
/* The first open server-side connection, or NULL. */
struct sv_conn *sv_fixture_conn(struct sv_fixture *f);

/* Appends one framed request to buf (at most cap bytes); returns the new
 * length. */
size_t sv_fixture_frame(uint8_t *buf, size_t len, size_t cap, const Statesrv__V1__Request *req);
/* Writes all of buf to fd, running the loop while the socket is full. */
void sv_fixture_send(struct sv_fixture *f, int fd, const uint8_t *buf, size_t len);
/* Puts buf into c's input as if it had arrived in one read, and queues c
 * for the next group commit. */
void sv_fixture_feed(struct sv_conn *c, const uint8_t *buf, size_t len);
/* Runs the loop until one whole reply frame is readable on fd (at most 5 s)
 * and returns it unpacked (free with statesrv__v1__response__free_unpacked),
 * or NULL when the server closed the connection first. */
Statesrv__V1__Response *sv_fixture_reply(struct sv_fixture *f, int fd);

/* Requests, with static storage for their fields (valid until the next call
 * of the same function). */
Statesrv__V1__Request *sv_req_put(uint64_t id, const char *state, const char *key,
                                  const void *value, size_t vlen);
Statesrv__V1__Request *sv_req_get(uint64_t id, const char *state, const char *key);
Statesrv__V1__Request *sv_req_hello(uint64_t id, const char *token);
Statesrv__V1__Request *sv_req_ping(uint64_t id);
Statesrv__V1__Request *sv_req_snapshot(uint64_t id);

#endif
