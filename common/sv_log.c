#include "sv_log.h"
#include "sv_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum sv_log_level min_level = SV_LOG_INFO;

static const char *const level_names[SV_LOG_LEVEL_MAX] = {"DEBUG", "INFO", "WARN", "ERROR"};

void sv_log_set_level(enum sv_log_level level)
{
    if (level < SV_LOG_LEVEL_MAX)
        min_level = level;
}

enum sv_log_level sv_log_get_level(void)
{
    return min_level;
}

const char *sv_log_level_name(enum sv_log_level level)
{
    return level < SV_LOG_LEVEL_MAX ? level_names[level] : "?";
}

int sv_log_parse_level(const char *s, enum sv_log_level *out)
{
    static const struct {
        const char *name;
        enum sv_log_level level;
    } names[] = {{"debug", SV_LOG_DEBUG},
                 {"info", SV_LOG_INFO},
                 {"warn", SV_LOG_WARN},
                 {"warning", SV_LOG_WARN},
                 {"error", SV_LOG_ERROR}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return SV_EINVAL;
}

void sv_log(enum sv_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            sv_log_level_name(level), msg);
}

void sv_log_limited(struct sv_log_limit *l, unsigned burst, enum sv_log_level level,
                    const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec != l->window) {
        l->window = ts.tv_sec;
        l->count = 0;
    }
    if (l->count >= burst) {
        l->dropped++;
        return;
    }
    l->count++;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->dropped) {
        sv_log(level, "%s (and %lu similar messages dropped)", msg, l->dropped);
        l->dropped = 0;
    } else {
        sv_log(level, "%s", msg);
    }
}
