/* Unit tests for the cache of logged keys (server/keycache.c): a hit is
 * exact, a slot's later key replaces the earlier one, long keys are never
 * cached, clear forgets everything. */
#include "keycache.h"
#include "suites.h"

#include <stdio.h>
#include <string.h>

static int has(const struct sv_keycache *kc, const char *k, size_t n)
{
    return sv_keycache_has(kc, k, n, sv_keycache_hash(k, n));
}

static void put(struct sv_keycache *kc, const char *k, size_t n)
{
    sv_keycache_put(kc, k, n, sv_keycache_hash(k, n));
}

START_TEST(test_hit_is_exact)
{
    struct sv_keycache kc;
    ck_assert_int_eq(sv_keycache_init(&kc, 1000), 0);
    ck_assert_uint_eq(kc.mask + 1, 512); /* rounded down to a power of two */
    ck_assert(!has(&kc, "alpha\0k1", 8));
    put(&kc, "alpha\0k1", 8);
    ck_assert(has(&kc, "alpha\0k1", 8));
    ck_assert(!has(&kc, "alpha\0k2", 8));
    ck_assert(!has(&kc, "alpha\0k1", 7)); /* a prefix is another key */
    /* The same hash with other bytes (a collision, forced): not a hit. */
    ck_assert(!sv_keycache_has(&kc, "alpha\0k9", 8, sv_keycache_hash("alpha\0k1", 8)));
    sv_keycache_clear(&kc);
    ck_assert(!has(&kc, "alpha\0k1", 8));
    sv_keycache_free(&kc);
}
END_TEST

START_TEST(test_slot_replaced_and_long_keys_not_cached)
{
    struct sv_keycache kc;
    ck_assert_int_eq(sv_keycache_init(&kc, 1), 0); /* one slot: every key shares it */
    put(&kc, "a\0x", 3);
    put(&kc, "b\0y", 3);
    ck_assert(!has(&kc, "a\0x", 3));
    ck_assert(has(&kc, "b\0y", 3));
    char big[SV_KEYCACHE_KEY_MAX + 1];
    memset(big, 'k', sizeof(big));
    put(&kc, big, sizeof(big));
    ck_assert(!has(&kc, big, sizeof(big)));
    ck_assert(has(&kc, "b\0y", 3)); /* left as it was */
    put(&kc, big, SV_KEYCACHE_KEY_MAX);
    ck_assert(has(&kc, big, SV_KEYCACHE_KEY_MAX));
    put(&kc, "", 0);
    ck_assert(!has(&kc, "", 0));
    sv_keycache_free(&kc);
    ck_assert(!has(&kc, "b\0y", 3)); /* a freed cache holds nothing */
}
END_TEST

START_TEST(test_many_keys_no_false_hit)
{
    struct sv_keycache kc;
    ck_assert_int_eq(sv_keycache_init(&kc, 64), 0);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        k[0] = 's';
        k[1] = 0;
        int n = 2 + snprintf(k + 2, sizeof(k) - 2, "key%d", i);
        put(&kc, k, (size_t)n);
        ck_assert(has(&kc, k, (size_t)n)); /* the last put is always there */
    }
    int hits = 0;
    k[0] = 's';
    k[1] = 0;
    for (int i = 5000; i < 10000; i++) {
        int n = 2 + snprintf(k + 2, sizeof(k) - 2, "key%d", i);
        hits += has(&kc, k, (size_t)n);
    }
    ck_assert_int_eq(hits, 0);
    sv_keycache_free(&kc);
}
END_TEST

Suite *sv_suite_keycache(void)
{
    Suite *s = suite_create("keycache");
    TCase *tc = tcase_create("keycache");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, test_hit_is_exact);
    tcase_add_test(tc, test_slot_replaced_and_long_keys_not_cached);
    tcase_add_test(tc, test_many_keys_no_false_hit);
    suite_add_tcase(s, tc);
    return s;
}
