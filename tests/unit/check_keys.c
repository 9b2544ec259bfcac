/* Unit tests for keyed-state addressing (common/sv_keys.c): the key-group
 * hash, state names, varints and the stored key layout. */
#include "suites.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- murmur3 ------------------------------------------------------------ */

/* Published MurmurHash3_x86_32 vectors, each re-checked against an
 * independent Python implementation. Lengths 1-3 exercise the tail; the
 * 0x21436587 rows pin little-endian block reads. The hash decides which key
 * group (and so which server partition) a key lives in, and clients compute
 * it too, so any drift here is a compatibility break. */
static const struct {
    const char *data;
    size_t len;
    uint32_t seed;
    uint32_t hash;
} mm3_vectors[] = {
    {"", 0, 0, 0},
    {"", 0, 1, 0x514E28B7u},
    {"", 0, 0xffffffffu, 0x81F16F39u},
    {"\0\0\0\0", 4, 0, 0x2362F9DEu},
    {"aaaa", 4, 0x9747b28cu, 0x5A97808Au},
    {"Hello, world!", 13, 0x9747b28cu, 0x24884CBAu},
    {"The quick brown fox jumps over the lazy dog", 43, 0x9747b28cu, 0x2FA826CDu},
    {"\xff\xff\xff\xff", 4, 0, 0x76293B50u},
    {"\x21\x43\x65\x87", 4, 0, 0xF55B516Bu},
    {"\x21\x43\x65\x87", 4, 0x5082EDEEu, 0x2362F9DEu},
    {"\x21\x43\x65", 3, 0, 0x7E4A8634u},
    {"\x21\x43", 2, 0, 0xA0F7B07Au},
    {"\x21", 1, 0, 0x72661CF4u},
    {"\0\0\0", 3, 0, 0x85F0B427u},
    {"\0\0", 2, 0, 0x30F4C306u},
    {"\0", 1, 0, 0x514E28B7u},
    {"aaa", 3, 0x9747b28cu, 0x283E0130u},
    {"aa", 2, 0x9747b28cu, 0x5D211726u},
    {"a", 1, 0x9747b28cu, 0x7FA09EA6u},
    {"abcd", 4, 0x9747b28cu, 0xF0478627u},
    {"abc", 3, 0x9747b28cu, 0xC84A62DDu},
    {"ab", 2, 0x9747b28cu, 0x74875592u},
    {"Hello, world!", 13, 0x12345678u, 0x4A498EC7u},
    {"Hello, world!", 13, 0, 0xC0363E43u},
    {"The quick brown fox jumps over the lazy dog", 43, 0, 0x2E4FF723u},
};

START_TEST(test_murmur3_vectors)
{
    uint32_t got = sv_murmur3_32(mm3_vectors[_i].data, mm3_vectors[_i].len, mm3_vectors[_i].seed);
    ck_assert_msg(got == mm3_vectors[_i].hash, "vector %d (len %zu, seed %#x): got %#x, want %#x",
                  _i, mm3_vectors[_i].len, (unsigned)mm3_vectors[_i].seed, (unsigned)got,
                  (unsigned)mm3_vectors[_i].hash);
}
END_TEST

/* The hash must not depend on the input's alignment. */
START_TEST(test_murmur3_unaligned)
{
    uint8_t buf[64];
    for (int i = 0; i < 64; i++)
        buf[i] = (uint8_t)i;
    ck_assert_uint_eq(sv_murmur3_32(buf + 1, 17, 0), 0xE4E97D6Eu);
    for (size_t off = 1; off < 4; off++) {
        uint8_t aligned[32];
        memcpy(aligned, buf + off, 17);
        ck_assert_uint_eq(sv_murmur3_32(buf + off, 17, 0), sv_murmur3_32(aligned, 17, 0));
    }
}
END_TEST

/* --- key groups --------------------------------------------------------- */

START_TEST(test_key_group_known)
{
    /* Pinned values (murmur3(key, 0) mod groups, from the Python reference). */
    ck_assert_uint_eq(sv_key_group_of("user-1", 6, 128), 99);
    ck_assert_uint_eq(sv_key_group_of("user-2", 6, 128), 75);
    ck_assert_uint_eq(sv_key_group_of("flink", 5, 128), 11);
    ck_assert_uint_eq(sv_key_group_of("a", 1, 128), 50);
    ck_assert_uint_eq(sv_key_group_of("", 0, 128), 0);
    ck_assert_uint_eq(sv_key_group_of("user-1", 6, 7), 0);
    ck_assert_uint_eq(sv_key_group_of("user-1", 6, 32768), 1891);
    ck_assert_uint_eq(sv_key_group_of("\x00\x01\x02", 3, 1000), 591);
}
END_TEST

START_TEST(test_key_group_range)
{
    static const uint32_t groups[] = {
        1, 2, 3, 7, 100, SV_KEY_GROUPS_DEFAULT, 1000, SV_KEY_GROUPS_MAX};
    for (size_t g = 0; g < N_ELEMS(groups); g++) {
        uint32_t kgs = groups[g];
        uint8_t *seen = calloc(kgs, 1);
        ck_assert_ptr_nonnull(seen);
        uint32_t distinct = 0;
        for (uint32_t i = 0; i < 4000; i++) {
            uint8_t key[8];
            for (int b = 0; b < 8; b++)
                key[b] = (uint8_t)(i >> (8 * (b % 4)) ^ b);
            size_t len = 1 + i % 8;
            uint32_t kg = sv_key_group_of(key, len, kgs);
            ck_assert_uint_lt(kg, kgs);
            ck_assert_uint_eq(kg, sv_murmur3_32(key, len, 0) % kgs);
            if (!seen[kg]) {
                seen[kg] = 1;
                distinct++;
            }
        }
        /* 4000 keys reach every one of up to 128 groups, and a fair share of
         * a larger count: the hash is not degenerate. */
        if (kgs <= 128)
            ck_assert_uint_eq(distinct, kgs);
        else
            ck_assert_uint_gt(distinct, (kgs < 4000 ? kgs : 4000) / 2);
        free(seen);
    }
}
END_TEST

/* --- state names -------------------------------------------------------- */

static const char name64[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";
static const char name65[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.";

static const struct {
    const char *name;
    size_t len;
    int valid;
} state_names[] = {
    {"a", 1, 1},     {"counts", 6, 1}, {"window.sum_v2-x", 15, 1},
    {"Z9", 2, 1},    {"...", 3, 1},    {name64, 64, 1},
    {name65, 65, 0}, {"", 0, 0},       {"a/b", 3, 0},
    {"/", 1, 0},     {"a b", 3, 0},    {" a", 2, 0},
    {"a\0b", 3, 0},  {"ab\0", 3, 0},   {"a:b", 3, 0},
    {"a\nb", 3, 0},  {"tab\t", 4, 0},  {"caf\xc3\xa9", 5, 0},
    {"a*", 2, 0},    {"ok/", 2, 1}, /* only len bytes count: the '/' is outside */
};

START_TEST(test_state_name_valid)
{
    int got = sv_state_name_valid(state_names[_i].name, state_names[_i].len);
    ck_assert_msg(got == state_names[_i].valid, "name %d (len %zu): got %d, want %d", _i,
                  state_names[_i].len, got, state_names[_i].valid);
}
END_TEST

START_TEST(test_state_name_table_sizes)
{
    ck_assert_uint_eq(strlen(name64), SV_STATE_NAME_MAX);
    ck_assert_uint_eq(strlen(name65), SV_STATE_NAME_MAX + 1);
}
END_TEST

/* --- varints ------------------------------------------------------------ */

static const struct {
    uint64_t v;
    size_t size;
} varints[] = {
    {0, 1},
    {1, 1},
    {127, 1},
    {128, 2},
    {255, 2},
    {16383, 2},
    {16384, 3},
    {2097151, 3},
    {2097152, 4},
    {UINT32_MAX, 5},
    {(UINT64_C(1) << 63) - 1, 9},
    {UINT64_C(1) << 63, 10},
    {UINT64_MAX, 10},
};

START_TEST(test_varint_round_trip)
{
    uint64_t v = varints[_i].v;
    size_t want = varints[_i].size;
    uint8_t buf[SV_VARINT_MAX + 4];
    memset(buf, 0xAA, sizeof(buf));

    size_t n = sv_varint_put(buf, v);
    ck_assert_uint_eq(n, want);
    ck_assert_uint_eq(sv_varint_size(v), want);
    ck_assert_uint_eq(buf[n], 0xAA); /* wrote exactly n bytes */
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_uint_ne(buf[i] & 0x80, 0);
    ck_assert_uint_eq(buf[n - 1] & 0x80, 0);

    uint64_t got = 0;
    ck_assert_int_eq(sv_varint_get(buf, n, &got), (int)n);
    ck_assert_uint_eq(got, v);
    /* Trailing bytes are not consumed. */
    got = 0;
    ck_assert_int_eq(sv_varint_get(buf, sizeof(buf), &got), (int)n);
    ck_assert_uint_eq(got, v);
    /* Every strict prefix is truncated. */
    for (size_t len = 0; len < n; len++)
        ck_assert_int_eq(sv_varint_get(buf, len, &got), -1);
}
END_TEST

START_TEST(test_varint_encodings)
{
    uint8_t buf[SV_VARINT_MAX];
    ck_assert_uint_eq(sv_varint_put(buf, 0), 1);
    ck_assert_uint_eq(buf[0], 0x00);
    ck_assert_uint_eq(sv_varint_put(buf, 127), 1);
    ck_assert_uint_eq(buf[0], 0x7f);
    ck_assert_uint_eq(sv_varint_put(buf, 128), 2);
    ck_assert_mem_eq(buf, "\x80\x01", 2);
    ck_assert_uint_eq(sv_varint_put(buf, 300), 2);
    ck_assert_mem_eq(buf, "\xac\x02", 2);
    ck_assert_uint_eq(sv_varint_put(buf, 16383), 2);
    ck_assert_mem_eq(buf, "\xff\x7f", 2);
    ck_assert_uint_eq(sv_varint_put(buf, 16384), 3);
    ck_assert_mem_eq(buf, "\x80\x80\x01", 3);
    ck_assert_uint_eq(sv_varint_put(buf, UINT64_MAX), 10);
    ck_assert_mem_eq(buf, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
}
END_TEST

/* Encodings that must be refused: truncated, longer than 10 bytes, or
 * carrying bits beyond 64. */
static const struct {
    const char *bytes;
    size_t len;
} bad_varints[] = {
    {"", 0},
    {"\x80", 1},
    {"\xff\xff", 2},
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9},
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81", 10},     /* 10 bytes, still continuing */
    {"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11}, /* 11 bytes */
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10},     /* 2^64 */
    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10},     /* far over 64 bits */
    {"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x40", 10},
};

START_TEST(test_varint_rejects)
{
    uint64_t v = 0x1234;
    ck_assert_int_eq(sv_varint_get((const uint8_t *)bad_varints[_i].bytes, bad_varints[_i].len, &v),
                     -1);
}
END_TEST

/* --- stored keys -------------------------------------------------------- */

struct skey_case {
    uint32_t kg;
    const char *key;
    size_t key_len;
    const char *ns;
    size_t ns_len;
};

static char key200[200];

static const struct skey_case skey_cases[] = {
    {0, "k", 1, "", 0},
    {3, "user-1", 6, "window-17", 9},
    {127, "a\0b", 3, "\0", 1},
    {255, "x", 1, "ns", 2},
    {256, "x", 1, "ns", 2},
    {SV_KEY_GROUPS_MAX - 1, "key", 3, "namespace", 9},
    {42, key200, sizeof(key200), "n", 1}, /* key length needs a 2-byte varint */
    {42, key200, 127, key200, 200},
    {42, key200, 128, "", 0},
};

START_TEST(test_skey_round_trip)
{
    const struct skey_case *c = &skey_cases[_i];
    memset(key200, 'K', sizeof(key200));
    key200[0] = 0;
    key200[199] = (char)0xff;

    size_t size = sv_skey_size(c->key_len, c->ns_len);
    ck_assert_uint_eq(size, 2 + sv_varint_size(c->key_len) + c->key_len + c->ns_len);
    uint8_t *buf = malloc(size + 1);
    ck_assert_ptr_nonnull(buf);
    buf[size] = 0x5a;
    ck_assert_uint_eq(sv_skey_encode(buf, c->kg, c->key, c->key_len, c->ns, c->ns_len), size);
    ck_assert_uint_eq(buf[size], 0x5a);
    /* Key group first, big-endian. */
    ck_assert_uint_eq(buf[0], c->kg >> 8);
    ck_assert_uint_eq(buf[1], c->kg & 0xff);

    struct sv_skey d;
    ck_assert_int_eq(sv_skey_decode(buf, size, &d), 0);
    ck_assert_uint_eq(d.kg, c->kg);
    ck_assert_uint_eq(d.key_len, c->key_len);
    ck_assert_mem_eq(d.key, c->key, c->key_len);
    ck_assert_uint_eq(d.ns_len, c->ns_len);
    if (c->ns_len)
        ck_assert_mem_eq(d.ns, c->ns, c->ns_len);
    /* Borrowed pointers into the stored key. */
    ck_assert_ptr_eq(d.key, buf + 2 + sv_varint_size(c->key_len));
    ck_assert_ptr_eq(d.ns, d.key + d.key_len);
    ck_assert_ptr_eq(d.ns + d.ns_len, buf + size);
    free(buf);
}
END_TEST

/* Every namespace of a key starts with that key's prefix, and the prefix of
 * one key never matches a stored key of another: a prefix scan (Flink's
 * clear() of one key) touches exactly that key. */
START_TEST(test_skey_prefix)
{
    static const char *nss[] = {"", "a", "window-1", "window-2", "\xff\xff"};
    uint8_t prefix[64], stored[128];

    size_t plen = sv_skey_prefix(prefix, 9, "ab", 2);
    ck_assert_uint_eq(plen, sv_skey_size(2, 0));
    ck_assert_mem_eq(prefix, "\0\x09\002ab", 5);
    for (size_t i = 0; i < N_ELEMS(nss); i++) {
        size_t nlen = strlen(nss[i]);
        size_t n = sv_skey_encode(stored, 9, "ab", 2, nss[i], nlen);
        ck_assert_uint_eq(n, plen + nlen);
        ck_assert_mem_eq(stored, prefix, plen);
        ck_assert_mem_eq(stored + plen, nss[i], nlen);
    }

    /* Keys that share bytes with "ab" but are different keys. */
    static const struct {
        uint32_t kg;
        const char *key, *ns;
    } others[] = {
        {9, "a", "b"},  {9, "abc", ""}, {9, "abc", "x"},
        {9, "a", "bc"}, {8, "ab", ""},  {10, "ab", ""},
    };
    for (size_t i = 0; i < N_ELEMS(others); i++) {
        size_t n = sv_skey_encode(stored, others[i].kg, others[i].key, strlen(others[i].key),
                                  others[i].ns, strlen(others[i].ns));
        ck_assert_msg(n < plen || memcmp(stored, prefix, plen) != 0,
                      "prefix of \"ab\" matches stored key %zu", i);
    }

    /* An empty namespace's stored key is the prefix itself. */
    size_t n = sv_skey_encode(stored, 9, "ab", 2, NULL, 0);
    ck_assert_uint_eq(n, plen);
    ck_assert_mem_eq(stored, prefix, plen);
}
END_TEST

struct enc {
    uint8_t b[48];
    size_t n;
    uint32_t kg;
    uint32_t key_id;
};

static int enc_cmp(const void *a, const void *b)
{
    const struct enc *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->b, y->b, n);
    if (c)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* In LMDB's byte order, stored keys sort by key group first (so one group is
 * one range, kg 255 before kg 256), and all namespaces of a key are adjacent. */
START_TEST(test_skey_ordering)
{
    enum { NKEYS = 40, NNS = 5, N = 4 * NKEYS * NNS };
    static const uint32_t kgs[4] = {4, 3, 256, 255};
    struct enc *e = calloc(N, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    size_t m = 0;
    for (uint32_t g = 0; g < 4; g++)
        for (uint32_t k = 0; k < NKEYS; k++)
            for (uint32_t s = 0; s < NNS; s++) {
                /* Keys of varied length and content, so that a layout that put
                 * key bytes before the key group would interleave groups. */
                char key[16], ns[8];
                size_t klen = 1 + (k * 7) % 12;
                for (size_t i = 0; i < klen; i++)
                    key[i] = (char)(k * 31 + i * 3 + 1);
                size_t nlen = s;
                memset(ns, (int)('a' + s), nlen);
                e[m].n = sv_skey_encode(e[m].b, kgs[g], key, klen, ns, nlen);
                e[m].kg = kgs[g];
                e[m].key_id = g * NKEYS + k;
                m++;
            }
    qsort(e, N, sizeof(*e), enc_cmp);

    for (size_t i = 1; i < N; i++)
        ck_assert_msg(e[i - 1].kg <= e[i].kg, "kg %u sorts after kg %u", (unsigned)e[i - 1].kg,
                      (unsigned)e[i].kg);
    ck_assert_uint_eq(e[0].kg, 3);
    ck_assert_uint_eq(e[N - 1].kg, 256);
    /* Each key's namespaces form one run. */
    uint8_t *done = calloc(4 * NKEYS, 1);
    ck_assert_ptr_nonnull(done);
    for (size_t i = 0; i < N;) {
        size_t j = i;
        while (j < N && e[j].key_id == e[i].key_id)
            j++;
        ck_assert_uint_eq(j - i, NNS);
        ck_assert_msg(!done[e[i].key_id], "key %u is split", (unsigned)e[i].key_id);
        done[e[i].key_id] = 1;
        i = j;
    }
    free(done);
    free(e);
}
END_TEST

/* Bytes that are not a stored key. */
static const struct {
    const char *bytes;
    size_t len;
} bad_skeys[] = {
    {"", 0},
    {"\x00", 1},
    {"\x00\x03", 2},                                         /* too short for any key */
    {"\x00\x03\x00", 3},                                     /* zero key length */
    {"\x00\x03\x00ns", 5},                                   /* zero key length with a namespace */
    {"\0\x03\005ab", 5},                                     /* key length past the end */
    {"\0\x03\002a", 4},                                      /* one byte short */
    {"\x00\x03\x80", 3},                                     /* truncated varint */
    {"\0\x03\x80\001abc", 7},                                /* 128 claimed, 3 present */
    {"\0\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\001a", 13}, /* 2^64-1 */
    {"\x00\x03\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 13}, /* over-long */
};

START_TEST(test_skey_decode_rejects)
{
    struct sv_skey d;
    ck_assert_int_eq(sv_skey_decode((const uint8_t *)bad_skeys[_i].bytes, bad_skeys[_i].len, &d),
                     SV_ECORRUPT);
}
END_TEST

START_TEST(test_skey_decode_minimal)
{
    struct sv_skey d;
    static const uint8_t p[] = {0x01, 0x02, 0x01, 'k'};
    ck_assert_int_eq(sv_skey_decode(p, sizeof(p), &d), 0);
    ck_assert_uint_eq(d.kg, 0x0102);
    ck_assert_uint_eq(d.key_len, 1);
    ck_assert_uint_eq(d.key[0], 'k');
    ck_assert_uint_eq(d.ns_len, 0);
}
END_TEST

Suite *sv_suite_keys(void)
{
    Suite *s = suite_create("keys");
    TCase *tc;

    tc = tcase_create("murmur3");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_murmur3_vectors, 0, (int)N_ELEMS(mm3_vectors));
    tcase_add_test(tc, test_murmur3_unaligned);
    suite_add_tcase(s, tc);

    tc = tcase_create("key_group");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_key_group_known);
    tcase_add_test(tc, test_key_group_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("state_name");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_state_name_valid, 0, (int)N_ELEMS(state_names));
    tcase_add_test(tc, test_state_name_table_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("varint");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_varint_round_trip, 0, (int)N_ELEMS(varints));
    tcase_add_test(tc, test_varint_encodings);
    tcase_add_loop_test(tc, test_varint_rejects, 0, (int)N_ELEMS(bad_varints));
    suite_add_tcase(s, tc);

    tc = tcase_create("skey");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_loop_test(tc, test_skey_round_trip, 0, (int)N_ELEMS(skey_cases));
    tcase_add_test(tc, test_skey_prefix);
    tcase_add_test(tc, test_skey_ordering);
    tcase_add_loop_test(tc, test_skey_decode_rejects, 0, (int)N_ELEMS(bad_skeys));
    tcase_add_test(tc, test_skey_decode_minimal);
    suite_add_tcase(s, tc);

    return s;
}
