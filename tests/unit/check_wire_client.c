/* common/sv_wire_client.c against protobuf-c: every request the hand
 * encoder accepts packs to protobuf-c's exact bytes, and every reply the
 * hand decoder accepts gives exactly protobuf-c's fields (random seeded
 * messages, their mutants, and random bytes); the rest is declined. Every
 * decoded reply is freed by sv_wire_response_free (ASan / valgrind see a
 * leak or a bad free). */
#include "suites.h"
#include "sv_msg.h"
#include "sv_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs;

static uint64_t rnd(void)
{
    uint64_t x = rs;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rs = x;
}

static uint64_t rnd_u64(void)
{
    switch (rnd() % 6) {
    case 0:
        return 0;
    case 1:
        return rnd() % 128;
    case 2:
        return (1ull << (7 * (1 + rnd() % 9))) - (rnd() % 2);
    case 3:
        return UINT64_MAX - rnd() % 3;
    default:
        return rnd() >> (rnd() % 64);
    }
}

static uint8_t pool[2048];

static ProtobufCBinaryData rnd_bytes(void)
{
    ProtobufCBinaryData b = {0, NULL};
    switch (rnd() % 4) {
    case 0:
        return b;
    case 1:
        b.len = 1 + rnd() % 16;
        break;
    case 2:
        b.len = 100 + rnd() % 100;
        break;
    default:
        b.len = rnd() % 600;
        break;
    }
    b.data = pool + rnd() % (sizeof(pool) - b.len + 1);
    return b;
}

/* An enum value: mostly known ones, sometimes unknown, rarely negative. */
static int rnd_enum(void)
{
    switch (rnd() % 8) {
    case 0:
        return (int)(rnd() % 1000);
    case 1:
        return rnd() % 4 ? (int)(rnd() % INT32_MAX) : -(int)(rnd() % 5) - 1;
    default:
        return (int)(rnd() % 3);
    }
}

/* Storage for one random request. */
#define MAXN 6
struct req_store {
    Statesrv__V1__Request r;
    union {
        Statesrv__V1__Get get;
        Statesrv__V1__Put put;
        Statesrv__V1__Delete del;
        Statesrv__V1__Merge merge;
    } one, many[MAXN];
    Statesrv__V1__Get *gets[MAXN];
    Statesrv__V1__BatchOp ops[MAXN], *opp[MAXN];
    Statesrv__V1__MultiGet mg;
    Statesrv__V1__Batch b;
};

static void fill_keyed_common(ProtobufCBinaryData *s, ProtobufCBinaryData *k,
                              ProtobufCBinaryData *ns, int *kg_case, uint32_t *kg, int kg_id)
{
    *s = rnd_bytes();
    *k = rnd_bytes();
    *ns = rnd_bytes();
    if (rnd() % 2) {
        *kg_case = kg_id;
        *kg = rnd() % 3 ? (uint32_t)(rnd() % 32768) : (uint32_t)rnd_u64();
    }
}

/* A random Get, Put, Delete or Merge in m; its descriptor. */
static int rnd_keyed(void *m, int which)
{
    switch (which) {
    case 0: {
        Statesrv__V1__Get *g = m;
        statesrv__v1__get__init(g);
        fill_keyed_common(&g->state, &g->key, &g->namespace_, (int *)&g->key_group_opt_case,
                          &g->key_group, STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP);
        g->with_ttl = rnd() % 3 == 0;
        return STATESRV__V1__REQUEST__OP_GET;
    }
    case 1: {
        Statesrv__V1__Put *u = m;
        statesrv__v1__put__init(u);
        fill_keyed_common(&u->state, &u->key, &u->namespace_, (int *)&u->key_group_opt_case,
                          &u->key_group, STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP);
        u->value = rnd_bytes();
        u->kind = (Statesrv__V1__ValueKind)rnd_enum();
        u->ttl_ms = rnd() % 2 ? rnd_u64() : 0;
        return STATESRV__V1__REQUEST__OP_PUT;
    }
    case 2: {
        Statesrv__V1__Delete *d = m;
        statesrv__v1__delete__init(d);
        fill_keyed_common(&d->state, &d->key, &d->namespace_, (int *)&d->key_group_opt_case,
                          &d->key_group, STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP);
        return STATESRV__V1__REQUEST__OP_DELETE;
    }
    default: {
        Statesrv__V1__Merge *g = m;
        statesrv__v1__merge__init(g);
        fill_keyed_common(&g->state, &g->key, &g->namespace_, (int *)&g->key_group_opt_case,
                          &g->key_group, STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP);
        g->op = (Statesrv__V1__MergeOp)rnd_enum();
        g->operand = rnd_bytes();
        g->ttl_ms = rnd() % 2 ? rnd_u64() : 0;
        return STATESRV__V1__REQUEST__OP_MERGE;
    }
    }
}

static void rnd_request(struct req_store *st)
{
    memset(st, 0, sizeof(*st));
    statesrv__v1__request__init(&st->r);
    st->r.id = rnd_u64();
    switch (rnd() % 7) {
    case 0:
    case 1:
    case 2:
    case 3:
        st->r.op_case = (Statesrv__V1__Request__OpCase)rnd_keyed(&st->one, (int)(rnd() % 4));
        st->r.get = &st->one.get;
        break;
    case 4: {
        statesrv__v1__multi_get__init(&st->mg);
        st->mg.n_gets = rnd() % MAXN;
        for (size_t i = 0; i < st->mg.n_gets; i++) {
            rnd_keyed(&st->many[i], 0);
            st->gets[i] = &st->many[i].get;
        }
        st->mg.gets = st->mg.n_gets ? st->gets : NULL;
        st->r.op_case = STATESRV__V1__REQUEST__OP_MULTI_GET;
        st->r.multi_get = &st->mg;
        break;
    }
    case 5: {
        statesrv__v1__batch__init(&st->b);
        st->b.n_ops = rnd() % MAXN;
        for (size_t i = 0; i < st->b.n_ops; i++) {
            statesrv__v1__batch_op__init(&st->ops[i]);
            int w = 1 + (int)(rnd() % 3); /* put, delete, merge */
            rnd_keyed(&st->many[i], w);
            st->ops[i].op_case = w == 1   ? STATESRV__V1__BATCH_OP__OP_PUT
                                 : w == 2 ? STATESRV__V1__BATCH_OP__OP_DELETE
                                          : STATESRV__V1__BATCH_OP__OP_MERGE;
            st->ops[i].put = &st->many[i].put;
            st->opp[i] = &st->ops[i];
        }
        st->b.ops = st->b.n_ops ? st->opp : NULL;
        st->r.op_case = STATESRV__V1__REQUEST__OP_BATCH;
        st->r.batch = &st->b;
        break;
    }
    default: /* not a hot op: must be declined */
        st->r.op_case = STATESRV__V1__REQUEST__OP_PING;
        st->r.ping = NULL;
        break;
    }
}

static int negative_enum_in(const struct req_store *st)
{
    const Statesrv__V1__Request *r = &st->r;
    if (r->op_case == STATESRV__V1__REQUEST__OP_PUT)
        return (int)r->put->kind < 0;
    if (r->op_case == STATESRV__V1__REQUEST__OP_MERGE)
        return (int)r->merge->op < 0;
    if (r->op_case == STATESRV__V1__REQUEST__OP_BATCH)
        for (size_t i = 0; i < r->batch->n_ops; i++)
            if ((r->batch->ops[i]->op_case == STATESRV__V1__BATCH_OP__OP_PUT &&
                 (int)r->batch->ops[i]->put->kind < 0) ||
                (r->batch->ops[i]->op_case == STATESRV__V1__BATCH_OP__OP_MERGE &&
                 (int)r->batch->ops[i]->merge->op < 0))
                return 1;
    return 0;
}

START_TEST(hand_packed_requests_are_protobuf_c_s_bytes)
{
    rs = 0x5eed0001u;
    static uint8_t a[8192], b[8192];
    int packed = 0;
    for (int i = 0; i < 30000; i++) {
        struct req_store st;
        rnd_request(&st);
        size_t n;
        int ok = sv_wire_request_size(&st.r, &n);
        if (st.r.op_case == STATESRV__V1__REQUEST__OP_PING || negative_enum_in(&st)) {
            ck_assert_msg(!ok, "request %d: a shape it must decline was accepted", i);
            continue;
        }
        ck_assert_msg(ok, "request %d (op %d) declined", i, st.r.op_case);
        size_t want = protobuf_c_message_get_packed_size(&st.r.base);
        ck_assert_uint_eq(n, want);
        ck_assert_uint_le(want, sizeof(a));
        ck_assert_uint_eq(sv_wire_request_pack(&st.r, a), n);
        protobuf_c_message_pack(&st.r.base, b);
        ck_assert_msg(memcmp(a, b, n) == 0, "request %d (op %d): bytes differ", i, st.r.op_case);
        packed++;
    }
    ck_assert_int_gt(packed, 20000);
}
END_TEST

/* A random reply to a hot request, packed by protobuf-c into out. */
static size_t rnd_response_bytes(uint8_t *out, size_t cap)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    Statesrv__V1__GetResult g = STATESRV__V1__GET_RESULT__INIT;
    Statesrv__V1__MultiGetResult mg = STATESRV__V1__MULTI_GET_RESULT__INIT;
    Statesrv__V1__MultiGetItem items[MAXN], *ip[MAXN];
    Statesrv__V1__PutResult pr = STATESRV__V1__PUT_RESULT__INIT;
    Statesrv__V1__PingResult png = STATESRV__V1__PING_RESULT__INIT;
    Statesrv__V1__DeleteResult d = STATESRV__V1__DELETE_RESULT__INIT;
    Statesrv__V1__MergeResult m = STATESRV__V1__MERGE_RESULT__INIT;
    Statesrv__V1__BatchResult b = STATESRV__V1__BATCH_RESULT__INIT;
    Statesrv__V1__ListStatesResult ls = STATESRV__V1__LIST_STATES_RESULT__INIT;
    r.id = rnd_u64();
    r.status = rnd() % 3 ? 0 : (Statesrv__V1__Status)rnd_enum();
    char msg[32];
    if (rnd() % 8 == 0) {
        snprintf(msg, sizeof(msg), "detail %u", (unsigned)(rnd() % 1000));
        r.message = msg;
    }
    switch (rnd() % 9) {
    case 0:
        break;
    case 1:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_GET;
        g.value = rnd_bytes();
        g.kind = (Statesrv__V1__ValueKind)rnd_enum();
        g.ttl_remaining_ms = rnd() % 3 ? 0 : (int64_t)rnd_u64();
        r.get = &g;
        break;
    case 2:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_MULTI_GET;
        mg.n_items = rnd() % MAXN;
        for (size_t i = 0; i < mg.n_items; i++) {
            statesrv__v1__multi_get_item__init(&items[i]);
            items[i].found = rnd() % 2;
            items[i].value = rnd_bytes();
            items[i].kind = (Statesrv__V1__ValueKind)rnd_enum();
            ip[i] = &items[i];
        }
        mg.items = ip;
        r.multi_get = &mg;
        break;
    case 3:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_PUT;
        r.put = &pr;
        break;
    case 4:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_DELETE;
        d.found = rnd() % 2;
        r.delete_ = &d;
        break;
    case 5:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_MERGE;
        m.counter = (int64_t)rnd_u64();
        m.value_size = rnd_u64();
        r.merge = &m;
        break;
    case 6:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_BATCH;
        b.applied = (uint32_t)rnd_u64();
        r.batch = &b;
        break;
    case 7:
        r.result_case = STATESRV__V1__RESPONSE__RESULT_PING;
        r.ping = &png;
        break;
    default: /* not a hot result */
        r.result_case = STATESRV__V1__RESPONSE__RESULT_LIST_STATES;
        r.list_states = &ls;
        break;
    }
    size_t n = protobuf_c_message_get_packed_size(&r.base);
    ck_assert_uint_le(n, cap);
    return protobuf_c_message_pack(&r.base, out);
}

static void same_bin(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    ck_assert_uint_eq(a->len, b->len);
    ck_assert(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    ck_assert((a->data == NULL) == (b->data == NULL));
}

/* The two decodes of one reply are the same, field for field. */
static void same_response(const Statesrv__V1__Response *a, const Statesrv__V1__Response *b)
{
    ck_assert_uint_eq(a->id, b->id);
    ck_assert_int_eq(a->status, b->status);
    ck_assert_str_eq(a->message, b->message);
    ck_assert_int_eq(a->result_case, b->result_case);
    ck_assert_uint_eq(b->base.n_unknown_fields, 0);
    switch (a->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_GET:
        same_bin(&a->get->value, &b->get->value);
        ck_assert_int_eq(a->get->kind, b->get->kind);
        ck_assert_int_eq(a->get->ttl_remaining_ms, b->get->ttl_remaining_ms);
        break;
    case STATESRV__V1__RESPONSE__RESULT_MULTI_GET:
        ck_assert_uint_eq(a->multi_get->n_items, b->multi_get->n_items);
        for (size_t i = 0; i < a->multi_get->n_items; i++) {
            const Statesrv__V1__MultiGetItem *x = a->multi_get->items[i],
                                             *y = b->multi_get->items[i];
            ck_assert_int_eq(x->found, y->found);
            same_bin(&x->value, &y->value);
            ck_assert_int_eq(x->kind, y->kind);
        }
        break;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        ck_assert_int_eq(a->delete_->found, b->delete_->found);
        break;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        ck_assert_int_eq(a->merge->counter, b->merge->counter);
        ck_assert_uint_eq(a->merge->value_size, b->merge->value_size);
        break;
    case STATESRV__V1__RESPONSE__RESULT_BATCH:
        ck_assert_uint_eq(a->batch->applied, b->batch->applied);
        break;
    default:
        break;
    }
}

/* Decodes p both ways: what the hand decoder accepts protobuf-c accepts
 * with the same fields. Returns whether the hand decoder accepted. */
static int check_decode(const uint8_t *p, size_t n)
{
    Statesrv__V1__Response *h = NULL;
    int ok = sv_wire_response_decode(p, n, &h);
    Statesrv__V1__Response *pc = statesrv__v1__response__unpack(NULL, n, p);
    if (ok) {
        ck_assert_msg(pc != NULL, "hand decoder accepted %zu bytes protobuf-c refuses", n);
        same_response(pc, h);
        sv_wire_response_free(h);
    }
    sv_wire_response_free(pc); /* either path of the free, on protobuf-c's tree */
    return ok;
}

START_TEST(hand_decoded_replies_are_protobuf_c_s_fields)
{
    rs = 0x5eed0002u;
    static uint8_t buf[8192], mut[8300];
    int accepted = 0, mutants_accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = rnd_response_bytes(buf, sizeof(buf));
        accepted += check_decode(buf, n);
        for (int j = 0; j < 4; j++) { /* mutants: flips, cuts, inserted bytes */
            size_t m = n;
            memcpy(mut, buf, n);
            switch (rnd() % 4) {
            case 0:
                if (m)
                    mut[rnd() % m] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                if (m)
                    mut[rnd() % m] = (uint8_t)rnd();
                break;
            case 2:
                m = m ? rnd() % m : 0;
                break;
            default: {
                size_t at = m ? rnd() % m : 0;
                memmove(mut + at + 1, mut + at, m - at);
                mut[at] = (uint8_t)rnd();
                m++;
                break;
            }
            }
            mutants_accepted += check_decode(mut, m);
        }
    }
    ck_assert_int_gt(accepted, 10000); /* the hot shapes do go the hand way */
    ck_assert_int_gt(mutants_accepted, 1000);
}
END_TEST

/* Random bytes and hostile shapes: bounded, never more than protobuf-c
 * accepts, nothing leaked (the sanitizer run checks). */
START_TEST(hostile_replies_are_declined_or_decoded_as_protobuf_c_does)
{
    rs = 0x5eed0003u;
    static uint8_t buf[512];
    for (int i = 0; i < 50000; i++) {
        size_t n = rnd() % sizeof(buf);
        for (size_t j = 0; j < n; j++)
            buf[j] = rnd() % 3 ? (uint8_t)rnd() : (uint8_t)(rnd() % 0x60);
        check_decode(buf, n);
    }
    /* A length past the end, a 6-byte length, a 10-byte varint id, a bool of 2. */
    static const uint8_t cases[][16] = {
        {0x32, 0x05, 0x0a, 0x10},
        {0x32, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00},
        {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0x4a, 0x02, 0x08, 0x02},
        {0x3a, 0x04, 0x0a, 0x02, 0x08, 0x01, 0x3a, 0x00},
    };
    static const size_t lens[] = {4, 7, 11, 4, 8};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        check_decode(cases[i], lens[i]);
    Statesrv__V1__Response *r;
    ck_assert_int_eq(sv_wire_response_decode(cases[3], lens[3], &r), 0); /* found = 2 */
    ck_assert_int_eq(sv_wire_response_decode(cases[4], lens[4], &r), 0); /* result twice */
}
END_TEST

Suite *sv_suite_wire_client(void)
{
    Suite *s = suite_create("wire_client");
    TCase *tc = tcase_create("wire_client");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hand_packed_requests_are_protobuf_c_s_bytes);
    tcase_add_test(tc, hand_decoded_replies_are_protobuf_c_s_fields);
    tcase_add_test(tc, hostile_replies_are_declined_or_decoded_as_protobuf_c_does);
    suite_add_tcase(s, tc);
    return s;
}
