/* The loop: listeners (TCP and Unix socket), signals, the per-iteration
 * group commit, and graceful shutdown. */
#include "server.h"
#include "checkpoint.h"
#include "metrics.h"
#include "sv_error.h"
#include "sv_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_MS 10000
#define TTL_SWEEP_TICK_MS 20 /* the TTL sweep runs a slice this often */
#define LISTEN_BACKLOG 511

uint64_t sv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_tcp_connection(uv_stream_t *listener, int status)
{
    struct sv_server *srv = listener->data;
    if (status < 0) {
        srv->conn_errors[SV_CERR_ACCEPT]++;
        sv_warn_limited("accept on %s failed: %s", srv->cfg->listen, uv_strerror(status));
        return;
    }
    sv_conn_accept(srv, listener, 0);
}

static void on_unix_connection(uv_stream_t *listener, int status)
{
    struct sv_server *srv = listener->data;
    if (status < 0) {
        srv->conn_errors[SV_CERR_ACCEPT]++;
        sv_warn_limited("accept on %s failed: %s", srv->cfg->unix_socket, uv_strerror(status));
        return;
    }
    sv_conn_accept(srv, listener, 1);
}

/* An active idle handle makes the next poll return at once; the check
 * callback then runs the requests still waiting. */
static void on_idle(uv_idle_t *h)
{
    struct sv_server *srv = h->data;
    if (!srv->ready_head)
        uv_idle_stop(h);
}

void sv_server_wake(struct sv_server *srv)
{
    if (!srv->backoff && !uv_is_closing((uv_handle_t *)&srv->idle))
        uv_idle_start(&srv->idle, on_idle);
}

static void on_retry(uv_timer_t *t)
{
    struct sv_server *srv = t->data;
    srv->backoff = 0;
    if (srv->ready_head)
        sv_server_wake(srv);
}

/* After poll, every iteration: run the requests that arrived. */
static void on_check(uv_check_t *h)
{
    struct sv_server *srv = h->data;
    if (srv->backoff)
        return;
    sv_batch_run_all(srv);
    if (srv->backoff) {
        /* The store could not start a transaction: retry later instead of
         * spinning. */
        uv_idle_stop(&srv->idle);
        uv_timer_start(&srv->retry_timer, on_retry, 100, 0);
        return;
    }
    /* More than one turn's worth waiting: keep the loop from blocking. */
    if (srv->ready_head)
        uv_idle_start(&srv->idle, on_idle);
}

/* "host:port" or "[v6]:port" into a socket address. */
int sv_server_parse_listen(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        snprintf(err, errlen, "listen = '%s': expected HOST:PORT", s);
        return SV_EINVAL;
    }
    size_t hlen = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "listen = '%s': bad host", s);
        return SV_EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "listen: bad port '%s'", colon + 1);
        return SV_EINVAL;
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "listen: cannot resolve '%s': %s", host, gai_strerror(rc));
        return SV_EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(ai);
    return 0;
}

int sv_server_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
    }
    return 0;
}

/* A socket file left by a crashed server is removed; one a live server
 * answers on is not. */
static int clear_stale_socket(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "unix_socket %s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "unix_socket %s exists and is not a socket", path);
        return SV_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int live = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    close(fd);
    if (live) {
        snprintf(err, errlen, "unix_socket %s: another server is listening there", path);
        return SV_EBUSY;
    }
    if (unlink(path) && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -errno;
    }
    sv_info("removed stale socket %s", path);
    return 0;
}

static int listen_unix(struct sv_server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg->unix_socket;
    struct sockaddr_un sun;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "unix_socket path is too long (at most %zu bytes)",
                 sizeof(sun.sun_path) - 1);
        return SV_EINVAL;
    }
    int rc = clear_stale_socket(path, err, errlen);
    if (rc)
        return rc;
    if ((rc = uv_pipe_init(srv->loop, &srv->unix_sock, 0))) {
        snprintf(err, errlen, "uv_pipe_init: %s", uv_strerror(rc));
        return rc;
    }
    srv->unix_sock.data = srv;
    srv->unix_open = 1;
    /* Create the socket with the configured mode from the start: no window
     * in which it is more open than asked. */
    mode_t old = umask((mode_t)(~srv->cfg->unix_socket_mode & 0777));
    rc = uv_pipe_bind(&srv->unix_sock, path);
    umask(old);
    if (rc) {
        snprintf(err, errlen, "cannot bind %s: %s", path, uv_strerror(rc));
        return rc;
    }
    chmod(path, srv->cfg->unix_socket_mode);
    if ((rc = uv_listen((uv_stream_t *)&srv->unix_sock, LISTEN_BACKLOG, on_unix_connection))) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
        return rc;
    }
    sv_info("listening on unix:%s (mode %04o)", path, srv->cfg->unix_socket_mode);
    return 0;
}

static int listen_tcp(struct sv_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = sv_server_parse_listen(srv->cfg->listen, &ss, err, errlen);
    if (rc)
        return rc;
    if ((rc = uv_tcp_init(srv->loop, &srv->tcp))) {
        snprintf(err, errlen, "uv_tcp_init: %s", uv_strerror(rc));
        return rc;
    }
    srv->tcp.data = srv;
    srv->tcp_open = 1;
    if ((rc = uv_tcp_bind(&srv->tcp, (struct sockaddr *)&ss, 0)) ||
        (rc = uv_listen((uv_stream_t *)&srv->tcp, LISTEN_BACKLOG, on_tcp_connection))) {
        snprintf(err, errlen, "cannot listen on %s: %s", srv->cfg->listen, uv_strerror(rc));
        return rc;
    }
    /* With port 0 the kernel picks one; say which (tests read this line). */
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    char host[INET6_ADDRSTRLEN + 2] = "?";
    int port = 0;
    if (uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&bound, &len) == 0)
        sv_server_addr_name(&bound, host, sizeof(host), &port);
    sv_info("listening on %s:%d", host, port);
    snprintf(srv->tcp_bound, sizeof(srv->tcp_bound), "%s:%d", host, port);
    return 0;
}

void sv_server_addr_name(const struct sockaddr_storage *ss, char *out, size_t cap, int *port)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ss, host, sizeof(host));
        *port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
        snprintf(out, cap, "%s", host);
    } else {
        uv_ip6_name((const struct sockaddr_in6 *)ss, host, sizeof(host));
        *port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
        snprintf(out, cap, "[%s]", host);
    }
}

/* The token a client must present in hello: the file's first line. */
static int load_token(struct sv_server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg->auth_token_file;
    if (!path[0])
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "auth_token_file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
        sv_warn("auth_token_file %s is readable by others (mode %04o); use 0600", path,
                (unsigned)(st.st_mode & 0777));
    char line[sizeof(srv->token) + 2];
    size_t n = 0;
    if (fgets(line, sizeof(line), f))
        n = strcspn(line, "\r\n");
    fclose(f);
    if (n == 0 || n >= sizeof(srv->token)) {
        snprintf(err, errlen,
                 "auth_token_file %s: the first line must hold the token (1..%zu "
                 "bytes)",
                 path, sizeof(srv->token) - 1);
        return SV_EINVAL;
    }
    memcpy(srv->token, line, n);
    srv->token_len = n;
    explicit_bzero(line, sizeof(line));
    return 0;
}

static void on_sweep(uv_timer_t *t)
{
    struct sv_server *srv = t->data;
    sv_conn_sweep(srv, sv_now_ms());
    /* Every 5 s: local readers (libstatesrv's statesrv_local) that died
     * inside a read transaction must not pin pages for ever. */
    if (++srv->sweeps % 10 == 0)
        sv_store_reader_check(srv->store);
}

int sv_server_probe_listen(const struct sv_config *cfg, char *err, size_t errlen)
{
    if (!cfg->listen[0])
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = sv_server_parse_listen(cfg->listen, &ss, err, errlen);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* the real bind will say */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as libuv binds */
    socklen_t len =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    rc = bind(fd, (struct sockaddr *)&ss, len) ? -errno : 0;
    close(fd);
    if (rc)
        snprintf(err, errlen, "listen %s: %s", cfg->listen, strerror(-rc));
    return rc;
}

int sv_server_check_exposure(const struct sv_config *cfg, char *err, size_t errlen)
{
    if (!cfg->listen[0] || cfg->auth_token_file[0] || cfg->allow_insecure_remote)
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = sv_server_parse_listen(cfg->listen, &ss, err, errlen);
    if (rc)
        return rc;
    if (sv_server_is_loopback(&ss))
        return 0;
    snprintf(err, errlen,
             "listen = %s is reachable from other hosts, and anyone who can connect can read and "
             "change all state: set auth_token_file, or allow_insecure_remote = yes to accept "
             "that",
             cfg->listen);
    return SV_EINVAL;
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void close_listeners(struct sv_server *srv)
{
    sv_metrics_stop(srv);
    if (srv->tcp_open) {
        srv->tcp_open = 0;
        close_if_open((uv_handle_t *)&srv->tcp);
    }
    if (srv->unix_open) {
        srv->unix_open = 0;
        close_if_open((uv_handle_t *)&srv->unix_sock);
        unlink(srv->cfg->unix_socket);
    }
}

void sv_server_conn_gone(struct sv_server *srv)
{
    if (!srv->stopping || srv->nconns > 0)
        return;
    /* The last connection is gone: close the rest and let uv_run return.
     * Closing the signal handles restores the default action; a late signal
     * must not kill us while the store is being closed, so the signals are
     * held while they switch to "ignore". */
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    close_listeners(srv);
    close_if_open((uv_handle_t *)&srv->sigterm);
    close_if_open((uv_handle_t *)&srv->sigint);
    close_if_open((uv_handle_t *)&srv->check);
    close_if_open((uv_handle_t *)&srv->idle);
    close_if_open((uv_handle_t *)&srv->stop_timer);
    close_if_open((uv_handle_t *)&srv->retry_timer);
    close_if_open((uv_handle_t *)&srv->sweep_timer);
    close_if_open((uv_handle_t *)&srv->ckpt_timer);
    close_if_open((uv_handle_t *)&srv->ttl_timer);
    sv_checkpoints_close_handles(srv->ckpt);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void on_stop_timeout(uv_timer_t *t)
{
    struct sv_server *srv = t->data;
    sv_warn("shutdown: %u connection(s) did not finish in %d ms; closing them", srv->nconns,
            STOP_TIMEOUT_MS);
    for (struct sv_conn *c = srv->all_head; c; c = c->all_next) {
        /* Replies still owed are lost: say so in the exit status. A
         * connection only lingering for its peer's EOF loses nothing. */
        if (sv_conn_output(c) || sv_frame_reader_ready(&c->in) || c->fate == SV_FATE_AWAIT)
            srv->exit_code = 1;
        sv_conn_close(c);
    }
}

static void begin_shutdown(struct sv_server *srv, int signum)
{
    if (srv->stopping) {
        sv_warn("second signal %d: closing every connection now", signum);
        on_stop_timeout(&srv->stop_timer);
        return;
    }
    srv->stopping = 1;
    sv_info("signal %d: shutting down (%u connection(s) to finish)", signum, srv->nconns);
    sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
    sv_checkpoints_cancel(srv->ckpt);
    close_listeners(srv);
    /* Answer what was already read, then close each connection. */
    for (struct sv_conn *c = srv->all_head; c; c = c->all_next) {
        if (c->state != SV_CONN_OPEN)
            continue;
        sv_conn_stop_reading(c);
        if (sv_frame_reader_ready(&c->in) || c->fate == SV_FATE_AWAIT)
            continue; /* the batch (or the job) says goodbye after the last reply */
        sv_conn_fail(c, SV_STATUS_UNAVAILABLE, "server is shutting down");
    }
    uv_timer_start(&srv->stop_timer, on_stop_timeout, STOP_TIMEOUT_MS, 0);
    if (srv->ready_head)
        uv_idle_start(&srv->idle, on_idle);
    sv_server_conn_gone(srv);
}

/* The TTL sweep: a slice of each tick, between group commits (none is open
 * in a timer's callback). Its share follows what it finds, as Redis's
 * active expiry does: ttl_sweep_budget percent while few of the entries it
 * meets have expired, up to ten times that (at most 50 %) while a quarter
 * or more have (sweep_yield: a moving average of that fraction), so that a
 * store churning through short-lived keys does not fill up with dead ones
 * while one whose entries live long pays the base share or nothing. */
static void on_ttl_timer(uv_timer_t *t)
{
    struct sv_server *srv = t->data;
    if (srv->stopping || sv_store_in_txn(srv->store) || sv_checkpoints_restoring(srv->ckpt))
        return;
    double mult = 1 + (srv->sweep_yield >= 0.25 ? 9 : 36 * srv->sweep_yield),
           pct = srv->cfg->ttl_sweep_budget * mult;
    if (pct > 50)
        pct = 50;
    struct sv_store_sweep_stats before, after;
    sv_store_sweep_stats(srv->store, &before);
    uint64_t expired = 0, budget_ns = (uint64_t)(pct * TTL_SWEEP_TICK_MS * 1e6 / 100);
    int rc = sv_store_sweep(srv->store, budget_ns, &expired);
    if (rc) {
        static struct sv_log_limit limit;
        sv_log_limited(&limit, 1, SV_LOG_WARN, "ttl sweep: %s", sv_strerror(rc));
    }
    sv_store_sweep_stats(srv->store, &after);
    uint64_t visited = after.visited - before.visited;
    if (!visited)
        srv->sweep_yield = 0; /* asleep */
    else
        /* expired counts list elements too: a fraction of entries, at most 1 */
        srv->sweep_yield =
            0.7 * srv->sweep_yield + 0.3 * (expired >= visited ? 1 : (double)expired / visited);
}

/* checkpoint_interval: a checkpoint of the server's own, unless one runs or
 * waits (a coordinator's, or the last tick's still being written), a
 * restore runs, or the server is stopping. Between batches no transaction
 * is open, so the cut holds exactly the acknowledged writes. */
static void on_checkpoint_timer(uv_timer_t *t)
{
    struct sv_server *srv = t->data;
    if (srv->stopping || sv_store_in_txn(srv->store))
        return;
    if (sv_checkpoints_busy(srv->ckpt)) {
        sv_debug("checkpoint_interval: a checkpoint or restore is running; this tick is skipped");
        return;
    }
    char msg[512];
    int rc = sv_checkpoints_queue_snapshot(srv->ckpt, NULL, 0, 0, 0, 0, 0, msg, sizeof(msg));
    if (rc) {
        sv_warn("checkpoint_interval: cannot take a checkpoint: %s", msg);
        return;
    }
    sv_checkpoints_start_queued(srv->ckpt);
}

static void on_signal(uv_signal_t *h, int signum)
{
    begin_shutdown(h->data, signum);
}

int sv_server_init(struct sv_server *srv, uv_loop_t *loop, const struct sv_config *cfg,
                   struct sv_store *store, const struct sv_startup_restore *restore, char *err,
                   size_t errlen)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->store = store;
    srv->started_ms = sv_now_ms();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    srv->started_unix_s = (double)wall.tv_sec + (double)(wall.tv_nsec / 1000000) / 1000.0;
    sv_arena_init(&srv->arena, 256 * 1024);
    int rc = load_token(srv, err, errlen);
    if (rc)
        return rc;
    if ((rc = sv_checkpoints_new(srv, &srv->ckpt, err, errlen)))
        return rc;
    if (restore && restore->nsources &&
        (rc = sv_checkpoints_restore_now(srv->ckpt, restore->sources, restore->nsources,
                                         restore->has_range, restore->first, restore->last, err,
                                         errlen)))
        return rc;

    uv_check_init(loop, &srv->check);
    srv->check.data = srv;
    uv_check_start(&srv->check, on_check);
    uv_idle_init(loop, &srv->idle);
    srv->idle.data = srv;
    uv_timer_init(loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    uv_timer_init(loop, &srv->retry_timer);
    srv->retry_timer.data = srv;
    uv_timer_init(loop, &srv->sweep_timer);
    srv->sweep_timer.data = srv;
    uv_timer_start(&srv->sweep_timer, on_sweep, 500, 500);
    uv_timer_init(loop, &srv->ttl_timer);
    srv->ttl_timer.data = srv;
    if (cfg->ttl_sweep_budget)
        uv_timer_start(&srv->ttl_timer, on_ttl_timer, TTL_SWEEP_TICK_MS, TTL_SWEEP_TICK_MS);
    uv_timer_init(loop, &srv->ckpt_timer);
    srv->ckpt_timer.data = srv;
    if (cfg->checkpoint_interval) {
        uint64_t ms = (uint64_t)cfg->checkpoint_interval * 1000;
        uv_timer_start(&srv->ckpt_timer, on_checkpoint_timer, ms, ms);
    }
    uv_unref((uv_handle_t *)&srv->check);
    uv_signal_init(loop, &srv->sigterm);
    srv->sigterm.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &srv->sigint);
    srv->sigint.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    if (cfg->listen[0] && (rc = listen_tcp(srv, err, errlen)))
        return rc;
    if (cfg->unix_socket[0] && (rc = listen_unix(srv, err, errlen)))
        return rc;
    if ((rc = sv_metrics_start(srv, err, errlen)))
        return rc;
    return 0;
}

int sv_server_run(struct sv_server *srv)
{
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return srv->exit_code;
}

void sv_server_free(struct sv_server *srv)
{
    /* After a failed init the handles still need closing before the loop
     * can be closed. */
    srv->stopping = 1;
    sv_server_conn_gone(srv);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    sv_checkpoints_free(srv->ckpt);
    srv->ckpt = NULL;
    free(srv->batch);
    sv_arena_free(&srv->arena);
}
