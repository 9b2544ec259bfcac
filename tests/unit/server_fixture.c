/* See server_fixture.h. */
#include "server_fixture.h"

#include "sv_frame.h"
#include "sv_log.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void sv_fixture_init(struct sv_fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/svfix-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    sv_config_defaults(&f->cfg);
    f->cfg.listen[0] = '\0';
    snprintf(f->cfg.unix_socket, sizeof(f->cfg.unix_socket), "%s/s.sock", f->dir);
    snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s/data", f->dir);
    snprintf(f->cfg.checkpoint_dir, sizeof(f->cfg.checkpoint_dir), "%s/ck", f->dir);
    f->cfg.map_size = 1u << 20;
    f->cfg.map_size_max = 256u << 20;
    f->cfg.log_level = SV_LOG_ERROR;
}

void sv_fixture_start(struct sv_fixture *f)
{
    ck_assert_int_eq(mkdir(f->cfg.data_dir, 0700), 0);
    ck_assert_int_eq(mkdir(f->cfg.checkpoint_dir, 0700), 0);
    sv_log_set_level(f->cfg.log_level);
    struct sv_store_options so = {
        .dir = f->cfg.data_dir,
        .map_size = f->cfg.map_size,
        .map_size_max = f->cfg.map_size_max,
        .max_states = f->cfg.max_states,
        .max_value_size = f->cfg.max_value_size,
        .sync_always = f->cfg.sync == SV_SYNC_ALWAYS,
        .writemap = f->cfg.writemap < 0 ? f->cfg.sync == SV_SYNC_NONE : f->cfg.writemap,
        .key_groups = f->cfg.key_groups,
    };
    char err[512];
    int rc = sv_store_open(&so, &f->store, err, sizeof(err));
    ck_assert_msg(rc == 0, "store: %s", err);
    ck_assert_int_eq(uv_loop_init(&f->loop), 0);
    rc = sv_server_init(&f->srv, &f->loop, &f->cfg, f->store, NULL, err, sizeof(err));
    ck_assert_msg(rc == 0, "server: %s", err);
    f->started = 1;
}

void sv_fixture_stop(struct sv_fixture *f)
{
    if (f->started) {
        for (struct sv_conn *c = f->srv.all_head; c; c = c->all_next)
            sv_conn_close(c);
        sv_server_free(&f->srv);
        uv_loop_close(&f->loop);
        sv_store_close(f->store);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    ck_assert_int_eq(system(cmd), 0);
}

int sv_fixture_connect(struct sv_fixture *f)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(f->cfg.unix_socket), sizeof(sa.sun_path));
    memcpy(sa.sun_path, f->cfg.unix_socket, strlen(f->cfg.unix_socket) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

void sv_fixture_run(struct sv_fixture *f, unsigned ms)
{
    uint64_t end = uv_now(&f->loop) + ms;
    do {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&f->loop);
    } while (uv_now(&f->loop) < end);
}

struct sv_conn *sv_fixture_conn(struct sv_fixture *f)
{
    for (struct sv_conn *c = f->srv.all_head; c; c = c->all_next)
        if (c->state != SV_CONN_CLOSING)
            return c;
    return NULL;
}

size_t sv_fixture_frame(uint8_t *buf, size_t len, size_t cap, const Statesrv__V1__Request *req)
{
    size_t n = statesrv__v1__request__get_packed_size(req);
    ck_assert_uint_le(len + SV_FRAME_HEADER_SIZE + n, cap);
    sv_frame_header_put(buf + len, (uint32_t)n);
    statesrv__v1__request__pack(req, buf + len + SV_FRAME_HEADER_SIZE);
    return len + SV_FRAME_HEADER_SIZE + n;
}

void sv_fixture_send(struct sv_fixture *f, int fd, const uint8_t *buf, size_t len)
{
    uint64_t end = uv_now(&f->loop) + 5000;
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
        uv_run(&f->loop, UV_RUN_NOWAIT); /* the server reads, the socket drains */
        uv_update_time(&f->loop);
        ck_assert_msg(uv_now(&f->loop) < end, "the server took no input for 5 s");
    }
}

void sv_fixture_feed(struct sv_conn *c, const uint8_t *buf, size_t len)
{
    ck_assert_int_eq(sv_frame_reader_feed(&c->in, buf, len), 0);
    sv_conn_ready(c);
}

/* Reads exactly n bytes while running the loop; 0, or -1 at EOF. */
static int read_exact(struct sv_fixture *f, int fd, uint8_t *p, size_t n)
{
    uint64_t end = uv_now(&f->loop) + 5000;
    while (n) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 1) == 1) {
            ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno == ECONNRESET))
                return -1;
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                continue;
            }
        }
        uv_update_time(&f->loop);
        ck_assert_msg(uv_now(&f->loop) < end, "no reply within 5 s");
    }
    return 0;
}

Statesrv__V1__Response *sv_fixture_reply(struct sv_fixture *f, int fd)
{
    uint8_t h[SV_FRAME_HEADER_SIZE];
    if (read_exact(f, fd, h, sizeof(h)))
        return NULL;
    uint32_t n = sv_frame_header_get(h);
    ck_assert_uint_le(n, 64u << 20);
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(read_exact(f, fd, p, n), 0);
    Statesrv__V1__Response *r = statesrv__v1__response__unpack(NULL, n, p);
    free(p);
    ck_assert_ptr_nonnull(r);
    return r;
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)p};
}

Statesrv__V1__Request *sv_req_put(uint64_t id, const char *state, const char *key,
                                  const void *value, size_t vlen)
{
    static Statesrv__V1__Request r;
    static Statesrv__V1__Put p;
    statesrv__v1__request__init(&r);
    statesrv__v1__put__init(&p);
    p.state = bin(state, strlen(state));
    p.key = bin(key, strlen(key));
    p.value = bin(value, vlen);
    r.id = id;
    r.op_case = STATESRV__V1__REQUEST__OP_PUT;
    r.put = &p;
    return &r;
}

Statesrv__V1__Request *sv_req_get(uint64_t id, const char *state, const char *key)
{
    static Statesrv__V1__Request r;
    static Statesrv__V1__Get g;
    statesrv__v1__request__init(&r);
    statesrv__v1__get__init(&g);
    g.state = bin(state, strlen(state));
    g.key = bin(key, strlen(key));
    r.id = id;
    r.op_case = STATESRV__V1__REQUEST__OP_GET;
    r.get = &g;
    return &r;
}

Statesrv__V1__Request *sv_req_hello(uint64_t id, const char *token)
{
    static Statesrv__V1__Request r;
    static Statesrv__V1__Hello h;
    statesrv__v1__request__init(&r);
    statesrv__v1__hello__init(&h);
    h.auth_token = bin(token, token ? strlen(token) : 0);
    r.id = id;
    r.op_case = STATESRV__V1__REQUEST__OP_HELLO;
    r.hello = &h;
    return &r;
}

Statesrv__V1__Request *sv_req_ping(uint64_t id)
{
    static Statesrv__V1__Request r;
    static Statesrv__V1__Ping p;
    statesrv__v1__request__init(&r);
    statesrv__v1__ping__init(&p);
    r.id = id;
    r.op_case = STATESRV__V1__REQUEST__OP_PING;
    r.ping = &p;
    return &r;
}

Statesrv__V1__Request *sv_req_snapshot(uint64_t id)
{
    static Statesrv__V1__Request r;
    static Statesrv__V1__Snapshot s;
    statesrv__v1__request__init(&r);
    statesrv__v1__snapshot__init(&s);
    r.id = id;
    r.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    r.snapshot = &s;
    return &r;
}
