/* Measures what a snapshot does to write throughput: PUT rate before, during
 * and after `statectl snapshot`, against a running statesrvd.
 *
 *   snapshot_impact ADDR STATECTL KEYS VALUE_BYTES SECONDS_PER_PHASE
 *
 * Preloads KEYS keys, then overwrites random keys with a pipeline of 256
 * for SECONDS_PER_PHASE before the snapshot, for as long as it runs, and in
 * three windows after it. Every reply's status is checked. */
#include "statesrv.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEPTH 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(statesrv *c, const char *what, int rc)
{
    fprintf(stderr, "snapshot_impact: %s: %s: %s\n", what, statesrv_strerror(rc),
            c ? statesrv_errmsg(c) : "");
    exit(1);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Fresh pseudo-random bytes (half of them letters), so checkpoints compress
 * like real data rather than like one repeated value. */
static void fill_value(char *val, size_t vlen)
{
    for (size_t i = 0; i < vlen; i += 8) {
        uint64_t r = next_rand();
        for (size_t b = 0; b < 8 && i + b < vlen; b++)
            val[i + b] = (char)(b & 1 ? 'a' + (r >> (8 * b)) % 26 : (r >> (8 * b)));
    }
}

/* Pipelined puts of random keys in [0, keys) until `until` (or until
 * stop_pid exits, when > 0). Returns ops per second. */
static double put_phase(statesrv *c, long keys, char *val, size_t vlen, double until,
                        pid_t stop_pid, int *child_status)
{
    char key[32];
    long done = 0;
    double t0 = now_s();
    /* FIXED_OPS: a fixed amount of work per phase (for instruction-count
     * profiles under callgrind), instead of a duration. */
    long fixed = getenv("FIXED_OPS") ? atol(getenv("FIXED_OPS")) : 0;
    for (;;) {
        for (int i = 0; i < DEPTH; i++) {
            snprintf(key, sizeof(key), "k%ld", (long)(next_rand() % (uint64_t)keys));
            fill_value((char *)val, vlen);
            statesrv_key k = {.state = "bench", .key = key, .key_len = strlen(key)};
            uint64_t id;
            int rc = statesrv_send_put(c, &k, val, vlen, &id);
            if (rc)
                die(c, "send_put", rc);
        }
        for (int i = 0; i < DEPTH; i++) {
            statesrv_reply r;
            int rc = statesrv_recv(c, &r);
            if (rc)
                die(c, "recv", rc);
            if (r.status)
                die(c, "put", r.status);
        }
        done += DEPTH;
        if (fixed && stop_pid <= 0) {
            if (done >= fixed)
                break;
        } else if (stop_pid > 0) {
            if (waitpid(stop_pid, child_status, WNOHANG) == stop_pid)
                break;
        } else if (now_s() >= until) {
            break;
        }
    }
    return (double)done / (now_s() - t0);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: snapshot_impact ADDR STATECTL KEYS VALUE_BYTES SECONDS\n");
        return 2;
    }
    const char *addr = argv[1], *statectl = argv[2];
    long keys = atol(argv[3]);
    size_t vlen = (size_t)atol(argv[4]);
    double secs = atof(argv[5]);
    statesrv_options o = {.io_timeout_ms = -1};
    statesrv *c;
    int rc = statesrv_connect(addr, &o, &c);
    if (rc)
        die(NULL, "connect", rc);
    char *val = malloc(vlen);
    for (size_t i = 0; i < vlen; i++)
        val[i] = (char)('a' + i % 26);

    double t0 = now_s();
    char key[32];
    for (long base = 0; base < keys; base += DEPTH) {
        long n = base + DEPTH > keys ? keys - base : DEPTH;
        for (long i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "k%ld", base + i);
            fill_value(val, vlen);
            statesrv_key k = {.state = "bench", .key = key, .key_len = strlen(key)};
            uint64_t id;
            if ((rc = statesrv_send_put(c, &k, val, vlen, &id)))
                die(c, "preload", rc);
        }
        for (long i = 0; i < n; i++) {
            statesrv_reply r;
            if ((rc = statesrv_recv(c, &r)) || (rc = r.status))
                die(c, "preload reply", rc);
        }
    }
    printf("preload: %ld keys x %zu B in %.1f s\n", keys, vlen, now_s() - t0);

    double before = put_phase(c, keys, val, vlen, now_s() + secs, 0, NULL);
    printf("PUT before snapshot: %.0f ops/s\n", before);

    pid_t pid = fork();
    if (pid == 0) {
        execl(statectl, statectl, "-a", addr, "snapshot", (char *)NULL);
        _exit(127);
    }
    double ts = now_s();
    int status = 0;
    double during = put_phase(c, keys, val, vlen, 0, pid, &status);
    double snap_s = now_s() - ts;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "snapshot_impact: statectl snapshot failed\n");
        return 1;
    }
    printf("PUT during snapshot: %.0f ops/s (snapshot took %.2f s)\n", during, snap_s);
    double worst = 0;
    int windows = getenv("AFTER_WINDOWS") ? atoi(getenv("AFTER_WINDOWS")) : 3;
    for (int w = 1; w <= windows; w++) {
        double after = put_phase(c, keys, val, vlen, now_s() + secs, 0, NULL);
        printf("PUT after snapshot, window %d: %.0f ops/s (%.2fx before)\n", w, after,
               after / before);
        if (w == 1 || after / before < worst)
            worst = after / before;
    }
    printf("RESULT before=%.0f during=%.0f worst_after_ratio=%.3f snapshot_s=%.2f\n", before,
           during, worst, snap_s);
    statesrv_close(c);
    free(val);
    return 0;
}
