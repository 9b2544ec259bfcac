/* Request handlers: validate every field, run the op against the store inside
 * the current transaction, fill the Response. Results and messages live in
 * the server's arena until the batch's replies are encoded. */
#include "checkpoint.h"
#include "metrics.h"
#include "server.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"
#include "sv_value.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SKEY_BUF 1024 /* >= LMDB's max key size (511 by default) */
#define SCAN_DEFAULT_LIMIT 1000u
#define CURSOR_VERSION 1u
#define FRAME_SLACK 1024u /* room for a response's own fields */

struct ctx {
    struct sv_server *srv;
    uint64_t req_id;
    struct sv_conn *conn;
    struct sv_store *store;
    const struct sv_config *cfg;
    char msg[512];
};

/* A resolved entry address. */
struct addr {
    char state[SV_STATE_NAME_MAX + 1];
    size_t slen;
    uint32_t kg;
    uint8_t skey[SKEY_BUF];
    size_t sklen;
    size_t prefix_len; /* kg || varint || key */
};

static int fail(struct ctx *x, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *x, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
    va_end(ap);
    return err;
}

/* Copies at most 64 bytes of untrusted text for a message, escaping. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\'') {
            buf[o++] = (char)ch;
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        }
    }
    if (o >= cap)
        o = cap - 1;
    buf[o] = '\0';
    return buf;
}

/* Validates a state name from the wire (bytes: a NUL inside is just an
 * invalid character) and copies it, NUL-terminated, into out. */
static int check_state(struct ctx *x, ProtobufCBinaryData state, char out[SV_STATE_NAME_MAX + 1])
{
    size_t n = state.len;
    if (sv_state_name_valid((const char *)state.data, n)) {
        memcpy(out, state.data, n);
        out[n] = '\0';
        return 0;
    }
    if (n == 0)
        return fail(x, SV_EINVAL, "state name is empty");
    char buf[80];
    return fail(x, SV_EINVAL,
                "state name '%s' is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -",
                printable((const char *)state.data, n > 64 ? 64 : n, buf, sizeof(buf)));
}

/* After a restore of a key-group range the store serves only that range: a
 * key elsewhere is misrouted. A write could not be checkpointed, and a read
 * would answer NOT_FOUND for state that lives on another sidecar, so both
 * are refused. */
static int check_owned(struct ctx *x, const struct addr *a)
{
    uint32_t first, last;
    sv_store_kg_range(x->store, &first, &last);
    if (a->kg >= first && a->kg <= last)
        return 0;
    return fail(x, SV_EINVAL,
                "key group %u is not served here: this store holds key groups %u-%u (restored "
                "for that range)",
                a->kg, first, last);
}

static int resolve(struct ctx *x, ProtobufCBinaryData state, ProtobufCBinaryData key,
                   ProtobufCBinaryData ns, int has_kg, uint32_t kg, struct addr *a)
{
    int rc = check_state(x, state, a->state);
    if (rc)
        return rc;
    if (key.len == 0)
        return fail(x, SV_EINVAL, "key is empty");
    uint32_t groups = sv_store_key_groups(x->store);
    if (has_kg && kg >= groups)
        return fail(x, SV_EINVAL, "key_group %u is out of range: this server has %u (0..%u)", kg,
                    groups, groups - 1);
    size_t limit = sv_store_max_key_size(x->store);
    if (limit > SKEY_BUF)
        limit = SKEY_BUF;
    if (key.len > limit || ns.len > limit || sv_skey_size(key.len, ns.len) > limit)
        return fail(x, SV_ETOOLARGE,
                    "key (%zu bytes) and namespace (%zu bytes) encode to more than %zu bytes, "
                    "the store's maximum key size",
                    key.len, ns.len, limit);
    a->slen = state.len;
    a->kg = has_kg ? kg : sv_key_group_of(key.data, key.len, groups);
    a->sklen = sv_skey_encode(a->skey, a->kg, key.data, key.len, ns.data, ns.len);
    a->prefix_len = a->sklen - ns.len;
    return check_owned(x, a);
}

static void *arena(struct ctx *x, size_t n)
{
    return sv_arena_alloc(&x->srv->arena, n);
}

/* Store errors that carry no message of their own get one here. */
static int store_fail(struct ctx *x, int rc, const struct addr *a)
{
    if (rc == SV_ENOSPACE && a)
        return fail(x, rc, "cannot create state '%.*s': max_states (%u) reached", (int)a->slen,
                    a->state, x->cfg->max_states);
    if (rc == SV_EMAPFULL) {
        char msg[sizeof(x->msg)];
        sv_store_nospace_msg(x->store, msg, sizeof(msg));
        return fail(x, SV_ENOSPACE, "%s", msg);
    }
    return fail(x, rc, "store: %s", sv_strerror(rc));
}

/* --- ops ----------------------------------------------------------------- */

/* Compares in time that depends only on the server's token length. */
static int token_equal(const uint8_t *given, size_t glen, const char *token, size_t tlen)
{
    unsigned char d = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        d |= (unsigned char)((i < glen ? given[i] : 0) ^ (unsigned char)token[i]);
    return d == 0;
}

static int op_hello(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Hello *h = req->hello;
    struct sv_server *srv = x->srv;
    if (srv->token_len && !x->conn->authed) {
        if (h->auth_token.len == 0) {
            sv_warn_limited("conn %llu (%s): hello without an auth token; closing",
                            (unsigned long long)x->conn->id, x->conn->peer);
            x->conn->fate = SV_FATE_DRAIN; /* this reply is the last */
            return fail(x, SV_EUNAUTH,
                        "no auth token was sent, and this server requires one (auth_token_file): "
                        "send it in hello (statectl --token-file or STATESRV_TOKEN_FILE, "
                        "statesrv_options.auth_token)");
        }
        if (!token_equal(h->auth_token.data, h->auth_token.len, srv->token, srv->token_len)) {
            sv_warn_limited("conn %llu (%s): hello with a wrong auth token; closing",
                            (unsigned long long)x->conn->id, x->conn->peer);
            x->conn->fate = SV_FATE_DRAIN; /* this reply is the last */
            return fail(x, SV_EUNAUTH, "invalid auth token");
        }
        sv_conn_authenticated(x->conn);
    }
    if (h->protocol_version != 0 && h->protocol_version != SV_PROTOCOL_VERSION)
        return fail(x, SV_EINVAL, "protocol version %u is not supported; this server speaks %u",
                    h->protocol_version, SV_PROTOCOL_VERSION);
    if (h->client_name && strnlen(h->client_name, 129) > 128)
        return fail(x, SV_EINVAL, "client_name has more than 128 bytes");
    if (h->client_name && *h->client_name)
        printable(h->client_name, strnlen(h->client_name, 128), x->conn->client_name,
                  sizeof(x->conn->client_name));
    Statesrv__V1__HelloResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__hello_result__init(r);
    const struct sv_config *cfg = x->cfg;
    r->protocol_version = SV_PROTOCOL_VERSION;
    r->server_version = SV_VERSION;
    r->key_groups = sv_store_key_groups(x->store);
    r->max_frame_size = cfg->max_frame_size;
    r->max_value_size = cfg->max_value_size;
    r->max_key_size = (uint32_t)sv_store_max_key_size(x->store);
    r->max_batch_ops = cfg->max_batch_ops;
    r->max_scan_limit = cfg->max_scan_limit;
    r->max_states = cfg->max_states;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_HELLO;
    resp->hello = r;
    return 0;
}

static int op_ping(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    (void)req;
    static Statesrv__V1__PingResult pong = STATESRV__V1__PING_RESULT__INIT;
    (void)x;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_PING;
    resp->ping = &pong;
    return 0;
}

static int op_get(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Get *g = req->get;
    struct addr a;
    int rc =
        resolve(x, g->state, g->key, g->namespace_, g->key_group_opt_case != 0, g->key_group, &a);
    if (rc)
        return rc;
    struct sv_value v;
    rc = sv_store_get(x->store, a.state, a.slen, a.skey, a.sklen, &v);
    if (rc == SV_ENOTFOUND)
        return fail(x, rc, "no entry for this key and namespace in state '%s'", a.state);
    if (rc)
        return store_fail(x, rc, &a);
    Statesrv__V1__GetResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__get_result__init(r);
    r->value.data = (uint8_t *)v.data;
    r->value.len = v.len;
    r->kind = (Statesrv__V1__ValueKind)v.kind;
    if (g->with_ttl) {
        uint64_t now = sv_store_now_ms();
        r->ttl_remaining_ms = !v.expiry_ms        ? -1
                              : v.expiry_ms > now ? (int64_t)(v.expiry_ms - now)
                                                  : 0;
    }
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_GET;
    resp->get = r;
    return 0;
}

static int op_multi_get(struct ctx *x, const Statesrv__V1__Request *req,
                        Statesrv__V1__Response *resp)
{
    const Statesrv__V1__MultiGet *m = req->multi_get;
    if (m->n_gets > x->cfg->max_batch_ops)
        return fail(x, SV_ETOOLARGE, "multi_get has %zu items; max_batch_ops is %u", m->n_gets,
                    x->cfg->max_batch_ops);
    Statesrv__V1__MultiGetResult *r = arena(x, sizeof(*r));
    Statesrv__V1__MultiGetItem **items = arena(x, sizeof(*items) * (m->n_gets + 1));
    Statesrv__V1__MultiGetItem *store = arena(x, sizeof(*store) * (m->n_gets + 1));
    if (!r || !items || !store)
        return -ENOMEM;
    statesrv__v1__multi_get_result__init(r);
    size_t total = 0, budget = x->cfg->max_frame_size - FRAME_SLACK;
    for (size_t i = 0; i < m->n_gets; i++) {
        const Statesrv__V1__Get *g = m->gets[i];
        struct addr a;
        int rc = resolve(x, g->state, g->key, g->namespace_, g->key_group_opt_case != 0,
                         g->key_group, &a);
        if (rc) {
            char inner[sizeof(x->msg)];
            memcpy(inner, x->msg, sizeof(inner));
            return fail(x, rc, "gets[%zu]: %s", i, inner);
        }
        Statesrv__V1__MultiGetItem *it = &store[i];
        statesrv__v1__multi_get_item__init(it);
        struct sv_value v;
        rc = sv_store_get(x->store, a.state, a.slen, a.skey, a.sklen, &v);
        if (rc == 0) {
            /* Copied now: a later item's read may write (a TTL refresh or
             * clean-up) and move what an earlier one points at. */
            uint8_t *copy = v.len ? arena(x, v.len) : NULL;
            if (v.len && !copy)
                return -ENOMEM;
            if (v.len)
                memcpy(copy, v.data, v.len);
            it->found = 1;
            it->value.data = copy;
            it->value.len = v.len;
            it->kind = (Statesrv__V1__ValueKind)v.kind;
            total += v.len + 16;
        } else if (rc != SV_ENOTFOUND) {
            return store_fail(x, rc, &a);
        }
        total += 8;
        if (total > budget)
            return fail(x, SV_ETOOLARGE,
                        "multi_get results pass max_frame_size (%u bytes) at item %zu; split "
                        "the request",
                        x->cfg->max_frame_size, i);
        items[i] = it;
    }
    r->n_items = m->n_gets;
    r->items = items;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_MULTI_GET;
    resp->multi_get = r;
    return 0;
}

/* Shared by put and batch put. */
static int do_put(struct ctx *x, const Statesrv__V1__Put *p)
{
    struct addr a;
    int rc =
        resolve(x, p->state, p->key, p->namespace_, p->key_group_opt_case != 0, p->key_group, &a);
    if (rc)
        return rc;
    if ((unsigned)p->kind >= SV_KIND_MAX)
        return fail(x, SV_EINVAL, "unknown value kind %d", (int)p->kind);
    if (p->value.len > x->cfg->max_value_size)
        return fail(x, SV_ETOOLARGE, "value is %zu bytes; max_value_size is %u", p->value.len,
                    x->cfg->max_value_size);
    if (sv_value_check_kind((enum sv_value_kind)p->kind, p->value.data, p->value.len))
        return fail(x, SV_EINVAL,
                    p->kind == STATESRV__V1__VALUE_KIND__COUNTER
                        ? "a COUNTER value must be 8 bytes (big-endian int64), got %zu"
                        : "a LIST value must be elements framed as varint(length) || bytes "
                          "(%zu bytes do not parse)",
                    p->value.len);
    if (p->ttl_ms > SV_TTL_MAX_MS)
        return fail(x, SV_EINVAL, "ttl_ms %llu is more than a century",
                    (unsigned long long)p->ttl_ms);
    rc = sv_store_put_ttl(x->store, a.state, a.slen, a.skey, a.sklen, (enum sv_value_kind)p->kind,
                          p->value.data, p->value.len, p->ttl_ms);
    return rc ? store_fail(x, rc, &a) : 0;
}

static int do_delete(struct ctx *x, const Statesrv__V1__Delete *d, int *found)
{
    struct addr a;
    int rc =
        resolve(x, d->state, d->key, d->namespace_, d->key_group_opt_case != 0, d->key_group, &a);
    if (rc)
        return rc;
    rc = sv_store_delete(x->store, a.state, a.slen, a.skey, a.sklen, found);
    return rc ? store_fail(x, rc, &a) : 0;
}

static int do_merge(struct ctx *x, const Statesrv__V1__Merge *m, int64_t *counter, size_t *size)
{
    struct addr a;
    int rc =
        resolve(x, m->state, m->key, m->namespace_, m->key_group_opt_case != 0, m->key_group, &a);
    if (rc)
        return rc;
    enum sv_merge_op op;
    switch (m->op) {
    case STATESRV__V1__MERGE_OP__APPEND:
        op = SV_MERGE_APPEND;
        break;
    case STATESRV__V1__MERGE_OP__ADD_I64:
        op = SV_MERGE_ADD_I64;
        break;
    default:
        return fail(x, SV_EINVAL, "unknown merge op %d (expected APPEND or ADD_I64)", (int)m->op);
    }
    if (m->operand.len > x->cfg->max_value_size)
        return fail(x, SV_ETOOLARGE, "operand is %zu bytes; max_value_size is %u", m->operand.len,
                    x->cfg->max_value_size);
    if (m->ttl_ms > SV_TTL_MAX_MS)
        return fail(x, SV_EINVAL, "ttl_ms %llu is more than a century",
                    (unsigned long long)m->ttl_ms);
    x->msg[0] = '\0';
    rc = sv_store_merge_ttl(x->store, a.state, a.slen, a.skey, a.sklen, op, m->operand.data,
                            m->operand.len, m->ttl_ms, counter, size, x->msg, sizeof(x->msg));
    if (rc && !x->msg[0])
        return store_fail(x, rc, &a);
    return rc;
}

static int op_put(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Put *p = req->put;
    static Statesrv__V1__PutResult ok = STATESRV__V1__PUT_RESULT__INIT;
    int rc = do_put(x, p);
    if (rc)
        return rc;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_PUT;
    resp->put = &ok;
    return 0;
}

static int op_delete(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Delete *d = req->delete_;
    int found = 0;
    int rc = do_delete(x, d, &found);
    if (rc)
        return rc;
    Statesrv__V1__DeleteResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__delete_result__init(r);
    r->found = found;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_DELETE;
    resp->delete_ = r;
    return 0;
}

static int op_merge(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Merge *m = req->merge;
    int64_t counter = 0;
    size_t size = 0;
    int rc = do_merge(x, m, &counter, &size);
    if (rc)
        return rc;
    Statesrv__V1__MergeResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__merge_result__init(r);
    r->counter = counter;
    r->value_size = size;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_MERGE;
    resp->merge = r;
    return 0;
}

static const char *batch_op_name(const Statesrv__V1__BatchOp *op)
{
    switch (op->op_case) {
    case STATESRV__V1__BATCH_OP__OP_PUT:
        return "put";
    case STATESRV__V1__BATCH_OP__OP_DELETE:
        return "delete";
    case STATESRV__V1__BATCH_OP__OP_MERGE:
        return "merge";
    default:
        return "none";
    }
}

static int op_batch(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Batch *b = req->batch;
    if (b->n_ops > x->cfg->max_batch_ops)
        return fail(x, SV_ETOOLARGE, "batch has %zu ops; max_batch_ops is %u", b->n_ops,
                    x->cfg->max_batch_ops);
    /* A savepoint inside the group transaction: a failing op undoes the
     * batch's earlier ops and nothing else. */
    int rc = sv_store_savepoint(x->store);
    if (rc)
        return store_fail(x, rc, NULL);
    for (size_t i = 0; i < b->n_ops; i++) {
        const Statesrv__V1__BatchOp *op = b->ops[i];
        int found;
        int64_t counter;
        size_t size;
        x->msg[0] = '\0';
        switch (op->op_case) {
        case STATESRV__V1__BATCH_OP__OP_PUT:
            rc = do_put(x, op->put);
            break;
        case STATESRV__V1__BATCH_OP__OP_DELETE:
            rc = do_delete(x, op->delete_, &found);
            break;
        case STATESRV__V1__BATCH_OP__OP_MERGE:
            rc = do_merge(x, op->merge, &counter, &size);
            break;
        default:
            rc = fail(x, SV_EINVAL, "no operation set");
            break;
        }
        if (rc) {
            sv_store_rollback(x->store);
            char inner[sizeof(x->msg)];
            memcpy(inner, x->msg, sizeof(inner));
            return fail(x, rc, "ops[%zu] (%s): %s; nothing was applied", i, batch_op_name(op),
                        inner[0] ? inner : sv_strerror(rc));
        }
    }
    if ((rc = sv_store_release(x->store)))
        return store_fail(x, rc, NULL);
    Statesrv__V1__BatchResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__batch_result__init(r);
    r->applied = (uint32_t)b->n_ops;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_BATCH;
    resp->batch = r;
    return 0;
}

/* The first key that sorts after every key starting with p (n bytes), in
 * place: drop trailing 0xff bytes and increment the last. 0 if none exists. */
static size_t prefix_successor(uint8_t *p, size_t n)
{
    while (n > 0 && p[n - 1] == 0xff)
        n--;
    if (n > 0)
        p[n - 1]++;
    return n;
}

/* LMDB's default order: bytewise, then shorter first. */
static int keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

struct scan_acc {
    struct ctx *x;
    Statesrv__V1__Entry **entries;
    size_t n, limit;
    size_t bytes, budget;
    uint8_t *cursor;
    size_t cursor_len;
    int failed;
};

static int scan_cb(void *ud, const uint8_t *skey, size_t sklen, const struct sv_value *v)
{
    struct scan_acc *acc = ud;
    size_t cost = sklen + v->len + 32;
    if (acc->n == acc->limit || (acc->n > 0 && acc->bytes + cost > acc->budget)) {
        acc->cursor = arena(acc->x, sklen + 1);
        if (!acc->cursor)
            return -ENOMEM;
        acc->cursor[0] = CURSOR_VERSION;
        memcpy(acc->cursor + 1, skey, sklen);
        acc->cursor_len = sklen + 1;
        return 1;
    }
    struct sv_skey k;
    if (sv_skey_decode(skey, sklen, &k))
        return SV_ECORRUPT;
    Statesrv__V1__Entry *e = arena(acc->x, sizeof(*e));
    if (!e)
        return -ENOMEM;
    statesrv__v1__entry__init(e);
    e->key.data = (uint8_t *)k.key;
    e->key.len = k.key_len;
    e->namespace_.data = (uint8_t *)k.ns;
    e->namespace_.len = k.ns_len;
    e->key_group = k.kg;
    e->value.data = (uint8_t *)v->data;
    e->value.len = v->len;
    if (v->scratch && v->len) { /* a timed list's view: the next one reuses it */
        if (!(e->value.data = arena(acc->x, v->len)))
            return -ENOMEM;
        memcpy(e->value.data, v->data, v->len);
    }
    e->kind = (Statesrv__V1__ValueKind)v->kind;
    acc->entries[acc->n++] = e;
    acc->bytes += cost;
    return 0;
}

static int op_scan(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Scan *s = req->scan;
    char name[SV_STATE_NAME_MAX + 1];
    int rc = check_state(x, s->state, name);
    if (rc)
        return rc;
    uint8_t lo[SKEY_BUF + 1], hi[SKEY_BUF + 1];
    size_t lolen = 0, hilen = 0;
    int has_hi = 0;
    uint32_t groups = sv_store_key_groups(x->store);
    switch (s->range_case) {
    case STATESRV__V1__SCAN__RANGE_KEY: {
        const Statesrv__V1__KeySelector *ks = s->key;
        ProtobufCBinaryData none = {0, NULL};
        struct addr a;
        if ((rc = resolve(x, s->state, ks->key, none, ks->key_group_opt_case != 0, ks->key_group,
                          &a)))
            return rc;
        memcpy(lo, a.skey, a.prefix_len);
        lolen = a.prefix_len;
        memcpy(hi, a.skey, a.prefix_len);
        hilen = prefix_successor(hi, a.prefix_len);
        has_hi = hilen > 0;
        break;
    }
    case STATESRV__V1__SCAN__RANGE_KEY_GROUPS: {
        const Statesrv__V1__KeyGroupRange *r = s->key_groups;
        if (r->first > r->last || r->last >= groups)
            return fail(x, SV_EINVAL, "key group range %u-%u is invalid: need first <= last < %u",
                        r->first, r->last, groups);
        lo[0] = (uint8_t)(r->first >> 8);
        lo[1] = (uint8_t)r->first;
        lolen = 2;
        hi[0] = (uint8_t)((r->last + 1) >> 8);
        hi[1] = (uint8_t)(r->last + 1);
        hilen = 2;
        has_hi = 1;
        break;
    }
    default:
        break;
    }
    if (s->cursor.len) {
        /* A cursor is a version byte and the stored key to resume at; it
         * must lie inside this scan's range. */
        const uint8_t *c = s->cursor.data;
        size_t clen = s->cursor.len - 1;
        struct sv_skey ck;
        if (c[0] != CURSOR_VERSION || clen == 0 || clen > SKEY_BUF ||
            sv_skey_decode(c + 1, clen, &ck) || ck.kg >= groups ||
            keycmp(c + 1, clen, lo, lolen) < 0 || (has_hi && keycmp(c + 1, clen, hi, hilen) >= 0))
            return fail(x, SV_EINVAL, "cursor does not belong to this scan");
        memcpy(lo, c + 1, clen);
        lolen = clen;
    }

    uint32_t limit = s->limit ? s->limit : SCAN_DEFAULT_LIMIT;
    if (limit > x->cfg->max_scan_limit)
        limit = x->cfg->max_scan_limit;
    struct scan_acc acc = {.x = x, .limit = limit, .budget = x->cfg->max_frame_size - FRAME_SLACK};
    acc.entries = arena(x, sizeof(*acc.entries) * limit);
    if (!acc.entries)
        return -ENOMEM;
    rc = sv_store_scan(x->store, name, strlen(name), lo, lolen, has_hi ? hi : NULL, hilen, scan_cb,
                       &acc);
    if (rc)
        return store_fail(x, rc, NULL);
    Statesrv__V1__ScanResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__scan_result__init(r);
    r->n_entries = acc.n;
    r->entries = acc.entries;
    r->cursor.data = acc.cursor;
    r->cursor.len = acc.cursor_len;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_SCAN;
    resp->scan = r;
    return 0;
}

static int op_clear(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Clear *c = req->clear;
    char name[SV_STATE_NAME_MAX + 1];
    int rc = check_state(x, c->state, name);
    if (rc)
        return rc;
    uint64_t deleted = 0;
    if (c->target_case == STATESRV__V1__CLEAR__TARGET_KEY) {
        ProtobufCBinaryData none = {0, NULL};
        struct addr a;
        if ((rc = resolve(x, c->state, c->key->key, none, c->key->key_group_opt_case != 0,
                          c->key->key_group, &a)))
            return rc;
        uint8_t hi[SKEY_BUF];
        memcpy(hi, a.skey, a.prefix_len);
        size_t hilen = prefix_successor(hi, a.prefix_len);
        rc = sv_store_delete_range(x->store, a.state, a.slen, a.skey, a.prefix_len,
                                   hilen ? hi : NULL, hilen, &deleted);
    } else if (c->target_case == STATESRV__V1__CLEAR__TARGET_WHOLE_STATE && c->whole_state) {
        rc = sv_store_drop_state(x->store, name, strlen(name), &deleted);
    } else {
        return fail(x, SV_EINVAL, "clear needs a key, or whole_state = true to drop the state");
    }
    if (rc)
        return store_fail(x, rc, NULL);
    Statesrv__V1__ClearResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__clear_result__init(r);
    r->deleted = deleted;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_CLEAR;
    resp->clear = r;
    return 0;
}

static int op_list_states(struct ctx *x, const Statesrv__V1__Request *req,
                          Statesrv__V1__Response *resp)
{
    (void)req;
    Statesrv__V1__ListStatesResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__list_states_result__init(r);
    int rc = sv_stats_states(x->srv, &x->srv->arena.pb, &r->states, &r->n_states);
    if (rc)
        return store_fail(x, rc, NULL);
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_LIST_STATES;
    resp->list_states = r;
    return 0;
}

/* Sets (ttl present) or reads a state's TTL setting. */
static int op_state_ttl(struct ctx *x, const Statesrv__V1__Request *req,
                        Statesrv__V1__Response *resp)
{
    const Statesrv__V1__StateTtl *q = req->state_ttl;
    char name[SV_STATE_NAME_MAX + 1];
    int rc = check_state(x, q->state, name);
    if (rc)
        return rc;
    size_t nl = strlen(name);
    if (q->ttl) {
        const Statesrv__V1__TtlConfig *c = q->ttl;
        if (c->ttl_ms > SV_TTL_MAX_MS)
            return fail(x, SV_EINVAL, "ttl_ms %llu is more than a century",
                        (unsigned long long)c->ttl_ms);
        if ((unsigned)c->update > 1 || (unsigned)c->visibility > 1)
            return fail(x, SV_EINVAL, "unknown TTL update type %d or visibility %d", (int)c->update,
                        (int)c->visibility);
        struct sv_ttl t = {c->ttl_ms, (enum sv_ttl_update)c->update,
                           (enum sv_ttl_visibility)c->visibility};
        if ((rc = sv_store_set_ttl(x->store, name, nl, &t)) == SV_ETOOLARGE)
            return fail(x, rc, "more TTL settings than max_states (%u)", x->cfg->max_states);
        if (rc)
            return store_fail(x, rc, NULL);
    }
    Statesrv__V1__StateTtlResult *r = arena(x, sizeof(*r));
    Statesrv__V1__TtlConfig *c = arena(x, sizeof(*c));
    if (!r || !c)
        return -ENOMEM;
    statesrv__v1__state_ttl_result__init(r);
    struct sv_ttl t;
    if (sv_store_get_ttl(x->store, name, nl, &t)) {
        statesrv__v1__ttl_config__init(c);
        c->ttl_ms = t.ttl_ms;
        c->update = (Statesrv__V1__TtlUpdate)t.update;
        c->visibility = (Statesrv__V1__TtlVisibility)t.visibility;
        r->ttl = c;
    }
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_STATE_TTL;
    resp->state_ttl = r;
    return 0;
}

static int op_stats(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    (void)req;
    Statesrv__V1__StatsResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__stats_result__init(r);
    int rc = sv_stats_fill(x->srv, &x->srv->arena.pb, r);
    if (rc)
        return store_fail(x, rc, NULL);
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_STATS;
    resp->stats = r;
    return 0;
}

static int op_snapshot(struct ctx *x, const Statesrv__V1__Request *req,
                       Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Snapshot *s = req->snapshot;
    (void)resp;
    return sv_checkpoints_queue_snapshot(x->srv->ckpt, x->conn, x->req_id,
                                         s->id_opt_case == STATESRV__V1__SNAPSHOT__ID_OPT_ID, s->id,
                                         s->full, s->wait_remote, x->msg, sizeof(x->msg));
}

static int op_restore(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    const Statesrv__V1__Restore *r = req->restore;
    (void)resp;
    int has_range = r->range_opt_case == STATESRV__V1__RESTORE__RANGE_OPT_KEY_GROUPS;
    if (r->n_sources > SV_RESTORE_MAX_SOURCES)
        return fail(x, SV_EINVAL, "restore takes at most %d sources", SV_RESTORE_MAX_SOURCES);
    /* Sources travel as bytes: a NUL inside would silently cut a path. */
    char **sources = arena(x, sizeof(*sources) * (r->n_sources + 1));
    if (!sources)
        return -ENOMEM;
    for (size_t i = 0; i < r->n_sources; i++) {
        ProtobufCBinaryData b = r->sources[i];
        /* An empty bytes field decodes as data NULL, len 0: memchr and
         * memcpy must not see that NULL (undefined, even for 0 bytes). */
        if (b.len > 4096 || (b.len && memchr(b.data, '\0', b.len)))
            return fail(x, SV_EINVAL, "restore source %zu %s", i,
                        b.len > 4096 ? "is too long" : "contains a NUL byte");
        if (!(sources[i] = arena(x, b.len + 1)))
            return -ENOMEM;
        if (b.len)
            memcpy(sources[i], b.data, b.len);
        sources[i][b.len] = '\0';
    }
    return sv_checkpoints_queue_restore(x->srv->ckpt, x->conn, x->req_id, sources, r->n_sources,
                                        has_range, has_range ? r->key_groups->first : 0,
                                        has_range ? r->key_groups->last : 0, x->msg,
                                        sizeof(x->msg));
}

static int op_list_checkpoints(struct ctx *x, const Statesrv__V1__Request *req,
                               Statesrv__V1__Response *resp)
{
    (void)req;
    Statesrv__V1__ListCheckpointsResult *r = arena(x, sizeof(*r));
    if (!r)
        return -ENOMEM;
    statesrv__v1__list_checkpoints_result__init(r);
    int rc = sv_checkpoints_list(x->srv->ckpt, &x->srv->arena.pb, &r->checkpoints,
                                 &r->n_checkpoints, &r->remote, &r->n_remote, &r->problems,
                                 &r->n_problems, x->msg, sizeof(x->msg));
    if (rc)
        return rc;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_LIST_CHECKPOINTS;
    resp->list_checkpoints = r;
    return 0;
}

static int op_delete_checkpoint(struct ctx *x, const Statesrv__V1__Request *req,
                                Statesrv__V1__Response *resp)
{
    const Statesrv__V1__DeleteCheckpoint *d = req->delete_checkpoint;
    static Statesrv__V1__DeleteCheckpointResult ok = STATESRV__V1__DELETE_CHECKPOINT_RESULT__INIT;
    int rc = sv_checkpoints_delete(x->srv->ckpt, d->id, x->msg, sizeof(x->msg));
    if (rc)
        return rc;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT_DELETE_CHECKPOINT;
    resp->delete_checkpoint = &ok;
    return 0;
}

/* Ops that change the state, refused while a restore replaces it. */
/* --- the ops ------------------------------------------------------------- */

#define OP_WRITES 1u /* changes state: refused while a restore replaces it */
#define OP_JOB 2u    /* answered later by a checkpoint job (DEFERRED when queued) */

struct op {
    const char *name; /* in logs, stats and /metrics */
    int (*run)(struct ctx *x, const Statesrv__V1__Request *req, Statesrv__V1__Response *resp);
    unsigned flags;
};

/* Every op the server answers, by Request op case. */
static const struct op ops[SV_OP_SLOTS] = {
    [STATESRV__V1__REQUEST__OP_HELLO] = {"hello", op_hello, 0},
    [STATESRV__V1__REQUEST__OP_PING] = {"ping", op_ping, 0},
    [STATESRV__V1__REQUEST__OP_GET] = {"get", op_get, 0},
    [STATESRV__V1__REQUEST__OP_MULTI_GET] = {"multi_get", op_multi_get, 0},
    [STATESRV__V1__REQUEST__OP_PUT] = {"put", op_put, OP_WRITES},
    [STATESRV__V1__REQUEST__OP_DELETE] = {"delete", op_delete, OP_WRITES},
    [STATESRV__V1__REQUEST__OP_MERGE] = {"merge", op_merge, OP_WRITES},
    [STATESRV__V1__REQUEST__OP_BATCH] = {"batch", op_batch, OP_WRITES},
    [STATESRV__V1__REQUEST__OP_SCAN] = {"scan", op_scan, 0},
    [STATESRV__V1__REQUEST__OP_CLEAR] = {"clear", op_clear, OP_WRITES},
    [STATESRV__V1__REQUEST__OP_LIST_STATES] = {"list_states", op_list_states, 0},
    [STATESRV__V1__REQUEST__OP_STATS] = {"stats", op_stats, 0},
    [STATESRV__V1__REQUEST__OP_SNAPSHOT] = {"snapshot", op_snapshot, OP_JOB},
    [STATESRV__V1__REQUEST__OP_LIST_CHECKPOINTS] = {"list_checkpoints", op_list_checkpoints, 0},
    [STATESRV__V1__REQUEST__OP_DELETE_CHECKPOINT] = {"delete_checkpoint", op_delete_checkpoint, 0},
    [STATESRV__V1__REQUEST__OP_RESTORE] = {"restore", op_restore, OP_JOB},
    [STATESRV__V1__REQUEST__OP_STATE_TTL] = {"state_ttl", op_state_ttl, OP_WRITES},
};

static const struct op *op_of(unsigned slot)
{
    return slot < SV_OP_SLOTS && ops[slot].run ? &ops[slot] : NULL;
}

const char *sv_op_name(unsigned slot)
{
    const struct op *o = op_of(slot);
    return o ? o->name : "unknown";
}

int sv_op_is_job(unsigned slot)
{
    const struct op *o = op_of(slot);
    return o && (o->flags & OP_JOB);
}

int sv_dispatch(struct sv_server *srv, struct sv_conn *c, const Statesrv__V1__Request *req,
                Statesrv__V1__Response *resp)
{
    struct ctx x = {.srv = srv, .req_id = req->id, .conn = c, .store = srv->store, .cfg = srv->cfg};
    int rc;
    int deferred = 0;
    statesrv__v1__response__init(resp);
    resp->id = req->id;
    const struct op *op = op_of((unsigned)req->op_case);
    if (!op) {
        rc = fail(&x, SV_EINVAL, "unknown op");
        goto done;
    }
    if ((op->flags & OP_WRITES) && sv_checkpoints_restoring(srv->ckpt)) {
        rc = fail(&x, SV_EBUSY,
                  "a restore is replacing the state; writes are refused until it "
                  "completes (reads see the old state)");
        goto done;
    }
    rc = op->run(&x, req, resp);
    deferred = rc == 0 && (op->flags & OP_JOB);
done:;
    unsigned slot = (unsigned)req->op_case < SV_OP_SLOTS ? (unsigned)req->op_case : 0;
    srv->ops[slot].count++;
    if (deferred)
        return SV_DISPATCH_DEFERRED; /* its status is counted when the job replies */
    sv_metrics_count_status(srv, slot, rc ? sv_error_status(rc) : SV_STATUS_OK);
    if (rc == 0)
        return SV_DISPATCH_REPLY;
    resp->result_case = STATESRV__V1__RESPONSE__RESULT__NOT_SET;
    resp->status = (Statesrv__V1__Status)sv_error_status(rc);
    if (!x.msg[0])
        snprintf(x.msg, sizeof(x.msg), "%s", sv_strerror(rc));
    sv_utf8_scrub(x.msg);
    char *m = sv_arena_alloc(&srv->arena, strlen(x.msg) + 1);
    resp->message = m ? strcpy(m, x.msg) : (char *)"out of memory";
    return SV_DISPATCH_REPLY;
}
