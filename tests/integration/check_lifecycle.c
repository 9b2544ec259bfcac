/* Start-up, restart, shutdown and crash behaviour of a real statesrvd. */
#include "harness.h"
#include "suites.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct ts srv;

static void teardown(void)
{
    ts_cleanup(&srv);
}

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static void put_req(Statesrv__V1__Request *req, Statesrv__V1__Put *put, uint64_t id,
                    const char *key)
{
    statesrv__v1__request__init(req);
    statesrv__v1__put__init(put);
    put->state = pb_str("life");
    put->key = bin(key);
    put->value = bin(key);
    req->id = id;
    req->op_case = STATESRV__V1__REQUEST__OP_PUT;
    req->put = put;
}

/* Puts n keys "k<i>" one at a time; each is acknowledged before the next. */
static void put_acked(int fd, int from, int n)
{
    char key[32];
    for (int i = from; i < from + n; i++) {
        Statesrv__V1__Request req;
        Statesrv__V1__Put put;
        snprintf(key, sizeof(key), "k%d", i);
        put_req(&req, &put, (uint64_t)i + 1, key);
        raw_send_msg(fd, &req.base);
        Statesrv__V1__Response *r = raw_recv(fd, 5000);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
}

/* Checks keys k<from>..k<from+n-1> are all present. */
static void assert_present(int fd, int from, int n)
{
    char key[32];
    for (int i = from; i < from + n; i++) {
        Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
        Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
        snprintf(key, sizeof(key), "k%d", i);
        get.state = pb_str("life");
        get.key = bin(key);
        req.id = (uint64_t)i + 1;
        req.op_case = STATESRV__V1__REQUEST__OP_GET;
        req.get = &get;
        raw_send_msg(fd, &req.base);
        Statesrv__V1__Response *r = raw_recv(fd, 5000);
        ck_assert_ptr_nonnull(r);
        ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "%s missing: %s", key, r->message);
        ck_assert_uint_eq(r->get->value.len, strlen(key));
        statesrv__v1__response__free_unpacked(r, NULL);
    }
}

START_TEST(restart_keeps_data)
{
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    put_acked(fd, 0, 100);
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0);
    ck_assert(ts_log_contains(&srv, "stopped cleanly"));
    ts_restart(&srv, NULL);
    fd = raw_connect_unix(&srv);
    assert_present(fd, 0, 100);
    close(fd);
}
END_TEST

static void kill9_loses_nothing(const char *sync)
{
    const char *extra[] = {"--sync", sync, NULL};
    ts_start(&srv, extra);
    for (int round = 0; round < 3; round++) {
        int fd = raw_connect_tcp(&srv);
        put_acked(fd, round * 200, 200);
        close(fd);
        ts_kill(&srv); /* SIGKILL right after the last acknowledgement */
        ts_restart(&srv, extra);
        fd = raw_connect_tcp(&srv);
        assert_present(fd, 0, (round + 1) * 200);
        close(fd);
    }
}

START_TEST(kill9_sync_none)
{
    kill9_loses_nothing("none");
}
END_TEST

START_TEST(kill9_sync_always)
{
    kill9_loses_nothing("always");
}
END_TEST

START_TEST(sigterm_answers_what_was_read)
{
    enum { N = 5000 };
    ts_start(&srv, NULL);
    int fd = raw_connect_tcp(&srv);
    /* A burst of writes, then SIGTERM as soon as the first is answered. */
    size_t cap = (size_t)N * 48, len = 0;
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    char key[32];
    for (int i = 0; i < N; i++) {
        Statesrv__V1__Request req;
        Statesrv__V1__Put put;
        snprintf(key, sizeof(key), "k%d", i);
        put_req(&req, &put, (uint64_t)i + 1, key);
        size_t n = protobuf_c_message_pack(&req.base, buf + len + 4);
        buf[len] = (uint8_t)(n >> 24);
        buf[len + 1] = (uint8_t)(n >> 16);
        buf[len + 2] = (uint8_t)(n >> 8);
        buf[len + 3] = (uint8_t)n;
        len += n + 4;
    }
    raw_send(fd, buf, len);
    free(buf);
    Statesrv__V1__Response *r = raw_recv(fd, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 1);
    statesrv__v1__response__free_unpacked(r, NULL);
    kill(srv.pid, SIGTERM);
    /* Every reply that arrives is in order and OK; then the server says
     * why it closes (id 0) and closes. */
    int answered = 1, goodbye = 0;
    while ((r = raw_recv(fd, 10000)) != NULL) {
        ck_assert_int_eq(goodbye, 0);
        if (r->id == 0) {
            ck_assert_int_eq(r->status, STATESRV__V1__STATUS__UNAVAILABLE);
            ck_assert_str_eq(r->message, "server is shutting down");
            goodbye = 1;
            statesrv__v1__response__free_unpacked(r, NULL);
            continue;
        }
        ck_assert_uint_eq(r->id, (uint64_t)answered + 1);
        ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
        statesrv__v1__response__free_unpacked(r, NULL);
        answered++;
    }
    ck_assert_int_eq(goodbye, 1);
    close(fd);
    ck_assert_int_eq(ts_stop(&srv), 0); /* already exiting: reaps it */
    ck_assert(ts_log_contains(&srv, "stopped cleanly"));
    /* Every acknowledged write is there after a restart. */
    ts_restart(&srv, NULL);
    fd = raw_connect_tcp(&srv);
    assert_present(fd, 0, answered);
    close(fd);
}
END_TEST

START_TEST(key_groups_mismatch_refused)
{
    const char *kg256[] = {"--key-groups", "256", NULL};
    ts_start(&srv, kg256);
    ck_assert_int_eq(ts_stop(&srv), 0);
    const char *kg64[] = {"--listen", "127.0.0.1:0", "--key-groups", "64", NULL};
    ck_assert_int_eq(ts_run_expect_exit(&srv, kg64), 1);
    ck_assert(ts_log_contains(&srv, "created with key_groups = 256"));
    /* The advice works (restoring a checkpoint elsewhere would not: a
     * restore needs the same key_groups). */
    ck_assert(ts_log_contains(&srv, "set key_groups = 256 again"));
    ck_assert(!ts_log_contains(&srv, "restore a checkpoint into a new directory"));
    /* Without a value, the recorded one is used. */
    ts_restart(&srv, NULL);
    ck_assert(ts_log_contains(&srv, "key_groups 256"));
}
END_TEST

START_TEST(config_error_names_file_and_line)
{
    ts_start(&srv, NULL);
    ck_assert_int_eq(ts_stop(&srv), 0);
    char conf[128];
    snprintf(conf, sizeof(conf), "%s/bad.conf", srv.dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# fine\nlisten = 127.0.0.1:0\nmax_frame_size = huge\n");
    fclose(f);
    const char *extra[] = {"--config", conf, NULL};
    ck_assert_int_eq(ts_run_expect_exit(&srv, extra), 1);
    ck_assert(ts_log_contains(&srv, "bad.conf:3: max_frame_size = 'huge'"));
}
END_TEST

/* A port in use is refused before anything is created on disk. */
START_TEST(a_port_in_use_is_refused_before_the_data_directory_is_made)
{
    ts_start(&srv, NULL);
    struct ts other;
    memset(&other, 0, sizeof(other));
    snprintf(other.dir, sizeof(other.dir), "/tmp/svit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(other.dir));
    snprintf(other.log, sizeof(other.log), "%s/statesrvd.log", other.dir);
    const char *extra[] = {"--listen", srv.tcp_addr, NULL};
    ck_assert_int_eq(ts_run_expect_exit(&other, extra), 1);
    ck_assert(ts_log_contains(&other, "already in use"));
    char data[128];
    snprintf(data, sizeof(data), "%s/data", other.dir);
    ck_assert_int_ne(access(data, F_OK), 0);
    ts_cleanup(&other);
}
END_TEST

/* --check-config reads and checks, prints what is in effect (which reads
 * back the same), creates nothing, and names a bad line. */
START_TEST(check_config_prints_the_settings_in_effect_and_creates_nothing)
{
    char dir[64], conf[128], again[128], cmd[512];
    snprintf(dir, sizeof(dir), "/tmp/svit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/a.conf", dir);
    snprintf(again, sizeof(again), "%s/b.conf", dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "max_states = 64\nsync = always\nmax_frame_size = 1M\nmax_value_size = 512K\n");
    fclose(f);
    static char out[8192], out2[8192];
    snprintf(cmd, sizeof(cmd), "%s --check-config -c %s -d %s/data 2>/dev/null", statesrvd_path(),
             conf, dir);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "\nmax_states = 64\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nsync = always\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nmax_frame_size = 1M\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nunix_socket =\n"));
    char data[128];
    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_ne(access(data, F_OK), 0);
    /* What it prints is a configuration that reads back the same. */
    f = fopen(again, "w");
    ck_assert_ptr_nonnull(f);
    fputs(out, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s --check-config -c %s 2>/dev/null", statesrvd_path(), again);
    ck_assert_int_eq(run_cmd(cmd, out2, sizeof(out2)), 0);
    ck_assert_str_eq(out2, out);
    /* A bad value: exit 1, the file and line named. */
    f = fopen(conf, "w");
    fprintf(f, "# ok\nmax_states = lots\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s --check-config -c %s 2>&1", statesrvd_path(), conf);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "a.conf:2: max_states = 'lots'"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(second_server_on_same_dir_refused)
{
    ts_start(&srv, NULL);
    const char *extra[] = {"--listen", "127.0.0.1:0", NULL};
    struct ts other = srv;
    snprintf(other.log, sizeof(other.log), "%s/other.log", srv.dir);
    ck_assert_int_eq(ts_run_expect_exit(&other, extra), 1);
    ck_assert(ts_log_contains(&other, "in use by another statesrvd"));
    /* The first one is unharmed. */
    int fd = raw_connect_tcp(&srv);
    put_acked(fd, 0, 1);
    close(fd);
}
END_TEST

/* Reads one notification from systemd's socket: 1 when it holds want. */
static int notified(int fd, const char *want, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[512];
    while (poll(&p, 1, timeout_ms) == 1) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            return 0;
        buf[n] = '\0';
        if (strstr(buf, want))
            return 1;
    }
    return 0;
}

/* Type=notify: READY=1 once it serves, STOPPING=1 when it begins to stop,
 * on the socket NOTIFY_SOCKET names (as systemd sets it). */
START_TEST(systemd_is_told_when_it_is_ready_and_stopping)
{
    char dir[] = "/tmp/svit-notify-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    ts_start(&srv, NULL);
    unsetenv("NOTIFY_SOCKET");
    ck_assert(notified(fd, "READY=1", 10000));
    ck_assert_int_eq(ts_stop(&srv), 0);
    ck_assert(notified(fd, "STOPPING=1", 5000));
    close(fd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(usage_and_version)
{
    char out[4096];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --help", statesrvd_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "--data-dir"));
    snprintf(cmd, sizeof(cmd), "%s --version", statesrvd_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "statesrvd "));
    snprintf(cmd, sizeof(cmd), "%s --no-such-flag 2>/dev/null", statesrvd_path());
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 2);
}
END_TEST

Suite *sv_suite_lifecycle(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, restart_keeps_data);
    tcase_add_test(tc, kill9_sync_none);
    tcase_add_test(tc, kill9_sync_always);
    tcase_add_test(tc, sigterm_answers_what_was_read);
    tcase_add_test(tc, key_groups_mismatch_refused);
    tcase_add_test(tc, config_error_names_file_and_line);
    tcase_add_test(tc, second_server_on_same_dir_refused);
    tcase_add_test(tc, a_port_in_use_is_refused_before_the_data_directory_is_made);
    tcase_add_test(tc, check_config_prints_the_settings_in_effect_and_creates_nothing);
    tcase_add_test(tc, usage_and_version);
    tcase_add_test(tc, systemd_is_told_when_it_is_ready_and_stopping);
    suite_add_tcase(s, tc);
    return s;
}
