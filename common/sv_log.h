/* Logging to stderr: one line per message, UTC timestamp and level first,
 * so it reads well on a terminal and under journald. Thread-safe (one
 * fprintf per line, and stdio locks the stream). */
#ifndef SV_LOG_H
#define SV_LOG_H

enum sv_log_level { SV_LOG_DEBUG, SV_LOG_INFO, SV_LOG_WARN, SV_LOG_ERROR, SV_LOG_LEVEL_MAX };

void sv_log_set_level(enum sv_log_level level);
enum sv_log_level sv_log_get_level(void);
/* Parses "debug", "info", "warn"/"warning", "error"; 0 or SV_EINVAL. */
int sv_log_parse_level(const char *s, enum sv_log_level *out);
const char *sv_log_level_name(enum sv_log_level level);

void sv_log(enum sv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like sv_log, for messages a client can cause: at most `burst` per second
 * per call site; the next one that passes says how many were dropped. Keep
 * one `struct sv_log_limit` (zeroed) per call site. Not thread-safe: for the
 * loop thread. */
struct sv_log_limit {
    long window;    /* the second being counted */
    unsigned count; /* messages in it */
    unsigned long dropped;
};
void sv_log_limited(struct sv_log_limit *l, unsigned burst, enum sv_log_level level,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define sv_warn_limited(...)                                                                       \
    do {                                                                                           \
        static struct sv_log_limit sv_limit_;                                                      \
        sv_log_limited(&sv_limit_, 10, SV_LOG_WARN, __VA_ARGS__);                                  \
    } while (0)

#define sv_debug(...) sv_log(SV_LOG_DEBUG, __VA_ARGS__)
#define sv_info(...) sv_log(SV_LOG_INFO, __VA_ARGS__)
#define sv_warn(...) sv_log(SV_LOG_WARN, __VA_ARGS__)
#define sv_error(...) sv_log(SV_LOG_ERROR, __VA_ARGS__)

#endif
