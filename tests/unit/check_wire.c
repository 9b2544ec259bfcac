/* common/sv_wire.c against protobuf-c: for every input the hand-written
 * codec accepts, it must give exactly protobuf-c's result. Requests and
 * responses are generated at random (seeded, bounded), packed, mutated. */
#include "suites.h"
#include "sv_msg.h"
#include "sv_wire.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Values around the varint length boundaries, zero, and the extremes. */
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

static uint8_t pool[4096];

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
        b.len = 100 + rnd() % 200;
        break;
    default:
        b.len = rnd() % sizeof(pool);
        break;
    }
    b.data = pool + rnd() % (sizeof(pool) - b.len + 1);
    return b;
}

/* A Request of a hot op with random fields; its parts live in *parts. */
struct req_parts {
    Statesrv__V1__Ping ping;
    Statesrv__V1__Get get;
    Statesrv__V1__Put put;
    Statesrv__V1__Delete del;
    Statesrv__V1__Merge merge;
};

static void rnd_request(Statesrv__V1__Request *r, struct req_parts *x)
{
    statesrv__v1__request__init(r);
    r->id = rnd_u64();
    int kg = rnd() % 2;
    uint32_t kgv = (uint32_t)rnd_u64();
    switch (rnd() % 5) {
    case 0:
        statesrv__v1__ping__init(&x->ping);
        r->op_case = STATESRV__V1__REQUEST__OP_PING;
        r->ping = &x->ping;
        break;
    case 1:
        statesrv__v1__get__init(&x->get);
        x->get.state = rnd_bytes();
        x->get.key = rnd_bytes();
        x->get.namespace_ = rnd_bytes();
        if (kg) {
            x->get.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
            x->get.key_group = kgv;
        }
        r->op_case = STATESRV__V1__REQUEST__OP_GET;
        r->get = &x->get;
        break;
    case 2:
        statesrv__v1__put__init(&x->put);
        x->put.state = rnd_bytes();
        x->put.key = rnd_bytes();
        x->put.namespace_ = rnd_bytes();
        x->put.value = rnd_bytes();
        x->put.kind = (Statesrv__V1__ValueKind)(rnd() % 4 ? rnd() % 3 : (uint32_t)rnd_u64());
        if (kg) {
            x->put.key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
            x->put.key_group = kgv;
        }
        r->op_case = STATESRV__V1__REQUEST__OP_PUT;
        r->put = &x->put;
        break;
    case 3:
        statesrv__v1__delete__init(&x->del);
        x->del.state = rnd_bytes();
        x->del.key = rnd_bytes();
        if (kg) {
            x->del.key_group_opt_case = STATESRV__V1__DELETE__KEY_GROUP_OPT_KEY_GROUP;
            x->del.key_group = kgv;
        }
        r->op_case = STATESRV__V1__REQUEST__OP_DELETE;
        r->delete_ = &x->del;
        break;
    default:
        statesrv__v1__merge__init(&x->merge);
        x->merge.state = rnd_bytes();
        x->merge.key = rnd_bytes();
        x->merge.namespace_ = rnd_bytes();
        x->merge.operand = rnd_bytes();
        x->merge.op = (Statesrv__V1__MergeOp)(rnd() % 4 ? rnd() % 3 : (uint32_t)rnd_u64());
        if (kg) {
            x->merge.key_group_opt_case = STATESRV__V1__MERGE__KEY_GROUP_OPT_KEY_GROUP;
            x->merge.key_group = kgv;
        }
        r->op_case = STATESRV__V1__REQUEST__OP_MERGE;
        r->merge = &x->merge;
        break;
    }
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(*n + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(protobuf_c_message_pack(m, p), *n);
    return p;
}

/* Decodes p both ways. Returns whether the hand decoder took it; when it
 * did, protobuf-c must have decoded it too, to an equal message (equal
 * packings: protobuf-c packs every field deterministically). */
static int decode_both(const uint8_t *p, size_t n)
{
    Statesrv__V1__Request *fast = NULL;
    int took = sv_wire_request_decode(p, n, NULL, &fast);
    Statesrv__V1__Request *ref = statesrv__v1__request__unpack(NULL, n, p);
    if (took) {
        ck_assert_ptr_nonnull(ref);
        size_t a, b;
        uint8_t *pa = pack(&fast->base, &a), *pb = pack(&ref->base, &b);
        ck_assert_uint_eq(a, b);
        ck_assert_mem_eq(pa, pb, a);
        free(pa);
        free(pb);
        statesrv__v1__request__free_unpacked(fast, NULL);
    }
    if (ref)
        statesrv__v1__request__free_unpacked(ref, NULL);
    return took;
}

START_TEST(request_decode_matches_protobuf_c)
{
    rng_state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)rnd();
    unsigned taken = 0, mutated_taken = 0, mutated = 0;
    for (int i = 0; i < 20000; i++) {
        Statesrv__V1__Request r;
        struct req_parts parts;
        rnd_request(&r, &parts);
        size_t n;
        uint8_t *p = pack(&r.base, &n);
        int took = decode_both(p, n);
        /* Every well-formed hot request is taken, unless a value is out of
         * the range the hand decoder keeps (negative enums from the
         * generator's extremes). */
        int extreme = (r.op_case == STATESRV__V1__REQUEST__OP_PUT && (int32_t)r.put->kind < 0) ||
                      (r.op_case == STATESRV__V1__REQUEST__OP_MERGE && (int32_t)r.merge->op < 0);
        if (!extreme)
            ck_assert_msg(took, "well-formed request %d declined", i);
        taken += took;
        /* Mutations: flip, drop, duplicate or insert bytes. */
        for (int m = 0; m < 4 && n > 0; m++) {
            uint8_t buf[8192];
            size_t len = n < sizeof(buf) - 16 ? n : sizeof(buf) - 16;
            memcpy(buf, p, len);
            size_t at = rnd() % len;
            switch (rnd() % 4) {
            case 0:
                buf[at] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                len = at;
                break;
            case 2:
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)rnd();
                len++;
                break;
            default: { /* append a copy of a prefix: repeated fields */
                size_t k = 1 + rnd() % (len < 16 ? len : 16);
                memcpy(buf + len, buf, k);
                len += k;
                break;
            }
            }
            mutated++;
            mutated_taken += decode_both(buf, len);
        }
        free(p);
    }
    ck_assert_uint_gt(taken, 19000);
    /* Mutants are both taken and declined, so both paths are exercised. */
    ck_assert_uint_gt(mutated_taken, mutated / 10);
    ck_assert_uint_lt(mutated_taken, mutated);
}
END_TEST

START_TEST(request_decode_declines_other_shapes)
{
    /* An op it does not handle, an unknown field, a repeated id, two ops:
     * protobuf-c decides. */
    Statesrv__V1__Request r = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Stats st = STATESRV__V1__STATS__INIT;
    r.id = 7;
    r.op_case = STATESRV__V1__REQUEST__OP_STATS;
    r.stats = &st;
    size_t n;
    uint8_t *p = pack(&r.base, &n);
    Statesrv__V1__Request *out;
    ck_assert_int_eq(sv_wire_request_decode(p, n, NULL, &out), 0);
    free(p);
    static const uint8_t unknown[] = {0x08, 0x01, 0x22, 0x02, 0x78, 0x01}; /* get{15: 1} */
    static const uint8_t two_ids[] = {0x08, 0x01, 0x08, 0x02, 0x1a, 0x00};
    static const uint8_t two_ops[] = {0x1a, 0x00, 0x22, 0x00};
    static const uint8_t big_kg[] = {0x22, 0x06, 0x20, 0x80, 0x80, 0x80, 0x80, 0x10};
    static const uint8_t ok_get[] = {0x08, 0x05, 0x22, 0x05, 0x0a, 0x01, 's', 0x20, 0x03};
    ck_assert_int_eq(sv_wire_request_decode(unknown, sizeof(unknown), NULL, &out), 0);
    ck_assert_int_eq(sv_wire_request_decode(two_ids, sizeof(two_ids), NULL, &out), 0);
    ck_assert_int_eq(sv_wire_request_decode(two_ops, sizeof(two_ops), NULL, &out), 0);
    ck_assert_int_eq(sv_wire_request_decode(big_kg, sizeof(big_kg), NULL, &out), 0);
    ck_assert_int_eq(sv_wire_request_decode(ok_get, sizeof(ok_get), NULL, &out), 1);
    ck_assert_uint_eq(out->id, 5);
    ck_assert_int_eq(out->op_case, STATESRV__V1__REQUEST__OP_GET);
    ck_assert_uint_eq(out->get->state.len, 1);
    ck_assert_int_eq(out->get->state.data[0], 's');
    ck_assert_int_eq(out->get->key_group_opt_case, STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP);
    ck_assert_uint_eq(out->get->key_group, 3);
    ck_assert_ptr_null(out->get->key.data);
    statesrv__v1__request__free_unpacked(out, NULL);
    /* Through sv_msg: what the hand decoder declines still decodes. */
    ck_assert_int_eq(sv_msg_unpack_request(unknown, sizeof(unknown), NULL, &out), 0);
    ck_assert_int_eq(out->op_case, STATESRV__V1__REQUEST__OP_GET);
    statesrv__v1__request__free_unpacked(out, NULL);
}
END_TEST

/* Random responses of the hot results: the hand packer must accept them
 * and write protobuf-c's bytes. */
START_TEST(response_pack_matches_protobuf_c)
{
    rng_state = 0x2545f4914f6cdd1dull;
    static const char *const messages[] = {"", "no entry for this key", NULL};
    for (int i = 0; i < 20000; i++) {
        Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
        Statesrv__V1__GetResult g = STATESRV__V1__GET_RESULT__INIT;
        Statesrv__V1__PutResult pu = STATESRV__V1__PUT_RESULT__INIT;
        Statesrv__V1__PingResult pi = STATESRV__V1__PING_RESULT__INIT;
        Statesrv__V1__DeleteResult d = STATESRV__V1__DELETE_RESULT__INIT;
        Statesrv__V1__MergeResult m = STATESRV__V1__MERGE_RESULT__INIT;
        r.id = rnd_u64();
        r.status = (Statesrv__V1__Status)(rnd() % 9);
        const char *msg = messages[rnd() % 3];
        if (msg)
            r.message = (char *)msg;
        switch (rnd() % 6) {
        case 0:
            break;
        case 1:
            g.value = rnd_bytes();
            g.kind = (Statesrv__V1__ValueKind)(rnd() % 3);
            r.result_case = STATESRV__V1__RESPONSE__RESULT_GET;
            r.get = &g;
            break;
        case 2:
            r.result_case = STATESRV__V1__RESPONSE__RESULT_PUT;
            r.put = &pu;
            break;
        case 3:
            r.result_case = STATESRV__V1__RESPONSE__RESULT_PING;
            r.ping = &pi;
            break;
        case 4:
            d.found = (protobuf_c_boolean)(rnd() % 2);
            r.result_case = STATESRV__V1__RESPONSE__RESULT_DELETE;
            r.delete_ = &d;
            break;
        default:
            m.counter = (int64_t)rnd_u64();
            m.value_size = rnd_u64();
            r.result_case = STATESRV__V1__RESPONSE__RESULT_MERGE;
            r.merge = &m;
            break;
        }
        size_t n, fast_n;
        uint8_t *ref = pack(&r.base, &n);
        ck_assert_int_eq(sv_wire_response_size(&r, &fast_n), 1);
        ck_assert_uint_eq(fast_n, n);
        uint8_t *out = malloc(n + 1);
        ck_assert_uint_eq(sv_wire_response_pack(&r, out), n);
        ck_assert_mem_eq(out, ref, n);
        free(out);
        free(ref);
    }
}
END_TEST

START_TEST(response_pack_declines_other_results)
{
    Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
    Statesrv__V1__BatchResult b = STATESRV__V1__BATCH_RESULT__INIT;
    r.result_case = STATESRV__V1__RESPONSE__RESULT_BATCH;
    r.batch = &b;
    size_t n;
    ck_assert_int_eq(sv_wire_response_size(&r, &n), 0);
    r.result_case = STATESRV__V1__RESPONSE__RESULT_GET;
    r.get = NULL; /* protobuf-c skips a NULL oneof message: its business */
    ck_assert_int_eq(sv_wire_response_size(&r, &n), 0);
}
END_TEST

Suite *sv_suite_wire(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 4 * SV_UNIT_TIMEOUT);
    tcase_add_test(tc, request_decode_matches_protobuf_c);
    tcase_add_test(tc, request_decode_declines_other_shapes);
    tcase_add_test(tc, response_pack_matches_protobuf_c);
    tcase_add_test(tc, response_pack_declines_other_results);
    suite_add_tcase(s, tc);
    return s;
}
