/* See craft_ckpt.h. */
#include "craft_ckpt.h"
#include "sv_be.h"
#include "sv_ckpt_format.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

void craft_manifest(struct sv_ckpt_manifest *m, struct sv_ckpt_state *st, uint32_t key_groups,
                    const uint8_t *data, size_t size, int c)
{
    *m = (struct sv_ckpt_manifest){
        .format_version = SV_CKPT_FORMAT_V1,
        .checkpoint_id = 1,
        .server_version = "crafted",
        .key_groups = key_groups,
        .kg_last = key_groups - 1,
        .entries = st->entries,
        .raw_bytes = st->raw_bytes,
        .data_bytes = size,
        .data_xxh3 = XXH3_64bits(data, size),
        .compression = (enum sv_ckpt_compression)c,
        .blocks = st->blocks,
        .n_states = 1,
        .states = st,
    };
}

void craft_ckpt_one_entry(const char *dir, uint32_t key_groups, const uint8_t *skey, size_t sklen,
                          const uint8_t *value, size_t vlen)
{
    size_t raw = sv_ckpt_entry_size(sklen, vlen);
    size_t size = SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_BLOCK_HEADER_SIZE + raw +
                  SV_CKPT_INDEX_RECORD_SIZE + SV_CKPT_FOOTER_SIZE;
    uint8_t *d = calloc(1, size), *rawbuf = malloc(raw);
    ck_assert(d && rawbuf);
    sv_ckpt_entry_put(rawbuf, skey, sklen, value, vlen);
    sv_ckpt_data_header_put(d, SV_CKPT_FORMAT_V1);

    struct sv_ckpt_block_info x = {
        .offset = SV_CKPT_DATA_HEADER_SIZE,
        .state = 0,
        .kg = sv_be16_get(skey),
        .entries = 1,
        .raw = (uint32_t)raw,
    };
    struct sv_ckpt_block_encoder enc;
    ck_assert_int_eq(sv_ckpt_block_encoder_init(&enc, SV_CKPT_COMPRESS_NONE, 0), 0);
    const uint8_t *payload;
    ck_assert_int_eq(sv_ckpt_block_encode(&enc, &x, rawbuf, d + x.offset, &payload, NULL, 0), 0);
    uint64_t ioff = x.offset + SV_CKPT_BLOCK_HEADER_SIZE + x.stored;
    memcpy(d + x.offset + SV_CKPT_BLOCK_HEADER_SIZE, payload, x.stored);
    sv_ckpt_block_encoder_free(&enc);
    sv_ckpt_index_put(d + ioff, &x);
    struct sv_ckpt_footer f = {ioff, SV_CKPT_INDEX_RECORD_SIZE, 1,
                               XXH3_64bits(d + ioff, SV_CKPT_INDEX_RECORD_SIZE)};
    sv_ckpt_footer_put(d + ioff + SV_CKPT_INDEX_RECORD_SIZE, &f);
    write_file(dir, SV_CKPT_DATA_FILE, d, size);

    struct sv_ckpt_state st = {.name = "s",
                               .entries = 1,
                               .raw_bytes = sklen + vlen,
                               .kg_min = x.kg,
                               .kg_max = x.kg,
                               .blocks = 1};
    struct sv_ckpt_manifest m;
    craft_manifest(&m, &st, key_groups, d, size, SV_CKPT_COMPRESS_NONE);
    /* In a directory chk-<id>, the checkpoint is <id> (readers check). */
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (strncmp(base, "chk-", 4) == 0 && base[4] >= '1' && base[4] <= '9')
        m.checkpoint_id = strtoull(base + 4, NULL, 10);
    uint8_t *img;
    size_t n;
    ck_assert_int_eq(sv_ckpt_manifest_encode(&m, &img, &n), 0);
    write_file(dir, SV_CKPT_MANIFEST_FILE, img, n);
    free(img);
    free(rawbuf);
    free(d);
}
