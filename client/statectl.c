/* statectl: a command-line client for statesrvd, built on libstatesrv.
 *
 * Every command connects, does one thing and prints the answer: text by
 * default (keys and values are the bytes of argv, printed as they are),
 * hex with --hex, one JSON document with --json. Exit status: 0 ok, 1 not
 * found, 2 usage error, 3 connection or server error. */
#include "statesrv.h"
#include "sv_msg.h" /* SV_VERSION */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

/* Command options, one bit each; a command lists those it accepts. */
enum {
    OPT_NS = 1 << 0,        /* -n NS */
    OPT_KEY_GROUP = 1 << 1, /* --key-group N */
    OPT_MERGE = 1 << 2,     /* --append / --add */
    OPT_SCAN = 1 << 3,      /* --key K, --key-groups A-B, --limit N */
    OPT_ALL = 1 << 4,       /* --all */
};

#define MAX_POS 4

/* An argument that may need hex decoding once --hex is known. */
struct arg {
    const char *text;
    unsigned char *bytes; /* decoded; owned */
    size_t len;
};

struct ctl {
    const char *addr;
    int json, hex, timeout_ms;
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

/* Length of the valid UTF-8 sequence starting at p (2..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string. Bytes that are not printable ASCII or valid UTF-8 become
 * \u00XX escapes; with --hex the string holds the hex of the bytes. */
static void put_json_bytes(const struct ctl *x, const void *data, size_t n)
{
    const unsigned char *p = data;
    putchar('"');
    if (x->hex) {
        put_hex(p, n);
        putchar('"');
        return;
    }
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            putchar('\\');
            putchar(ch);
        } else if (ch == '\n') {
            fputs("\\n", stdout);
        } else if (ch == '\t') {
            fputs("\\t", stdout);
        } else if (ch == '\r') {
            fputs("\\r", stdout);
        } else if (ch >= 0x20 && ch < 0x7f) {
            putchar(ch);
        } else if (ch >= 0x80) {
            size_t len = utf8_seq(p + i, n - i);
            if (len) {
                fwrite(p + i, 1, len, stdout);
                i += len;
                continue;
            }
            printf("\\u%04x", ch);
        } else {
            printf("\\u%04x", ch);
        }
        i++;
    }
    putchar('"');
}

static void put_json_str(const char *s)
{
    /* Server strings go through the byte escaper without --hex. */
    struct ctl plain = {0};
    put_json_bytes(&plain, s, strlen(s));
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
        } else if (ch >= 0x80 && utf8_seq(p + i, n - i)) {
            size_t len = utf8_seq(p + i, n - i);
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

/* Prints a value in JSON (as the "value" member's value) or, in the
 * one-line text form used by scan. -1 if a LIST or COUNTER is malformed. */
static int put_value_inline(const struct ctl *x, int kind, const void *data, size_t n)
{
    if (kind == STATESRV_KIND_COUNTER) {
        int64_t v;
        if (statesrv_counter_decode(data, n, &v))
            return -1;
        printf("%" PRId64, v);
        return 0;
    }
    if (kind == STATESRV_KIND_LIST) {
        size_t off = 0, elen;
        const void *elem;
        int rc, first = 1;
        putchar('[');
        while ((rc = statesrv_list_next(data, n, &off, &elem, &elen)) == 1) {
            if (!first)
                putchar(',');
            first = 0;
            put_json_bytes(x, elem, elen);
        }
        putchar(']');
        return rc;
    }
    if (x->json)
        put_json_bytes(x, data, n);
    else
        put_text_field(x, data, n);
    return 0;
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

static void json_ok(const struct ctl *x)
{
    if (x->json)
        printf("{\"ok\":true}\n");
}

static int cmd_ping(struct ctl *x)
{
    int rc = statesrv_ping(x->c);
    if (rc)
        return report(x, rc);
    if (x->json)
        json_ok(x);
    else
        printf("pong\n");
    return 0;
}

static int cmd_get(struct ctl *x)
{
    statesrv_key k;
    statesrv_value v = {0};
    make_key(x, &k);
    int rc = statesrv_get(x->c, &k, &v);
    if (rc) {
        if (rc == STATESRV_NOT_FOUND && x->json)
            printf("{\"found\":false}\n");
        return report(x, rc);
    }
    int bad = 0;
    if (x->json) {
        printf("{\"found\":true,\"kind\":\"%s\",\"value\":", kind_name(v.kind));
        bad = put_value_inline(x, v.kind, v.data, v.len);
        printf("}\n");
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
    return 0;
}

static int cmd_put(struct ctl *x)
{
    statesrv_key k;
    make_key(x, &k);
    int rc = statesrv_put(x->c, &k, arg_data(&x->pos[2]), x->pos[2].len);
    if (rc)
        return report(x, rc);
    json_ok(x);
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
    if (x->json)
        printf("{\"found\":%s}\n", found ? "true" : "false");
    return found ? 0 : EXIT_NOTFOUND;
}

static int cmd_merge(struct ctl *x)
{
    statesrv_key k;
    make_key(x, &k);
    if (x->append) {
        int rc = statesrv_append(x->c, &k, arg_data(&x->pos[2]), x->pos[2].len);
        if (rc)
            return report(x, rc);
        json_ok(x);
        return 0;
    }
    int64_t delta, result;
    if (parse_i64(x->pos[2].text, &delta)) {
        errorf("merge: --add needs a decimal int64 operand, not '%s'", x->pos[2].text);
        return EXIT_USAGE;
    }
    int rc = statesrv_add(x->c, &k, delta, &result);
    if (rc)
        return report(x, rc);
    if (x->json)
        printf("{\"counter\":%" PRId64 "}\n", result);
    else
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
    if (x->json)
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
        if (x->json) {
            printf("%s{\"key_group\":%" PRIu32 ",\"key\":", printed ? "," : "", e->key_group);
            put_json_bytes(x, e->key, e->key_len);
            printf(",\"namespace\":");
            put_json_bytes(x, e->ns, e->ns_len);
            printf(",\"kind\":\"%s\",\"value\":", kind_name(e->kind));
        } else {
            printf("%" PRIu32 "\t", e->key_group);
            put_text_field(x, e->key, e->key_len);
            putchar('\t');
            put_text_field(x, e->ns, e->ns_len);
            printf("\t%s\t", kind_name(e->kind));
        }
        if (put_value_inline(x, e->kind, e->value, e->value_len)) {
            printf(x->json ? "null" : "?");
            errorf("scan: the server returned a malformed %s value", kind_name(e->kind));
            status = EXIT_ERROR;
        }
        printf(x->json ? "}" : "\n");
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
    if (x->json)
        printf("],\"complete\":%s}\n", complete ? "true" : "false");
    statesrv_scan_close(s);
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
    return 0;
}

static void put_state_json(const statesrv_state_info *s)
{
    printf("{\"name\":");
    put_json_str(s->name);
    printf(",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", s->entries, s->bytes);
}

static int cmd_states(struct ctl *x)
{
    statesrv_state_info *st;
    size_t n;
    int rc = statesrv_list_states(x->c, &st, &n);
    if (rc)
        return report(x, rc);
    if (x->json) {
        printf("{\"states\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                putchar(',');
            put_state_json(&st[i]);
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s\t%" PRIu64 "\t%" PRIu64 "\n", st[i].name, st[i].entries, st[i].bytes);
    }
    statesrv_free(st);
    return 0;
}

static int cmd_stats(struct ctl *x)
{
    statesrv_stats *s;
    int rc = statesrv_stats_get(x->c, &s);
    if (rc)
        return report(x, rc);
    if (x->json) {
        printf("{\"server_version\":");
        put_json_str(s->server_version);
        printf(",\"uptime_seconds\":%" PRIu64 ",\"connections_current\":%" PRIu32
               ",\"connections_total\":%" PRIu64 ",\"connections_rejected\":%" PRIu64
               ",\"map_size\":%" PRIu64 ",\"map_used\":%" PRIu64 ",\"key_groups\":%" PRIu32
               ",\"commits\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
               ",\"ops\":[",
               s->uptime_seconds, s->connections_current, s->connections_total,
               s->connections_rejected, s->map_size, s->map_used, s->key_groups, s->commits,
               s->bytes_in, s->bytes_out);
        for (size_t i = 0; i < s->n_ops; i++) {
            printf("%s{\"op\":", i ? "," : "");
            put_json_str(s->ops[i].op);
            printf(",\"count\":%" PRIu64 ",\"errors\":%" PRIu64 "}", s->ops[i].count,
                   s->ops[i].errors);
        }
        printf("],\"states\":[");
        for (size_t i = 0; i < s->n_states; i++) {
            if (i)
                putchar(',');
            put_state_json(&s->states[i]);
        }
        printf("]}\n");
    } else {
        printf("server_version: %s\n", s->server_version);
        printf("uptime_seconds: %" PRIu64 "\n", s->uptime_seconds);
        printf("connections_current: %" PRIu32 "\n", s->connections_current);
        printf("connections_total: %" PRIu64 "\n", s->connections_total);
        printf("connections_rejected: %" PRIu64 "\n", s->connections_rejected);
        printf("map_size: %" PRIu64 "\n", s->map_size);
        printf("map_used: %" PRIu64 "\n", s->map_used);
        printf("key_groups: %" PRIu32 "\n", s->key_groups);
        printf("commits: %" PRIu64 "\n", s->commits);
        printf("bytes_in: %" PRIu64 "\n", s->bytes_in);
        printf("bytes_out: %" PRIu64 "\n", s->bytes_out);
        for (size_t i = 0; i < s->n_ops; i++)
            printf("op %s: count %" PRIu64 " errors %" PRIu64 "\n", s->ops[i].op, s->ops[i].count,
                   s->ops[i].errors);
        for (size_t i = 0; i < s->n_states; i++)
            printf("state %s: entries %" PRIu64 " bytes %" PRIu64 "\n", s->states[i].name,
                   s->states[i].entries, s->states[i].bytes);
    }
    statesrv_stats_free(s);
    return 0;
}

static int cmd_info(struct ctl *x)
{
    const statesrv_server_info *i = statesrv_info(x->c);
    if (x->json) {
        printf("{\"protocol_version\":%" PRIu32 ",\"server_version\":", i->protocol_version);
        put_json_str(i->server_version);
        printf(",\"key_groups\":%" PRIu32 ",\"max_frame_size\":%" PRIu32
               ",\"max_value_size\":%" PRIu32 ",\"max_key_size\":%" PRIu32
               ",\"max_batch_ops\":%" PRIu32 ",\"max_scan_limit\":%" PRIu32
               ",\"max_states\":%" PRIu32 "}\n",
               i->key_groups, i->max_frame_size, i->max_value_size, i->max_key_size,
               i->max_batch_ops, i->max_scan_limit, i->max_states);
    } else {
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
    return 0;
}

static const struct command commands[] = {
    {"ping", cmd_ping, 0, 0, 0, "", "Checks that the server answers."},
    {"get", cmd_get, 2, 2, OPT_NS | OPT_KEY_GROUP, "STATE KEY [-n NS] [--key-group N]",
     "Prints one value: RAW as it is, a COUNTER as a decimal number, a LIST one\n"
     "element per line; each followed by a newline. Exits 1 if the entry does not\n"
     "exist."},
    {"put", cmd_put, 3, 3, OPT_NS | OPT_KEY_GROUP, "STATE KEY VALUE [-n NS] [--key-group N]",
     "Writes a RAW value, replacing any previous one."},
    {"del", cmd_del, 2, 2, OPT_NS | OPT_KEY_GROUP, "STATE KEY [-n NS] [--key-group N]",
     "Deletes one entry. Prints nothing (JSON: {\"found\":BOOL}); exits 1 if the\n"
     "entry did not exist."},
    {"merge", cmd_merge, 3, 3, OPT_NS | OPT_KEY_GROUP | OPT_MERGE,
     "STATE KEY OPERAND --append|--add [-n NS] [--key-group N]",
     "--append adds OPERAND as one element to a LIST value. --add adds the decimal\n"
     "int64 OPERAND to a COUNTER value and prints the new value. Both create the\n"
     "value when it is absent."},
    {"scan", cmd_scan, 1, 1, OPT_SCAN | OPT_KEY_GROUP,
     "STATE [--key K [--key-group N]] [--key-groups A-B] [--limit N]",
     "Prints entries in stored order, one per line: key group, key, namespace,\n"
     "kind and value, separated by tabs (bytes that are not printable are\n"
     "escaped; LIST values print as a JSON array). --key: every namespace of one\n"
     "key. --key-groups: key groups A to B inclusive. --limit: at most N entries."},
    {"clear", cmd_clear, 1, 2, OPT_KEY_GROUP | OPT_ALL, "STATE KEY [--key-group N] | STATE --all",
     "Deletes every namespace of KEY, or with --all drops the whole state. Prints\n"
     "the number of entries deleted."},
    {"states", cmd_states, 0, 0, 0, "",
     "Lists the states: name, entries and bytes, separated by tabs."},
    {"stats", cmd_stats, 0, 0, 0, "", "Prints the server's counters."},
    {"info", cmd_info, 0, 0, 0, "", "Prints what the server announced in the handshake."},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-a ADDR] [--json] [--hex] [--timeout MS] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n",
            prog);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (commands[i].args[0])
            fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].args);
        else
            fprintf(f, "  %s\n", commands[i].name);
    }
    fprintf(f, "  help   [COMMAND]\n");
    fprintf(f, "\n"
               "Options:\n"
               "  -a, --addr ADDR   server address: HOST:PORT, [V6ADDR]:PORT or unix:/PATH\n"
               "                    (default: $STATESRV_ADDR, else " STATESRV_DEFAULT_ADDR ")\n"
               "  --json            print one JSON document (errors still go to stderr)\n"
               "  --hex             keys, namespaces and values are hex, in and out\n"
               "  --timeout MS      connect and I/O timeout in milliseconds\n"
               "  -h, --help        this help; COMMAND --help for one command\n"
               "  --version         print the version\n"
               "\n"
               "Exit status: 0 ok, 1 not found, 2 usage error, 3 connection or server error.\n");
}

static void command_usage(FILE *f, const struct command *cmd, int full)
{
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

/* True for an argument that is an option rather than a value: it starts with
 * '-' and is not "-" or a negative number (so `merge s k -5 --add` works). */
static int is_option(const char *a)
{
    return a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9');
}

/* Matches "--name VALUE" and "--name=VALUE"; 1 with *val set, 0 if a is
 * another option, -1 when the value is missing. */
static int opt_value(const char *a, const char *name, int argc, char **argv, int *i,
                     const char **val)
{
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=' && name[1] == '-') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

/* 1: run, 0: help printed (exit 0), or an exit status. */
static int parse_args(struct ctl *x, int argc, char **argv)
{
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int m;
        if (only_pos || !is_option(a)) {
            if (!x->cmd && strcmp(a, "help") == 0) {
                /* help [COMMAND]: the same as COMMAND --help. */
                const struct command *cmd = i + 1 < argc ? find_command(argv[i + 1]) : NULL;
                if (i + 1 < argc && !cmd)
                    return usage_error(x, "unknown command '%s'", argv[i + 1]);
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
                continue;
            }
            if (x->npos >= MAX_POS || x->npos >= x->cmd->max_pos)
                return usage_error(x, "unexpected argument '%s'", a);
            x->pos[x->npos++].text = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        unsigned allowed = x->cmd ? x->cmd->opts : 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            if (x->cmd)
                command_usage(stdout, x->cmd, 1);
            else
                usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("%s %s (protocol %d)\n", prog, SV_VERSION, STATESRV_PROTOCOL_VERSION);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            x->json = 1;
        } else if (strcmp(a, "--hex") == 0) {
            x->hex = 1;
        } else if ((m = opt_value(a, "-a", argc, argv, &i, &v)) != 0 ||
                   (m = opt_value(a, "--addr", argc, argv, &i, &v)) != 0) {
            if (m < 0)
                return usage_error(x, "%s needs an address", a);
            x->addr = v;
        } else if ((m = opt_value(a, "--timeout", argc, argv, &i, &v)) != 0) {
            uint64_t ms;
            if (m < 0 || parse_u64(v, INT32_MAX, &ms) || ms == 0)
                return usage_error(x, "--timeout needs a positive number of milliseconds");
            x->timeout_ms = (int)ms;
        } else if ((allowed & OPT_NS) && (m = opt_value(a, "-n", argc, argv, &i, &v)) != 0) {
            if (m < 0)
                return usage_error(x, "-n needs a namespace");
            x->ns.text = v;
            x->has_ns = 1;
        } else if ((allowed & OPT_KEY_GROUP) &&
                   (m = opt_value(a, "--key-group", argc, argv, &i, &v)) != 0) {
            uint64_t kg;
            if (m < 0 || parse_u64(v, UINT32_MAX, &kg))
                return usage_error(x, "--key-group needs a number");
            x->has_key_group = 1;
            x->key_group = (uint32_t)kg;
        } else if ((allowed & OPT_MERGE) && strcmp(a, "--append") == 0) {
            x->append = 1;
        } else if ((allowed & OPT_MERGE) && strcmp(a, "--add") == 0) {
            x->add = 1;
        } else if ((allowed & OPT_SCAN) && (m = opt_value(a, "--key", argc, argv, &i, &v)) != 0) {
            if (m < 0)
                return usage_error(x, "--key needs a key");
            x->scan_key.text = v;
            x->has_scan_key = 1;
        } else if ((allowed & OPT_SCAN) &&
                   (m = opt_value(a, "--key-groups", argc, argv, &i, &v)) != 0) {
            const char *dash = m > 0 ? strchr(v, '-') : NULL;
            uint64_t first, last;
            char buf[32];
            if (!dash || (size_t)(dash - v) >= sizeof(buf))
                return usage_error(x, "--key-groups needs a range A-B");
            memcpy(buf, v, (size_t)(dash - v));
            buf[dash - v] = '\0';
            if (parse_u64(buf, UINT32_MAX, &first) || parse_u64(dash + 1, UINT32_MAX, &last))
                return usage_error(x, "--key-groups needs a range A-B");
            x->has_key_groups = 1;
            x->kg_first = (uint32_t)first;
            x->kg_last = (uint32_t)last;
        } else if ((allowed & OPT_SCAN) && (m = opt_value(a, "--limit", argc, argv, &i, &v)) != 0) {
            if (m < 0 || parse_u64(v, UINT64_MAX, &x->limit) || x->limit == 0)
                return usage_error(x, "--limit needs a positive number");
            x->has_limit = 1;
        } else if ((allowed & OPT_ALL) && strcmp(a, "--all") == 0) {
            x->all = 1;
        } else {
            return usage_error(x, "unknown option '%s'", a);
        }
    }

    if (!x->cmd)
        return usage_error(x, "no command given");
    const struct command *cmd = x->cmd;
    int want_min = cmd->min_pos, want_max = cmd->max_pos;
    if (cmd->run == cmd_clear)
        want_min = want_max = x->all ? 1 : 2;
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
    for (int i = 1; i < x->npos; i++) {
        if (i == 2 && x->add)
            continue;
        if (decode_arg(x, &x->pos[i], what[i]))
            return EXIT_USAGE;
    }
    if (x->has_ns && decode_arg(x, &x->ns, "namespace"))
        return EXIT_USAGE;
    if (x->has_scan_key && decode_arg(x, &x->scan_key, "key"))
        return EXIT_USAGE;
    return 1;
}

static void ctl_free(struct ctl *x)
{
    for (int i = 0; i < x->npos; i++)
        free(x->pos[i].bytes);
    free(x->ns.bytes);
    free(x->scan_key.bytes);
    statesrv_close(x->c);
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

    statesrv_options o = {0};
    o.connect_timeout_ms = x.timeout_ms;
    o.io_timeout_ms = x.timeout_ms;
    o.client_name = "statectl";
    char why[256];
    rc = statesrv_connect2(x.addr, &o, &x.c, why, sizeof(why));
    if (rc) {
        errorf("cannot connect to %s: %s", x.addr, why);
        ctl_free(&x);
        return rc == STATESRV_ERR_USAGE ? EXIT_USAGE : EXIT_ERROR;
    }

    int status = x.cmd->run(&x);
    ctl_free(&x);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errorf("writing output: %s", strerror(errno));
        return EXIT_ERROR;
    }
    return status;
}
