/* The object store the S3 tests run against. See objstore.h. */
#include "objstore.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const char *versitygw_path(void)
{
    const char *p = getenv("VERSITYGW");
    return p && *p ? p : "build/tools/versitygw";
}

/* A port the kernel hands out now (free, most likely, a moment later). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

void objstore_restart(struct objstore *o)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", o->port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(versitygw_path(), "versitygw", "--access", OBJSTORE_ACCESS, "--secret",
              OBJSTORE_SECRET, "--port", addr, "--quiet", "posix", o->dir, (char *)NULL);
        fprintf(stderr, "exec %s: %s (run make test-s3, which builds it)\n", versitygw_path(),
                strerror(errno));
        _exit(127);
    }
    o->pid = pid;
    long deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        if (answers(o->port))
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            o->pid = 0;
            ck_abort_msg("versitygw exited during start-up (see %s)", o->log);
        }
        usleep(20000);
    }
    ck_abort_msg("versitygw did not answer on %s in 15 s (see %s)", addr, o->log);
}

void objstore_start(struct objstore *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->dir, sizeof(o->dir), "/tmp/svs3-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(o->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/" OBJSTORE_BUCKET, o->dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(o->log, sizeof(o->log), "%s.log", o->dir);
    snprintf(o->creds, sizeof(o->creds), "%s.creds", o->dir);
    FILE *f = fopen(o->creds, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", OBJSTORE_ACCESS,
            OBJSTORE_SECRET);
    fclose(f);
    chmod(o->creds, 0600);
    o->port = free_port();
    snprintf(o->endpoint, sizeof(o->endpoint), "http://127.0.0.1:%d", o->port);
    objstore_restart(o);
}

void objstore_freeze(struct objstore *o, int frozen)
{
    if (o->pid > 0)
        kill(o->pid, frozen ? SIGSTOP : SIGCONT);
}

void objstore_stop(struct objstore *o)
{
    if (o->pid <= 0)
        return;
    kill(o->pid, SIGCONT);
    kill(o->pid, SIGTERM);
    long deadline = now_ms() + 5000;
    int st;
    while (now_ms() < deadline && waitpid(o->pid, &st, WNOHANG) == 0)
        usleep(10000);
    if (waitpid(o->pid, &st, WNOHANG) == 0) {
        kill(o->pid, SIGKILL);
        waitpid(o->pid, &st, 0);
    }
    o->pid = 0;
}

void objstore_cleanup(struct objstore *o)
{
    objstore_stop(o);
    if (o->dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s'", o->dir, o->log, o->creds);
        if (system(cmd) != 0)
            fprintf(stderr, "objstore: could not remove %s\n", o->dir);
        o->dir[0] = '\0';
    }
}

void objstore_path(const struct objstore *o, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" OBJSTORE_BUCKET "/%s", o->dir, key);
}

int objstore_has(const struct objstore *o, const char *key)
{
    char path[1024];
    struct stat st;
    objstore_path(o, key, path, sizeof(path));
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
