/* Unit tests for the incremental frame codec (common/sv_frame.c). */
#include "suites.h"
#include "sv_error.h"
#include "sv_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 4096u

/* Payload byte i of frame `seed`: every frame differs from its neighbours, so
 * a frame delivered at the wrong offset or out of order cannot match. */
static uint8_t pattern_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void pattern_fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_byte(seed, i);
}

static int pattern_matches(const uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern_byte(seed, i))
            return 0;
    return 1;
}

/* Writes header + patterned payload at out; returns the bytes written. */
static size_t put_frame(uint8_t *out, uint32_t len, uint32_t seed)
{
    sv_frame_header_put(out, len);
    pattern_fill(out + SV_FRAME_HEADER_SIZE, len, seed);
    return SV_FRAME_HEADER_SIZE + len;
}

static void feed_ok(struct sv_frame_reader *r, const void *p, size_t n)
{
    ck_assert_int_eq(sv_frame_reader_feed(r, p, n), 0);
}

/* Takes one frame and checks it is (len, seed); ready() must agree first. */
static void expect_frame(struct sv_frame_reader *r, uint32_t len, uint32_t seed)
{
    const uint8_t *payload = NULL;
    size_t n = 0;
    ck_assert_int_eq(sv_frame_reader_ready(r), 1);
    ck_assert_int_eq(sv_frame_reader_next(r, &payload, &n), 1);
    ck_assert_uint_eq(n, len);
    ck_assert_msg(pattern_matches(payload, n, seed), "frame %u: payload differs", (unsigned)seed);
}

static void expect_need_more(struct sv_frame_reader *r)
{
    const uint8_t *payload;
    size_t n;
    ck_assert_int_eq(sv_frame_reader_ready(r), 0);
    ck_assert_int_eq(sv_frame_reader_next(r, &payload, &n), 0);
}

/* Deterministic xorshift32, so a failure reproduces on every libc. */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

START_TEST(test_header_accessors)
{
    uint8_t h[4];
    sv_frame_header_put(h, 0x01020304u);
    ck_assert_uint_eq(h[0], 0x01);
    ck_assert_uint_eq(h[1], 0x02);
    ck_assert_uint_eq(h[2], 0x03);
    ck_assert_uint_eq(h[3], 0x04);
    ck_assert_uint_eq(sv_frame_header_get(h), 0x01020304u);
    sv_frame_header_put(h, UINT32_MAX);
    ck_assert_uint_eq(sv_frame_header_get(h), UINT32_MAX);
}
END_TEST

START_TEST(test_empty_reader)
{
    struct sv_frame_reader r;
    sv_frame_reader_init(&r, MAX_FRAME);
    ck_assert_uint_eq(r.max_frame, MAX_FRAME);
    expect_need_more(&r);
    sv_frame_reader_discard(&r);
    expect_need_more(&r);
    sv_frame_reader_free(&r);
    sv_frame_reader_free(&r); /* safe on a freed reader */
}
END_TEST

/* Feeding nothing (a read that returned 0 bytes) is harmless, also before
 * the reader has any buffer and after discard() released it. Under clang's
 * -fsanitize=undefined this catches `NULL + 0` in sv_frame_reader_space(). */
START_TEST(test_feed_nothing)
{
    struct sv_frame_reader r;
    uint8_t *p;
    size_t avail;

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, "", 0);
    ck_assert_uint_eq(r.len, 0);
    expect_need_more(&r);
    ck_assert_int_eq(sv_frame_reader_space(&r, 0, &p, &avail), 0);
    sv_frame_reader_produced(&r, 0);
    expect_need_more(&r);

    /* Release the buffer, then feed nothing again; the reader still works. */
    enum { BIG = 100 * 1024 };
    uint8_t *wire = malloc(SV_FRAME_HEADER_SIZE + BIG);
    ck_assert_ptr_nonnull(wire);
    size_t total = put_frame(wire, BIG, 6);
    r.max_frame = BIG;
    feed_ok(&r, wire, total);
    expect_frame(&r, BIG, 6);
    sv_frame_reader_discard(&r);
    feed_ok(&r, "", 0);
    expect_need_more(&r);
    total = put_frame(wire, 2, 7);
    feed_ok(&r, wire, total);
    expect_frame(&r, 2, 7);
    sv_frame_reader_free(&r);
    free(wire);
}
END_TEST

START_TEST(test_single_frame)
{
    static const uint8_t wire[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    struct sv_frame_reader r;
    const uint8_t *payload;
    size_t n;

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, sizeof(wire));
    ck_assert_int_eq(sv_frame_reader_ready(&r), 1);
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), 1);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(payload, "hello", 5);
    ck_assert_uint_eq(r.pos, sizeof(wire));
    expect_need_more(&r);
    sv_frame_reader_free(&r);
}
END_TEST

START_TEST(test_coalesced_frames)
{
    static const uint32_t lens[] = {10, 0, 1, 300, 4, MAX_FRAME, 2};
    enum { NF = sizeof(lens) / sizeof(lens[0]) };
    uint8_t *wire = malloc(NF * (SV_FRAME_HEADER_SIZE + MAX_FRAME));
    size_t total = 0;
    struct sv_frame_reader r;

    ck_assert_ptr_nonnull(wire);
    for (uint32_t i = 0; i < NF; i++)
        total += put_frame(wire + total, lens[i], i);

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, total);
    for (uint32_t i = 0; i < NF; i++)
        expect_frame(&r, lens[i], i);
    expect_need_more(&r);
    ck_assert_uint_eq(r.pos, total);
    sv_frame_reader_free(&r);
    free(wire);
}
END_TEST

START_TEST(test_byte_by_byte)
{
    enum { LEN = 300 };
    uint8_t wire[SV_FRAME_HEADER_SIZE + LEN];
    size_t total = put_frame(wire, LEN, 77);
    struct sv_frame_reader r;

    sv_frame_reader_init(&r, MAX_FRAME);
    for (size_t i = 0; i < total; i++) {
        expect_need_more(&r);
        feed_ok(&r, wire + i, 1);
    }
    expect_frame(&r, LEN, 77);
    expect_need_more(&r);
    sv_frame_reader_free(&r);
}
END_TEST

/* Many frames fed in random-sized chunks; frames are taken whenever ready()
 * says so, and taken frames are discarded every few chunks as the server does
 * after a group commit. */
START_TEST(test_random_chunks)
{
    enum { NF = 200 };
    uint32_t lens[NF];
    uint32_t seed = 0x5eed1234u;
    size_t total = 0;

    for (int i = 0; i < NF; i++) {
        uint32_t x = rng_next(&seed);
        /* Mostly small frames, some empty, some at the limit. */
        lens[i] = (x % 10 == 0) ? 0 : (x % 17 == 0) ? MAX_FRAME : x % 700;
        total += SV_FRAME_HEADER_SIZE + lens[i];
    }
    uint8_t *wire = malloc(total);
    ck_assert_ptr_nonnull(wire);
    size_t off = 0;
    for (int i = 0; i < NF; i++)
        off += put_frame(wire + off, lens[i], (uint32_t)i);
    ck_assert_uint_eq(off, total);

    struct sv_frame_reader r;
    sv_frame_reader_init(&r, MAX_FRAME);
    int taken = 0, chunks = 0;
    off = 0;
    while (off < total) {
        size_t chunk = 1 + rng_next(&seed) % 97;
        if (chunk > total - off)
            chunk = total - off;
        feed_ok(&r, wire + off, chunk);
        off += chunk;
        chunks++;

        for (;;) {
            int ready = sv_frame_reader_ready(&r);
            const uint8_t *payload;
            size_t n;
            int rc = sv_frame_reader_next(&r, &payload, &n);
            ck_assert_int_eq(ready, rc);
            if (rc == 0)
                break;
            ck_assert_int_lt(taken, NF);
            ck_assert_uint_eq(n, lens[taken]);
            ck_assert_msg(pattern_matches(payload, n, (uint32_t)taken),
                          "frame %d differs after %d chunks", taken, chunks);
            taken++;
        }
        if (chunks % 3 == 0)
            sv_frame_reader_discard(&r);
    }
    ck_assert_int_eq(taken, NF);
    ck_assert_int_gt(chunks, NF); /* most frames really were split */
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.len, 0);
    sv_frame_reader_free(&r);
    free(wire);
}
END_TEST

START_TEST(test_zero_length_payload)
{
    uint8_t wire[3 * SV_FRAME_HEADER_SIZE + 3];
    size_t total = 0;
    struct sv_frame_reader r;

    total += put_frame(wire + total, 0, 1);
    total += put_frame(wire + total, 0, 2);
    total += put_frame(wire + total, 3, 3);

    sv_frame_reader_init(&r, MAX_FRAME);
    /* A lone empty frame is complete as soon as its header is. */
    feed_ok(&r, wire, SV_FRAME_HEADER_SIZE);
    expect_frame(&r, 0, 1);
    ck_assert_uint_eq(r.pos, SV_FRAME_HEADER_SIZE);
    expect_need_more(&r);
    feed_ok(&r, wire + SV_FRAME_HEADER_SIZE, total - SV_FRAME_HEADER_SIZE);
    expect_frame(&r, 0, 2);
    expect_frame(&r, 3, 3);
    expect_need_more(&r);
    sv_frame_reader_free(&r);
}
END_TEST

START_TEST(test_max_frame_accepted)
{
    uint8_t *wire = malloc(SV_FRAME_HEADER_SIZE + MAX_FRAME);
    struct sv_frame_reader r;

    ck_assert_ptr_nonnull(wire);
    size_t total = put_frame(wire, MAX_FRAME, 9);
    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, total - 1);
    expect_need_more(&r);
    feed_ok(&r, wire + total - 1, 1);
    expect_frame(&r, MAX_FRAME, 9);
    ck_assert_uint_eq(r.bad_len, 0);
    sv_frame_reader_free(&r);
    free(wire);
}
END_TEST

/* One past the limit is refused from the header alone (the server must not
 * buffer the payload to find out), repeatedly, with bad_len set. */
START_TEST(test_max_frame_plus_one)
{
    uint8_t hdr[SV_FRAME_HEADER_SIZE];
    struct sv_frame_reader r;
    const uint8_t *payload;
    size_t n;

    sv_frame_header_put(hdr, MAX_FRAME + 1);
    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, hdr, sizeof(hdr));
    ck_assert_int_eq(sv_frame_reader_ready(&r), 1);
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), SV_ETOOLARGE);
    ck_assert_uint_eq(r.bad_len, MAX_FRAME + 1);
    /* The error is sticky: nothing after the bad header is ever framed. */
    uint8_t more[64];
    memset(more, 0, sizeof(more));
    feed_ok(&r, more, sizeof(more));
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), SV_ETOOLARGE);
    ck_assert_uint_eq(r.bad_len, MAX_FRAME + 1);
    sv_frame_reader_free(&r);
}
END_TEST

/* Good frames before an oversize header are still delivered, in order. */
START_TEST(test_too_large_after_good_frames)
{
    uint8_t wire[2 * SV_FRAME_HEADER_SIZE + 20];
    size_t total = 0;
    struct sv_frame_reader r;
    const uint8_t *payload;
    size_t n;

    total += put_frame(wire, 20, 4);
    sv_frame_header_put(wire + total, UINT32_MAX);
    total += SV_FRAME_HEADER_SIZE;

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, total);
    expect_frame(&r, 20, 4);
    ck_assert_int_eq(sv_frame_reader_ready(&r), 1);
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), SV_ETOOLARGE);
    ck_assert_uint_eq(r.bad_len, UINT32_MAX);
    sv_frame_reader_free(&r);
}
END_TEST

/* Loop test: _i is where the first feed ends inside the 4-byte header. */
START_TEST(test_header_split)
{
    enum { LEN = 9 };
    uint8_t wire[SV_FRAME_HEADER_SIZE + LEN];
    size_t total = put_frame(wire, LEN, 5);
    size_t split = (size_t)_i;
    struct sv_frame_reader r;

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, split);
    expect_need_more(&r);
    feed_ok(&r, wire + split, SV_FRAME_HEADER_SIZE - split);
    expect_need_more(&r); /* header complete, payload missing */
    feed_ok(&r, wire + SV_FRAME_HEADER_SIZE, total - SV_FRAME_HEADER_SIZE);
    expect_frame(&r, LEN, 5);
    expect_need_more(&r);
    sv_frame_reader_free(&r);

    /* An oversize length split the same way is only judged once whole. */
    uint8_t bad[SV_FRAME_HEADER_SIZE];
    const uint8_t *payload;
    size_t n;
    sv_frame_header_put(bad, MAX_FRAME + 1);
    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, bad, split);
    expect_need_more(&r);
    feed_ok(&r, bad + split, SV_FRAME_HEADER_SIZE - split);
    ck_assert_int_eq(sv_frame_reader_next(&r, &payload, &n), SV_ETOOLARGE);
    ck_assert_uint_eq(r.bad_len, MAX_FRAME + 1);
    sv_frame_reader_free(&r);
}
END_TEST

/* ready() is checked against next() in every state a reader can be in. */
START_TEST(test_ready_agrees_with_next)
{
    uint8_t wire[3 * SV_FRAME_HEADER_SIZE + 10 + 20];
    size_t total = 0;
    total += put_frame(wire + total, 10, 1);
    total += put_frame(wire + total, 20, 2);
    sv_frame_header_put(wire + total, MAX_FRAME + 7);
    total += SV_FRAME_HEADER_SIZE;

    /* For each prefix length, the frames a fresh reader must yield. */
    for (size_t cut = 0; cut <= total; cut++) {
        struct sv_frame_reader r;
        sv_frame_reader_init(&r, MAX_FRAME);
        feed_ok(&r, wire, cut);
        int frames = 0;
        for (;;) {
            int ready = sv_frame_reader_ready(&r);
            const uint8_t *payload;
            size_t n;
            int rc = sv_frame_reader_next(&r, &payload, &n);
            ck_assert_msg((ready != 0) == (rc != 0), "cut %zu: ready %d but next %d", cut, ready,
                          rc);
            if (rc != 1)
                break;
            frames++;
        }
        int want = cut >= 14 + 24 ? 2 : cut >= 14 ? 1 : 0;
        ck_assert_int_eq(frames, want);
        sv_frame_reader_free(&r);
    }
}
END_TEST

/* The group-commit pattern: save pos, take frames, rewind, take them again. */
START_TEST(test_rewind)
{
    uint8_t wire[3 * SV_FRAME_HEADER_SIZE + 11 + 0 + 500];
    size_t total = 0;
    struct sv_frame_reader r;

    total += put_frame(wire + total, 11, 1);
    total += put_frame(wire + total, 0, 2);
    total += put_frame(wire + total, 500, 3);

    sv_frame_reader_init(&r, MAX_FRAME);
    feed_ok(&r, wire, total);
    size_t saved = r.pos;
    const uint8_t *first_payload;
    size_t first_len;
    ck_assert_int_eq(sv_frame_reader_next(&r, &first_payload, &first_len), 1);
    expect_frame(&r, 0, 2);
    size_t after_two = r.pos;

    r.pos = saved;
    const uint8_t *again_payload;
    size_t again_len;
    ck_assert_int_eq(sv_frame_reader_next(&r, &again_payload, &again_len), 1);
    ck_assert_ptr_eq(again_payload, first_payload);
    ck_assert_uint_eq(again_len, 11);
    ck_assert(pattern_matches(again_payload, again_len, 1));
    expect_frame(&r, 0, 2);
    ck_assert_uint_eq(r.pos, after_two);

    /* Bytes fed after the save (which may move the buffer) do not disturb a
     * rewind: positions are offsets, not pointers. */
    enum { BIG = 3000 };
    uint8_t *more = malloc(40 * (SV_FRAME_HEADER_SIZE + BIG));
    ck_assert_ptr_nonnull(more);
    size_t more_len = 0;
    for (uint32_t i = 0; i < 40; i++)
        more_len += put_frame(more + more_len, BIG, 100 + i);
    feed_ok(&r, more, more_len);
    r.pos = saved;
    expect_frame(&r, 11, 1);
    expect_frame(&r, 0, 2);
    expect_frame(&r, 500, 3);
    for (uint32_t i = 0; i < 40; i++)
        expect_frame(&r, BIG, 100 + i);
    expect_need_more(&r);
    sv_frame_reader_free(&r);
    free(more);
}
END_TEST

/* discard() drops only what was taken: a partly received frame and untaken
 * whole frames stay, byte for byte. */
START_TEST(test_discard_keeps_tail)
{
    uint8_t wire[4 * SV_FRAME_HEADER_SIZE + 5 + 6 + 7 + 300];
    size_t total = 0, b_end, c_end;
    struct sv_frame_reader r;

    total += put_frame(wire + total, 5, 1);
    total += put_frame(wire + total, 6, 2);
    b_end = total;
    total += put_frame(wire + total, 7, 3);
    c_end = total;
    total += put_frame(wire + total, 300, 4);
    size_t cut = c_end + SV_FRAME_HEADER_SIZE + 100; /* inside frame 4 */

    sv_frame_reader_init(&r, MAX_FRAME);
    /* Nothing taken yet: discard is a no-op. */
    feed_ok(&r, wire, cut);
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.len, cut);
    ck_assert_uint_eq(r.pos, 0);

    expect_frame(&r, 5, 1);
    expect_frame(&r, 6, 2);
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.pos, 0);
    ck_assert_uint_eq(r.len, cut - b_end);
    ck_assert_mem_eq(r.buf, wire + b_end, cut - b_end);

    expect_frame(&r, 7, 3);
    expect_need_more(&r);
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.len, cut - c_end);
    ck_assert_mem_eq(r.buf, wire + c_end, cut - c_end);

    feed_ok(&r, wire + cut, total - cut);
    expect_frame(&r, 300, 4);
    expect_need_more(&r);
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_eq(r.pos, 0);
    sv_frame_reader_free(&r);
}
END_TEST

/* After a burst of large frames, an emptied reader gives its memory back
 * and then works as before. */
START_TEST(test_discard_releases_big_buffer)
{
    enum { BIG = 200 * 1024 };
    uint8_t *wire = malloc(SV_FRAME_HEADER_SIZE + BIG);
    struct sv_frame_reader r;

    ck_assert_ptr_nonnull(wire);
    size_t total = put_frame(wire, BIG, 8);
    sv_frame_reader_init(&r, BIG);
    feed_ok(&r, wire, total);
    ck_assert_uint_ge(r.cap, total);
    expect_frame(&r, BIG, 8);
    sv_frame_reader_discard(&r);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_lt(r.cap, total);

    total = put_frame(wire, 3, 9);
    feed_ok(&r, wire, total);
    expect_frame(&r, 3, 9);
    sv_frame_reader_free(&r);
    free(wire);
}
END_TEST

/* Reading in place: space() hands out room after the held bytes, and
 * produced() makes what was written there part of the stream. */
START_TEST(test_space_produced)
{
    uint8_t wire[2 * SV_FRAME_HEADER_SIZE + 50 + 20000];
    size_t total = 0;
    struct sv_frame_reader r;
    uint8_t *p;
    size_t avail;

    total += put_frame(wire, 50, 1);
    size_t first_end = total;
    total += put_frame(wire + total, 20000, 2);

    sv_frame_reader_init(&r, 32768);
    ck_assert_int_eq(sv_frame_reader_space(&r, 1, &p, &avail), 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(avail, 1);
    ck_assert_ptr_eq(p, r.buf + r.len);
    ck_assert_uint_eq(avail, r.cap - r.len);

    /* A short "read": the first frame and 10 bytes of the second. */
    size_t got = first_end + 10;
    ck_assert_uint_ge(avail, got);
    memcpy(p, wire, got);
    sv_frame_reader_produced(&r, got);
    ck_assert_uint_eq(r.len, got);
    expect_frame(&r, 50, 1);
    expect_need_more(&r);

    /* Ask for room for the rest: the buffer grows, held bytes survive. */
    size_t rest = total - got;
    ck_assert_int_eq(sv_frame_reader_space(&r, rest, &p, &avail), 0);
    ck_assert_uint_ge(avail, rest);
    ck_assert_ptr_eq(p, r.buf + got);
    ck_assert_uint_eq(avail, r.cap - r.len); /* only the room after held bytes */
    ck_assert_mem_eq(r.buf, wire, got);

    /* Producing nothing (a read of 0) changes nothing. */
    sv_frame_reader_produced(&r, 0);
    expect_need_more(&r);

    memcpy(p, wire + got, rest);
    sv_frame_reader_produced(&r, rest);
    expect_frame(&r, 20000, 2);
    expect_need_more(&r);
    sv_frame_reader_free(&r);
}
END_TEST

Suite *sv_suite_frame(void)
{
    Suite *s = suite_create("frame");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_header_accessors);
    tcase_add_test(tc, test_empty_reader);
    tcase_add_test(tc, test_feed_nothing);
    tcase_add_test(tc, test_single_frame);
    tcase_add_test(tc, test_coalesced_frames);
    tcase_add_test(tc, test_zero_length_payload);
    suite_add_tcase(s, tc);

    tc = tcase_create("incremental");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_byte_by_byte);
    tcase_add_test(tc, test_random_chunks);
    tcase_add_loop_test(tc, test_header_split, 1, (int)SV_FRAME_HEADER_SIZE);
    tcase_add_test(tc, test_ready_agrees_with_next);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_max_frame_accepted);
    tcase_add_test(tc, test_max_frame_plus_one);
    tcase_add_test(tc, test_too_large_after_good_frames);
    suite_add_tcase(s, tc);

    tc = tcase_create("rewind");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_rewind);
    tcase_add_test(tc, test_discard_keeps_tail);
    tcase_add_test(tc, test_discard_releases_big_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("space");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_space_produced);
    suite_add_tcase(s, tc);

    return s;
}
