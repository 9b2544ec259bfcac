#include "harness.h"
#include "sv_frame.h"
#include "sv_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *statesrvd_path(void)
{
    const char *p = getenv("STATESRVD");
    return p ? p : "build/statesrvd";
}

const char *statectl_path(void)
{
    const char *p = getenv("STATECTL");
    return p ? p : "build/statectl";
}

int ts_log_contains(const struct ts *s, const char *text)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static pid_t spawn(struct ts *s, const char *const *extra, int with_listen)
{
    char data[128], ckpt[128], sock[128];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoints", s->dir);
    snprintf(sock, sizeof(sock), "%s/sock", s->dir);
    const char *argv[64];
    int n = 0;
    argv[n++] = statesrvd_path();
    if (with_listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
        argv[n++] = "--unix";
        argv[n++] = sock;
    }
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--checkpoint-dir";
    argv[n++] = ckpt;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Waits for "listening on 127.0.0.1:PORT" in the log. */
static void wait_ready(struct ts *s)
{
    long deadline = ts_now_ms() + 10000;
    while (ts_now_ms() < deadline) {
        FILE *f = fopen(s->log, "r");
        char line[2048];
        int ready = 0;
        while (f && fgets(line, sizeof(line), f)) {
            const char *p = strstr(line, "listening on 127.0.0.1:");
            if (p)
                s->port = atoi(p + strlen("listening on 127.0.0.1:"));
            if (strstr(line, " ready (pid"))
                ready = 1;
        }
        if (f)
            fclose(f);
        if (ready && s->port > 0) {
            snprintf(s->tcp_addr, sizeof(s->tcp_addr), "127.0.0.1:%d", s->port);
            snprintf(s->unix_addr, sizeof(s->unix_addr), "unix:%s/sock", s->dir);
            return;
        }
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            ck_abort_msg("statesrvd exited during start-up (see %s)", s->log);
        }
        usleep(5000);
    }
    ck_abort_msg("statesrvd did not become ready in 10 s (see %s)", s->log);
}

void ts_restart(struct ts *s, const char *const *extra)
{
    s->port = 0;
    truncate(s->log, 0);
    s->pid = spawn(s, extra, 1);
    wait_ready(s);
}

const char *const *ts_config_args(struct ts *s)
{
    s->conf_args[0] = "--config";
    s->conf_args[1] = s->conf;
    s->conf_args[2] = NULL;
    return s->conf_args;
}

void ts_start_with_config(struct ts *s, const char *text)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/svit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    memset(s, 0, sizeof(*s));
    memcpy(s->dir, dir, sizeof(dir));
    snprintf(s->log, sizeof(s->log), "%s/statesrvd.log", s->dir);
    snprintf(s->conf, sizeof(s->conf), "%s/test.conf", s->dir);
    FILE *f = fopen(s->conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ts_restart(s, ts_config_args(s));
}

void ts_start_with_configf(struct ts *s, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ts_start_with_config(s, text);
}

void ts_write_token(char *path, size_t cap, const char *token)
{
    static unsigned seq;
    snprintf(path, cap, "/tmp/svit-token-%d-%u", (int)getpid(), seq++);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, token, strlen(token)), (ssize_t)strlen(token));
    ck_assert_int_eq(write(fd, "\n", 1), 1);
    close(fd);
}

int ts_mount_data_tmpfs(struct ts *s, const char *size)
{
    char mnt[256], opts[64];
    snprintf(mnt, sizeof(mnt), "%s/data", s->dir);
    snprintf(opts, sizeof(opts), "size=%s", size);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts)) {
        fprintf(stderr, "SKIPPED: cannot mount a tmpfs on %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    return 0;
}

int ts_start_on_tmpfs(struct ts *s, const char *size, const char *conf_text)
{
    ts_start(s, NULL);
    ck_assert_int_eq(ts_stop(s), 0);
    if (ts_mount_data_tmpfs(s, size))
        return -1;
    snprintf(s->conf, sizeof(s->conf), "%s/test.conf", s->dir);
    FILE *f = fopen(s->conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(conf_text, f);
    fclose(f);
    ts_restart(s, ts_config_args(s));
    return 0;
}

void ts_unmount_data(struct ts *s)
{
    char mnt[256];
    snprintf(mnt, sizeof(mnt), "%s/data", s->dir);
    umount(mnt);
}

int ts_slow(void)
{
    const char *v = getenv("SV_TEST_SLOW");
    return v && *v;
}

int ts_sanitized(void)
{
    const char *v = getenv("SV_SANITIZE");
    return v && *v;
}

long ts_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

void ts_start(struct ts *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/svit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->log, sizeof(s->log), "%s/statesrvd.log", s->dir);
    ts_restart(s, extra);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    long deadline = ts_now_ms() + timeout_ms;
    int status;
    while (ts_now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(2000);
    }
    return -1;
}

int ts_run_expect_exit(struct ts *s, const char *const *extra)
{
    truncate(s->log, 0);
    pid_t pid = spawn(s, extra, 0);
    int rc = wait_exit(pid, 10000);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return rc;
}

int ts_stop(struct ts *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int rc = wait_exit(s->pid, 15000);
    if (rc < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    return rc;
}

void ts_kill(struct ts *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void ts_cleanup(struct ts *s)
{
    /* Every server a test leaves running must shut down cleanly: exit 0
     * (LeakSanitizer and UBSan make it non-zero) and no sanitizer report. */
    int running = s->pid > 0;
    int rc = running ? ts_stop(s) : 0;
    int dirty = ts_log_contains(s, "Sanitizer") || ts_log_contains(s, "runtime error:");
    if ((running && rc != 0) || dirty) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "cat '%s' >&2", s->log);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot show %s\n", s->log);
    }
    ck_assert_msg(!running || rc == 0, "statesrvd exited with %d at cleanup (log above)", rc);
    ck_assert_msg(!dirty, "sanitizer report in the statesrvd log (above)");
    if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", s->dir);
    }
}

int raw_connect_tcp(const struct ts *s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int raw_connect_unix(const struct ts *s)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", s->dir);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

void raw_send(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

void raw_send_msg(int fd, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n + 4);
    ck_assert_ptr_nonnull(buf);
    sv_frame_header_put(buf, (uint32_t)n);
    protobuf_c_message_pack(msg, buf + 4);
    raw_send(fd, buf, n + 4);
    free(buf);
}

/* Reads exactly n bytes; 0 ok, 1 EOF, -1 timeout/error. */
static int read_full(int fd, uint8_t *p, size_t n, long deadline)
{
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long left = deadline - ts_now_ms();
        if (left <= 0)
            return -1;
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0)
            return 1;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? 1 : -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

Statesrv__V1__Response *raw_recv(int fd, int timeout_ms)
{
    long deadline = ts_now_ms() + timeout_ms;
    uint8_t hdr[4];
    int rc = read_full(fd, hdr, 4, deadline);
    if (rc == 1)
        return NULL;
    ck_assert_msg(rc == 0, "timed out waiting for a response");
    uint32_t n = sv_frame_header_get(hdr);
    ck_assert_uint_le(n, 64u << 20);
    uint8_t *buf = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(read_full(fd, buf, n, deadline), 0);
    Statesrv__V1__Response *r = NULL;
    ck_assert_int_eq(sv_msg_unpack_response(buf, n, NULL, &r), 0);
    free(buf);
    return r;
}

int raw_wait_closed(int fd, int timeout_ms)
{
    long deadline = ts_now_ms() + timeout_ms;
    uint8_t junk[4096];
    for (;;) {
        int rc = read_full(fd, junk, 1, deadline);
        if (rc == 1)
            return 1;
        if (rc < 0)
            return 0;
    }
}

int run_cmd(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = 0;
    if (out && outlen) {
        size_t r;
        while (n + 1 < outlen && (r = fread(out + n, 1, outlen - 1 - n, p)) > 0)
            n += r;
        out[n] = '\0';
    }
    char sink[4096];
    while (fread(sink, 1, sizeof(sink), p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    fclose(f);
    return kib;
}
