#include "config.h"
#include "sv_ckpt_format.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libinih's INI_MAX_LINE: a line (its newline included) must be shorter. */
#define CONFIG_LINE_MAX 199 /* so at most 198 bytes before the newline */
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

int sv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return SV_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return SV_EINVAL;
    *out = v;
    return 0;
}

int sv_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return SV_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return SV_EINVAL;
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},      {"B", 1},    {"K", KIB},   {"KB", KIB}, {"KiB", KIB},
                 {"M", MIB},   {"MB", MIB}, {"MiB", MIB}, {"G", GIB},  {"GB", GIB},
                 {"GiB", GIB}, {"T", TIB},  {"TB", TIB},  {"TiB", TIB}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return SV_EINVAL;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return SV_EINVAL;
}

/* HOST:PORT or [V6]:PORT; the host is resolved when the server binds. */
static int check_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return SV_EINVAL;
    if (v[0] == '[' && (colon - v < 3 || colon[-1] != ']'))
        return SV_EINVAL;
    uint64_t port;
    return sv_parse_u64(colon + 1, 0, 65535, &port);
}

/* --- the settings ----------------------------------------------------------
 *
 * One row per setting: its name, how its value is read, where it goes, its
 * bounds, its default (written as the file would write it, and applied at
 * start through the same parser) and one line of what it does. The parser,
 * the defaults and `statesrvd --settings` (which tests/tools/check-man.sh
 * compares with docs/configuration.md) all read this table. */

enum setting_type {
    T_STRING,   /* any text that fits */
    T_NONEMPTY, /* text, not empty */
    T_LISTEN,   /* HOST:PORT or [V6]:PORT, or empty */
    T_SIZE32,   /* a size with suffixes, into a uint32_t */
    T_SIZE64,   /* ... into a uint64_t */
    T_COUNT,    /* a whole number, into a uint32_t */
    T_YES_NO,   /* yes or no, into an int */
    T_CHOICE,   /* one of `choices`, into an int */
    T_CUSTOM,   /* parse() */
};

struct choice {
    const char *name;
    int value;
};

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset, size;          /* the field in struct sv_config */
    uint64_t min, max;            /* T_SIZE*, T_COUNT */
    const struct choice *choices; /* T_CHOICE: ends with a NULL name */
    int (*parse)(struct sv_config *cfg, const char *name, const char *value, char *err,
                 size_t errlen); /* T_CUSTOM */
    const char *def;
    const char *doc;
};

#define FIELD(f) offsetof(struct sv_config, f), sizeof(((struct sv_config *)0)->f)

static const struct choice sync_choices[] = {
    {"none", SV_SYNC_NONE}, {"always", SV_SYNC_ALWAYS}, {NULL, 0}};
static const struct choice writemap_choices[] = {{"auto", -1}, {"yes", 1}, {"no", 0}, {NULL, 0}};
static const struct choice checksum_choices[] = {{"md5", 0}, {"crc32c", 1}, {NULL, 0}};
static const struct choice compression_choices[] = {
    {"zstd", SV_CKPT_COMPRESS_ZSTD}, {"none", SV_CKPT_COMPRESS_NONE}, {NULL, 0}};

static int parse_level(struct sv_config *cfg, const char *name, const char *value, char *err,
                       size_t errlen)
{
    (void)name;
    if (sv_log_parse_level(value, &cfg->log_level)) {
        snprintf(err, errlen, "log_level = '%s': expected debug, info, warn or error", value);
        return SV_EINVAL;
    }
    return 0;
}

static int parse_zstd_level(struct sv_config *cfg, const char *name, const char *value, char *err,
                            size_t errlen)
{
    (void)name;
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (!*value || *end || errno || v < -7 || v > 19) {
        snprintf(err, errlen,
                 "checkpoint_compression_level = '%s': expected a zstd level from -7 (fastest) "
                 "to 19",
                 value);
        return SV_EINVAL;
    }
    cfg->checkpoint_compression_level = (int)v;
    return 0;
}

static int parse_mode(struct sv_config *cfg, const char *name, const char *value, char *err,
                      size_t errlen)
{
    (void)name;
    char *end;
    errno = 0;
    unsigned long m = strtoul(value, &end, 8);
    if (!*value || *end || errno || m > 0777) {
        snprintf(err, errlen, "unix_socket_mode = '%s': expected an octal mode such as 0600",
                 value);
        return SV_EINVAL;
    }
    cfg->unix_socket_mode = (unsigned)m;
    return 0;
}

/* In the order of docs/configuration.md's table. */
static const struct setting settings[] = {
    {"listen", T_LISTEN, FIELD(listen), 0, 0, NULL, NULL, "127.0.0.1:7420",
     "TCP address to listen on (HOST:PORT), or empty for none"},
    {"unix_socket", T_STRING, FIELD(unix_socket), 0, 0, NULL, NULL, "",
     "path of a Unix socket to listen on, or empty for none"},
    {"unix_socket_mode", T_CUSTOM, FIELD(unix_socket_mode), 0, 0777, NULL, parse_mode, "0600",
     "file mode of the Unix socket (octal)"},
    {"max_frame_size", T_SIZE32, FIELD(max_frame_size), 4 * KIB, 1 * GIB, NULL, NULL, "16M",
     "largest frame read or written"},
    {"max_value_size", T_SIZE32, FIELD(max_value_size), 1, 1 * GIB, NULL, NULL, "4M",
     "largest value a put or merge may store"},
    {"max_batch_ops", T_COUNT, FIELD(max_batch_ops), 1, 1000000, NULL, NULL, "10000",
     "most items in one batch or multi_get"},
    {"max_scan_limit", T_COUNT, FIELD(max_scan_limit), 1, 1000000, NULL, NULL, "10000",
     "most entries in one scan page"},
    {"max_connections", T_COUNT, FIELD(max_connections), 1, 1000000, NULL, NULL, "1024",
     "connections served at once"},
    /* uv_buf_t lengths are unsigned int: stay well below 4 GiB. */
    {"max_output_buffer", T_SIZE64, FIELD(max_output_buffer), 64 * KIB, 2 * GIB, NULL, NULL, "64M",
     "unwritten replies per connection before it is no longer read"},
    {"max_states", T_COUNT, FIELD(max_states), 1, 32000, NULL, NULL, "256",
     "most named states in the store"},
    {"data_dir", T_NONEMPTY, FIELD(data_dir), 0, 0, NULL, NULL, "/var/lib/statesrvd/data",
     "where the store lives"},
    {"local_read_group", T_STRING, FIELD(local_read_group), 0, 0, NULL, NULL, "",
     "group given read access to the store for local readers, or empty for none"},
    {"key_groups", T_COUNT, FIELD(key_groups), 1, SV_KEY_GROUPS_MAX, NULL, NULL, "128",
     "key groups of a new store (the job's max parallelism)"},
    {"map_size", T_SIZE64, FIELD(map_size), 1 * MIB, 1ull << 48, NULL, NULL, "256M",
     "initial size of the store's map"},
    {"map_size_max", T_SIZE64, FIELD(map_size_max), 1 * MIB, 1ull << 48, NULL, NULL, "1T",
     "the map grows up to this"},
    {"writemap", T_CHOICE, FIELD(writemap), 0, 0, writemap_choices, NULL, "auto",
     "write through the map (auto: with sync = none)"},
    {"sync", T_CHOICE, FIELD(sync), 0, 0, sync_choices, NULL, "none",
     "flush each commit to disk before replying (always) or not (none)"},
    {"checkpoint_dir", T_NONEMPTY, FIELD(checkpoint_dir), 0, 0, NULL, NULL,
     "/var/lib/statesrvd/checkpoints", "where snapshots write checkpoints"},
    {"ttl_sweep_budget", T_COUNT, FIELD(ttl_sweep_budget), 0, 50, NULL, NULL, "5",
     "percent of the loop's time the sweep of expired entries may take (0: no sweep)"},
    {"checkpoint_interval", T_COUNT, FIELD(checkpoint_interval), 0, 86400 * 365, NULL, NULL, "0",
     "seconds between checkpoints the server takes on its own (0: none)"},
    {"checkpoint_retain", T_COUNT, FIELD(checkpoint_retain), 1, 100000, NULL, NULL, "3",
     "completed checkpoints kept"},
    {"checkpoint_incremental", T_YES_NO, FIELD(checkpoint_incremental), 0, 0, NULL, NULL, "yes",
     "snapshots write only what changed since the previous checkpoint"},
    {"checkpoint_chain_max", T_COUNT, FIELD(checkpoint_chain_max), 1, 1000, NULL, NULL, "16",
     "files a checkpoint may be made of; the next one past it is full"},
    {"checkpoint_chain_ratio", T_COUNT, FIELD(checkpoint_chain_ratio), 0, 10000, NULL, NULL, "50",
     "percent of the full file's size the incremental files may add; past it, full"},
    {"checkpoint_changes_max", T_SIZE64, FIELD(checkpoint_changes_max), 1 * MIB, 2048 * MIB, NULL,
     NULL, "256M", "most the change log holds between checkpoints; past it, the next is full"},
    {"checkpoint_compression", T_CHOICE, FIELD(checkpoint_compression), 0, 0, compression_choices,
     NULL, "zstd", "compression of checkpoint blocks"},
    {"checkpoint_compression_level", T_CUSTOM, FIELD(checkpoint_compression_level), 0, 0, NULL,
     parse_zstd_level, "1", "zstd level, -7 (fastest) to 19"},
    {"restore_roots", T_STRING, FIELD(restore_roots), 0, 0, NULL, NULL, "",
     "':'-separated directories restore may read checkpoints from"},
    {"checkpoint_remote", T_STRING, FIELD(checkpoint_remote), 0, 0, NULL, NULL, "",
     "s3://BUCKET/PREFIX to upload checkpoints to, or empty for local only"},
    {"checkpoint_remote_node", T_STRING, FIELD(checkpoint_remote_node), 0, 0, NULL, NULL, "",
     "this sidecar's sub-prefix under checkpoint_remote (empty: the host name)"},
    {"restore_remote_roots", T_STRING, FIELD(restore_remote_roots), 0, 0, NULL, NULL, "",
     "','-separated s3://BUCKET/PREFIX restore may read besides checkpoint_remote's prefix"},
    {"s3_endpoint", T_STRING, FIELD(s3_endpoint), 0, 0, NULL, NULL, "",
     "http(s)://HOST[:PORT] of the object store (empty: AWS S3 in s3_region)"},
    {"s3_region", T_NONEMPTY, FIELD(s3_region), 0, 0, NULL, NULL, "us-east-1",
     "region requests are signed for"},
    {"s3_credentials_file", T_STRING, FIELD(s3_credentials_file), 0, 0, NULL, NULL, "",
     "file with aws_access_key_id and aws_secret_access_key (empty: the environment)"},
    {"s3_upload_concurrency", T_COUNT, FIELD(s3_upload_concurrency), 1, 16, NULL, NULL, "4",
     "parts of one file uploaded at once"},
    {"s3_part_size", T_SIZE64, FIELD(s3_part_size), 5 * MIB, 5 * GIB, NULL, NULL, "16M",
     "part size of multipart uploads (larger when a file needs more than s3_max_parts)"},
    {"s3_multipart_threshold", T_SIZE64, FIELD(s3_multipart_threshold), 0, 5 * GIB, NULL, NULL, "0",
     "files larger than this are sent in parts, smaller in one PUT (0: s3_part_size)"},
    {"s3_max_parts", T_COUNT, FIELD(s3_max_parts), 1, 10000, NULL, NULL, "10000",
     "the store's limit of parts in one upload (S3 10000, Swift's s3api 1000)"},
    {"s3_checksum", T_CHOICE, FIELD(s3_checksum), 0, 0, checksum_choices, NULL, "md5",
     "checksum the store checks on every upload: md5 (every store) or crc32c (faster)"},
    {"auth_token_file", T_STRING, FIELD(auth_token_file), 0, 0, NULL, NULL, "",
     "file whose first line is the token clients must send, or empty for none"},
    {"allow_insecure_remote", T_YES_NO, FIELD(allow_insecure_remote), 0, 0, NULL, NULL, "no",
     "accept a listen address other hosts reach without auth_token_file"},
    {"idle_timeout", T_COUNT, FIELD(idle_timeout), 0, 86400 * 365, NULL, NULL, "0",
     "seconds without a request before a connection is closed (0: never)"},
    {"header_timeout", T_COUNT, FIELD(header_timeout), 1, 3600, NULL, NULL, "10",
     "seconds a frame may take, and with auth the handshake"},
    {"output_timeout", T_COUNT, FIELD(output_timeout), 1, 86400, NULL, NULL, "30",
     "seconds replies may stay unread over max_output_buffer"},
    {"log_level", T_CUSTOM, FIELD(log_level), 0, 0, NULL, parse_level, "info",
     "debug, info, warn or error"},
    {"metrics_listen", T_LISTEN, FIELD(metrics_listen), 0, 0, NULL, NULL, "",
     "HTTP address of /metrics (HOST:PORT), or empty for off"},
};

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    return NULL;
}

static int set_text(const struct setting *st, char *dst, const char *value, char *err,
                    size_t errlen)
{
    size_t n = strlen(value);
    if (st->type == T_NONEMPTY && n == 0) {
        snprintf(err, errlen, "%s must not be empty", st->name);
        return SV_EINVAL;
    }
    if (st->type == T_LISTEN && n && check_listen(value)) {
        snprintf(err, errlen,
                 "%s = '%s': expected HOST:PORT with a port from 0 to 65535 (e.g. %s), or "
                 "empty for none",
                 st->name, value, strcmp(st->name, "listen") ? "127.0.0.1:9464" : "127.0.0.1:7420");
        return SV_EINVAL;
    }
    if (n >= st->size) {
        snprintf(err, errlen, "%s is too long (at most %zu bytes)", st->name, st->size - 1);
        return SV_EINVAL;
    }
    memcpy(dst, value, n + 1);
    return 0;
}

int sv_config_set(struct sv_config *cfg, const char *name, const char *value, char *err,
                  size_t errlen)
{
    const struct setting *st = find_setting(name);
    if (!st) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return SV_EINVAL;
    }
    void *dst = (char *)cfg + st->offset;
    uint64_t v;
    switch (st->type) {
    case T_STRING:
    case T_NONEMPTY:
    case T_LISTEN:
        return set_text(st, dst, value, err, errlen);
    case T_SIZE32:
    case T_SIZE64:
        if (sv_parse_size(value, &v) || v < st->min || v > st->max) {
            snprintf(err, errlen,
                     "%s = '%s': expected a size between %llu and %llu bytes (suffixes K, M, G, "
                     "T)",
                     name, value, (unsigned long long)st->min, (unsigned long long)st->max);
            return SV_EINVAL;
        }
        if (st->type == T_SIZE32)
            *(uint32_t *)dst = (uint32_t)v;
        else
            *(uint64_t *)dst = v;
        return 0;
    case T_COUNT:
        if (sv_parse_u64(value, st->min, st->max, &v)) {
            snprintf(err, errlen, "%s = '%s': expected a whole number between %llu and %llu", name,
                     value, (unsigned long long)st->min, (unsigned long long)st->max);
            return SV_EINVAL;
        }
        *(uint32_t *)dst = (uint32_t)v;
        if (strcmp(name, "key_groups") == 0)
            cfg->key_groups_set = 1;
        return 0;
    case T_YES_NO:
        if (strcmp(value, "yes") && strcmp(value, "no")) {
            snprintf(err, errlen, "%s = '%s': expected yes or no", name, value);
            return SV_EINVAL;
        }
        *(int *)dst = value[0] == 'y';
        return 0;
    case T_CHOICE: {
        char names[64] = "";
        for (const struct choice *c = st->choices; c->name; c++) {
            if (strcmp(c->name, value) == 0) {
                *(int *)dst = c->value;
                return 0;
            }
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                     c == st->choices ? ""
                     : c[1].name      ? ", "
                                      : " or ",
                     c->name);
        }
        snprintf(err, errlen, "%s = '%s': expected %s", name, value, names);
        return SV_EINVAL;
    }
    case T_CUSTOM:
        return st->parse(cfg, name, value, err, errlen);
    }
    return SV_EINVAL;
}

void sv_config_defaults(struct sv_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[256];
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        int rc = sv_config_set(cfg, settings[i].name, settings[i].def, err, sizeof(err));
        assert(rc == 0 && "a default the parser refuses");
        (void)rc;
    }
    cfg->key_groups_set = 0; /* the default is not a choice: the data directory's wins */
}

/* The sizes as the docs write them: 4K, 16M, 1T. */
static void size_text(uint64_t v, char *out, size_t cap)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (u < 3 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, cap, "%llu", (unsigned long long)v);
    else
        snprintf(out, cap, "%llu%c", (unsigned long long)v, units[u]);
}

/* One setting's current value in cfg, as the file would write it. */
static void value_text(const struct sv_config *cfg, const struct setting *st, char *out, size_t cap)
{
    const void *src = (const char *)cfg + st->offset;
    switch (st->type) {
    case T_STRING:
    case T_NONEMPTY:
    case T_LISTEN:
        snprintf(out, cap, "%s", (const char *)src);
        return;
    case T_SIZE32:
        size_text(*(const uint32_t *)src, out, cap);
        return;
    case T_SIZE64:
        size_text(*(const uint64_t *)src, out, cap);
        return;
    case T_COUNT:
        snprintf(out, cap, "%u", *(const uint32_t *)src);
        return;
    case T_YES_NO:
        snprintf(out, cap, "%s", *(const int *)src ? "yes" : "no");
        return;
    case T_CHOICE:
        for (const struct choice *c = st->choices; c->name; c++)
            if (c->value == *(const int *)src) {
                snprintf(out, cap, "%s", c->name);
                return;
            }
        snprintf(out, cap, "?");
        return;
    case T_CUSTOM:
        if (st->parse == parse_mode)
            snprintf(out, cap, "%04o", cfg->unix_socket_mode);
        else if (st->parse == parse_level)
            snprintf(out, cap, "%s",
                     cfg->log_level == SV_LOG_DEBUG  ? "debug"
                     : cfg->log_level == SV_LOG_INFO ? "info"
                     : cfg->log_level == SV_LOG_WARN ? "warn"
                                                     : "error");
        else
            snprintf(out, cap, "%d", cfg->checkpoint_compression_level);
        return;
    }
}

void sv_config_print_effective(const struct sv_config *cfg, FILE *f)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        char v[SV_PATH_MAX];
        value_text(cfg, &settings[i], v, sizeof(v));
        if (strcmp(settings[i].name, "key_groups") == 0 && !cfg->key_groups_set)
            fprintf(f, "# key_groups = %s (not set: an existing data directory's value is used)\n",
                    v);
        else
            fprintf(f, "%s =%s%s\n", settings[i].name, v[0] ? " " : "", v);
    }
}

void sv_config_print_settings(FILE *f)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        const struct setting *st = &settings[i];
        char range[96] = "", lo[24], hi[24];
        switch (st->type) {
        case T_SIZE32:
        case T_SIZE64:
            size_text(st->min, lo, sizeof(lo));
            size_text(st->max, hi, sizeof(hi));
            snprintf(range, sizeof(range), "%s..%s", lo, hi);
            break;
        case T_COUNT:
            snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)st->min,
                     (unsigned long long)st->max);
            break;
        case T_YES_NO:
            snprintf(range, sizeof(range), "yes|no");
            break;
        case T_CHOICE:
            for (const struct choice *c = st->choices; c->name; c++)
                snprintf(range + strlen(range), sizeof(range) - strlen(range), "%s%s",
                         c == st->choices ? "" : "|", c->name);
            break;
        default:
            snprintf(range, sizeof(range), "-");
            break;
        }
        fprintf(f, "%s\t%s\t%s\t%s\n", st->name, st->def, range, st->doc);
    }
}

struct load_ctx {
    struct sv_config *cfg;
    char msg[512];
    int failed;
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    if (ctx->failed)
        return 0; /* keep the first error: inih reports its line */
    if (section && *section) {
        snprintf(ctx->msg, sizeof(ctx->msg), "sections are not used; found [%s]", section);
        ctx->failed = 1;
        return 0;
    }
    if (sv_config_set(ctx->cfg, name, value ? value : "", ctx->msg, sizeof(ctx->msg))) {
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

int sv_config_load(struct sv_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    /* libinih reads at most INI_MAX_LINE (200) bytes of a line, and would
     * report the rest of a longer one as a syntax error on the next line. */
    char buf[256];
    int lineno = 1;
    size_t len = 0;
    while (fgets(buf, sizeof(buf), f)) {
        size_t n = strlen(buf);
        len += n;
        if (n && buf[n - 1] != '\n' && !feof(f))
            continue; /* more of the same line */
        size_t content = len - (n && buf[n - 1] == '\n');
        if (content >= CONFIG_LINE_MAX) {
            fclose(f);
            snprintf(err, errlen,
                     "%s:%d: the line is %zu bytes; lines are limited to %d (the parser's limit): "
                     "use a shorter path (a symbolic link) or give it as a flag (--data-dir, "
                     "--checkpoint-dir, --unix)",
                     path, lineno, content, CONFIG_LINE_MAX - 1);
            return SV_EINVAL;
        }
        len = 0;
        lineno++;
    }
    if (len >= CONFIG_LINE_MAX) { /* a last line without a newline */
        fclose(f);
        snprintf(err, errlen, "%s:%d: the line is %zu bytes; lines are limited to %d", path, lineno,
                 len, CONFIG_LINE_MAX - 1);
        return SV_EINVAL;
    }
    rewind(f);
    struct load_ctx ctx = {.cfg = cfg};
    int line = ini_parse_file(f, ini_cb, &ctx);
    fclose(f);
    if (line == 0)
        return 0;
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot parse (error %d)", path, line);
        return SV_EINVAL;
    }
    if (ctx.failed) {
        snprintf(err, errlen, "%s:%d: %s", path, line, ctx.msg);
    } else {
        snprintf(err, errlen, "%s:%d: syntax error (expected 'name = value')", path, line);
    }
    return SV_EINVAL;
}

int sv_config_validate(const struct sv_config *cfg, char *err, size_t errlen)
{
    if (!cfg->listen[0] && !cfg->unix_socket[0]) {
        snprintf(err, errlen, "nothing to listen on: set listen and/or unix_socket");
        return SV_EINVAL;
    }
    if ((uint64_t)cfg->max_value_size + 1024 > cfg->max_frame_size) {
        snprintf(err, errlen, "max_value_size (%u) must leave 1 KiB of room in max_frame_size (%u)",
                 cfg->max_value_size, cfg->max_frame_size);
        return SV_EINVAL;
    }
    if (cfg->map_size > cfg->map_size_max) {
        snprintf(err, errlen, "map_size (%llu) is larger than map_size_max (%llu)",
                 (unsigned long long)cfg->map_size, (unsigned long long)cfg->map_size_max);
        return SV_EINVAL;
    }
    if (!cfg->checkpoint_dir[0]) {
        snprintf(err, errlen, "checkpoint_dir must not be empty");
        return SV_EINVAL;
    }
    if (cfg->checkpoint_remote[0] && strncmp(cfg->checkpoint_remote, "s3://", 5) != 0) {
        snprintf(err, errlen, "checkpoint_remote = '%s': expected s3://BUCKET/PREFIX",
                 cfg->checkpoint_remote);
        return SV_EINVAL;
    }
    if (cfg->s3_endpoint[0] && strncmp(cfg->s3_endpoint, "http://", 7) != 0 &&
        strncmp(cfg->s3_endpoint, "https://", 8) != 0) {
        snprintf(err, errlen, "s3_endpoint = '%s': expected an http:// or https:// URL",
                 cfg->s3_endpoint);
        return SV_EINVAL;
    }
    if (cfg->max_output_buffer < cfg->max_frame_size) {
        snprintf(err, errlen, "max_output_buffer (%llu) must be at least max_frame_size (%u)",
                 (unsigned long long)cfg->max_output_buffer, cfg->max_frame_size);
        return SV_EINVAL;
    }
    return 0;
}
