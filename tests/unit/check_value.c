/* Unit tests for stored values (common/sv_value.c): the header, list framing,
 * per-kind validation and the counter encoding. */
#include "suites.h"
#include "sv_error.h"
#include "sv_value.h"

#include "sv_buf.h"

#include <stdint.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- header ------------------------------------------------------------- */

START_TEST(test_header_no_expiry)
{
    /* _i is the kind. */
    enum sv_value_kind kind = (enum sv_value_kind)_i;
    uint8_t buf[SV_VALUE_HEADER_MAX + 3];
    memset(buf, 0xEE, sizeof(buf));

    size_t h = sv_value_header_put(buf, kind, 0);
    ck_assert_uint_eq(h, 2);
    ck_assert_uint_eq(sv_value_header_size(0), 2);
    ck_assert_uint_eq(buf[0], SV_VALUE_VERSION);
    ck_assert_uint_eq(buf[1], (unsigned)kind);
    ck_assert_uint_eq(buf[2], 0xEE); /* nothing written past the header */
    memcpy(buf + h, "xyz", 3);

    struct sv_value v;
    ck_assert_int_eq(sv_value_parse(buf, h + 3, &v), 0);
    ck_assert_int_eq(v.kind, kind);
    ck_assert_uint_eq(v.expiry_ms, 0);
    ck_assert_ptr_eq(v.data, buf + h);
    ck_assert_uint_eq(v.len, 3);
    ck_assert_mem_eq(v.data, "xyz", 3);
}
END_TEST

START_TEST(test_header_with_expiry)
{
    static const uint64_t expiries[] = {1, 0x0102030405060708u, 1700000000000u, UINT64_MAX};
    for (size_t i = 0; i < N_ELEMS(expiries); i++) {
        uint8_t buf[SV_VALUE_HEADER_MAX + 4];
        memset(buf, 0xEE, sizeof(buf));
        size_t h = sv_value_header_put(buf, SV_KIND_COUNTER, expiries[i]);
        ck_assert_uint_eq(h, SV_VALUE_HEADER_MAX);
        ck_assert_uint_eq(sv_value_header_size(expiries[i]), SV_VALUE_HEADER_MAX);
        ck_assert_uint_eq(buf[0], SV_VALUE_VERSION | SV_VALUE_HAS_EXPIRY);
        ck_assert_uint_eq(buf[1], SV_KIND_COUNTER);
        ck_assert_uint_eq(buf[SV_VALUE_HEADER_MAX], 0xEE);
        /* Big-endian expiry. */
        uint64_t be = 0;
        for (int b = 0; b < 8; b++)
            be = be << 8 | buf[2 + b];
        ck_assert_uint_eq(be, expiries[i]);

        struct sv_value v;
        ck_assert_int_eq(sv_value_parse(buf, h + 4, &v), 0);
        ck_assert_int_eq(v.kind, SV_KIND_COUNTER);
        ck_assert_uint_eq(v.expiry_ms, expiries[i]);
        ck_assert_ptr_eq(v.data, buf + SV_VALUE_HEADER_MAX);
        ck_assert_uint_eq(v.len, 4);
    }
    /* The exact layout of one header. */
    uint8_t buf[SV_VALUE_HEADER_MAX];
    sv_value_header_put(buf, SV_KIND_LIST, 0x0102030405060708u);
    ck_assert_mem_eq(buf, "\x11\x01\x01\x02\x03\x04\x05\x06\x07\x08", 10);
}
END_TEST

/* A header alone is a valid empty value. */
START_TEST(test_header_only)
{
    uint8_t buf[SV_VALUE_HEADER_MAX];
    struct sv_value v;

    size_t h = sv_value_header_put(buf, SV_KIND_RAW, 0);
    ck_assert_int_eq(sv_value_parse(buf, h, &v), 0);
    ck_assert_uint_eq(v.len, 0);
    h = sv_value_header_put(buf, SV_KIND_LIST, 99);
    ck_assert_int_eq(sv_value_parse(buf, h, &v), 0);
    ck_assert_int_eq(v.kind, SV_KIND_LIST);
    ck_assert_uint_eq(v.expiry_ms, 99);
    ck_assert_uint_eq(v.len, 0);
}
END_TEST

static const struct {
    const char *bytes;
    size_t len;
} bad_headers[] = {
    {"", 0},
    {"\x01", 1},                                 /* no kind byte */
    {"\x00\x00", 2},                             /* version 0 */
    {"\x02\0abc", 5},                            /* version 2 */
    {"\x0f\x00", 2},                             /* version 15 */
    {"\x21\x00", 2},                             /* reserved bit 5 */
    {"\x41\x00", 2},                             /* reserved bit 6 */
    {"\x81\x00", 2},                             /* reserved bit 7 */
    {"\x01\x03", 2},                             /* unknown kind */
    {"\x01\377abc", 5},                          /* unknown kind */
    {"\x11\x00", 2},                             /* expiry flag, no expiry */
    {"\x11\x00\x01\x02\x03\x04\x05\x06\x07", 9}, /* expiry one byte short */
    {"\x21\x01", 2},                             /* timed, no expiry field */
    {"\x31\x00\0\0\0\0\0\0\0\0", 10},            /* timed RAW */
    {"\x31\x02\0\0\0\0\0\0\0\0", 10},            /* timed COUNTER */
    {"\x71\x01\0\0\0\0\0\0\0\0", 10},            /* reserved bit 6 */
};

START_TEST(test_parse_rejects)
{
    struct sv_value v;
    ck_assert_int_eq(
        sv_value_parse((const uint8_t *)bad_headers[_i].bytes, bad_headers[_i].len, &v),
        SV_ECORRUPT);
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(sv_value_kind_name(SV_KIND_RAW), "raw");
    ck_assert_str_eq(sv_value_kind_name(SV_KIND_LIST), "list");
    ck_assert_str_eq(sv_value_kind_name(SV_KIND_COUNTER), "counter");
    ck_assert_str_eq(sv_value_kind_name(SV_KIND_MAX), "unknown");
}
END_TEST

/* --- lists -------------------------------------------------------------- */

START_TEST(test_list_round_trip)
{
    uint8_t e200[200], e127[127], e128[128];
    for (size_t i = 0; i < sizeof(e200); i++)
        e200[i] = (uint8_t)(i * 13);
    memset(e127, 'q', sizeof(e127));
    memset(e128, 'r', sizeof(e128));
    const struct {
        const void *p;
        size_t len;
        size_t framed; /* varint + bytes */
    } elems[] = {
        {"a", 1, 2},      {"", 0, 1},       {e200, 200, 202}, {"hello", 5, 6},
        {e127, 127, 128}, {e128, 128, 130}, {"", 0, 1},
    };
    uint8_t list[1024];
    size_t total = 0;

    for (size_t i = 0; i < N_ELEMS(elems); i++) {
        ck_assert_uint_eq(sv_list_elem_size(elems[i].len), elems[i].framed);
        size_t n = sv_list_elem_put(list + total, elems[i].p, elems[i].len);
        ck_assert_uint_eq(n, elems[i].framed);
        total += n;
    }
    /* The 200-byte element is announced with a 2-byte varint (0xc8 0x01). */
    ck_assert_mem_eq(list + 2 + 1, "\xc8\x01", 2);

    size_t off = 0;
    for (size_t i = 0; i < N_ELEMS(elems); i++) {
        const uint8_t *e = NULL;
        size_t elen = 9999;
        ck_assert_int_eq(sv_list_next(list, total, &off, &e, &elen), 1);
        ck_assert_uint_eq(elen, elems[i].len);
        if (elen)
            ck_assert_mem_eq(e, elems[i].p, elen);
    }
    ck_assert_uint_eq(off, total);
    const uint8_t *e;
    size_t elen;
    ck_assert_int_eq(sv_list_next(list, total, &off, &e, &elen), 0);
    ck_assert_int_eq(sv_value_check_kind(SV_KIND_LIST, list, total), 0);
}
END_TEST

START_TEST(test_list_empty)
{
    size_t off = 0;
    const uint8_t *e;
    size_t elen;
    ck_assert_int_eq(sv_list_next((const uint8_t *)"", 0, &off, &e, &elen), 0);
    ck_assert_uint_eq(off, 0);
}
END_TEST

static const struct {
    const char *bytes;
    size_t len;
    int good_elems; /* whole elements before the bad one */
} bad_lists[] = {
    {"\005abc", 4, 0},                                   /* element runs past the end */
    {"\x80", 1, 0},                                      /* truncated varint */
    {"\001a\002b", 4, 1},                                /* last element one byte short */
    {"\0\001a\x80", 4, 2},                               /* dangling varint after two elements */
    {"\xc8\001abc", 5, 0},                               /* 200 announced, 3 present */
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, 0}, /* 2^64-1 announced */
};

START_TEST(test_list_corrupt)
{
    const uint8_t *p = (const uint8_t *)bad_lists[_i].bytes;
    size_t n = bad_lists[_i].len;
    size_t off = 0;
    const uint8_t *e;
    size_t elen;
    for (int i = 0; i < bad_lists[_i].good_elems; i++)
        ck_assert_int_eq(sv_list_next(p, n, &off, &e, &elen), 1);
    ck_assert_int_eq(sv_list_next(p, n, &off, &e, &elen), SV_ECORRUPT);
    ck_assert_int_eq(sv_value_check_kind(SV_KIND_LIST, p, n), SV_EINVAL);
}
END_TEST

/* --- kind validation ---------------------------------------------------- */

static const struct {
    int kind;
    const char *bytes;
    size_t len;
    int rc;
} kind_checks[] = {
    {SV_KIND_RAW, "", 0, 0},
    {SV_KIND_RAW, "\xff\x80\x00", 3, 0}, /* opaque: anything goes */
    {SV_KIND_COUNTER, "\0\0\0\0\0\0\0\0", 8, 0},
    {SV_KIND_COUNTER, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 0},
    {SV_KIND_COUNTER, "", 0, SV_EINVAL},
    {SV_KIND_COUNTER, "\0\0\0\0\0\0\0", 7, SV_EINVAL},
    {SV_KIND_COUNTER, "\0\0\0\0\0\0\0\0\0", 9, SV_EINVAL},
    {SV_KIND_LIST, "", 0, 0}, /* the empty list */
    {SV_KIND_LIST, "\x00", 1, 0},
    {SV_KIND_LIST, "\002ab\001c", 5, 0},
    {SV_KIND_LIST, "\002a", 2, SV_EINVAL},
    {SV_KIND_LIST, "\001a\x81", 3, SV_EINVAL},
    {SV_KIND_MAX, "", 0, SV_EINVAL},
    {7, "abc", 3, SV_EINVAL},
    {-1, "abc", 3, SV_EINVAL},
};

START_TEST(test_check_kind)
{
    int rc = sv_value_check_kind((enum sv_value_kind)kind_checks[_i].kind,
                                 (const uint8_t *)kind_checks[_i].bytes, kind_checks[_i].len);
    ck_assert_msg(rc == kind_checks[_i].rc, "case %d (kind %d, %zu bytes): got %d, want %d", _i,
                  kind_checks[_i].kind, kind_checks[_i].len, rc, kind_checks[_i].rc);
}
END_TEST

/* --- counters ----------------------------------------------------------- */

START_TEST(test_i64_round_trip)
{
    static const struct {
        int64_t v;
        const char *be;
    } cases[] = {
        {0, "\x00\x00\x00\x00\x00\x00\x00\x00"},
        {1, "\x00\x00\x00\x00\x00\x00\x00\x01"},
        {-1, "\xff\xff\xff\xff\xff\xff\xff\xff"},
        {-2, "\xff\xff\xff\xff\xff\xff\xff\xfe"},
        {256, "\x00\x00\x00\x00\x00\x00\x01\x00"},
        {INT64_MAX, "\x7f\xff\xff\xff\xff\xff\xff\xff"},
        {INT64_MIN, "\x80\x00\x00\x00\x00\x00\x00\x00"},
        {0x0102030405060708, "\x01\x02\x03\x04\x05\x06\x07\x08"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint8_t buf[SV_COUNTER_SIZE + 1];
        buf[SV_COUNTER_SIZE] = 0x5a;
        sv_i64_put(buf, cases[i].v);
        ck_assert_mem_eq(buf, cases[i].be, SV_COUNTER_SIZE);
        ck_assert_uint_eq(buf[SV_COUNTER_SIZE], 0x5a);
        ck_assert_int_eq(sv_i64_get(buf), cases[i].v);
        ck_assert_int_eq(sv_value_check_kind(SV_KIND_COUNTER, buf, SV_COUNTER_SIZE), 0);
    }
}
END_TEST

/* Timed lists: built, compacted when every element shares an expiry,
 * answered plain, trimmed, and refused when their framing is cut short. */
START_TEST(test_timed_list)
{
    struct sv_buf b = SV_BUF_INIT;
    struct sv_tlist_builder tb;
    ck_assert_int_eq(sv_tlist_begin(&tb, &b), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "a", 1, 100), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "", 0, 300), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "ccc", 3, 200), 0);
    ck_assert_uint_eq(sv_tlist_finish(&tb), 300); /* the latest */
    struct sv_value v;
    ck_assert_int_eq(sv_value_parse(b.data, b.len, &v), 0);
    ck_assert(v.timed);
    ck_assert_int_eq(v.kind, SV_KIND_LIST);
    ck_assert_uint_eq(v.expiry_ms, 300);
    ck_assert_uint_eq(v.len, 3 * 9 + 4);
    ck_assert_int_eq(sv_value_check(&v), 0);
    /* A header that disagrees with the elements, or no element: refused
     * (a restore must not plant them). */
    struct sv_value forged = v;
    forged.expiry_ms = 3600;
    ck_assert_int_eq(sv_value_check(&forged), SV_EINVAL);
    forged.expiry_ms = 0;
    ck_assert_int_eq(sv_value_check(&forged), SV_EINVAL);
    forged = v;
    forged.len = 0;
    forged.expiry_ms = 0;
    ck_assert_int_eq(sv_value_check(&forged), SV_EINVAL);
    /* Which elements are alive at 150: "" and "ccc". */
    struct sv_buf plain = SV_BUF_INIT;
    size_t dropped, left;
    ck_assert_int_eq(sv_tlist_plain(&v, 150, 0, &plain, &dropped), 0);
    ck_assert_uint_eq(dropped, 1);
    ck_assert_uint_eq(plain.len, 5);
    ck_assert_int_eq(memcmp(plain.data,
                            "\x00\x03"
                            "ccc",
                            5),
                     0);
    plain.len = 0;
    ck_assert_int_eq(sv_tlist_plain(&v, 150, 1, &plain, &dropped), 0); /* keep_expired */
    ck_assert_uint_eq(dropped, 0);
    ck_assert_int_eq(memcmp(plain.data,
                            "\x01"
                            "a\x00\x03"
                            "ccc",
                            7),
                     0);
    /* Trimmed at 250: only "" (300) is left, stored plain with its expiry. */
    struct sv_buf t = SV_BUF_INIT;
    ck_assert_int_eq(sv_tlist_trim(&v, 250, &t, &left, &dropped), 0);
    ck_assert_uint_eq(left, 1);
    ck_assert_uint_eq(dropped, 2);
    struct sv_value tv;
    ck_assert_int_eq(sv_value_parse(t.data, t.len, &tv), 0);
    ck_assert(!tv.timed);
    ck_assert_uint_eq(tv.expiry_ms, 300);
    ck_assert_uint_eq(tv.len, 1);
    ck_assert_int_eq(tv.data[0], 0);
    /* At 300 everything is gone: nothing written. */
    t.len = 0;
    ck_assert_int_eq(sv_tlist_trim(&v, 300, &t, &left, &dropped), 0);
    ck_assert_uint_eq(left, 0);
    ck_assert_uint_eq(dropped, 3);
    ck_assert_uint_eq(t.len, 0);
    /* An element with no expiry makes the entry's none. */
    b.len = 0;
    ck_assert_int_eq(sv_tlist_begin(&tb, &b), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "x", 1, 0), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "y", 1, 5), 0);
    ck_assert_uint_eq(sv_tlist_finish(&tb), 0);
    ck_assert_int_eq(sv_value_parse(b.data, b.len, &v), 0);
    ck_assert(v.timed);
    ck_assert_uint_eq(v.expiry_ms, 0);
    /* Cut short anywhere: refused. */
    for (size_t cut = 1; cut < v.len; cut++) {
        struct sv_value c = v;
        c.len = cut;
        ck_assert_msg(cut == 10 || sv_value_check(&c) == SV_EINVAL, "cut at %zu", cut);
        plain.len = 0;
        ck_assert(cut == 10 || sv_tlist_plain(&c, 0, 0, &plain, &dropped) == SV_ECORRUPT);
    }
    /* One expiry for all: compacted to a plain list in place. */
    b.len = 0;
    ck_assert_int_eq(sv_tlist_begin(&tb, &b), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "x", 1, 7), 0);
    ck_assert_int_eq(sv_tlist_add(&tb, "yz", 2, 7), 0);
    ck_assert_uint_eq(sv_tlist_finish(&tb), 7);
    ck_assert_int_eq(sv_value_parse(b.data, b.len, &v), 0);
    ck_assert(!v.timed);
    ck_assert_uint_eq(v.expiry_ms, 7);
    ck_assert_uint_eq(v.len, 5);
    ck_assert_int_eq(memcmp(v.data, "\x01x\x02yz", 5), 0);
    sv_buf_free(&b);
    sv_buf_free(&plain);
    sv_buf_free(&t);
}
END_TEST

Suite *sv_suite_value(void)
{
    Suite *s = suite_create("value");
    TCase *tc;

    tc = tcase_create("header");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_header_no_expiry, 0, SV_KIND_MAX);
    tcase_add_test(tc, test_header_with_expiry);
    tcase_add_test(tc, test_header_only);
    tcase_add_loop_test(tc, test_parse_rejects, 0, (int)N_ELEMS(bad_headers));
    tcase_add_test(tc, test_kind_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("list");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_list_round_trip);
    tcase_add_test(tc, test_list_empty);
    tcase_add_loop_test(tc, test_list_corrupt, 0, (int)N_ELEMS(bad_lists));
    tcase_add_test(tc, test_timed_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("kind");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_check_kind, 0, (int)N_ELEMS(kind_checks));
    tcase_add_test(tc, test_i64_round_trip);
    suite_add_tcase(s, tc);

    return s;
}
