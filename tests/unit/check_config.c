/* Config: defaults, file parsing with libinih, errors that name file:line. */
#include "config.h"
#include "suites.h"
#include "sv_error.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static const char *write_conf(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/svconf-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load(const char *text, struct sv_config *cfg, char *err, size_t errlen)
{
    sv_config_defaults(cfg);
    int rc = sv_config_load(cfg, write_conf(text), err, errlen);
    unlink(path);
    return rc;
}

START_TEST(defaults_are_valid)
{
    struct sv_config cfg;
    char err[256];
    sv_config_defaults(&cfg);
    ck_assert_int_eq(sv_config_validate(&cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.listen, "127.0.0.1:7420");
    ck_assert_uint_eq(cfg.key_groups, 128);
    ck_assert_int_eq(cfg.key_groups_set, 0);
    ck_assert_uint_eq(cfg.unix_socket_mode, 0600);
    ck_assert_uint_eq(cfg.max_frame_size, 16u << 20);
    ck_assert_int_eq(cfg.sync, SV_SYNC_NONE);
}
END_TEST

/* libinih reads lines of at most 198 bytes: one that long loads whole, a
 * longer one is refused naming its line (not "syntax error" on the next). */
START_TEST(long_lines_are_refused_by_name)
{
    char conf_path[] = "/tmp/svconf-XXXXXX";
    int fd = mkstemp(conf_path);
    ck_assert_int_ge(fd, 0);
    for (int extra = 0; extra <= 1; extra++) {
        char value[256];
        size_t vlen = 198 - strlen("data_dir = ") + (size_t)extra;
        memset(value, 'd', vlen);
        value[0] = '/';
        value[vlen] = '\0';
        FILE *f = fopen(conf_path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "# a comment\ndata_dir = %s\nmax_states = 7\n", value);
        fclose(f);
        struct sv_config cfg;
        char err[512] = "";
        sv_config_defaults(&cfg);
        int rc = sv_config_load(&cfg, conf_path, err, sizeof(err));
        if (!extra) {
            ck_assert_msg(rc == 0, "%s", err);
            ck_assert_str_eq(cfg.data_dir, value);
            ck_assert_uint_eq(cfg.max_states, 7);
        } else {
            ck_assert_int_eq(rc, SV_EINVAL);
            ck_assert_msg(strstr(err, ":2: the line is 199 bytes"), "%s", err);
        }
    }
    close(fd);
    unlink(conf_path);
}
END_TEST

START_TEST(sample_config_loads)
{
    /* The shipped sample must always be accepted as is. */
    struct sv_config cfg;
    char err[512];
    sv_config_defaults(&cfg);
    int rc = sv_config_load(&cfg, "conf/statesrvd.conf", err, sizeof(err));
    ck_assert_msg(rc == 0, "conf/statesrvd.conf: %s", err);
    ck_assert_int_eq(sv_config_validate(&cfg, err, sizeof(err)), 0);
    /* key_groups is left unset: an existing directory's value is used. */
    ck_assert_int_eq(cfg.key_groups_set, 0);
    ck_assert_uint_eq(cfg.key_groups, 128);
}
END_TEST

START_TEST(values_parse)
{
    struct sv_config cfg;
    char err[256];
    ck_assert_int_eq(load("# comment\n"
                          "listen = [::1]:9000\n"
                          "unix_socket = /tmp/x.sock\n"
                          "unix_socket_mode = 0660\n"
                          "key_groups = 4096\n"
                          "max_states = 7\n"
                          "map_size = 64M\n"
                          "map_size_max = 2GiB\n"
                          "sync = always\n"
                          "max_frame_size = 1M\n"
                          "max_value_size = 1000\n"
                          "log_level = debug ; inline comment\n",
                          &cfg, err, sizeof(err)),
                     0);
    ck_assert_str_eq(cfg.listen, "[::1]:9000");
    ck_assert_str_eq(cfg.unix_socket, "/tmp/x.sock");
    ck_assert_uint_eq(cfg.unix_socket_mode, 0660);
    ck_assert_uint_eq(cfg.key_groups, 4096);
    ck_assert_int_eq(cfg.key_groups_set, 1);
    ck_assert_uint_eq(cfg.max_states, 7);
    ck_assert_uint_eq(cfg.map_size, 64ull << 20);
    ck_assert_uint_eq(cfg.map_size_max, 2ull << 30);
    ck_assert_int_eq(cfg.sync, SV_SYNC_ALWAYS);
    ck_assert_uint_eq(cfg.max_frame_size, 1u << 20);
    ck_assert_uint_eq(cfg.max_value_size, 1000);
    ck_assert_int_eq(cfg.log_level, SV_LOG_DEBUG);
}
END_TEST

/* Each bad file must be refused with the right line and a useful word. */
static const struct {
    const char *text;
    const char *expect; /* substring of the error */
} bad_files[] = {
    {"bogus = 1\n", ":1: unknown setting 'bogus'"},
    {"listen = x:1\n\nmax_states = 0\n", ":3: max_states = '0'"},
    {"key_groups = 32769\n", "key_groups"},
    {"key_groups = -1\n", "key_groups"},
    {"key_groups = 12abc\n", "key_groups"},
    {"sync = sometimes\n", "expected none or always"},
    {"map_size = 10Q\n", "map_size"},
    {"map_size = 99999999999999999999999\n", "map_size"},
    {"unix_socket_mode = 0999\n", "octal"},
    {"log_level = loud\n", "log_level"},
    {"[section]\nlisten = a:1\n", "sections are not used"},
    {"this line has no equals sign\n", ":1: syntax error"},
    {"max_connections = 0\n", "max_connections"},
    {"data_dir =\n", "data_dir must not be empty"},
    {"listen = 127.0.0.1:99999\n", ":1: listen = '127.0.0.1:99999'"},
    {"listen = localhost\n", "expected HOST:PORT"},
    {"listen = [::1:80\n", "listen"},
    {"checkpoint_compression = lz4\n", "expected zstd or none"},
    {"checkpoint_compression_level = 99\n", "checkpoint_compression_level"},
    {"checkpoint_retain = 0\n", "checkpoint_retain"},
};

START_TEST(bad_file_refused)
{
    struct sv_config cfg;
    char err[512] = "";
    int rc = load(bad_files[_i].text, &cfg, err, sizeof(err));
    ck_assert_int_eq(rc, SV_EINVAL);
    ck_assert_msg(strstr(err, bad_files[_i].expect) != NULL, "error '%s' lacks '%s'", err,
                  bad_files[_i].expect);
    ck_assert_msg(strstr(err, "/tmp/svconf-") == err, "error '%s' does not name the file", err);
}
END_TEST

START_TEST(missing_file)
{
    struct sv_config cfg;
    char err[256];
    sv_config_defaults(&cfg);
    ck_assert_int_lt(sv_config_load(&cfg, "/nonexistent/statesrvd.conf", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/statesrvd.conf"));
}
END_TEST

START_TEST(cross_checks)
{
    struct sv_config cfg;
    char err[256];
    sv_config_defaults(&cfg);
    cfg.max_value_size = cfg.max_frame_size;
    ck_assert_int_eq(sv_config_validate(&cfg, err, sizeof(err)), SV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "max_value_size"));

    sv_config_defaults(&cfg);
    cfg.listen[0] = '\0';
    ck_assert_int_eq(sv_config_validate(&cfg, err, sizeof(err)), SV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "nothing to listen on"));

    sv_config_defaults(&cfg);
    cfg.map_size = cfg.map_size_max * 2;
    ck_assert_int_eq(sv_config_validate(&cfg, err, sizeof(err)), SV_EINVAL);
}
END_TEST

START_TEST(sizes)
{
    uint64_t v;
    ck_assert_int_eq(sv_parse_size("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(sv_parse_size("4k", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(sv_parse_size("3MiB", &v), 0);
    ck_assert_uint_eq(v, 3u << 20);
    ck_assert_int_eq(sv_parse_size("1T", &v), 0);
    ck_assert_uint_eq(v, 1ull << 40);
    ck_assert_int_eq(sv_parse_size("", &v), SV_EINVAL);
    ck_assert_int_eq(sv_parse_size("-1", &v), SV_EINVAL);
    ck_assert_int_eq(sv_parse_size(" 1", &v), SV_EINVAL);
    ck_assert_int_eq(sv_parse_size("1 M", &v), SV_EINVAL);
    ck_assert_int_eq(sv_parse_size("17179869184T", &v), SV_EINVAL); /* overflows */
    ck_assert_int_eq(sv_parse_u64("42", 1, 100, &v), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(sv_parse_u64("101", 1, 100, &v), SV_EINVAL);
    ck_assert_int_eq(sv_parse_u64("+5", 1, 100, &v), SV_EINVAL);
}
END_TEST

Suite *sv_suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, defaults_are_valid);
    tcase_add_test(tc, sample_config_loads);
    tcase_add_test(tc, long_lines_are_refused_by_name);
    tcase_add_test(tc, values_parse);
    tcase_add_loop_test(tc, bad_file_refused, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, cross_checks);
    tcase_add_test(tc, sizes);
    suite_add_tcase(s, tc);
    return s;
}
