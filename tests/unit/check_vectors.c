/* The shared client test vectors (tests/vectors/client.txt) against common/.
 *
 * Every client of statesrvd computes key groups, stored keys, value encodings
 * and request frames exactly as the server and libstatesrv do. The vector
 * file holds inputs and the bytes they must give; this suite recomputes each
 * line with common/ (sv_keys, sv_value, sv_msg) and the generated protobuf-c
 * code, and fails on the first line that disagrees. The Java client's
 * VectorsTest checks the same file against its own code, so the two agree
 * byte for byte or one of the suites fails.
 *
 * Line format (blank lines and '#' comments ignored), hex for every byte
 * string, "-" for an empty one:
 *   murmur3 DATA SEED_HEX = HASH_HEX
 *   key_group KEY KEY_GROUPS = KG
 *   stored_key KG KEY NS = BYTES
 *   list N ELEM_1 ... ELEM_N = BYTES
 *   counter INT64 = BYTES
 *   request OP id=N [field=value ...] = FRAME      (fields: see build_request)
 *
 * SV_VECTORS_WRITE=PATH rewrites the file with the values computed here
 * (the right-hand sides replaced) instead of checking it: how the file was
 * made, and how to remake it after a deliberate change.
 * SV_VECTORS=PATH reads another file (default tests/vectors/client.txt). */
#include "suites.h"
#include "sv_buf.h"
#include "sv_keys.h"
#include "sv_msg.h"
#include "sv_value.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VEC_LINE_MAX 8192
#define VEC_TOKENS_MAX 64
#define VEC_POOL_SIZE (256 * 1024)
#define VEC_SOURCES_MAX 8

/* Per-line scratch memory: decoded byte strings live until the next line. */
static uint8_t pool[VEC_POOL_SIZE];
static size_t pool_used;

static void *pool_take(size_t n)
{
    ck_assert_msg(pool_used + n + 1 <= sizeof(pool), "vector line too large for the pool");
    void *p = pool + pool_used;
    pool_used += n + 1;
    return p;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex ("-" is empty) into pool memory, NUL-terminated; -1 if not hex. */
static int unhex(const char *s, ProtobufCBinaryData *out)
{
    size_t n = strlen(s);
    if (strcmp(s, "-") == 0)
        n = 0;
    if (n % 2)
        return -1;
    uint8_t *p = pool_take(n / 2);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    p[n / 2] = 0;
    out->data = p;
    out->len = n / 2;
    return 0;
}

static void tohex(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    ck_assert_msg(2 * n + 1 <= cap, "computed value too long");
    if (n == 0) {
        strcpy(out, "-");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;
    if (!*s)
        return -1;
    unsigned long long v = strtoull(s, &end, base);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* Every field a request line may set; has_* where presence matters. */
struct req_fields {
    uint64_t id;
    ProtobufCBinaryData state, key, ns, value, operand, cursor, name, token;
    int has_kg, has_range, has_snap_id, whole;
    uint32_t kg, first, last, kind, merge, version, limit;
    uint64_t snap_id, ckpt;
    ProtobufCBinaryData sources[VEC_SOURCES_MAX];
    size_t n_sources;
};

/* "name=value" into f; 0, or -1 for an unknown name or a bad value. */
static int parse_field(const char *tok, struct req_fields *f)
{
    const char *eq = strchr(tok, '=');
    if (!eq)
        return -1;
    char name[32];
    size_t nl = (size_t)(eq - tok);
    if (nl >= sizeof(name))
        return -1;
    memcpy(name, tok, nl);
    name[nl] = 0;
    const char *v = eq + 1;
    uint64_t u;
    static const struct {
        const char *name;
        size_t off;
    } bins[] = {
        {"state", offsetof(struct req_fields, state)},
        {"key", offsetof(struct req_fields, key)},
        {"ns", offsetof(struct req_fields, ns)},
        {"value", offsetof(struct req_fields, value)},
        {"operand", offsetof(struct req_fields, operand)},
        {"cursor", offsetof(struct req_fields, cursor)},
        {"name", offsetof(struct req_fields, name)},
        {"token", offsetof(struct req_fields, token)},
    };
    for (size_t i = 0; i < sizeof(bins) / sizeof(bins[0]); i++)
        if (strcmp(name, bins[i].name) == 0)
            return unhex(v, (ProtobufCBinaryData *)((char *)f + bins[i].off));
    if (strcmp(name, "source") == 0) {
        if (f->n_sources == VEC_SOURCES_MAX)
            return -1;
        return unhex(v, &f->sources[f->n_sources++]);
    }
    if (parse_u64(v, 10, &u))
        return -1;
    if (strcmp(name, "id") == 0)
        f->id = u;
    else if (strcmp(name, "kg") == 0)
        f->has_kg = 1, f->kg = (uint32_t)u;
    else if (strcmp(name, "kind") == 0)
        f->kind = (uint32_t)u;
    else if (strcmp(name, "merge") == 0)
        f->merge = (uint32_t)u;
    else if (strcmp(name, "version") == 0)
        f->version = (uint32_t)u;
    else if (strcmp(name, "limit") == 0)
        f->limit = (uint32_t)u;
    else if (strcmp(name, "first") == 0)
        f->has_range = 1, f->first = (uint32_t)u;
    else if (strcmp(name, "last") == 0)
        f->has_range = 1, f->last = (uint32_t)u;
    else if (strcmp(name, "whole") == 0)
        f->whole = (int)u;
    else if (strcmp(name, "snap_id") == 0)
        f->has_snap_id = 1, f->snap_id = u;
    else if (strcmp(name, "ckpt") == 0)
        f->ckpt = u;
    else
        return -1;
    return 0;
}

/* Builds the Request of one line and appends its frame (sv_msg_append, as
 * the server and libstatesrv send frames) to out. The messages live on this
 * stack frame, so packing happens here. 0, or -1 for an unknown op. */
static int build_request(const char *op, const struct req_fields *f, struct sv_buf *out)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Hello hello = STATESRV__V1__HELLO__INIT;
    Statesrv__V1__Ping ping = STATESRV__V1__PING__INIT;
    Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
    Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
    Statesrv__V1__Delete del = STATESRV__V1__DELETE__INIT;
    Statesrv__V1__Merge merge = STATESRV__V1__MERGE__INIT;
    Statesrv__V1__Scan scan = STATESRV__V1__SCAN__INIT;
    Statesrv__V1__Clear clear = STATESRV__V1__CLEAR__INIT;
    Statesrv__V1__KeySelector sel = STATESRV__V1__KEY_SELECTOR__INIT;
    Statesrv__V1__KeyGroupRange range = STATESRV__V1__KEY_GROUP_RANGE__INIT;
    Statesrv__V1__Snapshot snap = STATESRV__V1__SNAPSHOT__INIT;
    Statesrv__V1__DeleteCheckpoint delck = STATESRV__V1__DELETE_CHECKPOINT__INIT;
    Statesrv__V1__Restore restore = STATESRV__V1__RESTORE__INIT;
    ProtobufCBinaryData sources[VEC_SOURCES_MAX];

    req.id = f->id;
    sel.key = f->key;
    if (f->has_kg) {
        sel.key_group_opt_case = STATESRV__V1__KEY_SELECTOR__KEY_GROUP_OPT_KEY_GROUP;
        sel.key_group = f->kg;
    }
    range.first = f->first;
    range.last = f->last;

    if (strcmp(op, "hello") == 0) {
        hello.protocol_version = f->version;
        hello.client_name = f->name.len ? (char *)f->name.data : (char *)"";
        hello.auth_token = f->token;
        req.op_case = STATESRV__V1__REQUEST__OP_HELLO;
        req.hello = &hello;
    } else if (strcmp(op, "ping") == 0) {
        req.op_case = STATESRV__V1__REQUEST__OP_PING;
        req.ping = &ping;
    } else if (strcmp(op, "get") == 0) {
        get.state = f->state;
        get.key = f->key;
        get.namespace_ = f->ns;
        if (f->has_kg) {
            get.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
            get.key_group = f->kg;
        }
        req.op_case = STATESRV__V1__REQUEST__OP_GET;
        req.get = &get;
    } else if (strcmp(op, "put") == 0) {
        put.state = f->state;
        put.key = f->key;
        put.namespace_ = f->ns;
        if (f->has_kg) {
            put.key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
            put.key_group = f->kg;
        }
        put.value = f->value;
        put.kind = (Statesrv__V1__ValueKind)f->kind;
        req.op_case = STATESRV__V1__REQUEST__OP_PUT;
        req.put = &put;
    } else if (strcmp(op, "delete") == 0) {
        del.state = f->state;
        del.key = f->key;
        del.namespace_ = f->ns;
        if (f->has_kg) {
            del.key_group_opt_case = STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP;
            del.key_group = f->kg;
        }
        req.op_case = STATESRV__V1__REQUEST__OP_DELETE;
        req.delete_ = &del;
    } else if (strcmp(op, "merge") == 0) {
        merge.state = f->state;
        merge.key = f->key;
        merge.namespace_ = f->ns;
        if (f->has_kg) {
            merge.key_group_opt_case = STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP;
            merge.key_group = f->kg;
        }
        merge.op = (Statesrv__V1__MergeOp)f->merge;
        merge.operand = f->operand;
        req.op_case = STATESRV__V1__REQUEST__OP_MERGE;
        req.merge = &merge;
    } else if (strcmp(op, "scan") == 0) {
        scan.state = f->state;
        if (f->key.len) {
            scan.range_case = STATESRV__V1__SCAN__RANGE_KEY;
            scan.key = &sel;
        } else if (f->has_range) {
            scan.range_case = STATESRV__V1__SCAN__RANGE_KEY_GROUPS;
            scan.key_groups = &range;
        }
        scan.limit = f->limit;
        scan.cursor = f->cursor;
        req.op_case = STATESRV__V1__REQUEST__OP_SCAN;
        req.scan = &scan;
    } else if (strcmp(op, "clear") == 0) {
        clear.state = f->state;
        if (f->whole) {
            clear.target_case = STATESRV__V1__CLEAR__TARGET_WHOLE_STATE;
            clear.whole_state = 1;
        } else {
            clear.target_case = STATESRV__V1__CLEAR__TARGET_KEY;
            clear.key = &sel;
        }
        req.op_case = STATESRV__V1__REQUEST__OP_CLEAR;
        req.clear = &clear;
    } else if (strcmp(op, "snapshot") == 0) {
        if (f->has_snap_id) {
            snap.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
            snap.id = f->snap_id;
        }
        req.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
        req.snapshot = &snap;
    } else if (strcmp(op, "delete_checkpoint") == 0) {
        delck.id = f->ckpt;
        req.op_case = STATESRV__V1__REQUEST__OP_DELETE_CHECKPOINT;
        req.delete_checkpoint = &delck;
    } else if (strcmp(op, "restore") == 0) {
        for (size_t i = 0; i < f->n_sources; i++)
            sources[i] = f->sources[i];
        restore.n_sources = f->n_sources;
        restore.sources = sources;
        if (f->has_range) {
            restore.range_opt_case = STATESRV__V1__RESTORE__RANGE_OPT_KEY_GROUPS;
            restore.key_groups = &range;
        }
        req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
        req.restore = &restore;
    } else {
        return -1;
    }
    int rc = sv_msg_append(out, &req.base, UINT32_MAX);
    ck_assert_int_eq(rc, 0);
    return 0;
}

/* The kinds of line, and how many of each the file must hold (so that an
 * emptied or truncated file fails rather than passing vacuously). */
static const struct {
    const char *kind;
    int min;
} kinds[] = {
    {"murmur3", 8}, {"key_group", 8}, {"stored_key", 5},
    {"list", 3},    {"counter", 4},   {"request", 15},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Computes the right-hand side of one line into out (hex). Returns the
 * index of its kind, or -1 with a reason in out for a malformed line. */
static int compute(char **tok, int ntok, char *out, size_t cap)
{
    static uint8_t bytes[VEC_LINE_MAX];
    ProtobufCBinaryData a, b;
    uint64_t u;
    const char *kind = tok[0];

    if (strcmp(kind, "murmur3") == 0 && ntok == 3) {
        if (unhex(tok[1], &a) || parse_u64(tok[2], 16, &u))
            goto bad;
        snprintf(out, cap, "%08" PRIx32, sv_murmur3_32(a.data, a.len, (uint32_t)u));
        return 0;
    }
    if (strcmp(kind, "key_group") == 0 && ntok == 3) {
        if (unhex(tok[1], &a) || parse_u64(tok[2], 10, &u) || u == 0)
            goto bad;
        snprintf(out, cap, "%" PRIu32, sv_key_group_of(a.data, a.len, (uint32_t)u));
        return 1;
    }
    if (strcmp(kind, "stored_key") == 0 && ntok == 4) {
        if (parse_u64(tok[1], 10, &u) || unhex(tok[2], &a) || unhex(tok[3], &b))
            goto bad;
        ck_assert(sv_skey_size(a.len, b.len) <= sizeof(bytes));
        size_t n = sv_skey_encode(bytes, (uint32_t)u, a.data, a.len, b.data, b.len);
        ck_assert_uint_eq(n, sv_skey_size(a.len, b.len));
        tohex(bytes, n, out, cap);
        return 2;
    }
    if (strcmp(kind, "list") == 0 && ntok >= 2) {
        if (parse_u64(tok[1], 10, &u) || (uint64_t)ntok != 2 + u)
            goto bad;
        size_t n = 0;
        for (int i = 2; i < ntok; i++) {
            if (unhex(tok[i], &a))
                goto bad;
            ck_assert(n + sv_list_elem_size(a.len) <= sizeof(bytes));
            n += sv_list_elem_put(bytes + n, a.data, a.len);
        }
        /* The server must accept what it is given as a LIST. */
        ck_assert_int_eq(sv_value_check_kind(SV_KIND_LIST, bytes, n), 0);
        tohex(bytes, n, out, cap);
        return 3;
    }
    if (strcmp(kind, "counter") == 0 && ntok == 2) {
        char *end;
        long long x = strtoll(tok[1], &end, 10);
        if (*end)
            goto bad;
        sv_i64_put(bytes, (int64_t)x);
        ck_assert_int_eq(sv_i64_get(bytes), (int64_t)x);
        tohex(bytes, 8, out, cap);
        return 4;
    }
    if (strcmp(kind, "request") == 0 && ntok >= 3) {
        struct req_fields f;
        memset(&f, 0, sizeof(f));
        for (int i = 2; i < ntok; i++)
            if (parse_field(tok[i], &f)) {
                snprintf(out, cap, "bad field \"%s\"", tok[i]);
                return -1;
            }
        struct sv_buf buf = SV_BUF_INIT;
        if (build_request(tok[1], &f, &buf)) {
            sv_buf_free(&buf);
            snprintf(out, cap, "unknown op \"%s\"", tok[1]);
            return -1;
        }
        /* The frame must decode as the server decodes it, with the same id. */
        Statesrv__V1__Request *back = NULL;
        ck_assert_uint_ge(buf.len, 4);
        ck_assert_int_eq(sv_msg_unpack_request(buf.data + 4, buf.len - 4, NULL, &back), 0);
        ck_assert_uint_eq(back->id, f.id);
        statesrv__v1__request__free_unpacked(back, NULL);
        tohex(buf.data, buf.len, out, cap);
        sv_buf_free(&buf);
        return 5;
    }
bad:
    snprintf(out, cap, "malformed %s line", kind);
    return -1;
}

static const char *vectors_path(void)
{
    const char *p = getenv("SV_VECTORS");
    return p ? p : "tests/vectors/client.txt";
}

START_TEST(vectors_file_agrees_with_common)
{
    const char *path = vectors_path();
    const char *write_to = getenv("SV_VECTORS_WRITE");
    FILE *in = fopen(path, "r");
    ck_assert_msg(in != NULL, "cannot open %s (run from the source tree, or set SV_VECTORS)", path);
    FILE *out = NULL;
    if (write_to) {
        out = fopen(write_to, "w");
        ck_assert_msg(out != NULL, "cannot write %s", write_to);
    }
    static char line[VEC_LINE_MAX], copy[VEC_LINE_MAX], got[2 * VEC_LINE_MAX];
    int counts[N_KINDS] = {0};
    int lineno = 0;
    while (fgets(line, sizeof(line), in)) {
        lineno++;
        size_t len = strlen(line);
        ck_assert_msg(len && line[len - 1] == '\n', "%s:%d: line too long or unterminated", path,
                      lineno);
        line[--len] = 0;
        memcpy(copy, line, len + 1);
        char *tok[VEC_TOKENS_MAX];
        int ntok = 0;
        for (char *t = strtok(copy, " \t"); t; t = strtok(NULL, " \t")) {
            ck_assert_msg(ntok < VEC_TOKENS_MAX, "%s:%d: too many fields", path, lineno);
            tok[ntok++] = t;
        }
        if (ntok == 0 || tok[0][0] == '#') {
            if (out)
                fprintf(out, "%s\n", line);
            continue;
        }
        ck_assert_msg(ntok >= 3 && strcmp(tok[ntok - 2], "=") == 0,
                      "%s:%d: expected \"... = VALUE\"", path, lineno);
        pool_used = 0;
        int k = compute(tok, ntok - 2, got, sizeof(got));
        ck_assert_msg(k >= 0, "%s:%d: %s", path, lineno, got);
        counts[k]++;
        if (out) {
            char *eq = strstr(line, " = ");
            ck_assert_ptr_nonnull(eq);
            *eq = 0;
            fprintf(out, "%s = %s\n", line, got);
        } else {
            ck_assert_msg(strcmp(got, tok[ntok - 1]) == 0,
                          "%s:%d: the file says %s, common/ computes %s", path, lineno,
                          tok[ntok - 1], got);
        }
    }
    fclose(in);
    if (out)
        ck_assert_int_eq(fclose(out), 0);
    for (size_t i = 0; i < N_KINDS; i++)
        ck_assert_msg(counts[i] >= kinds[i].min, "%s: %d %s line(s), want at least %d", path,
                      counts[i], kinds[i].kind, kinds[i].min);
}
END_TEST

/* The checker itself: a wrong value is caught, with the line named. */
START_TEST(a_wrong_value_is_reported)
{
    char *tok[] = {"stored_key", "7", "6162", "ff"};
    char got[64];
    pool_used = 0;
    ck_assert_int_eq(compute(tok, 4, got, sizeof(got)), 2);
    ck_assert_str_eq(got, "0007026162ff");
    char *bad[] = {"request", "frobnicate", "id=1"};
    ck_assert_int_eq(compute(bad, 3, got, sizeof(got)), -1);
    char *badfield[] = {"request", "get", "colour=3"};
    ck_assert_int_eq(compute(badfield, 3, got, sizeof(got)), -1);
}
END_TEST

Suite *sv_suite_vectors(void)
{
    Suite *s = suite_create("vectors");
    TCase *tc = tcase_create("file");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, vectors_file_agrees_with_common);
    tcase_add_test(tc, a_wrong_value_is_reported);
    suite_add_tcase(s, tc);
    return s;
}
