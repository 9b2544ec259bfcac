/* The Prometheus endpoint, scraped with a real HTTP client (curl) while a
 * real statesrvd serves requests. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct ts srv;
static int metrics_port;
static struct ts full; /* a second server, for tests that need their own map */

/* The metrics port of a server started with metrics_listen = 127.0.0.1:0:
 * it says where it listens ("metrics on http://127.0.0.1:PORT/metrics"). */
static int metrics_port_of(const struct ts *t)
{
    FILE *f = fopen(t->log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int port = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "metrics on http://127.0.0.1:");
        if (p)
            port = atoi(p + strlen("metrics on http://127.0.0.1:"));
    }
    fclose(f);
    ck_assert_int_gt(port, 0);
    return port;
}

static void setup(void)
{
    ts_start_with_config(&srv, "metrics_listen = 127.0.0.1:0\n");
    metrics_port = metrics_port_of(&srv);
}

static void teardown(void)
{
    ts_cleanup(&srv);
    ts_cleanup(&full);
    memset(&full, 0, sizeof(full));
}

/* Scrapes path on server t's metrics port with curl; returns the HTTP
 * status, body in out. */
static int scrape_at(const struct ts *t, int port, const char *opts, const char *path, char *out,
                     size_t outlen)
{
    char cmd[12 * 1024], code[16];
    snprintf(cmd, sizeof(cmd),
             "curl -s -m 5 %s -o %s/scrape -w '%%{http_code}' http://127.0.0.1:%d%s", opts, t->dir,
             port, path);
    ck_assert_int_eq(run_cmd(cmd, code, sizeof(code)), 0);
    if (out) {
        snprintf(cmd, sizeof(cmd), "cat %s/scrape", t->dir);
        ck_assert_int_eq(run_cmd(cmd, out, outlen), 0);
    }
    return atoi(code);
}

static int scrape(const char *opts, const char *path, char *out, size_t outlen)
{
    return scrape_at(&srv, metrics_port, opts, path, out, outlen);
}

/* The value of the sample whose line starts with `series` (name and
 * labels exactly), or -1 if absent. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    }
    return -1;
}

static void ctl(const char *args, int want)
{
    char cmd[512], out[1024];
    snprintf(cmd, sizeof(cmd), "%s -a %s %s", statectl_path(), srv.tcp_addr, args);
    int rc = run_cmd(cmd, out, sizeof(out));
    ck_assert_msg(want ? rc != 0 : rc == 0, "statectl %s: exit %d", args, rc);
}

static char body[256 * 1024];

/* The last checkpoint's figures come back after a restart (read from the
 * checkpoint directory), so the checkpoint-age alert still works; before
 * any checkpoint there is no age, not an age of 0. */
START_TEST(last_checkpoint_survives_a_restart)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s -a %s --json stats", statectl_path(), srv.tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "\"last_checkpoint_age_ms\":null"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s -a %s stats", statectl_path(), srv.tcp_addr);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "last_checkpoint_age_ms: never"), "%s", out);
    ctl("put clicks u1 a", 0);
    ctl("snapshot", 0);
    ctl("put clicks u2 b", 0);
    ctl("snapshot", 0);
    statesrv *c;
    statesrv_stats *s;
    ck_assert_int_eq(statesrv_connect(srv.tcp_addr, NULL, &c), STATESRV_OK);
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    uint64_t bytes = s->last_checkpoint_bytes, unix_ms = s->last_checkpoint_unix_ms;
    ck_assert_uint_eq(s->last_checkpoint_id, 2);
    statesrv_stats_free(s);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&srv), 0);
    ts_restart(&srv, ts_config_args(&srv));
    metrics_port = metrics_port_of(&srv);
    ck_assert_int_eq(statesrv_connect(srv.tcp_addr, NULL, &c), STATESRV_OK);
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    ck_assert_uint_eq(s->last_checkpoint_id, 2);
    ck_assert_uint_eq(s->last_checkpoint_bytes, bytes);
    /* The MANIFEST's time is taken at its commit, the reply's a moment later. */
    ck_assert_uint_le(s->last_checkpoint_unix_ms, unix_ms);
    ck_assert_uint_ge(s->last_checkpoint_unix_ms + 5000, unix_ms);
    ck_assert_uint_lt(s->last_checkpoint_age_ms, 60000);
    ck_assert_uint_eq(s->checkpoints_completed, 0); /* since this start */
    statesrv_stats_free(s);
    statesrv_close(c);
    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    ck_assert(sample(body, "statesrv_last_checkpoint_id") == 2);
    ck_assert(sample(body, "statesrv_last_checkpoint_timestamp_seconds") > 0);
    ck_assert(sample(body, "statesrv_last_checkpoint_age_seconds") >= 0);
}
END_TEST

/* A running snapshot shows its total: progress has entries of
 * total_entries. The failpoint holds the snapshot 2 s once it has counted,
 * so the stats are read while it runs, however fast the machine. */
START_TEST(a_running_snapshot_shows_its_total)
{
    ck_assert_int_eq(ts_stop(&srv), 0);
    setenv("STATESRVD_FAILPOINT", "snapshot-counted", 1);
    ts_restart(&srv, ts_config_args(&srv));
    unsetenv("STATESRVD_FAILPOINT");
    metrics_port = metrics_port_of(&srv);
    ctl("put p k1 v", 0);
    ctl("put q k2 v", 0);
    int fd = raw_connect_tcp(&srv);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Snapshot snap = STATESRV__V1__SNAPSHOT__INIT;
    req.id = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    req.snapshot = &snap;
    raw_send_msg(fd, (const ProtobufCMessage *)&req);
    statesrv *c;
    ck_assert_int_eq(statesrv_connect(srv.tcp_addr, NULL, &c), STATESRV_OK);
    int seen = 0;
    long t0 = ts_now_ms();
    while (!seen && ts_now_ms() - t0 < 10000) {
        statesrv_stats *s;
        ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
        if (s->has_progress && s->progress.total_entries) {
            ck_assert_str_eq(s->progress.kind, "snapshot");
            ck_assert_uint_eq(s->progress.total_entries, 2);
            ck_assert_uint_le(s->progress.entries, s->progress.total_entries);
            seen = 1;
        }
        statesrv_stats_free(s);
        usleep(20 * 1000);
    }
    ck_assert_msg(seen, "no progress with a total while the snapshot ran");
    statesrv_close(c);
    Statesrv__V1__Response *r = raw_recv(fd, 30000);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, 0);
    statesrv__v1__response__free_unpacked(r, NULL);
    close(fd);
}
END_TEST

START_TEST(counters_move_with_requests)
{
    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    ck_assert(strstr(body, "# TYPE statesrv_requests_total counter"));
    ck_assert(strstr(body, "statesrv_build_info{version=\""));
    ck_assert(sample(body, "statesrv_requests_total{op=\"put\",status=\"OK\"}") == 0);
    ck_assert(sample(body, "statesrv_checkpoints_total") == 0);
    ck_assert(sample(body, "statesrv_last_checkpoint_age_seconds") < 0); /* none yet */

    ctl("put clicks u1 a", 0);
    ctl("put clicks u2 b", 0);
    ctl("get clicks nobody", 1);
    ctl("put clicks k v --key-group 4096", 1); /* out of range: INVALID_ARGUMENT */
    ctl("snapshot", 0);

    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    ck_assert(sample(body, "statesrv_requests_total{op=\"put\",status=\"OK\"}") == 2);
    ck_assert(sample(body, "statesrv_requests_total{op=\"put\",status=\"INVALID_ARGUMENT\"}") == 1);
    ck_assert(sample(body, "statesrv_requests_total{op=\"get\",status=\"NOT_FOUND\"}") == 1);
    ck_assert(sample(body, "statesrv_requests_total{op=\"snapshot\",status=\"OK\"}") == 1);
    ck_assert(sample(body, "statesrv_errors_total{kind=\"invalid_argument\"}") == 1);
    ck_assert(sample(body, "statesrv_errors_total{kind=\"protocol\"}") == 0);
    ck_assert(sample(body, "statesrv_request_duration_seconds_count{op=\"put\"}") == 3);
    ck_assert(sample(body, "statesrv_request_duration_seconds_bucket{op=\"put\",le=\"+Inf\"}") ==
              3);
    ck_assert(sample(body, "statesrv_state_entries{state=\"clicks\"}") == 2);
    ck_assert(sample(body, "statesrv_state_bytes{state=\"clicks\"}") > 0);
    ck_assert(sample(body, "statesrv_checkpoints_total") == 1);
    ck_assert(sample(body, "statesrv_last_checkpoint_id") == 1);
    ck_assert(sample(body, "statesrv_last_checkpoint_age_seconds") >= 0);
    ck_assert(sample(body, "statesrv_checkpoint_in_progress") == 0);
    ck_assert(sample(body, "statesrv_connections_total") == 5);
    ck_assert(sample(body, "statesrv_commits_total") >= 3);
    ck_assert(sample(body, "statesrv_bytes_received_total") > 0);
    ck_assert(sample(body, "statesrv_lmdb_map_used_bytes") > 0);
    ck_assert(sample(body, "statesrv_lmdb_map_size_bytes") >=
              sample(body, "statesrv_lmdb_map_used_bytes"));
    ck_assert(sample(body, "statesrv_key_groups") == 128);

    /* A framing error on the wire counts as a protocol error. */
    int fd = raw_connect_tcp(&srv);
    raw_send(fd, "\xff\xff\xff\xff", 4);
    ck_assert(raw_wait_closed(fd, 5000));
    close(fd);
    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    ck_assert(sample(body, "statesrv_errors_total{kind=\"protocol\"}") == 1);
}
END_TEST

static char ctl_out[64 * 1024];

/* Runs statectl against server t with args; its stdout lands in ctl_out.
 * The exit status. */
static int ctl_capture_at(const struct ts *t, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s -a %s %s", statectl_path(), t->tcp_addr, args);
    return run_cmd(cmd, ctl_out, sizeof(ctl_out));
}

static int ctl_capture(const char *args)
{
    return ctl_capture_at(&srv, args);
}

/* Lines of body that start with prefix. */
static int count_series(const char *body_text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = body_text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

static const statesrv_op_detail *op_detail(const statesrv_stats *s, const char *op)
{
    for (size_t i = 0; i < s->n_ops; i++)
        if (strcmp(s->ops[i].op, op) == 0) {
            ck_assert_str_eq(s->op_details[i].op, op);
            return &s->op_details[i];
        }
    ck_abort_msg("op %s missing from stats", op);
    return NULL;
}

static uint64_t status_count(const statesrv_op_detail *d, int status)
{
    for (size_t k = 0; k < d->n_statuses; k++)
        if (d->statuses[k].status == status)
            return d->statuses[k].count;
    return 0;
}

static uint64_t kind_count(const statesrv_error_count *e, size_t n, const char *kind)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].kind, kind) == 0)
            return e[i].count;
    ck_abort_msg("error kind %s missing from stats", kind);
    return 0;
}

/* The line of text that starts with prefix, copied into line. */
static int find_line(const char *text, const char *prefix, char *line, size_t cap)
{
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, len) == 0) {
            size_t n = strcspn(p, "\n");
            snprintf(line, cap, "%.*s", (int)n, p);
            return 1;
        }
    }
    return 0;
}

/* The stats op (through libstatesrv and statectl, text and --json) reports
 * what /metrics reports: statuses per op, latency histograms, errors by kind
 * and checkpoint failures. */
START_TEST(stats_match_metrics)
{
    ctl("put clicks u1 a", 0);
    ctl("put clicks u2 b", 0);
    ctl("get clicks nobody", 1);
    ctl("get clicks nobody", 1);
    ctl("put clicks k v --key-group 4096", 1); /* INVALID_ARGUMENT */
    ctl("snapshot", 0);
    /* A file where snapshot 7 wants its temporary directory: the job fails. */
    char path[256];
    snprintf(path, sizeof(path), "%s/checkpoints/.chk-7.tmp", srv.dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ctl("snapshot --id 7", 1); /* INTERNAL */
    int fd = raw_connect_tcp(&srv);
    raw_send(fd, "\xff\xff\xff\xff", 4); /* a frame larger than any limit */
    ck_assert(raw_wait_closed(fd, 5000));
    close(fd);

    statesrv *c;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(srv.tcp_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);
    /* Nothing happens between the scrape and the stats request (which is
     * counted after its figures were taken): every number must agree. */
    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    statesrv_stats *s;
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);

    /* What was provoked. */
    const statesrv_op_detail *get = op_detail(s, "get"), *put = op_detail(s, "put");
    const statesrv_op_detail *snap = op_detail(s, "snapshot");
    ck_assert_uint_eq(get->n_statuses, 1);
    ck_assert_uint_eq(status_count(get, STATESRV_NOT_FOUND), 2);
    ck_assert_uint_eq(put->n_statuses, 2);
    ck_assert_uint_eq(status_count(put, STATESRV_OK), 2);
    ck_assert_uint_eq(status_count(put, STATESRV_INVALID_ARGUMENT), 1);
    ck_assert_uint_eq(status_count(snap, STATESRV_OK), 1);
    ck_assert_uint_eq(status_count(snap, STATESRV_INTERNAL), 1);
    ck_assert_uint_eq(put->latency_count, 3);
    ck_assert_uint_eq(get->latency_count, 2);
    ck_assert_uint_eq(snap->latency_count, 2);
    ck_assert_uint_eq(s->checkpoint_failures, 1);
    ck_assert_uint_eq(s->checkpoints_completed, 1);
    ck_assert_uint_lt(s->last_checkpoint_age_ms, 60000);
    ck_assert_uint_eq(kind_count(s->connection_errors, s->n_connection_errors, "protocol"), 1);
    ck_assert_uint_eq(kind_count(s->connection_errors, s->n_connection_errors, "idle_timeout"), 0);
    ck_assert_uint_eq(kind_count(s->status_errors, s->n_status_errors, "invalid_argument"), 1);
    ck_assert_uint_eq(kind_count(s->status_errors, s->n_status_errors, "internal"), 1);
    /* Buckets resolve a few microseconds (a loopback get) up to seconds (a
     * snapshot), no bound more than 2.5 times the one before. */
    ck_assert_uint_eq(s->n_latency_bounds, 21);
    ck_assert_uint_le(s->latency_bounds_us[0], 5);
    ck_assert_uint_ge(s->latency_bounds_us[s->n_latency_bounds - 1], 10000000);
    for (size_t i = 1; i < s->n_latency_bounds; i++)
        ck_assert_uint_le(s->latency_bounds_us[i] * 2, s->latency_bounds_us[i - 1] * 5);
    for (size_t i = 0; i < s->n_ops; i++) {
        const statesrv_op_detail *d = &s->op_details[i];
        if (!d->latency_count) {
            ck_assert_ptr_null(d->latency_buckets);
            continue;
        }
        ck_assert_uint_eq(d->n_latency_buckets, s->n_latency_bounds + 1);
        uint64_t total = 0;
        for (size_t k = 0; k < d->n_latency_buckets; k++)
            total += d->latency_buckets[k];
        ck_assert_uint_eq(total, d->latency_count);
        ck_assert(d->latency_p50_us > 0 && d->latency_p50_us <= d->latency_p99_us);
        ck_assert(d->latency_p99_us <= (double)s->latency_bounds_us[s->n_latency_bounds - 1]);
    }
    /* The snapshot that completed took longer than any put: quantiles follow the buckets. */
    ck_assert(snap->latency_p99_us > put->latency_p50_us);

    /* Every number against /metrics, both ways. */
    char series[256];
    int requests = 0;
    for (size_t i = 0; i < s->n_ops; i++) {
        const char *op = s->ops[i].op;
        const statesrv_op_detail *d = &s->op_details[i];
        snprintf(series, sizeof(series), "statesrv_requests_total{op=\"%s\",status=\"OK\"}", op);
        ck_assert_msg(sample(body, series) == (double)status_count(d, STATESRV_OK), "%s", series);
        requests++;
        for (size_t k = 0; k < d->n_statuses; k++) {
            if (d->statuses[k].status == STATESRV_OK)
                continue;
            snprintf(series, sizeof(series), "statesrv_requests_total{op=\"%s\",status=\"%s\"}", op,
                     statesrv_strerror(d->statuses[k].status));
            ck_assert_msg(sample(body, series) == (double)d->statuses[k].count, "%s", series);
            requests++;
        }
        snprintf(series, sizeof(series), "statesrv_request_duration_seconds_count{op=\"%s\"}", op);
        ck_assert_msg(sample(body, series) == (d->latency_count ? (double)d->latency_count : -1),
                      "%s", series);
        if (!d->latency_count)
            continue;
        snprintf(series, sizeof(series), "statesrv_request_duration_seconds_sum{op=\"%s\"}", op);
        double diff = sample(body, series) - (double)d->latency_sum_ns / 1e9; /* %.9f */
        ck_assert_msg(diff < 1e-9 && diff > -1e-9, "%s", series);
        uint64_t cum = 0;
        for (size_t k = 0; k < s->n_latency_bounds; k++) {
            cum += d->latency_buckets[k];
            snprintf(series, sizeof(series),
                     "statesrv_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"}", op,
                     (double)s->latency_bounds_us[k] / 1e6);
            ck_assert_msg(sample(body, series) == (double)cum, "%s", series);
        }
        snprintf(series, sizeof(series),
                 "statesrv_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"}", op);
        ck_assert_msg(sample(body, series) == (double)d->latency_count, "%s", series);
    }
    ck_assert_int_eq(count_series(body, "statesrv_requests_total{"), requests);
    for (size_t i = 0; i < s->n_status_errors + s->n_connection_errors; i++) {
        const statesrv_error_count *e = i < s->n_status_errors
                                            ? &s->status_errors[i]
                                            : &s->connection_errors[i - s->n_status_errors];
        snprintf(series, sizeof(series), "statesrv_errors_total{kind=\"%s\"}", e->kind);
        ck_assert_msg(sample(body, series) == (double)e->count, "%s", series);
    }
    ck_assert_int_eq(count_series(body, "statesrv_errors_total{"),
                     (int)(s->n_status_errors + s->n_connection_errors));
    ck_assert(sample(body, "statesrv_checkpoint_failures_total") == (double)s->checkpoint_failures);
    ck_assert(sample(body, "statesrv_checkpoints_total") == (double)s->checkpoints_completed);
    /* The map's figures (no write between the two: the same last commit). */
    ck_assert(sample(body, "statesrv_lmdb_map_used_bytes") == (double)s->map_used);
    ck_assert(sample(body, "statesrv_lmdb_map_in_use_bytes") == (double)s->map_in_use);
    ck_assert(sample(body, "statesrv_lmdb_map_limit_bytes") == (double)s->map_limit);
    ck_assert(sample(body, "statesrv_lmdb_map_free_pinned_bytes") == (double)s->map_free_pinned);
    ck_assert(strstr(body, "# TYPE statesrv_lmdb_map_in_use_bytes gauge\n"));
    ck_assert(strstr(body, "# TYPE statesrv_lmdb_map_limit_bytes gauge\n"));
    ck_assert_uint_gt(s->map_in_use, 0);
    ck_assert_uint_le(s->map_in_use, s->map_used);
    /* The default map_size_max (1 TiB) less its reserve: 2% of its pages
     * (LMDB's pages are the system's). */
    uint64_t psize = (uint64_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(s->map_limit, (1ULL << 40) - (1ULL << 40) / psize * 2 / 100 * psize);

    /* statectl --json: the same figures (its own hello and stats come after
     * what is compared here). */
    ck_assert_int_eq(ctl_capture("--json stats"), 0);
    ck_assert_ptr_nonnull(strstr(
        ctl_out, "{\"op\":\"get\",\"count\":2,\"errors\":0,\"statuses\":{\"NOT_FOUND\":2},"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "{\"op\":\"put\",\"count\":3,\"errors\":1,\"statuses\":"
                                          "{\"OK\":2,\"INVALID_ARGUMENT\":1},"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\"statuses\":{\"OK\":1,\"INTERNAL\":1}"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\"checkpoint_failures\":1,"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\"connection_errors\":{\"protocol\":1,"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\"status_errors\":{\"invalid_argument\":1,"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\"latency_bounds_us\":[2,5,10,25,50,100,"));
    char map[256];
    snprintf(map, sizeof(map),
             "\"map_used\":%llu,\"map_in_use\":%llu,\"map_limit\":%llu,\"map_free_pinned\":%llu,",
             (unsigned long long)s->map_used, (unsigned long long)s->map_in_use,
             (unsigned long long)s->map_limit, (unsigned long long)s->map_free_pinned);
    ck_assert_msg(strstr(ctl_out, map), "statectl --json stats lacks %s", map);
    /* put's histogram, bucket by bucket, as libstatesrv decoded it; p50
     * and p99 are numbers rounded to 3 decimals (jansson writes 62.5, not
     * 62.500), so they are compared as numbers. */
    char want[512];
    snprintf(want, sizeof(want),
             "\"count\":%llu,\"sum_ns\":%llu,\"p50_us\":", (unsigned long long)put->latency_count,
             (unsigned long long)put->latency_sum_ns);
    const char *at = strstr(ctl_out, want);
    ck_assert_msg(at, "statectl --json stats lacks %s", want);
    char *end;
    double jp50 = strtod(at + strlen(want), &end);
    ck_assert_msg(fabs(jp50 - put->latency_p50_us) < 0.0006, "p50 %f, want %f", jp50,
                  put->latency_p50_us);
    ck_assert(strncmp(end, ",\"p99_us\":", 10) == 0);
    double jp99 = strtod(end + 10, &end);
    ck_assert_msg(fabs(jp99 - put->latency_p99_us) < 0.0006, "p99 %f, want %f", jp99,
                  put->latency_p99_us);
    int n = snprintf(want, sizeof(want), ",\"buckets\":[");
    for (size_t k = 0; k < put->n_latency_buckets; k++)
        n += snprintf(want + n, sizeof(want) - (size_t)n, "%s%llu", k ? "," : "",
                      (unsigned long long)put->latency_buckets[k]);
    snprintf(want + n, sizeof(want) - (size_t)n, "]");
    ck_assert_msg(strncmp(end, want, strlen(want)) == 0, "statectl --json stats: %.200s, want %s",
                  end, want);

    /* statectl's text: the same, for a person. */
    ck_assert_int_eq(ctl_capture("stats"), 0);
    ck_assert_ptr_nonnull(strstr(ctl_out, "\ncheckpoint_failures: 1\n"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\nconnection_errors: protocol 1, idle_timeout 0,"));
    ck_assert_ptr_nonnull(strstr(ctl_out, "\nstatus_errors: invalid_argument 1,"));
    ck_assert_ptr_nonnull(strstr(ctl_out, " internal 1,"));
    snprintf(map, sizeof(map), "\nmap_in_use: %llu\nmap_limit: %llu\nmap_free_pinned: %llu\n",
             (unsigned long long)s->map_in_use, (unsigned long long)s->map_limit,
             (unsigned long long)s->map_free_pinned);
    ck_assert_msg(strstr(ctl_out, map), "statectl stats lacks %s", map);
    char line[256], p50[16], p99[16];
    ck_assert(find_line(ctl_out, "get ", line, sizeof(line)));
    unsigned long long count, errors;
    ck_assert_int_eq(sscanf(line, "get %llu %llu %*s %15s %15s", &count, &errors, p50, p99), 4);
    ck_assert_uint_eq(count, 2);
    ck_assert_uint_eq(errors, 0);
    ck_assert_msg(strstr(line, "  NOT_FOUND 2"), "%s", line);
    ck_assert(find_line(ctl_out, "put ", line, sizeof(line)));
    ck_assert_int_eq(sscanf(line, "put %llu %llu", &count, &errors), 2);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq(errors, 1);
    ck_assert_msg(strstr(line, "  INVALID_ARGUMENT 1"), "%s", line);
    ck_assert(find_line(ctl_out, "snapshot ", line, sizeof(line)));
    ck_assert_msg(strstr(line, "  INTERNAL 1"), "%s", line);
    ck_assert(!find_line(ctl_out, "multi_get ", line, sizeof(line))); /* unused: no line */

    statesrv_stats_free(s);
    statesrv_close(c);
}
END_TEST

/* Puts 16 KiB values (overflow pages of their own) under keys "k<from>"...
 * until two puts in a row are refused with NO_SPACE (the first refusal may
 * want only pages the last commit freed). The number of keys stored. */
static int fill_map(statesrv *c, int from)
{
    static char val[16 * 1024];
    memset(val, 'm', sizeof(val));
    int i = from, refused = 0;
    while (refused < 2 && i < from + 1000) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = {.state = "fill", .key = key, .key_len = strlen(key)};
        int rc = statesrv_put(c, &k, val, sizeof(val));
        if (rc == STATESRV_OK) {
            i++;
            refused = 0;
            continue;
        }
        ck_assert_msg(rc == STATESRV_NO_SPACE, "put: %s", statesrv_errmsg(c));
        refused++;
    }
    ck_assert_msg(refused == 2, "the map did not fill");
    return i - from;
}

struct map_figs {
    uint64_t used, in_use, limit, pinned;
};

/* The map's figures of a server, by libstatesrv, checked against /metrics
 * scraped just before (nothing is written in between). */
static struct map_figs map_figures(const struct ts *t, int port, statesrv *c)
{
    ck_assert_int_eq(scrape_at(t, port, "", "/metrics", body, sizeof(body)), 200);
    statesrv_stats *s;
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    struct map_figs f = {s->map_used, s->map_in_use, s->map_limit, s->map_free_pinned};
    statesrv_stats_free(s);
    ck_assert(sample(body, "statesrv_lmdb_map_used_bytes") == (double)f.used);
    ck_assert(sample(body, "statesrv_lmdb_map_in_use_bytes") == (double)f.in_use);
    ck_assert(sample(body, "statesrv_lmdb_map_limit_bytes") == (double)f.limit);
    ck_assert(sample(body, "statesrv_lmdb_map_free_pinned_bytes") == (double)f.pinned);
    return f;
}

/* A full map (map_size_max 2 MiB): map_in_use is close to map_limit, the
 * line where puts stop. Deleting most entries lowers map_in_use (and puts
 * work again), while map_used, the high-water mark, stays where it was:
 * an operator alerting on map_in_use / map_limit sees the room come back. */
START_TEST(map_in_use_falls_after_deletes)
{
    ts_start_with_config(&full, "metrics_listen = 127.0.0.1:0\nmap_size = 1M\nmap_size_max = 2M\n");
    int port = metrics_port_of(&full);
    statesrv *c;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(full.tcp_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);

    struct map_figs empty = map_figures(&full, port, c);
    uint64_t psize = (uint64_t)sysconf(_SC_PAGESIZE);
    /* 2 MiB less the reserve: 2% of its pages, at least 64 of them. */
    uint64_t reserve = (2u << 20) / psize * 2 / 100;
    reserve = (reserve > 64 ? reserve : 64) * psize;
    ck_assert_uint_eq(empty.limit, (2u << 20) - reserve);
    ck_assert_uint_lt(empty.in_use, empty.limit / 4);

    int n = fill_map(c, 0);
    ck_assert_int_gt(n, 40);
    struct map_figs filled = map_figures(&full, port, c);
    ck_assert_uint_eq(filled.limit, empty.limit);
    /* Refused: what is in use plus what one more value may take (its
     * pages, the copies and what the commit writes) passes the line. */
    ck_assert_uint_le(filled.in_use, filled.limit);
    ck_assert_uint_gt(filled.in_use, filled.limit - 32 * psize);
    ck_assert_uint_ge(filled.used, filled.in_use);
    ck_assert_uint_eq(filled.pinned, 0);
    /* A store that refuses puts is not ready for traffic. */
    char rbody[512];
    ck_assert_int_eq(scrape_at(&full, port, "", "/readyz", rbody, sizeof(rbody)), 503);
    ck_assert_msg(strstr(rbody, "the store is full"), "readyz: %s", rbody);
    ck_assert_int_eq(scrape_at(&full, port, "", "/healthz", NULL, 0), 200);

    /* Delete all but the last 5 keys: one batch, and a clear of a key. */
    statesrv_batch *b = statesrv_batch_new();
    for (int i = 0; i < n - 6; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        statesrv_key k = {.state = "fill", .key = key, .key_len = strlen(key)};
        ck_assert_int_eq(statesrv_batch_delete(b, &k), STATESRV_OK);
    }
    ck_assert_msg(statesrv_batch_commit(c, b) == STATESRV_OK, "batch: %s", statesrv_errmsg(c));
    statesrv_batch_free(b);
    char key[16];
    snprintf(key, sizeof(key), "k%d", n - 6);
    statesrv_key k = {.state = "fill", .key = key, .key_len = strlen(key)};
    uint64_t deleted = 0;
    ck_assert_int_eq(statesrv_clear(c, &k, &deleted), STATESRV_OK);
    ck_assert_uint_eq(deleted, 1);
    /* A couple of puts: they take freed pages, not new ones. */
    static char val[16 * 1024];
    memset(val, 'n', sizeof(val));
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "again%d", i);
        statesrv_key nk = {.state = "fill", .key = key, .key_len = strlen(key)};
        ck_assert_msg(statesrv_put(c, &nk, val, sizeof(val)) == STATESRV_OK, "put: %s",
                      statesrv_errmsg(c));
    }
    struct map_figs after = map_figures(&full, port, c);
    ck_assert_uint_eq(after.limit, filled.limit);
    ck_assert_uint_ge(after.used, filled.used); /* the high-water mark stays */
    ck_assert_msg(after.in_use < filled.in_use / 3,
                  "map_in_use %llu after deleting %d of %d values (full: %llu)",
                  (unsigned long long)after.in_use, n - 5, n, (unsigned long long)filled.in_use);
    ck_assert_uint_eq(after.pinned, 0);
    ck_assert_int_eq(scrape_at(&full, port, "", "/readyz", NULL, 0), 200);

    /* statectl shows the same. */
    ck_assert_int_eq(ctl_capture_at(&full, "stats"), 0);
    char want[128];
    snprintf(want, sizeof(want), "\nmap_in_use: %llu\nmap_limit: %llu\n",
             (unsigned long long)after.in_use, (unsigned long long)after.limit);
    ck_assert_msg(strstr(ctl_out, want), "statectl stats lacks %s", want);

    /* And the room is real: puts fill it again. */
    ck_assert_int_gt(fill_map(c, 1000), n / 2);
    statesrv_close(c);
}
END_TEST

START_TEST(only_get_metrics_is_served)
{
    ck_assert_int_eq(scrape("", "/", NULL, 0), 404);
    ck_assert_int_eq(scrape("", "/metrics/x", NULL, 0), 404);
    ck_assert_int_eq(scrape("", "/metrics?name=x", NULL, 0), 200);
    /* Liveness and readiness beside the metrics. */
    ck_assert_int_eq(scrape("", "/healthz", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "ok\n");
    ck_assert_int_eq(scrape("", "/readyz", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "ready\n");
    ck_assert_int_eq(scrape("-X POST", "/readyz", NULL, 0), 405);
    /* The process_* metrics of the Prometheus conventions. */
    ck_assert_int_eq(scrape("", "/metrics", body, sizeof(body)), 200);
    double rss = sample(body, "process_resident_memory_bytes");
    long rss_kib = proc_rss_kib(srv.pid);
    ck_assert_msg(rss > rss_kib * 1024.0 / 2 && rss < rss_kib * 1024.0 * 2, "rss %g vs %ld KiB",
                  rss, rss_kib);
    ck_assert(sample(body, "process_open_fds") >= 4); /* std*, listeners, the loop */
    ck_assert(sample(body, "process_max_fds") >= sample(body, "process_open_fds"));
    ck_assert(sample(body, "process_cpu_seconds_total") >= 0);
    double start = sample(body, "process_start_time_seconds");
    ck_assert_msg(start > (double)time(NULL) - 600 && start <= (double)time(NULL) + 1,
                  "start time %f", start);
    ck_assert_ptr_nonnull(strstr(body, "# TYPE process_cpu_seconds_total counter\n"));
    ck_assert_int_eq(scrape("-X POST", "/metrics", body, sizeof(body)), 405);
    ck_assert(strstr(body, "GET"));
    ck_assert_int_eq(scrape("-X DELETE", "/metrics", NULL, 0), 405);
    ck_assert_int_eq(scrape("-I", "/metrics", body, sizeof(body)), 200);
    ck_assert_ptr_null(strstr(body, "statesrv_")); /* HEAD: headers only */
    /* A request larger than 8 KiB. */
    char opt[10100];
    int n = snprintf(opt, sizeof(opt), "-H 'X-Big: ");
    memset(opt + n, 'b', 9000);
    snprintf(opt + n + 9000, sizeof(opt) - (size_t)n - 9000, "'");
    ck_assert_int_eq(scrape(opt, "/metrics", NULL, 0), 431);
    /* Not HTTP at all, while another scraper sits idle on its connection:
     * 400, and the endpoint keeps serving. */
    struct ts fake = srv;
    fake.port = metrics_port;
    int idle = raw_connect_tcp(&fake);
    int fd = raw_connect_tcp(&fake);
    raw_send(fd, "HELLO THERE\r\n\r\n", 15);
    char buf[128] = "";
    ssize_t got = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_gt(got, 0);
    ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 400"));
    close(fd);
    ck_assert_int_eq(scrape("", "/metrics", NULL, 0), 200);
    close(idle);
    /* The server itself is unaffected. */
    ctl("ping", 0);
}
END_TEST

START_TEST(bad_metrics_listen_is_refused)
{
    ck_assert_int_eq(ts_stop(&srv), 0);
    const char *bad[] = {"--metrics-listen", "127.0.0.1:99999", NULL};
    ck_assert_int_ne(ts_run_expect_exit(&srv, bad), 0);
    ck_assert(ts_log_contains(&srv, "metrics_listen"));
}
END_TEST

/* A batch replayed after the map grew counts each request and each
 * connection error once. The server is stopped while a malformed frame
 * (connection A) and a put that needs a larger map (connection B) arrive,
 * so one batch holds both: the malformed frame is answered first, then the
 * put meets MDB_MAP_FULL, the map grows and the batch runs again. */
START_TEST(replayed_batch_counts_once)
{
    struct ts big = {0};
    ts_start_with_config(&big, "map_size = 1M\n");
    statesrv *c;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(big.tcp_addr, NULL, &c, err, sizeof(err)), STATESRV_OK);
    /* 60% of the map in use: below the 80% at which it grows early. */
    static uint8_t value[500 * 1024];
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "f%d", i);
        statesrv_key k = {.state = "big", .key = key, .key_len = strlen(key)};
        ck_assert_int_eq(statesrv_put(c, &k, value, 200 * 1024), STATESRV_OK);
    }
    ck_assert(!ts_log_contains(&big, "map grown"));
    /* Unix sockets queue what is sent in the receiver at once: both frames
     * are there, whole, when the server wakes. */
    int a = raw_connect_unix(&big), b = raw_connect_unix(&big);
    int sndbuf = 4 << 20;
    ck_assert_int_eq(setsockopt(b, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
    put.state = pb_str("big");
    put.key = pb_str("k");
    put.value.data = value;
    put.value.len = sizeof(value);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.id = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_PUT;
    req.put = &put;
    ck_assert_int_eq(kill(big.pid, SIGSTOP), 0);
    raw_send(a, "\x00\x00\x00\x02\xff\xff", 6); /* not a Request */
    usleep(20000);
    raw_send_msg(b, &req.base);
    usleep(20000);
    ck_assert_int_eq(kill(big.pid, SIGCONT), 0);
    Statesrv__V1__Response *r = raw_recv(b, 10000);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert(raw_wait_closed(a, 5000));
    close(a);
    close(b);
    ck_assert(ts_log_contains(&big, "map grown"));

    statesrv_stats *s;
    ck_assert_int_eq(statesrv_stats_get(c, &s), STATESRV_OK);
    ck_assert_uint_eq(kind_count(s->connection_errors, s->n_connection_errors, "protocol"), 1);
    ck_assert_uint_eq(status_count(op_detail(s, "put"), STATESRV_OK), 4);
    statesrv_stats_free(s);
    statesrv_close(c);
    ts_cleanup(&big);
}
END_TEST

Suite *sv_suite_metrics(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, counters_move_with_requests);
    tcase_add_test(tc, last_checkpoint_survives_a_restart);
    tcase_add_test(tc, a_running_snapshot_shows_its_total);
    tcase_add_test(tc, stats_match_metrics);
    tcase_add_test(tc, replayed_batch_counts_once);
    tcase_add_test(tc, map_in_use_falls_after_deletes);
    tcase_add_test(tc, only_get_metrics_is_served);
    tcase_add_test(tc, bad_metrics_listen_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
