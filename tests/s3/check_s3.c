/* Checkpoints on a real S3-compatible object store (versitygw on 127.0.0.1,
 * SigV4 verified): the client module against it, then real statesrvd
 * processes uploading, restoring on fresh sidecars from the store alone,
 * rescaling 4 -> 2 and 2 -> 3 through it, and the faults: the store down,
 * refused credentials, SIGKILL during an upload, corrupt and truncated
 * objects. `make test-s3` builds the store and runs this. */
#include "harness.h"
#include "objstore.h"
#include "statesrv.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_s3.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KG 128
#define MIB (1024u * 1024u)

static struct objstore store;
static struct ts side[6];

static void setup(void)
{
    objstore_start(&store);
}

/* Stops a sidecar, which must exit cleanly (under valgrind: no error and
 * no leak), and removes its directory: the machine is gone. */
static void lose(struct ts *s)
{
    if (s->pid > 0) {
        int rc = ts_stop(s);
        ck_assert_msg(rc == 0, "statesrvd exited with %d (see %s)", rc, s->log);
    }
    ts_cleanup(s);
}

static void teardown(void)
{
    int bad = -1;
    for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
        if (side[i].pid > 0 && ts_stop(&side[i]) != 0)
            bad = (int)i;
        ts_cleanup(&side[i]);
    }
    objstore_cleanup(&store);
    ck_assert_msg(bad < 0, "sidecar %d did not exit cleanly", bad);
}

static statesrv *connect_to(const struct ts *s)
{
    statesrv *c = NULL;
    statesrv_options o = {0};
    o.job_timeout_ms = 120000;
    ck_assert_int_eq(statesrv_connect(s->tcp_addr, &o, &c), STATESRV_OK);
    return c;
}

/* A sidecar of job "job" under node `node`, with extra config lines. */
static void start_sidecar(struct ts *s, const char *node, const char *extra)
{
    ts_start_with_configf(s,
                          "checkpoint_remote = s3://" OBJSTORE_BUCKET "/job\n"
                          "checkpoint_remote_node = %s\n"
                          "s3_endpoint = %s\n"
                          "s3_credentials_file = %s\n"
                          "s3_part_size = 5M\n"
                          "s3_upload_concurrency = 3\n"
                          "%s",
                          node, store.endpoint, store.creds, extra ? extra : "");
}

static statesrv_key key_of(const char *state, char *kb, int i)
{
    snprintf(kb, 24, "key-%06d", i);
    statesrv_key k = {.state = state, .key = kb, .key_len = strlen(kb)};
    return k;
}

static void put_range(statesrv *c, int from, int n, const char *tag)
{
    char kb[24], v[64];
    for (int i = from; i < from + n; i++) {
        statesrv_key k = key_of("st", kb, i);
        snprintf(v, sizeof(v), "%s-%d", tag, i);
        ck_assert_int_eq(statesrv_put(c, &k, v, strlen(v)), STATESRV_OK);
    }
}

/* Whether key i holds tag-i (want 1) or nothing (want 0). */
static void expect_key(statesrv *c, int i, const char *tag)
{
    char kb[24], v[64];
    statesrv_key k = key_of("st", kb, i);
    statesrv_value got = {0};
    int rc = statesrv_get(c, &k, &got);
    if (!tag) {
        ck_assert_msg(rc == STATESRV_NOT_FOUND, "key %d: %d", i, rc);
        return;
    }
    snprintf(v, sizeof(v), "%s-%d", tag, i);
    ck_assert_msg(rc == STATESRV_OK, "key %d: %s", i, statesrv_errmsg(c));
    ck_assert_uint_eq(got.len, strlen(v));
    ck_assert(memcmp(got.data, v, got.len) == 0);
    statesrv_value_free(&got);
}

/* n values of `size` pseudo-random (incompressible) bytes in state "big". */
static void put_big(statesrv *c, int n, size_t size, uint32_t seed)
{
    unsigned char *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    char kb[24];
    for (int i = 0; i < n; i++) {
        for (size_t b = 0; b < size; b++) {
            seed = seed * 1103515245u + 12345u;
            buf[b] = (unsigned char)(seed >> 16);
        }
        statesrv_key k = key_of("big", kb, i);
        ck_assert_int_eq(statesrv_put(c, &k, buf, size), STATESRV_OK);
    }
    free(buf);
}

static statesrv_stats *stats_of(statesrv *c)
{
    statesrv_stats *st = NULL;
    ck_assert_int_eq(statesrv_stats_get(c, &st), STATESRV_OK);
    return st;
}

/* Waits (at most ms) until nothing is left to upload. */
static int wait_uploaded(statesrv *c, long ms)
{
    long deadline = ts_now_ms() + ms;
    while (ts_now_ms() < deadline) {
        statesrv_stats *st = stats_of(c);
        int done = st->remote_pending == 0 && st->remote_uploading_id == 0;
        statesrv_stats_free(st);
        if (done)
            return 1;
        usleep(100000);
    }
    return 0;
}

static char *snapshot_remote(statesrv *c, int full)
{
    statesrv_checkpoint_info *m = NULL;
    int rc = statesrv_snapshot_remote(c, 0, 0, full, &m);
    ck_assert_msg(rc == STATESRV_OK, "snapshot --wait-remote: %s", statesrv_errmsg(c));
    ck_assert_str_eq(m->remote_state, "remote");
    ck_assert(strncmp(m->remote_url, "s3://" OBJSTORE_BUCKET "/job/",
                      strlen("s3://" OBJSTORE_BUCKET "/job/")) == 0);
    char *url = strdup(m->remote_url);
    statesrv_checkpoint_info_free(m);
    return url;
}

static int restore_from(statesrv *c, const char *const *src, size_t n, int has_range,
                        uint32_t first, uint32_t last)
{
    statesrv_restore_info ri;
    return statesrv_restore(c, src, n, has_range, first, last, &ri);
}

/* --- the client module against the store ------------------------------------ */

static struct sv_s3 *client_with(const char *secret, enum sv_s3_checksum sum, unsigned max_parts,
                                 uint64_t threshold)
{
    struct sv_s3_options o = {.endpoint = store.endpoint,
                              .region = "us-east-1",
                              .bucket = OBJSTORE_BUCKET,
                              .access_key = OBJSTORE_ACCESS,
                              .secret_key = secret,
                              .part_size = 5 * MIB,
                              .multipart_threshold = threshold,
                              .max_parts = max_parts,
                              .checksum = sum,
                              .concurrency = 3,
                              .retries = 1};
    struct sv_s3 *s;
    char err[512];
    ck_assert_msg(sv_s3_new(&o, &s, err, sizeof(err)) == 0, "%s", err);
    return s;
}

static struct sv_s3 *client(const char *secret)
{
    return client_with(secret, SV_S3_CHECKSUM_MD5, 0, 0);
}

/* A file of n pseudo-random bytes (seed) at path. */
static void random_file(const char *path, size_t n, uint32_t seed)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n / 4; i++) {
        seed = seed * 1664525u + 1013904223u;
        fwrite(&seed, 4, 1, f);
    }
    fclose(f);
}

static int count_cb(void *ud, const char *key, uint64_t size)
{
    (void)key;
    ck_assert_uint_eq(size, 3);
    ++*(int *)ud;
    return 0;
}

START_TEST(client_puts_gets_lists_and_deletes_with_every_answer_checked)
{
    struct sv_s3 *s = client(OBJSTORE_SECRET);
    char err[512], path[256], back[256];
    /* 13 MiB: a multipart upload of 3 parts, 3 at once. */
    snprintf(path, sizeof(path), "%s.in", store.dir);
    snprintf(back, sizeof(back), "%s.out", store.dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (uint32_t i = 0, x = 7; i < 13 * MIB / 4; i++) {
        x = x * 1664525u + 1013904223u;
        fwrite(&x, 4, 1, f);
    }
    fclose(f);
    ck_assert_msg(
        sv_s3_put_file(s, "t/a b+c/big", path, 13 * MIB, 0x1234abcdull, err, sizeof(err)) == 0,
        "%s", err);
    uint64_t size, xxh;
    int has;
    ck_assert_int_eq(sv_s3_head(s, "t/a b+c/big", &size, &xxh, &has, err, sizeof(err)), 0);
    ck_assert_uint_eq(size, 13 * MIB);
    ck_assert_int_eq(has, 1);
    ck_assert_uint_eq(xxh, 0x1234abcdull);
    ck_assert_int_eq(sv_s3_get_file(s, "t/a b+c/big", back, 13 * MIB, 1, NULL, err, sizeof(err)),
                     0);
    char cmd[600], out[64];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s' && echo same", path, back);
    run_cmd(cmd, out, sizeof(out));
    ck_assert_str_eq(out, "same\n");
    unlink(back);
    /* A GET bounded below the object's size fails and leaves no file. */
    ck_assert_int_eq(sv_s3_get_file(s, "t/a b+c/big", back, MIB, 0, NULL, err, sizeof(err)),
                     SV_ECORRUPT);
    ck_assert(access(back, F_OK) != 0);
    ck_assert_int_eq(sv_s3_head(s, "t/none", &size, &xxh, &has, err, sizeof(err)), SV_ENOTFOUND);
    /* 1005 keys: two pages of ListObjectsV2. */
    for (int i = 0; i < 1005; i++) {
        char key[32];
        snprintf(key, sizeof(key), "list/k%04d", i);
        ck_assert_msg(sv_s3_put_buf(s, key, "abc", 3, 1, err, sizeof(err)) == 0, "%s", err);
    }
    int n = 0;
    ck_assert_msg(sv_s3_list(s, "list/", count_cb, &n, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(n, 1005);
    ck_assert_int_eq(sv_s3_delete(s, "list/k0000", err, sizeof(err)), 0);
    ck_assert_int_eq(sv_s3_delete(s, "list/k0000", err, sizeof(err)), 0); /* gone: no error */
    n = 0;
    ck_assert_int_eq(sv_s3_list(s, "list/", count_cb, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 1004);
    sv_s3_free(s);
    /* A wrong secret: the store refuses the signature, and the error says so. */
    s = client("not-the-secret");
    ck_assert_int_eq(sv_s3_put_buf(s, "x", "abc", 3, 1, err, sizeof(err)), SV_EUNAUTH);
    ck_assert_msg(strstr(err, "HTTP 403") && strstr(err, "refuses the credentials"), "%s", err);
    sv_s3_free(s);
    unlink(path);
}
END_TEST

/* --- statesrvd and the store -------------------------------------------------- */

START_TEST(restore_on_a_fresh_sidecar_from_the_store_alone)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 500, "a");
    put_big(c, 300, 40000, 1); /* 12 MB of random bytes: a multipart upload */
    char *u1 = snapshot_remote(c, 0);
    ck_assert(objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    struct stat before, after;
    char path[512];
    objstore_path(&store, "job/w0/chk-1/data", path, sizeof(path));
    ck_assert_int_eq(stat(path, &before), 0);
    ck_assert_int_gt(before.st_size, 10 * MIB);
    put_range(c, 250, 500, "b"); /* changes half, adds 250 */
    char *u2 = snapshot_remote(c, 0);
    ck_assert_str_eq(u2, "s3://" OBJSTORE_BUCKET "/job/w0/chk-2");
    /* The chain's first file is shared: uploaded once, not again. */
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
              before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    statesrv_stats *st = stats_of(c);
    ck_assert_int_eq(st->remote_enabled, 1);
    ck_assert_uint_eq(st->remote_uploads_completed, 2);
    ck_assert_uint_eq(st->remote_pending, 0);
    ck_assert_uint_eq(st->last_remote_checkpoint_id, 2);
    ck_assert_uint_lt(st->remote_bytes_uploaded, 2 * (uint64_t)before.st_size);
    statesrv_stats_free(st);
    statesrv_close(c);
    /* The first machine is lost: its whole directory goes. */
    lose(&side[0]);
    start_sidecar(&side[1], "w1", NULL);
    const char *extra[] = {"--config", side[1].conf, "--restore-from", u2, NULL};
    ck_assert_int_eq(ts_stop(&side[1]), 0);
    ts_restart(&side[1], extra);
    ck_assert(ts_log_contains(&side[1], "downloaded s3://" OBJSTORE_BUCKET "/job/w0/chk-2"));
    c = connect_to(&side[1]);
    for (int i = 0; i < 750; i++)
        expect_key(c, i, i < 250 ? "a" : "b");
    /* And through the op, from the older checkpoint. */
    const char *src[] = {u1};
    ck_assert_msg(restore_from(c, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c));
    expect_key(c, 400, "a");
    expect_key(c, 600, NULL);
    /* Only the job's prefix, and only checkpoints. */
    const char *outside[] = {"s3://" OBJSTORE_BUCKET "/otherjob/w0/chk-1"};
    ck_assert_int_eq(restore_from(c, outside, 1, 0, 0, 0), STATESRV_INVALID_ARGUMENT);
    ck_assert(strstr(statesrv_errmsg(c), "outside checkpoint_remote"));
    const char *missing[] = {"s3://" OBJSTORE_BUCKET "/job/w0/chk-9"};
    ck_assert_int_eq(restore_from(c, missing, 1, 0, 0, 0), STATESRV_NOT_FOUND);
    statesrv_close(c);
    free(u1);
    free(u2);
}
END_TEST

/* Sidecar i of n owns key groups [i*KG/n, (i+1)*KG/n - 1]. */
static uint32_t kg_lo(int i, int n)
{
    return (uint32_t)(i * KG / n);
}

static uint32_t kg_hi(int i, int n)
{
    return (uint32_t)((i + 1) * KG / n - 1);
}

static int owner_of(int key, int n)
{
    char kb[24];
    snprintf(kb, sizeof(kb), "key-%06d", key);
    uint32_t kg = sv_key_group_of(kb, strlen(kb), KG);
    for (int i = 0; i < n; i++)
        if (kg >= kg_lo(i, n) && kg <= kg_hi(i, n))
            return i;
    return -1;
}

#define RESCALE_KEYS 2000

/* n sidecars each load the keys of their key groups and checkpoint to the
 * store; m new ones each restore their share from the store; every key is
 * found on its new owner, and only there. */
static void rescale(int n, int m)
{
    char *urls[4];
    char node[16];
    for (int i = 0; i < n; i++) {
        snprintf(node, sizeof(node), "old%d", i);
        start_sidecar(&side[i], node, NULL);
        statesrv *c = connect_to(&side[i]);
        for (int k = 0; k < RESCALE_KEYS; k++)
            if (owner_of(k, n) == i)
                put_range(c, k, 1, "r");
        urls[i] = snapshot_remote(c, 0);
        statesrv_close(c);
        lose(&side[i]); /* the old machines are gone */
    }
    for (int j = 0; j < m; j++) {
        snprintf(node, sizeof(node), "new%d", j);
        start_sidecar(&side[j], node, NULL);
        statesrv *c = connect_to(&side[j]);
        /* Every old checkpoint whose range meets the new one. */
        const char *src[4];
        size_t ns = 0;
        for (int i = 0; i < n; i++)
            if (kg_lo(i, n) <= kg_hi(j, m) && kg_lo(j, m) <= kg_hi(i, n))
                src[ns++] = urls[i];
        ck_assert_msg(restore_from(c, src, ns, 1, kg_lo(j, m), kg_hi(j, m)) == STATESRV_OK, "%s",
                      statesrv_errmsg(c));
        for (int k = 0; k < RESCALE_KEYS; k++)
            if (owner_of(k, m) == j)
                expect_key(c, k, "r");
        statesrv_stats *st = stats_of(c);
        uint64_t entries = 0;
        for (size_t s = 0; s < st->n_states; s++)
            entries += st->states[s].entries;
        statesrv_stats_free(st);
        uint64_t want = 0;
        for (int k = 0; k < RESCALE_KEYS; k++)
            want += owner_of(k, m) == j;
        ck_assert_uint_eq(entries, want);
        statesrv_close(c);
        lose(&side[j]);
    }
    for (int i = 0; i < n; i++)
        free(urls[i]);
}

START_TEST(rescale_4_to_2_through_the_store)
{
    rescale(4, 2);
}
END_TEST

START_TEST(rescale_2_to_3_through_the_store)
{
    rescale(2, 3);
}
END_TEST

/* GET /metrics of a sidecar started with metrics_listen = 127.0.0.1:0. */
static void get_metrics(const struct ts *t, char *out, size_t cap)
{
    FILE *f = fopen(t->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512], cmd[256];
    int port = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "metrics on http://127.0.0.1:");
        if (p)
            port = atoi(p + strlen("metrics on http://127.0.0.1:"));
    }
    fclose(f);
    ck_assert_int_gt(port, 0);
    snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 http://127.0.0.1:%d/metrics", port);
    ck_assert_int_eq(run_cmd(cmd, out, cap), 0);
}

START_TEST(store_down_local_checkpoints_go_on_and_the_upload_catches_up)
{
    start_sidecar(&side[0], "w0", "metrics_listen = 127.0.0.1:0\n");
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 100, "a");
    objstore_stop(&store);
    statesrv_checkpoint_info *m = NULL;
    /* Locally the checkpoint completes as ever. */
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_uint_eq(m->id, 1);
    statesrv_checkpoint_info_free(m);
    /* Waiting for the store says why it cannot. */
    ck_assert_int_eq(statesrv_snapshot_remote(c, 0, 0, 0, &m), STATESRV_UNAVAILABLE);
    ck_assert_msg(strstr(statesrv_errmsg(c), "is durable locally") &&
                      strstr(statesrv_errmsg(c), "tried again"),
                  "%s", statesrv_errmsg(c));
    statesrv_stats *st = stats_of(c);
    ck_assert_uint_ge(st->remote_pending, 2);
    ck_assert_uint_ge(st->remote_upload_failures, 1);
    ck_assert(st->remote_last_error[0] != '\0');
    statesrv_stats_free(st);
    size_t n;
    ck_assert_int_eq(statesrv_list_checkpoints(c, &m, &n), STATESRV_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(m[0].remote_state, "local");
    ck_assert(m[0].remote_error[0] != '\0');
    statesrv_checkpoint_info_free(m);
    char out[65536], cmd[512];
    get_metrics(&side[0], out, sizeof(out));
    ck_assert_msg(strstr(out, "\nstatesrv_checkpoint_remote_pending 2\n") &&
                      strstr(out, "\nstatesrv_checkpoint_upload_lag_seconds ") &&
                      strstr(out, "\nstatesrv_checkpoint_upload_failures_total "),
                  "%.3000s", out);
    snprintf(cmd, sizeof(cmd), "%s -a %s checkpoints", statectl_path(), side[0].tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "REMOTE") && strstr(out, "local") && strstr(out, "upload:"), "%s",
                  out);
    /* The store comes back: both go up without being asked. */
    objstore_restart(&store);
    ck_assert_msg(wait_uploaded(c, 90000), "the upload did not catch up");
    ck_assert(objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    ck_assert(objstore_has(&store, "job/w0/chk-2/MANIFEST"));
    ck_assert_int_eq(statesrv_list_checkpoints(c, &m, &n), STATESRV_OK);
    ck_assert_str_eq(m[0].remote_state, "remote");
    ck_assert_str_eq(m[1].remote_state, "remote");
    statesrv_checkpoint_info_free(m);
    get_metrics(&side[0], out, sizeof(out));
    ck_assert_msg(strstr(out, "\nstatesrv_checkpoint_remote_pending 0\n") &&
                      strstr(out, "\nstatesrv_checkpoint_uploads_total 2\n"),
                  "%.3000s", out);
    statesrv_close(c);
}
END_TEST

START_TEST(refused_credentials_give_a_clear_error)
{
    char bad[128];
    snprintf(bad, sizeof(bad), "%s.bad", store.dir);
    FILE *f = fopen(bad, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "aws_access_key_id = " OBJSTORE_ACCESS "\naws_secret_access_key = wrong\n");
    fclose(f);
    chmod(bad, 0600);
    char extra[256];
    snprintf(extra, sizeof(extra), "s3_credentials_file = %s\n", bad);
    /* The later line wins: the wrong secret. */
    start_sidecar(&side[0], "w0", extra);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 10, "a");
    statesrv_checkpoint_info *m = NULL;
    ck_assert_int_eq(statesrv_snapshot_remote(c, 0, 0, 0, &m), STATESRV_UNAVAILABLE);
    ck_assert_msg(strstr(statesrv_errmsg(c), "refuses the credentials"), "%s", statesrv_errmsg(c));
    statesrv_stats *st = stats_of(c);
    ck_assert(strstr(st->remote_last_error, "HTTP 403"));
    statesrv_stats_free(st);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&side[0]), 0);
    /* A credentials file others can read is refused at start. */
    chmod(bad, 0644);
    ck_assert_int_eq(ts_run_expect_exit(&side[0], ts_config_args(&side[0])), 1);
    ck_assert(ts_log_contains(&side[0], "is readable by others"));
    unlink(bad);
}
END_TEST

START_TEST(sigkill_during_an_upload_leaves_no_remote_checkpoint_and_restart_resumes)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 100, "a");
    char *u1 = snapshot_remote(c, 0);
    put_big(c, 300, 40000, 2);
    /* The store takes connections but answers nothing: the upload hangs. */
    objstore_freeze(&store, 1);
    statesrv_checkpoint_info *m = NULL;
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_uint_eq(m->id, 2);
    statesrv_checkpoint_info_free(m);
    long deadline = ts_now_ms() + 10000;
    uint64_t uploading = 0;
    while (!uploading && ts_now_ms() < deadline) {
        statesrv_stats *st = stats_of(c);
        uploading = st->remote_uploading_id;
        statesrv_stats_free(st);
        usleep(20000);
    }
    ck_assert_uint_eq(uploading, 2);
    statesrv_close(c);
    ts_kill(&side[0]);
    objstore_freeze(&store, 0);
    /* Half an upload is no checkpoint: no MANIFEST, and restore says so. */
    ck_assert(!objstore_has(&store, "job/w0/chk-2/MANIFEST"));
    start_sidecar(&side[1], "w1", NULL);
    statesrv *c1 = connect_to(&side[1]);
    const char *src[] = {"s3://" OBJSTORE_BUCKET "/job/w0/chk-2"};
    ck_assert_int_eq(restore_from(c1, src, 1, 0, 0, 0), STATESRV_NOT_FOUND);
    /* The restarted sidecar resumes it. */
    ts_restart(&side[0], ts_config_args(&side[0]));
    ck_assert(ts_log_contains(&side[0], "checkpoint 2: not yet remote; queued for upload"));
    c = connect_to(&side[0]);
    ck_assert_msg(wait_uploaded(c, 60000), "the upload did not resume");
    statesrv_close(c);
    ck_assert(objstore_has(&store, "job/w0/chk-2/MANIFEST"));
    ck_assert_msg(restore_from(c1, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c1));
    expect_key(c1, 50, "a");
    statesrv_close(c1);
    free(u1);
}
END_TEST

/* Flips one byte of object key in the store, or cuts it to half. */
static void damage(const char *key, int cut)
{
    char path[512];
    objstore_path(&store, key, path, sizeof(path));
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    if (cut) {
        ck_assert_int_eq(ftruncate(fd, st.st_size / 2), 0);
    } else {
        unsigned char b;
        off_t at = st.st_size / 3;
        ck_assert_int_eq(pread(fd, &b, 1, at), 1);
        b ^= 0x40;
        ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    }
    close(fd);
}

START_TEST(a_corrupt_remote_object_is_refused_and_named)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 300, "a");
    char *u1 = snapshot_remote(c, 0);
    put_range(c, 0, 10, "b");
    char *u2 = snapshot_remote(c, 0);
    statesrv_close(c);
    start_sidecar(&side[1], "w1", NULL);
    c = connect_to(&side[1]);
    put_range(c, 0, 5, "live");
    const char *src[] = {u2};
    damage("job/w0/chk-1/data", 0);
    ck_assert_int_eq(restore_from(c, src, 1, 0, 0, 0), STATESRV_INVALID_ARGUMENT);
    ck_assert_msg(strstr(statesrv_errmsg(c), "s3://" OBJSTORE_BUCKET "/job/w0/chk-1/data"), "%s",
                  statesrv_errmsg(c));
    damage("job/w0/chk-2/data", 1);
    ck_assert_int_eq(restore_from(c, src, 1, 0, 0, 0), STATESRV_INVALID_ARGUMENT);
    ck_assert_msg(strstr(statesrv_errmsg(c), "job/w0/chk-2/data"), "%s", statesrv_errmsg(c));
    /* The live state was not touched, and nothing was left behind. */
    expect_key(c, 3, "live");
    char dl[256];
    snprintf(dl, sizeof(dl), "%s/data/.s3-restore", side[1].dir);
    ck_assert(access(dl, F_OK) != 0);
    statesrv_close(c);
    /* The sidecar that wrote them still restores from its own, local copy. */
    c = connect_to(&side[0]);
    ck_assert_msg(restore_from(c, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c));
    ck_assert(ts_log_contains(&side[0], "is also in checkpoint_dir and verifies"));
    expect_key(c, 5, "b");
    statesrv_close(c);
    free(u1);
    free(u2);
}
END_TEST

START_TEST(statectl_snapshot_wait_remote_prints_the_url)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 10, "a");
    statesrv_close(c);
    char out[8192], cmd[512];
    snprintf(cmd, sizeof(cmd), "%s -a %s snapshot --wait-remote", statectl_path(),
             side[0].tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "remote: s3://" OBJSTORE_BUCKET "/job/w0/chk-1\n"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s -a %s --json snapshot --wait-remote", statectl_path(),
             side[0].tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "\"remote_url\":\"s3://" OBJSTORE_BUCKET "/job/w0/chk-2\""), "%s",
                  out);
    snprintf(cmd, sizeof(cmd), "%s -a %s restore s3://" OBJSTORE_BUCKET "/job/w0/chk-2",
             statectl_path(), side[0].tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "restored 10 entries"), "%s", out);
}
END_TEST

/* Retention runs after the reply: waits (at most 10 s) for key to be
 * present or gone. */
static int settles(const char *key, int present)
{
    long deadline = ts_now_ms() + 10000;
    while (objstore_has(&store, key) != present && ts_now_ms() < deadline)
        usleep(20000);
    return objstore_has(&store, key) == present;
}

START_TEST(remote_retention_deletes_only_what_no_retained_checkpoint_names)
{
    start_sidecar(&side[0], "w0", "checkpoint_retain = 2\ncheckpoint_chain_ratio = 10000\n");
    statesrv *c = connect_to(&side[0]);
    char *u[6];
    for (int i = 0; i < 4; i++) { /* chk-1 full, chk-2..4 incremental on it */
        put_range(c, i * 10, 10, "a");
        u[i] = snapshot_remote(c, 0);
    }
    /* Two MANIFESTs stay; every data file of chk-4's chain too. */
    ck_assert(settles("job/w0/chk-1/MANIFEST", 0));
    ck_assert(settles("job/w0/chk-2/MANIFEST", 0));
    ck_assert(objstore_has(&store, "job/w0/chk-3/MANIFEST"));
    ck_assert(objstore_has(&store, "job/w0/chk-4/MANIFEST"));
    for (int i = 1; i <= 4; i++) {
        char key[64];
        snprintf(key, sizeof(key), "job/w0/chk-%d/data", i);
        ck_assert_msg(objstore_has(&store, key), "%s is gone", key);
    }
    /* A full checkpoint starts a new chain: the old files go once no
     * retained checkpoint names them. */
    u[4] = snapshot_remote(c, 1);
    put_range(c, 100, 10, "b");
    u[5] = snapshot_remote(c, 0);
    ck_assert(objstore_has(&store, "job/w0/chk-5/MANIFEST"));
    ck_assert(objstore_has(&store, "job/w0/chk-6/MANIFEST"));
    for (int i = 1; i <= 4; i++) {
        char key[64];
        snprintf(key, sizeof(key), "job/w0/chk-%d/data", i);
        ck_assert_msg(settles(key, 0), "%s is still there", key);
    }
    statesrv_close(c);
    /* What is listed still restores, on another sidecar. */
    start_sidecar(&side[1], "w1", NULL);
    c = connect_to(&side[1]);
    const char *src[] = {u[5]};
    ck_assert_msg(restore_from(c, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c));
    expect_key(c, 105, "b");
    expect_key(c, 35, "a");
    statesrv_close(c);
    for (int i = 0; i < 6; i++)
        free(u[i]);
}
END_TEST

START_TEST(statectl_verifies_and_lists_remote_checkpoints_without_a_server)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 200, "a");
    char *u1 = snapshot_remote(c, 0);
    put_range(c, 0, 20, "b");
    char *u2 = snapshot_remote(c, 0);
    statesrv_close(c);
    lose(&side[0]); /* no server */
    char env[512], cmd[2048], out[8192];
    snprintf(env, sizeof(env),
             "AWS_ACCESS_KEY_ID=" OBJSTORE_ACCESS " AWS_SECRET_ACCESS_KEY=" OBJSTORE_SECRET
             " AWS_ENDPOINT_URL=%s",
             store.endpoint);
    snprintf(cmd, sizeof(cmd), "%s %s checkpoint verify %s 2>&1", env, statectl_path(), u2);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "ok: 200 entries"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s %s checkpoints --remote s3://" OBJSTORE_BUCKET "/job 2>&1", env,
             statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "s3://" OBJSTORE_BUCKET "/job/w0/chk-1\n") &&
                      strstr(out, "s3://" OBJSTORE_BUCKET "/job/w0/chk-2\n"),
                  "%s", out);
    damage("job/w0/chk-1/data", 0);
    snprintf(cmd, sizeof(cmd), "%s %s checkpoint verify %s 2>&1", env, statectl_path(), u2);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 3);
    ck_assert_msg(strstr(out, "s3://" OBJSTORE_BUCKET "/job/w0/chk-1/data"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s %s checkpoint verify s3://" OBJSTORE_BUCKET "/job/w0/chk-7 2>&1",
             env, statectl_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "no such checkpoint"), "%s", out);
    free(u1);
    free(u2);
}
END_TEST

/* The "downloaded ... N of M bytes" line of a sidecar's log. */
static void downloaded(const struct ts *s, uint64_t *n, uint64_t *m)
{
    FILE *f = fopen(s->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    *n = *m = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, " ms: ");
        unsigned long long a, b;
        if (strstr(line, "restore: downloaded") && p &&
            sscanf(p, " ms: %llu of %llu bytes", &a, &b) == 2) {
            *n = a;
            *m = b;
        }
    }
    fclose(f);
}

START_TEST(a_ranged_restore_fetches_only_the_blocks_of_its_key_groups)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_big(c, 4000, 200, 3); /* incompressible: the blocks are the bytes */
    char *url = snapshot_remote(c, 0);
    statesrv_close(c);
    start_sidecar(&side[1], "w1", NULL);
    c = connect_to(&side[1]);
    const char *src[] = {url};
    ck_assert_msg(restore_from(c, src, 1, 1, 0, 63) == STATESRV_OK, "%s", statesrv_errmsg(c));
    uint64_t n, m;
    downloaded(&side[1], &n, &m);
    ck_assert_uint_gt(m, 800000);
    ck_assert_msg(n * 100 <= m * 55, "fetched %" PRIu64 " of %" PRIu64 " bytes", n, m);
    printf("s3/ranged_restore: key groups 0-63 fetched %" PRIu64 " of %" PRIu64 " bytes (%.1f%%)\n",
           n, m, 100.0 * (double)n / (double)m);
    statesrv_stats *st = stats_of(c);
    uint64_t want = 0, entries = 0;
    for (size_t i = 0; i < st->n_states; i++)
        entries += st->states[i].entries;
    statesrv_stats_free(st);
    for (int k = 0; k < 4000; k++)
        want += owner_of(k, 2) == 0;
    ck_assert_uint_eq(entries, want);
    /* A damaged block: the half that holds it is refused, naming the
     * object; the other half restores. */
    damage("job/w0/chk-1/data", 0);
    int lo = restore_from(c, src, 1, 1, 0, 63);
    char why[1024];
    snprintf(why, sizeof(why), "%s", statesrv_errmsg(c));
    int hi = restore_from(c, src, 1, 1, 64, 127);
    if (hi != STATESRV_OK)
        snprintf(why, sizeof(why), "%s", statesrv_errmsg(c));
    ck_assert_msg((lo == STATESRV_OK) != (hi == STATESRV_OK), "%d %d: %s", lo, hi, why);
    ck_assert_int_eq(lo == STATESRV_OK ? hi : lo, STATESRV_INVALID_ARGUMENT);
    ck_assert_msg(strstr(why, "s3://" OBJSTORE_BUCKET "/job/w0/chk-1/data"), "%s", why);
    statesrv_close(c);
    free(url);
}
END_TEST

/* Uploads path (size bytes) to key, checks the object's ETag says `parts`
 * parts (0: one PUT) and that it reads back the same. */
static void put_and_check(struct sv_s3 *s, const char *key, const char *path, uint64_t size,
                          unsigned parts)
{
    char err[512], etag[160], back[256], cmd[600], out[64];
    ck_assert_msg(sv_s3_put_file(s, key, path, size, 0x77ull, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(sv_s3_etag(s, key, etag, sizeof(etag), err, sizeof(err)) == 0, "%s", err);
    const char *dash = strchr(etag, '-');
    if (parts)
        ck_assert_msg(dash && (unsigned)atoi(dash + 1) == parts, "%s: ETag %s, not %u parts", key,
                      etag, parts);
    else
        ck_assert_msg(!dash && strlen(etag) == 32, "%s: ETag %s of a multipart object", key, etag);
    snprintf(back, sizeof(back), "%s.back", store.dir);
    ck_assert_msg(sv_s3_get_file(s, key, back, size, 1, NULL, err, sizeof(err)) == 0, "%s", err);
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s' && echo same", path, back);
    run_cmd(cmd, out, sizeof(out));
    ck_assert_str_eq(out, "same\n");
    unlink(back);
}

START_TEST(uploads_keep_within_the_part_limit_and_both_checksums_are_checked_by_the_store)
{
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s.in", store.dir);
    random_file(path, 13 * MIB, 11);
    /* MD5 (Content-MD5) and CRC-32C (x-amz-checksum-crc32c, which the
     * store echoes): 3 parts of 5 MiB, or 2 of 7 MiB under a limit of 2
     * parts (OpenStack Swift's s3api takes 1000), or one PUT under a
     * threshold above the size. */
    for (int k = 0; k < 2; k++) {
        enum sv_s3_checksum sum = k ? SV_S3_CHECKSUM_CRC32C : SV_S3_CHECKSUM_MD5;
        struct sv_s3 *s = client_with(OBJSTORE_SECRET, sum, 0, 0);
        put_and_check(s, k ? "c/three" : "m/three", path, 13 * MIB, 3);
        sv_s3_free(s);
        s = client_with(OBJSTORE_SECRET, sum, 2, 0);
        put_and_check(s, k ? "c/two" : "m/two", path, 13 * MIB, 2);
        sv_s3_free(s);
        s = client_with(OBJSTORE_SECRET, sum, 0, 20 * MIB);
        put_and_check(s, k ? "c/one" : "m/one", path, 13 * MIB, 0);
        ck_assert_msg(sv_s3_put_buf(s, k ? "c/small" : "m/small", "abc", 3, 1, err, sizeof(err)) ==
                          0,
                      "%s", err);
        sv_s3_free(s);
    }
    /* A file no plan fits (5 GiB + 1 in one part: parts are at most 5 GiB)
     * fails before anything is sent, saying why. A sparse file: no disk. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)(5ull << 30) + 1), 0);
    close(fd);
    struct sv_s3 *s = client_with(OBJSTORE_SECRET, SV_S3_CHECKSUM_MD5, 1, 0);
    ck_assert_int_eq(sv_s3_put_file(s, "m/huge", path, (5ull << 30) + 1, 1, err, sizeof(err)),
                     SV_ETOOLARGE);
    ck_assert_msg(strstr(err, "s3_max_parts") && strstr(err, "5 GiB"), "%s", err);
    sv_s3_free(s);
    ck_assert(!objstore_has(&store, "m/huge"));
    unlink(path);
}
END_TEST

START_TEST(crc32c_checksums_and_a_small_part_limit_from_upload_to_restore)
{
    start_sidecar(&side[0], "w0", "s3_checksum = crc32c\ns3_max_parts = 2\n");
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 300, "a");
    put_big(c, 300, 40000, 5); /* 12 MB: 2 parts of 6 MiB, not 3 of 5 MiB */
    char *url = snapshot_remote(c, 0);
    statesrv_close(c);
    struct sv_s3 *s = client(OBJSTORE_SECRET);
    char err[512], etag[160];
    ck_assert_msg(sv_s3_etag(s, "job/w0/chk-1/data", etag, sizeof(etag), err, sizeof(err)) == 0,
                  "%s", err);
    sv_s3_free(s);
    ck_assert_msg(strstr(etag, "-2") && etag[strlen(etag) - 2] == '-', "ETag %s", etag);
    lose(&side[0]);
    start_sidecar(&side[1], "w1", "s3_checksum = crc32c\n");
    c = connect_to(&side[1]);
    const char *src[] = {url};
    ck_assert_msg(restore_from(c, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c));
    for (int i = 0; i < 300; i += 7)
        expect_key(c, i, "a");
    statesrv_stats *st = stats_of(c);
    uint64_t entries = 0;
    for (size_t i = 0; i < st->n_states; i++)
        entries += st->states[i].entries;
    statesrv_stats_free(st);
    ck_assert_uint_eq(entries, 600);
    statesrv_close(c);
    free(url);
}
END_TEST

/* The store's own storage fails (its temporary directory is a file): it
 * answers 500 InternalError to every upload. */
static void break_store(int broken)
{
    char path[512], cmd[600];
    snprintf(path, sizeof(path), "%s/" OBJSTORE_BUCKET "/.sgwtmp", store.dir);
    snprintf(cmd, sizeof(cmd), broken ? "rm -rf '%s' && touch '%s'" : "rm -f '%s'", path, path);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(store_5xx_local_checkpoints_go_on_and_the_upload_is_retried)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 100, "a");
    break_store(1);
    statesrv_checkpoint_info *m = NULL;
    ck_assert_int_eq(statesrv_snapshot_remote(c, 0, 0, 0, &m), STATESRV_UNAVAILABLE);
    ck_assert_msg(strstr(statesrv_errmsg(c), "is durable locally"), "%s", statesrv_errmsg(c));
    statesrv_stats *st = stats_of(c);
    ck_assert_msg(strstr(st->remote_last_error, "HTTP 500") &&
                      strstr(st->remote_last_error, "InternalError"),
                  "%s", st->remote_last_error);
    ck_assert_uint_ge(st->remote_upload_failures, 1);
    statesrv_stats_free(st);
    ck_assert(!objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    size_t n;
    ck_assert_int_eq(statesrv_list_checkpoints(c, &m, &n), STATESRV_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].remote_state, "local");
    statesrv_checkpoint_info_free(m);
    /* The store heals: the retry takes it up without being asked. */
    break_store(0);
    ck_assert_msg(wait_uploaded(c, 90000), "the upload was not retried");
    ck_assert(objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    statesrv_close(c);
}
END_TEST

START_TEST(a_slow_store_delays_only_the_upload)
{
    start_sidecar(&side[0], "w0", NULL);
    statesrv *c = connect_to(&side[0]);
    put_big(c, 200, 40000, 9);
    /* The store accepts connections but answers nothing for a while. */
    objstore_freeze(&store, 1);
    long t0 = ts_now_ms();
    statesrv_checkpoint_info *m = NULL;
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    statesrv_checkpoint_info_free(m);
    ck_assert_int_lt(ts_now_ms() - t0, 10000);
    char kb[24];
    statesrv_key k = key_of("st", kb, 1);
    ck_assert_int_eq(statesrv_put(c, &k, "x", 1), STATESRV_OK); /* the server serves */
    long deadline = ts_now_ms() + 10000;
    uint64_t uploading = 0;
    while (!uploading && ts_now_ms() < deadline) {
        statesrv_stats *st = stats_of(c);
        uploading = st->remote_uploading_id;
        statesrv_stats_free(st);
        usleep(20000);
    }
    ck_assert_uint_eq(uploading, 1);
    ck_assert(!objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    sleep(2);
    objstore_freeze(&store, 0);
    ck_assert_msg(wait_uploaded(c, 60000), "the upload did not finish");
    ck_assert(objstore_has(&store, "job/w0/chk-1/MANIFEST"));
    statesrv_close(c);
}
END_TEST

START_TEST(restore_remote_roots_open_further_prefixes_and_nothing_else)
{
    /* Another job's sidecar (the later config line wins). */
    start_sidecar(&side[0], "w0", "checkpoint_remote = s3://" OBJSTORE_BUCKET "/otherjob\n");
    statesrv *c = connect_to(&side[0]);
    put_range(c, 0, 50, "o");
    statesrv_checkpoint_info *m = NULL;
    ck_assert_msg(statesrv_snapshot_remote(c, 0, 0, 0, &m) == STATESRV_OK, "%s",
                  statesrv_errmsg(c));
    ck_assert_str_eq(m->remote_url, "s3://" OBJSTORE_BUCKET "/otherjob/w0/chk-1");
    char *url = strdup(m->remote_url);
    statesrv_checkpoint_info_free(m);
    statesrv_close(c);
    /* This job's sidecar may not read it... */
    start_sidecar(&side[1], "w1", NULL);
    c = connect_to(&side[1]);
    const char *src[] = {url};
    ck_assert_int_eq(restore_from(c, src, 1, 0, 0, 0), STATESRV_INVALID_ARGUMENT);
    ck_assert_msg(strstr(statesrv_errmsg(c), "outside checkpoint_remote") &&
                      strstr(statesrv_errmsg(c), "restore_remote_roots"),
                  "%s", statesrv_errmsg(c));
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&side[1]), 0);
    /* ...until restore_remote_roots names that prefix; others stay closed. */
    start_sidecar(&side[2], "w2",
                  "restore_remote_roots = s3://" OBJSTORE_BUCKET
                  "/elsewhere , s3://" OBJSTORE_BUCKET "/otherjob\n");
    c = connect_to(&side[2]);
    ck_assert_msg(restore_from(c, src, 1, 0, 0, 0) == STATESRV_OK, "%s", statesrv_errmsg(c));
    expect_key(c, 7, "o");
    const char *third[] = {"s3://" OBJSTORE_BUCKET "/otherjobs/w0/chk-1"};
    ck_assert_int_eq(restore_from(c, third, 1, 0, 0, 0), STATESRV_INVALID_ARGUMENT);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&side[2]), 0);
    /* One client, one bucket: a root elsewhere stops the start, saying so. */
    FILE *f = fopen(side[2].conf, "a");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "restore_remote_roots = s3://another-bucket/x\n");
    fclose(f);
    ck_assert_int_eq(ts_run_expect_exit(&side[2], ts_config_args(&side[2])), 1);
    ck_assert(ts_log_contains(&side[2], "is in bucket another-bucket"));
    free(url);
}
END_TEST

static Suite *s3_suite(void)
{
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("s3");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, client_puts_gets_lists_and_deletes_with_every_answer_checked);
    tcase_add_test(tc, restore_on_a_fresh_sidecar_from_the_store_alone);
    tcase_add_test(tc, rescale_4_to_2_through_the_store);
    tcase_add_test(tc, rescale_2_to_3_through_the_store);
    tcase_add_test(tc, store_down_local_checkpoints_go_on_and_the_upload_catches_up);
    tcase_add_test(tc, refused_credentials_give_a_clear_error);
    tcase_add_test(tc, sigkill_during_an_upload_leaves_no_remote_checkpoint_and_restart_resumes);
    tcase_add_test(tc, a_corrupt_remote_object_is_refused_and_named);
    tcase_add_test(tc, statectl_snapshot_wait_remote_prints_the_url);
    tcase_add_test(tc, remote_retention_deletes_only_what_no_retained_checkpoint_names);
    tcase_add_test(tc, statectl_verifies_and_lists_remote_checkpoints_without_a_server);
    tcase_add_test(tc, a_ranged_restore_fetches_only_the_blocks_of_its_key_groups);
    tcase_add_test(tc,
                   uploads_keep_within_the_part_limit_and_both_checksums_are_checked_by_the_store);
    tcase_add_test(tc, crc32c_checksums_and_a_small_part_limit_from_upload_to_restore);
    tcase_add_test(tc, store_5xx_local_checkpoints_go_on_and_the_upload_is_retried);
    tcase_add_test(tc, a_slow_store_delays_only_the_upload);
    tcase_add_test(tc, restore_remote_roots_open_further_prefixes_and_nothing_else);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(s3_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
