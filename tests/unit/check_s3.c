/* io/sv_s3 without a store: the bounded XML scanner on hostile answers, the
 * s3:// URL parser, and option checks. (tests/s3 runs it against a store.) */
#include "suites.h"
#include "sv_error.h"
#include "sv_s3.h"

#include <check.h>
#include <string.h>

START_TEST(xml_text_takes_elements_in_order_and_decodes_entities)
{
    const char *x = "<R><Key>a&amp;b &lt;c&gt; &#47;&#x41;</Key><Key>second</Key></R>";
    size_t pos = 0;
    char out[64];
    ck_assert_int_eq(sv_s3_xml_text(x, strlen(x), &pos, "Key", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "a&b <c> /A");
    ck_assert_int_eq(sv_s3_xml_text(x, strlen(x), &pos, "Key", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "second");
    ck_assert_int_eq(sv_s3_xml_text(x, strlen(x), &pos, "Key", out, sizeof(out)), SV_ENOTFOUND);
}
END_TEST

/* Every one of these is refused, never read past its end or its bound. */
START_TEST(xml_text_refuses_hostile_answers)
{
    static const char *const bad[] = {
        "<Key>never closed",              /* no end tag */
        "<Key>a<b>c</b></Key>",           /* markup inside text */
        "<Key>&unknown;</Key>",           /* an entity we do not know */
        "<Key>&#0;</Key>",                /* NUL */
        "<Key>&#x110000;</Key>",          /* out of range */
        "<Key>&#65</Key>",                /* unterminated */
        "<Key>0123456789abcdefXYZ</Key>", /* longer than the buffer */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[16];
        size_t pos = 0;
        ck_assert_msg(sv_s3_xml_text(bad[i], strlen(bad[i]), &pos, "Key", out, sizeof(out)) ==
                          SV_ECORRUPT,
                      "accepted: %s", bad[i]);
    }
    /* A length that cuts the element is an unterminated one. */
    const char *x = "<Key>abc</Key>";
    char out[16];
    size_t pos = 0;
    ck_assert_int_eq(sv_s3_xml_text(x, 10, &pos, "Key", out, sizeof(out)), SV_ECORRUPT);
}
END_TEST

START_TEST(s3_urls_are_parsed_and_checked)
{
    char b[64], p[256];
    ck_assert_int_eq(sv_s3_parse_url("s3://my-bucket/job/w0", b, sizeof(b), p, sizeof(p)), 0);
    ck_assert_str_eq(b, "my-bucket");
    ck_assert_str_eq(p, "job/w0");
    ck_assert_int_eq(sv_s3_parse_url("s3://my.bucket", b, sizeof(b), p, sizeof(p)), 0);
    ck_assert_str_eq(p, "");
    static const char *const bad[] = {
        "http://b/x",     "s3://",        "s3://ab/x",   "s3://Upper/x",
        "s3://b_ucket/x", "s3://bkt/x/",  "s3://bkt//x", "s3://bkt/./x",
        "s3://bkt/x/..",  "s3://bkt/a b", "s3://-bkt/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sv_s3_parse_url(bad[i], b, sizeof(b), p, sizeof(p)) == SV_EINVAL,
                      "accepted: %s", bad[i]);
}
END_TEST

START_TEST(client_options_are_checked)
{
    struct sv_s3_options o = {.endpoint = "http://127.0.0.1:1",
                              .region = "us-east-1",
                              .bucket = "bkt",
                              .access_key = "a",
                              .secret_key = "s",
                              .part_size = 5u << 20,
                              .concurrency = 2};
    struct sv_s3 *s;
    char err[256];
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), 0);
    sv_s3_free(s);
    o.part_size = 1u << 20;
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), SV_EINVAL);
    ck_assert(strstr(err, "part size"));
    o.part_size = 5u << 20;
    o.max_parts = 10001;
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), SV_EINVAL);
    ck_assert(strstr(err, "part count"));
    o.max_parts = 0;
    o.multipart_threshold = (5ull << 30) + 1;
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), SV_EINVAL);
    ck_assert(strstr(err, "threshold"));
    o.multipart_threshold = 0;
    o.endpoint = "ftp://x";
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), SV_EINVAL);
    o.endpoint = "http://127.0.0.1:1";
    o.secret_key = "";
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), SV_EINVAL);
    /* Nothing listens there: unavailable, with the reason, and no hang. */
    o.secret_key = "s";
    ck_assert_int_eq(sv_s3_new(&o, &s, err, sizeof(err)), 0);
    uint64_t size, x;
    int has;
    ck_assert_int_eq(sv_s3_head(s, "k", &size, &x, &has, err, sizeof(err)), SV_EUNAVAIL);
    ck_assert(strstr(err, "HEAD bkt/k"));
    sv_s3_free(s);
}
END_TEST

START_TEST(part_plans_keep_within_the_store_limits)
{
    const uint64_t mib = 1ull << 20, gib = 1ull << 30;
    uint64_t ps = 0;
    unsigned n = 0;
    ck_assert_int_eq(sv_s3_part_plan(13 * mib, 5 * mib, 10000, &ps, &n), 0);
    ck_assert_uint_eq(ps, 5 * mib);
    ck_assert_uint_eq(n, 3);
    /* At most 2 parts: 6.5 MiB each, rounded up to whole MiB. */
    ck_assert_int_eq(sv_s3_part_plan(13 * mib, 5 * mib, 2, &ps, &n), 0);
    ck_assert_uint_eq(ps, 7 * mib);
    ck_assert_uint_eq(n, 2);
    /* 100 GiB through Swift's s3api (1000 parts) with 16 MiB parts. */
    ck_assert_int_eq(sv_s3_part_plan(100 * gib, 16 * mib, 1000, &ps, &n), 0);
    ck_assert_uint_eq(ps, 103 * mib);
    ck_assert_uint_eq(n, 995);
    /* Exactly S3's 10000 parts, then a byte more. */
    ck_assert_int_eq(sv_s3_part_plan(50000 * mib, 5 * mib, 10000, &ps, &n), 0);
    ck_assert_uint_eq(ps, 5 * mib);
    ck_assert_uint_eq(n, 10000);
    ck_assert_int_eq(sv_s3_part_plan(50000 * mib + 1, 5 * mib, 10000, &ps, &n), 0);
    ck_assert_uint_eq(ps, 6 * mib);
    ck_assert_uint_le(n, 10000);
    /* S3's largest object fits; beyond it, or parts over 5 GiB, do not. */
    ck_assert_int_eq(sv_s3_part_plan(5 * 1024 * gib, 16 * mib, 10000, &ps, &n), 0);
    ck_assert_uint_le(ps, 5 * gib);
    ck_assert_uint_le(n, 10000);
    ck_assert_int_eq(sv_s3_part_plan(5 * 1024 * gib + 1, 16 * mib, 10000, &ps, &n), SV_ETOOLARGE);
    ck_assert_int_eq(sv_s3_part_plan(5 * gib, 5 * mib, 1, &ps, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(sv_s3_part_plan(5 * gib + 1, 5 * mib, 1, &ps, &n), SV_ETOOLARGE);
    ck_assert_int_eq(sv_s3_part_plan(0, 5 * mib, 10000, &ps, &n), 0);
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(crc32c_is_castagnolis)
{
    /* RFC 3720's B.4 vectors, and the usual check value. */
    unsigned char z[32] = {0}, ff[32];
    memset(ff, 0xff, sizeof(ff));
    ck_assert_uint_eq(sv_s3_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(sv_s3_crc32c(0, z, sizeof(z)), 0x8A9136AAu);
    ck_assert_uint_eq(sv_s3_crc32c(0, ff, sizeof(ff)), 0x62A8AB43u);
    /* In steps, at any alignment, as in one go. */
    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint32_t whole = sv_s3_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= 17; cut++)
        ck_assert_uint_eq(sv_s3_crc32c(sv_s3_crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut),
                          whole);
    ck_assert_uint_eq(sv_s3_crc32c(0, buf, 0), 0);
}
END_TEST

Suite *sv_suite_s3(void)
{
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("s3");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, xml_text_takes_elements_in_order_and_decodes_entities);
    tcase_add_test(tc, xml_text_refuses_hostile_answers);
    tcase_add_test(tc, s3_urls_are_parsed_and_checked);
    tcase_add_test(tc, client_options_are_checked);
    tcase_add_test(tc, part_plans_keep_within_the_store_limits);
    tcase_add_test(tc, crc32c_is_castagnolis);
    suite_add_tcase(s, tc);
    return s;
}
