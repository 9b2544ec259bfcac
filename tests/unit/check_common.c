/* Unit tests for the small pieces of common/: sv_buf, sv_arena, sv_msg,
 * sv_error and sv_log. */
#include "suites.h"
#include "sv_arena.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- sv_buf ------------------------------------------------------------- */

START_TEST(test_buf_append)
{
    struct sv_buf b = SV_BUF_INIT;
    ck_assert_int_eq(sv_buf_reserve(&b, 0), 0);
    ck_assert_int_eq(sv_buf_append(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 0);

    ck_assert_int_eq(sv_buf_append(&b, "abc", 3), 0);
    ck_assert_int_eq(sv_buf_append(&b, "", 0), 0);
    ck_assert_int_eq(sv_buf_append(&b, "defg", 4), 0);
    ck_assert_uint_eq(b.len, 7);
    ck_assert_uint_ge(b.cap, b.len);
    ck_assert_mem_eq(b.data, "abcdefg", 7);

    /* Growing far past the first allocation keeps what was there. */
    enum { BIG = 100000 };
    uint8_t *big = malloc(BIG);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    ck_assert_int_eq(sv_buf_append(&b, big, BIG), 0);
    ck_assert_uint_eq(b.len, 7 + BIG);
    ck_assert_uint_ge(b.cap, b.len);
    ck_assert_mem_eq(b.data, "abcdefg", 7);
    ck_assert_mem_eq(b.data + 7, big, BIG);
    free(big);
    sv_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    sv_buf_free(&b); /* twice is harmless */
}
END_TEST

START_TEST(test_buf_reserve)
{
    struct sv_buf b = SV_BUF_INIT;
    ck_assert_int_eq(sv_buf_append(&b, "xy", 2), 0);
    /* Sizes around powers of two: growth must account for the held bytes. */
    static const size_t extras[] = {1, 254, 255, 256, 510, 511, 512, 1024, 4095, 4096, 40};
    for (size_t i = 0; i < N_ELEMS(extras); i++) {
        size_t extra = extras[i];
        ck_assert_int_eq(sv_buf_reserve(&b, extra), 0);
        ck_assert_uint_ge(b.cap - b.len, extra);
        ck_assert_uint_eq(b.len, 2); /* reserve does not change the length */
        /* The reserved room is writable (ASan would object otherwise). */
        memset(b.data + b.len, 0x11, extra);
        ck_assert_mem_eq(b.data, "xy", 2);
    }
    /* A reservation that cannot be satisfied fails cleanly, without touching
     * the buffer (rejected before any allocation is attempted). */
    uint8_t *data = b.data;
    size_t cap = b.cap;
    ck_assert_int_eq(sv_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    ck_assert_int_eq(sv_buf_append(&b, "z", SIZE_MAX - 1), -ENOMEM);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_mem_eq(b.data, "xy", 2);
    sv_buf_free(&b);
}
END_TEST

START_TEST(test_buf_clear)
{
    struct sv_buf b = SV_BUF_INIT;
    ck_assert_int_eq(sv_buf_append(&b, "hello", 5), 0);
    uint8_t *data = b.data;
    size_t cap = b.cap;

    /* Within keep_cap: emptied, memory kept for reuse. */
    sv_buf_clear(&b, cap);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_int_eq(sv_buf_append(&b, "again", 5), 0);
    ck_assert_mem_eq(b.data, "again", 5);

    /* Beyond keep_cap: memory released, and the buffer still works. */
    sv_buf_clear(&b, cap - 1);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    ck_assert_int_eq(sv_buf_append(&b, "more", 4), 0);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_mem_eq(b.data, "more", 4);
    sv_buf_free(&b);
}
END_TEST

/* --- sv_arena ----------------------------------------------------------- */

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* Many small allocations across many chunks: each is aligned, and none
 * overlaps another (every block keeps its own fill pattern). */
START_TEST(test_arena_many)
{
    enum { N = 2000, CHUNK = 256 };
    struct sv_arena a;
    static uint8_t *ptrs[N];
    static size_t sizes[N];
    size_t rounded = 0;

    sv_arena_init(&a, CHUNK);
    ck_assert_uint_eq(a.chunk_size, CHUNK);
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 1 + (i * 37) % 120;
        ptrs[i] = sv_arena_alloc(&a, sizes[i]);
        ck_assert_ptr_nonnull(ptrs[i]);
        ck_assert_msg(aligned16(ptrs[i]), "allocation %zu (%zu bytes) misaligned", i, sizes[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
        rounded += (sizes[i] + 15) & ~(size_t)15;
    }
    ck_assert_uint_eq(a.used, rounded);
    ck_assert_uint_gt(rounded, 10 * CHUNK); /* many chunks were needed */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            ck_assert_msg(ptrs[i][j] == (uint8_t)i, "allocation %zu overwritten at %zu", i, j);
    sv_arena_free(&a);
    ck_assert_ptr_null(a.head);
    ck_assert_uint_eq(a.used, 0);
}
END_TEST

START_TEST(test_arena_big)
{
    enum { CHUNK = 256, BIG = 10000 };
    struct sv_arena a;
    sv_arena_init(&a, CHUNK);

    uint8_t *small1 = sv_arena_alloc(&a, 24);
    ck_assert_ptr_nonnull(small1);
    memset(small1, 0xA1, 24);
    uint8_t *big = sv_arena_alloc(&a, BIG);
    ck_assert_ptr_nonnull(big);
    ck_assert(aligned16(big));
    memset(big, 0xB2, BIG); /* the whole block is usable */
    uint8_t *small2 = sv_arena_alloc(&a, 40);
    ck_assert_ptr_nonnull(small2);
    ck_assert(aligned16(small2));
    memset(small2, 0xC3, 40);

    for (size_t i = 0; i < 24; i++)
        ck_assert_uint_eq(small1[i], 0xA1);
    for (size_t i = 0; i < BIG; i++)
        ck_assert_uint_eq(big[i], 0xB2);
    for (size_t i = 0; i < 40; i++)
        ck_assert_uint_eq(small2[i], 0xC3);
    sv_arena_free(&a);
}
END_TEST

START_TEST(test_arena_alignment)
{
    struct sv_arena a;
    sv_arena_init(&a, 0);
    ck_assert_uint_gt(a.chunk_size, 0); /* 0 picks the default */
    for (size_t n = 1; n <= 100; n++) {
        void *p = sv_arena_alloc(&a, n);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(aligned16(p), "%zu-byte allocation misaligned", n);
        /* The protobuf-c allocator hands out the same kind of memory. */
        void *q = a.pb.alloc(a.pb.allocator_data, n);
        ck_assert_ptr_nonnull(q);
        ck_assert(aligned16(q));
        ck_assert_ptr_ne(p, q);
        a.pb.free(a.pb.allocator_data, q); /* a no-op, but must be callable */
    }
    sv_arena_free(&a);
}
END_TEST

/* reset() frees everything, keeps one standard chunk for reuse, and leaves an
 * arena that works as before; many cycles leak nothing (see ASan runs). */
START_TEST(test_arena_reset)
{
    enum { CHUNK = 512 };
    struct sv_arena a;
    sv_arena_init(&a, CHUNK);

    void *first = sv_arena_alloc(&a, 16);
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(sv_arena_alloc(&a, 5000)); /* an oversize chunk */
    sv_arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    /* The standard chunk was kept (and the oversize one dropped), so the next
     * allocation needs no malloc. */
    ck_assert_ptr_nonnull(a.head);
    struct sv_arena_chunk *kept = a.head;
    ck_assert_ptr_eq(sv_arena_alloc(&a, 16), first);
    ck_assert_ptr_eq(a.head, kept);

    for (int round = 0; round < 50; round++) {
        uint8_t *p[40];
        for (int i = 0; i < 40; i++) {
            p[i] = sv_arena_alloc(&a, (size_t)(8 + i * 11 + round));
            ck_assert_ptr_nonnull(p[i]);
            memset(p[i], round + i, (size_t)(8 + i * 11 + round));
        }
        for (int i = 0; i < 40; i++)
            ck_assert_uint_eq(p[i][0], (uint8_t)(round + i));
        sv_arena_reset(&a);
        ck_assert_uint_eq(a.used, 0);
    }
    sv_arena_free(&a);
    sv_arena_free(&a); /* harmless on a freed arena */
}
END_TEST

/* --- sv_msg ------------------------------------------------------------- */

START_TEST(test_msg_response_round_trip)
{
    Statesrv__V1__GetResult get = STATESRV__V1__GET_RESULT__INIT;
    Statesrv__V1__Response resp = STATESRV__V1__RESPONSE__INIT;
    static uint8_t value[] = {1, 0, 2, 0xff};
    struct sv_buf out = SV_BUF_INIT;

    get.value.data = value;
    get.value.len = sizeof(value);
    get.kind = STATESRV__V1__VALUE_KIND__LIST;
    resp.id = 0x123456789aULL;
    resp.status = STATESRV__V1__STATUS__NOT_FOUND;
    resp.message = "no such key";
    resp.result_case = STATESRV__V1__RESPONSE__RESULT_GET;
    resp.get = &get;

    size_t packed = protobuf_c_message_get_packed_size(&resp.base);
    ck_assert_int_eq(sv_buf_append(&out, "pre", 3), 0); /* appends after existing bytes */
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, 1024), 0);
    ck_assert_uint_eq(out.len, 3 + SV_FRAME_HEADER_SIZE + packed);
    ck_assert_mem_eq(out.data, "pre", 3);
    ck_assert_uint_eq(sv_frame_header_get(out.data + 3), packed);

    /* A second frame right behind the first; packed size is also the max. */
    resp.id = 2;
    size_t packed2 = protobuf_c_message_get_packed_size(&resp.base);
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, (uint32_t)packed2), 0);

    /* Read both back through the frame codec, as a client does. */
    struct sv_frame_reader r;
    const uint8_t *payload;
    size_t n;
    sv_frame_reader_init(&r, 1024);
    ck_assert_int_eq(sv_frame_reader_feed(&r, out.data + 3, out.len - 3), 0);

    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), 1);
    ck_assert_uint_eq(n, packed);
    Statesrv__V1__Response *got = NULL;
    ck_assert_int_eq(sv_msg_unpack_response(payload, n, NULL, &got), 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got->id, 0x123456789aULL);
    ck_assert_int_eq(got->status, STATESRV__V1__STATUS__NOT_FOUND);
    ck_assert_str_eq(got->message, "no such key");
    ck_assert_int_eq(got->result_case, STATESRV__V1__RESPONSE__RESULT_GET);
    ck_assert_int_eq(got->get->kind, STATESRV__V1__VALUE_KIND__LIST);
    ck_assert_uint_eq(got->get->value.len, sizeof(value));
    ck_assert_mem_eq(got->get->value.data, value, sizeof(value));
    statesrv__v1__response__free_unpacked(got, NULL);

    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), 1);
    ck_assert_uint_eq(n, packed2);
    got = NULL;
    ck_assert_int_eq(sv_msg_unpack_response(payload, n, NULL, &got), 0);
    ck_assert_uint_eq(got->id, 2);
    statesrv__v1__response__free_unpacked(got, NULL);
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), 0);

    sv_frame_reader_free(&r);
    sv_buf_free(&out);
}
END_TEST

/* Too large for max_frame: SV_ETOOLARGE, and the buffer is exactly as it was. */
START_TEST(test_msg_too_large)
{
    static char message[200];
    Statesrv__V1__Response resp = STATESRV__V1__RESPONSE__INIT;
    struct sv_buf out = SV_BUF_INIT;

    memset(message, 'm', sizeof(message) - 1);
    resp.status = STATESRV__V1__STATUS__INTERNAL;
    resp.message = message;
    size_t packed = protobuf_c_message_get_packed_size(&resp.base);
    ck_assert_uint_gt(packed, 199);

    ck_assert_int_eq(sv_buf_append(&out, "keep", 4), 0);
    uint8_t *data = out.data;
    size_t cap = out.cap;
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, (uint32_t)packed - 1), SV_ETOOLARGE);
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, 16), SV_ETOOLARGE);
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, 0), SV_ETOOLARGE);
    ck_assert_ptr_eq(out.data, data);
    ck_assert_uint_eq(out.cap, cap);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_mem_eq(out.data, "keep", 4);

    /* One more byte of room and it fits. */
    ck_assert_int_eq(sv_msg_append(&out, &resp.base, (uint32_t)packed), 0);
    ck_assert_uint_eq(out.len, 4 + SV_FRAME_HEADER_SIZE + packed);
    sv_buf_free(&out);
}
END_TEST

static size_t pack_request(const Statesrv__V1__Request *req, uint8_t *buf, size_t cap)
{
    size_t n = statesrv__v1__request__get_packed_size(req);
    ck_assert_uint_le(n, cap);
    ck_assert_uint_eq(statesrv__v1__request__pack(req, buf), n);
    return n;
}

START_TEST(test_msg_unpack_request)
{
    Statesrv__V1__Ping ping = STATESRV__V1__PING__INIT;
    Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    uint8_t buf[256];

    req.id = 7;
    req.op_case = STATESRV__V1__REQUEST__OP_PING;
    req.ping = &ping;
    size_t n = pack_request(&req, buf, sizeof(buf));
    Statesrv__V1__Request *got = NULL;
    ck_assert_int_eq(sv_msg_unpack_request(buf, n, NULL, &got), 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got->id, 7);
    ck_assert_int_eq(got->op_case, STATESRV__V1__REQUEST__OP_PING);
    statesrv__v1__request__free_unpacked(got, NULL);

    /* Into an arena, as the server does; nothing to free but the arena. */
    struct sv_arena a;
    sv_arena_init(&a, 1024);
    get.state.data = (uint8_t *)"counts";
    get.state.len = 6;
    get.key.data = (uint8_t *)"k1";
    get.key.len = 2;
    get.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
    get.key_group = 17;
    req.id = 8;
    req.op_case = STATESRV__V1__REQUEST__OP_GET;
    req.get = &get;
    n = pack_request(&req, buf, sizeof(buf));
    got = NULL;
    ck_assert_int_eq(sv_msg_unpack_request(buf, n, &a.pb, &got), 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_gt(a.used, 0); /* the arena really was used */
    ck_assert_uint_eq(got->id, 8);
    ck_assert_int_eq(got->op_case, STATESRV__V1__REQUEST__OP_GET);
    ck_assert_uint_eq(got->get->state.len, 6);
    ck_assert_mem_eq(got->get->state.data, "counts", 6);
    ck_assert_uint_eq(got->get->key.len, 2);
    ck_assert_mem_eq(got->get->key.data, "k1", 2);
    ck_assert_int_eq(got->get->key_group_opt_case, STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP);
    ck_assert_uint_eq(got->get->key_group, 17);
    sv_arena_free(&a);
}
END_TEST

START_TEST(test_msg_request_without_op)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    uint8_t buf[64];
    Statesrv__V1__Request *got = NULL;

    /* An id but no op. */
    req.id = 5;
    size_t n = pack_request(&req, buf, sizeof(buf));
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(sv_msg_unpack_request(buf, n, NULL, &got), SV_EPROTO);
    /* An empty frame decodes as an empty Request: no op either. */
    ck_assert_int_eq(sv_msg_unpack_request(buf, 0, NULL, &got), SV_EPROTO);
    /* Only a field this version does not know (field 30, varint 1). */
    static const uint8_t unknown_only[] = {0xf0, 0x01, 0x01};
    ck_assert_int_eq(sv_msg_unpack_request(unknown_only, sizeof(unknown_only), NULL, &got),
                     SV_EPROTO);

    /* The same, with the arena allocator. */
    struct sv_arena a;
    sv_arena_init(&a, 1024);
    ck_assert_int_eq(sv_msg_unpack_request(buf, n, &a.pb, &got), SV_EPROTO);
    sv_arena_free(&a);
}
END_TEST

/* Bytes that are not a protobuf Request at all. */
static const struct {
    const char *bytes;
    size_t len;
} garbage[] = {
    {"\xff\xff\xff\xff", 4}, /* unterminated varint tag */
    {"\x08", 1},             /* id tag, value missing */
    {"\x08\x80", 2},         /* id tag, truncated value */
    {"\x1a\x05\x01", 3},     /* ping: length-delimited past the end */
    {"\x22\177abc", 5},      /* get: 127 bytes announced, 3 present */
    {"\x0f", 1},             /* wire type 7 does not exist */
    {"\x00\x00", 2},         /* field number 0 */
    {"\x22\x02\x0a\x05", 4}, /* get.state runs past the get */
    {"hello, world", 12},
};

START_TEST(test_msg_rejects_garbage)
{
    Statesrv__V1__Request *got = NULL;
    Statesrv__V1__Response *got_resp = NULL;
    ck_assert_int_eq(
        sv_msg_unpack_request((const uint8_t *)garbage[_i].bytes, garbage[_i].len, NULL, &got),
        SV_EPROTO);
    ck_assert_int_eq(sv_msg_unpack_response((const uint8_t *)garbage[_i].bytes, garbage[_i].len,
                                            NULL, &got_resp),
                     SV_EPROTO);
    struct sv_arena a;
    sv_arena_init(&a, 1024);
    ck_assert_int_eq(
        sv_msg_unpack_request((const uint8_t *)garbage[_i].bytes, garbage[_i].len, &a.pb, &got),
        SV_EPROTO);
    sv_arena_free(&a);
}
END_TEST

/* --- sv_utf8 ------------------------------------------------------------ */

START_TEST(test_utf8)
{
    static const struct {
        const char *bytes;
        int valid;
        const char *scrubbed;
    } cases[] = {
        {"plain", 1, "plain"},
        {"\xc3\xbf and \xe2\x82\xac and \xf0\x9f\x98\x80", 1,
         "\xc3\xbf and \xe2\x82\xac and \xf0\x9f\x98\x80"},
        {"\xff", 0, "?"},
        {"a\xc0\xaf"
         "b",
         0, "a??b"}, /* overlong '/' */
        {"\xed\xa0\x80"
         "x",
         0, "???x"},                         /* a UTF-16 surrogate */
        {"ok\xf4\x90\x80\x80", 0, "ok????"}, /* past U+10FFFF */
        {"cut\xe2\x82", 0, "cut??"},         /* truncated */
        {"\xe0\x80\x80", 0, "???"},          /* overlong NUL */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *b = cases[i].bytes;
        ck_assert_int_eq(sv_utf8_valid((const uint8_t *)b, strlen(b)), cases[i].valid);
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", b);
        sv_utf8_scrub(buf);
        ck_assert_str_eq(buf, cases[i].scrubbed);
        ck_assert(sv_utf8_valid((const uint8_t *)buf, strlen(buf)));
    }
    ck_assert_uint_eq(sv_utf8_seq((const uint8_t *)"\xc3", 1), 0);
    ck_assert_uint_eq(sv_utf8_seq((const uint8_t *)"\xc3\xbf", 2), 2);
}
END_TEST

/* --- sv_error ----------------------------------------------------------- */

/* Written out by hand rather than generated from SV_ERRORS, so that a change
 * to the table (a renumbered code, a different wire status) shows up here. */
static const struct {
    int code;
    int value;
    const char *text;
    enum sv_status status;
} errors[] = {
    {SV_ENOTFOUND, -30001, "not found", SV_STATUS_NOT_FOUND},
    {SV_EINVAL, -30002, "invalid argument", SV_STATUS_INVALID_ARGUMENT},
    {SV_ETOOLARGE, -30003, "too large", SV_STATUS_TOO_LARGE},
    {SV_EUNAUTH, -30004, "unauthenticated", SV_STATUS_UNAUTHENTICATED},
    {SV_EBUSY, -30005, "busy", SV_STATUS_BUSY},
    {SV_EUNAVAIL, -30006, "unavailable", SV_STATUS_UNAVAILABLE},
    {SV_EINTERNAL, -30007, "internal error", SV_STATUS_INTERNAL},
    {SV_ENOSPACE, -30008, "no space left", SV_STATUS_NO_SPACE},
    {SV_EMAPFULL, -30009, "store map is full", SV_STATUS_NO_SPACE},
    {SV_EPROTO, -30010, "malformed message", SV_STATUS_INVALID_ARGUMENT},
    {SV_ECORRUPT, -30011, "corrupt data", SV_STATUS_INTERNAL},
};

START_TEST(test_error_table)
{
    ck_assert_int_eq(errors[_i].code, errors[_i].value);
    ck_assert_str_eq(sv_strerror(errors[_i].code), errors[_i].text);
    ck_assert_int_eq(sv_error_status(errors[_i].code), errors[_i].status);
    /* Far from any errno value. */
    ck_assert_int_lt(errors[_i].code, -30000);
}
END_TEST

START_TEST(test_error_table_complete)
{
    /* Every code in SV_ERRORS is in the table above. */
#define SV_X(name, code, status, text) +1
    ck_assert_uint_eq(N_ELEMS(errors), 0 SV_ERRORS(SV_X));
#undef SV_X
}
END_TEST

START_TEST(test_error_errno)
{
    ck_assert_str_eq(sv_strerror(0), "success");
    ck_assert_str_eq(sv_strerror(-ENOENT), strerror(ENOENT));
    ck_assert_str_eq(sv_strerror(-EPIPE), strerror(EPIPE));
    ck_assert_str_eq(sv_strerror(1), "unknown error");
    ck_assert_ptr_nonnull(sv_strerror(-29999));

    ck_assert_int_eq(sv_error_status(0), SV_STATUS_OK);
    ck_assert_int_eq(sv_error_status(-ENOSPC), SV_STATUS_NO_SPACE);
    ck_assert_int_eq(sv_error_status(-EDQUOT), SV_STATUS_NO_SPACE);
    ck_assert_int_eq(sv_error_status(-ENOMEM), SV_STATUS_UNAVAILABLE);
    ck_assert_int_eq(sv_error_status(-EAGAIN), SV_STATUS_UNAVAILABLE);
    ck_assert_int_eq(sv_error_status(-EIO), SV_STATUS_INTERNAL);
    ck_assert_int_eq(sv_error_status(-30099), SV_STATUS_INTERNAL);
}
END_TEST

/* sv_status values and names match the wire enum statesrv.v1.Status. */
START_TEST(test_status_names)
{
    static const struct {
        int status;
        int wire;
        const char *name;
    } statuses[] = {
        {SV_STATUS_OK, STATESRV__V1__STATUS__OK, "OK"},
        {SV_STATUS_NOT_FOUND, STATESRV__V1__STATUS__NOT_FOUND, "NOT_FOUND"},
        {SV_STATUS_INVALID_ARGUMENT, STATESRV__V1__STATUS__INVALID_ARGUMENT, "INVALID_ARGUMENT"},
        {SV_STATUS_TOO_LARGE, STATESRV__V1__STATUS__TOO_LARGE, "TOO_LARGE"},
        {SV_STATUS_UNAUTHENTICATED, STATESRV__V1__STATUS__UNAUTHENTICATED, "UNAUTHENTICATED"},
        {SV_STATUS_BUSY, STATESRV__V1__STATUS__BUSY, "BUSY"},
        {SV_STATUS_UNAVAILABLE, STATESRV__V1__STATUS__UNAVAILABLE, "UNAVAILABLE"},
        {SV_STATUS_INTERNAL, STATESRV__V1__STATUS__INTERNAL, "INTERNAL"},
        {SV_STATUS_NO_SPACE, STATESRV__V1__STATUS__NO_SPACE, "NO_SPACE"},
    };
    ck_assert_uint_eq(N_ELEMS(statuses), SV_STATUS_MAX);
    ck_assert_uint_eq(statesrv__v1__status__descriptor.n_values, SV_STATUS_MAX);
    for (size_t i = 0; i < N_ELEMS(statuses); i++) {
        ck_assert_int_eq(statuses[i].status, (int)i);
        ck_assert_int_eq(statuses[i].status, statuses[i].wire);
        ck_assert_str_eq(sv_status_name(statuses[i].status), statuses[i].name);
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(&statesrv__v1__status__descriptor, (int)i);
        ck_assert_ptr_nonnull(ev);
        ck_assert_str_eq(ev->name, statuses[i].name);
    }
    ck_assert_str_eq(sv_status_name(SV_STATUS_MAX), "UNKNOWN");
    ck_assert_str_eq(sv_status_name(-1), "UNKNOWN");
    ck_assert_str_eq(sv_status_name(SV_ENOTFOUND), "UNKNOWN");
}
END_TEST

/* --- sv_log ------------------------------------------------------------- */

static const struct {
    const char *s;
    int rc;
    enum sv_log_level level;
} log_levels[] = {
    {"debug", 0, SV_LOG_DEBUG},  {"info", 0, SV_LOG_INFO},    {"warn", 0, SV_LOG_WARN},
    {"warning", 0, SV_LOG_WARN}, {"error", 0, SV_LOG_ERROR},  {"DEBUG", 0, SV_LOG_DEBUG},
    {"Info", 0, SV_LOG_INFO},    {"WARNING", 0, SV_LOG_WARN}, {"", SV_EINVAL, 0},
    {"verbose", SV_EINVAL, 0},   {"err", SV_EINVAL, 0},       {"warn ", SV_EINVAL, 0},
    {" info", SV_EINVAL, 0},     {"debugx", SV_EINVAL, 0},    {"3", SV_EINVAL, 0},
};

START_TEST(test_log_parse_level)
{
    enum sv_log_level got = SV_LOG_LEVEL_MAX;
    int rc = sv_log_parse_level(log_levels[_i].s, &got);
    ck_assert_msg(rc == log_levels[_i].rc, "\"%s\": rc %d, want %d", log_levels[_i].s, rc,
                  log_levels[_i].rc);
    if (rc == 0)
        ck_assert_int_eq(got, log_levels[_i].level);
}
END_TEST

START_TEST(test_log_levels)
{
    ck_assert_str_eq(sv_log_level_name(SV_LOG_DEBUG), "DEBUG");
    ck_assert_str_eq(sv_log_level_name(SV_LOG_INFO), "INFO");
    ck_assert_str_eq(sv_log_level_name(SV_LOG_WARN), "WARN");
    ck_assert_str_eq(sv_log_level_name(SV_LOG_ERROR), "ERROR");
    ck_assert_str_eq(sv_log_level_name(SV_LOG_LEVEL_MAX), "?");

    enum sv_log_level saved = sv_log_get_level();
    sv_log_set_level(SV_LOG_ERROR);
    ck_assert_int_eq(sv_log_get_level(), SV_LOG_ERROR);
    sv_log_set_level(SV_LOG_LEVEL_MAX); /* out of range: ignored */
    ck_assert_int_eq(sv_log_get_level(), SV_LOG_ERROR);
    sv_log_set_level(saved);
}
END_TEST

/* Runs sv_log with stderr sent to a temporary file; returns what it wrote. */
static size_t capture_log(enum sv_log_level level, const char *msg, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    fflush(stderr);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    sv_log(level, "%s", msg);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

START_TEST(test_log_output)
{
    static char line[4096], big[3000];
    enum sv_log_level saved = sv_log_get_level();

    sv_log_set_level(SV_LOG_WARN);
    ck_assert_uint_eq(capture_log(SV_LOG_INFO, "filtered", line, sizeof(line)), 0);
    size_t n = capture_log(SV_LOG_WARN, "disk 91% full", line, sizeof(line));
    ck_assert_uint_gt(n, 0);
    ck_assert_ptr_nonnull(strstr(line, " WARN "));
    ck_assert_ptr_nonnull(strstr(line, "disk 91% full\n"));
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_eq(strchr(line, '\n'), line + n - 1); /* exactly one line */
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ " first. */
    ck_assert_int_eq(line[4], '-');
    ck_assert_int_eq(line[10], 'T');
    ck_assert_int_eq(line[23], 'Z');

    /* An over-long message is cut, still as one line. */
    memset(big, 'x', sizeof(big) - 1);
    n = capture_log(SV_LOG_ERROR, big, line, sizeof(line));
    ck_assert_uint_gt(n, 1000);
    ck_assert_uint_lt(n, 1100);
    ck_assert_int_eq(line[n - 1], '\n');
    sv_log_set_level(saved);
}
END_TEST

START_TEST(test_log_limited)
{
    /* 25 messages in one burst: at most 10 are written. */
    char path[] = "/tmp/svlog-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    enum sv_log_level old = sv_log_get_level();
    sv_log_set_level(SV_LOG_INFO);
    struct sv_log_limit lim = {0};
    for (int i = 0; i < 25; i++)
        sv_log_limited(&lim, 10, SV_LOG_WARN, "flood %d", i);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    sv_log_set_level(old);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int lines = 0;
    while (fgets(line, sizeof(line), f))
        lines++;
    fclose(f);
    close(fd);
    unlink(path);
    /* 10, or a few more if the second turned over mid-burst. */
    ck_assert_int_ge(lines, 10);
    ck_assert_int_le(lines, 20);
    ck_assert_uint_gt(lim.dropped + (unsigned long)lines, 10);
}
END_TEST

Suite *sv_suite_common(void)
{
    Suite *s = suite_create("common");
    TCase *tc;

    tc = tcase_create("buf");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_buf_append);
    tcase_add_test(tc, test_buf_reserve);
    tcase_add_test(tc, test_buf_clear);
    tcase_add_test(tc, test_utf8);
    suite_add_tcase(s, tc);

    tc = tcase_create("arena");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_arena_many);
    tcase_add_test(tc, test_arena_big);
    tcase_add_test(tc, test_arena_alignment);
    tcase_add_test(tc, test_arena_reset);
    suite_add_tcase(s, tc);

    tc = tcase_create("msg");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_msg_response_round_trip);
    tcase_add_test(tc, test_msg_too_large);
    tcase_add_test(tc, test_msg_unpack_request);
    tcase_add_test(tc, test_msg_request_without_op);
    tcase_add_loop_test(tc, test_msg_rejects_garbage, 0, (int)N_ELEMS(garbage));
    suite_add_tcase(s, tc);

    tc = tcase_create("error");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_error_table, 0, (int)N_ELEMS(errors));
    tcase_add_test(tc, test_error_table_complete);
    tcase_add_test(tc, test_error_errno);
    tcase_add_test(tc, test_status_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("log");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_log_parse_level, 0, (int)N_ELEMS(log_levels));
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_log_output);
    tcase_add_test(tc, test_log_limited);
    suite_add_tcase(s, tc);

    return s;
}
