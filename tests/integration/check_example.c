/* The example operator (client/examples/wordcount) end to end: an
 * uninterrupted run prints the counts the test computes on its own; a run
 * killed after two checkpoints and resumed with --resume prints exactly the
 * same bytes. Two failures: the worker dies (its statesrvd lives on, holding
 * adds made after the last checkpoint), and the sidecar dies (statesrvd
 * SIGKILLed with its data directory lost; the checkpoints survive, as they
 * would on durable storage; the worker fails with it and both restart). */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RECORDS 3000
#define EVERY 500    /* --checkpoint-every */
#define WINDOW 60    /* --window */
#define KILL_AT 1300 /* records fed before the failure: checkpoints at 500 and 1000 */
#define T0 1700000000u
#define MAX_WINDOWS 64

static const char *const vocab[] = {
    "alpha",  "bravo",  "charlie", "delta", "echo",    "foxtrot",  "golf",    "hotel",
    "india",  "juliet", "kilo",    "lima",  "mike",    "november", "oscar",   "papa",
    "quebec", "romeo",  "sierra",  "tango", "uniform", "victor",   "whiskey", "xray",
    "yankee", "zulu",   "42",      "7up",   "state",   "stream",   "window",  "word",
};
#define NWORDS (sizeof(vocab) / sizeof(vocab[0]))

static struct ts base, srv;
static pid_t worker;
static char work[64];

/* The input: RECORDS lines; line_end[i] is where record i+1 starts. */
static char *input;
static size_t line_end[RECORDS];
static long words_before[RECORDS + 1]; /* words in records [0, i) */
static char *expected;

static void teardown(void)
{
    if (worker > 0) {
        kill(worker, SIGKILL);
        waitpid(worker, NULL, 0);
        worker = 0;
    }
    ts_cleanup(&base);
    ts_cleanup(&srv);
    memset(&base, 0, sizeof(base));
    memset(&srv, 0, sizeof(srv));
    if (work[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", work);
        work[0] = '\0';
    }
    free(input);
    free(expected);
    input = expected = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint32_t next_rand(uint32_t *rng)
{
    *rng = *rng * 1103515245u + 12345u;
    return (*rng >> 16) & 0x7fff;
}

/* Builds a deterministic input (event times a little out of order; words
 * capitalised and punctuated at random; some empty records and records with
 * a time only) and, independently of wordcount, the output it must print. */
static void make_input(void)
{
    static const char *const sep[] = {" ", " ", "\t", " - ", ", "};
    static const char *const tail[] = {"", "", "", ".", "!", "?"};
    static int counts[MAX_WINDOWS][NWORDS];
    memset(counts, 0, sizeof(counts));
    const uint32_t w0 = T0 - T0 % WINDOW;
    size_t cap = (size_t)RECORDS * 128, n = 0;
    input = malloc(cap);
    ck_assert_ptr_nonnull(input);
    uint32_t rng = 12345;
    for (int i = 0; i < RECORDS; i++) {
        uint32_t t = T0 + (uint32_t)i + next_rand(&rng) % 30;
        uint32_t w = (t - t % WINDOW - w0) / WINDOW;
        ck_assert_uint_lt(w, MAX_WINDOWS);
        int kind = i % 97 == 13 ? 0 : i % 101 == 7 ? 1 : 2; /* empty, time only, text */
        int nw = kind == 2 ? 1 + (int)(next_rand(&rng) % 8) : 0;
        if (kind > 0)
            n += (size_t)sprintf(input + n, "%u", t);
        for (int k = 0; k < nw; k++) {
            size_t v = next_rand(&rng) % NWORDS;
            char token[32];
            strcpy(token, vocab[v]);
            if (next_rand(&rng) % 4 == 0 && token[0] >= 'a')
                token[0] = (char)(token[0] - 'a' + 'A');
            const char *before = sep[next_rand(&rng) % (k ? 5 : 3)]; /* after the time: blank */
            const char *after = tail[next_rand(&rng) % 6];
            n += (size_t)sprintf(input + n, "%s%s%s", before, token, after);
            counts[w][v]++;
        }
        input[n++] = '\n';
        line_end[i] = n;
        words_before[i + 1] = words_before[i] + nw;
        ck_assert_uint_lt(n + 128, cap);
    }
    input[n] = '\0';

    /* Windows ascending, then words in byte order. */
    const char *sorted[NWORDS];
    for (size_t v = 0; v < NWORDS; v++)
        sorted[v] = vocab[v];
    qsort(sorted, NWORDS, sizeof(sorted[0]), cmp_str);
    expected = malloc((size_t)MAX_WINDOWS * NWORDS * 40);
    ck_assert_ptr_nonnull(expected);
    size_t e = 0;
    for (uint32_t w = 0; w < MAX_WINDOWS; w++)
        for (size_t k = 0; k < NWORDS; k++) {
            size_t v = 0;
            while (vocab[v] != sorted[k])
                v++;
            if (counts[w][v])
                e += (size_t)sprintf(expected + e, "%u %s %d\n", w0 + w * WINDOW, sorted[k],
                                     counts[w][v]);
        }
    expected[e] = '\0';

    snprintf(work, sizeof(work), "/tmp/svwc-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work));
    char path[128];
    snprintf(path, sizeof(path), "%s/input", work);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(input, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static const char *wordcount_path(void)
{
    static char path[512];
    const char *dir = getenv("EXAMPLES_DIR");
    ck_assert_msg(dir && *dir, "EXAMPLES_DIR is not set: run this through `make test-integration`, "
                               "which builds the examples and sets it");
    snprintf(path, sizeof(path), "%s/wordcount", dir);
    ck_assert_msg(access(path, X_OK) == 0, "%s: %s", path, strerror(errno));
    return path;
}

/* Whole file as a string (caller frees). */
static char *slurp(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", work, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            ck_assert_ptr_nonnull(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int file_contains(const char *name, const char *text)
{
    char *s = slurp(name);
    int found = strstr(s, text) != NULL;
    free(s);
    return found;
}

/* "" for the blocking client, "--async" for the asynchronous one: every
 * test runs in both. */
static const char *mode = "";

/* Runs wordcount to completion on the whole input; stdout and stderr go to
 * work/<out> and work/<out>.err. Returns its exit status. */
static int run_wordcount(const char *addr, const char *flags, const char *out)
{
    char cmd[1024], sink[16];
    snprintf(cmd, sizeof(cmd),
             "'%s' -a '%s' --window %d --checkpoint-every %d %s %s < '%s/input' > '%s/%s' "
             "2> '%s/%s.err'",
             wordcount_path(), addr, WINDOW, EVERY, mode, flags, work, work, out, work, out);
    return run_cmd(cmd, sink, sizeof(sink));
}

/* The uninterrupted run, on a server of its own: must print what the test
 * computed. */
static void uninterrupted_run(void)
{
    wordcount_path(); /* fails the test before it makes anything */
    make_input();
    ts_start(&base, NULL);
    int rc = run_wordcount(base.tcp_addr, "", "base.out");
    char *err = slurp("base.out.err");
    ck_assert_msg(rc == 0, "wordcount exited with %d: %s", rc, err);
    free(err);
    ck_assert_msg(file_contains("base.out.err", "checkpoint 6 at record 3000"),
                  "no checkpoint every %d records", EVERY);
    char *out = slurp("base.out");
    ck_assert_msg(strcmp(out, expected) == 0, "the uninterrupted run counts wrong");
    free(out);
    ts_cleanup(&base);
    memset(&base, 0, sizeof(base));
}

/* Starts wordcount reading from a pipe; returns the pipe's write end. */
static int spawn_worker(const char *addr, const char *out)
{
    const char *path = wordcount_path();
    char window[16], every[16], outp[128], errp[128];
    snprintf(window, sizeof(window), "%d", WINDOW);
    snprintf(every, sizeof(every), "%d", EVERY);
    snprintf(outp, sizeof(outp), "%s/%s", work, out);
    snprintf(errp, sizeof(errp), "%s/%s.err", work, out);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    worker = fork();
    ck_assert_int_ge(worker, 0);
    if (worker == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(p[0], 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        close(p[0]);
        close(p[1]);
        char *args[] = {(char *)path,         "-a",  (char *)addr, "--window", window,
                        "--checkpoint-every", every, (char *)mode, NULL};
        if (!*mode)
            args[7] = NULL;
        execv(path, args);
        _exit(127);
    }
    close(p[0]);
    return p[1];
}

/* Writes input bytes [from, to) to the worker; 0, or -1 once it is gone. */
static int feed(int fd, size_t from, size_t to)
{
    while (from < to) {
        ssize_t w = write(fd, input + from, to - from);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        from += (size_t)w;
    }
    return 0;
}

/* Sum of every count in the live state, or -1 if it cannot be read. */
static long live_total(const char *addr)
{
    statesrv *c;
    if (statesrv_connect(addr, NULL, &c) != STATESRV_OK)
        return -1;
    statesrv_scan_options o = {.state = "wordcount", .mode = STATESRV_SCAN_STATE};
    statesrv_scan *s;
    long total = -1;
    if (statesrv_scan_open(c, &o, &s) == STATESRV_OK) {
        const statesrv_entry *e;
        int64_t v;
        total = 0;
        while (statesrv_scan_next(s, &e) == STATESRV_OK && e &&
               statesrv_counter_decode(e->value, e->value_len, &v) == STATESRV_OK)
            total += (long)v;
        statesrv_scan_close(s);
    }
    statesrv_close(c);
    return total;
}

/* Feeds the first KILL_AT records, then waits until the worker has taken
 * its checkpoint at record 1000 and the live state holds the adds of all
 * KILL_AT records: the 300 after the checkpoint are in statesrvd, not in
 * any checkpoint. A resume that kept them would count them twice. */
static int run_until_failure_point(const char *addr)
{
    int fd = spawn_worker(addr, "crash.out");
    ck_assert_int_eq(feed(fd, 0, line_end[KILL_AT - 1]), 0);
    long deadline = ts_now_ms() + 10000, total = -1;
    int checkpointed = 0;
    while (ts_now_ms() < deadline && !(checkpointed && total == words_before[KILL_AT])) {
        usleep(10000);
        checkpointed = file_contains("crash.out.err", "checkpoint 2 at record 1000");
        total = live_total(addr);
    }
    ck_assert_msg(checkpointed && !file_contains("crash.out.err", "checkpoint 3"),
                  "the worker did not checkpoint at record 1000 (and only there) in 10 s");
    ck_assert_msg(total == words_before[KILL_AT], "live state holds %ld words, expected %ld", total,
                  words_before[KILL_AT]);
    ck_assert_int_gt(total, words_before[1000]);
    return fd;
}

static int wait_worker(int timeout_ms)
{
    long deadline = ts_now_ms() + timeout_ms;
    int status;
    while (ts_now_ms() < deadline) {
        if (waitpid(worker, &status, WNOHANG) == worker) {
            worker = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(5000);
    }
    ck_abort_msg("wordcount did not exit within %d ms", timeout_ms);
    return -1;
}

/* Runs wordcount --resume on the whole input and compares its output with
 * the uninterrupted run's, byte for byte. */
static void resume_and_compare(const char *addr)
{
    int rc = run_wordcount(addr, "--resume", "resume.out");
    char *err = slurp("resume.out.err");
    ck_assert_msg(rc == 0, "wordcount --resume exited with %d: %s", rc, err);
    ck_assert_msg(strstr(err, "resumed from checkpoint 2 at record 1000"),
                  "did not resume from the checkpoint at record 1000: %s", err);
    free(err);
    char *base_out = slurp("base.out"), *out = slurp("resume.out");
    ck_assert_msg(strcmp(out, base_out) == 0,
                  "the resumed run's counts differ from the uninterrupted run's");
    free(base_out);
    free(out);
}

static void worker_killed_body(void)
{
    uninterrupted_run();
    ts_start(&srv, NULL);
    int fd = run_until_failure_point(srv.tcp_addr);
    kill(worker, SIGKILL);
    ck_assert_int_eq(wait_worker(5000), 128 + SIGKILL);
    close(fd);
    resume_and_compare(srv.tcp_addr);
}

static void sidecar_killed_body(void)
{
    uninterrupted_run();
    ts_start(&srv, NULL);
    int fd = run_until_failure_point(srv.tcp_addr);
    ts_kill(&srv);
    /* The worker fails at its next request; the rest of the input gets it
     * there (writes fail once it has exited). */
    feed(fd, line_end[KILL_AT - 1], line_end[RECORDS - 1]);
    close(fd);
    int rc = wait_worker(10000);
    ck_assert_msg(rc == 1, "wordcount exited with %d after losing statesrvd", rc);
    ck_assert_msg(!file_contains("crash.out.err", "checkpoint 3"), "checkpointed without a server");

    /* A new sidecar: the local data is gone, the checkpoints are not. */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/data'", srv.dir);
    ck_assert_int_eq(system(cmd), 0);
    ts_restart(&srv, NULL);
    resume_and_compare(srv.tcp_addr);
}

START_TEST(worker_killed)
{
    worker_killed_body();
}
END_TEST

START_TEST(sidecar_killed)
{
    sidecar_killed_body();
}
END_TEST

START_TEST(async_worker_killed)
{
    mode = "--async";
    worker_killed_body();
}
END_TEST

START_TEST(async_sidecar_killed)
{
    mode = "--async";
    sidecar_killed_body();
}
END_TEST

Suite *sv_suite_example(void)
{
    Suite *s = suite_create("example");
    TCase *tc = tcase_create("wordcount");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, worker_killed);
    tcase_add_test(tc, sidecar_killed);
    tcase_add_test(tc, async_worker_killed);
    tcase_add_test(tc, async_sidecar_killed);
    suite_add_tcase(s, tc);
    return s;
}
