#include "sv_wire.h"
#include "sv_pb.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* --- decode ----------------------------------------------------------------- */

/* The fields of one keyed op (Get, Put, Delete, Merge: numbers 1-6). */
#define SUB_FIELDS 7
struct sub {
    const uint8_t *data[SUB_FIELDS];
    size_t len[SUB_FIELDS];
    uint64_t num[SUB_FIELDS];
    unsigned seen; /* bit per field number */
};

/* Which of fields 1-6 an op has, which of them are varints, and which
 * varints are enums (int32 on the wire) rather than uint32. */
struct shape {
    unsigned fields, varints, enums;
};

static int shape_of(uint32_t op, struct shape *s)
{
    switch (op) {
    case STATESRV__V1__REQUEST__OP_PING:
        *s = (struct shape){0, 0, 0};
        return 0;
    case STATESRV__V1__REQUEST__OP_GET:
    case STATESRV__V1__REQUEST__OP_DELETE:
        *s = (struct shape){0x1e, 1u << 4, 0};
        return 0;
    case STATESRV__V1__REQUEST__OP_PUT:
        *s = (struct shape){0x7e, 1u << 4 | 1u << 6, 1u << 6};
        return 0;
    case STATESRV__V1__REQUEST__OP_MERGE:
        *s = (struct shape){0x7e, 1u << 4 | 1u << 5, 1u << 5};
        return 0;
    default:
        return -1;
    }
}

/* Parses an op's body. 0, or -1 to leave it to protobuf-c. */
static int parse_sub(const uint8_t *p, const uint8_t *end, const struct shape *s, struct sub *out)
{
    out->seen = 0;
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3, wt = tag & 7;
        if ((tag & 0x80) || !(s->fields & (1u << field)) || (out->seen & (1u << field)))
            return -1; /* unknown, repeated, or a tag past one byte */
        out->seen |= 1u << field;
        if (s->varints & (1u << field)) {
            uint64_t v;
            if (wt != WT_VARINT || sv_pb_get_varint(&p, end, &v))
                return -1;
            if (v > ((s->enums & (1u << field)) ? (uint64_t)INT32_MAX : (uint64_t)UINT32_MAX))
                return -1; /* protobuf-c would truncate: let it */
            out->num[field] = v;
        } else {
            size_t len;
            if (wt != WT_LEN || sv_pb_get_len(&p, end, &len))
                return -1;
            out->data[field] = p;
            out->len[field] = len;
            p += len;
        }
    }
    return 0;
}

static void *alloc_bytes(ProtobufCAllocator *a, size_t n)
{
    return a ? a->alloc(a->allocator_data, n) : malloc(n);
}

/* Copies field f of sub into *bd as protobuf-c does (empty: NULL data).
 * 0, or -1 out of memory. */
static int take_bytes(ProtobufCAllocator *a, const struct sub *s, unsigned f,
                      ProtobufCBinaryData *bd)
{
    if (!(s->seen & (1u << f)) || s->len[f] == 0)
        return 0;
    bd->data = alloc_bytes(a, s->len[f]);
    if (!bd->data)
        return -1;
    memcpy(bd->data, s->data[f], s->len[f]);
    bd->len = s->len[f];
    return 0;
}

/* Fills the op's message from its parsed fields. 0, or -1 out of memory
 * (what was taken is freed with the request). */
static int fill_op(ProtobufCAllocator *a, Statesrv__V1__Request *req, const struct sub *s)
{
    switch (req->op_case) {
    case STATESRV__V1__REQUEST__OP_PING:
        return 0;
    case STATESRV__V1__REQUEST__OP_GET: {
        Statesrv__V1__Get *g = req->get;
        if (s->seen & (1u << 4)) {
            g->key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
            g->key_group = (uint32_t)s->num[4];
        }
        return take_bytes(a, s, 1, &g->state) || take_bytes(a, s, 2, &g->key) ||
                       take_bytes(a, s, 3, &g->namespace_)
                   ? -1
                   : 0;
    }
    case STATESRV__V1__REQUEST__OP_DELETE: {
        Statesrv__V1__Delete *d = req->delete_;
        if (s->seen & (1u << 4)) {
            d->key_group_opt_case = STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP;
            d->key_group = (uint32_t)s->num[4];
        }
        return take_bytes(a, s, 1, &d->state) || take_bytes(a, s, 2, &d->key) ||
                       take_bytes(a, s, 3, &d->namespace_)
                   ? -1
                   : 0;
    }
    case STATESRV__V1__REQUEST__OP_PUT: {
        Statesrv__V1__Put *u = req->put;
        if (s->seen & (1u << 4)) {
            u->key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
            u->key_group = (uint32_t)s->num[4];
        }
        if (s->seen & (1u << 6))
            u->kind = (Statesrv__V1__ValueKind)s->num[6];
        return take_bytes(a, s, 1, &u->state) || take_bytes(a, s, 2, &u->key) ||
                       take_bytes(a, s, 3, &u->namespace_) || take_bytes(a, s, 5, &u->value)
                   ? -1
                   : 0;
    }
    case STATESRV__V1__REQUEST__OP_MERGE: {
        Statesrv__V1__Merge *m = req->merge;
        if (s->seen & (1u << 4)) {
            m->key_group_opt_case = STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP;
            m->key_group = (uint32_t)s->num[4];
        }
        if (s->seen & (1u << 5))
            m->op = (Statesrv__V1__MergeOp)s->num[5];
        return take_bytes(a, s, 1, &m->state) || take_bytes(a, s, 2, &m->key) ||
                       take_bytes(a, s, 3, &m->namespace_) || take_bytes(a, s, 6, &m->operand)
                   ? -1
                   : 0;
    }
    default:
        return -1;
    }
}

static const ProtobufCMessageDescriptor *op_descriptor(uint32_t op)
{
    switch (op) {
    case STATESRV__V1__REQUEST__OP_PING:
        return &statesrv__v1__ping__descriptor;
    case STATESRV__V1__REQUEST__OP_GET:
        return &statesrv__v1__get__descriptor;
    case STATESRV__V1__REQUEST__OP_DELETE:
        return &statesrv__v1__delete__descriptor;
    case STATESRV__V1__REQUEST__OP_PUT:
        return &statesrv__v1__put__descriptor;
    case STATESRV__V1__REQUEST__OP_MERGE:
        return &statesrv__v1__merge__descriptor;
    default:
        return NULL;
    }
}

/* A message of desc, zeroed and initialised (what its __init does). */
static ProtobufCMessage *new_message(ProtobufCAllocator *a, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = alloc_bytes(a, desc->sizeof_message);
    if (m)
        desc->message_init(m);
    return m;
}

int sv_wire_request_decode(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                           Statesrv__V1__Request **out)
{
    const uint8_t *end = p + n;
    uint64_t id = 0;
    int have_id = 0;
    uint32_t op = 0;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    while (p < end) {
        uint8_t tag = *p++;
        unsigned field = tag >> 3, wt = tag & 7;
        if (tag & 0x80)
            return 0;
        if (field == 1 && wt == WT_VARINT && !have_id) {
            if (sv_pb_get_varint(&p, end, &id))
                return 0;
            have_id = 1;
        } else if (wt == WT_LEN && !op && op_descriptor(field)) {
            if (sv_pb_get_len(&p, end, &body_len))
                return 0;
            op = field;
            body = p;
            p += body_len;
        } else {
            return 0;
        }
    }
    struct shape shape;
    struct sub sub;
    if (!op || shape_of(op, &shape) || parse_sub(body, body + body_len, &shape, &sub))
        return 0;

    Statesrv__V1__Request *req =
        (Statesrv__V1__Request *)new_message(alloc, &statesrv__v1__request__descriptor);
    if (!req)
        return 0;
    req->id = id;
    ProtobufCMessage *m = new_message(alloc, op_descriptor(op));
    if (!m) {
        statesrv__v1__request__free_unpacked(req, alloc);
        return 0;
    }
    req->op_case = (Statesrv__V1__Request__OpCase)op;
    req->ping = (Statesrv__V1__Ping *)m; /* the union's members are all pointers */
    if (fill_op(alloc, req, &sub)) {
        statesrv__v1__request__free_unpacked(req, alloc);
        return 0;
    }
    *out = req;
    return 1;
}

/* --- encode ----------------------------------------------------------------- */

/* Size of the result message's body, or -1 when protobuf-c must pack it. */
static int result_body_size(const Statesrv__V1__Response *r, size_t *size)
{
    size_t n = 0;
    switch (r->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_PING:
    case STATESRV__V1__RESPONSE__RESULT_PUT:
        break;
    case STATESRV__V1__RESPONSE__RESULT_GET:
        if ((int)r->get->kind < 0 || r->get->ttl_remaining_ms)
            return -1;
        if (r->get->value.len)
            n += 1 + sv_pb_varint_size(r->get->value.len) + r->get->value.len;
        if (r->get->kind)
            n += 1 + sv_pb_varint_size((uint64_t)r->get->kind);
        break;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        if (r->delete_->found)
            n += 2;
        break;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        if (r->merge->counter)
            n += 1 + sv_pb_varint_size((uint64_t)r->merge->counter);
        if (r->merge->value_size)
            n += 1 + sv_pb_varint_size(r->merge->value_size);
        break;
    default:
        return -1;
    }
    *size = n;
    return 0;
}

int sv_wire_response_size(const Statesrv__V1__Response *r, size_t *size)
{
    size_t n = 0, body;
    if (r->base.n_unknown_fields || (int)r->status < 0)
        return 0;
    if (r->result_case != STATESRV__V1__RESPONSE__RESULT__NOT_SET) {
        /* The union's members are all message pointers. */
        const ProtobufCMessage *m = (const ProtobufCMessage *)r->ping;
        if (!m || m->n_unknown_fields || result_body_size(r, &body))
            return 0;
        n += 1 + sv_pb_varint_size(body) + body;
    }
    if (r->id)
        n += 1 + sv_pb_varint_size(r->id);
    if (r->status)
        n += 1 + sv_pb_varint_size((uint64_t)r->status);
    if (r->message && r->message[0]) {
        size_t len = strlen(r->message);
        n += 1 + sv_pb_varint_size(len) + len;
    }
    *size = n;
    return 1;
}

size_t sv_wire_response_pack(const Statesrv__V1__Response *r, uint8_t *out)
{
    uint8_t *p = out;
    if (r->id) {
        *p++ = 1 << 3 | WT_VARINT;
        p = sv_pb_put_varint(p, r->id);
    }
    if (r->status) {
        *p++ = 2 << 3 | WT_VARINT;
        p = sv_pb_put_varint(p, (uint64_t)r->status);
    }
    if (r->message && r->message[0]) {
        size_t len = strlen(r->message);
        *p++ = 3 << 3 | WT_LEN;
        p = sv_pb_put_varint(p, len);
        memcpy(p, r->message, len);
        p += len;
    }
    if (r->result_case == STATESRV__V1__RESPONSE__RESULT__NOT_SET)
        return (size_t)(p - out);
    size_t body = 0;
    (void)result_body_size(r, &body);
    *p++ = (uint8_t)((unsigned)r->result_case << 3 | WT_LEN);
    p = sv_pb_put_varint(p, body);
    switch (r->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_GET:
        if (r->get->value.len) {
            *p++ = 1 << 3 | WT_LEN;
            p = sv_pb_put_varint(p, r->get->value.len);
            memcpy(p, r->get->value.data, r->get->value.len);
            p += r->get->value.len;
        }
        if (r->get->kind) {
            *p++ = 2 << 3 | WT_VARINT;
            p = sv_pb_put_varint(p, (uint64_t)r->get->kind);
        }
        break;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        if (r->delete_->found) {
            *p++ = 1 << 3 | WT_VARINT;
            *p++ = 1;
        }
        break;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        if (r->merge->counter) {
            *p++ = 1 << 3 | WT_VARINT;
            p = sv_pb_put_varint(p, (uint64_t)r->merge->counter);
        }
        if (r->merge->value_size) {
            *p++ = 2 << 3 | WT_VARINT;
            p = sv_pb_put_varint(p, r->merge->value_size);
        }
        break;
    default:
        break;
    }
    return (size_t)(p - out);
}
