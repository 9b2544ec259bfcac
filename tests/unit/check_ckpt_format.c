/* The checkpoint format module (common/sv_ckpt_format.c) on buffers: bytes
 * in, structs or SV_ECORRUPT with the part named out, for each parser, one
 * damage at a time. No files: that is check_ckpt.c. */
#include "craft_ckpt.h"
#include "suites.h"
#include "sv_be.h"
#include "sv_ckpt_format.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- an image: one state "s", key groups 1 and 2, one block each --------- */

#define KGS 8
#define IMG_MAX 1024

static uint8_t img[IMG_MAX];
static size_t img_len;
static struct sv_ckpt_footer img_footer;
static struct sv_ckpt_state img_state;
static struct sv_ckpt_manifest img_m;

/* Appends a block of entries k0.., in key group kg, value "vv". */
static void add_block(uint32_t kg, unsigned n, enum sv_ckpt_compression c, uint8_t *index,
                      size_t *nidx)
{
    uint8_t raw[512], sk[16];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        char key[8] = {'k', (char)('0' + i), 0};
        size_t skl = sv_skey_encode(sk, kg, key, 2, NULL, 0);
        len += sv_ckpt_entry_put(raw + len, sk, skl, (const uint8_t *)"vvvvvvvvvvvvvvvv", 16);
        img_state.raw_bytes += skl + 16;
    }
    struct sv_ckpt_block_info x = {.offset = img_len, .kg = kg, .entries = n, .raw = (uint32_t)len};
    struct sv_ckpt_block_encoder e;
    ck_assert_int_eq(sv_ckpt_block_encoder_init(&e, c, 1), 0);
    const uint8_t *payload;
    ck_assert_int_eq(sv_ckpt_block_encode(&e, &x, raw, img + img_len, &payload, NULL, 0), 0);
    memcpy(img + img_len + SV_CKPT_BLOCK_HEADER_SIZE, payload, x.stored);
    sv_ckpt_block_encoder_free(&e);
    img_len += SV_CKPT_BLOCK_HEADER_SIZE + x.stored;
    sv_ckpt_index_put(index + *nidx * SV_CKPT_INDEX_RECORD_SIZE, &x);
    (*nidx)++;
    img_state.entries += n;
    img_state.blocks++;
}

static void make_image(enum sv_ckpt_compression c)
{
    uint8_t index[2 * SV_CKPT_INDEX_RECORD_SIZE];
    size_t nidx = 0;
    memset(&img_state, 0, sizeof(img_state));
    strcpy(img_state.name, "s");
    sv_ckpt_data_header_put(img, SV_CKPT_FORMAT_V1);
    img_len = SV_CKPT_DATA_HEADER_SIZE;
    add_block(1, 3, c, index, &nidx);
    add_block(2, 12, c, index, &nidx);
    img_state.kg_min = 1;
    img_state.kg_max = 2;
    img_footer =
        (struct sv_ckpt_footer){img_len, sizeof(index), 2, XXH3_64bits(index, sizeof(index))};
    memcpy(img + img_len, index, sizeof(index));
    img_len += sizeof(index);
    sv_ckpt_footer_put(img + img_len, &img_footer);
    img_len += SV_CKPT_FOOTER_SIZE;
    craft_manifest(&img_m, &img_state, KGS, img, img_len, c);
    img_m.checkpoint_id = 7;
}

static void expect_corrupt(int rc, const char *why, const char *want, const char *what)
{
    ck_assert_msg(rc == SV_ECORRUPT, "%s: rc %d (%s)", what, rc, why);
    ck_assert_msg(strstr(why, want) != NULL, "%s: \"%s\" lacks \"%s\"", what, why, want);
}

/* --- MANIFEST ------------------------------------------------------------ */

START_TEST(manifest_round_trip)
{
    make_image(SV_CKPT_COMPRESS_ZSTD);
    uint8_t *p;
    size_t n;
    ck_assert_int_eq(sv_ckpt_manifest_encode(&img_m, &p, &n), 0);
    struct sv_ckpt_manifest m;
    char why[256] = "";
    ck_assert_msg(sv_ckpt_manifest_decode(p, n, &m, why, sizeof(why)) == 0, "%s", why);
    ck_assert_uint_eq(m.checkpoint_id, 7);
    ck_assert_uint_eq(m.key_groups, KGS);
    ck_assert_int_eq(m.compression, SV_CKPT_COMPRESS_ZSTD);
    ck_assert_uint_eq(m.data_xxh3, img_m.data_xxh3);
    ck_assert_uint_eq(m.n_states, 1);
    ck_assert_str_eq(m.states[0].name, "s");
    ck_assert_uint_eq(m.states[0].entries, 15);
    ck_assert_uint_eq(m.states[0].raw_bytes, img_state.raw_bytes);
    sv_ckpt_manifest_free(&m);
    free(p);
}
END_TEST

/* Each damage: a field changed before encoding (body) or a byte of the
 * image after it (frame), and the reason expected. */
static const struct {
    const char *name, *want;
} manifest_damage[] = {
    {"short", "too short"},
    {"magic", "bad magic"},
    {"length", "length field"},
    {"checksum", "checksum mismatch"},
    {"body", "not a CheckpointManifest"},
    {"version", "format version 3"},
    {"compression", "unknown compression"},
    {"range", "not a valid range"},
    {"state name", "invalid name"},
    {"state counts", "inconsistent counts"},
    {"totals", "totals do not match"},
};

START_TEST(manifest_damage_is_named)
{
    make_image(SV_CKPT_COMPRESS_NONE);
    struct sv_ckpt_manifest m = img_m;
    struct sv_ckpt_state st = img_state;
    m.states = &st;
    switch (_i) {
    case 5:
        m.format_version = 3;
        break;
    case 7:
        m.kg_first = 5, m.kg_last = 4;
        break;
    case 8:
        strcpy(st.name, "a/b");
        break;
    case 9:
        st.blocks = 0;
        break;
    case 10:
        m.entries++;
        break;
    }
    uint8_t *p;
    size_t n;
    ck_assert_int_eq(sv_ckpt_manifest_encode(&m, &p, &n), 0);
    size_t body;
    uint8_t *b = (uint8_t *)sv_ckpt_manifest_body(p, n, &body);
    ck_assert_ptr_nonnull(b);
    switch (_i) {
    case 0:
        n = SV_CKPT_MANIFEST_OVERHEAD - 1;
        break;
    case 1:
        p[0] ^= 1;
        break;
    case 2:
        p[11] ^= 1;
        break;
    case 3:
        p[n - 1] ^= 1;
        break;
    case 4:
        memset(b, 0xff, body), sv_ckpt_manifest_seal(p, n);
        break;
    case 6: { /* "none" -> "nonf" in the body */
        size_t at = 0;
        while (at + 4 <= body && memcmp(b + at, "none", 4) != 0)
            at++;
        ck_assert_uint_le(at + 4, body);
        b[at + 3] = 'f';
        sv_ckpt_manifest_seal(p, n);
        break;
    }
    }
    struct sv_ckpt_manifest out;
    char why[256] = "";
    int rc = sv_ckpt_manifest_decode(p, n, &out, why, sizeof(why));
    expect_corrupt(rc, why, manifest_damage[_i].want, manifest_damage[_i].name);
    ck_assert_msg(strncmp(why, "MANIFEST: ", 10) == 0, "%s", why);
    ck_assert_ptr_null(out.states);
    free(p);
}
END_TEST

/* --- data header, footer, index ------------------------------------------ */

START_TEST(data_header_checks)
{
    uint8_t h[SV_CKPT_DATA_HEADER_SIZE];
    char why[128];
    sv_ckpt_data_header_put(h, SV_CKPT_FORMAT_V1);
    ck_assert_int_eq(sv_ckpt_data_header_check(h, SV_CKPT_FORMAT_V1, why, sizeof(why)), 0);
    static const struct {
        size_t at;
        const char *want;
    } d[] = {{0, "bad magic"}, {11, "format version"}, {15, "unknown flags"}};
    for (size_t i = 0; i < N_ELEMS(d); i++) {
        sv_ckpt_data_header_put(h, SV_CKPT_FORMAT_V1);
        h[d[i].at] ^= 1;
        expect_corrupt(sv_ckpt_data_header_check(h, SV_CKPT_FORMAT_V1, why, sizeof(why)), why,
                       d[i].want, d[i].want);
    }
}
END_TEST

START_TEST(footer_checks)
{
    make_image(SV_CKPT_COMPRESS_NONE);
    const uint8_t *fp = img + img_len - SV_CKPT_FOOTER_SIZE;
    struct sv_ckpt_footer f;
    char why[256];
    ck_assert_int_eq(sv_ckpt_footer_decode(fp, img_len, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.index_offset, img_footer.index_offset);
    ck_assert_uint_eq(f.index_count, 2);
    ck_assert_uint_eq(f.index_xxh3, img_footer.index_xxh3);
    static const struct {
        int field; /* 0 offset, 1 length, 2 count, 3 magic */
        uint64_t value;
        const char *want;
    } d[] = {
        {0, 8, "does not end where"}, {0, 1000, "does not end where"},     {1, 96, "does not fit"},
        {2, 3, "does not fit"},       {2, UINT64_MAX / 4, "does not fit"}, {3, 0, "bad magic"},
    };
    for (size_t i = 0; i < N_ELEMS(d); i++) {
        struct sv_ckpt_footer g = img_footer;
        uint8_t b[SV_CKPT_FOOTER_SIZE];
        if (d[i].field == 0)
            g.index_offset = d[i].value;
        else if (d[i].field == 1)
            g.index_len = d[i].value;
        else if (d[i].field == 2)
            g.index_count = d[i].value;
        sv_ckpt_footer_put(b, &g);
        if (d[i].field == 3)
            b[SV_CKPT_FOOTER_SIZE - 1] ^= 1;
        expect_corrupt(sv_ckpt_footer_decode(b, img_len, &f, why, sizeof(why)), why, d[i].want,
                       d[i].want);
    }
    expect_corrupt(sv_ckpt_footer_decode(fp, 55, &f, why, sizeof(why)), why, "has none", "short");
}
END_TEST

static const struct {
    const char *want;
} index_damage[] = {
    {"reserved bytes"},   {"state out of range"},      {"key group outside"},
    {"not sorted"},       {"offset is not"},           {"entry count or raw length"},
    {"bad compression"},  {"block runs past"},         {"differ from the MANIFEST"},
    {"blocks, MANIFEST"}, {"checksum does not match"},
};

START_TEST(index_decode_checks)
{
    make_image(SV_CKPT_COMPRESS_NONE);
    uint8_t *ip = img + img_footer.index_offset;
    struct sv_ckpt_block_info *idx;
    char why[256] = "";
    ck_assert_msg(sv_ckpt_index_decode(ip, &img_footer, &img_m, &idx, why, sizeof(why)) == 0, "%s",
                  why);
    ck_assert_uint_eq(idx[0].offset, SV_CKPT_DATA_HEADER_SIZE);
    ck_assert_uint_eq(idx[0].kg, 1);
    ck_assert_uint_eq(idx[0].entries, 3);
    ck_assert_uint_eq(idx[1].kg, 2);
    ck_assert_uint_eq(idx[1].entries, 12);
    ck_assert_uint_eq(idx[1].offset, idx[0].offset + SV_CKPT_BLOCK_HEADER_SIZE + idx[0].stored);
    free(idx);

    for (size_t i = 0; i < N_ELEMS(index_damage); i++) {
        uint8_t rec[2][SV_CKPT_INDEX_RECORD_SIZE];
        memcpy(rec, ip, sizeof(rec));
        struct sv_ckpt_footer f = img_footer;
        struct sv_ckpt_manifest m = img_m;
        uint8_t *r1 = rec[1];
        switch (i) {
        case 0:
            r1[30] = 1;
            break;
        case 1:
            sv_be32_put(r1, 1);
            break;
        case 2:
            sv_be32_put(r1 + 4, KGS);
            break;
        case 3:
            sv_be32_put(r1 + 4, 0);
            break;
        case 4:
            sv_be64_put(r1 + 8, sv_be64_get(r1 + 8) + 1);
            break;
        case 5:
            sv_be32_put(r1 + 24, sv_be32_get(r1 + 20) / 5 + 1);
            break;
        case 6:
            r1[28] = 2;
            break;
        case 7: /* stored = raw, both past the index */
            sv_be32_put(r1 + 16, 4000), sv_be32_put(r1 + 20, 4000);
            break;
        case 8:
            sv_be32_put(r1 + 24, 13);
            break;
        case 9:
            m.blocks = 3;
            break;
        }
        if (i != 10)
            f.index_xxh3 = XXH3_64bits(rec, sizeof(rec));
        else
            r1[0] ^= 1;
        int rc = sv_ckpt_index_decode(&rec[0][0], &f, &m, &idx, why, sizeof(why));
        expect_corrupt(rc, why, index_damage[i].want, index_damage[i].want);
        ck_assert_ptr_null(idx);
    }
}
END_TEST

/* --- blocks and entries -------------------------------------------------- */

/* Every block of the image decodes and its entries check; then one damage
 * at a time is named. */
START_TEST(blocks_decode_and_damage_is_named)
{
    make_image(_i ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE);
    struct sv_ckpt_block_info *idx;
    char why[256] = "";
    ck_assert_int_eq(
        sv_ckpt_index_decode(img + img_footer.index_offset, &img_footer, &img_m, &idx, NULL, 0), 0);
    ck_assert_int_eq(idx[1].comp, _i ? 1 : 0); /* 12 alike entries: zstd shrinks them */
    struct sv_ckpt_block_decoder d = {SV_BUF_INIT, NULL};
    struct sv_buf prev = SV_BUF_INIT;
    uint64_t kv = 0, bytes;
    for (int b = 0; b < 2; b++) {
        const uint8_t *raw;
        ck_assert_msg(
            sv_ckpt_block_decode(&d, &idx[b], img + idx[b].offset, &raw, why, sizeof(why)) == 0,
            "%s", why);
        ck_assert_msg(sv_ckpt_entries_check(raw, &idx[b], &prev, &bytes, why, sizeof(why)) == 0,
                      "%s", why);
        kv += bytes;
    }
    ck_assert_uint_eq(kv, img_state.raw_bytes);

    static const struct {
        size_t at;
        const char *want;
    } hd[] = {{0, "bad magic"}, {5, "header: checksum"}, {50, "payload checksum"}};
    for (size_t i = 0; i < N_ELEMS(hd); i++) {
        uint8_t copy[IMG_MAX];
        memcpy(copy, img, img_len);
        copy[idx[1].offset + hd[i].at] ^= 1;
        const uint8_t *raw;
        int rc = sv_ckpt_block_decode(&d, &idx[1], copy + idx[1].offset, &raw, why, sizeof(why));
        expect_corrupt(rc, why, hd[i].want, hd[i].want);
        ck_assert_msg(strstr(why, "block at offset "), "%s", why);
    }
    /* A header that checks but says something else than the index. */
    struct sv_ckpt_block_info other = idx[1];
    other.entries++;
    const uint8_t *raw;
    int rc = sv_ckpt_block_decode(&d, &other, img + idx[1].offset, &raw, why, sizeof(why));
    expect_corrupt(rc, why, "does not match the index", "index mismatch");
    free(idx);
    sv_buf_free(&prev);
    sv_ckpt_block_decoder_free(&d);
}
END_TEST

/* Raw payloads of one entry (or two), each wrong one way. */
START_TEST(entries_check_names_each_fault)
{
    uint8_t raw[1200], sk[700], key[700];
    memset(key, 'k', sizeof(key));
    char why[256];
    struct sv_buf prev = SV_BUF_INIT;
    const uint8_t v[] = {1, 0};
    struct sv_ckpt_block_info x = {.offset = 16, .kg = 3, .entries = 1};

    size_t skl = sv_skey_encode(sk, 3, "b", 1, NULL, 0);
    x.raw = (uint32_t)sv_ckpt_entry_put(raw, sk, skl, v, 2);
    uint64_t kv;
    ck_assert_int_eq(sv_ckpt_entries_check(raw, &x, &prev, &kv, why, sizeof(why)), 0);
    ck_assert_uint_eq(kv, skl + 2);
    ck_assert_uint_eq(prev.len, skl);

    /* The same key again (prev holds it): not increasing. */
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "not strictly increasing", "order across blocks");
    prev.len = 0;
    x.kg = 4;
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "key group 3", "key group");
    x.kg = 3;
    x.entries = 2;
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "1 entries, the index says 2", "count");
    x.entries = 1;
    x.raw--;
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "bad framing", "framing");
    uint8_t bad[] = {0, 0, 0, 0};
    x.raw = (uint32_t)sv_ckpt_entry_put(raw, bad, 2, v, 2); /* a 2-byte "stored key" */
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "not a stored key", "stored key");

    size_t klen = SV_CKPT_SKEY_MAX - 3; /* kg 2 + varint 2 + key: 512 bytes */
    skl = sv_skey_encode(sk, 3, key, klen, NULL, 0);
    ck_assert_uint_eq(skl, SV_CKPT_SKEY_MAX + 1);
    x.raw = (uint32_t)sv_ckpt_entry_put(raw, sk, skl, v, 2);
    expect_corrupt(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), why,
                   "longer than a store can hold", "long key");
    skl = sv_skey_encode(sk, 3, key, klen - 1, NULL, 0);
    x.raw = (uint32_t)sv_ckpt_entry_put(raw, sk, skl, v, 2);
    ck_assert_int_eq(sv_ckpt_entries_check(raw, &x, &prev, NULL, why, sizeof(why)), 0);
    sv_buf_free(&prev);
}
END_TEST

/* --- version 2: chains ---------------------------------------------------- */

/* A chain of a full file (id 3) and an incremental one (id 5, a tombstone in
 * state a, state b reset); the manifest as a writer would fill it. */
static struct sv_ckpt_state v2_full_st[2], v2_inc_st[2], v2_live[2];
static struct sv_ckpt_link v2_links[2];
static struct sv_ckpt_manifest v2_m;

static void make_v2(void)
{
    memset(v2_full_st, 0, sizeof(v2_full_st));
    memset(v2_inc_st, 0, sizeof(v2_inc_st));
    memset(v2_live, 0, sizeof(v2_live));
    struct sv_ckpt_state a = {
        .name = "a", .entries = 4, .raw_bytes = 40, .kg_min = 1, .kg_max = 9, .blocks = 2};
    struct sv_ckpt_state b = {
        .name = "b", .entries = 1, .raw_bytes = 7, .kg_min = 3, .kg_max = 3, .blocks = 1};
    v2_full_st[0] = a;
    v2_full_st[1] = b;
    v2_inc_st[0] = a;
    v2_inc_st[0].entries = 2, v2_inc_st[0].raw_bytes = 12, v2_inc_st[0].blocks = 1;
    v2_inc_st[0].kg_max = 1, v2_inc_st[0].tombstones = 1;
    v2_inc_st[1] = b;
    v2_inc_st[1].reset = 1;
    struct sv_ckpt_link full = {.checkpoint_id = 3,
                                .file = "chk-3/data",
                                .data_bytes = 500,
                                .data_xxh3 = 11,
                                .entries = 5,
                                .raw_bytes = 47,
                                .blocks = 3,
                                .n_states = 2,
                                .states = v2_full_st};
    struct sv_ckpt_link inc = {.checkpoint_id = 5,
                               .file = "chk-5/data",
                               .data_bytes = 200,
                               .data_xxh3 = 22,
                               .incremental = 1,
                               .entries = 3,
                               .raw_bytes = 19,
                               .blocks = 2,
                               .n_states = 2,
                               .states = v2_inc_st};
    v2_links[0] = full;
    v2_links[1] = inc;
    memcpy(v2_live[0].name, "a", 2);
    v2_live[0].entries = 4;
    memcpy(v2_live[1].name, "b", 2);
    v2_live[1].entries = 1;
    struct sv_ckpt_manifest m = {.format_version = SV_CKPT_FORMAT_V2,
                                 .checkpoint_id = 5,
                                 .key_groups = 16,
                                 .kg_first = 0,
                                 .kg_last = 15,
                                 .entries = 5,
                                 .raw_bytes = 19,
                                 .data_bytes = 200,
                                 .data_xxh3 = 22,
                                 .blocks = 2,
                                 .n_states = 2,
                                 .states = v2_live,
                                 .incremental = 1,
                                 .base_id = 3,
                                 .added_bytes = 200,
                                 .total_bytes = 700,
                                 .n_links = 2,
                                 .links = v2_links};
    v2_m = m;
}

static int v2_decode(const struct sv_ckpt_manifest *m, struct sv_ckpt_manifest *out, char *why,
                     size_t whylen)
{
    uint8_t *p;
    size_t n;
    ck_assert_int_eq(sv_ckpt_manifest_encode(m, &p, &n), 0);
    int rc = sv_ckpt_manifest_decode(p, n, out, why, whylen);
    free(p);
    return rc;
}

START_TEST(v2_manifest_round_trip_and_link_view)
{
    make_v2();
    struct sv_ckpt_manifest d;
    char why[256] = "";
    ck_assert_msg(v2_decode(&v2_m, &d, why, sizeof(why)) == 0, "%s", why);
    ck_assert_uint_eq(d.format_version, 2);
    ck_assert_int_eq(d.incremental, 1);
    ck_assert_uint_eq(d.base_id, 3);
    ck_assert_uint_eq(d.total_bytes, 700);
    ck_assert_uint_eq(d.n_links, 2);
    ck_assert_str_eq(d.links[0].file, "chk-3/data");
    ck_assert_int_eq(d.links[1].states[1].reset, 1);
    ck_assert_uint_eq(d.links[1].states[0].tombstones, 1);
    ck_assert_uint_eq(d.states[0].entries, 4);
    /* A link seen as one file: what the index of chk-3/data is checked against. */
    struct sv_ckpt_manifest l;
    ck_assert_int_eq(sv_ckpt_link_manifest(&d, 0, &l), 0);
    ck_assert_uint_eq(l.checkpoint_id, 3);
    ck_assert_uint_eq(l.data_bytes, 500);
    ck_assert_uint_eq(l.blocks, 3);
    ck_assert_uint_eq(l.n_states, 2);
    ck_assert_uint_eq(l.states[0].kg_max, 9);
    ck_assert_int_eq(l.incremental, 0);
    sv_ckpt_manifest_free(&l);
    ck_assert_int_eq(sv_ckpt_link_manifest(&d, 2, &l), SV_EINVAL);
    sv_ckpt_manifest_free(&d);
}
END_TEST

static const struct {
    const char *name, *want;
} chain_damage[] = {
    {"file name", "is not \"chk-3/data\""},
    {"ids", "checkpoint ids not increasing"},
    {"first incremental", "must start with a full"},
    {"later full", "must build on the one before"},
    {"total bytes", "does not end with this checkpoint"},
    {"own id", "does not end with this checkpoint"},
    {"tombstone in a full file", "inconsistent counts"},
    {"reset in a full file", "inconsistent counts"},
    {"tombstones above entries", "inconsistent counts"},
    {"link totals", "totals do not match the sum of its states"},
    {"live entries", "entries do not match"},
    {"no chain", "a chain of 0 files"},
    {"version 1 with a chain", "version 1 with a chain"},
    {"states at the cut", "does not end with this checkpoint"},
};

START_TEST(v2_chain_damage_is_named)
{
    make_v2();
    struct sv_ckpt_manifest m = v2_m;
    switch (_i) {
    case 0:
        snprintf(v2_links[0].file, sizeof(v2_links[0].file), "../../etc/passwd");
        break;
    case 1:
        v2_links[1].checkpoint_id = 3;
        m.checkpoint_id = 3;
        snprintf(v2_links[1].file, sizeof(v2_links[1].file), "chk-3/data");
        break;
    case 2:
        v2_links[0].incremental = 1;
        break;
    case 3:
        v2_links[1].incremental = 0;
        v2_inc_st[0].tombstones = 0;
        v2_inc_st[1].reset = 0;
        break;
    case 4:
        m.total_bytes++;
        break;
    case 5:
        m.checkpoint_id = 6;
        break;
    case 6:
        v2_full_st[0].tombstones = 1;
        break;
    case 7:
        v2_full_st[1].reset = 1;
        break;
    case 8:
        v2_inc_st[0].tombstones = 3;
        break;
    case 9:
        v2_links[1].entries++;
        break;
    case 10:
        m.entries++;
        break;
    case 11:
        m.n_links = 0;
        break;
    case 12:
        m.format_version = SV_CKPT_FORMAT_V1;
        break;
    case 13:
        memcpy(v2_live[1].name, "c", 2);
        break;
    }
    struct sv_ckpt_manifest d;
    char why[256] = "";
    int rc = v2_decode(&m, &d, why, sizeof(why));
    if (_i == 12) { /* version 1 is encoded without its chain: it fails as version 1 */
        ck_assert_int_eq(rc, SV_ECORRUPT);
        return;
    }
    expect_corrupt(rc, why, chain_damage[_i].want, chain_damage[_i].name);
}
END_TEST

Suite *sv_suite_ckpt_format(void)
{
    Suite *s = suite_create("ckpt_format");
    TCase *tc = tcase_create("ckpt_format");
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT);
    tcase_add_test(tc, manifest_round_trip);
    tcase_add_loop_test(tc, manifest_damage_is_named, 0, (int)N_ELEMS(manifest_damage));
    tcase_add_test(tc, data_header_checks);
    tcase_add_test(tc, footer_checks);
    tcase_add_test(tc, index_decode_checks);
    tcase_add_loop_test(tc, blocks_decode_and_damage_is_named, 0, 2);
    tcase_add_test(tc, entries_check_names_each_fault);
    tcase_add_test(tc, v2_manifest_round_trip_and_link_view);
    tcase_add_loop_test(tc, v2_chain_damage_is_named, 0, (int)N_ELEMS(chain_damage));
    suite_add_tcase(s, tc);
    return s;
}
