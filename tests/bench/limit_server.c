/* The limit row's server (issue 20): statesrvd's protocol with no store.
 *
 *   limit-server --listen 127.0.0.1:PORT [--value-size N]
 *
 * It does what statesrvd does for a request minus everything the store does,
 * with the same I/O shape: reads land in a frame reader and mark the
 * connection ready; after the loop's poll (a uv_check, where statesrvd runs
 * its group commit) every ready connection's requests are decoded with the
 * project's codec (sv_frame, sv_msg, one arena), answered (hello as
 * statesrvd does; get with a value of --value-size bytes, default 64; put,
 * delete, merge and ping with an empty OK; any other op INVALID_ARGUMENT),
 * encoded into its output and written (uv_try_write, then uv_write for what
 * the socket does not take). So a load
 * against it shows what the loop, the codec, the kernel and the load
 * generator allow on this machine; statesrvd's rows are read against it in
 * docs/benchmarks.md. Loopback only: it refuses any other address.
 * SIGINT or SIGTERM stop it. */
#include "statesrv.pb-c.h"
#include "sv_arena.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_msg.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_FRAME (16u * 1024 * 1024)
#define KEY_GROUPS 128u

struct conn {
    uv_tcp_t h;
    struct sv_frame_reader in;
    struct sv_buf out;  /* replies not yet handed to the socket */
    struct sv_buf wbuf; /* what an in-flight uv_write sends */
    uv_write_t wreq;
    int writing, closing, ready;
    struct conn *next_ready;
};

static uint8_t *value;
static size_t value_size = 64;
static uv_loop_t *loop;
static struct conn *ready_head;
static struct sv_arena arena;

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    sv_frame_reader_free(&c->in);
    sv_buf_free(&c->out);
    sv_buf_free(&c->wbuf);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->h, on_closed);
}

static void flush(struct conn *c);

static void on_write(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    c->writing = 0;
    sv_buf_clear(&c->wbuf, 1 << 20);
    if (status < 0) {
        conn_close(c);
        return;
    }
    flush(c);
}

static void flush(struct conn *c)
{
    if (c->writing || !c->out.len || c->closing)
        return;
    uv_buf_t b = {.base = (char *)c->out.data, .len = c->out.len};
    int sent = uv_try_write((uv_stream_t *)&c->h, &b, 1);
    if (sent < 0 && sent != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t off = sent > 0 ? (size_t)sent : 0;
    if (off == c->out.len) {
        c->out.len = 0;
        return;
    }
    struct sv_buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    b.base = (char *)c->wbuf.data + off;
    b.len = c->wbuf.len - off;
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->h, &b, 1, on_write) < 0) {
        conn_close(c);
        return;
    }
    c->writing = 1;
}

/* The reply to one request, encoded onto c->out. */
static int answer(struct conn *c, const Statesrv__V1__Request *req)
{
    Statesrv__V1__Response resp = STATESRV__V1__RESPONSE__INIT;
    Statesrv__V1__HelloResult hello = STATESRV__V1__HELLO_RESULT__INIT;
    Statesrv__V1__PingResult ping = STATESRV__V1__PING_RESULT__INIT;
    Statesrv__V1__GetResult get = STATESRV__V1__GET_RESULT__INIT;
    Statesrv__V1__PutResult put = STATESRV__V1__PUT_RESULT__INIT;
    Statesrv__V1__DeleteResult del = STATESRV__V1__DELETE_RESULT__INIT;
    Statesrv__V1__MergeResult merge = STATESRV__V1__MERGE_RESULT__INIT;
    resp.id = req->id;
    switch (req->op_case) {
    case STATESRV__V1__REQUEST__OP_HELLO:
        hello.protocol_version = SV_PROTOCOL_VERSION;
        hello.server_version = "limit-server";
        hello.key_groups = KEY_GROUPS;
        hello.max_frame_size = MAX_FRAME;
        hello.max_value_size = MAX_FRAME / 2;
        hello.max_key_size = 4096;
        hello.max_batch_ops = 10000;
        hello.max_scan_limit = 10000;
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_HELLO;
        resp.hello = &hello;
        break;
    case STATESRV__V1__REQUEST__OP_PING:
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_PING;
        resp.ping = &ping;
        break;
    case STATESRV__V1__REQUEST__OP_GET:
        get.value.data = value;
        get.value.len = value_size;
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_GET;
        resp.get = &get;
        break;
    case STATESRV__V1__REQUEST__OP_PUT:
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_PUT;
        resp.put = &put;
        break;
    case STATESRV__V1__REQUEST__OP_DELETE:
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_DELETE;
        resp.delete_ = &del;
        break;
    case STATESRV__V1__REQUEST__OP_MERGE:
        merge.counter = 1;
        merge.value_size = 8;
        resp.result_case = STATESRV__V1__RESPONSE__RESULT_MERGE;
        resp.merge = &merge;
        break;
    default:
        resp.status = (Statesrv__V1__Status)SV_STATUS_INVALID_ARGUMENT;
        resp.message = "the limit server answers hello, ping, get, put, delete and merge only";
        break;
    }
    return sv_msg_append(&c->out, &resp.base, MAX_FRAME);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    uint8_t *p;
    size_t avail;
    (void)suggested;
    if (sv_frame_reader_space(&c->in, 64 * 1024, &p, &avail)) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)p;
    buf->len = avail;
}

/* Answers every whole request c holds. */
static void serve(struct conn *c)
{
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = sv_frame_reader_next(&c->in, &p, &n)) == 1) {
        Statesrv__V1__Request *req;
        if (sv_msg_unpack_request(p, n, &arena.pb, &req) || answer(c, req)) {
            conn_close(c);
            return;
        }
    }
    sv_frame_reader_discard(&c->in);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    flush(c);
}

/* After the poll: every connection that read something, in one pass. */
static void on_check(uv_check_t *h)
{
    (void)h;
    struct conn *c = ready_head;
    ready_head = NULL;
    while (c) {
        struct conn *next = c->next_ready;
        c->ready = 0;
        if (!c->closing)
            serve(c);
        c = next;
    }
    sv_arena_reset(&arena);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    sv_frame_reader_produced(&c->in, (size_t)nread);
    if (!c->ready && nread > 0) {
        c->ready = 1;
        c->next_ready = ready_head;
        ready_head = c;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    sv_frame_reader_init(&c->in, MAX_FRAME);
    uv_tcp_init(loop, &c->h);
    c->h.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) || uv_tcp_nodelay(&c->h, 1) ||
        uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read))
        conn_close(c);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_stop(sig->loop);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: limit-server --listen 127.0.0.1:PORT [--value-size N]\n"
               "statesrvd's protocol with no store: the limit rows of make bench.\n");
}

int main(int argc, char **argv)
{
    const char *listen = NULL;
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"value-size", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "l:d:h", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            listen = optarg;
            break;
        case 'd': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v > MAX_FRAME / 2) {
                fprintf(stderr, "limit-server: --value-size wants 0..%u\n", MAX_FRAME / 2);
                return 2;
            }
            value_size = v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || optind != argc) {
        usage(stderr);
        return 2;
    }
    char host[64];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof(host)) {
        fprintf(stderr, "limit-server: bad address %s\n", listen);
        return 2;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (strcmp(host, "127.0.0.1") != 0) {
        fprintf(stderr, "limit-server: listens on 127.0.0.1 only\n");
        return 2;
    }
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, atoi(colon + 1), &addr)) {
        fprintf(stderr, "limit-server: bad address %s\n", listen);
        return 2;
    }
    if (!(value = calloc(1, value_size ? value_size : 1)))
        return 1;
    loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (rc) {
        fprintf(stderr, "limit-server: cannot listen on %s: %s\n", listen, uv_strerror(rc));
        return 1;
    }
    sv_arena_init(&arena, 1 << 20);
    uv_check_t check;
    uv_check_init(loop, &check);
    uv_check_start(&check, on_check);
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    sv_arena_free(&arena);
    free(value);
    return 0;
}
