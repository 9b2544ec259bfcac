#include "config.h"
#include "sv_ckpt_format.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

void sv_config_defaults(struct sv_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:7420");
    cfg->unix_socket_mode = 0600;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "/var/lib/statesrvd/data");
    snprintf(cfg->checkpoint_dir, sizeof(cfg->checkpoint_dir), "/var/lib/statesrvd/checkpoints");
    cfg->checkpoint_retain = 3;
    cfg->checkpoint_compression = SV_CKPT_COMPRESS_ZSTD;
    cfg->checkpoint_compression_level = 1;
    cfg->key_groups = SV_KEY_GROUPS_DEFAULT;
    cfg->max_states = 256;
    cfg->map_size = 256 * MIB;
    cfg->map_size_max = 1 * TIB;
    cfg->sync = SV_SYNC_NONE;
    cfg->writemap = -1; /* auto */
    cfg->max_frame_size = 16 * MIB;
    cfg->max_value_size = 4 * MIB;
    cfg->max_batch_ops = 10000;
    cfg->max_scan_limit = 10000;
    cfg->max_connections = 1024;
    cfg->max_output_buffer = 64 * MIB;
    cfg->idle_timeout = 0;
    cfg->header_timeout = 10;
    cfg->output_timeout = 30;
    cfg->log_level = SV_LOG_INFO;
}

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

static int set_string(char *dst, size_t cap, const char *value, char *err, size_t errlen,
                      const char *name)
{
    size_t n = strlen(value);
    if (n >= cap) {
        snprintf(err, errlen, "%s is too long (at most %zu bytes)", name, cap - 1);
        return SV_EINVAL;
    }
    memcpy(dst, value, n + 1);
    return 0;
}

/* A size setting bounded to [min, max]; stores into a u32 or u64. */
static int set_size(const char *name, const char *value, uint64_t min, uint64_t max, void *dst,
                    int is32, char *err, size_t errlen)
{
    uint64_t v;
    if (sv_parse_size(value, &v) || v < min || v > max) {
        snprintf(err, errlen,
                 "%s = '%s': expected a size between %llu and %llu bytes (suffixes K, M, G, T)",
                 name, value, (unsigned long long)min, (unsigned long long)max);
        return SV_EINVAL;
    }
    if (is32)
        *(uint32_t *)dst = (uint32_t)v;
    else
        *(uint64_t *)dst = v;
    return 0;
}

static int set_count(const char *name, const char *value, uint64_t min, uint64_t max, uint32_t *dst,
                     char *err, size_t errlen)
{
    uint64_t v;
    if (sv_parse_u64(value, min, max, &v)) {
        snprintf(err, errlen, "%s = '%s': expected a whole number between %llu and %llu", name,
                 value, (unsigned long long)min, (unsigned long long)max);
        return SV_EINVAL;
    }
    *dst = (uint32_t)v;
    return 0;
}

static int set_yes_no(const char *name, const char *value, int *dst, char *err, size_t errlen)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
        *dst = value[0] == 'y';
        return 0;
    }
    snprintf(err, errlen, "%s = '%s': expected yes or no", name, value);
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

int sv_config_set(struct sv_config *cfg, const char *name, const char *value, char *err,
                  size_t errlen)
{
    if (strcmp(name, "listen") == 0) {
        if (*value && check_listen(value)) {
            snprintf(err, errlen,
                     "listen = '%s': expected HOST:PORT with a port from 0 to 65535 "
                     "(e.g. 127.0.0.1:7420 or [::1]:7420), or empty for none",
                     value);
            return SV_EINVAL;
        }
        return set_string(cfg->listen, sizeof(cfg->listen), value, err, errlen, name);
    }
    if (strcmp(name, "metrics_listen") == 0) {
        if (*value && check_listen(value)) {
            snprintf(err, errlen,
                     "metrics_listen = '%s': expected HOST:PORT with a port from 0 to 65535 "
                     "(e.g. 127.0.0.1:9464), or empty for none",
                     value);
            return SV_EINVAL;
        }
        return set_string(cfg->metrics_listen, sizeof(cfg->metrics_listen), value, err, errlen,
                          name);
    }
    if (strcmp(name, "unix_socket") == 0)
        return set_string(cfg->unix_socket, sizeof(cfg->unix_socket), value, err, errlen, name);
    if (strcmp(name, "data_dir") == 0) {
        if (!*value) {
            snprintf(err, errlen, "data_dir must not be empty");
            return SV_EINVAL;
        }
        return set_string(cfg->data_dir, sizeof(cfg->data_dir), value, err, errlen, name);
    }
    if (strcmp(name, "checkpoint_dir") == 0)
        return set_string(cfg->checkpoint_dir, sizeof(cfg->checkpoint_dir), value, err, errlen,
                          name);
    if (strcmp(name, "auth_token_file") == 0)
        return set_string(cfg->auth_token_file, sizeof(cfg->auth_token_file), value, err, errlen,
                          name);
    if (strcmp(name, "allow_insecure_remote") == 0)
        return set_yes_no(name, value, &cfg->allow_insecure_remote, err, errlen);
    if (strcmp(name, "writemap") == 0) {
        if (strcmp(value, "auto") == 0) {
            cfg->writemap = -1;
            return 0;
        }
        if (strcmp(value, "yes") && strcmp(value, "no")) {
            snprintf(err, errlen, "writemap = '%s': expected auto, yes or no", value);
            return SV_EINVAL;
        }
        return set_yes_no(name, value, &cfg->writemap, err, errlen);
    }
    if (strcmp(name, "idle_timeout") == 0)
        return set_count(name, value, 0, 86400 * 365, &cfg->idle_timeout, err, errlen);
    if (strcmp(name, "header_timeout") == 0)
        return set_count(name, value, 1, 3600, &cfg->header_timeout, err, errlen);
    if (strcmp(name, "output_timeout") == 0)
        return set_count(name, value, 1, 86400, &cfg->output_timeout, err, errlen);
    if (strcmp(name, "checkpoint_retain") == 0)
        return set_count(name, value, 1, 100000, &cfg->checkpoint_retain, err, errlen);
    if (strcmp(name, "checkpoint_compression") == 0) {
        if (strcmp(value, "zstd") == 0) {
            cfg->checkpoint_compression = SV_CKPT_COMPRESS_ZSTD;
        } else if (strcmp(value, "none") == 0) {
            cfg->checkpoint_compression = SV_CKPT_COMPRESS_NONE;
        } else {
            snprintf(err, errlen, "checkpoint_compression = '%s': expected zstd or none", value);
            return SV_EINVAL;
        }
        return 0;
    }
    if (strcmp(name, "checkpoint_compression_level") == 0) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (!*value || *end || errno || v < -7 || v > 19) {
            snprintf(err, errlen,
                     "checkpoint_compression_level = '%s': expected a zstd level from -7 "
                     "(fastest) to 19",
                     value);
            return SV_EINVAL;
        }
        cfg->checkpoint_compression_level = (int)v;
        return 0;
    }
    if (strcmp(name, "restore_roots") == 0)
        return set_string(cfg->restore_roots, sizeof(cfg->restore_roots), value, err, errlen, name);
    if (strcmp(name, "unix_socket_mode") == 0) {
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
    if (strcmp(name, "key_groups") == 0) {
        int rc = set_count(name, value, 1, SV_KEY_GROUPS_MAX, &cfg->key_groups, err, errlen);
        if (rc == 0)
            cfg->key_groups_set = 1;
        return rc;
    }
    if (strcmp(name, "max_states") == 0)
        return set_count(name, value, 1, 32000, &cfg->max_states, err, errlen);
    if (strcmp(name, "map_size") == 0)
        return set_size(name, value, 1 * MIB, 1ull << 48, &cfg->map_size, 0, err, errlen);
    if (strcmp(name, "map_size_max") == 0)
        return set_size(name, value, 1 * MIB, 1ull << 48, &cfg->map_size_max, 0, err, errlen);
    if (strcmp(name, "max_frame_size") == 0)
        return set_size(name, value, 4 * KIB, 1 * GIB, &cfg->max_frame_size, 1, err, errlen);
    if (strcmp(name, "max_value_size") == 0)
        return set_size(name, value, 1, 1 * GIB, &cfg->max_value_size, 1, err, errlen);
    if (strcmp(name, "max_output_buffer") == 0)
        /* uv_buf_t lengths are unsigned int: stay well below 4 GiB. */
        return set_size(name, value, 64 * KIB, 2 * GIB, &cfg->max_output_buffer, 0, err, errlen);
    if (strcmp(name, "max_batch_ops") == 0)
        return set_count(name, value, 1, 1000000, &cfg->max_batch_ops, err, errlen);
    if (strcmp(name, "max_scan_limit") == 0)
        return set_count(name, value, 1, 1000000, &cfg->max_scan_limit, err, errlen);
    if (strcmp(name, "max_connections") == 0)
        return set_count(name, value, 1, 1000000, &cfg->max_connections, err, errlen);
    if (strcmp(name, "sync") == 0) {
        if (strcmp(value, "none") == 0) {
            cfg->sync = SV_SYNC_NONE;
        } else if (strcmp(value, "always") == 0) {
            cfg->sync = SV_SYNC_ALWAYS;
        } else {
            snprintf(err, errlen, "sync = '%s': expected none or always", value);
            return SV_EINVAL;
        }
        return 0;
    }
    if (strcmp(name, "log_level") == 0) {
        if (sv_log_parse_level(value, &cfg->log_level)) {
            snprintf(err, errlen, "log_level = '%s': expected debug, info, warn or error", value);
            return SV_EINVAL;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown setting '%s'", name);
    return SV_EINVAL;
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
    if (cfg->max_output_buffer < cfg->max_frame_size) {
        snprintf(err, errlen, "max_output_buffer (%llu) must be at least max_frame_size (%u)",
                 (unsigned long long)cfg->max_output_buffer, cfg->max_frame_size);
        return SV_EINVAL;
    }
    return 0;
}
