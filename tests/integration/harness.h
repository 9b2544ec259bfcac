/* Integration test harness: a real statesrvd process on an ephemeral
 * loopback port and a Unix socket in a mkdtemp directory. */
#ifndef SV_TEST_HARNESS_H
#define SV_TEST_HARNESS_H

#include "statesrv.pb-c.h"

#include <check.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

struct ts {
    pid_t pid;
    char dir[64];        /* temp dir: data/, checkpoints/, sock, log */
    char tcp_addr[64];   /* "127.0.0.1:PORT" */
    char unix_addr[128]; /* "unix:/tmp/.../sock" */
    char log[128];
    int port;
    char conf[160];           /* ts_start_with_config's file */
    const char *conf_args[3]; /* {"--config", conf, NULL} */
};

/* Makes a fresh temp dir and starts statesrvd in it with extra flags
 * (NULL-terminated, may be NULL). Fails the test if it does not come up. */
void ts_start(struct ts *s, const char *const *extra);
/* ts_start with a config file holding `text` (written in the new dir);
 * ts_restart(s, ts_config_args(s)) restarts with it. */
void ts_start_with_config(struct ts *s, const char *text);
const char *const *ts_config_args(struct ts *s);
/* ts_start_with_config with the text formatted printf-style. */
void ts_start_with_configf(struct ts *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes an auth token file (mode 0600) holding token and a newline; its
 * path goes to path (cap bytes). Remove it with unlink. */
void ts_write_token(char *path, size_t cap, const char *token);
/* Mounts a tmpfs of `size` ("24m") over s->dir/data (the server stopped).
 * 0, or -1 when no tmpfs can be mounted here (the test should skip). */
int ts_mount_data_tmpfs(struct ts *s, const char *size);
/* Starts a server whose data directory is a fresh tmpfs of `size`, with
 * these config lines. 0, or -1 when no tmpfs can be mounted (skip the
 * test). Unmount with ts_unmount_data after stopping the server. */
int ts_start_on_tmpfs(struct ts *s, const char *size, const char *conf_text);
void ts_unmount_data(struct ts *s);
/* The server runs under valgrind (SV_TEST_SLOW) or a sanitizer
 * (SV_SANITIZE): memory and latency figures are not its own. */
int ts_slow(void);
int ts_sanitized(void);
/* A monotonic clock in milliseconds. */
long ts_now_ms(void);
/* Starts again in the same dir (after ts_stop/ts_kill). */
void ts_restart(struct ts *s, const char *const *extra);
/* Runs statesrvd in s->dir to completion with the given flags (expecting it
 * to refuse to start); returns its exit status and leaves stderr in s->log. */
int ts_run_expect_exit(struct ts *s, const char *const *extra);
/* SIGTERM, wait (bounded); returns the exit status (or -1). */
int ts_stop(struct ts *s);
/* SIGKILL and reap. */
void ts_kill(struct ts *s);
/* Stops if running and removes the directory. */
void ts_cleanup(struct ts *s);
/* 1 if the log contains the text. */
int ts_log_contains(const struct ts *s, const char *text);

/* A C string as protobuf bytes (state names and restore sources are bytes
 * on the wire). The string must outlive the message. */
static inline ProtobufCBinaryData pb_str(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

/* Raw protocol access for hostile-input tests. */
int raw_connect_tcp(const struct ts *s);
int raw_connect_unix(const struct ts *s);
void raw_send(int fd, const void *data, size_t n);
/* Sends one frame holding `msg`. */
void raw_send_msg(int fd, const ProtobufCMessage *msg);
/* Reads one Response (free with statesrv__v1__response__free_unpacked).
 * Returns NULL on EOF. Fails the test on timeout. */
Statesrv__V1__Response *raw_recv(int fd, int timeout_ms);
/* 1 if the peer closed (EOF or reset) within timeout_ms. */
int raw_wait_closed(int fd, int timeout_ms);

/* Runs a command line with sh -c, capturing stdout into out (NUL-terminated)
 * and returning the exit status. */
int run_cmd(const char *cmd, char *out, size_t outlen);

const char *statesrvd_path(void);
const char *statectl_path(void);

/* Resident set size of a process, KiB (from /proc). */
long proc_rss_kib(pid_t pid);

#endif
