/* statectl: a command-line client for statesrvd, built on libstatesrv.
 *
 * Every command connects, does one thing and prints the answer: text by
 * default (keys and values are the bytes of argv, printed as they are),
 * hex with --hex, one JSON document with --json. Exit status: 0 ok, 1 not
 * found, 2 usage error (found by statectl before it sends anything), 3
 * connection, server or file error; statectl(1), EXIT STATUS, has the rule.
 *
 * The `checkpoint verify|inspect|dump` commands work offline, on a
 * checkpoint directory, through the checkpoint file reader in common/. */
#include "fsutil.h"
#include "statesrv.h"
#include "sv_ckpt.h"
#include "sv_ckpt_remote.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_msg.h" /* SV_VERSION */
#include "sv_utf8.h"
#include "sv_value.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

/* Command options, one bit each; a command lists those it accepts. */
enum {
    OPT_NS = 1 << 0,          /* -n NS */
    OPT_KEY_GROUP = 1 << 1,   /* --key-group N */
    OPT_MERGE = 1 << 2,       /* --append / --add */
    OPT_SCAN = 1 << 3,        /* --key K, --key-groups A-B, --limit N */
    OPT_ALL = 1 << 4,         /* --all */
    OPT_KG_RANGE = 1 << 5,    /* --key-groups A-B */
    OPT_ID = 1 << 6,          /* --id N */
    OPT_STATE = 1 << 7,       /* --state S */
    OPT_FULL = 1 << 8,        /* --full */
    OPT_WAIT_REMOTE = 1 << 9, /* --wait-remote */
    OPT_REMOTE = 1 << 10,     /* --remote URL */
    OPT_TTL = 1 << 11,        /* --ttl D (put, merge); --ttl (get: show what is left) */
    OPT_TTL_CFG = 1 << 12,    /* --update U, --visibility V (ttl) */
    OPT_JSONL = 1 << 13,      /* --jsonl (scan: one entry a line) */
};

/* Command flags. */
enum {
    CMD_OFFLINE = 1 << 0,   /* works on files: no connection */
    CMD_TEXT_ARGS = 1 << 1, /* positional arguments are text even with --hex */
    CMD_STATE_KEY = 1 << 2, /* STATE [KEY ...]: checked before anything is sent */
};

/* restore takes up to this many sources, as many as the server accepts. */
#define MAX_POS 64

/* An argument that may need hex decoding once --hex is known. */
struct arg {
    const char *text;
    unsigned char *bytes; /* decoded; owned */
    size_t len;
};

struct ctl {
    const char *addr;
    int json, hex, timeout_ms;
    char token[1024]; /* from --token-file or $STATESRV_TOKEN_FILE; "" for none */
    const struct command *cmd;
    statesrv *c;

    /* command options */
    struct arg ns;
    int has_ns;
    int has_key_group;
    uint32_t key_group;
    int append, add;
    struct arg scan_key;
    int has_scan_key;
    int has_key_groups;
    uint32_t kg_first, kg_last;
    int has_limit;
    uint64_t limit;
    int all;
    int has_id;
    uint64_t id;
    int full;
    int wait_remote;
    const char *remote;   /* checkpoints --remote URL */
    char s3_tmp[160];     /* an s3:// checkpoint downloaded here (offline tools) */
    char s3_parent[1200]; /* ... from this s3://BUCKET/PARENT */
    const char *state;
    int jsonl;         /* scan --jsonl */
    struct arg prefix; /* scan --prefix P */
    int has_prefix;
    int has_ttl;     /* --ttl given */
    uint64_t ttl_ms; /* its duration (put, merge) */
    const char *ttl_update, *ttl_visibility;

    struct arg pos[MAX_POS];
    int npos;
};

struct command {
    const char *name;
    int (*run)(struct ctl *x);
    int min_pos, max_pos;
    unsigned opts;
    const char *args;
    const char *help;
    unsigned flags; /* CMD_*; a command group (run == NULL) has subcommands "NAME SUB" */
};

static const char *prog = "statectl";

/* --- messages ----------------------------------------------------------- */

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void errorf(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Reports a failed library call and returns the exit status it calls for. */
static int report(struct ctl *x, int rc)
{
    const char *msg = statesrv_errmsg(x->c);
    if (msg[0])
        errorf("%s: %s: %s", x->cmd->name, statesrv_strerror(rc), msg);
    else
        errorf("%s: %s", x->cmd->name, statesrv_strerror(rc));
    if (rc == STATESRV_NOT_FOUND)
        return EXIT_NOTFOUND;
    return rc == STATESRV_ERR_USAGE ? EXIT_USAGE : EXIT_ERROR;
}

/* --- output ------------------------------------------------------------- */

static void put_hex(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        putchar(digits[b[i] >> 4]);
        putchar(digits[b[i] & 15]);
    }
}

/* JSON output is built with jansson, the library import parses it with, so
 * that what one writes the other reads: a document (or, streamed, one entry
 * at a time) is built as a jansson value and dumped. A value that cannot be
 * built (out of memory) sets json_failed; json_emit then refuses to print. */
static int json_failed;

/* Compact, members in insertion order, any value (a bare number); reals with up to 15 significant
 * digits (the values are rounded to their decimals first: see j_real). */
#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

static json_t *j_check(json_t *v)
{
    if (!v)
        json_failed = 1;
    return v;
}

/* o[k] = v, taking v (jansson releases it on failure). */
static void j_set(json_t *o, const char *k, json_t *v)
{
    if (json_object_set_new(o, k, v))
        json_failed = 1;
}

static void j_append(json_t *a, json_t *v)
{
    if (json_array_append_new(a, v))
        json_failed = 1;
}

static json_t *j_object(void)
{
    return j_check(json_object());
}

static json_t *j_array(void)
{
    return j_check(json_array());
}

static json_t *j_bool(int b)
{
    return j_check(json_boolean(b));
}

static json_t *j_i64(int64_t v)
{
    return j_check(json_integer((json_int_t)v));
}

/* jansson's integers are signed 64-bit: a count or id beyond that (none is,
 * in practice) comes as a real. */
static json_t *j_u64(uint64_t v)
{
    return j_check(v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v));
}

/* A non-negative figure rounded to `decimals` places (at most 6), so that
 * 49.5 prints as 49.5, not 49.500000000000001. */
static json_t *j_real(double v, int decimals)
{
    double k = 1;
    for (int i = 0; i < decimals; i++)
        k *= 10;
    if (v >= 0 && v * k < 9e15)
        v = (double)(int64_t)(v * k + 0.5) / k;
    return j_check(json_real(v));
}

static json_t *j_hex(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    char *s = malloc(2 * n + 1);
    if (!s)
        return j_check(NULL);
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[b[i] >> 4];
        s[2 * i + 1] = digits[b[i] & 15];
    }
    json_t *v = j_check(json_stringn_nocheck(s, 2 * n));
    free(s);
    return v;
}

/* Bytes as JSON: a string when they are valid UTF-8 as jansson sees it (the
 * check import's parser makes; NUL and control characters escaped), else an
 * object {"hex":"..."}, so that a byte 0xff and the character U+00FF are
 * told apart; with --hex always a string of the hex of the bytes. */
static json_t *j_bytes(const struct ctl *x, const void *data, size_t n)
{
    if (x->hex)
        return j_hex(data, n);
    json_t *s = n ? json_stringn(data, n) : json_string("");
    if (s)
        return s;
    /* Not UTF-8 (or out of memory: the hex object is the same bytes). */
    json_t *o = j_object();
    j_set(o, "hex", j_hex(data, n));
    return o;
}

/* A string from the server or a file (names, versions, messages): as bytes
 * without --hex. */
static json_t *j_str(const char *s)
{
    static const struct ctl plain;
    return j_bytes(&plain, s, strlen(s));
}

/* Prints v (taking it) as it is, with no newline: 0, or an exit status. */
static int json_put(json_t *v)
{
    int status = 0;
    if (!v || json_failed || json_dumpf(v, stdout, JSON_OUT_FLAGS)) {
        fprintf(stderr, "%s: cannot write the JSON output: out of memory\n", prog);
        status = EXIT_ERROR;
    }
    json_decref(v);
    return status;
}

/* Prints the document v (taking it) on a line of its own. */
static int json_emit(json_t *v)
{
    int status = json_put(v);
    if (!status)
        putchar('\n');
    return status;
}

/* Bytes in a tab-separated text line: printable ASCII and valid UTF-8 as
 * they are, backslash and everything else escaped, so one entry is one line. */
static void put_text_field(const struct ctl *x, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (x->hex) {
        put_hex(p, n);
        return;
    }
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '\\') {
            fputs("\\\\", stdout);
        } else if (ch >= 0x20 && ch < 0x7f) {
            putchar(ch);
        } else if (ch >= 0x80 && sv_utf8_seq(p + i, n - i)) {
            size_t len = sv_utf8_seq(p + i, n - i);
            fwrite(p + i, 1, len, stdout);
            i += len;
            continue;
        } else if (ch == '\t') {
            fputs("\\t", stdout);
        } else if (ch == '\n') {
            fputs("\\n", stdout);
        } else {
            printf("\\x%02x", ch);
        }
        i++;
    }
}

/* A whole value printed on its own: the bytes as they are, or hex. */
static void put_raw_line(const struct ctl *x, const void *data, size_t n)
{
    if (x->hex)
        put_hex(data, n);
    else
        fwrite(data, 1, n, stdout);
    putchar('\n');
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case STATESRV_KIND_RAW:
        return "raw";
    case STATESRV_KIND_LIST:
        return "list";
    case STATESRV_KIND_COUNTER:
        return "counter";
    default:
        return "unknown";
    }
}

/* A value as JSON: a COUNTER as a number, a LIST as an array of its
 * elements, RAW bytes as j_bytes. A malformed LIST or COUNTER comes as null
 * with *bad set. */
static json_t *j_value(const struct ctl *x, int kind, const void *data, size_t n, int *bad)
{
    *bad = 0;
    if (kind == STATESRV_KIND_COUNTER) {
        int64_t v;
        if (statesrv_counter_decode(data, n, &v)) {
            *bad = 1;
            return j_check(json_null());
        }
        return j_i64(v);
    }
    if (kind == STATESRV_KIND_LIST) {
        size_t off = 0, elen;
        const void *elem;
        int rc;
        json_t *a = j_array();
        while ((rc = statesrv_list_next(data, n, &off, &elem, &elen)) == 1)
            j_append(a, j_bytes(x, elem, elen));
        if (rc) {
            json_decref(a);
            *bad = 1;
            return j_check(json_null());
        }
        return a;
    }
    return j_bytes(x, data, n);
}

/* Prints a value in the one-line text form used by scan and dump: a
 * COUNTER in decimal, a LIST as a JSON array, RAW bytes escaped. -1 if a
 * LIST or COUNTER is malformed ("?" printed), or an exit status. */
static int put_value_text(const struct ctl *x, int kind, const void *data, size_t n)
{
    int bad;
    if (kind == STATESRV_KIND_RAW) {
        put_text_field(x, data, n);
        return 0;
    }
    json_t *v = j_value(x, kind, data, n, &bad);
    if (bad) {
        json_decref(v);
        fputs("?", stdout);
        return -1;
    }
    return json_put(v);
}

/* One entry as scan --json/--jsonl and checkpoint dump --json write it, what
 * import reads: state (when given), key_group, key, namespace, kind,
 * expiry_ms (when given, not 0), value. *bad as for j_value. */
static json_t *j_entry(const struct ctl *x, const char *state, uint32_t kg, const void *key,
                       size_t klen, const void *ns, size_t nlen, int kind, uint64_t expiry_ms,
                       const void *val, size_t vlen, int *bad)
{
    json_t *e = j_object();
    if (state)
        j_set(e, "state", j_str(state));
    j_set(e, "key_group", j_u64(kg));
    j_set(e, "key", j_bytes(x, key, klen));
    j_set(e, "namespace", j_bytes(x, ns, nlen));
    j_set(e, "kind", j_str(kind_name(kind)));
    if (expiry_ms)
        j_set(e, "expiry_ms", j_u64(expiry_ms));
    j_set(e, "value", j_value(x, kind, val, vlen, bad));
    return e;
}

/* --- parsing ------------------------------------------------------------ */

/* Strict unsigned decimal: digits only, no sign, no spaces, <= max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Strict signed decimal with an optional leading '-' or '+'. */
static int parse_i64(const char *s, int64_t *out)
{
    int neg = 0;
    uint64_t mag;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (parse_u64(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag))
        return -1;
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Turns an argument into bytes: as is, or decoded from hex. */
static int decode_arg(const struct ctl *x, struct arg *a, const char *what)
{
    size_t n = strlen(a->text);
    if (!x->hex) {
        a->bytes = NULL;
        a->len = n;
        return 0;
    }
    if (n % 2) {
        errorf("%s: %s is not hex (odd number of digits): %s", x->cmd->name, what, a->text);
        return -1;
    }
    a->bytes = malloc(n / 2 + 1);
    if (!a->bytes) {
        errorf("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(a->text[i]), lo = hexval(a->text[i + 1]);
        if (hi < 0 || lo < 0) {
            errorf("%s: %s is not hex: %s", x->cmd->name, what, a->text);
            return -1;
        }
        a->bytes[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    a->len = n / 2;
    return 0;
}

static const void *arg_data(const struct arg *a)
{
    return a->bytes ? (const void *)a->bytes : (const void *)a->text;
}

/* --- commands ----------------------------------------------------------- */

static void make_key(const struct ctl *x, statesrv_key *k)
{
    memset(k, 0, sizeof(*k));
    k->state = x->pos[0].text;
    if (x->npos > 1) {
        k->key = arg_data(&x->pos[1]);
        k->key_len = x->pos[1].len;
    }
    if (x->has_ns) {
        k->ns = arg_data(&x->ns);
        k->ns_len = x->ns.len;
    }
    k->has_key_group = x->has_key_group;
    k->key_group = x->key_group;
}

/* {"ok":true} with --json; 0 or an exit status. */
static int json_ok(const struct ctl *x)
{
    if (!x->json)
        return 0;
    json_t *o = j_object();
    j_set(o, "ok", j_bool(1));
    return json_emit(o);
}

static int cmd_ping(struct ctl *x)
{
    int rc = statesrv_ping(x->c);
    if (rc)
        return report(x, rc);
    if (x->json)
        return json_ok(x);
    printf("pong\n");
    return 0;
}

/* A duration for a person: "1h2m3.5s", "never". */
static const char *fmt_duration(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        return "none";
    uint64_t s = (uint64_t)ms / 1000, rest = (uint64_t)ms % 1000;
    size_t n = 0;
    buf[0] = '\0';
    if (s >= 86400)
        n += (size_t)snprintf(buf + n, cap - n, "%" PRIu64 "d", s / 86400);
    if (s % 86400 >= 3600)
        n += (size_t)snprintf(buf + n, cap - n, "%" PRIu64 "h", s % 86400 / 3600);
    if (s % 3600 >= 60)
        n += (size_t)snprintf(buf + n, cap - n, "%" PRIu64 "m", s % 3600 / 60);
    if (s % 60 || rest || n == 0) {
        if (rest)
            snprintf(buf + n, cap - n, "%" PRIu64 ".%03" PRIu64 "s", s % 60, rest);
        else
            snprintf(buf + n, cap - n, "%" PRIu64 "s", s % 60);
    }
    return buf;
}

/* "30s", "500ms", "10m", "2h", "1d", or seconds alone; "0" or "off": none. */
static int parse_duration_ms(const char *s, uint64_t *ms)
{
    if (strcmp(s, "off") == 0 || strcmp(s, "none") == 0) {
        *ms = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v)
        return -1;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60e3;
    else if (strcmp(end, "h") == 0)
        mul = 3600e3;
    else if (strcmp(end, "d") == 0)
        mul = 86400e3;
    else
        return -1;
    double r = v * mul;
    if (r > 3.15576e12) /* a century */
        return -1;
    *ms = (uint64_t)(r + 0.5);
    return 0;
}

static int cmd_get(struct ctl *x)
{
    statesrv_key k;
    statesrv_value v = {0};
    make_key(x, &k);
    int64_t left = -1;
    int rc = statesrv_get_with_ttl(x->c, &k, &v, x->has_ttl ? &left : NULL);
    if (rc) {
        if (rc == STATESRV_NOT_FOUND && x->json) {
            json_t *o = j_object();
            j_set(o, "found", j_bool(0));
            if (json_emit(o))
                return EXIT_ERROR;
        }
        return report(x, rc);
    }
    int bad = 0;
    if (x->has_ttl && !x->json) {
        char d[64];
        printf("ttl: %s\n", left < 0    ? "none"
                            : left == 0 ? "expired"
                                        : fmt_duration(left, d, sizeof(d)));
    }
    int status = 0;
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "found", j_bool(1));
        j_set(o, "kind", j_str(kind_name(v.kind)));
        j_set(o, "value", j_value(x, v.kind, v.data, v.len, &bad));
        if (x->has_ttl)
            j_set(o, "ttl_remaining_ms", left < 0 ? j_check(json_null()) : j_i64(left));
        status = json_emit(o);
    } else if (v.kind == STATESRV_KIND_COUNTER) {
        int64_t n;
        bad = statesrv_counter_decode(v.data, v.len, &n);
        if (!bad)
            printf("%" PRId64 "\n", n);
    } else if (v.kind == STATESRV_KIND_LIST) {
        size_t off = 0, elen;
        const void *elem;
        while ((bad = statesrv_list_next(v.data, v.len, &off, &elem, &elen)) == 1)
            put_raw_line(x, elem, elen);
    } else {
        put_raw_line(x, v.data, v.len);
    }
    int kind = v.kind;
    statesrv_value_free(&v);
    if (bad) {
        errorf("get: the server returned a malformed %s value", kind_name(kind));
        return EXIT_ERROR;
    }
    return status;
}

static int cmd_put(struct ctl *x)
{
    statesrv_key k;
    make_key(x, &k);
    int rc = statesrv_put_ttl(x->c, &k, arg_data(&x->pos[2]), x->pos[2].len, x->ttl_ms);
    if (rc)
        return report(x, rc);
    return json_ok(x);
}

static const char *ttl_update_name(int u)
{
    return u == STATESRV_TTL_ON_READ_AND_WRITE ? "on-read-and-write" : "on-create-and-write";
}

static const char *ttl_visibility_name(int v)
{
    return v == STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP ? "return-expired-if-not-cleaned-up"
                                                              : "never-return-expired";
}

/* A state's TTL: null for none. */
static json_t *j_ttl(const statesrv_ttl *t)
{
    if (!t->ttl_ms)
        return j_check(json_null());
    json_t *o = j_object();
    j_set(o, "ttl_ms", j_u64(t->ttl_ms));
    j_set(o, "update", j_str(ttl_update_name(t->update)));
    j_set(o, "visibility", j_str(ttl_visibility_name(t->visibility)));
    return o;
}

/* Whether the server holds a state of this name: 1, 0, or -1 with the error
 * reported. */
static int state_exists(struct ctl *x, const char *name)
{
    statesrv_state_info *st;
    size_t n;
    int rc = statesrv_list_states(x->c, &st, &n);
    if (rc) {
        report(x, rc);
        return -1;
    }
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(st[i].name, name) == 0;
    statesrv_free(st);
    return found;
}

/* Exit status 1 (not found) for a command whose state does not exist. */
static int no_such_state(struct ctl *x, const char *name)
{
    errorf("%s: NOT_FOUND: no state '%s'", x->cmd->name, name);
    return EXIT_NOTFOUND;
}

/* ttl STATE [DURATION]: shows, or sets, a state's TTL. */
static int cmd_ttl(struct ctl *x)
{
    const char *state = x->pos[0].text;
    statesrv_ttl t = {0, STATESRV_TTL_ON_CREATE_AND_WRITE, STATESRV_TTL_NEVER_RETURN_EXPIRED};
    int rc;
    if (!sv_state_name_valid(state, strlen(state))) {
        errorf("ttl: '%s' is not a state name: 1 to 64 of A-Z a-z 0-9 _ . -", state);
        return EXIT_USAGE;
    }
    if (x->npos == 2 || x->ttl_update || x->ttl_visibility) {
        if (x->npos < 2) {
            /* Only the update type or visibility: keep the duration. */
            if ((rc = statesrv_get_state_ttl(x->c, state, &t)))
                return report(x, rc);
            if (!t.ttl_ms) {
                errorf("ttl: state '%s' has no TTL: give a DURATION", state);
                return EXIT_USAGE;
            }
        } else if (parse_duration_ms(x->pos[1].text, &t.ttl_ms)) {
            errorf("ttl: '%s' is not a duration (30s, 500ms, 10m, 2h, 1d; 0 or off: none)",
                   x->pos[1].text);
            return EXIT_USAGE;
        }
        if (x->ttl_update)
            t.update = strcmp(x->ttl_update, "on-read-and-write") == 0
                           ? STATESRV_TTL_ON_READ_AND_WRITE
                           : STATESRV_TTL_ON_CREATE_AND_WRITE;
        if (x->ttl_visibility)
            t.visibility = strcmp(x->ttl_visibility, "return-expired-if-not-cleaned-up") == 0
                               ? STATESRV_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP
                               : STATESRV_TTL_NEVER_RETURN_EXPIRED;
        if ((rc = statesrv_set_state_ttl(x->c, state, &t)))
            return report(x, rc);
    }
    if ((rc = statesrv_get_state_ttl(x->c, state, &t)))
        return report(x, rc);
    /* Shown, not set: a state without a TTL may not exist at all (exit 1,
     * as scan; setting a TTL creates the state). */
    if (!t.ttl_ms && x->npos < 2 && !x->ttl_update && !x->ttl_visibility) {
        int e = state_exists(x, state);
        if (e < 0)
            return EXIT_ERROR;
        if (!e)
            return no_such_state(x, state);
    }
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "state", j_str(state));
        j_set(o, "ttl", j_ttl(&t));
        return json_emit(o);
    } else if (!t.ttl_ms) {
        printf("%s: no TTL\n", state);
    } else {
        char d[64];
        printf("%s: %s, %s, %s\n", state, fmt_duration((int64_t)t.ttl_ms, d, sizeof(d)),
               ttl_update_name(t.update), ttl_visibility_name(t.visibility));
    }
    return 0;
}

static int cmd_del(struct ctl *x)
{
    statesrv_key k;
    int found = 0;
    make_key(x, &k);
    int rc = statesrv_delete(x->c, &k, &found);
    if (rc)
        return report(x, rc);
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "found", j_bool(found));
        if (json_emit(o))
            return EXIT_ERROR;
    }
    return found ? 0 : EXIT_NOTFOUND;
}

static int cmd_merge(struct ctl *x)
{
    statesrv_key k;
    make_key(x, &k);
    if (x->append) {
        int rc = statesrv_append_ttl(x->c, &k, arg_data(&x->pos[2]), x->pos[2].len, x->ttl_ms);
        if (rc)
            return report(x, rc);
        return json_ok(x);
    }
    int64_t delta, result;
    if (parse_i64(x->pos[2].text, &delta)) {
        errorf("merge: --add needs a decimal int64 operand, not '%s'", x->pos[2].text);
        return EXIT_USAGE;
    }
    int rc = statesrv_add_ttl(x->c, &k, delta, x->ttl_ms, &result);
    if (rc)
        return report(x, rc);
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "counter", j_i64(result));
        return json_emit(o);
    }
    printf("%" PRId64 "\n", result);
    return 0;
}

static int cmd_scan(struct ctl *x)
{
    statesrv_scan_options o;
    memset(&o, 0, sizeof(o));
    o.state = x->pos[0].text;
    if (x->has_scan_key) {
        o.mode = STATESRV_SCAN_KEY;
        o.key = arg_data(&x->scan_key);
        o.key_len = x->scan_key.len;
        o.has_key_group = x->has_key_group;
        o.key_group = x->key_group;
    } else if (x->has_key_groups) {
        o.mode = STATESRV_SCAN_KEY_GROUPS;
        o.kg_first = x->kg_first;
        o.kg_last = x->kg_last;
    }
    /* Ask for no more than will be printed. */
    if (x->has_limit && x->limit <= UINT32_MAX)
        o.page_size = (uint32_t)x->limit;

    statesrv_scan *s;
    int rc = statesrv_scan_open(x->c, &o, &s);
    if (rc)
        return report(x, rc);
    if (x->json && !x->jsonl)
        printf("{\"entries\":[");
    uint64_t printed = 0;
    int status = 0;
    while (!x->has_limit || printed < x->limit) {
        const statesrv_entry *e;
        rc = statesrv_scan_next(s, &e);
        if (rc) {
            status = report(x, rc);
            break;
        }
        if (!e)
            break;
        /* Keys are spread over key groups by hash: a prefix is a filter
         * over the whole scan, not a range. */
        if (x->has_prefix && (e->key_len < x->prefix.len ||
                              memcmp(e->key, arg_data(&x->prefix), x->prefix.len) != 0))
            continue;
        /* One entry at a time, so a scan of any size runs in constant
         * memory; --json's array is written around them. */
        int bad = 0;
        if (x->json) {
            if (!x->jsonl && printed)
                putchar(',');
            json_t *j = j_entry(x, x->jsonl ? o.state : NULL, e->key_group, e->key, e->key_len,
                                e->ns, e->ns_len, e->kind, 0, e->value, e->value_len, &bad);
            if (json_put(j)) {
                status = EXIT_ERROR;
                break;
            }
            if (x->jsonl)
                putchar('\n');
        } else {
            printf("%" PRIu32 "\t", e->key_group);
            put_text_field(x, e->key, e->key_len);
            putchar('\t');
            put_text_field(x, e->ns, e->ns_len);
            printf("\t%s\t", kind_name(e->kind));
            bad = put_value_text(x, e->kind, e->value, e->value_len);
            if (bad > 0) {
                status = bad;
                break;
            }
            putchar('\n');
        }
        if (bad) {
            errorf("scan: the server returned a malformed %s value", kind_name(e->kind));
            status = EXIT_ERROR;
        }
        printed++;
    }
    /* Stopped by --limit: complete only if nothing is left. Mid-page there is
     * no resume point, which means more entries follow. */
    int complete = status == 0;
    if (complete && x->has_limit && printed == x->limit) {
        const void *cur;
        size_t curlen;
        complete = statesrv_scan_cursor(s, &cur, &curlen) == STATESRV_OK && curlen == 0;
    }
    if (x->json && !x->jsonl)
        printf("],\"complete\":%s}\n", complete ? "true" : "false");
    statesrv_scan_close(s);
    /* Nothing at all: say whether the state itself is missing (exit 1, as
     * get of a missing entry), or merely empty in this range (exit 0). */
    if (status == 0 && printed == 0) {
        int e = state_exists(x, x->pos[0].text);
        if (e < 0)
            return EXIT_ERROR;
        if (!e)
            return no_such_state(x, x->pos[0].text);
    }
    return status;
}

static int cmd_clear(struct ctl *x)
{
    uint64_t deleted = 0;
    int rc;
    if (x->all) {
        rc = statesrv_drop_state(x->c, x->pos[0].text, &deleted);
    } else {
        statesrv_key k;
        make_key(x, &k);
        rc = statesrv_clear(x->c, &k, &deleted);
    }
    if (rc)
        return report(x, rc);
    if (x->json)
        printf("{\"deleted\":%" PRIu64 "}\n", deleted);
    else
        printf("%" PRIu64 "\n", deleted);
    /* Nothing deleted: exit 1 when the state does not exist (as for get). */
    if (deleted == 0) {
        int e = state_exists(x, x->pos[0].text);
        if (e < 0)
            return EXIT_ERROR;
        if (!e)
            return no_such_state(x, x->pos[0].text);
    }
    return 0;
}

static json_t *j_state(const statesrv_state_info *s)
{
    json_t *o = j_object();
    j_set(o, "name", j_str(s->name));
    j_set(o, "entries", j_u64(s->entries));
    j_set(o, "bytes", j_u64(s->bytes));
    j_set(o, "ttl", j_ttl(&s->ttl));
    return o;
}

static json_t *j_states(const statesrv_state_info *st, size_t n)
{
    json_t *a = j_array();
    for (size_t i = 0; i < n; i++)
        j_append(a, j_state(&st[i]));
    return a;
}

static int cmd_states(struct ctl *x)
{
    statesrv_state_info *st;
    size_t n;
    int rc = statesrv_list_states(x->c, &st, &n);
    if (rc)
        return report(x, rc);
    int status = 0;
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "states", j_states(st, n));
        status = json_emit(o);
    } else {
        for (size_t i = 0; i < n; i++) {
            char d[64];
            printf("%s\t%" PRIu64 "\t%" PRIu64, st[i].name, st[i].entries, st[i].bytes);
            if (st[i].ttl.ttl_ms)
                printf("\tttl %s", fmt_duration((int64_t)st[i].ttl.ttl_ms, d, sizeof(d)));
            putchar('\n');
        }
    }
    statesrv_free(st);
    return status;
}

/* A status's name as on the wire ("NOT_FOUND"), or "status_N" for one this
 * statectl does not know. */
static const char *status_name(int status, char *buf, size_t cap)
{
    const char *name = statesrv_strerror(status);
    if (status < 0 || status >= STATESRV_ERR_USAGE || strcmp(name, "UNKNOWN") == 0) {
        snprintf(buf, cap, "status_%d", status);
        return buf;
    }
    return name;
}

/* A latency in microseconds for a person: "840us", "2.50ms", "1.20s". */
static const char *fmt_latency(double us, char *buf, size_t cap)
{
    if (us < 1000)
        snprintf(buf, cap, "%.0fus", us);
    else if (us < 1e6)
        snprintf(buf, cap, "%.2fms", us / 1e3);
    else
        snprintf(buf, cap, "%.2fs", us / 1e6);
    return buf;
}

/* Counts by kind: {"kind": count, ...}. */
static json_t *j_error_counts(const statesrv_error_count *e, size_t n)
{
    json_t *o = j_object();
    for (size_t i = 0; i < n; i++)
        j_set(o, e[i].kind, j_u64(e[i].count));
    return o;
}

static void put_error_counts_text(const char *label, const statesrv_error_count *e, size_t n)
{
    printf("%s:", label);
    for (size_t i = 0; i < n; i++)
        printf("%s %s %" PRIu64, i ? "," : "", e[i].kind, e[i].count);
    printf("%s\n", n ? "" : " -");
}

static json_t *j_op(const statesrv_op_stats *o, const statesrv_op_detail *d)
{
    char buf[32];
    json_t *j = j_object();
    j_set(j, "op", j_str(o->op));
    j_set(j, "count", j_u64(o->count));
    j_set(j, "errors", j_u64(o->errors));
    if (!d)
        return j;
    json_t *st = j_object();
    for (size_t k = 0; k < d->n_statuses; k++)
        j_set(st, status_name(d->statuses[k].status, buf, sizeof(buf)),
              j_u64(d->statuses[k].count));
    j_set(j, "statuses", st);
    json_t *lat = j_object();
    j_set(lat, "count", j_u64(d->latency_count));
    j_set(lat, "sum_ns", j_u64(d->latency_sum_ns));
    j_set(lat, "p50_us", d->latency_count ? j_real(d->latency_p50_us, 3) : j_check(json_null()));
    j_set(lat, "p99_us", d->latency_count ? j_real(d->latency_p99_us, 3) : j_check(json_null()));
    json_t *b = j_array();
    for (size_t k = 0; k < d->n_latency_buckets; k++)
        j_append(b, j_u64(d->latency_buckets[k]));
    j_set(lat, "buckets", b);
    j_set(j, "latency", lat);
    return j;
}

/* Sets the members named in `names` to the uint64 figures in `vals`. */
static void j_set_u64s(json_t *o, const char *const *names, const uint64_t *vals, size_t n)
{
    for (size_t i = 0; i < n; i++)
        j_set(o, names[i], j_u64(vals[i]));
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int put_stats_json(const statesrv_stats *s)
{
    json_t *o = j_object();
    j_set(o, "server_version", j_str(s->server_version));
    static const char *const n1[] = {"uptime_seconds",
                                     "connections_current",
                                     "connections_total",
                                     "connections_rejected",
                                     "map_size",
                                     "map_used",
                                     "map_in_use",
                                     "map_limit",
                                     "map_free_pinned",
                                     "key_groups",
                                     "commits",
                                     "bytes_in",
                                     "bytes_out",
                                     "checkpoints_completed",
                                     "checkpoint_failures",
                                     "last_checkpoint_id",
                                     "last_checkpoint_bytes",
                                     "last_checkpoint_duration_ms",
                                     "last_checkpoint_unix_ms"};
    const uint64_t v1[] = {s->uptime_seconds,
                           s->connections_current,
                           s->connections_total,
                           s->connections_rejected,
                           s->map_size,
                           s->map_used,
                           s->map_in_use,
                           s->map_limit,
                           s->map_free_pinned,
                           s->key_groups,
                           s->commits,
                           s->bytes_in,
                           s->bytes_out,
                           s->checkpoints_completed,
                           s->checkpoint_failures,
                           s->last_checkpoint_id,
                           s->last_checkpoint_bytes,
                           s->last_checkpoint_duration_ms,
                           s->last_checkpoint_unix_ms};
    j_set_u64s(o, n1, v1, N_OF(n1));
    /* No checkpoint yet: no age (null), not 0, which would read as fresh. */
    j_set(o, "last_checkpoint_age_ms",
          s->last_checkpoint_unix_ms ? j_u64(s->last_checkpoint_age_ms) : j_check(json_null()));
    j_set(o, "restores_completed", j_u64(s->restores_completed));
    j_set(o, "last_restore_duration_ms", j_u64(s->last_restore_duration_ms));
    j_set(o, "remote_enabled", j_bool(s->remote_enabled));
    static const char *const n2[] = {"remote_pending",           "remote_upload_lag_ms",
                                     "remote_uploads_completed", "remote_upload_failures",
                                     "remote_bytes_uploaded",    "last_remote_checkpoint_id",
                                     "remote_uploading_id"};
    const uint64_t v2[] = {s->remote_pending,           s->remote_upload_lag_ms,
                           s->remote_uploads_completed, s->remote_upload_failures,
                           s->remote_bytes_uploaded,    s->last_remote_checkpoint_id,
                           s->remote_uploading_id};
    j_set_u64s(o, n2, v2, N_OF(n2));
    j_set(o, "remote_last_error", j_str(s->remote_last_error));
    j_set(o, "ttl_expired_read", j_u64(s->ttl_expired_read));
    j_set(o, "ttl_expired_checkpoint", j_u64(s->ttl_expired_checkpoint));
    j_set(o, "ttl_expired_sweep", j_u64(s->ttl_expired_sweep));
    j_set(o, "ttl_sweep_seconds", j_real(s->ttl_sweep_seconds, 6));
    j_set(o, "ttl_sweep_visited", j_u64(s->ttl_sweep_visited));
    json_t *pr = j_check(json_null());
    if (s->has_progress) {
        json_decref(pr);
        pr = j_object();
        j_set(pr, "kind", j_str(s->progress.kind));
        j_set(pr, "checkpoint_id", j_u64(s->progress.checkpoint_id));
        j_set(pr, "entries", j_u64(s->progress.entries));
        j_set(pr, "total_entries", j_u64(s->progress.total_entries));
        j_set(pr, "bytes", j_u64(s->progress.bytes));
        j_set(pr, "elapsed_ms", j_u64(s->progress.elapsed_ms));
    }
    j_set(o, "checkpoint_in_progress", pr);
    j_set(o, "status_errors", j_error_counts(s->status_errors, s->n_status_errors));
    j_set(o, "connection_errors", j_error_counts(s->connection_errors, s->n_connection_errors));
    json_t *bounds = j_array();
    for (size_t i = 0; i < s->n_latency_bounds; i++)
        j_append(bounds, j_u64(s->latency_bounds_us[i]));
    j_set(o, "latency_bounds_us", bounds);
    json_t *ops = j_array();
    for (size_t i = 0; i < s->n_ops; i++)
        j_append(ops, j_op(&s->ops[i], s->op_details ? &s->op_details[i] : NULL));
    j_set(o, "ops", ops);
    j_set(o, "states", j_states(s->states, s->n_states));
    return json_emit(o);
}

/* Server-wide figures as "name: value" lines, then a table of the ops that
 * were used, then the states. */
static void put_stats_text(const statesrv_stats *s)
{
    printf("server_version: %s\n", s->server_version);
    printf("uptime_seconds: %" PRIu64 "\n", s->uptime_seconds);
    printf("connections_current: %" PRIu32 "\n", s->connections_current);
    printf("connections_total: %" PRIu64 "\n", s->connections_total);
    printf("connections_rejected: %" PRIu64 "\n", s->connections_rejected);
    printf("map_size: %" PRIu64 "\n", s->map_size);
    printf("map_used: %" PRIu64 "\n", s->map_used);
    printf("map_in_use: %" PRIu64 "\n", s->map_in_use);
    printf("map_limit: %" PRIu64 "\n", s->map_limit);
    printf("map_free_pinned: %" PRIu64 "\n", s->map_free_pinned);
    printf("key_groups: %" PRIu32 "\n", s->key_groups);
    printf("commits: %" PRIu64 "\n", s->commits);
    printf("bytes_in: %" PRIu64 "\n", s->bytes_in);
    printf("bytes_out: %" PRIu64 "\n", s->bytes_out);
    printf("checkpoints_completed: %" PRIu64 "\n", s->checkpoints_completed);
    printf("checkpoint_failures: %" PRIu64 "\n", s->checkpoint_failures);
    printf("last_checkpoint_id: %" PRIu64 "\n", s->last_checkpoint_id);
    printf("last_checkpoint_bytes: %" PRIu64 "\n", s->last_checkpoint_bytes);
    printf("last_checkpoint_duration_ms: %" PRIu64 "\n", s->last_checkpoint_duration_ms);
    printf("last_checkpoint_unix_ms: %" PRIu64 "\n", s->last_checkpoint_unix_ms);
    if (s->last_checkpoint_unix_ms)
        printf("last_checkpoint_age_ms: %" PRIu64 "\n", s->last_checkpoint_age_ms);
    else
        printf("last_checkpoint_age_ms: never (no checkpoint yet)\n");
    printf("ttl_expired: read %" PRIu64 " checkpoint %" PRIu64 " sweep %" PRIu64 "\n",
           s->ttl_expired_read, s->ttl_expired_checkpoint, s->ttl_expired_sweep);
    printf("ttl_sweep: %.3f s, %" PRIu64 " entries looked at\n", s->ttl_sweep_seconds,
           s->ttl_sweep_visited);
    printf("restores_completed: %" PRIu64 "\n", s->restores_completed);
    printf("last_restore_duration_ms: %" PRIu64 "\n", s->last_restore_duration_ms);
    if (s->remote_enabled) {
        printf("remote_pending: %" PRIu64 "\n", s->remote_pending);
        printf("remote_upload_lag_ms: %" PRIu64 "\n", s->remote_upload_lag_ms);
        printf("remote_uploads_completed: %" PRIu64 "\n", s->remote_uploads_completed);
        printf("remote_upload_failures: %" PRIu64 "\n", s->remote_upload_failures);
        printf("remote_bytes_uploaded: %" PRIu64 "\n", s->remote_bytes_uploaded);
        printf("last_remote_checkpoint_id: %" PRIu64 "\n", s->last_remote_checkpoint_id);
        printf("remote_uploading_id: %" PRIu64 "\n", s->remote_uploading_id);
        if (s->remote_last_error[0])
            printf("remote_last_error: %s\n", s->remote_last_error);
    }
    if (s->has_progress)
        printf("checkpoint_in_progress: %s id %" PRIu64 " entries %" PRIu64 " of %" PRIu64
               " bytes %" PRIu64 " elapsed_ms %" PRIu64 "\n",
               s->progress.kind, s->progress.checkpoint_id, s->progress.entries,
               s->progress.total_entries, s->progress.bytes, s->progress.elapsed_ms);
    put_error_counts_text("status_errors", s->status_errors, s->n_status_errors);
    put_error_counts_text("connection_errors", s->connection_errors, s->n_connection_errors);

    int header = 0;
    for (size_t i = 0; i < s->n_ops; i++) {
        const statesrv_op_stats *o = &s->ops[i];
        const statesrv_op_detail *d = s->op_details ? &s->op_details[i] : NULL;
        if (!o->count && !(d && d->latency_count))
            continue;
        if (!header) {
            printf("\n%-17s %9s %7s %8s %8s %8s  %s\n", "op", "count", "errors", "mean", "p50",
                   "p99", "other statuses");
            header = 1;
        }
        char mean[16] = "-", p50[16] = "-", p99[16] = "-", name[16];
        if (d && d->latency_count) {
            fmt_latency((double)d->latency_sum_ns / 1e3 / (double)d->latency_count, mean,
                        sizeof(mean));
            fmt_latency(d->latency_p50_us, p50, sizeof(p50));
            fmt_latency(d->latency_p99_us, p99, sizeof(p99));
        }
        printf("%-17s %9" PRIu64 " %7" PRIu64 " %8s %8s %8s ", o->op, o->count, o->errors, mean,
               p50, p99);
        int any = 0;
        for (size_t k = 0; d && k < d->n_statuses; k++) {
            if (d->statuses[k].status == STATESRV_OK)
                continue;
            printf("%s %s %" PRIu64, any ? "," : "",
                   status_name(d->statuses[k].status, name, sizeof(name)), d->statuses[k].count);
            any = 1;
        }
        printf("%s\n", any ? "" : " -");
    }
    if (s->n_states)
        putchar('\n');
    for (size_t i = 0; i < s->n_states; i++)
        printf("state %s: entries %" PRIu64 " bytes %" PRIu64 "\n", s->states[i].name,
               s->states[i].entries, s->states[i].bytes);
}

static int cmd_stats(struct ctl *x)
{
    statesrv_stats *s;
    int rc = statesrv_stats_get(x->c, &s);
    if (rc)
        return report(x, rc);
    int status = 0;
    if (x->json)
        status = put_stats_json(s);
    else
        put_stats_text(s);
    statesrv_stats_free(s);
    return status;
}

static int cmd_info(struct ctl *x)
{
    const statesrv_server_info *i = statesrv_info(x->c);
    statesrv_stats *s;
    int rc = statesrv_stats_get(x->c, &s);
    if (rc)
        return report(x, rc);
    static const char *const names[] = {"data_dir",       "checkpoint_dir", "listen", "unix_socket",
                                        "metrics_listen", "config_file",    "sync"};
    const char *vals[] = {s->data_dir,       s->checkpoint_dir, s->listen, s->unix_socket,
                          s->metrics_listen, s->config_file,    s->sync};
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "protocol_version", j_u64(i->protocol_version));
        j_set(o, "server_version", j_str(i->server_version));
        static const char *const limit_names[] = {
            "key_groups",     "max_frame_size", "max_value_size", "max_key_size", "max_batch_ops",
            "max_scan_limit", "max_states",     "kg_first",       "kg_last",      "uptime_seconds"};
        const uint64_t limits[] = {i->key_groups,    i->max_frame_size, i->max_value_size,
                                   i->max_key_size,  i->max_batch_ops,  i->max_scan_limit,
                                   i->max_states,    s->kg_first,       s->kg_last,
                                   s->uptime_seconds};
        j_set_u64s(o, limit_names, limits, N_OF(limits));
        for (size_t k = 0; k < N_OF(names); k++)
            j_set(o, names[k], j_str(vals[k]));
        statesrv_stats_free(s);
        return json_emit(o);
    } else {
        printf("served_key_groups: %" PRIu32 "-%" PRIu32 "\n", s->kg_first, s->kg_last);
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            printf("%s: %s\n", names[k], vals[k][0] ? vals[k] : "(none)");
        printf("uptime_seconds: %" PRIu64 "\n", s->uptime_seconds);
        printf("protocol_version: %" PRIu32 "\n", i->protocol_version);
        printf("server_version: %s\n", i->server_version);
        printf("key_groups: %" PRIu32 "\n", i->key_groups);
        printf("max_frame_size: %" PRIu32 "\n", i->max_frame_size);
        printf("max_value_size: %" PRIu32 "\n", i->max_value_size);
        printf("max_key_size: %" PRIu32 "\n", i->max_key_size);
        printf("max_batch_ops: %" PRIu32 "\n", i->max_batch_ops);
        printf("max_scan_limit: %" PRIu32 "\n", i->max_scan_limit);
        printf("max_states: %" PRIu32 "\n", i->max_states);
    }
    statesrv_stats_free(s);
    return 0;
}

/* --- import ------------------------------------------------------------------ */

#define IMPORT_LINE_MAX                                                                            \
    (64u << 20)           /* a line: an entry of max_value_size, hex-encoded, and more             \
                           */
#define IMPORT_BATCH 1000 /* entries per batch, at most */

/* Bytes of a JSON string (hex with --hex) or a {"hex": "..."} object into
 * *out (malloc'ed, may be NULL for empty): 0, or -1 with why set. */
static int json_bytes(const struct ctl *x, const json_t *v, unsigned char **out, size_t *len,
                      const char **why)
{
    *out = NULL;
    *len = 0;
    const char *s;
    size_t n;
    int hex = x->hex;
    if (json_is_object(v) && json_is_string(json_object_get(v, "hex")) &&
        json_object_size(v) == 1) {
        v = json_object_get(v, "hex");
        hex = 1;
    }
    if (!json_is_string(v)) {
        *why = "not a string or {\"hex\": ...}";
        return -1;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (!hex) {
        if (n && !(*out = malloc(n)))
            return *why = "out of memory", -1;
        if (n)
            memcpy(*out, s, n);
        *len = n;
        return 0;
    }
    if (n % 2)
        return *why = "not hex (an odd number of digits)", -1;
    if (n && !(*out = malloc(n / 2)))
        return *why = "out of memory", -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            free(*out);
            *out = NULL;
            return *why = "not hex", -1;
        }
        (*out)[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

struct importer {
    struct ctl *x;
    statesrv_batch *b;
    size_t bytes;      /* in the batch */
    size_t max_ops;    /* per batch */
    size_t max_bytes;  /* per batch */
    uint64_t imported; /* committed */
    const char *name;  /* of the input, for messages */
    uint64_t line;
};

static int import_flush(struct importer *im)
{
    if (!statesrv_batch_count(im->b))
        return 0;
    int rc = statesrv_batch_commit(im->x->c, im->b);
    if (rc) {
        errorf("import: %s: the batch ending at line %" PRIu64 " (%zu entries) failed: %s: %s; the "
               "%" PRIu64 " entries before it were imported",
               im->name, im->line, statesrv_batch_count(im->b), statesrv_strerror(rc),
               statesrv_errmsg(im->x->c), im->imported);
        return EXIT_ERROR;
    }
    im->imported += statesrv_batch_count(im->b);
    statesrv_batch_reset(im->b);
    im->bytes = 0;
    return 0;
}

/* One entry object: state, key, namespace, key_group, kind, value (what
 * scan --json and checkpoint dump --json write). */
static int import_entry(struct importer *im, const json_t *e)
{
    struct ctl *x = im->x;
    const char *why = NULL, *field = NULL;
    unsigned char *key = NULL, *ns = NULL, *val = NULL;
    size_t klen = 0, nlen = 0, vlen = 0;
    int status = 0;
    if (!json_is_object(e)) {
        why = "not an object";
        goto bad;
    }
    const json_t *st = json_object_get(e, "state");
    const char *state = x->state ? x->state : json_is_string(st) ? json_string_value(st) : NULL;
    if (!state) {
        why = "no \"state\" (give --state S)";
        goto bad;
    }
    if (!sv_state_name_valid(state, strlen(state)) ||
        (!x->state && strlen(state) != json_string_length(st))) {
        why = "the state is not a state name";
        goto bad;
    }
    field = "key";
    if (json_bytes(x, json_object_get(e, "key"), &key, &klen, &why))
        goto bad;
    if (!klen) {
        why = "empty";
        goto bad;
    }
    const json_t *jns = json_object_get(e, "namespace");
    field = "namespace";
    if (jns && json_bytes(x, jns, &ns, &nlen, &why))
        goto bad;
    statesrv_key k = {.state = state, .key = key, .key_len = klen, .ns = ns, .ns_len = nlen};
    const json_t *kg = json_object_get(e, "key_group");
    field = "key_group";
    if (kg) {
        if (!json_is_integer(kg) || json_integer_value(kg) < 0 ||
            json_integer_value(kg) > UINT32_MAX) {
            why = "not a key group number";
            goto bad;
        }
        k.has_key_group = 1;
        k.key_group = (uint32_t)json_integer_value(kg);
    }
    const json_t *jk = json_object_get(e, "kind"), *v = json_object_get(e, "value");
    const char *kind_s = json_is_string(jk) ? json_string_value(jk) : "raw";
    int kind;
    field = "value";
    if (strcmp(kind_s, "raw") == 0) {
        kind = STATESRV_KIND_RAW;
        if (json_bytes(x, v, &val, &vlen, &why))
            goto bad;
    } else if (strcmp(kind_s, "counter") == 0) {
        kind = STATESRV_KIND_COUNTER;
        if (!json_is_integer(v)) {
            why = "a counter's value is not an integer";
            goto bad;
        }
        if (!(val = malloc(SV_COUNTER_SIZE))) {
            why = "out of memory";
            goto bad;
        }
        sv_i64_put(val, (int64_t)json_integer_value(v));
        vlen = SV_COUNTER_SIZE;
    } else if (strcmp(kind_s, "list") == 0) {
        kind = STATESRV_KIND_LIST;
        if (!json_is_array(v)) {
            why = "a list's value is not an array";
            goto bad;
        }
        size_t i;
        const json_t *el;
        json_array_foreach(v, i, el)
        {
            unsigned char *eb;
            size_t el_len;
            if (json_bytes(x, el, &eb, &el_len, &why))
                goto bad;
            unsigned char *grown = realloc(val, vlen + sv_list_elem_size(el_len));
            if (!grown) {
                free(eb);
                why = "out of memory";
                goto bad;
            }
            val = grown;
            vlen += sv_list_elem_put(val + vlen, eb, el_len);
            free(eb);
        }
    } else {
        field = "kind";
        why = "not raw, list or counter";
        goto bad;
    }
    if (statesrv_batch_count(im->b) >= im->max_ops ||
        im->bytes + klen + nlen + vlen > im->max_bytes)
        status = import_flush(im);
    if (!status && statesrv_batch_put_kind(im->b, &k, kind, val, vlen)) {
        why = "out of memory";
        goto bad;
    }
    im->bytes += klen + nlen + vlen + 64;
    goto out;
bad:
    errorf("import: %s:%" PRIu64 ": %s%s%s", im->name, im->line, field ? field : "",
           field ? ": " : "", why);
    status = EXIT_USAGE;
out:
    free(key);
    free(ns);
    free(val);
    return status;
}

/* import [FILE]: entries as scan --json / --jsonl and checkpoint dump --json
 * write them, one JSON document a line, put in batches. */
static int cmd_import(struct ctl *x)
{
    const char *name = x->npos ? x->pos[0].text : "-";
    FILE *in = strcmp(name, "-") ? fopen(name, "r") : stdin;
    if (!in) {
        errorf("import: %s: %s", name, strerror(errno));
        return errno == ENOENT ? EXIT_NOTFOUND : EXIT_ERROR;
    }
    const statesrv_server_info *info = statesrv_info(x->c);
    struct importer im = {
        .x = x,
        .b = statesrv_batch_new(),
        .max_ops = info->max_batch_ops < IMPORT_BATCH ? info->max_batch_ops : IMPORT_BATCH,
        .max_bytes = info->max_frame_size / 2,
        .name = name,
    };
    int status = im.b ? 0 : EXIT_ERROR;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!status && (n = getline(&line, &cap, in)) > 0) {
        im.line++;
        if ((size_t)n > IMPORT_LINE_MAX) {
            errorf("import: %s:%" PRIu64 ": a line of more than %u bytes", name, im.line,
                   IMPORT_LINE_MAX);
            status = EXIT_USAGE;
            break;
        }
        size_t s = strspn(line, " \t\r\n");
        if (s == (size_t)n)
            continue;
        json_error_t je;
        /* NUL is a byte like any other in keys and values (export writes it
         * as \u0000); a state name holding one is refused below. */
        json_t *doc = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        if (!doc) {
            errorf("import: %s:%" PRIu64 ": not JSON: %s", name, im.line, je.text);
            status = EXIT_USAGE;
            break;
        }
        const json_t *entries = json_object_get(doc, "entries");
        if (json_is_array(entries)) {
            size_t i;
            const json_t *e;
            json_array_foreach(entries, i, e)
            {
                if ((status = import_entry(&im, e)))
                    break;
            }
        } else {
            status = import_entry(&im, doc);
        }
        json_decref(doc);
    }
    if (!status && ferror(in)) {
        errorf("import: %s: %s", name, strerror(errno));
        status = EXIT_ERROR;
    }
    if (!status)
        status = import_flush(&im);
    free(line);
    if (in != stdin)
        fclose(in);
    statesrv_batch_free(im.b);
    if (status)
        return status;
    if (x->json) {
        json_t *o = j_object();
        j_set(o, "imported", j_u64(im.imported));
        return json_emit(o);
    }
    printf("imported %" PRIu64 " entries\n", im.imported);
    return 0;
}

/* --- checkpoints ------------------------------------------------------------ */

static void format_utc(uint64_t unix_ms, char *buf, size_t n)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "?");
}

static json_t *j_checkpoint_state(const statesrv_checkpoint_state *st)
{
    json_t *o = j_object();
    j_set(o, "name", j_str(st->name));
    j_set(o, "entries", j_u64(st->entries));
    j_set(o, "raw_bytes", j_u64(st->raw_bytes));
    j_set(o, "kg_min", st->entries ? j_u64(st->kg_min) : j_check(json_null()));
    j_set(o, "kg_max", st->entries ? j_u64(st->kg_max) : j_check(json_null()));
    j_set(o, "blocks", j_u64(st->blocks));
    return o;
}

/* A manifest as one JSON object, member names as in checkpoint.proto; the
 * hash is a hex string (a JSON number would lose bits in most parsers). */
static json_t *j_checkpoint(const statesrv_checkpoint_info *m)
{
    char created[32], hash[24];
    format_utc(m->created_unix_ms, created, sizeof(created));
    snprintf(hash, sizeof(hash), "%016" PRIx64, m->data_xxh3);
    json_t *o = j_object();
    j_set(o, "checkpoint_id", j_u64(m->id));
    j_set(o, "created_unix_ms", j_u64(m->created_unix_ms));
    j_set(o, "created", j_str(created));
    j_set(o, "server_version", j_str(m->server_version));
    static const char *const n1[] = {"format_version", "key_groups", "kg_first",  "kg_last",
                                     "entries",        "raw_bytes",  "data_bytes"};
    const uint64_t v1[] = {m->format_version, m->key_groups, m->kg_first,  m->kg_last,
                           m->entries,        m->raw_bytes,  m->data_bytes};
    j_set_u64s(o, n1, v1, N_OF(n1));
    j_set(o, "data_xxh3", j_str(hash));
    j_set(o, "compression", j_str(m->compression));
    j_set(o, "compression_level", j_i64(m->compression_level));
    j_set(o, "blocks", j_u64(m->blocks));
    j_set(o, "duration_ms", j_u64(m->duration_ms));
    j_set(o, "incremental", j_bool(m->incremental));
    j_set(o, "base", j_u64(m->base_id));
    j_set(o, "added_bytes", j_u64(m->added_bytes));
    j_set(o, "total_bytes", j_u64(m->total_bytes));
    json_t *states = j_array();
    for (size_t i = 0; i < m->n_states; i++)
        j_append(states, j_checkpoint_state(&m->states[i]));
    j_set(o, "states", states);
    if (m->path)
        j_set(o, "path", j_str(m->path));
    if (m->remote_state[0])
        j_set(o, "remote_state", j_str(m->remote_state));
    if (m->remote_url[0])
        j_set(o, "remote_url", j_str(m->remote_url));
    if (m->remote_error[0])
        j_set(o, "remote_error", j_str(m->remote_error));
    return o;
}

/* Progress of a snapshot or restore on stderr, while the main thread waits
 * for the reply: a second connection polls stats and rewrites one line. Only
 * on a terminal; the line is erased before the result is printed. */
#define PROGRESS_POLL_MS 200

struct progress {
    const struct ctl *x;
    const char *kind; /* the job kind to show: "snapshot" or "restore" */
    int on;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

/* Waits up to ms or until told to stop; 1 when told to stop. */
static int progress_sleep(struct progress *p, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
        ;
    int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

/* Rewrites the progress line; *shown is the width on screen so far. */
static void progress_line(size_t *shown, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void progress_line(size_t *shown, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    fprintf(stderr, "\r%s%*s", line, len < *shown ? (int)(*shown - len) : 0, "");
    fflush(stderr);
    if (len > *shown)
        *shown = len;
}

static void progress_clear(size_t *shown)
{
    if (*shown) {
        fprintf(stderr, "\r%*s\r", (int)*shown, "");
        fflush(stderr);
        *shown = 0;
    }
}

static void progress_show_job(size_t *shown, const statesrv_checkpoint_progress *pr)
{
    double mb = (double)pr->bytes / 1e6, secs = (double)pr->elapsed_ms / 1000.0;
    char what[48];
    if (strcmp(pr->kind, "snapshot") == 0)
        snprintf(what, sizeof(what), "snapshot %" PRIu64, pr->checkpoint_id);
    else
        snprintf(what, sizeof(what), "%s", pr->kind);
    char share[96] = "";
    if (pr->total_entries) {
        /* Entries go at a steady rate: what is left at the rate so far. */
        double f = (double)pr->entries / (double)pr->total_entries;
        if (f > 1)
            f = 1;
        if (f > 0.01 && secs > 0.5)
            snprintf(share, sizeof(share), " of %" PRIu64 " (%.0f%%, ETA %.0f s)",
                     pr->total_entries, f * 100, secs / f - secs);
        else
            snprintf(share, sizeof(share), " of %" PRIu64 " (%.0f%%)", pr->total_entries, f * 100);
    }
    progress_line(shown, "%s: %" PRIu64 "%s entries, %.1f MB, %.1f MB/s, %.1f s", what, pr->entries,
                  share, mb, secs > 0 ? mb / secs : 0.0, secs);
}

static void *progress_main(void *arg)
{
    struct progress *p = arg;
    statesrv *c = NULL;
    size_t shown = 0;
    /* The first look comes after one interval, so a quick job shows nothing
     * and costs no second connection. */
    while (!progress_sleep(p, PROGRESS_POLL_MS)) {
        if (!c) {
            statesrv_options o = {0};
            o.connect_timeout_ms = p->x->timeout_ms;
            o.io_timeout_ms = p->x->timeout_ms;
            o.client_name = "statectl-progress";
            o.auth_token = p->x->token[0] ? p->x->token : NULL;
            if (statesrv_connect(p->x->addr, &o, &c))
                break; /* no progress then; the job itself is unaffected */
        }
        statesrv_stats *s;
        if (statesrv_stats_get(c, &s))
            break;
        if (s->has_progress && strcmp(s->progress.kind, p->kind) == 0)
            progress_show_job(&shown, &s->progress);
        statesrv_stats_free(s);
    }
    statesrv_close(c);
    progress_clear(&shown);
    return NULL;
}

static void progress_start(struct progress *p, const struct ctl *x, const char *kind)
{
    memset(p, 0, sizeof(*p));
    p->x = x;
    p->kind = kind;
    if (!isatty(STDERR_FILENO))
        return;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca))
        return;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc)
        return;
    if (pthread_mutex_init(&p->mu, NULL)) {
        pthread_cond_destroy(&p->cv);
        return;
    }
    if (pthread_create(&p->thread, NULL, progress_main, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        return;
    }
    p->on = 1;
}

/* Stops the poller and waits until it has erased its line. */
static void progress_stop(struct progress *p)
{
    if (!p->on)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    p->on = 0;
}

static int cmd_snapshot(struct ctl *x)
{
    struct progress p;
    statesrv_checkpoint_info *m;
    progress_start(&p, x, "snapshot");
    int rc = x->wait_remote ? statesrv_snapshot_remote(x->c, x->has_id, x->id, x->full, &m)
             : x->full      ? statesrv_snapshot_full(x->c, x->has_id, x->id, &m)
                            : statesrv_snapshot(x->c, x->has_id, x->id, &m);
    progress_stop(&p);
    if (rc)
        return report(x, rc);
    int status = 0;
    if (x->json) {
        status = json_emit(j_checkpoint(m));
    } else {
        printf("checkpoint %" PRIu64 ": %s (%s, %" PRIu64 " bytes added)\n", m->id, m->path,
               m->incremental ? "incremental" : "full", m->added_bytes);
        if (m->remote_url[0])
            printf("remote: %s\n", m->remote_url);
    }
    statesrv_checkpoint_info_free(m);
    return status;
}

/* One table cell per checkpoint and column, for sizing the columns. */
enum {
    COL_ID,
    COL_CREATED,
    COL_KIND,
    COL_BASE,
    COL_ENTRIES,
    COL_ADDED,
    COL_TOTAL,
    COL_DURATION,
    COL_KG,
    COL_REMOTE,
    N_COLS
};

static void checkpoint_cells(const statesrv_checkpoint_info *m, char cells[N_COLS][32])
{
    snprintf(cells[COL_ID], 32, "%" PRIu64, m->id);
    format_utc(m->created_unix_ms, cells[COL_CREATED], 32);
    snprintf(cells[COL_KIND], 32, "%s", m->incremental ? "incremental" : "full");
    snprintf(cells[COL_BASE], 32, "%" PRIu64, m->base_id);
    snprintf(cells[COL_ENTRIES], 32, "%" PRIu64, m->entries);
    snprintf(cells[COL_ADDED], 32, "%" PRIu64, m->added_bytes);
    snprintf(cells[COL_TOTAL], 32, "%" PRIu64, m->total_bytes);
    snprintf(cells[COL_DURATION], 32, "%" PRIu64, m->duration_ms);
    snprintf(cells[COL_KG], 32, "%" PRIu32 "-%" PRIu32, m->kg_first, m->kg_last);
    snprintf(cells[COL_REMOTE], 32, "%s", m->remote_state[0] ? m->remote_state : "-");
}

static int s3_client(struct ctl *x, const char *url, struct sv_s3 **s, char *path, size_t cap);

struct remote_list {
    struct ctl *x;
    const char *bucket;
    size_t n;
    int status; /* an exit status once output failed */
};

/* One checkpoint per MANIFEST object: ".../chk-<id>/MANIFEST". */
static int remote_list_cb(void *ud, const char *key, uint64_t size)
{
    struct remote_list *l = ud;
    size_t kl = strlen(key), ml = strlen("/" SV_CKPT_MANIFEST_FILE);
    if (kl <= ml || strcmp(key + kl - ml, "/" SV_CKPT_MANIFEST_FILE) != 0)
        return 0;
    char dir[SV_S3_KEY_MAX + 1], parent[SV_S3_KEY_MAX + 1];
    uint64_t id;
    snprintf(dir, sizeof(dir), "%.*s", (int)(kl - ml), key);
    if (sv_ckpt_remote_split(dir, parent, sizeof(parent), &id))
        return 0;
    if (l->x->json) {
        char url[SV_S3_KEY_MAX + 80];
        snprintf(url, sizeof(url), "s3://%s/%s", l->bucket, dir);
        json_t *o = j_object();
        j_set(o, "url", j_str(url));
        j_set(o, "checkpoint_id", j_u64(id));
        j_set(o, "manifest_bytes", j_u64(size));
        if (l->n)
            putchar(',');
        if ((l->status = json_put(o)))
            return -1;
    } else {
        printf("s3://%s/%s\n", l->bucket, dir);
    }
    l->n++;
    return 0;
}

/* checkpoints --remote URL: what the store holds under URL (offline). */
static int remote_checkpoints(struct ctl *x)
{
    struct sv_s3 *s;
    char path[SV_S3_KEY_MAX + 1], prefix[SV_S3_KEY_MAX + 2], err[1024];
    int status = s3_client(x, x->remote, &s, path, sizeof(path));
    if (status)
        return status;
    snprintf(prefix, sizeof(prefix), "%s%s", path, path[0] ? "/" : "");
    struct remote_list l = {.x = x, .bucket = sv_s3_bucket(s)};
    if (x->json)
        printf("{\"checkpoints\":[");
    int rc = sv_s3_list(s, prefix, remote_list_cb, &l, err, sizeof(err));
    if (x->json)
        printf("]}\n");
    sv_s3_free(s);
    if (l.status)
        return l.status;
    if (rc) {
        errorf("%s: %s", x->cmd->name, err);
        return rc == SV_ENOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
    }
    return 0;
}

static int cmd_checkpoints(struct ctl *x)
{
    if (x->remote)
        return remote_checkpoints(x);
    statesrv_checkpoint_info *a;
    statesrv_checkpoint_problem *p = NULL;
    size_t n, np = 0;
    int rc = statesrv_list_checkpoints(x->c, &a, &n);
    if (rc)
        return report(x, rc);
    if ((rc = statesrv_list_checkpoint_problems(x->c, &p, &np))) {
        statesrv_checkpoint_info_free(a);
        return report(x, rc);
    }
    if (x->json) {
        json_t *o = j_object(), *list = j_array(), *probs = j_array();
        for (size_t i = 0; i < n; i++)
            j_append(list, j_checkpoint(&a[i]));
        for (size_t i = 0; i < np; i++) {
            json_t *e = j_object();
            j_set(e, "id", j_u64(p[i].id));
            j_set(e, "path", j_str(p[i].path));
            j_set(e, "problem", j_str(p[i].problem));
            j_append(probs, e);
        }
        j_set(o, "checkpoints", list);
        j_set(o, "problems", probs);
        statesrv_checkpoint_info_free(a);
        statesrv_free(p);
        return json_emit(o);
    }
    /* Numbers right-aligned, text left-aligned, columns as wide as needed. */
    static const char *const head[N_COLS] = {
        "ID",          "CREATED",     "KIND",        "BASE",       "ENTRIES",
        "ADDED_BYTES", "TOTAL_BYTES", "DURATION_MS", "KEY_GROUPS", "REMOTE"};
    static const int left[N_COLS] = {0, 1, 1, 0, 0, 0, 0, 0, 1, 1};
    int width[N_COLS];
    char cells[N_COLS][32];
    for (int k = 0; k < N_COLS; k++)
        width[k] = (int)strlen(head[k]);
    for (size_t i = 0; i < n; i++) {
        checkpoint_cells(&a[i], cells);
        for (int k = 0; k < N_COLS; k++)
            if ((int)strlen(cells[k]) > width[k])
                width[k] = (int)strlen(cells[k]);
    }
    for (size_t i = 0; i <= n; i++) {
        if (i)
            checkpoint_cells(&a[i - 1], cells);
        for (int k = 0; k < N_COLS; k++) {
            const char *cell = i ? cells[k] : head[k];
            if (k == N_COLS - 1)
                printf("%s\n", cell);
            else
                printf(left[k] ? "%-*s  " : "%*s  ", width[k], cell);
        }
        /* Why a checkpoint is not remote yet, under its row. */
        if (i && a[i - 1].remote_error[0] && strcmp(a[i - 1].remote_state, "remote"))
            printf("    upload: %s\n", a[i - 1].remote_error);
    }
    /* Directories that look like checkpoints and are not: said, not hidden. */
    for (size_t i = 0; i < np; i++)
        printf("chk-%" PRIu64 " is not a checkpoint: %s\n", p[i].id, p[i].problem);
    statesrv_checkpoint_info_free(a);
    statesrv_free(p);
    return 0;
}

static int cmd_checkpoint_rm(struct ctl *x)
{
    uint64_t id;
    if (parse_u64(x->pos[0].text, UINT64_MAX, &id)) {
        errorf("%s: '%s' is not a checkpoint id", x->cmd->name, x->pos[0].text);
        return EXIT_USAGE;
    }
    int rc = statesrv_delete_checkpoint(x->c, id);
    if (rc)
        return report(x, rc);
    return json_ok(x);
}

static int cmd_restore(struct ctl *x)
{
    const char *sources[MAX_POS];
    for (int i = 0; i < x->npos; i++)
        sources[i] = x->pos[i].text;
    struct progress p;
    statesrv_restore_info r;
    progress_start(&p, x, "restore");
    int rc = statesrv_restore(x->c, sources, (size_t)x->npos, x->has_key_groups, x->kg_first,
                              x->kg_last, &r);
    progress_stop(&p);
    if (rc)
        return report(x, rc);
    if (x->json) {
        json_t *o = j_object();
        static const char *const names[] = {"entries", "states", "kg_first", "kg_last",
                                            "duration_ms"};
        const uint64_t vals[] = {r.entries, r.states, r.kg_first, r.kg_last, r.duration_ms};
        j_set_u64s(o, names, vals, N_OF(names));
        return json_emit(o);
    }
    printf("restored %" PRIu64 " entries in %" PRIu32 " state(s), key groups %" PRIu32 "-%" PRIu32
           "\n",
           r.entries, r.states, r.kg_first, r.kg_last);
    return 0;
}

/* --- offline: checkpoint files ------------------------------------------- */

static int cmd_checkpoint_verify(struct ctl *x);

/* verify --json answers failures with a document too. */
static void put_verify_failure(const struct ctl *x, const char *why)
{
    if (!x->json || x->cmd->run != cmd_checkpoint_verify)
        return;
    json_t *o = j_object();
    j_set(o, "ok", j_bool(0));
    j_set(o, "error", j_str(why));
    json_emit(o);
}

/* Opens the checkpoint directory PATH. On failure reports why and returns the
 * exit status: 1 when PATH does not exist, 3 for anything else (a directory
 * that is not a readable, intact checkpoint). */
/* A client of the store an s3:// URL names, from the environment (as the
 * AWS tools read it): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_ENDPOINT_URL (default: AWS S3 in AWS_REGION, default us-east-1). The
 * URL's path goes to path. */
static int s3_client(struct ctl *x, const char *url, struct sv_s3 **s, char *path, size_t cap)
{
    char bucket[64], endpoint[512];
    const char *region = getenv("AWS_REGION"), *ep = getenv("AWS_ENDPOINT_URL");
    if (!region || !*region)
        region = "us-east-1";
    if (ep && *ep)
        snprintf(endpoint, sizeof(endpoint), "%s", ep);
    else
        snprintf(endpoint, sizeof(endpoint), "https://s3.%s.amazonaws.com", region);
    if (sv_s3_parse_url(url, bucket, sizeof(bucket), path, cap)) {
        errorf("%s: '%s' is not an s3://BUCKET/PREFIX URL", x->cmd->name, url);
        return EXIT_USAGE;
    }
    struct sv_s3_options o = {.endpoint = endpoint,
                              .region = region,
                              .bucket = bucket,
                              .access_key = getenv("AWS_ACCESS_KEY_ID"),
                              .secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
                              .part_size = SV_S3_PART_MIN,
                              .concurrency = 1,
                              .retries = 2};
    char err[512];
    if (sv_s3_new(&o, s, err, sizeof(err))) {
        errorf("%s: %s (set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL)",
               x->cmd->name, err);
        return EXIT_USAGE;
    }
    return 0;
}

/* An s3:// checkpoint: its chain downloaded into a temporary directory
 * (removed at exit), whose path goes to dir. */
static int ckpt_fetch(struct ctl *x, const char *url, char *dir, size_t cap)
{
    struct sv_s3 *s;
    char path[SV_S3_KEY_MAX + 1], parent[SV_S3_KEY_MAX + 1], err[1024];
    uint64_t id;
    int status = s3_client(x, url, &s, path, sizeof(path));
    if (status)
        return status;
    if (sv_ckpt_remote_split(path, parent, sizeof(parent), &id)) {
        sv_s3_free(s);
        errorf("%s: %s does not end in chk-<id>", x->cmd->name, url);
        return EXIT_USAGE;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(x->s3_tmp, sizeof(x->s3_tmp), "%.100s/statectl-s3-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(x->s3_tmp)) {
        errorf("%s: cannot create %s: %s", x->cmd->name, x->s3_tmp, strerror(errno));
        x->s3_tmp[0] = '\0';
        sv_s3_free(s);
        return EXIT_ERROR;
    }
    snprintf(x->s3_parent, sizeof(x->s3_parent), "%.*s", (int)(strrchr(url, '/') - url), url);
    int rc = sv_ckpt_remote_fetch(s, parent, id, x->s3_tmp, dir, cap, err, sizeof(err));
    sv_s3_free(s);
    if (rc) {
        errorf("%s: %s", x->cmd->name, err);
        put_verify_failure(x, err);
        return rc == SV_ENOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
    }
    return 0;
}

/* A failure's reason, naming objects rather than the download directory. */
static void ckpt_names(struct ctl *x, char *err, size_t cap)
{
    if (x->s3_tmp[0])
        sv_ckpt_remote_names(err, cap, x->s3_tmp, x->s3_parent);
}

static int ckpt_open(struct ctl *x, struct sv_ckpt_chain **r)
{
    const char *path = x->pos[0].text;
    char err[1024] = "", fetched[4400];
    if (strncmp(path, "s3://", 5) == 0) {
        int status = ckpt_fetch(x, path, fetched, sizeof(fetched));
        if (status)
            return status;
        path = fetched;
    }
    struct stat st;
    if (stat(path, &st) && (errno == ENOENT || errno == ENOTDIR)) {
        snprintf(err, sizeof(err), "%.900s: %s", path, strerror(errno));
        errorf("%s: %s", x->cmd->name, err);
        put_verify_failure(x, err);
        return EXIT_NOTFOUND;
    }
    int rc = sv_ckpt_chain_open(path, r, err, sizeof(err));
    if (rc) {
        ckpt_names(x, err, sizeof(err));
        const char *why = err[0] ? err : sv_strerror(rc);
        errorf("%s: %s", x->cmd->name, why);
        put_verify_failure(x, why);
        return EXIT_ERROR;
    }
    return 0;
}

/* The reader's manifest in the library's shape, so one printer serves both.
 * states is malloc'd (NULL when there are none). */
static int manifest_info(const struct sv_ckpt_manifest *m, const char *path,
                         statesrv_checkpoint_info *d)
{
    memset(d, 0, sizeof(*d));
    d->id = m->checkpoint_id;
    d->created_unix_ms = m->created_unix_ms;
    snprintf(d->server_version, sizeof(d->server_version), "%s", m->server_version);
    d->format_version = m->format_version;
    d->key_groups = m->key_groups;
    d->kg_first = m->kg_first;
    d->kg_last = m->kg_last;
    d->entries = m->entries;
    d->raw_bytes = m->raw_bytes;
    d->data_bytes = m->data_bytes;
    d->data_xxh3 = m->data_xxh3;
    snprintf(d->compression, sizeof(d->compression), "%s",
             m->compression == SV_CKPT_COMPRESS_ZSTD ? "zstd" : "none");
    d->compression_level = m->compression_level;
    d->blocks = m->blocks;
    d->duration_ms = m->duration_ms;
    d->incremental = m->incremental;
    d->base_id = m->base_id;
    d->added_bytes = m->added_bytes;
    d->total_bytes = m->total_bytes;
    d->path = path;
    if (m->n_states) {
        d->states = calloc(m->n_states, sizeof(*d->states));
        if (!d->states)
            return -1;
    }
    d->n_states = m->n_states;
    for (size_t i = 0; i < m->n_states; i++) {
        const struct sv_ckpt_state *s = &m->states[i];
        statesrv_checkpoint_state *t = &d->states[i];
        snprintf(t->name, sizeof(t->name), "%s", s->name);
        t->entries = s->entries;
        t->raw_bytes = s->raw_bytes;
        t->kg_min = s->kg_min;
        t->kg_max = s->kg_max;
        t->blocks = s->blocks;
    }
    return 0;
}

static int cmd_checkpoint_inspect(struct ctl *x)
{
    struct sv_ckpt_chain *r;
    int status = ckpt_open(x, &r);
    if (status)
        return status;
    statesrv_checkpoint_info m;
    if (manifest_info(sv_ckpt_chain_manifest(r), x->pos[0].text, &m)) {
        errorf("out of memory");
        sv_ckpt_chain_close(r);
        return EXIT_ERROR;
    }
    if (x->json) {
        status = json_emit(j_checkpoint(&m));
    } else {
        char created[32];
        format_utc(m.created_unix_ms, created, sizeof(created));
        printf("path: %s\n", m.path);
        printf("checkpoint_id: %" PRIu64 "\n", m.id);
        printf("created: %s (%" PRIu64 ")\n", created, m.created_unix_ms);
        printf("server_version: %s\n", m.server_version);
        printf("format_version: %" PRIu32 "\n", m.format_version);
        printf("key_groups: %" PRIu32 "\n", m.key_groups);
        printf("kg_range: %" PRIu32 "-%" PRIu32 "\n", m.kg_first, m.kg_last);
        printf("entries: %" PRIu64 "\n", m.entries);
        printf("raw_bytes: %" PRIu64 "\n", m.raw_bytes);
        printf("data_bytes: %" PRIu64 "\n", m.data_bytes);
        printf("data_xxh3: %016" PRIx64 "\n", m.data_xxh3);
        printf("compression: %s (level %d)\n", m.compression, m.compression_level);
        printf("blocks: %" PRIu64 "\n", m.blocks);
        printf("duration_ms: %" PRIu64 "\n", m.duration_ms);
        printf("kind: %s\n", m.incremental ? "incremental" : "full");
        printf("base: %" PRIu64 "\n", m.base_id);
        printf("added_bytes: %" PRIu64 "\n", m.added_bytes);
        printf("total_bytes: %" PRIu64 "\n", m.total_bytes);
        const struct sv_ckpt_manifest *cm = sv_ckpt_chain_manifest(r);
        for (size_t i = 0; i < sv_ckpt_chain_length(r); i++)
            printf(
                "file %s: checkpoint %" PRIu64 " %s %" PRIu64 " bytes\n", sv_ckpt_chain_path(r, i),
                cm->n_links ? cm->links[i].checkpoint_id : cm->checkpoint_id,
                i ? "incremental" : "full", cm->n_links ? cm->links[i].data_bytes : cm->data_bytes);
        for (size_t i = 0; i < m.n_states; i++) {
            const statesrv_checkpoint_state *s = &m.states[i];
            printf("state %s: entries %" PRIu64 " raw_bytes %" PRIu64 " blocks %" PRIu64, s->name,
                   s->entries, s->raw_bytes, s->blocks);
            if (s->entries)
                printf(" key_groups %" PRIu32 "-%" PRIu32, s->kg_min, s->kg_max);
            putchar('\n');
        }
    }
    free(m.states);
    sv_ckpt_chain_close(r);
    return status;
}

static int cmd_checkpoint_verify(struct ctl *x)
{
    struct sv_ckpt_chain *r;
    int status = ckpt_open(x, &r);
    if (status)
        return status;
    const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(r);
    char err[512] = "";
    /* Every file of the chain, then that they merge to what it counts. */
    int rc = sv_ckpt_chain_verify(r, 1, err, sizeof(err));
    if (rc) {
        ckpt_names(x, err, sizeof(err));
        const char *why = err[0] ? err : sv_strerror(rc);
        errorf("%s: %s", x->cmd->name, why);
        put_verify_failure(x, why);
        status = EXIT_ERROR;
    } else if (x->json) {
        json_t *o = j_object();
        j_set(o, "ok", j_bool(1));
        j_set(o, "entries", j_u64(m->entries));
        j_set(o, "bytes", j_u64(m->total_bytes));
        j_set(o, "files", j_u64(sv_ckpt_chain_length(r)));
        status = json_emit(o);
    } else {
        printf("ok: %" PRIu64 " entries, %" PRIu64 " bytes in %zu file(s)\n", m->entries,
               m->total_bytes, sv_ckpt_chain_length(r));
    }
    sv_ckpt_chain_close(r);
    return status;
}

/* Prints the entries of one state in key groups first..last. 0, or an exit
 * status after reporting. *printed counts entries across states (JSON commas). */
static int dump_state(struct ctl *x, struct sv_ckpt_chain *r, size_t idx, uint32_t first,
                      uint32_t last, uint64_t *printed)
{
    const char *name = sv_ckpt_chain_manifest(r)->states[idx].name;
    struct sv_ckpt_chain_iter *it;
    int rc = sv_ckpt_chain_iter_open(r, name, first, last, &it);
    if (rc) {
        errorf("%s: %s", x->cmd->name, sv_ckpt_chain_errmsg(r));
        return EXIT_ERROR;
    }
    int status = 0;
    const uint8_t *sk, *val;
    size_t sklen, vlen;
    uint64_t n = 0;
    struct sv_buf timed = SV_BUF_INIT;
    while ((rc = sv_ckpt_chain_iter_next(it, &sk, &sklen, &val, &vlen)) == 1) {
        struct sv_skey key;
        struct sv_value v;
        n++;
        if (sv_skey_decode(sk, sklen, &key)) {
            errorf("%s: state %s, entry %" PRIu64 ": the stored key does not decode", x->cmd->name,
                   name, n);
            status = EXIT_ERROR;
            break;
        }
        if (sv_value_parse(val, vlen, &v)) {
            errorf("%s: state %s, entry %" PRIu64 ": the stored value does not decode",
                   x->cmd->name, name, n);
            status = EXIT_ERROR;
            break;
        }
        if (v.timed) {
            /* A list whose elements expire one by one: its elements, as a
             * list is shown (each one's expiry is not). */
            size_t dropped;
            timed.len = 0;
            if (sv_tlist_plain(&v, 0, 1, &timed, &dropped)) {
                errorf("%s: state %s: a malformed list value", x->cmd->name, name);
                status = EXIT_ERROR;
                break;
            }
            v.data = timed.data;
            v.len = timed.len;
        }
        int kind = (int)v.kind; /* the same numbers as enum statesrv_kind */
        int bad = 0;
        if (x->json) {
            if ((*printed)++)
                putchar(',');
            json_t *j = j_entry(x, name, key.kg, key.key, key.key_len, key.ns, key.ns_len, kind,
                                v.expiry_ms, v.data, v.len, &bad);
            if (json_put(j)) {
                status = EXIT_ERROR;
                break;
            }
        } else {
            /* With --state the lines are those of `scan`, so the two diff. */
            if (!x->state)
                printf("%s\t", name);
            printf("%" PRIu32 "\t", key.kg);
            put_text_field(x, key.key, key.key_len);
            putchar('\t');
            put_text_field(x, key.ns, key.ns_len);
            printf("\t%s\t", kind_name(kind));
            bad = put_value_text(x, kind, v.data, v.len);
            if (bad > 0) {
                status = bad;
                break;
            }
            putchar('\n');
        }
        if (bad) {
            errorf("%s: state %s: a malformed %s value", x->cmd->name, name, kind_name(kind));
            status = EXIT_ERROR;
        }
    }
    if (rc < 0) {
        errorf("%s: %s", x->cmd->name, sv_ckpt_chain_errmsg(r));
        status = EXIT_ERROR;
    }
    sv_buf_free(&timed);
    sv_ckpt_chain_iter_close(it);
    return status;
}

static int cmd_checkpoint_dump(struct ctl *x)
{
    struct sv_ckpt_chain *r;
    int status = ckpt_open(x, &r);
    if (status)
        return status;
    const struct sv_ckpt_manifest *m = sv_ckpt_chain_manifest(r);
    uint32_t first = m->kg_first, last = m->kg_last;
    if (x->has_key_groups) {
        /* Beyond what the checkpoint has: refused as the server refuses a
         * scan beyond its key groups (3); A > B was refused as usage (2). */
        if (x->kg_last >= m->key_groups) {
            errorf("%s: key groups %" PRIu32 "-%" PRIu32 " are not a range within 0-%" PRIu32,
                   x->cmd->name, x->kg_first, x->kg_last, m->key_groups - 1);
            sv_ckpt_chain_close(r);
            return EXIT_ERROR;
        }
        first = x->kg_first;
        last = x->kg_last;
    }
    size_t from = 0, to = m->n_states;
    if (x->state) {
        for (from = 0; from < m->n_states; from++)
            if (strcmp(m->states[from].name, x->state) == 0)
                break;
        if (from == m->n_states) {
            errorf("%s: the checkpoint has no state '%s'", x->cmd->name, x->state);
            sv_ckpt_chain_close(r);
            return EXIT_NOTFOUND;
        }
        to = from + 1;
    }
    uint64_t printed = 0;
    if (x->json)
        printf("{\"entries\":[");
    for (size_t i = from; i < to && !status; i++)
        status = dump_state(x, r, i, first, last, &printed);
    if (x->json)
        printf("],\"complete\":%s}\n", status ? "false" : "true");
    sv_ckpt_chain_close(r);
    return status;
}

static const struct command commands[] = {
    {"ping", cmd_ping, 0, 0, 0, "", "Checks that the server answers.", 0},
    {"get", cmd_get, 2, 2, OPT_NS | OPT_KEY_GROUP | OPT_TTL,
     "STATE KEY [-n NS] [--key-group N] [--ttl]",
     "Prints one value: RAW as it is, a COUNTER as a decimal number, a LIST one\n"
     "element per line; each followed by a newline. Exits 1 if the entry does not\n"
     "exist (an expired entry does not). --ttl: first a line \"ttl: 29.5s\" with\n"
     "what is left of the entry's TTL (none, or expired when the state returns\n"
     "expired entries); --json: ttl_remaining_ms (null: none).",
     CMD_STATE_KEY},
    {"put", cmd_put, 3, 3, OPT_NS | OPT_KEY_GROUP | OPT_TTL,
     "STATE KEY VALUE [-n NS] [--key-group N] [--ttl D]",
     "Writes a RAW value, replacing any previous one. --ttl: the entry expires D\n"
     "after this write (30s, 500ms, 10m, 2h, 1d), instead of after the state's TTL.",
     CMD_STATE_KEY},
    {"ttl", cmd_ttl, 1, 2, OPT_TTL_CFG,
     "STATE [DURATION] [--update on-create-and-write|on-read-and-write]\n"
     "    [--visibility never-return-expired|return-expired-if-not-cleaned-up]",
     "Shows a state's TTL, or sets it: entries expire DURATION (30s, 10m, 2h, 1d)\n"
     "after they were written (--update on-read-and-write: or read); expired ones\n"
     "are not returned (--visibility return-expired-if-not-cleaned-up: until they\n"
     "are cleaned up). 0 or off removes the TTL. A state that does not exist yet\n"
     "is created (empty), so that checkpoints carry its TTL; dropping it removes it.\n"
     "Entries already stored keep the expiry they were written with. Shown for a\n"
     "state that does not exist: exits 1.",
     CMD_TEXT_ARGS},
    {"del", cmd_del, 2, 2, OPT_NS | OPT_KEY_GROUP, "STATE KEY [-n NS] [--key-group N]",
     "Deletes one entry. Prints nothing (JSON: {\"found\":BOOL}); exits 1 if the\n"
     "entry did not exist.",
     CMD_STATE_KEY},
    {"merge", cmd_merge, 3, 3, OPT_NS | OPT_KEY_GROUP | OPT_MERGE | OPT_TTL,
     "STATE KEY OPERAND --append|--add [-n NS] [--key-group N] [--ttl D]",
     "--append adds OPERAND as one element to a LIST value. --add adds the decimal\n"
     "int64 OPERAND to a COUNTER value and prints the new value. Both create the\n"
     "value when it is absent.",
     CMD_STATE_KEY},
    {"scan", cmd_scan, 1, 1, OPT_SCAN | OPT_KG_RANGE | OPT_KEY_GROUP | OPT_JSONL,
     "STATE [--key K [--key-group N]] [--key-groups A-B] [--prefix P] [--limit N] [--jsonl]",
     "Prints entries in stored order, one per line: key group, key, namespace,\n"
     "kind and value, separated by tabs (bytes that are not printable are\n"
     "escaped; LIST values print as a JSON array). --key: every namespace of one\n"
     "key. --key-groups: key groups A to B inclusive. --prefix: only keys that\n"
     "start with P (composite keys; keys are spread over key groups, so this\n"
     "reads the whole state or range). --limit: at most N entries. --jsonl: one\n"
     "JSON entry a line, with its state (what import reads). Exits 1 if the state\n"
     "does not exist (0 if it is merely empty in the range).",
     CMD_STATE_KEY},
    {"clear", cmd_clear, 1, 2, OPT_KEY_GROUP | OPT_ALL, "STATE KEY [--key-group N] | STATE --all",
     "Deletes every namespace of KEY, or with --all drops the whole state. Prints\n"
     "the number of entries deleted.",
     CMD_STATE_KEY},
    {"import", cmd_import, 0, 1, OPT_STATE, "[FILE] [--state S]",
     "Puts the entries of FILE (default: standard input), as scan --json or\n"
     "--jsonl and checkpoint dump --json write them: one JSON document a line,\n"
     "an entry ({\"state\", \"key\", \"namespace\", \"key_group\", \"kind\",\n"
     "\"value\"}) or {\"entries\": [...]}; bytes as strings or {\"hex\": ...}\n"
     "(with --hex, strings are hex). --state: into state S (scan's entries name\n"
     "none). Each entry replaces the one at its key; in batches of up to 1000,\n"
     "each atomic: a failing batch is named and what came before it stays. Prints\n"
     "the number imported.",
     CMD_TEXT_ARGS},
    {"states", cmd_states, 0, 0, 0, "",
     "Lists the states: name, entries and bytes, separated by tabs, and \"ttl D\"\n"
     "for a state with a TTL.",
     0},
    {"stats", cmd_stats, 0, 0, 0, "",
     "Prints the server's counters, the numbers its /metrics endpoint serves:\n"
     "server-wide figures as \"name: value\" lines (checkpoint_failures,\n"
     "status_errors and connection_errors by kind among them), then one line per\n"
     "op that was used: count, errors, mean latency, p50 and p99 (estimated from\n"
     "the histogram), statuses other than OK; then the states. --json: all of it,\n"
     "every op, with statuses by name and the latency histogram's buckets.",
     0},
    {"info", cmd_info, 0, 0, 0, "",
     "Prints where the server is and what it accepts: the key groups it serves, its\n"
     "data and checkpoint directories, listeners, config file, sync mode and uptime,\n"
     "then what it announced in the handshake (version, limits).",
     0},
    {"snapshot", cmd_snapshot, 0, 0, OPT_ID | OPT_FULL | OPT_WAIT_REMOTE,
     "[--id N] [--full] [--wait-remote]",
     "Writes a checkpoint of every state to the server's checkpoint_dir and waits\n"
     "until it is complete and durable (--timeout does not limit that wait).\n"
     "Prints \"checkpoint ID: DIRECTORY\"; with --json the whole manifest, states\n"
     "included. --id: the id to use (default: one more than the highest present).\n"
     "On a terminal, progress is shown on stderr. Fails (exit 3) with BUSY while\n"
     "another snapshot or restore runs. --wait-remote (with checkpoint_remote): also\n"
     "waits until the checkpoint is in the object store and prints \"remote: URL\"\n"
     "(--json: remote_url), a source restore accepts; fails with UNAVAILABLE when\n"
     "the upload attempt failed (the checkpoint stays, its upload is retried).",
     0},
    {"checkpoints", cmd_checkpoints, 0, 0, OPT_REMOTE, "[--remote s3://BUCKET/PREFIX]",
     "Lists the server's checkpoints, oldest first: id, creation time (UTC),\n"
     "entries, size of the data file, how long writing it took, and the key-group\n"
     "range it covers; with checkpoint_remote, whether each is local only, being\n"
     "uploaded or remote (and why an upload failed); then a line for each chk-ID\n"
     "directory that is not a readable checkpoint, saying why. --json: an object:\n"
     "checkpoints, an array of manifests (with remote_state, remote_url,\n"
     "remote_error), and problems (id, path, problem). --remote: instead, every\n"
     "checkpoint the object store holds under the URL (offline: credentials from\n"
     "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; AWS_ENDPOINT_URL, AWS_REGION).",
     0},
    {"restore", cmd_restore, 1, MAX_POS, OPT_KG_RANGE, "SOURCE... [--key-groups A-B]",
     "Replaces the whole live state with the entries of the SOURCEs and waits until\n"
     "it is done (--timeout does not limit that wait). A SOURCE is a checkpoint id\n"
     "in the server's checkpoint_dir, or the path (on the server's machine) of a\n"
     "checkpoint directory under its restore_roots; several are merged, e.g. to\n"
     "rescale. --key-groups: take only key groups A to B inclusive. Prints the\n"
     "entries, states and key-group range restored (--json: also the duration).\n"
     "On a terminal, progress is shown on stderr. Exits 1 if a source does not\n"
     "exist, 3 if the server refuses (BUSY; INVALID_ARGUMENT: a bad source or\n"
     "range, overlapping sources, a checkpoint that does not verify).",
     CMD_TEXT_ARGS},
    {"checkpoint", NULL, 0, 0, 0, "SUBCOMMAND",
     "Checkpoint housekeeping. rm talks to the server; verify, inspect and dump\n"
     "read a checkpoint directory directly and need no server.",
     0},
    {"checkpoint rm", cmd_checkpoint_rm, 1, 1, 0, "ID",
     "Deletes checkpoint ID from the server's checkpoint_dir. Exits 1 if it does\n"
     "not exist.",
     CMD_TEXT_ARGS},
    {"checkpoint verify", cmd_checkpoint_verify, 1, 1, 0, "PATH",
     "Reads the whole checkpoint directory PATH and checks every checksum, block\n"
     "and count (offline). Prints \"ok: N entries, M bytes\", or the reason and\n"
     "exits 3 when the checkpoint is damaged (1 when PATH does not exist). On a\n"
     "terminal, progress is shown on stderr. PATH may be an s3://BUCKET/.../chk-ID\n"
     "URL (for inspect and dump too): the checkpoint's chain is downloaded into a\n"
     "temporary directory first (credentials as for checkpoints --remote), and a\n"
     "damaged object is named.",
     CMD_OFFLINE | CMD_TEXT_ARGS},
    {"checkpoint inspect", cmd_checkpoint_inspect, 1, 1, 0, "PATH",
     "Prints the manifest of the checkpoint directory PATH (offline): id, time,\n"
     "key groups, sizes, compression, and each state with its entries and\n"
     "key-group range. Checks the manifest and the data file's index, not the\n"
     "data (see verify).",
     CMD_OFFLINE | CMD_TEXT_ARGS},
    {"checkpoint dump", cmd_checkpoint_dump, 1, 1, OPT_STATE | OPT_KG_RANGE,
     "PATH [--state S] [--key-groups A-B]",
     "Prints every entry of the checkpoint directory PATH (offline), in stored\n"
     "order, one per line: state, key group, key, namespace, kind and value,\n"
     "separated by tabs, escaped as by scan. --state: only state S, and lines\n"
     "exactly as `scan S` prints them (no state column). --key-groups: only key\n"
     "groups A to B inclusive. Exits 1 if there is no state S.",
     CMD_OFFLINE | CMD_TEXT_ARGS},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Lists commands (skipping groups), or only those of group `in`, with their
 * arguments lined up. */
static void list_commands(FILE *f, const struct command *in)
{
    size_t width = 4, plen = in ? strlen(in->name) : 0; /* "help" */
    for (size_t i = 0; i < N_COMMANDS; i++) {
        size_t n = strlen(commands[i].name);
        if (commands[i].run && n > width)
            width = n;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct command *cmd = &commands[i];
        if (!cmd->run ||
            (in && (strncmp(cmd->name, in->name, plen) != 0 || cmd->name[plen] != ' ')))
            continue;
        if (cmd->args[0])
            fprintf(f, "  %-*s %s\n", (int)width, cmd->name, cmd->args);
        else
            fprintf(f, "  %s\n", cmd->name);
    }
    if (!in)
        fprintf(f, "  %-*s [COMMAND]\n", (int)width, "help");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-a ADDR] [--json] [--hex] [--timeout MS] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n",
            prog);
    list_commands(f, NULL);
    fprintf(f, "\n"
               "Options:\n"
               "  -a, --addr ADDR   server address: HOST:PORT, [V6ADDR]:PORT or unix:/PATH\n"
               "                    (default: $STATESRV_ADDR, else " STATESRV_DEFAULT_ADDR ")\n"
               "  --json            print one JSON document (errors still go to stderr)\n"
               "  --hex             keys, namespaces and values are hex, in and out\n"
               "  --timeout MS      connect and I/O timeout in milliseconds\n"
               "  --token-file PATH the server's auth token (default: $STATESRV_TOKEN_FILE)\n"
               "  -h, --help        this help; COMMAND --help for one command\n"
               "  --version         print the version\n"
               "\n"
               "Exit status: 0 ok, 1 not found, 2 usage error (found before anything is sent),\n"
               "3 connection, server or file error; statectl(1) says which is which.\n");
}

static void command_usage(FILE *f, const struct command *cmd, int full)
{
    if (!cmd->run) {
        /* The subcommands are the useful part even of the short form. */
        fprintf(f, "usage: %s [OPTIONS] %s SUBCOMMAND [ARGS]\n", prog, cmd->name);
        if (full)
            fprintf(f, "\n%s\n", cmd->help);
        fprintf(f, "%sSubcommands:\n", full ? "\n" : "");
        list_commands(f, cmd);
        return;
    }
    fprintf(f, "usage: %s [OPTIONS] %s%s%s\n", prog, cmd->name, cmd->args[0] ? " " : "", cmd->args);
    if (full)
        fprintf(f, "\n%s\n", cmd->help);
}

static int usage_error(const struct ctl *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct ctl *x, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    if (x->cmd)
        fprintf(stderr, "%s: ", x->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    if (x->cmd) {
        command_usage(stderr, x->cmd, 0);
        fprintf(stderr, "Run '%s %s --help' for more.\n", prog, x->cmd->name);
    } else {
        fprintf(stderr,
                "usage: %s [-a ADDR] [--json] [--hex] [--timeout MS] COMMAND [ARGS]\n"
                "Run '%s --help' for more.\n",
                prog, prog);
    }
    return EXIT_USAGE;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    if (strcmp(name, "delete") == 0)
        return find_command("del");
    return NULL;
}

/* The command "GROUP SUB", or NULL. */
static const struct command *find_subcommand(const struct command *group, const char *sub)
{
    char name[64];
    if (snprintf(name, sizeof(name), "%s %s", group->name, sub) >= (int)sizeof(name))
        return NULL;
    const struct command *cmd = find_command(name);
    return cmd && cmd->run ? cmd : NULL;
}

/* Options, for getopt_long: each with the OPT_* bit of the commands that
 * take it (0: every command, and before the command), and what its value
 * must be (for the message when it is missing). */
enum {
    O_ADDR = 'a',
    O_NS = 'n',
    O_HELP = 'h',
    O_JSON = 256,
    O_HEX,
    O_TIMEOUT,
    O_TOKEN_FILE,
    O_VERSION,
    O_KEY_GROUP,
    O_APPEND,
    O_ADD,
    O_KEY,
    O_KEY_GROUPS,
    O_LIMIT,
    O_FULL,
    O_WAIT_REMOTE,
    O_ALL,
    O_REMOTE,
    O_ID,
    O_PREFIX,
    O_JSONL,
    O_TTL,
    O_UPDATE,
    O_VISIBILITY,
    O_STATE,
};

struct optdef {
    const char *name; /* long name; "" for -n, which has none */
    int has_arg;
    int val;
    unsigned allow; /* OPT_* bits, 0: global */
    const char *need;
};

static const struct optdef optdefs[] = {
    {"addr", required_argument, O_ADDR, 0, "an address"},
    {"json", no_argument, O_JSON, 0, NULL},
    {"hex", no_argument, O_HEX, 0, NULL},
    {"timeout", required_argument, O_TIMEOUT, 0, "a positive number of milliseconds"},
    {"token-file", required_argument, O_TOKEN_FILE, 0, "a path"},
    {"help", no_argument, O_HELP, 0, NULL},
    {"version", no_argument, O_VERSION, 0, NULL},
    {"", required_argument, O_NS, OPT_NS, "a namespace"},
    {"key-group", required_argument, O_KEY_GROUP, OPT_KEY_GROUP, "a number"},
    {"append", no_argument, O_APPEND, OPT_MERGE, NULL},
    {"add", no_argument, O_ADD, OPT_MERGE, NULL},
    {"key", required_argument, O_KEY, OPT_SCAN, "a key"},
    {"key-groups", required_argument, O_KEY_GROUPS, OPT_KG_RANGE, "a range A-B"},
    {"limit", required_argument, O_LIMIT, OPT_SCAN, "a positive number"},
    {"full", no_argument, O_FULL, OPT_FULL, NULL},
    {"wait-remote", no_argument, O_WAIT_REMOTE, OPT_WAIT_REMOTE, NULL},
    {"all", no_argument, O_ALL, OPT_ALL, NULL},
    {"remote", required_argument, O_REMOTE, OPT_REMOTE, "an s3://BUCKET/PREFIX URL"},
    {"id", required_argument, O_ID, OPT_ID, "a checkpoint id (a number)"},
    {"prefix", required_argument, O_PREFIX, OPT_JSONL, "the start of a key"},
    {"jsonl", no_argument, O_JSONL, OPT_JSONL, NULL},
    /* get --ttl is a flag; put and merge --ttl take a duration (below). */
    {"ttl", required_argument, O_TTL, OPT_TTL, "a duration (30s, 500ms, 10m, 2h, 1d)"},
    {"update", required_argument, O_UPDATE, OPT_TTL_CFG,
     "on-create-and-write or on-read-and-write"},
    {"visibility", required_argument, O_VISIBILITY, OPT_TTL_CFG,
     "never-return-expired or return-expired-if-not-cleaned-up"},
    {"state", required_argument, O_STATE, OPT_STATE, "a state name"},
};

#define N_OPTDEFS (sizeof(optdefs) / sizeof(optdefs[0]))

/* The options cmd takes (every global one before a command) as getopt_long
 * wants them. "-" first: arguments come back in order (as 1), so the
 * command picks the table for what follows it; ":" first: statectl says
 * what is wrong, not getopt. */
static void option_table(const struct command *cmd, struct option *lo, char *shorts)
{
    unsigned allowed = cmd ? cmd->opts : 0;
    size_t n = 0;
    strcpy(shorts, "-:a:h");
    if (allowed & OPT_NS)
        strcat(shorts, "n:");
    for (size_t i = 0; i < N_OPTDEFS; i++) {
        const struct optdef *d = &optdefs[i];
        if (!d->name[0] || (d->allow && !(d->allow & allowed)))
            continue;
        lo[n].name = d->name;
        lo[n].has_arg = d->has_arg;
        if (d->val == O_TTL && cmd->run == cmd_get)
            lo[n].has_arg = no_argument;
        lo[n].flag = NULL;
        lo[n].val = d->val;
        n++;
    }
    memset(&lo[n], 0, sizeof(lo[n]));
}

static const struct optdef *optdef_of(int val)
{
    for (size_t i = 0; i < N_OPTDEFS; i++)
        if (optdefs[i].val == val)
            return &optdefs[i];
    return NULL;
}

/* An option as the user may have written it, for messages: "-n", "--key". */
static const char *option_name(const struct optdef *d, char *buf, size_t cap)
{
    if (!d->name[0])
        snprintf(buf, cap, "-%c", d->val);
    else
        snprintf(buf, cap, "--%s", d->name);
    return buf;
}

/* Why an option was refused (by getopt_long: '?', with optopt): one that
 * is not this command's (or anyone's), or was given a value it does not
 * take. */
static int option_refused(const struct ctl *x, const char *arg)
{
    char buf[64];
    const struct optdef *d = optopt > 0 ? optdef_of(optopt) : NULL;
    int flag = d && (d->has_arg == no_argument || (d->val == O_TTL && x->cmd->run == cmd_get));
    if (flag && strchr(arg, '='))
        return usage_error(x, "%s takes no value", option_name(d, buf, sizeof(buf)));
    if (optopt > 0 && optopt < 256 && !d)
        return usage_error(x, "unknown option '-%c'", optopt);
    /* The name as written, without "=VALUE". */
    size_t len = strcspn(arg, "=");
    for (size_t i = 0; i < N_OPTDEFS; i++) {
        const struct optdef *o = &optdefs[i];
        int match = o->name[0] ? strncmp(arg, "--", 2) == 0 && strlen(o->name) == len - 2 &&
                                     strncmp(arg + 2, o->name, len - 2) == 0
                               : optopt == o->val;
        if (!match)
            continue;
        if (!x->cmd)
            return usage_error(x, "option '%.*s' goes after the command it is for", (int)len, arg);
        return usage_error(x, "'%.*s' is not an option of %s", (int)len, arg, x->cmd->name);
    }
    return usage_error(x, "unknown option '%.*s'", (int)len, arg);
}

/* Whether "--NAME" or "--NAME=VALUE" names an option of the table exactly:
 * getopt_long would also take an abbreviation, and "--add" before a command
 * would then be --addr. */
static int exact_long_option(const struct option *lo, const char *arg)
{
    size_t len = strcspn(arg + 2, "=");
    for (; lo->name; lo++)
        if (strlen(lo->name) == len && strncmp(lo->name, arg + 2, len) == 0)
            return 1;
    return 0;
}

/* An argument that is a value although it starts with '-': a negative
 * number ("merge s k -5 --add"). */
static int is_negative_number(const char *a)
{
    return a[0] == '-' && a[1] >= '0' && a[1] <= '9';
}

/* Parses --key-groups A-B. */
static int parse_kg_range(const char *v, uint32_t *first, uint32_t *last)
{
    const char *dash = strchr(v, '-');
    uint64_t a, b;
    char buf[32];
    if (!dash || (size_t)(dash - v) >= sizeof(buf))
        return -1;
    memcpy(buf, v, (size_t)(dash - v));
    buf[dash - v] = '\0';
    if (parse_u64(buf, UINT32_MAX, &a) || parse_u64(dash + 1, UINT32_MAX, &b))
        return -1;
    *first = (uint32_t)a;
    *last = (uint32_t)b;
    return 0;
}

/* One option getopt_long returned, with its value v: 1 to go on, 0 when
 * help or the version was printed (exit 0), or an exit status. */
static int take_option(struct ctl *x, int ch, const char *v)
{
    const struct optdef *d = optdef_of(ch);
    switch (ch) {
    case O_HELP:
        if (x->cmd)
            command_usage(stdout, x->cmd, 1);
        else
            usage(stdout);
        return 0;
    case O_VERSION:
        printf("%s %s (protocol %d)\n", prog, SV_VERSION, STATESRV_PROTOCOL_VERSION);
        return 0;
    case O_JSON:
        x->json = 1;
        break;
    case O_HEX:
        x->hex = 1;
        break;
    case O_ADDR:
        x->addr = v;
        break;
    case O_TOKEN_FILE:
        if (statesrv_read_token_file(v, x->token, sizeof(x->token)))
            return usage_error(x, "--token-file %s: cannot read a token from it", v);
        break;
    case O_TIMEOUT: {
        uint64_t ms;
        if (parse_u64(v, INT32_MAX, &ms) || ms == 0)
            return usage_error(x, "--timeout needs %s, not '%s'", d->need, v);
        x->timeout_ms = (int)ms;
        break;
    }
    case O_NS:
        x->ns.text = v;
        x->has_ns = 1;
        break;
    case O_KEY_GROUP: {
        uint64_t kg;
        if (parse_u64(v, UINT32_MAX, &kg))
            return usage_error(x, "--key-group needs a number, not '%s'", v);
        x->has_key_group = 1;
        x->key_group = (uint32_t)kg;
        break;
    }
    case O_APPEND:
        x->append = 1;
        break;
    case O_ADD:
        x->add = 1;
        break;
    case O_KEY:
        x->scan_key.text = v;
        x->has_scan_key = 1;
        break;
    case O_KEY_GROUPS:
        if (parse_kg_range(v, &x->kg_first, &x->kg_last))
            return usage_error(x, "--key-groups needs a range A-B, not '%s'", v);
        if (x->kg_first > x->kg_last)
            return usage_error(x, "--key-groups %s: A must not be above B", v);
        x->has_key_groups = 1;
        break;
    case O_LIMIT:
        if (parse_u64(v, UINT64_MAX, &x->limit) || x->limit == 0)
            return usage_error(x, "--limit needs a positive number, not '%s'", v);
        x->has_limit = 1;
        break;
    case O_FULL:
        x->full = 1;
        break;
    case O_WAIT_REMOTE:
        x->wait_remote = 1;
        break;
    case O_ALL:
        x->all = 1;
        break;
    case O_REMOTE:
        if (strncmp(v, "s3://", 5))
            return usage_error(x, "--remote needs %s, not '%s'", d->need, v);
        x->remote = v;
        break;
    case O_ID:
        if (parse_u64(v, UINT64_MAX, &x->id))
            return usage_error(x, "--id needs %s, not '%s'", d->need, v);
        x->has_id = 1;
        break;
    case O_PREFIX:
        x->prefix.text = v;
        x->has_prefix = 1;
        break;
    case O_JSONL:
        x->jsonl = x->json = 1;
        break;
    case O_TTL:
        /* get: a flag (v is NULL); put, merge: a duration. */
        if (v && (parse_duration_ms(v, &x->ttl_ms) || x->ttl_ms == 0))
            return usage_error(x, "--ttl needs %s, not '%s'", d->need, v);
        x->has_ttl = 1;
        break;
    case O_UPDATE:
        if (strcmp(v, "on-create-and-write") && strcmp(v, "on-read-and-write"))
            return usage_error(x, "--update needs %s, not '%s'", d->need, v);
        x->ttl_update = v;
        break;
    case O_VISIBILITY:
        if (strcmp(v, "never-return-expired") && strcmp(v, "return-expired-if-not-cleaned-up"))
            return usage_error(x, "--visibility needs %s, not '%s'", d->need, v);
        x->ttl_visibility = v;
        break;
    case O_STATE:
        x->state = v;
        break;
    default:
        return usage_error(x, "unknown option");
    }
    return 1;
}

/* A word that is not an option: the command, a group's subcommand, `help`
 * (and what it is about: argv[next] on), or an argument. Same returns as
 * take_option. */
static int take_word(struct ctl *x, const char *a, int argc, char **argv, int next)
{
    if (!x->cmd && strcmp(a, "help") == 0) {
        /* help [COMMAND [SUB]]: the same as COMMAND --help. */
        const struct command *cmd = next < argc ? find_command(argv[next]) : NULL;
        if (next < argc && !cmd)
            return usage_error(x, "unknown command '%s'", argv[next]);
        if (cmd && !cmd->run && next + 1 < argc) {
            const struct command *sub = find_subcommand(cmd, argv[next + 1]);
            if (!sub)
                return usage_error(x, "unknown command '%s %s'", cmd->name, argv[next + 1]);
            cmd = sub;
        }
        if (cmd)
            command_usage(stdout, cmd, 1);
        else
            usage(stdout);
        return 0;
    }
    if (!x->cmd) {
        x->cmd = find_command(a);
        if (!x->cmd)
            return usage_error(x, "unknown command '%s'", a);
        return 1;
    }
    if (!x->cmd->run) {
        /* A group: this word picks the command. */
        const struct command *sub = find_subcommand(x->cmd, a);
        if (!sub)
            return usage_error(x, "unknown subcommand '%s'", a);
        x->cmd = sub;
        return 1;
    }
    if (x->npos >= MAX_POS || x->npos >= x->cmd->max_pos)
        return usage_error(x, "unexpected argument '%s'", a);
    x->pos[x->npos++].text = a;
    return 1;
}

/* 1: run, 0: help printed (exit 0), or an exit status. Options may come
 * before the command (the global ones) and anywhere after it (its own and
 * the global ones), in any order with its arguments; "--" ends them. */
static int parse_args(struct ctl *x, int argc, char **argv)
{
    struct option lo[N_OPTDEFS + 1];
    char shorts[16];
    const struct command *table_for = NULL;
    int rc = 1;
    option_table(NULL, lo, shorts);
    opterr = 0;
    optind = 1;
    while (rc == 1 && optind < argc) {
        if (x->cmd != table_for) {
            /* The command (or its subcommand) is known: its options now. */
            option_table(x->cmd, lo, shorts);
            table_for = x->cmd;
        }
        /* A negative number is a value, which getopt would take for options. */
        if (is_negative_number(argv[optind])) {
            rc = take_word(x, argv[optind], argc, argv, optind + 1);
            optind++;
            continue;
        }
        const char *a = argv[optind];
        if (a[0] == '-' && a[1] == '-' && a[2] && !exact_long_option(lo, a)) {
            optopt = 0;
            rc = option_refused(x, a);
            break;
        }
        int ch = getopt_long(argc, argv, shorts, lo, NULL);
        if (ch == -1) {
            /* "--": the rest are arguments. */
            while (rc == 1 && optind < argc) {
                rc = take_word(x, argv[optind], argc, argv, optind + 1);
                optind++;
            }
            break;
        }
        if (ch == 1)
            rc = take_word(x, optarg, argc, argv, optind);
        else if (ch == '?')
            rc = option_refused(x, argv[optind - 1]);
        else if (ch == ':' && optdef_of(optopt))
            rc = usage_error(x, "%s needs %s", argv[optind - 1], optdef_of(optopt)->need);
        else
            rc = take_option(x, ch, optarg);
    }
    if (rc != 1)
        return rc;

    if (!x->cmd)
        return usage_error(x, "no command given");
    if (!x->cmd->run)
        return usage_error(x, "needs a subcommand");
    const struct command *cmd = x->cmd;
    int want_min = cmd->min_pos, want_max = cmd->max_pos;
    if (cmd->run == cmd_clear)
        want_min = want_max = x->all ? 1 : 2;
    if (x->npos < want_min && want_max > want_min)
        return usage_error(x, "expected at least %d argument%s, got %d", want_min,
                           want_min == 1 ? "" : "s", x->npos);
    if (x->npos < want_min || x->npos > want_max)
        return usage_error(x, "expected %d argument%s, got %d", want_min, want_min == 1 ? "" : "s",
                           x->npos);
    if (cmd->run == cmd_merge && x->append + x->add != 1)
        return usage_error(x, "give exactly one of --append and --add");
    if (x->has_scan_key && x->has_key_groups)
        return usage_error(x, "--key and --key-groups exclude each other");
    if (cmd->run == cmd_scan && x->has_key_group && !x->has_scan_key)
        return usage_error(x, "--key-group goes with --key");
    if (x->all && x->has_key_group)
        return usage_error(x, "--key-group makes no sense with --all");

    /* Keys, namespaces and values are bytes; the state name and the --add
     * operand are text either way. */
    static const char *const what[] = {"state", "key", "value", "argument"};
    for (int i = 1; i < x->npos && !(cmd->flags & CMD_TEXT_ARGS); i++) {
        if (i == 2 && x->add)
            continue;
        if (decode_arg(x, &x->pos[i], what[i]))
            return EXIT_USAGE;
    }
    if ((cmd->flags & CMD_STATE_KEY) && x->npos >= 1 &&
        !sv_state_name_valid(x->pos[0].text, strlen(x->pos[0].text)))
        return usage_error(x, "'%s' is not a state name: 1 to 64 of A-Z a-z 0-9 _ . -",
                           x->pos[0].text);
    if ((cmd->flags & CMD_STATE_KEY) && x->npos >= 2 && x->pos[1].len == 0)
        return usage_error(x, "the key must not be empty");
    if (x->has_ns && decode_arg(x, &x->ns, "namespace"))
        return EXIT_USAGE;
    if (x->has_scan_key && decode_arg(x, &x->scan_key, "key"))
        return EXIT_USAGE;
    if (x->has_scan_key && x->scan_key.len == 0)
        return usage_error(x, "the key must not be empty");
    if (x->has_prefix && decode_arg(x, &x->prefix, "prefix"))
        return EXIT_USAGE;
    if (x->has_prefix && x->has_scan_key)
        return usage_error(x, "--prefix and --key exclude each other");
    return 1;
}

static void ctl_free(struct ctl *x)
{
    for (int i = 0; i < x->npos; i++)
        free(x->pos[i].bytes);
    free(x->ns.bytes);
    free(x->scan_key.bytes);
    free(x->prefix.bytes);
    statesrv_close(x->c);
    if (x->s3_tmp[0])
        sv_fs_rm_rf(x->s3_tmp);
}

int main(int argc, char **argv)
{
    struct ctl x;
    memset(&x, 0, sizeof(x));
    int rc = parse_args(&x, argc, argv);
    if (rc != 1) {
        ctl_free(&x);
        return rc;
    }
    if (!x.addr) {
        const char *env = getenv("STATESRV_ADDR");
        x.addr = env && *env ? env : STATESRV_DEFAULT_ADDR;
    }
    /* Offline commands read checkpoint files (or the object store) and need
     * no server. */
    if (!(x.cmd->flags & CMD_OFFLINE) && !x.remote) {
        statesrv_options o = {0};
        o.connect_timeout_ms = x.timeout_ms;
        o.io_timeout_ms = x.timeout_ms;
        o.client_name = "statectl";
        const char *tf = getenv("STATESRV_TOKEN_FILE");
        if (!x.token[0] && tf && *tf && statesrv_read_token_file(tf, x.token, sizeof(x.token))) {
            errorf("STATESRV_TOKEN_FILE %s: cannot read a token from it", tf);
            ctl_free(&x);
            return EXIT_USAGE;
        }
        o.auth_token = x.token[0] ? x.token : NULL;
        char why[256];
        rc = statesrv_connect2(x.addr, &o, &x.c, why, sizeof(why));
        if (rc) {
            errorf("cannot connect to %s: %s", x.addr, why);
            ctl_free(&x);
            return rc == STATESRV_ERR_USAGE ? EXIT_USAGE : EXIT_ERROR;
        }
    }

    int status = x.cmd->run(&x);
    ctl_free(&x);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errorf("writing output: %s", strerror(errno));
        return EXIT_ERROR;
    }
    return status;
}
