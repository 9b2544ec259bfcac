/* The Prometheus endpoint, scraped with a real HTTP client (curl) while a
 * real statesrvd serves requests. */
#include "harness.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ts srv;
static int metrics_port;

static void setup(void)
{
    ts_start_with_config(&srv, "metrics_listen = 127.0.0.1:0\n");
    /* The server says where it listens: "metrics on http://127.0.0.1:PORT/metrics". */
    FILE *f = fopen(srv.log, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    metrics_port = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "metrics on http://127.0.0.1:");
        if (p)
            metrics_port = atoi(p + strlen("metrics on http://127.0.0.1:"));
    }
    fclose(f);
    ck_assert_int_gt(metrics_port, 0);
}

static void teardown(void)
{
    ts_cleanup(&srv);
}

/* Scrapes path with curl; returns the HTTP status, body in out. */
static int scrape(const char *opts, const char *path, char *out, size_t outlen)
{
    char cmd[12 * 1024], code[16];
    snprintf(cmd, sizeof(cmd),
             "curl -s -m 5 %s -o %s/scrape -w '%%{http_code}' http://127.0.0.1:%d%s", opts, srv.dir,
             metrics_port, path);
    ck_assert_int_eq(run_cmd(cmd, code, sizeof(code)), 0);
    if (out) {
        snprintf(cmd, sizeof(cmd), "cat %s/scrape", srv.dir);
        ck_assert_int_eq(run_cmd(cmd, out, outlen), 0);
    }
    return atoi(code);
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
    ctl("put a/b k v", 1); /* a bad state name: INVALID_ARGUMENT */
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

START_TEST(only_get_metrics_is_served)
{
    ck_assert_int_eq(scrape("", "/", NULL, 0), 404);
    ck_assert_int_eq(scrape("", "/metrics/x", NULL, 0), 404);
    ck_assert_int_eq(scrape("", "/metrics?name=x", NULL, 0), 200);
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

Suite *sv_suite_metrics(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, counters_move_with_requests);
    tcase_add_test(tc, only_get_metrics_is_served);
    tcase_add_test(tc, bad_metrics_listen_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
