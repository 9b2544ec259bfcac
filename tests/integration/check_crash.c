/* Crash consistency: client processes write through libstatesrv and record
 * every acknowledged write; statesrvd is killed with SIGKILL at random
 * moments and restarted; afterwards every acknowledged write is there and
 * every checkpoint directory verifies. Bounded: ~30 s per sync mode. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WRITERS 3
#define KILLS 5

static struct ts srv;

static void teardown(void)
{
    ts_cleanup(&srv);
}

static int stop_requested(const char *stopfile)
{
    return access(stopfile, F_OK) == 0;
}

/* Child: put w<n>-<i> for i = 0, 1, ...; after each OK, append i to the
 * ack log. Reconnects through every crash. Never returns. */
static void writer(int n, const char *addr, const char *ackpath, const char *stopfile)
{
    int log = open(ackpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0)
        _exit(2);
    statesrv_options o = {.connect_timeout_ms = 500, .io_timeout_ms = 2000};
    statesrv *c = NULL;
    long deadline = ts_now_ms() + 60000;
    for (long i = 0; !stop_requested(stopfile) && ts_now_ms() < deadline;) {
        if (!c && statesrv_connect(addr, &o, &c) != STATESRV_OK) {
            c = NULL;
            usleep(20000);
            continue;
        }
        char key[32], line[32];
        snprintf(key, sizeof(key), "w%d-%ld", n, i);
        statesrv_key k = {.state = "crash", .key = key, .key_len = strlen(key)};
        int rc = n == 0
                     ? statesrv_add(
                           c, &(statesrv_key){.state = "ctr", .key = key, .key_len = strlen(key)},
                           1, NULL)
                     : statesrv_put(c, &k, key, strlen(key));
        if (rc == STATESRV_OK) {
            int len = snprintf(line, sizeof(line), "%ld\n", i);
            if (write(log, line, (size_t)len) != len)
                _exit(3);
            i++;
        } else {
            /* The connection died with the server; the write may or may
             * not have happened and is not counted. The next attempt uses
             * a new key: retrying an add could apply it twice. */
            statesrv_close(c);
            c = NULL;
            i++;
        }
    }
    statesrv_close(c);
    close(log);
    _exit(0);
}

/* Child: a snapshot now and then, through the crashes. */
static void snapshotter(const char *addr, const char *stopfile)
{
    statesrv_options o = {.connect_timeout_ms = 500, .io_timeout_ms = 2000, .job_timeout_ms = 5000};
    statesrv *c = NULL;
    long deadline = ts_now_ms() + 60000;
    while (!stop_requested(stopfile) && ts_now_ms() < deadline) {
        if (!c && statesrv_connect(addr, &o, &c) != STATESRV_OK) {
            c = NULL;
            usleep(50000);
            continue;
        }
        statesrv_checkpoint_info *info = NULL;
        if (statesrv_snapshot(c, 0, 0, &info) == STATESRV_OK) {
            statesrv_checkpoint_info_free(info);
        } else {
            statesrv_close(c);
            c = NULL;
        }
        usleep(100000);
    }
    statesrv_close(c);
    _exit(0);
}

static void crash_run(const char *sync)
{
    const char *extra[] = {"--sync", sync, NULL};
    ts_start(&srv, extra);
    char stopfile[256], acks[WRITERS][256];
    snprintf(stopfile, sizeof(stopfile), "%s/stop", srv.dir);
    pid_t kids[WRITERS + 1];
    for (int n = 0; n < WRITERS; n++) {
        snprintf(acks[n], sizeof(acks[n]), "%s/acks-%d", srv.dir, n);
        if ((kids[n] = fork()) == 0)
            writer(n, srv.unix_addr, acks[n], stopfile);
    }
    if ((kids[WRITERS] = fork()) == 0)
        snapshotter(srv.unix_addr, stopfile);

    unsigned seed = (unsigned)getpid();
    for (int k = 0; k < KILLS; k++) {
        usleep((useconds_t)(150000 + rand_r(&seed) % 400000));
        ts_kill(&srv);
        ts_restart(&srv, extra);
    }
    usleep(200000);
    int fd = open(stopfile, O_WRONLY | O_CREAT, 0644);
    close(fd);
    for (int n = 0; n <= WRITERS; n++) {
        int status;
        ck_assert_int_eq(waitpid(kids[n], &status, 0), kids[n]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", n);
    }

    /* Every acknowledged write is there. */
    statesrv *c;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(srv.unix_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);
    long total = 0;
    for (int n = 0; n < WRITERS; n++) {
        FILE *f = fopen(acks[n], "r");
        ck_assert_ptr_nonnull(f);
        long i;
        while (fscanf(f, "%ld", &i) == 1) {
            char key[32];
            snprintf(key, sizeof(key), "w%d-%ld", n, i);
            statesrv_key k = {
                .state = n == 0 ? "ctr" : "crash", .key = key, .key_len = strlen(key)};
            statesrv_value v;
            int rc = statesrv_get(c, &k, &v);
            ck_assert_msg(rc == STATESRV_OK, "acknowledged %s lost (sync=%s)", key, sync);
            if (n == 0) { /* a counter acknowledged once is exactly 1 */
                int64_t x;
                ck_assert_int_eq(statesrv_counter_decode(v.data, v.len, &x), STATESRV_OK);
                ck_assert_int_eq(x, 1);
            }
            statesrv_value_free(&v);
            total++;
        }
        fclose(f);
    }
    statesrv_close(c);

    /* Every checkpoint directory that exists verifies (offline). */
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/checkpoints", srv.dir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        char manifest[1024];
        snprintf(manifest, sizeof(manifest), "%s/%s/MANIFEST", dir, e->d_name);
        /* A chk-<id> without MANIFEST is no checkpoint: a deleted one whose
         * data a later checkpoint's chain still names. */
        if (strncmp(e->d_name, "chk-", 4) != 0 || access(manifest, F_OK) != 0)
            continue;
        char cmd[768];
        snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/%s >/dev/null", statectl_path(), dir,
                 e->d_name);
        ck_assert_msg(run_cmd(cmd, NULL, 0) == 0, "%s/%s does not verify", dir, e->d_name);
        checked++;
    }
    closedir(d);
    fprintf(stderr,
            "crash (sync=%s): %d SIGKILLs, %ld acknowledged writes all present, %d "
            "checkpoints verify\n",
            sync, KILLS, total, checked);
    ck_assert_int_gt(total, getenv("SV_TEST_SLOW") ? 10 : 100); /* the test did test */
}

START_TEST(kill9_storm_sync_none)
{
    crash_run("none");
}
END_TEST

START_TEST(kill9_storm_sync_always)
{
    crash_run("always");
}
END_TEST

Suite *sv_suite_crash(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("crash");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, kill9_storm_sync_none);
    tcase_add_test(tc, kill9_storm_sync_always);
    suite_add_tcase(s, tc);
    return s;
}
