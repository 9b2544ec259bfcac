/* Power loss under a real statesrvd: its data_dir is on plfs; writer
 * processes write through libstatesrv on a Unix socket and log every
 * acknowledged write outside the crashed "machine"; at a random moment
 * statesrvd is SIGKILLed and plfs drops everything not synced; plfs is
 * unmounted (the page cache goes with it), the backing store is walked with
 * mdb_dump, plfs is mounted again and statesrvd restarted. With
 * sync = always every acknowledged write must be there, byte for byte, and
 * the store must open and take writes. sync = none is run to show that the
 * harness bites: its losses are reported, not asserted. */
#include "plmount.h"
#include "statesrv.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITERS 3
#define BATCH 5
#define MAX_ROUNDS 8

static struct plm m;
static pid_t srv_pid;
static char srv_exit[64] = "did not answer in 10 s"; /* why server_start failed */

static const char *statesrvd_path(void)
{
    const char *p = getenv("STATESRVD");
    return p ? p : "build/statesrvd";
}

/* What one case saw. */
struct result {
    int crashes, opened, dumped, dump_missing;
    long acked_ops, acked_keys, lost, wrong;
    long new_ops, new_keys; /* each acknowledged write once (its own round) */
    unsigned seed;
    int read_errors, stopped_answering, probe_failed;
    char read_err[200], probe_err[200];
    long long last_size; /* of data.mdb on the backing dir after the last crash */
    char dump_err[160];  /* mdb_dump's last message when it failed */
    long long kept_new, zeroed;
    long long kept_blocks, restored_blocks, bytes_cut, entries_undone, writes, writeback, syncs,
        sync_writes;
};

struct pcase {
    const char *sync, *writemap, *entries;
    int fsync_gen_dir; /* the harness fsyncs data/current after the first start */
    int rounds;
    int random;      /* "crash random": a random subset of the unsynced blocks survives */
    int clean_first; /* round 0 ends with a clean stop (SIGTERM: the store is synced) */
};

/* The value of a key: its length and bytes follow from the key, so a read
 * checks them; some values take LMDB overflow pages. */
static size_t value_for(const char *key, unsigned char *out, size_t cap)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    size_t len = h % 16 == 0 ? 12000 + h % 4000 : 16 + h % 1500;
    if (len > cap)
        len = cap;
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)(h >> (i % 4 * 8)) ^ (unsigned char)i;
    return len;
}

static void key_name(char *out, size_t cap, int round, int w, long i, int j)
{
    if (j < 0)
        snprintf(out, cap, "r%d-w%d-%ld", round, w, i);
    else
        snprintf(out, cap, "r%d-w%d-%ld.%d", round, w, i, j);
}

static void ack_path(char *out, size_t cap, int round, int w)
{
    snprintf(out, cap, "%s/acks-r%d-w%d", m.dir, round, w);
}

static void sock_addr(char *out, size_t cap)
{
    snprintf(out, cap, "unix:%s/sock", m.dir);
}

/* Child: writer w of round r until the stop file appears (bounded). Writer
 * 0 puts, writer 1 commits batches of BATCH puts, writer 2 adds 1 to fresh
 * counters. After each OK it appends i to its ack log. Never returns. */
static void writer(int round, int w)
{
    char ack[160], stop[160], addr[128];
    ack_path(ack, sizeof(ack), round, w);
    plm_path(stop, sizeof(stop), m.dir, "stop");
    sock_addr(addr, sizeof(addr));
    int log = open(ack, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0)
        _exit(2);
    statesrv_options o = {.connect_timeout_ms = 500, .io_timeout_ms = 3000};
    statesrv *c = NULL;
    static unsigned char val[16384];
    long deadline = plm_now_ms() + 20000;
    for (long i = 0; access(stop, F_OK) != 0 && plm_now_ms() < deadline; i++) {
        if (!c && statesrv_connect(addr, &o, &c) != STATESRV_OK) {
            c = NULL;
            usleep(20000);
            i--;
            continue;
        }
        char key[64];
        int rc;
        if (w == 1) {
            statesrv_batch *b = statesrv_batch_new();
            if (!b)
                _exit(4);
            for (int j = 0; j < BATCH; j++) {
                key_name(key, sizeof(key), round, w, i, j);
                size_t n = value_for(key, val, sizeof(val));
                statesrv_key k = {.state = "pl", .key = key, .key_len = strlen(key)};
                if (statesrv_batch_put(b, &k, val, n) != STATESRV_OK)
                    _exit(5);
            }
            rc = statesrv_batch_commit(c, b);
            statesrv_batch_free(b);
        } else {
            key_name(key, sizeof(key), round, w, i, -1);
            statesrv_key k = {.state = w == 2 ? "plctr" : "pl", .key = key, .key_len = strlen(key)};
            if (w == 2) {
                rc = statesrv_add(c, &k, 1, NULL);
            } else {
                size_t n = value_for(key, val, sizeof(val));
                rc = statesrv_put(c, &k, val, n);
            }
        }
        if (rc == STATESRV_OK) {
            char line[32];
            int len = snprintf(line, sizeof(line), "%ld\n", i);
            if (write(log, line, (size_t)len) != len)
                _exit(3);
        } else {
            /* The server died: the write may or may not be in; not counted.
             * The next one uses a new key. */
            statesrv_close(c);
            c = NULL;
        }
    }
    statesrv_close(c);
    close(log);
    _exit(0);
}

static void write_config(const struct pcase *pc)
{
    char conf[160];
    plm_path(conf, sizeof(conf), m.dir, "statesrvd.conf");
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "listen =\nunix_socket = %s/sock\ndata_dir = %s/data\ncheckpoint_dir = %s/checkpoints\n"
            "sync = %s\nwritemap = %s\nmap_size = 4M\nmap_size_max = 256M\nlog_level = info\n",
            m.dir, m.mnt, m.mnt, pc->sync, pc->writemap);
    fclose(f);
}

/* Starts statesrvd and waits until it answers; 0, or -1 if it exited or
 * did not answer within 10 s (its log says why). */
static int server_start(void)
{
    char conf[160], log[160], addr[128];
    plm_path(conf, sizeof(conf), m.dir, "statesrvd.conf");
    plm_path(log, sizeof(log), m.dir, "statesrvd.log");
    sock_addr(addr, sizeof(addr));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed by its timeout takes it along */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(statesrvd_path(), "statesrvd", "--config", conf, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", statesrvd_path(), strerror(errno));
        _exit(127);
    }
    srv_pid = pid;
    long deadline = plm_now_ms() + 10000;
    statesrv_options o = {.connect_timeout_ms = 200, .io_timeout_ms = 2000};
    while (plm_now_ms() < deadline) {
        statesrv *c;
        if (statesrv_connect(addr, &o, &c) == STATESRV_OK) {
            int rc = statesrv_ping(c);
            statesrv_close(c);
            if (rc == STATESRV_OK)
                return 0;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            srv_pid = 0;
            if (WIFSIGNALED(status))
                snprintf(srv_exit, sizeof(srv_exit), "killed by signal %d", WTERMSIG(status));
            else
                snprintf(srv_exit, sizeof(srv_exit), "exit status %d", WEXITSTATUS(status));
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

static void server_kill(void)
{
    if (srv_pid > 0) {
        kill(srv_pid, SIGKILL);
        waitpid(srv_pid, NULL, 0);
    }
    srv_pid = 0;
}

/* SIGTERM: statesrvd syncs and closes the store. */
static void server_stop(void)
{
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        waitpid(srv_pid, NULL, 0);
    }
    srv_pid = 0;
}

static void teardown(void)
{
    server_kill();
    plm_cleanup(&m);
}

/* Reads back every acknowledged write of rounds [from, to]. */
static void verify(int from, int to, struct result *r, int report_each)
{
    char addr[128], err[256];
    sock_addr(addr, sizeof(addr));
    statesrv_options o = {.io_timeout_ms = 10000};
    statesrv *c;
    ck_assert_msg(statesrv_connect2(addr, &o, &c, err, sizeof(err)) == STATESRV_OK, "%s", err);
    static unsigned char want[16384];
    for (int round = from; round <= to; round++)
        for (int w = 0; w < WRITERS; w++) {
            char ack[160];
            ack_path(ack, sizeof(ack), round, w);
            FILE *f = fopen(ack, "r");
            if (!f)
                continue;
            long i;
            while (fscanf(f, "%ld", &i) == 1) {
                r->acked_ops++;
                r->new_ops += round == to;
                r->new_keys += round == to ? (w == 1 ? BATCH : 1) : 0;
                for (int j = 0; j < (w == 1 ? BATCH : 1); j++) {
                    char key[64];
                    key_name(key, sizeof(key), round, w, i, w == 1 ? j : -1);
                    statesrv_key k = {
                        .state = w == 2 ? "plctr" : "pl", .key = key, .key_len = strlen(key)};
                    statesrv_value v;
                    int rc = statesrv_get(c, &k, &v);
                    r->acked_keys++;
                    if (rc != STATESRV_OK) {
                        if (report_each && r->lost < 5)
                            fprintf(stderr, "  lost: %s (%s)\n", key, statesrv_strerror(rc));
                        r->lost++;
                        if (rc != STATESRV_NOT_FOUND) {
                            r->read_errors++;
                            if (!r->read_err[0])
                                snprintf(r->read_err, sizeof(r->read_err), "%s: %s",
                                         statesrv_strerror(rc), statesrv_errmsg(c));
                            statesrv_close(c);
                            c = NULL;
                            if (statesrv_connect2(addr, &o, &c, err, sizeof(err)) != STATESRV_OK) {
                                /* Counted as lost from here on; the report says it. */
                                r->stopped_answering++;
                                fclose(f);
                                return;
                            }
                        }
                        continue;
                    }
                    int ok;
                    if (w == 2) {
                        int64_t x = 0;
                        ok = statesrv_counter_decode(v.data, v.len, &x) == STATESRV_OK && x == 1;
                    } else {
                        size_t n = value_for(key, want, sizeof(want));
                        ok = v.len == n && memcmp(v.data, want, n) == 0;
                    }
                    if (!ok) {
                        if (report_each && r->wrong < 5)
                            fprintf(stderr, "  wrong value: %s\n", key);
                        r->wrong++;
                    }
                    statesrv_value_free(&v);
                }
            }
            fclose(f);
        }
    /* The store takes a write and gives it back. */
    statesrv_key k = {.state = "pl", .key = "probe", .key_len = 5};
    statesrv_value v;
    int rc = statesrv_put(c, &k, "p", 1);
    if (rc == STATESRV_OK)
        rc = statesrv_get(c, &k, &v);
    if (rc == STATESRV_OK) {
        if (v.len != 1)
            rc = STATESRV_ERR_PROTOCOL;
        statesrv_value_free(&v);
    }
    if (rc != STATESRV_OK) {
        r->probe_failed++;
        if (!r->probe_err[0])
            snprintf(r->probe_err, sizeof(r->probe_err), "%s: %s", statesrv_strerror(rc),
                     statesrv_errmsg(c));
    }
    statesrv_close(c);
}

/* mdb_dump of every database of the store on the backing directory: LMDB
 * can open it and walk every page. 1 ok, 0 failed, -1 no data.mdb. */
static int dump_store(struct result *r)
{
    char path[256], cmd[600], log[160];
    snprintf(path, sizeof(path), "%s/data/current/data.mdb", m.backing);
    struct stat st;
    if (stat(path, &st))
        return -1;
    r->last_size = (long long)st.st_size;
    plm_path(log, sizeof(log), m.dir, "mdb_dump.log");
    snprintf(cmd, sizeof(cmd), "mdb_dump -a '%s/data/current' >/dev/null 2>'%s'", m.backing, log);
    if (system(cmd) == 0)
        return 1;
    FILE *f = fopen(log, "r");
    char line[160];
    while (f && fgets(line, sizeof(line), f))
        if (line[0] != '\n') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(r->dump_err, sizeof(r->dump_err), "%s", line);
        }
    if (f)
        fclose(f);
    return 0;
}

static void run_case(const struct pcase *pc, struct result *r)
{
    char err[512], p[200];
    memset(r, 0, sizeof(*r));
    memset(&m, 0, sizeof(m));
    ck_assert_msg(plm_mount(&m, pc->entries, err, sizeof(err)) == 0, "mount: %s", err);
    /* The operator's data_dir exists and is durable before the server runs. */
    plm_path(p, sizeof(p), m.mnt, "data");
    ck_assert_int_eq(mkdir(p, 0750), 0);
    plm_path(p, sizeof(p), m.mnt, "checkpoints");
    ck_assert_int_eq(mkdir(p, 0750), 0);
    ck_assert_int_eq(plm_fsync_path(m.mnt), 0);
    write_config(pc);
    ck_assert_msg(server_start() == 0, "statesrvd did not start (log %s/statesrvd.log)", m.dir);
    if (pc->fsync_gen_dir) {
        plm_path(p, sizeof(p), m.mnt, "data/current");
        ck_assert_int_eq(plm_fsync_path(p), 0);
    }
    unsigned seed = (unsigned)getpid() ^ (unsigned)plm_now_ms(), seed0 = seed;
    r->seed = seed;
    char stop[160];
    plm_path(stop, sizeof(stop), m.dir, "stop");
    for (int round = 0; round < pc->rounds; round++) {
        unlink(stop);
        pid_t kids[WRITERS];
        for (int w = 0; w < WRITERS; w++)
            if ((kids[w] = fork()) == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                writer(round, w);
            }
        usleep((useconds_t)(300000 + rand_r(&seed) % 700000));
        if (round == 0 && pc->clean_first) {
            server_stop();
            int fd = open(stop, O_WRONLY | O_CREAT, 0644);
            close(fd);
            for (int w = 0; w < WRITERS; w++)
                waitpid(kids[w], NULL, 0);
            ck_assert_msg(server_start() == 0, "statesrvd did not start again");
            verify(0, 0, r, 0); /* a clean stop keeps everything, sync = none too */
            continue;
        }
        /* The power goes: the process and the unsynced data at once. */
        server_kill();
        unsigned long long cseed =
            ((unsigned long long)rand_r(&seed0) << 32) | (unsigned)rand_r(&seed0);
        ck_assert_int_eq(pc->random ? plm_crash_random(&m, cseed | 1) : plm_crash(&m), 0);
        r->crashes++;
        r->kept_new += plm_stat(&m, "crash_kept_blocks");
        r->zeroed += plm_stat(&m, "crash_zeroed_blocks");
        r->kept_blocks += plm_stat(&m, "kept_blocks");
        r->restored_blocks += plm_stat(&m, "crash_blocks");
        r->bytes_cut += plm_stat(&m, "crash_bytes_cut");
        r->entries_undone += plm_stat(&m, "crash_entries");
        r->writes += plm_stat(&m, "writes");
        r->writeback += plm_stat(&m, "writepage_writes");
        r->syncs += plm_stat(&m, "fsyncs") + plm_stat(&m, "fdatasyncs");
        r->sync_writes += plm_stat(&m, "sync_writes");
        int fd = open(stop, O_WRONLY | O_CREAT, 0644);
        close(fd);
        for (int w = 0; w < WRITERS; w++) {
            int status;
            ck_assert_int_eq(waitpid(kids[w], &status, 0), kids[w]);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", w);
        }
        ck_assert_int_eq(plm_unmount(&m), 0);
        int d = dump_store(r);
        r->dumped += d == 1;
        r->dump_missing += d == -1;
        ck_assert_msg(plm_mount(&m, pc->entries, err, sizeof(err)) == 0, "remount: %s", err);
        if (server_start() != 0) {
            char log[160], line[400], last[400] = "";
            plm_path(log, sizeof(log), m.dir, "statesrvd.log");
            FILE *f = fopen(log, "r");
            while (f && fgets(line, sizeof(line), f))
                if (strstr(line, "error") || strstr(line, "cannot") || strstr(line, "fatal"))
                    snprintf(last, sizeof(last), "%s", line);
            if (f)
                fclose(f);
            last[strcspn(last, "\n")] = '\0';
            fprintf(stderr, "  round %d: statesrvd did not start on the crashed store (%s): %s\n",
                    round, srv_exit, last[0] ? last : "(no error in its log)");
            break;
        }
        r->opened++;
        /* sync = always: everything so far, every time; none: this round. */
        verify(strcmp(pc->sync, "always") == 0 || pc->clean_first ? 0 : round, round, r,
               strcmp(pc->sync, "always") == 0);
    }
    server_kill();
    fprintf(stderr,
            "powerloss (sync=%s, writemap=%s, entries=%s%s%s): %d crashes, %ld acknowledged "
            "writes (%ld keys), %ld checks of them (%ld keys) after the crashes, %ld lost, %ld "
            "wrong; store opened after %d/%d, mdb_dump "
            "ok %d/%d (no data.mdb: %d); plfs: %lld writes (%lld writeback), %lld "
            "fsync/fdatasync, %lld O_DSYNC writes; dropped at the crashes: %lld blocks restored, "
            "%lld bytes cut, %lld entry changes undone; kept new by the coin: %lld blocks, %lld "
            "new blocks zeroed (seed %u)\n",
            pc->sync, pc->writemap, pc->entries, pc->fsync_gen_dir ? ", gen dir fsynced" : "",
            pc->random ? (pc->clean_first ? ", random crash, a clean stop first" : ", random crash")
                       : "",
            r->crashes, r->new_ops, r->new_keys, r->acked_ops, r->acked_keys, r->lost, r->wrong,
            r->opened, r->crashes, r->dumped, r->crashes, r->dump_missing, r->writes, r->writeback,
            r->syncs, r->sync_writes, r->restored_blocks, r->bytes_cut, r->entries_undone,
            r->kept_new, r->zeroed, r->seed);
    if (r->read_errors || r->stopped_answering)
        fprintf(stderr,
                "  reads that failed (not NOT_FOUND): %d, first: %s; stopped answering: %d\n",
                r->read_errors, r->read_err, r->stopped_answering);
    if (r->probe_failed)
        fprintf(stderr, "  a new write after the restart failed %d time(s), first: %s\n",
                r->probe_failed, r->probe_err);
    if (r->dump_err[0])
        fprintf(stderr, "  mdb_dump said: %s; data.mdb after the last crash: %lld bytes\n",
                r->dump_err, r->last_size);
}

/* What sync = always promises, on a journaling filesystem's entry semantics. */
static void expect_durable(const struct pcase *pc)
{
    struct result r;
    run_case(pc, &r);
    ck_assert_int_eq(r.crashes, pc->rounds);
    ck_assert_int_eq(r.opened, pc->rounds);
    ck_assert_int_eq(r.dumped, pc->rounds);
    ck_assert_int_eq(r.lost, 0);
    ck_assert_int_eq(r.wrong, 0);
    ck_assert_int_eq(r.read_errors, 0);
    ck_assert_int_eq(r.probe_failed, 0);
    ck_assert_int_gt(r.new_ops, 50); /* the test did test */
    ck_assert_int_gt(r.syncs + r.sync_writes, 50);
}

START_TEST(sync_always_writemap_off_keeps_every_acknowledged_write)
{
    expect_durable(
        &(struct pcase){.sync = "always", .writemap = "no", .entries = "journal", .rounds = 4});
}
END_TEST

START_TEST(sync_always_writemap_on_keeps_every_acknowledged_write)
{
    expect_durable(&(struct pcase){.sync = "always",
                                   .writemap = "yes",
                                   .entries = "journal",
                                   .fsync_gen_dir = 0,
                                   .rounds = 4});
}
END_TEST

/* As if the kernel had written back a random part of what was not synced. */
START_TEST(sync_always_survives_a_crash_that_keeps_part_of_the_unsynced_writes)
{
    expect_durable(&(struct pcase){.sync = "always",
                                   .writemap = "no",
                                   .entries = "journal",
                                   .fsync_gen_dir = 0,
                                   .rounds = 3,
                                   .random = 1});
    teardown();
    expect_durable(&(struct pcase){.sync = "always",
                                   .writemap = "yes",
                                   .entries = "journal",
                                   .fsync_gen_dir = 0,
                                   .rounds = 3,
                                   .random = 1});
}
END_TEST

/* Strict POSIX entries: a directory entry is durable only once its
 * directory is fsynced. LMDB creates data.mdb in a new generation directory
 * and syncs only the file; the store fsyncs the directory after opening it
 * (without that, every crash took data.mdb and every acknowledged key with
 * it: 10 of 10 crashes, found by this suite). */
START_TEST(sync_always_survives_strict_posix_entries)
{
    expect_durable(&(struct pcase){
        .sync = "always", .writemap = "no", .entries = "posix", .fsync_gen_dir = 0, .rounds = 3});
}
END_TEST

/* The harness bites: sync = none loses acknowledged writes at a power
 * loss. Reported; only the run itself is asserted. */
START_TEST(sync_none_report)
{
    struct result a, b;
    /* The harness fsyncs the generation directory, so that what is lost is
     * the contents, not data.mdb's name. */
    run_case(&(struct pcase){.sync = "none",
                             .writemap = "yes",
                             .entries = "journal",
                             .fsync_gen_dir = 1,
                             .rounds = 3},
             &a);
    teardown();
    run_case(&(struct pcase){.sync = "none",
                             .writemap = "no",
                             .entries = "journal",
                             .fsync_gen_dir = 1,
                             .rounds = 3},
             &b);
    ck_assert_int_eq(a.crashes + b.crashes, 6);
    ck_assert_int_gt(a.acked_ops + b.acked_ops, 50);
    /* The same with a random part of the unsynced writes surviving, on a
     * store that was once stopped cleanly (synced), so that old pages and
     * new ones meet. */
    teardown();
    run_case(&(struct pcase){.sync = "none",
                             .writemap = "yes",
                             .entries = "journal",
                             .fsync_gen_dir = 1,
                             .rounds = 4,
                             .random = 1,
                             .clean_first = 1},
             &a);
    teardown();
    run_case(&(struct pcase){.sync = "none",
                             .writemap = "no",
                             .entries = "journal",
                             .fsync_gen_dir = 1,
                             .rounds = 4,
                             .random = 1,
                             .clean_first = 1},
             &b);
    ck_assert_int_gt(a.crashes, 0);
    ck_assert_int_gt(b.crashes, 0);
}
END_TEST

Suite *sv_suite_powerloss(void)
{
    Suite *s = suite_create("powerloss");
    TCase *tc = tcase_create("powerloss");
    tcase_set_timeout(tc, 150);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, sync_always_writemap_off_keeps_every_acknowledged_write);
    tcase_add_test(tc, sync_always_writemap_on_keeps_every_acknowledged_write);
    tcase_add_test(tc, sync_always_survives_a_crash_that_keeps_part_of_the_unsynced_writes);
    tcase_add_test(tc, sync_always_survives_strict_posix_entries);
    tcase_add_test(tc, sync_none_report);
    suite_add_tcase(s, tc);
    return s;
}
