/* libstatesrv: the client library. statesrv.h is the contract; this file
 * is the connection, the request encoders and the reply decoders.
 *
 * One handle owns one non-blocking socket, an output buffer of encoded
 * request frames and a frame reader for replies. Every request, pipelined or
 * not, goes through the same queue: sv_client_enqueue() encodes it and remembers which
 * result the reply must carry; take_reply() checks that replies come back
 * in order. All waiting happens in pump(), which writes and reads in the same
 * poll() loop, so a client that queues far more than the socket buffers hold
 * keeps reading replies while it writes and cannot deadlock against a server
 * that stops reading until its replies are consumed.
 *
 * Protobuf messages are built on the stack and point at the caller's bytes;
 * nothing is copied until the frame is packed. Replies are unpacked with the
 * malloc allocator and kept in c->resp until the next call (the borrowed
 * pointers of statesrv_recv() point into it). */
#include "statesrv.h"
#include "statesrv_core.h"

#include "statesrv.pb-c.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_keys.h"
#include "sv_msg.h"
#include "sv_value.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* platforms without it get SO_NOSIGPIPE instead */
#endif

/* Replies are accepted up to 1 MiB until the handshake tells the real limit;
 * after it, the server's max_frame_size plus room for the reply envelope. */
#define CLIENT_HELLO_MAX_FRAME (1u << 20)
#define CLIENT_FRAME_SLACK (64u * 1024)
/* send_* flush once this much is queued. */
#define CLIENT_AUTOFLUSH (64u * 1024)
/* The output buffer keeps this much memory between bursts. */
#define CLIENT_OUT_KEEP (256u * 1024)
/* Each read asks for at least this much room in the frame reader. */
#define CLIENT_READ_MIN (16u * 1024)
#define CLIENT_CONNECT_TIMEOUT_MS 5000
#define CLIENT_IO_TIMEOUT_MS 30000

/* A scan keeps copies of everything it sends again for each page, and owns
 * the response of the current page (entries point into it). */
struct statesrv_scan {
    statesrv *c; /* NULL once the handle was closed under the scan */
    /* The options it was opened with; state, key and cursor point into
     * state, key and start, which the scan owns. */
    statesrv_scan_options o;
    char *state;
    uint8_t *key;
    uint8_t *start;
    Statesrv__V1__Response *page; /* NULL until the first page arrives */
    size_t idx;                   /* next entry of page to hand out */
    statesrv_entry cur;
};

/* --- errors ------------------------------------------------------------- */

static void set_msgv(statesrv *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void set_msgv(statesrv *c, const char *fmt, va_list ap)
{
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
}

/* A failure that leaves the connection usable. */
int sv_client_fail(statesrv *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msgv(c, fmt, ap);
    va_end(ap);
    return code;
}

static int ok(statesrv *c)
{
    c->errmsg[0] = '\0';
    return STATESRV_OK;
}

void sv_client_close_fd(statesrv *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* A failure after which the stream can no longer be trusted: close the
 * socket and make every later call return `code`. */
int sv_client_die(statesrv *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msgv(c, fmt, ap);
    va_end(ap);
    if (!c->keep_fd_on_death)
        sv_client_close_fd(c);
    c->dead = code;
    return code;
}

/* A wire status as a statesrv_code, or -1 for one this library does not know. */
static int status_code(int status)
{
    return status >= STATESRV_OK && status <= STATESRV_NO_SPACE ? status : -1;
}

static const char *status_message(const Statesrv__V1__Response *r)
{
    return r->message ? r->message : "";
}

/* The server reports a connection-level error (an oversized or undecodable
 * frame, a refused connection) in a frame with id 0 and then closes. Return
 * its status; later calls fail with STATESRV_ERR_IO. */
static int conn_error_frame(statesrv *c, const Statesrv__V1__Response *r)
{
    int st = status_code(r->status);
    if (st < 0)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL,
                             "server closed the connection with unknown status %d: %s",
                             (int)r->status, status_message(r));
    sv_client_die(c, STATESRV_ERR_IO, "%s", status_message(r));
    return st;
}

/* The connection failed (reset, closed, write error). The server may have
 * explained why in an id-0 error frame just before closing, so read what is
 * left and look for one: its status beats a bare "connection reset". */
int sv_client_die_io(statesrv *c, const char *fmt, ...)
{
    char local[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(local, sizeof(local), fmt, ap);
    va_end(ap);

    while (c->fd >= 0 && !c->eof) {
        uint8_t *p;
        size_t avail;
        if (sv_frame_reader_space(&c->in, CLIENT_READ_MIN, &p, &avail))
            break;
        ssize_t n = recv(c->fd, p, avail, MSG_DONTWAIT);
        if (n <= 0)
            break;
        sv_frame_reader_produced(&c->in, (size_t)n);
    }
    const uint8_t *p;
    size_t n;
    while (sv_frame_reader_next(&c->in, &p, &n) == 1) {
        Statesrv__V1__Response *r;
        if (sv_msg_unpack_response(p, n, NULL, &r))
            break;
        if (r->id == 0 && r->status != STATESRV__V1__STATUS__OK) {
            int rc = conn_error_frame(c, r);
            sv_msg_free_response(r);
            return rc;
        }
        sv_msg_free_response(r);
    }
    return sv_client_die(c, STATESRV_ERR_IO, "%s", local);
}

/* --- I/O ---------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the socket has into the frame reader. 0 (possibly with nothing
 * read, or with c->eof set) or a sticky error code. */
int sv_client_read(statesrv *c, int *progress)
{
    struct sv_frame_reader *r = &c->in;
    /* Frames already taken are dropped only once they outweigh the rest, so a
     * long run of small buffered replies is not memmoved once per reply. */
    if (r->pos && r->pos >= r->len - r->pos)
        sv_frame_reader_discard(r);
    uint8_t *p;
    size_t avail;
    if (sv_frame_reader_space(r, CLIENT_READ_MIN, &p, &avail))
        return sv_client_die(c, STATESRV_ERR_NOMEM, "out of memory reading a reply");
    ssize_t n = recv(c->fd, p, avail, 0);
    if (n > 0) {
        sv_frame_reader_produced(r, (size_t)n);
        *progress = 1;
        return 0;
    }
    if (n == 0) {
        c->eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return sv_client_die_io(c, "receive: %s", strerror(errno));
}

int sv_client_write(statesrv *c, int *progress)
{
    ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (n >= 0) {
        c->out_off += (size_t)n;
        if (n > 0)
            *progress = 1;
        if (c->out_off == c->out.len) {
            sv_buf_clear(&c->out, CLIENT_OUT_KEEP);
            c->out_off = 0;
        }
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return sv_client_die_io(c, "send: %s", strerror(errno));
}

/* Sends everything queued and, with need_frame, waits until a whole reply
 * frame is buffered. Always reads while it writes (see the file comment).
 * The timeout counts time without progress in either direction. */
static int pump(statesrv *c, int need_frame)
{
    int64_t last = mono_ms();
    for (;;) {
        int want_out = c->out_off < c->out.len;
        if (!want_out && (!need_frame || sv_frame_reader_ready(&c->in)))
            return 0;
        if (c->eof)
            return sv_client_die_io(c, "connection closed by the server");

        int timeout = -1;
        if (c->io_timeout_ms >= 0) {
            int64_t left = (int64_t)c->io_timeout_ms - (mono_ms() - last);
            if (left <= 0)
                return sv_client_die(c, STATESRV_ERR_TIMEOUT, "no progress for %d ms",
                                     c->io_timeout_ms);
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (want_out)
            pfd.events |= POLLOUT;
        int n = poll(&pfd, 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sv_client_die(c, STATESRV_ERR_IO, "poll: %s", strerror(errno));
        }
        if (n == 0)
            continue;
        if (pfd.revents & POLLNVAL)
            return sv_client_die(c, STATESRV_ERR_IO,
                                 "the socket was closed behind the library's back");

        int progress = 0, rc;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            rc = sv_client_read(c, &progress);
            if (rc)
                return rc;
        }
        if (want_out && !c->eof && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
            rc = sv_client_write(c, &progress);
            if (rc)
                return rc;
        }
        if (progress)
            last = mono_ms();
    }
}

void sv_client_drop_resp(statesrv *c)
{
    if (c->resp) {
        sv_msg_free_response(c->resp);
        c->resp = NULL;
    }
}

/* Encodes one request at the end of the output buffer and records the result
 * case its reply must carry. Nothing is queued on failure. */
int sv_client_enqueue(statesrv *c, Statesrv__V1__Request *req, int expect, uint64_t *id)
{
    if (c->pending == c->exp_cap) {
        size_t cap = c->exp_cap ? c->exp_cap * 2 : 64;
        uint8_t *e = cap > c->exp_cap ? malloc(cap) : NULL;
        if (!e)
            return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory queueing a request");
        for (size_t i = 0; i < c->pending; i++)
            e[i] = c->exp[(c->exp_head + i) % c->exp_cap];
        free(c->exp);
        c->exp = e;
        c->exp_cap = cap;
        c->exp_head = 0;
    }
    req->id = c->next_id;
    int rc = sv_msg_append(&c->out, &req->base, c->max_send);
    if (rc == SV_ETOOLARGE)
        return sv_client_fail(
            c, STATESRV_TOO_LARGE,
            "request of %zu bytes exceeds the server's max_frame_size of %u bytes",
            protobuf_c_message_get_packed_size(&req->base), c->max_send);
    if (rc)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory encoding a request");
    c->exp[(c->exp_head + c->pending) % c->exp_cap] = (uint8_t)expect;
    c->pending++;
    if (id)
        *id = c->next_id;
    c->next_id++;
    return 0;
}

/* Takes the next reply if a whole one is buffered, making it c->resp.
 * Checks the framing, the id and connection-level errors; the status and
 * result are the caller's. */
int sv_client_take(statesrv *c, int *got)
{
    *got = 0;
    if (!sv_frame_reader_ready(&c->in))
        return 0;
    int rc;
    const uint8_t *p;
    size_t n;
    rc = sv_frame_reader_next(&c->in, &p, &n);
    if (rc == SV_ETOOLARGE && c->info.protocol_version == 0)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL,
                             "the peer does not speak the statesrv protocol (it sent 0x%08x)",
                             c->in.bad_len);
    if (rc == SV_ETOOLARGE)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL,
                             "reply frame of %u bytes exceeds the limit of %u", c->in.bad_len,
                             c->in.max_frame);
    if (rc != 1)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL,
                             "internal: no reply frame although one was ready");
    Statesrv__V1__Response *r;
    if (sv_msg_unpack_response(p, n, NULL, &r))
        return sv_client_die(
            c, STATESRV_ERR_PROTOCOL, "undecodable reply frame of %zu bytes%s", n,
            c->info.protocol_version ? "" : ": the peer does not speak the statesrv protocol");
    if (r->id == 0 && r->status != STATESRV__V1__STATUS__OK) {
        rc = conn_error_frame(c, r);
        sv_msg_free_response(r);
        return rc;
    }
    if (c->pending == 0) {
        uint64_t id = r->id;
        sv_msg_free_response(r);
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "reply id %llu to no request",
                             (unsigned long long)id);
    }
    if (r->id != c->expect_id) {
        uint64_t id = r->id;
        sv_msg_free_response(r);
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "reply id %llu, expected %llu",
                             (unsigned long long)id, (unsigned long long)c->expect_id);
    }
    sv_client_drop_resp(c);
    c->resp = r;
    c->resp_expect = c->exp[c->exp_head];
    c->exp_head = (c->exp_head + 1) % c->exp_cap;
    c->pending--;
    c->expect_id++;
    *got = 1;
    return 0;
}

/* Waits for the next reply and makes it c->resp (see sv_client_take). */
static int take_reply(statesrv *c)
{
    int rc = pump(c, 1);
    if (rc)
        return rc;
    int got;
    rc = sv_client_take(c, &got);
    if (rc == 0 && !got)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "internal: no reply after waiting for one");
    return rc;
}

/* The status of c->resp as a return code; on OK also checks that the reply
 * carries the result its request calls for. */
int sv_client_reply_status(statesrv *c)
{
    const Statesrv__V1__Response *r = c->resp;
    if (r->status != STATESRV__V1__STATUS__OK) {
        int st = status_code(r->status);
        if (st < 0)
            return sv_client_die(c, STATESRV_ERR_PROTOCOL, "unknown status %d: %s", (int)r->status,
                                 status_message(r));
        return sv_client_fail(c, st, "%s", status_message(r));
    }
    if ((int)r->result_case != c->resp_expect)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "reply carries result %d, expected %d",
                             (int)r->result_case, c->resp_expect);
    return ok(c);
}

/* One request, one reply; c->resp holds the reply on STATESRV_OK. */
static int roundtrip(statesrv *c, Statesrv__V1__Request *req, int expect)
{
    int rc = sv_client_enqueue(c, req, expect, NULL);
    if (rc)
        return rc;
    rc = take_reply(c);
    if (rc)
        return rc;
    return sv_client_reply_status(c);
}

/* The checks every public call starts with. `single`: a call that waits for
 * its own reply, so nothing pipelined may be outstanding. */
static int begin(statesrv *c, int single)
{
    if (c->dead)
        return c->dead;
    if (c->scan)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "a scan is open on this handle");
    if (single && c->pending)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "%zu pipelined replies are still pending",
                              c->pending);
    sv_client_drop_resp(c);
    return 0;
}

/* --- connecting --------------------------------------------------------- */

static int new_socket(int family, int proto)
{
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
    return socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
#else
    int fd = socket(family, SOCK_STREAM, proto);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
#endif
}

/* Connects one address within timeout_ms (-1: no limit). 0 with *fd_out
 * set, or STATESRV_ERR_CONNECT / STATESRV_ERR_TIMEOUT with the reason in why. */
static int connect_addr(int family, int proto, const struct sockaddr *sa, socklen_t salen,
                        int timeout_ms, int *fd_out, char *why, size_t whylen)
{
    int fd = new_socket(family, proto);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return STATESRV_ERR_CONNECT;
    }
    if (connect(fd, sa, salen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            snprintf(why, whylen, "%s", strerror(errno));
            close(fd);
            return STATESRV_ERR_CONNECT;
        }
        int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
        for (;;) {
            int left = -1;
            if (deadline >= 0) {
                int64_t l = deadline - mono_ms();
                if (l <= 0) {
                    snprintf(why, whylen, "timed out after %d ms", timeout_ms);
                    close(fd);
                    return STATESRV_ERR_TIMEOUT;
                }
                left = l > INT_MAX ? INT_MAX : (int)l;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, left);
            if (n > 0)
                break;
            if (n < 0 && errno != EINTR) {
                snprintf(why, whylen, "poll: %s", strerror(errno));
                close(fd);
                return STATESRV_ERR_CONNECT;
            }
        }
        int err = 0;
        socklen_t errlen = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
            err = errno;
        if (err) {
            snprintf(why, whylen, "%s", strerror(err));
            close(fd);
            return STATESRV_ERR_CONNECT;
        }
    }
    int one = 1;
    /* Requests are small and a caller usually waits for each reply. */
    if (family == AF_INET || family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef SO_NOSIGPIPE
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
    *fd_out = fd;
    return 0;
}

/* Splits "host:port" or "[v6]:port". The port must be numeric, 1..65535. */
static int split_host_port(const char *addr, char *host, size_t hostlen, char *port, char *why,
                           size_t whylen)
{
    const char *h, *p;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "expected \"[address]:port\"");
            return -1;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) {
            snprintf(why, whylen, "expected \"host:port\", \"[v6address]:port\" or \"unix:/path\"");
            return -1;
        }
        if (memchr(addr, ':', (size_t)(colon - addr))) {
            snprintf(why, whylen, "put an IPv6 address in brackets: \"[address]:port\"");
            return -1;
        }
        h = addr;
        hl = (size_t)(colon - addr);
        p = colon + 1;
    }
    if (hl == 0 || hl >= hostlen) {
        snprintf(why, whylen, hl ? "host name too long" : "empty host");
        return -1;
    }
    size_t pl = strlen(p);
    unsigned long v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5) {
            v = 0;
            break;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < 1 || v > 65535) {
        snprintf(why, whylen, "bad port \"%s\" (want 1..65535)", p);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, 6, "%lu", v);
    return 0;
}

/* Opens a connected non-blocking socket to addr, trying every address a
 * host name resolves to, each within timeout_ms. */
static int open_socket(const char *addr, int timeout_ms, int *fd_out, char *why, size_t whylen)
{
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        const char *path = addr + 5;
        size_t n = strlen(path);
        memset(&sun, 0, sizeof(sun));
        if (n == 0 || n >= sizeof(sun.sun_path)) {
            snprintf(why, whylen, "%s unix socket path", n ? "too long a" : "empty");
            return STATESRV_ERR_USAGE;
        }
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, path, n);
        return connect_addr(AF_UNIX, 0, (const struct sockaddr *)&sun, (socklen_t)sizeof(sun),
                            timeout_ms, fd_out, why, whylen);
    }

    char host[256], port[6];
    if (split_host_port(addr, host, sizeof(host), port, why, whylen))
        return STATESRV_ERR_USAGE;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
#ifdef EAI_SYSTEM
        if (g == EAI_SYSTEM) {
            snprintf(why, whylen, "%s", strerror(errno));
            return STATESRV_ERR_CONNECT;
        }
#endif
        snprintf(why, whylen, "%s", gai_strerror(g));
        return STATESRV_ERR_CONNECT;
    }
    int rc = STATESRV_ERR_CONNECT;
    snprintf(why, whylen, "no addresses");
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_addr(ai->ai_family, ai->ai_protocol, ai->ai_addr, ai->ai_addrlen, timeout_ms,
                          fd_out, why, whylen);
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static ProtobufCBinaryData str_bin(const char *s);

static int handshake(statesrv *c, const char *name, const char *token, int timeout_ms,
                     int io_timeout_ms)
{
    Statesrv__V1__Hello h = STATESRV__V1__HELLO__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    h.protocol_version = STATESRV_PROTOCOL_VERSION;
    h.client_name = (char *)name;
    h.auth_token = str_bin(token);
    req.op_case = STATESRV__V1__REQUEST__OP_HELLO;
    req.hello = &h;

    /* A server that accepts but never answers should not hold connect() for
     * the (longer) I/O timeout. */
    c->io_timeout_ms = timeout_ms;
    int rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_HELLO);
    c->io_timeout_ms = io_timeout_ms;
    if (rc)
        return rc;
    const Statesrv__V1__HelloResult *hr = c->resp->hello;
    if (hr->protocol_version != STATESRV_PROTOCOL_VERSION)
        return sv_client_die(c, STATESRV_ERR_CONNECT,
                             "server speaks protocol version %u, this library %d",
                             hr->protocol_version, STATESRV_PROTOCOL_VERSION);
    if (hr->max_frame_size == 0)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "server announced a max_frame_size of 0");

    statesrv_server_info *i = &c->info;
    i->protocol_version = hr->protocol_version;
    copy_str(i->server_version, sizeof(i->server_version), hr->server_version);
    i->key_groups = hr->key_groups;
    i->max_frame_size = hr->max_frame_size;
    i->max_value_size = hr->max_value_size;
    i->max_key_size = hr->max_key_size;
    i->max_batch_ops = hr->max_batch_ops;
    i->max_scan_limit = hr->max_scan_limit;
    i->max_states = hr->max_states;
    c->max_send = hr->max_frame_size;
    c->in.max_frame = hr->max_frame_size > UINT32_MAX - CLIENT_FRAME_SLACK
                          ? UINT32_MAX
                          : hr->max_frame_size + CLIENT_FRAME_SLACK;
    sv_client_drop_resp(c);
    return 0;
}

static void put_reason(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_reason(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

int statesrv_connect2(const char *addr, const statesrv_options *opts, statesrv **out, char *errbuf,
                      size_t errlen)
{
    char why[256];
    put_reason(errbuf, errlen, "%s", "");
    if (!out) {
        put_reason(errbuf, errlen, "out is NULL");
        return STATESRV_ERR_USAGE;
    }
    *out = NULL;
    if (!addr)
        addr = STATESRV_DEFAULT_ADDR;
    int cto =
        opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : CLIENT_CONNECT_TIMEOUT_MS;
    int ito = opts && opts->io_timeout_ms ? opts->io_timeout_ms : CLIENT_IO_TIMEOUT_MS;
    const char *name = opts && opts->client_name ? opts->client_name : "libstatesrv";
    int jto = opts ? opts->job_timeout_ms : 0;
    if (cto < -1 || ito < -1 || jto < -1) {
        put_reason(errbuf, errlen, "timeouts are milliseconds, 0 for the default or -1 for none");
        return STATESRV_ERR_USAGE;
    }

    statesrv *c = calloc(1, sizeof(*c));
    if (!c) {
        put_reason(errbuf, errlen, "out of memory");
        return STATESRV_ERR_NOMEM;
    }
    c->fd = -1;
    c->io_timeout_ms = ito;
    c->job_timeout_ms = jto > 0 ? jto : -1;
    c->next_id = 1;
    c->expect_id = 1;
    c->max_send = CLIENT_HELLO_MAX_FRAME;
    sv_frame_reader_init(&c->in, CLIENT_HELLO_MAX_FRAME);

    int rc = open_socket(addr, cto, &c->fd, why, sizeof(why));
    if (rc) {
        put_reason(errbuf, errlen, "%s", why);
        statesrv_close(c);
        return rc;
    }
    rc = handshake(c, name, opts ? opts->auth_token : NULL, cto, ito);
    if (rc) {
        if (rc < STATESRV_ERR_USAGE)
            put_reason(errbuf, errlen, "%s%s%s", statesrv_strerror(rc), c->errmsg[0] ? ": " : "",
                       c->errmsg);
        else
            put_reason(errbuf, errlen, "handshake: %s", c->errmsg);
        statesrv_close(c);
        return rc;
    }
    *out = c;
    return STATESRV_OK;
}

int statesrv_connect(const char *addr, const statesrv_options *opts, statesrv **out)
{
    return statesrv_connect2(addr, opts, out, NULL, 0);
}

void statesrv_close(statesrv *c)
{
    if (!c)
        return;
    if (c->scan)
        c->scan->c = NULL; /* the scan is the caller's to close; it only fails now */
    sv_client_close_fd(c);
    sv_client_drop_resp(c);
    sv_buf_free(&c->out);
    sv_frame_reader_free(&c->in);
    free(c->exp);
    free(c);
}

const statesrv_server_info *statesrv_info(const statesrv *c)
{
    return c ? &c->info : NULL;
}

const char *statesrv_strerror(int code)
{
    switch (code) {
    case STATESRV_OK:
        return "OK";
    case STATESRV_NOT_FOUND:
        return "NOT_FOUND";
    case STATESRV_INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
    case STATESRV_TOO_LARGE:
        return "TOO_LARGE";
    case STATESRV_UNAUTHENTICATED:
        return "UNAUTHENTICATED";
    case STATESRV_BUSY:
        return "BUSY";
    case STATESRV_UNAVAILABLE:
        return "UNAVAILABLE";
    case STATESRV_INTERNAL:
        return "INTERNAL";
    case STATESRV_NO_SPACE:
        return "NO_SPACE";
    case STATESRV_ERR_USAGE:
        return "USAGE_ERROR";
    case STATESRV_ERR_CONNECT:
        return "CONNECT_ERROR";
    case STATESRV_ERR_IO:
        return "IO_ERROR";
    case STATESRV_ERR_TIMEOUT:
        return "TIMEOUT";
    case STATESRV_ERR_PROTOCOL:
        return "PROTOCOL_ERROR";
    case STATESRV_ERR_NOMEM:
        return "OUT_OF_MEMORY";
    case STATESRV_ERR_AGAIN:
        return "AGAIN";
    case STATESRV_ERR_CANCELLED:
        return "CANCELLED";
    default:
        return "UNKNOWN";
    }
}

const char *statesrv_errmsg(const statesrv *c)
{
    return c ? c->errmsg : "";
}

/* --- request builders --------------------------------------------------- */

/* A C string as wire bytes (state names, paths). */
static ProtobufCBinaryData str_bin(const char *s)
{
    return sv_client_bin(s, s ? strlen(s) : 0);
}

ProtobufCBinaryData sv_client_bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, n ? (uint8_t *)p : NULL};
    return b;
}

/* Get, Put, Delete and Merge share their first fields; protobuf-c gives each
 * its own type and oneof-case enum, hence a macro. */
#define FILL_KEYED(m, k, kg_case)                                                                  \
    do {                                                                                           \
        (m)->state = str_bin((k)->state);                                                          \
        (m)->key = sv_client_bin((k)->key, (k)->key_len);                                          \
        (m)->namespace_ = sv_client_bin((k)->ns, (k)->ns_len);                                     \
        if ((k)->has_key_group) {                                                                  \
            (m)->key_group_opt_case = (kg_case);                                                   \
            (m)->key_group = (k)->key_group;                                                       \
        }                                                                                          \
    } while (0)

/* Only what the library cannot send is refused here; the server validates
 * names, sizes and key groups, so there is one source of truth. */
int sv_client_check_bytes(const void *p, size_t n)
{
    return p || n == 0 ? 0 : -1;
}

int sv_client_check_key(statesrv *c, const statesrv_key *k)
{
    if (!k)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "key is NULL");
    if (!k->state)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "state is NULL");
    if (sv_client_check_bytes(k->key, k->key_len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "key is NULL but key_len is %zu", k->key_len);
    if (sv_client_check_bytes(k->ns, k->ns_len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "ns is NULL but ns_len is %zu", k->ns_len);
    return 0;
}

void sv_client_build_get(Statesrv__V1__Get *m, const statesrv_key *k)
{
    statesrv__v1__get__init(m);
    FILL_KEYED(m, k, STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP);
}

void sv_client_build_put(Statesrv__V1__Put *m, const statesrv_key *k, int kind, const void *val,
                         size_t len)
{
    statesrv__v1__put__init(m);
    FILL_KEYED(m, k, STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP);
    m->value = sv_client_bin(val, len);
    m->kind = (Statesrv__V1__ValueKind)kind;
}

void sv_client_build_delete(Statesrv__V1__Delete *m, const statesrv_key *k)
{
    statesrv__v1__delete__init(m);
    FILL_KEYED(m, k, STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP);
}

void sv_client_build_merge(Statesrv__V1__Merge *m, const statesrv_key *k, Statesrv__V1__MergeOp op,
                           const void *operand, size_t len)
{
    statesrv__v1__merge__init(m);
    FILL_KEYED(m, k, STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP);
    m->op = op;
    m->operand = sv_client_bin(operand, len);
}

int sv_client_keyed_request(statesrv *c, int op, const statesrv_key *k, int how, const void *val,
                            size_t len, union sv_client_keyed *m, Statesrv__V1__Request *req,
                            int *expect)
{
    int rc = sv_client_check_key(c, k);
    if (rc)
        return rc;
    if (sv_client_check_bytes(val, len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "%s is NULL but its length is %zu",
                              op == STATESRV__V1__REQUEST__OP_PUT ? "value" : "element", len);
    statesrv__v1__request__init(req);
    req->op_case = (Statesrv__V1__Request__OpCase)op;
    switch (op) {
    case STATESRV__V1__REQUEST__OP_GET:
        sv_client_build_get(&m->get, k);
        req->get = &m->get;
        *expect = STATESRV__V1__RESPONSE__RESULT_GET;
        return 0;
    case STATESRV__V1__REQUEST__OP_PUT:
        sv_client_build_put(&m->put, k, how, val, len);
        req->put = &m->put;
        *expect = STATESRV__V1__RESPONSE__RESULT_PUT;
        return 0;
    case STATESRV__V1__REQUEST__OP_DELETE:
        sv_client_build_delete(&m->del, k);
        req->delete_ = &m->del;
        *expect = STATESRV__V1__RESPONSE__RESULT_DELETE;
        return 0;
    case STATESRV__V1__REQUEST__OP_MERGE:
        sv_client_build_merge(&m->merge, k, (Statesrv__V1__MergeOp)how, val, len);
        req->merge = &m->merge;
        *expect = STATESRV__V1__RESPONSE__RESULT_MERGE;
        return 0;
    default:
        return sv_client_fail(c, STATESRV_ERR_USAGE, "internal: op %d is not keyed", op);
    }
}

static int copy_out(statesrv *c, const ProtobufCBinaryData *b, int kind, statesrv_value *out)
{
    void *p = NULL;
    if (b->len) {
        p = malloc(b->len);
        if (!p)
            return sv_client_fail(c, STATESRV_ERR_NOMEM,
                                  "out of memory copying a value of %zu bytes", b->len);
        memcpy(p, b->data, b->len);
    }
    out->data = p;
    out->len = b->len;
    out->kind = kind;
    out->found = 1;
    return 0;
}

/* --- single operations -------------------------------------------------- */

int statesrv_ping(statesrv *c)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    Statesrv__V1__Ping m = STATESRV__V1__PING__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_PING;
    req.ping = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_PING);
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_get(statesrv *c, const statesrv_key *k, statesrv_value *out)
{
    return statesrv_get_with_ttl(c, k, out, NULL);
}

int statesrv_get_with_ttl(statesrv *c, const statesrv_key *k, statesrv_value *out,
                          int64_t *ttl_remaining_ms)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc || (rc = sv_client_check_key(c, k)))
        return rc;
    if (!out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out is NULL");
    Statesrv__V1__Get m;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_get(&m, k);
    m.with_ttl = ttl_remaining_ms != NULL;
    req.op_case = STATESRV__V1__REQUEST__OP_GET;
    req.get = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_GET);
    if (rc == 0 && ttl_remaining_ms)
        *ttl_remaining_ms = c->resp->get->ttl_remaining_ms;
    if (rc == 0)
        rc = copy_out(c, &c->resp->get->value, (int)c->resp->get->kind, out);
    sv_client_drop_resp(c);
    return rc;
}

/* The arrays a multi_get of n keys points at; nothing to free on failure. */
int sv_client_build_multi_get(statesrv *c, const statesrv_key *keys, size_t n,
                              struct sv_client_multi_get *mg)
{
    memset(mg, 0, sizeof(*mg));
    if (n && !keys)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "keys is NULL");
    int rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = sv_client_check_key(c, &keys[i])))
            return rc;
    if (n > SIZE_MAX / (sizeof(Statesrv__V1__Get) + sizeof(Statesrv__V1__Get *)))
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "too many keys");
    mg->gets = malloc((n ? n : 1) * sizeof(*mg->gets));
    mg->ptrs = malloc((n ? n : 1) * sizeof(*mg->ptrs));
    if (!mg->gets || !mg->ptrs) {
        sv_client_multi_get_free(mg);
        return sv_client_fail(c, STATESRV_ERR_NOMEM,
                              "out of memory building a multi_get of %zu keys", n);
    }
    for (size_t i = 0; i < n; i++) {
        sv_client_build_get(&mg->gets[i], &keys[i]);
        mg->ptrs[i] = &mg->gets[i];
    }
    statesrv__v1__multi_get__init(&mg->m);
    mg->m.n_gets = n;
    mg->m.gets = mg->ptrs;
    return 0;
}

void sv_client_multi_get_free(struct sv_client_multi_get *mg)
{
    free(mg->gets);
    free(mg->ptrs);
    mg->gets = NULL;
    mg->ptrs = NULL;
}

int statesrv_multi_get(statesrv *c, const statesrv_key *keys, size_t n, statesrv_value *out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (n && !out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "keys or out is NULL");
    struct sv_client_multi_get mg;
    if ((rc = sv_client_build_multi_get(c, keys, n, &mg)))
        return rc;
    for (size_t i = 0; i < n; i++)
        memset(&out[i], 0, sizeof(out[i]));
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_MULTI_GET;
    req.multi_get = &mg.m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_MULTI_GET);
    if (rc)
        goto out;
    const Statesrv__V1__MultiGetResult *res = c->resp->multi_get;
    if (res->n_items != n) {
        rc = sv_client_die(c, STATESRV_ERR_PROTOCOL,
                           "multi_get of %zu keys answered with %zu items", n, res->n_items);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const Statesrv__V1__MultiGetItem *it = res->items[i];
        if (!it->found)
            continue;
        if ((rc = copy_out(c, &it->value, (int)it->kind, &out[i]))) {
            statesrv_values_free(out, n);
            goto out;
        }
    }
out:
    sv_client_drop_resp(c);
    sv_client_multi_get_free(&mg);
    return rc;
}

int statesrv_put(statesrv *c, const statesrv_key *k, const void *val, size_t len)
{
    return statesrv_put_kind(c, k, STATESRV_KIND_RAW, val, len);
}

static int put_kind_ttl(statesrv *c, const statesrv_key *k, int kind, const void *val, size_t len,
                        uint64_t ttl_ms);

int statesrv_put_kind(statesrv *c, const statesrv_key *k, int kind, const void *val, size_t len)
{
    return put_kind_ttl(c, k, kind, val, len, 0);
}

int statesrv_put_ttl(statesrv *c, const statesrv_key *k, const void *val, size_t len,
                     uint64_t ttl_ms)
{
    return put_kind_ttl(c, k, STATESRV_KIND_RAW, val, len, ttl_ms);
}

static int put_kind_ttl(statesrv *c, const statesrv_key *k, int kind, const void *val, size_t len,
                        uint64_t ttl_ms)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc || (rc = sv_client_check_key(c, k)))
        return rc;
    if (sv_client_check_bytes(val, len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "value is NULL but its length is %zu", len);
    Statesrv__V1__Put m;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_put(&m, k, kind, val, len);
    m.ttl_ms = ttl_ms;
    req.op_case = STATESRV__V1__REQUEST__OP_PUT;
    req.put = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_PUT);
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_delete(statesrv *c, const statesrv_key *k, int *found)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc || (rc = sv_client_check_key(c, k)))
        return rc;
    Statesrv__V1__Delete m;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_delete(&m, k);
    req.op_case = STATESRV__V1__REQUEST__OP_DELETE;
    req.delete_ = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_DELETE);
    if (rc == 0 && found)
        *found = c->resp->delete_->found ? 1 : 0;
    sv_client_drop_resp(c);
    return rc;
}

/* Append and add: one Merge round trip. */
static int merge(statesrv *c, const statesrv_key *k, Statesrv__V1__MergeOp op, const void *operand,
                 size_t len, uint64_t ttl_ms, int64_t *counter)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc || (rc = sv_client_check_key(c, k)))
        return rc;
    if (sv_client_check_bytes(operand, len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "element is NULL but its length is %zu", len);
    Statesrv__V1__Merge m;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_merge(&m, k, op, operand, len);
    m.ttl_ms = ttl_ms;
    req.op_case = STATESRV__V1__REQUEST__OP_MERGE;
    req.merge = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_MERGE);
    if (rc == 0 && counter)
        *counter = c->resp->merge->counter;
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_append(statesrv *c, const statesrv_key *k, const void *elem, size_t len)
{
    return merge(c, k, STATESRV__V1__MERGE_OP__APPEND, elem, len, 0, NULL);
}

int statesrv_append_ttl(statesrv *c, const statesrv_key *k, const void *elem, size_t len,
                        uint64_t ttl_ms)
{
    return merge(c, k, STATESRV__V1__MERGE_OP__APPEND, elem, len, ttl_ms, NULL);
}

int statesrv_add(statesrv *c, const statesrv_key *k, int64_t delta, int64_t *result)
{
    return statesrv_add_ttl(c, k, delta, 0, result);
}

int statesrv_add_ttl(statesrv *c, const statesrv_key *k, int64_t delta, uint64_t ttl_ms,
                     int64_t *result)
{
    uint8_t operand[SV_COUNTER_SIZE];
    sv_i64_put(operand, delta);
    return merge(c, k, STATESRV__V1__MERGE_OP__ADD_I64, operand, sizeof(operand), ttl_ms, result);
}

/* A clear of every namespace of k->key, or of the whole state (k NULL). */
void sv_client_build_clear(Statesrv__V1__Clear *m, Statesrv__V1__KeySelector *sel,
                           const char *state, const statesrv_key *k)
{
    statesrv__v1__clear__init(m);
    statesrv__v1__key_selector__init(sel);
    m->state = str_bin(state);
    if (k) {
        sel->key = sv_client_bin(k->key, k->key_len);
        if (k->has_key_group) {
            sel->key_group_opt_case = STATESRV__V1__KEY_SELECTOR__KEY_GROUP_OPT_KEY_GROUP;
            sel->key_group = k->key_group;
        }
        m->target_case = STATESRV__V1__CLEAR__TARGET_KEY;
        m->key = sel;
    } else {
        m->target_case = STATESRV__V1__CLEAR__TARGET_WHOLE_STATE;
        m->whole_state = 1;
    }
}

static int clear(statesrv *c, const char *state, const statesrv_key *k, uint64_t *deleted)
{
    Statesrv__V1__Clear m;
    Statesrv__V1__KeySelector sel;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    sv_client_build_clear(&m, &sel, state, k);
    req.op_case = STATESRV__V1__REQUEST__OP_CLEAR;
    req.clear = &m;
    int rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_CLEAR);
    if (rc == 0 && deleted)
        *deleted = c->resp->clear->deleted;
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_clear(statesrv *c, const statesrv_key *k, uint64_t *deleted)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc || (rc = sv_client_check_key(c, k)))
        return rc;
    return clear(c, k->state, k, deleted);
}

int statesrv_drop_state(statesrv *c, const char *state, uint64_t *deleted)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!state)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "state is NULL");
    return clear(c, state, NULL, deleted);
}

/* --- batches ------------------------------------------------------------ */

enum batch_type { BATCH_PUT, BATCH_DELETE, BATCH_APPEND, BATCH_ADD };

/* One queued operation. state, key, ns and val all live in `mem`, one
 * allocation per operation. */
struct batch_op {
    enum batch_type type;
    int kind; /* BATCH_PUT: the value's kind */
    statesrv_key k;
    const void *val;
    size_t val_len;
    void *mem;
};

struct statesrv_batch {
    struct batch_op *ops;
    size_t n, cap;
};

statesrv_batch *statesrv_batch_new(void)
{
    return calloc(1, sizeof(statesrv_batch));
}

void statesrv_batch_reset(statesrv_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->ops[i].mem);
    b->n = 0;
}

void statesrv_batch_free(statesrv_batch *b)
{
    if (!b)
        return;
    statesrv_batch_reset(b);
    free(b->ops);
    free(b);
}

size_t statesrv_batch_count(const statesrv_batch *b)
{
    return b ? b->n : 0;
}

static int batch_add_op(statesrv_batch *b, enum batch_type type, const statesrv_key *k,
                        const void *val, size_t len)
{
    if (!b || !k || !k->state || sv_client_check_bytes(k->key, k->key_len) ||
        sv_client_check_bytes(k->ns, k->ns_len) || sv_client_check_bytes(val, len))
        return STATESRV_ERR_USAGE;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(*b->ops))
            return STATESRV_ERR_NOMEM;
        struct batch_op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (!ops)
            return STATESRV_ERR_NOMEM;
        b->ops = ops;
        b->cap = cap;
    }
    size_t sl = strlen(k->state) + 1;
    if (k->key_len > SIZE_MAX - sl || k->ns_len > SIZE_MAX - sl - k->key_len ||
        len > SIZE_MAX - sl - k->key_len - k->ns_len)
        return STATESRV_ERR_NOMEM;
    uint8_t *mem = malloc(sl + k->key_len + k->ns_len + len);
    if (!mem)
        return STATESRV_ERR_NOMEM;
    struct batch_op *op = &b->ops[b->n];
    memset(op, 0, sizeof(*op));
    op->type = type;
    op->mem = mem;
    memcpy(mem, k->state, sl);
    op->k.state = (const char *)mem;
    mem += sl;
    if (k->key_len)
        memcpy(mem, k->key, k->key_len);
    op->k.key = mem;
    op->k.key_len = k->key_len;
    mem += k->key_len;
    if (k->ns_len)
        memcpy(mem, k->ns, k->ns_len);
    op->k.ns = mem;
    op->k.ns_len = k->ns_len;
    mem += k->ns_len;
    if (len)
        memcpy(mem, val, len);
    op->val = mem;
    op->val_len = len;
    op->k.has_key_group = k->has_key_group;
    op->k.key_group = k->key_group;
    b->n++;
    return STATESRV_OK;
}

int statesrv_batch_put(statesrv_batch *b, const statesrv_key *k, const void *val, size_t len)
{
    return batch_add_op(b, BATCH_PUT, k, val, len);
}

int statesrv_batch_put_kind(statesrv_batch *b, const statesrv_key *k, int kind, const void *val,
                            size_t len)
{
    if (kind < STATESRV_KIND_RAW || kind > STATESRV_KIND_COUNTER)
        return STATESRV_ERR_USAGE;
    int rc = batch_add_op(b, BATCH_PUT, k, val, len);
    if (rc == STATESRV_OK)
        b->ops[b->n - 1].kind = kind;
    return rc;
}

int statesrv_batch_delete(statesrv_batch *b, const statesrv_key *k)
{
    return batch_add_op(b, BATCH_DELETE, k, NULL, 0);
}

int statesrv_batch_append(statesrv_batch *b, const statesrv_key *k, const void *elem, size_t len)
{
    return batch_add_op(b, BATCH_APPEND, k, elem, len);
}

int statesrv_batch_add(statesrv_batch *b, const statesrv_key *k, int64_t delta)
{
    uint8_t operand[SV_COUNTER_SIZE];
    sv_i64_put(operand, delta);
    return batch_add_op(b, BATCH_ADD, k, operand, sizeof(operand));
}

union batch_msg {
    Statesrv__V1__Put put;
    Statesrv__V1__Delete del;
    Statesrv__V1__Merge merge;
};

/* The messages a Batch of b's operations points at; nothing to free on
 * failure. */
int sv_client_build_batch(statesrv *c, const statesrv_batch *b, struct sv_client_batch_msg *bm)
{
    memset(bm, 0, sizeof(*bm));
    if (!b)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "batch is NULL");
    size_t n = b->n, each = sizeof(union batch_msg) + sizeof(Statesrv__V1__BatchOp) +
                            sizeof(Statesrv__V1__BatchOp *);
    if (n > SIZE_MAX / each)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "batch too large");
    union batch_msg *msgs = malloc((n ? n : 1) * sizeof(*msgs));
    bm->msgs = msgs;
    bm->ops = malloc((n ? n : 1) * sizeof(*bm->ops));
    bm->ptrs = malloc((n ? n : 1) * sizeof(*bm->ptrs));
    if (!msgs || !bm->ops || !bm->ptrs) {
        sv_client_batch_msg_free(bm);
        return sv_client_fail(c, STATESRV_ERR_NOMEM,
                              "out of memory encoding a batch of %zu operations", n);
    }
    Statesrv__V1__BatchOp *ops = bm->ops;
    for (size_t i = 0; i < n; i++) {
        const struct batch_op *op = &b->ops[i];
        statesrv__v1__batch_op__init(&ops[i]);
        switch (op->type) {
        case BATCH_PUT:
            sv_client_build_put(&msgs[i].put, &op->k, op->kind, op->val, op->val_len);
            ops[i].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
            ops[i].put = &msgs[i].put;
            break;
        case BATCH_DELETE:
            sv_client_build_delete(&msgs[i].del, &op->k);
            ops[i].op_case = STATESRV__V1__BATCH_OP__OP_DELETE;
            ops[i].delete_ = &msgs[i].del;
            break;
        case BATCH_APPEND:
        case BATCH_ADD:
            sv_client_build_merge(&msgs[i].merge, &op->k,
                                  op->type == BATCH_ADD ? STATESRV__V1__MERGE_OP__ADD_I64
                                                        : STATESRV__V1__MERGE_OP__APPEND,
                                  op->val, op->val_len);
            ops[i].op_case = STATESRV__V1__BATCH_OP__OP_MERGE;
            ops[i].merge = &msgs[i].merge;
            break;
        }
        bm->ptrs[i] = &ops[i];
    }
    statesrv__v1__batch__init(&bm->m);
    bm->m.n_ops = n;
    bm->m.ops = bm->ptrs;
    return 0;
}

void sv_client_batch_msg_free(struct sv_client_batch_msg *bm)
{
    free(bm->msgs);
    free(bm->ops);
    free(bm->ptrs);
    bm->msgs = NULL;
    bm->ops = NULL;
    bm->ptrs = NULL;
}

int statesrv_batch_commit(statesrv *c, const statesrv_batch *b)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    struct sv_client_batch_msg bm;
    if ((rc = sv_client_build_batch(c, b, &bm)))
        return rc;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_BATCH;
    req.batch = &bm.m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_BATCH);
    sv_client_drop_resp(c);
    sv_client_batch_msg_free(&bm);
    return rc;
}

/* --- scans -------------------------------------------------------------- */

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int sv_client_check_scan(statesrv *c, const statesrv_scan_options *o)
{
    if (!o)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "options are NULL");
    if (!o->state)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "state is NULL");
    if (o->mode != STATESRV_SCAN_STATE && o->mode != STATESRV_SCAN_KEY &&
        o->mode != STATESRV_SCAN_KEY_GROUPS)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "unknown scan mode %d", o->mode);
    if (o->mode == STATESRV_SCAN_KEY && sv_client_check_bytes(o->key, o->key_len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "key is NULL but key_len is %zu", o->key_len);
    if (sv_client_check_bytes(o->cursor, o->cursor_len))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "cursor is NULL but cursor_len is %zu",
                              o->cursor_len);
    return 0;
}

/* One page of the scan o describes, from cursor (o->cursor is not used). */
void sv_client_build_scan(struct sv_client_scan_msg *sm, const statesrv_scan_options *o,
                          const void *cursor, size_t cursor_len)
{
    statesrv__v1__scan__init(&sm->m);
    statesrv__v1__key_selector__init(&sm->sel);
    statesrv__v1__key_group_range__init(&sm->kgr);
    sm->m.state = str_bin(o->state);
    sm->m.limit = o->page_size;
    sm->m.cursor = sv_client_bin(cursor, cursor_len);
    if (o->mode == STATESRV_SCAN_KEY) {
        sm->sel.key = sv_client_bin(o->key, o->key_len);
        if (o->has_key_group) {
            sm->sel.key_group_opt_case = STATESRV__V1__KEY_SELECTOR__KEY_GROUP_OPT_KEY_GROUP;
            sm->sel.key_group = o->key_group;
        }
        sm->m.range_case = STATESRV__V1__SCAN__RANGE_KEY;
        sm->m.key = &sm->sel;
    } else if (o->mode == STATESRV_SCAN_KEY_GROUPS) {
        sm->kgr.first = o->kg_first;
        sm->kgr.last = o->kg_last;
        sm->m.range_case = STATESRV__V1__SCAN__RANGE_KEY_GROUPS;
        sm->m.key_groups = &sm->kgr;
    }
}

/* Fetches the page after s->page (or the first one). The old page stays
 * until the new one has arrived, so a failed fetch can be retried. */
static int scan_fetch(statesrv_scan *s)
{
    statesrv *c = s->c;
    if (c->dead)
        return c->dead;
    struct sv_client_scan_msg sm;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    if (s->page)
        sv_client_build_scan(&sm, &s->o, s->page->scan->cursor.data, s->page->scan->cursor.len);
    else
        sv_client_build_scan(&sm, &s->o, s->o.cursor, s->o.cursor_len);
    const ProtobufCBinaryData sent = sm.m.cursor;
    req.op_case = STATESRV__V1__REQUEST__OP_SCAN;
    req.scan = &sm.m;
    int rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_SCAN);
    if (rc) {
        sv_client_drop_resp(c);
        return rc;
    }
    const Statesrv__V1__ScanResult *sr = c->resp->scan;
    /* An empty page that sends us back where we were would loop forever. */
    if (sr->n_entries == 0 && sr->cursor.len && sr->cursor.len == sent.len &&
        memcmp(sr->cursor.data, sent.data, sent.len) == 0) {
        sv_client_drop_resp(c);
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "scan page made no progress");
    }
    if (s->page)
        sv_msg_free_response(s->page);
    s->page = c->resp;
    c->resp = NULL;
    s->idx = 0;
    return 0;
}

static void scan_free(statesrv_scan *s)
{
    if (s->page)
        sv_msg_free_response(s->page);
    free(s->state);
    free(s->key);
    free(s->start);
    free(s);
}

int statesrv_scan_open(statesrv *c, const statesrv_scan_options *o, statesrv_scan **out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    if (out)
        *out = NULL;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out is NULL");
    if ((rc = sv_client_check_scan(c, o)))
        return rc;

    statesrv_scan *s = calloc(1, sizeof(*s));
    if (!s)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    s->c = c;
    s->o = *o;
    s->state = (char *)dup_bytes(o->state, strlen(o->state) + 1);
    s->o.state = s->state;
    if (o->mode == STATESRV_SCAN_KEY) {
        s->key = dup_bytes(o->key, o->key_len);
        s->o.key = s->key;
    } else {
        s->o.key = NULL;
        s->o.key_len = 0;
    }
    s->start = dup_bytes(o->cursor, o->cursor_len);
    s->o.cursor = s->start;
    if (!s->state || (o->mode == STATESRV_SCAN_KEY && !s->key) || !s->start) {
        scan_free(s);
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    }
    /* The first page comes now, so a bad state or range fails here. */
    rc = scan_fetch(s);
    if (rc) {
        scan_free(s);
        return rc;
    }
    c->scan = s;
    *out = s;
    return STATESRV_OK;
}

int statesrv_scan_next(statesrv_scan *s, const statesrv_entry **e)
{
    if (!s || !e)
        return STATESRV_ERR_USAGE;
    *e = NULL;
    if (!s->c)
        return STATESRV_ERR_USAGE;
    for (;;) {
        const Statesrv__V1__ScanResult *sr = s->page->scan;
        if (s->idx < sr->n_entries) {
            const Statesrv__V1__Entry *en = sr->entries[s->idx++];
            s->cur.key = en->key.data;
            s->cur.key_len = en->key.len;
            s->cur.ns = en->namespace_.data;
            s->cur.ns_len = en->namespace_.len;
            s->cur.key_group = en->key_group;
            s->cur.value = en->value.data;
            s->cur.value_len = en->value.len;
            s->cur.kind = (int)en->kind;
            *e = &s->cur;
            return ok(s->c);
        }
        if (sr->cursor.len == 0)
            return ok(s->c);
        int rc = scan_fetch(s);
        if (rc)
            return rc;
    }
}

int statesrv_scan_cursor(const statesrv_scan *s, const void **cursor, size_t *len)
{
    if (!s || !cursor || !len)
        return STATESRV_ERR_USAGE;
    *cursor = NULL;
    *len = 0;
    const Statesrv__V1__ScanResult *sr = s->page->scan;
    /* A server cursor points after a whole page; in the middle of one there
     * is nothing to resume from. */
    if (s->idx < sr->n_entries)
        return STATESRV_ERR_USAGE;
    *cursor = sr->cursor.len ? sr->cursor.data : NULL;
    *len = sr->cursor.len;
    return STATESRV_OK;
}

void statesrv_scan_close(statesrv_scan *s)
{
    if (!s)
        return;
    if (s->c)
        s->c->scan = NULL;
    scan_free(s);
}

/* --- introspection ------------------------------------------------------ */

static void copy_ttl(statesrv_ttl *d, const Statesrv__V1__TtlConfig *s)
{
    memset(d, 0, sizeof(*d));
    if (!s)
        return;
    d->ttl_ms = s->ttl_ms;
    d->update = (int)s->update;
    d->visibility = (int)s->visibility;
}

static void copy_state_info(statesrv_state_info *d, const Statesrv__V1__StateInfo *s)
{
    copy_str(d->name, sizeof(d->name), s->name);
    d->entries = s->entries;
    d->bytes = s->bytes;
    copy_ttl(&d->ttl, s->ttl);
}

/* Sets (ttl not NULL) or reads a state's TTL. */
static int state_ttl(statesrv *c, const char *state, const statesrv_ttl *set, statesrv_ttl *out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!state || !*state)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "state is NULL or empty");
    if (set && (set->update < 0 || set->update > 1 || set->visibility < 0 || set->visibility > 1))
        return sv_client_fail(c, STATESRV_ERR_USAGE, "unknown TTL update type or visibility");
    Statesrv__V1__StateTtl m = STATESRV__V1__STATE_TTL__INIT;
    Statesrv__V1__TtlConfig t = STATESRV__V1__TTL_CONFIG__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    m.state = str_bin(state);
    if (set) {
        t.ttl_ms = set->ttl_ms;
        t.update = (Statesrv__V1__TtlUpdate)set->update;
        t.visibility = (Statesrv__V1__TtlVisibility)set->visibility;
        m.ttl = &t;
    }
    req.op_case = STATESRV__V1__REQUEST__OP_STATE_TTL;
    req.state_ttl = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_STATE_TTL);
    if (rc == 0 && out)
        copy_ttl(out, c->resp->state_ttl->ttl);
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_set_state_ttl(statesrv *c, const char *state, const statesrv_ttl *ttl)
{
    if (c && !ttl)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "ttl is NULL");
    return state_ttl(c, state, ttl, NULL);
}

int statesrv_get_state_ttl(statesrv *c, const char *state, statesrv_ttl *out)
{
    if (c && !out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out is NULL");
    return state_ttl(c, state, NULL, out);
}

static int copy_states(statesrv *c, Statesrv__V1__StateInfo *const *src, size_t n,
                       statesrv_state_info **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    statesrv_state_info *a = calloc(n, sizeof(*a));
    if (!a)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        copy_state_info(&a[i], src[i]);
    *out = a;
    return 0;
}

int statesrv_list_states(statesrv *c, statesrv_state_info **out, size_t *n)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!out || !n)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out or n is NULL");
    *out = NULL;
    *n = 0;
    Statesrv__V1__ListStates m = STATESRV__V1__LIST_STATES__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_LIST_STATES;
    req.list_states = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_LIST_STATES);
    if (rc == 0) {
        const Statesrv__V1__ListStatesResult *r = c->resp->list_states;
        rc = copy_states(c, r->states, r->n_states, out);
        if (rc == 0)
            *n = r->n_states;
    }
    sv_client_drop_resp(c);
    return rc;
}

void statesrv_stats_free(statesrv_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->op_details && i < s->n_ops; i++) {
        free(s->op_details[i].statuses);
        free(s->op_details[i].latency_buckets);
    }
    free(s->op_details);
    free(s->latency_bounds_us);
    free(s->status_errors);
    free(s->connection_errors);
    free(s->ops);
    free(s->states);
    free(s);
}

/* A quantile of a latency histogram (non-cumulative buckets, the last one
 * beyond the last bound), estimated as Prometheus' histogram_quantile()
 * does: find the bucket whose cumulative count reaches the rank and
 * interpolate linearly inside it, from 0 for the first; a rank beyond the
 * last bound gives the last bound. */
static double latency_quantile(const uint64_t *bounds, size_t nbounds, const uint64_t *buckets,
                               uint64_t total, double q)
{
    if (!total || !nbounds)
        return 0;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (size_t i = 0; i < nbounds; i++) {
        uint64_t before = cum;
        cum += buckets[i];
        if ((double)cum >= rank) { /* buckets[i] > 0: before < rank <= cum */
            double lo = i ? (double)bounds[i - 1] : 0;
            return lo + ((double)bounds[i] - lo) * ((rank - (double)before) / (double)buckets[i]);
        }
    }
    return (double)bounds[nbounds - 1];
}

static void *dup_u64(const uint64_t *src, size_t n)
{
    uint64_t *a = malloc(sizeof(*a) * n);
    if (a)
        memcpy(a, src, sizeof(*a) * n);
    return a;
}

static int copy_error_counts(statesrv *c, Statesrv__V1__ErrorCount *const *src, size_t n,
                             statesrv_error_count **out, size_t *nout)
{
    if (n == 0)
        return 0;
    statesrv_error_count *a = calloc(n, sizeof(*a));
    if (!a)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        copy_str(a[i].kind, sizeof(a[i].kind), src[i]->kind);
        a[i].count = src[i]->count;
    }
    *out = a;
    *nout = n;
    return 0;
}

/* One op's statuses and latency histogram, into d (owned by the stats). */
static int copy_op_detail(statesrv *c, const Statesrv__V1__OpStats *o, const uint64_t *bounds,
                          size_t nbounds, statesrv_op_detail *d)
{
    copy_str(d->op, sizeof(d->op), o->op);
    if (o->n_statuses) {
        d->statuses = calloc(o->n_statuses, sizeof(*d->statuses));
        if (!d->statuses)
            return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < o->n_statuses; k++) {
            d->statuses[k].status = (int)o->statuses[k]->status;
            d->statuses[k].count = o->statuses[k]->count;
        }
        d->n_statuses = o->n_statuses;
    }
    d->latency_count = o->latency_count;
    d->latency_sum_ns = o->latency_sum_ns;
    if (o->n_latency_buckets == 0)
        return 0;
    if (o->n_latency_buckets != nbounds + 1)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL,
                             "stats: op %s has %zu latency buckets for %zu bounds", d->op,
                             o->n_latency_buckets, nbounds);
    if (!(d->latency_buckets = dup_u64(o->latency_buckets, o->n_latency_buckets)))
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    d->n_latency_buckets = o->n_latency_buckets;
    d->latency_p50_us =
        latency_quantile(bounds, nbounds, d->latency_buckets, d->latency_count, 0.5);
    d->latency_p99_us =
        latency_quantile(bounds, nbounds, d->latency_buckets, d->latency_count, 0.99);
    return 0;
}

/* The fields statesrv_stats gained after its first release. */
static int copy_stats_more(statesrv *c, const Statesrv__V1__StatsResult *r, statesrv_stats *s)
{
    size_t nb = r->n_latency_bounds_us;
    if (nb) {
        if (!(s->latency_bounds_us = dup_u64(r->latency_bounds_us, nb)))
            return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        s->n_latency_bounds = nb;
    }
    if (s->n_ops) {
        if (!(s->op_details = calloc(s->n_ops, sizeof(*s->op_details))))
            return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < s->n_ops; i++) {
            int rc = copy_op_detail(c, r->ops[i], s->latency_bounds_us, nb, &s->op_details[i]);
            if (rc)
                return rc;
        }
    }
    int rc = copy_error_counts(c, r->status_errors, r->n_status_errors, &s->status_errors,
                               &s->n_status_errors);
    if (rc == 0)
        rc = copy_error_counts(c, r->connection_errors, r->n_connection_errors,
                               &s->connection_errors, &s->n_connection_errors);
    s->checkpoint_failures = r->checkpoint_failures;
    s->last_checkpoint_age_ms = r->last_checkpoint_age_ms;
    s->map_in_use = r->map_in_use;
    s->map_limit = r->map_limit;
    s->map_free_pinned = r->map_free_pinned;
    s->remote_enabled = r->remote_enabled;
    s->remote_pending = r->remote_pending;
    s->remote_upload_lag_ms = r->remote_upload_lag_ms;
    s->remote_uploads_completed = r->remote_uploads_completed;
    s->remote_upload_failures = r->remote_upload_failures;
    s->remote_bytes_uploaded = r->remote_bytes_uploaded;
    s->last_remote_checkpoint_id = r->last_remote_checkpoint_id;
    s->remote_uploading_id = r->remote_uploading_id;
    s->ttl_expired_read = r->ttl_expired_read;
    s->ttl_expired_checkpoint = r->ttl_expired_checkpoint;
    s->ttl_expired_sweep = r->ttl_expired_sweep;
    s->ttl_sweep_seconds = r->ttl_sweep_seconds;
    s->ttl_sweep_visited = r->ttl_sweep_visited;
    s->kg_first = r->kg_first;
    s->kg_last = r->kg_last;
    copy_str(s->data_dir, sizeof(s->data_dir), r->data_dir);
    copy_str(s->checkpoint_dir, sizeof(s->checkpoint_dir), r->checkpoint_dir);
    copy_str(s->listen, sizeof(s->listen), r->listen);
    copy_str(s->unix_socket, sizeof(s->unix_socket), r->unix_socket);
    copy_str(s->metrics_listen, sizeof(s->metrics_listen), r->metrics_listen);
    copy_str(s->config_file, sizeof(s->config_file), r->config_file);
    copy_str(s->sync, sizeof(s->sync), r->sync);
    copy_str(s->remote_last_error, sizeof(s->remote_last_error), r->remote_last_error);
    return rc;
}

int statesrv_stats_get(statesrv *c, statesrv_stats **out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out is NULL");
    *out = NULL;
    Statesrv__V1__Stats m = STATESRV__V1__STATS__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_STATS;
    req.stats = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_STATS);
    if (rc) {
        sv_client_drop_resp(c);
        return rc;
    }
    const Statesrv__V1__StatsResult *r = c->resp->stats;
    statesrv_stats *s = calloc(1, sizeof(*s));
    if (!s) {
        sv_client_drop_resp(c);
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    }
    copy_str(s->server_version, sizeof(s->server_version), r->server_version);
    s->uptime_seconds = r->uptime_seconds;
    s->connections_current = r->connections_current;
    s->connections_total = r->connections_total;
    s->connections_rejected = r->connections_rejected;
    s->map_size = r->map_size;
    s->map_used = r->map_used;
    s->key_groups = r->key_groups;
    s->commits = r->commits;
    s->bytes_in = r->bytes_in;
    s->bytes_out = r->bytes_out;
    if (r->n_ops) {
        s->ops = calloc(r->n_ops, sizeof(*s->ops));
        if (!s->ops)
            rc = sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        for (size_t i = 0; s->ops && i < r->n_ops; i++) {
            copy_str(s->ops[i].op, sizeof(s->ops[i].op), r->ops[i]->op);
            s->ops[i].count = r->ops[i]->count;
            s->ops[i].errors = r->ops[i]->errors;
        }
        s->n_ops = s->ops ? r->n_ops : 0;
    }
    if (rc == 0 && (rc = copy_states(c, r->states, r->n_states, &s->states)) == 0)
        s->n_states = r->n_states;
    if (rc == 0)
        rc = copy_stats_more(c, r, s);
    s->checkpoints_completed = r->checkpoints_completed;
    s->last_checkpoint_id = r->last_checkpoint_id;
    s->last_checkpoint_bytes = r->last_checkpoint_bytes;
    s->last_checkpoint_duration_ms = r->last_checkpoint_duration_ms;
    s->last_checkpoint_unix_ms = r->last_checkpoint_unix_ms;
    s->restores_completed = r->restores_completed;
    s->last_restore_duration_ms = r->last_restore_duration_ms;
    const Statesrv__V1__CheckpointProgress *p = r->checkpoint_in_progress;
    if (p) {
        s->has_progress = 1;
        copy_str(s->progress.kind, sizeof(s->progress.kind), p->kind);
        s->progress.checkpoint_id = p->checkpoint_id;
        s->progress.entries = p->entries;
        s->progress.bytes = p->bytes;
        s->progress.elapsed_ms = p->elapsed_ms;
        s->progress.total_entries = p->total_entries;
    }
    sv_client_drop_resp(c);
    if (rc) {
        statesrv_stats_free(s);
        return rc;
    }
    *out = s;
    return STATESRV_OK;
}

/* --- checkpoints -------------------------------------------------------- */

/* Snapshot and restore answer only when the job is done, which may take far
 * longer than io_timeout_ms: their round trip runs under job_timeout_ms. */
static int roundtrip_job(statesrv *c, Statesrv__V1__Request *req, int expect)
{
    int saved = c->io_timeout_ms;
    c->io_timeout_ms = c->job_timeout_ms;
    int rc = roundtrip(c, req, expect);
    c->io_timeout_ms = saved;
    if (rc == STATESRV_ERR_TIMEOUT)
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "no reply within job_timeout_ms (%d ms); the job goes on in the server",
                 c->job_timeout_ms);
    return rc;
}

static void copy_manifest(statesrv_checkpoint_info *d, const Statesrv__V1__CheckpointManifest *m,
                          statesrv_checkpoint_state *states)
{
    d->id = m->checkpoint_id;
    d->created_unix_ms = m->created_unix_ms;
    copy_str(d->server_version, sizeof(d->server_version), m->server_version);
    d->format_version = m->format_version;
    d->key_groups = m->key_groups;
    d->kg_first = m->kg_first;
    d->kg_last = m->kg_last;
    d->entries = m->entries;
    d->raw_bytes = m->raw_bytes;
    d->data_bytes = m->data_bytes;
    d->data_xxh3 = m->data_xxh3;
    copy_str(d->compression, sizeof(d->compression), m->compression);
    d->compression_level = m->compression_level;
    d->blocks = m->blocks;
    d->duration_ms = m->duration_ms;
    d->incremental = m->incremental;
    d->base_id = m->format_version >= 2 ? m->base_id : m->checkpoint_id;
    d->added_bytes = m->format_version >= 2 ? m->added_bytes : m->data_bytes;
    d->total_bytes = m->format_version >= 2 ? m->total_bytes : m->data_bytes;
    d->states = m->n_states ? states : NULL;
    d->n_states = m->n_states;
    for (size_t i = 0; i < m->n_states; i++) {
        const Statesrv__V1__CheckpointStateInfo *si = m->states[i];
        copy_str(states[i].name, sizeof(states[i].name), si->name);
        states[i].entries = si->entries;
        states[i].raw_bytes = si->raw_bytes;
        states[i].kg_min = si->kg_min;
        states[i].kg_max = si->kg_max;
        states[i].blocks = si->blocks;
    }
}

/* Copies n manifests (and a snapshot's path) into one allocation: the infos,
 * then every state array, then the path, so that one free() releases it. */
static int copy_manifests(statesrv *c, Statesrv__V1__CheckpointManifest *const *src, size_t n,
                          const char *path, statesrv_checkpoint_info **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    size_t states = 0, path_len = path ? strlen(path) + 1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i]->n_states > SIZE_MAX / sizeof(statesrv_checkpoint_state) - states)
            return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        states += src[i]->n_states;
    }
    if (n > SIZE_MAX / sizeof(statesrv_checkpoint_info) ||
        states * sizeof(statesrv_checkpoint_state) >
            SIZE_MAX - path_len - n * sizeof(statesrv_checkpoint_info))
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    /* Both structs hold uint64_t members, so their sizes keep the state
     * arrays aligned after the infos. */
    size_t size = n * sizeof(statesrv_checkpoint_info) +
                  states * sizeof(statesrv_checkpoint_state) + path_len;
    statesrv_checkpoint_info *a = calloc(1, size);
    if (!a)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory for %zu checkpoints", n);
    statesrv_checkpoint_state *st = (statesrv_checkpoint_state *)(a + n);
    for (size_t i = 0; i < n; i++) {
        copy_manifest(&a[i], src[i], st);
        st += src[i]->n_states;
    }
    if (path) {
        char *p = (char *)st;
        memcpy(p, path, path_len);
        a[0].path = p;
    }
    *out = a;
    return 0;
}

static int snapshot(statesrv *c, int has_id, uint64_t id, int full, int wait_remote,
                    statesrv_checkpoint_info **out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!out)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out is NULL");
    *out = NULL;
    Statesrv__V1__Snapshot m = STATESRV__V1__SNAPSHOT__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    if (has_id) {
        m.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
        m.id = id;
    }
    m.full = full != 0;
    m.wait_remote = wait_remote != 0;
    req.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    req.snapshot = &m;
    rc = roundtrip_job(c, &req, STATESRV__V1__RESPONSE__RESULT_SNAPSHOT);
    if (rc == 0) {
        const Statesrv__V1__SnapshotResult *r = c->resp->snapshot;
        if (!r->manifest)
            rc = sv_client_die(c, STATESRV_ERR_PROTOCOL, "snapshot reply without a manifest");
        else
            rc = copy_manifests(c, &r->manifest, 1, r->path ? r->path : "", out);
        if (rc == 0 && r->remote_url && r->remote_url[0]) {
            copy_str((*out)->remote_url, sizeof((*out)->remote_url), r->remote_url);
            copy_str((*out)->remote_state, sizeof((*out)->remote_state), "remote");
        }
    }
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_snapshot(statesrv *c, int has_id, uint64_t id, statesrv_checkpoint_info **out)
{
    return snapshot(c, has_id, id, 0, 0, out);
}

int statesrv_snapshot_full(statesrv *c, int has_id, uint64_t id, statesrv_checkpoint_info **out)
{
    return snapshot(c, has_id, id, 1, 0, out);
}

int statesrv_snapshot_remote(statesrv *c, int has_id, uint64_t id, int full,
                             statesrv_checkpoint_info **out)
{
    return snapshot(c, has_id, id, full, 1, out);
}

/* The round trip of statesrv_list_checkpoints() and
 * statesrv_list_checkpoint_problems(): STATESRV_OK with c->resp holding the
 * list (the caller drops it); out and n checked. */
static int list_checkpoints_roundtrip(statesrv *c, const void *out, const size_t *n)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (!out || !n)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "out or n is NULL");
    Statesrv__V1__ListCheckpoints m = STATESRV__V1__LIST_CHECKPOINTS__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.op_case = STATESRV__V1__REQUEST__OP_LIST_CHECKPOINTS;
    req.list_checkpoints = &m;
    return roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_LIST_CHECKPOINTS);
}

int statesrv_list_checkpoints(statesrv *c, statesrv_checkpoint_info **out, size_t *n)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    int rc = list_checkpoints_roundtrip(c, out, n);
    if (rc == 0) {
        const Statesrv__V1__ListCheckpointsResult *r = c->resp->list_checkpoints;
        rc = copy_manifests(c, r->checkpoints, r->n_checkpoints, NULL, out);
        if (rc == 0)
            *n = r->n_checkpoints;
        /* The remote states, matched by id (they come in the same order). */
        for (size_t i = 0; rc == 0 && i < r->n_remote; i++) {
            const Statesrv__V1__CheckpointRemote *cr = r->remote[i];
            for (size_t k = 0; k < *n; k++) {
                if ((*out)[k].id != cr->checkpoint_id)
                    continue;
                copy_str((*out)[k].remote_state, sizeof((*out)[k].remote_state), cr->state);
                copy_str((*out)[k].remote_url, sizeof((*out)[k].remote_url), cr->url);
                copy_str((*out)[k].remote_error, sizeof((*out)[k].remote_error), cr->error);
                break;
            }
        }
    }
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_list_checkpoint_problems(statesrv *c, statesrv_checkpoint_problem **out, size_t *n)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    int rc = list_checkpoints_roundtrip(c, out, n);
    if (rc == 0 && c->resp->list_checkpoints->n_problems) {
        const Statesrv__V1__ListCheckpointsResult *r = c->resp->list_checkpoints;
        statesrv_checkpoint_problem *a = calloc(r->n_problems, sizeof(*a));
        if (!a) {
            rc = sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
        } else {
            for (size_t i = 0; i < r->n_problems; i++) {
                a[i].id = r->problems[i]->id;
                copy_str(a[i].path, sizeof(a[i].path), r->problems[i]->path);
                copy_str(a[i].problem, sizeof(a[i].problem), r->problems[i]->problem);
            }
            *out = a;
            *n = r->n_problems;
        }
    }
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_delete_checkpoint(statesrv *c, uint64_t id)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    Statesrv__V1__DeleteCheckpoint m = STATESRV__V1__DELETE_CHECKPOINT__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    m.id = id;
    req.op_case = STATESRV__V1__REQUEST__OP_DELETE_CHECKPOINT;
    req.delete_checkpoint = &m;
    rc = roundtrip(c, &req, STATESRV__V1__RESPONSE__RESULT_DELETE_CHECKPOINT);
    sv_client_drop_resp(c);
    return rc;
}

int statesrv_restore(statesrv *c, const char *const *sources, size_t n, int has_range,
                     uint32_t first, uint32_t last, statesrv_restore_info *out)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 1);
    if (rc)
        return rc;
    if (n && !sources)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "sources is NULL");
    for (size_t i = 0; i < n; i++)
        if (!sources[i])
            return sv_client_fail(c, STATESRV_ERR_USAGE, "sources[%zu] is NULL", i);
    if (out)
        memset(out, 0, sizeof(*out));
    Statesrv__V1__Restore m = STATESRV__V1__RESTORE__INIT;
    Statesrv__V1__KeyGroupRange kgr = STATESRV__V1__KEY_GROUP_RANGE__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    /* Sources are bytes on the wire; the array only lives while packing. */
    ProtobufCBinaryData *srcs = calloc(n ? n : 1, sizeof(*srcs));
    if (!srcs)
        return sv_client_fail(c, STATESRV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        srcs[i] = str_bin(sources[i]);
    m.n_sources = n;
    m.sources = srcs;
    if (has_range) {
        kgr.first = first;
        kgr.last = last;
        m.range_opt_case = STATESRV__V1__RESTORE__RANGE_OPT_KEY_GROUPS;
        m.key_groups = &kgr;
    }
    req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
    req.restore = &m;
    rc = roundtrip_job(c, &req, STATESRV__V1__RESPONSE__RESULT_RESTORE);
    free(srcs);
    if (rc == 0 && out) {
        const Statesrv__V1__RestoreResult *r = c->resp->restore;
        out->entries = r->entries;
        out->states = r->states;
        out->kg_first = r->kg_first;
        out->kg_last = r->kg_last;
        out->duration_ms = r->duration_ms;
    }
    sv_client_drop_resp(c);
    return rc;
}

void statesrv_checkpoint_info_free(statesrv_checkpoint_info *info)
{
    free(info);
}

/* --- pipelining --------------------------------------------------------- */

/* Queues one request and flushes once enough is waiting. */
static int send_req(statesrv *c, Statesrv__V1__Request *req, int expect, uint64_t *id)
{
    int rc = sv_client_enqueue(c, req, expect, id);
    if (rc)
        return rc;
    if (c->out.len - c->out_off >= CLIENT_AUTOFLUSH && (rc = pump(c, 0)))
        return rc;
    return ok(c);
}

static int send_keyed(statesrv *c, int op, const statesrv_key *k, int how, const void *val,
                      size_t len, uint64_t *id)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    int rc = begin(c, 0);
    if (rc)
        return rc;
    union sv_client_keyed m;
    Statesrv__V1__Request req;
    int expect;
    if ((rc = sv_client_keyed_request(c, op, k, how, val, len, &m, &req, &expect)))
        return rc;
    return send_req(c, &req, expect, id);
}

int statesrv_send_get(statesrv *c, const statesrv_key *k, uint64_t *id)
{
    return send_keyed(c, STATESRV__V1__REQUEST__OP_GET, k, 0, NULL, 0, id);
}

int statesrv_send_put(statesrv *c, const statesrv_key *k, const void *val, size_t len, uint64_t *id)
{
    return send_keyed(c, STATESRV__V1__REQUEST__OP_PUT, k, STATESRV_KIND_RAW, val, len, id);
}

int statesrv_send_delete(statesrv *c, const statesrv_key *k, uint64_t *id)
{
    return send_keyed(c, STATESRV__V1__REQUEST__OP_DELETE, k, 0, NULL, 0, id);
}

static int send_merge(statesrv *c, const statesrv_key *k, Statesrv__V1__MergeOp op,
                      const void *operand, size_t len, uint64_t *id)
{
    return send_keyed(c, STATESRV__V1__REQUEST__OP_MERGE, k, (int)op, operand, len, id);
}

int statesrv_send_append(statesrv *c, const statesrv_key *k, const void *elem, size_t len,
                         uint64_t *id)
{
    return send_merge(c, k, STATESRV__V1__MERGE_OP__APPEND, elem, len, id);
}

int statesrv_send_add(statesrv *c, const statesrv_key *k, int64_t delta, uint64_t *id)
{
    uint8_t operand[SV_COUNTER_SIZE];
    sv_i64_put(operand, delta);
    return send_merge(c, k, STATESRV__V1__MERGE_OP__ADD_I64, operand, sizeof(operand), id);
}

int statesrv_flush(statesrv *c)
{
    if (!c)
        return STATESRV_ERR_USAGE;
    if (c->dead)
        return c->dead;
    int rc = pump(c, 0);
    return rc ? rc : ok(c);
}

size_t statesrv_pending(const statesrv *c)
{
    return c ? c->pending : 0;
}

int statesrv_recv(statesrv *c, statesrv_reply *r)
{
    if (!c || !r)
        return STATESRV_ERR_USAGE;
    if (c->dead)
        return c->dead;
    if (!c->pending)
        return sv_client_fail(c, STATESRV_ERR_USAGE, "no replies pending");
    sv_client_drop_resp(c);
    memset(r, 0, sizeof(*r));
    int rc = take_reply(c);
    if (rc)
        return rc;
    const Statesrv__V1__Response *resp = c->resp;
    int st = status_code(resp->status);
    if (st < 0)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "unknown status %d: %s", (int)resp->status,
                             status_message(resp));
    r->id = resp->id;
    r->status = st;
    r->message = status_message(resp);
    if (st != STATESRV_OK)
        return ok(c);
    if ((int)resp->result_case != c->resp_expect)
        return sv_client_die(c, STATESRV_ERR_PROTOCOL, "reply carries result %d, expected %d",
                             (int)resp->result_case, c->resp_expect);
    switch (resp->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_GET:
        r->value = resp->get->value.len ? (const void *)resp->get->value.data : "";
        r->value_len = resp->get->value.len;
        r->kind = (int)resp->get->kind;
        r->found = 1;
        break;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        r->found = resp->delete_->found ? 1 : 0;
        break;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        r->counter = resp->merge->counter;
        break;
    default:
        break;
    }
    return ok(c);
}

/* --- value helpers ------------------------------------------------------ */

int statesrv_list_next(const void *list, size_t len, size_t *offset, const void **elem,
                       size_t *elem_len)
{
    if (!offset || !elem || !elem_len || (!list && len))
        return -1;
    const uint8_t *e;
    int rc = sv_list_next(list, len, offset, &e, elem_len);
    if (rc == 1) {
        *elem = e;
        return 1;
    }
    return rc == 0 ? 0 : -1;
}

int statesrv_counter_decode(const void *data, size_t len, int64_t *out)
{
    if (!data || !out || len != SV_COUNTER_SIZE)
        return STATESRV_INVALID_ARGUMENT;
    *out = sv_i64_get(data);
    return STATESRV_OK;
}

int statesrv_read_token_file(const char *path, char *out, size_t cap)
{
    if (!path || !out || cap < 2)
        return STATESRV_ERR_USAGE;
    FILE *f = fopen(path, "r");
    if (!f) {
        memset(out, 0, cap);
        return STATESRV_ERR_USAGE;
    }
    size_t n = 0;
    int ch;
    while ((ch = getc(f)) != EOF && ch != '\n' && ch != '\r') {
        if (n + 1 >= cap) {
            n = 0; /* too long: not a token */
            break;
        }
        out[n++] = (char)ch;
    }
    fclose(f);
    out[n] = '\0';
    if (n == 0) {
        memset(out, 0, cap);
        return STATESRV_ERR_USAGE;
    }
    return STATESRV_OK;
}

uint32_t statesrv_key_group(const void *key, size_t len, uint32_t key_groups)
{
    if (key_groups == 0 || (!key && len))
        return 0;
    return sv_key_group_of(key, len, key_groups);
}

void statesrv_value_free(statesrv_value *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof(*v));
}

void statesrv_values_free(statesrv_value *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        statesrv_value_free(&v[i]);
}

void statesrv_free(void *p)
{
    free(p);
}
