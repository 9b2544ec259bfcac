/* The hot path's protobuf codec, the client's direction (sv_wire.h): the
 * requests get, multi_get, put, delete, merge and batch packed by hand, and
 * the replies to them (and to ping) decoded by hand, with exactly
 * protobuf-c's bytes and fields; anything else is declined and protobuf-c
 * does it. */
#include "sv_pb.h"
#include "sv_wire.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* --- encode ----------------------------------------------------------------- */

/* A field's bytes when it is not empty (proto3: empty fields are not sent). */
static size_t bytes_size(const ProtobufCBinaryData *b)
{
    return b->len ? 1 + sv_pb_varint_size(b->len) + b->len : 0;
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const ProtobufCBinaryData *b)
{
    if (!b->len)
        return p;
    *p++ = (uint8_t)(field << 3 | WT_LEN);
    p = sv_pb_put_varint(p, b->len);
    memcpy(p, b->data, b->len);
    return p + b->len;
}

static size_t uint_size(uint64_t v)
{
    return v ? 1 + sv_pb_varint_size(v) : 0;
}

static uint8_t *put_uint(uint8_t *p, unsigned field, uint64_t v)
{
    if (!v)
        return p;
    *p++ = (uint8_t)(field << 3 | WT_VARINT);
    return sv_pb_put_varint(p, v);
}

/* The common part of Get, Put, Delete and Merge (fields 1-4), and the
 * rest by field number: what one keyed op holds. */
struct keyed {
    const ProtobufCBinaryData *state, *key, *ns;
    int has_kg;
    uint32_t kg;
    /* fields 5-7 as they are sent: a bytes field (or NULL) and varints */
    unsigned bytes_field;
    const ProtobufCBinaryData *bytes;
    unsigned v_field[3];
    uint64_t v[3];
};

static int keyed_of(const ProtobufCMessage *m, struct keyed *k)
{
    if (!m || m->n_unknown_fields)
        return -1;
    memset(k, 0, sizeof(*k));
    if (m->descriptor == &statesrv__v1__get__descriptor) {
        const Statesrv__V1__Get *g = (const Statesrv__V1__Get *)m;
        *k = (struct keyed){&g->state,
                            &g->key,
                            &g->namespace_,
                            g->key_group_opt_case == STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP,
                            g->key_group,
                            0,
                            NULL,
                            {5, 0, 0},
                            {g->with_ttl ? 1 : 0, 0, 0}};
    } else if (m->descriptor == &statesrv__v1__delete__descriptor) {
        const Statesrv__V1__Delete *d = (const Statesrv__V1__Delete *)m;
        *k = (struct keyed){
            &d->state,      &d->key,
            &d->namespace_, d->key_group_opt_case == STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP,
            d->key_group,   0,
            NULL,           {0, 0, 0},
            {0, 0, 0}};
    } else if (m->descriptor == &statesrv__v1__put__descriptor) {
        const Statesrv__V1__Put *u = (const Statesrv__V1__Put *)m;
        if ((int)u->kind < 0)
            return -1; /* a negative enum is sent sign-extended: protobuf-c's job */
        *k = (struct keyed){&u->state,
                            &u->key,
                            &u->namespace_,
                            u->key_group_opt_case == STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP,
                            u->key_group,
                            5,
                            &u->value,
                            {6, 7, 0},
                            {(uint64_t)u->kind, u->ttl_ms, 0}};
    } else if (m->descriptor == &statesrv__v1__merge__descriptor) {
        const Statesrv__V1__Merge *g = (const Statesrv__V1__Merge *)m;
        if ((int)g->op < 0)
            return -1;
        /* op (5) comes before operand (6): the varint first. */
        *k = (struct keyed){&g->state,
                            &g->key,
                            &g->namespace_,
                            g->key_group_opt_case == STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP,
                            g->key_group,
                            6,
                            &g->operand,
                            {5, 7, 0},
                            {(uint64_t)g->op, g->ttl_ms, 0}};
    } else {
        return -1;
    }
    return 0;
}

static size_t keyed_size(const struct keyed *k)
{
    size_t n = bytes_size(k->state) + bytes_size(k->key) + bytes_size(k->ns);
    if (k->has_kg)
        n += 1 + sv_pb_varint_size(k->kg); /* a oneof member is sent even when 0 */
    if (k->bytes)
        n += bytes_size(k->bytes);
    for (int i = 0; i < 3; i++)
        if (k->v_field[i])
            n += uint_size(k->v[i]);
    return n;
}

static uint8_t *keyed_pack(uint8_t *p, const struct keyed *k)
{
    p = put_bytes(p, 1, k->state);
    p = put_bytes(p, 2, k->key);
    p = put_bytes(p, 3, k->ns);
    if (k->has_kg) {
        *p++ = 4 << 3 | WT_VARINT;
        p = sv_pb_put_varint(p, k->kg);
    }
    /* Fields 5-7 in number order. */
    for (unsigned f = 5; f <= 7; f++) {
        if (k->bytes && k->bytes_field == f)
            p = put_bytes(p, f, k->bytes);
        for (int i = 0; i < 3; i++)
            if (k->v_field[i] == f)
                p = put_uint(p, f, k->v[i]);
    }
    return p;
}

/* A length-delimited sub-message: its tag, length and body. */
static size_t sub_size(size_t body)
{
    return 1 + sv_pb_varint_size(body) + body;
}

static int batch_op_of(const Statesrv__V1__BatchOp *o, unsigned *field, struct keyed *k)
{
    if (!o || o->base.n_unknown_fields)
        return -1;
    switch (o->op_case) {
    case STATESRV__V1__BATCH_OP__OP_PUT:
    case STATESRV__V1__BATCH_OP__OP_DELETE:
    case STATESRV__V1__BATCH_OP__OP_MERGE:
        *field = (unsigned)o->op_case;
        return keyed_of((const ProtobufCMessage *)o->put, k);
    default:
        return -1; /* protobuf-c sends an empty BatchOp for NOT_SET */
    }
}

/* The op's body size, or -1 to decline. */
static int op_body_size(const Statesrv__V1__Request *r, size_t *size)
{
    struct keyed k;
    size_t n = 0;
    switch (r->op_case) {
    case STATESRV__V1__REQUEST__OP_GET:
    case STATESRV__V1__REQUEST__OP_PUT:
    case STATESRV__V1__REQUEST__OP_DELETE:
    case STATESRV__V1__REQUEST__OP_MERGE:
        if (keyed_of((const ProtobufCMessage *)r->get, &k))
            return -1;
        n = keyed_size(&k);
        break;
    case STATESRV__V1__REQUEST__OP_MULTI_GET: {
        const Statesrv__V1__MultiGet *m = r->multi_get;
        if (!m || m->base.n_unknown_fields || (m->n_gets && !m->gets))
            return -1;
        for (size_t i = 0; i < m->n_gets; i++) {
            if (!m->gets[i] || keyed_of(&m->gets[i]->base, &k) ||
                m->gets[i]->base.descriptor != &statesrv__v1__get__descriptor)
                return -1;
            n += sub_size(keyed_size(&k));
        }
        break;
    }
    case STATESRV__V1__REQUEST__OP_BATCH: {
        const Statesrv__V1__Batch *b = r->batch;
        if (!b || b->base.n_unknown_fields || (b->n_ops && !b->ops))
            return -1;
        for (size_t i = 0; i < b->n_ops; i++) {
            unsigned f;
            if (batch_op_of(b->ops[i], &f, &k))
                return -1;
            n += sub_size(sub_size(keyed_size(&k)));
        }
        break;
    }
    default:
        return -1;
    }
    *size = n;
    return 0;
}

int sv_wire_request_size(const Statesrv__V1__Request *r, size_t *size)
{
    size_t body;
    if (r->base.n_unknown_fields || !r->get || op_body_size(r, &body))
        return 0;
    *size = uint_size(r->id) + sub_size(body);
    return 1;
}

size_t sv_wire_request_pack(const Statesrv__V1__Request *r, uint8_t *out)
{
    uint8_t *p = put_uint(out, 1, r->id);
    size_t body = 0;
    struct keyed k;
    if (r->op_case != STATESRV__V1__REQUEST__OP_MULTI_GET &&
        r->op_case != STATESRV__V1__REQUEST__OP_BATCH) {
        /* One keyed op: its view once. */
        keyed_of((const ProtobufCMessage *)r->get, &k);
        *p++ = (uint8_t)((unsigned)r->op_case << 3 | WT_LEN);
        p = sv_pb_put_varint(p, keyed_size(&k));
        p = keyed_pack(p, &k);
        return (size_t)(p - out);
    }
    (void)op_body_size(r, &body);
    *p++ = (uint8_t)((unsigned)r->op_case << 3 | WT_LEN);
    p = sv_pb_put_varint(p, body);
    switch (r->op_case) {
    case STATESRV__V1__REQUEST__OP_MULTI_GET:
        for (size_t i = 0; i < r->multi_get->n_gets; i++) {
            keyed_of(&r->multi_get->gets[i]->base, &k);
            *p++ = 1 << 3 | WT_LEN;
            p = sv_pb_put_varint(p, keyed_size(&k));
            p = keyed_pack(p, &k);
        }
        break;
    case STATESRV__V1__REQUEST__OP_BATCH:
        for (size_t i = 0; i < r->batch->n_ops; i++) {
            unsigned f = 0;
            batch_op_of(r->batch->ops[i], &f, &k);
            size_t inner = keyed_size(&k);
            *p++ = 1 << 3 | WT_LEN;
            p = sv_pb_put_varint(p, sub_size(inner));
            *p++ = (uint8_t)(f << 3 | WT_LEN);
            p = sv_pb_put_varint(p, inner);
            p = keyed_pack(p, &k);
        }
        break;
    default:
        break;
    }
    return (size_t)(p - out);
}

/* --- decode ----------------------------------------------------------------- */

/* What a field may be: the kinds of scalar whose decoding is protobuf-c's
 * without surprises. */
enum fkind { F_NONE, F_BYTES, F_BOOL, F_ENUM, F_U32, F_U64 };

/* One flat message's fields (numbers 1-3), parsed and checked. */
struct flat {
    const uint8_t *data[4];
    size_t len[4];
    uint64_t num[4];
    unsigned seen;
};

/* Parses a message of fields 1-3 of the given kinds. 0, or -1 to decline
 * (an unknown, repeated or mistyped field, a multi-byte tag, a value
 * protobuf-c would truncate or read differently). */
static int parse_flat(const uint8_t *p, const uint8_t *end, const enum fkind kinds[4],
                      struct flat *f)
{
    memset(f, 0, sizeof(*f));
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3, wt = tag & 7;
        if ((tag & 0x80) || field > 3 || kinds[field] == F_NONE || (f->seen & (1u << field)))
            return -1;
        f->seen |= 1u << field;
        if (kinds[field] == F_BYTES) {
            if (wt != WT_LEN || sv_pb_get_len(&p, end, &f->len[field]))
                return -1;
            f->data[field] = p;
            p += f->len[field];
            continue;
        }
        uint64_t v;
        if (wt != WT_VARINT)
            return -1;
        if (kinds[field] == F_BOOL) {
            /* protobuf-c reads any non-zero byte as true: take 0 and 1 only. */
            if (p >= end || *p > 1)
                return -1;
            v = *p++;
        } else if (sv_pb_get_varint(&p, end, &v)) {
            return -1;
        }
        if ((kinds[field] == F_ENUM && v > (uint64_t)INT32_MAX) ||
            (kinds[field] == F_U32 && v > UINT32_MAX))
            return -1;
        f->num[field] = v;
    }
    return 0;
}

static int take(const struct flat *f, unsigned field, ProtobufCBinaryData *bd)
{
    if (!(f->seen & (1u << field)) || f->len[field] == 0)
        return 0;
    if (!(bd->data = malloc(f->len[field])))
        return -1;
    memcpy(bd->data, f->data[field], f->len[field]);
    bd->len = f->len[field];
    return 0;
}

static const ProtobufCMessageDescriptor *result_descriptor(unsigned field)
{
    switch (field) {
    case STATESRV__V1__RESPONSE__RESULT_PING:
        return &statesrv__v1__ping_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_GET:
        return &statesrv__v1__get_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_MULTI_GET:
        return &statesrv__v1__multi_get_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_PUT:
        return &statesrv__v1__put_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        return &statesrv__v1__delete_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        return &statesrv__v1__merge_result__descriptor;
    case STATESRV__V1__RESPONSE__RESULT_BATCH:
        return &statesrv__v1__batch_result__descriptor;
    default:
        return NULL;
    }
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m)
        desc->message_init(m);
    return m;
}

static const enum fkind K_GET[4] = {F_NONE, F_BYTES, F_ENUM, F_U64};
static const enum fkind K_ITEM[4] = {F_NONE, F_BOOL, F_BYTES, F_ENUM};
static const enum fkind K_DELETE[4] = {F_NONE, F_BOOL, F_NONE, F_NONE};
static const enum fkind K_MERGE[4] = {F_NONE, F_U64, F_U64, F_NONE};
static const enum fkind K_BATCH[4] = {F_NONE, F_U32, F_NONE, F_NONE};
static const enum fkind K_EMPTY[4] = {F_NONE, F_NONE, F_NONE, F_NONE};

/* Counts MultiGetResult's items (field 1, each length-delimited): 0 and
 * *n, or -1 to decline. */
static int count_items(const uint8_t *p, const uint8_t *end, size_t *n)
{
    *n = 0;
    while (p < end) {
        size_t len;
        if (*p++ != (1 << 3 | WT_LEN) || sv_pb_get_len(&p, end, &len))
            return -1;
        p += len;
        ++*n;
    }
    return 0;
}

/* Fills the result message m (of field) from its body. 0, or -1 to decline
 * (what was allocated is freed with the response). */
static int fill_result(unsigned field, ProtobufCMessage *m, const uint8_t *p, const uint8_t *end)
{
    struct flat f;
    switch (field) {
    case STATESRV__V1__RESPONSE__RESULT_PING:
    case STATESRV__V1__RESPONSE__RESULT_PUT:
        return parse_flat(p, end, K_EMPTY, &f);
    case STATESRV__V1__RESPONSE__RESULT_GET: {
        Statesrv__V1__GetResult *g = (Statesrv__V1__GetResult *)m;
        if (parse_flat(p, end, K_GET, &f))
            return -1;
        g->kind = (Statesrv__V1__ValueKind)(int32_t)f.num[2];
        g->ttl_remaining_ms = (int64_t)f.num[3];
        return take(&f, 1, &g->value);
    }
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        if (parse_flat(p, end, K_DELETE, &f))
            return -1;
        ((Statesrv__V1__DeleteResult *)m)->found = (f.seen & 2) ? (int)f.num[1] : 0;
        return 0;
    case STATESRV__V1__RESPONSE__RESULT_MERGE: {
        Statesrv__V1__MergeResult *r = (Statesrv__V1__MergeResult *)m;
        if (parse_flat(p, end, K_MERGE, &f))
            return -1;
        r->counter = (f.seen & 2) ? (int64_t)f.num[1] : 0;
        r->value_size = (f.seen & 4) ? f.num[2] : 0;
        return 0;
    }
    case STATESRV__V1__RESPONSE__RESULT_BATCH:
        if (parse_flat(p, end, K_BATCH, &f))
            return -1;
        ((Statesrv__V1__BatchResult *)m)->applied = (f.seen & 2) ? (uint32_t)f.num[1] : 0;
        return 0;
    case STATESRV__V1__RESPONSE__RESULT_MULTI_GET: {
        Statesrv__V1__MultiGetResult *r = (Statesrv__V1__MultiGetResult *)m;
        size_t n;
        if (count_items(p, end, &n))
            return -1;
        if (n == 0)
            return 0;
        if (!(r->items = calloc(n, sizeof(*r->items))))
            return -1;
        for (size_t i = 0; i < n; i++) {
            size_t len;
            p++;                              /* the tag, checked by count_items */
            if (sv_pb_get_len(&p, end, &len)) /* checked by count_items too */
                return -1;
            Statesrv__V1__MultiGetItem *it = (Statesrv__V1__MultiGetItem *)new_message(
                &statesrv__v1__multi_get_item__descriptor);
            if (!it)
                return -1;
            r->items[r->n_items++] = it;
            if (parse_flat(p, p + len, K_ITEM, &f))
                return -1;
            it->found = (f.seen & 2) ? (int)f.num[1] : 0;
            it->kind = (f.seen & 8) ? (Statesrv__V1__ValueKind)(int32_t)f.num[3]
                                    : STATESRV__V1__VALUE_KIND__RAW;
            if (take(&f, 2, &it->value))
                return -1;
            p += len;
        }
        return 0;
    }
    default:
        return -1;
    }
}

int sv_wire_response_decode(const uint8_t *p, size_t n, Statesrv__V1__Response **out)
{
    const uint8_t *end = p + n;
    uint64_t id = 0, status = 0;
    unsigned seen = 0, result = 0;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3, wt = tag & 7;
        if ((tag & 0x80) || field >= 32 || (seen & (1u << field)))
            return 0;
        seen |= 1u << field;
        if (field == 1 && wt == WT_VARINT) {
            if (sv_pb_get_varint(&p, end, &id))
                return 0;
        } else if (field == 2 && wt == WT_VARINT) {
            if (sv_pb_get_varint(&p, end, &status) || status > (uint64_t)INT32_MAX)
                return 0;
        } else if (wt == WT_LEN && !result && result_descriptor(field)) {
            if (sv_pb_get_len(&p, end, &body_len))
                return 0;
            result = field;
            body = p;
            p += body_len;
        } else {
            return 0; /* the message (3: detail of an error), or anything else */
        }
    }
    Statesrv__V1__Response *r =
        (Statesrv__V1__Response *)new_message(&statesrv__v1__response__descriptor);
    if (!r)
        return 0;
    r->id = id;
    r->status = (Statesrv__V1__Status)(int32_t)status;
    if (result) {
        ProtobufCMessage *m = new_message(result_descriptor(result));
        if (!m) {
            free(r);
            return 0;
        }
        r->result_case = (Statesrv__V1__Response__ResultCase)result;
        r->ping = (Statesrv__V1__PingResult *)m; /* the union's members are all pointers */
        if (fill_result(result, m, body, body + body_len)) {
            sv_wire_response_free(r);
            return 0;
        }
    }
    *out = r;
    return 1;
}

/* Frees a message tree of the hot results as protobuf-c's free_unpacked
 * would, or returns -1 (having freed nothing) when it holds anything else. */
static int free_result(Statesrv__V1__Response *r, int dry)
{
    ProtobufCMessage *m = (ProtobufCMessage *)r->ping;
    if (r->result_case == STATESRV__V1__RESPONSE__RESULT__NOT_SET)
        return 0;
    if (!result_descriptor((unsigned)r->result_case) || !m || m->n_unknown_fields)
        return -1;
    switch (r->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_GET:
        if (!dry)
            free(r->get->value.data);
        break;
    case STATESRV__V1__RESPONSE__RESULT_MULTI_GET:
        for (size_t i = 0; i < r->multi_get->n_items; i++) {
            Statesrv__V1__MultiGetItem *it = r->multi_get->items[i];
            if (dry) {
                if (it && it->base.n_unknown_fields)
                    return -1;
            } else if (it) {
                free(it->value.data);
                free(it);
            }
        }
        if (!dry)
            free(r->multi_get->items);
        break;
    default:
        break;
    }
    if (!dry)
        free(m);
    return 0;
}

void sv_wire_response_free(Statesrv__V1__Response *r)
{
    if (!r)
        return;
    if (r->base.n_unknown_fields || (r->message && r->message != protobuf_c_empty_string) ||
        free_result(r, 1)) {
        statesrv__v1__response__free_unpacked(r, NULL);
        return;
    }
    free_result(r, 0);
    free(r);
}
