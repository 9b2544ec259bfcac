/* Checkpoint files (io/sv_ckpt.c) on real files in a temporary
 * directory: round trips, ranged reads, the byte layout, every kind of
 * corruption a reader must catch, and a writer running out of space. */
#include "checkpoint.pb-c.h"
#include "craft_ckpt.h"
#include "suites.h"
#include "sv_be.h"
#include "sv_ckpt.h"
#include "sv_error.h"
#include "sv_keys.h"
#include "sv_msg.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/svckpt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A fresh empty directory under dir. Like path_in(), the result lives in a
 * small ring of static buffers: copy it to keep it across many calls. */
static const char *subdir(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    return p;
}

static char *path_in(const char *d, const char *name)
{
    static char paths[4][160];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", d, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* --- a test data set ------------------------------------------------------ */

struct ent {
    unsigned state;
    uint32_t kg;
    uint8_t sk[32];
    size_t skl;
    uint8_t *v;
    size_t vl;
};

#define MAX_ENTS 2048
#define N_STATES 4
static const char *const state_names[N_STATES] = {"alpha", "beta", "gamma", "zeta"};
static struct ent ents[MAX_ENTS];
static size_t n_ents;

static void add_ent(unsigned state, uint32_t kg, const char *key, const char *ns, size_t vl,
                    unsigned seed)
{
    ck_assert_uint_lt(n_ents, MAX_ENTS);
    struct ent *e = &ents[n_ents++];
    e->state = state;
    e->kg = kg;
    e->skl = sv_skey_encode(e->sk, kg, key, strlen(key), ns, strlen(ns));
    e->vl = vl;
    e->v = malloc(vl ? vl : 1);
    ck_assert_ptr_nonnull(e->v);
    /* Compressible text with a per-entry twist. */
    for (size_t i = 0; i < vl; i++)
        e->v[i] = (uint8_t)("statesrv checkpoint value "[(i + seed) % 26] ^ (i % 97 == 0));
}

static void free_ents(void)
{
    for (size_t i = 0; i < n_ents; i++)
        free(ents[i].v);
    n_ents = 0;
}

/* The standard set, written with block_size 1024 and 64 key groups: alpha
 * spreads over most key groups with two namespaces per key (one empty); beta
 * has no entries; gamma has a 5000-byte value in key group 3 (a block of its
 * own) and 60 entries in key group 10 (several blocks); zeta holds one entry
 * with an empty value. */
static void make_std_set(void)
{
    char key[16];
    free_ents();
    for (uint32_t kg = 0; kg < 64; kg++) {
        if (kg % 7 == 0)
            continue;
        for (unsigned j = 0; j < 1 + kg % 4; j++) {
            snprintf(key, sizeof(key), "u%05u", kg * 10 + j);
            add_ent(0, kg, key, "", 20 + (kg * 13 + j * 7) % 120, kg + j);
            if (j % 2 == 0)
                add_ent(0, kg, key, "ns1", 30, kg * j);
        }
    }
    add_ent(2, 3, "g0", "", 40, 1);
    add_ent(2, 3, "g1", "", 5000, 2);
    add_ent(2, 3, "g2", "w", 40, 3);
    for (unsigned j = 0; j < 60; j++) {
        snprintf(key, sizeof(key), "h%03u", j);
        add_ent(2, 10, key, "", 80, j);
    }
    add_ent(3, 63, "last", "", 0, 0);
}

/* A few entries only, for tests that touch every byte of the files. */
static void make_tiny_set(void)
{
    free_ents();
    add_ent(0, 1, "a", "", 12, 1);
    add_ent(0, 1, "b", "x", 12, 2);
    add_ent(0, 2, "c", "", 30, 3);
    add_ent(2, 0, "d", "", 12, 4);
    add_ent(2, 5, "e", "", 12, 5);
}

static struct sv_ckpt_writer_options std_opts(enum sv_ckpt_compression c)
{
    struct sv_ckpt_writer_options o = {
        .checkpoint_id = 42,
        .key_groups = 64,
        .kg_first = 0,
        .kg_last = 63,
        .compression = c,
        .compression_level = 1,
        .block_size = 1024,
        .server_version = "test-1.2",
    };
    return o;
}

/* Writes ents (all N_STATES states, in order) into d. */
static void write_set(const char *d, const struct sv_ckpt_writer_options *o,
                      struct sv_ckpt_manifest *m)
{
    struct sv_ckpt_writer *w;
    char err[512] = "";
    int rc = sv_ckpt_writer_open(d, o, &w, err, sizeof(err));
    ck_assert_msg(rc == 0, "writer_open: %s", err);
    size_t i = 0;
    for (unsigned s = 0; s < N_STATES; s++) {
        ck_assert_int_eq(sv_ckpt_writer_state(w, state_names[s]), 0);
        for (; i < n_ents && ents[i].state == s; i++)
            ck_assert_int_eq(sv_ckpt_writer_add(w, ents[i].sk, ents[i].skl, ents[i].v, ents[i].vl),
                             0);
    }
    ck_assert_uint_eq(i, n_ents);
    uint64_t pe = 0, pb = 0;
    sv_ckpt_writer_progress(w, &pe, &pb);
    ck_assert_uint_eq(pe, n_ents);
    rc = sv_ckpt_writer_finish(w, m, err, sizeof(err));
    ck_assert_msg(rc == 0, "finish: %s", err);
}

static struct sv_ckpt_reader *open_ok(const char *d)
{
    struct sv_ckpt_reader *r;
    char err[512] = "";
    int rc = sv_ckpt_open(d, &r, err, sizeof(err));
    ck_assert_msg(rc == 0, "open: %s", err);
    return r;
}

/* Blocks the documented policy makes: a new block on a change of state or
 * key group, or when an entry would take the block past block_size; a block
 * that reaches block_size is closed. */
static uint64_t expected_blocks(unsigned state, size_t block_size)
{
    uint64_t blocks = 0;
    size_t cur = 0;
    uint32_t kg = 0;
    for (size_t i = 0; i < n_ents; i++) {
        if (ents[i].state != state)
            continue;
        size_t esz =
            sv_varint_size(ents[i].skl) + ents[i].skl + sv_varint_size(ents[i].vl) + ents[i].vl;
        if (cur && (ents[i].kg != kg || cur + esz > block_size))
            cur = 0;
        if (!cur)
            blocks++;
        cur += esz;
        kg = ents[i].kg;
        if (cur >= block_size)
            cur = 0;
    }
    return blocks;
}

/* Iterates state s over key groups first..last and checks that exactly the
 * expected entries come back, in order. Returns how many did. */
static size_t check_iter(struct sv_ckpt_reader *r, unsigned s, uint32_t first, uint32_t last)
{
    struct sv_ckpt_iter *it;
    ck_assert_int_eq(sv_ckpt_iter_open(r, s, first, last, &it), 0);
    size_t i = 0, seen = 0;
    for (;;) {
        const uint8_t *k, *v;
        size_t kl, vl;
        int rc = sv_ckpt_iter_next(it, &k, &kl, &v, &vl);
        ck_assert_msg(rc >= 0, "iter: %s", sv_ckpt_errmsg(r));
        while (i < n_ents && !(ents[i].state == s && ents[i].kg >= first && ents[i].kg <= last))
            i++;
        if (rc == 0)
            break;
        ck_assert_msg(i < n_ents, "iteration returned an extra entry");
        ck_assert_uint_eq(kl, ents[i].skl);
        ck_assert_mem_eq(k, ents[i].sk, kl);
        ck_assert_uint_eq(vl, ents[i].vl);
        if (vl)
            ck_assert_mem_eq(v, ents[i].v, vl);
        i++;
        seen++;
    }
    ck_assert_msg(i == n_ents, "iteration ended early");
    sv_ckpt_iter_close(it);
    return seen;
}

static int verify(struct sv_ckpt_reader *r, char *err, size_t errlen)
{
    return sv_ckpt_verify(r, NULL, NULL, err, errlen);
}

/* --- round trips ---------------------------------------------------------- */

static void progress_cb(void *ud, uint64_t bytes)
{
    *(uint64_t *)ud = bytes;
}

START_TEST(round_trip)
{
    enum sv_ckpt_compression comp = _i ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE;
    make_std_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(comp);
    struct sv_ckpt_manifest wm;
    write_set(d, &o, &wm);

    struct sv_ckpt_reader *r = open_ok(d);
    const struct sv_ckpt_manifest *m = sv_ckpt_manifest(r);
    ck_assert_uint_eq(m->n_states, N_STATES);
    ck_assert_uint_eq(m->entries, n_ents);
    uint64_t raw = 0, blocks = 0;
    for (unsigned s = 0; s < N_STATES; s++) {
        const struct sv_ckpt_state *st = &m->states[s];
        ck_assert_str_eq(st->name, state_names[s]);
        uint64_t e = 0, b = 0;
        uint32_t kmin = UINT32_MAX, kmax = 0;
        for (size_t i = 0; i < n_ents; i++) {
            if (ents[i].state != s)
                continue;
            e++;
            b += ents[i].skl + ents[i].vl;
            kmin = ents[i].kg < kmin ? ents[i].kg : kmin;
            kmax = ents[i].kg > kmax ? ents[i].kg : kmax;
        }
        ck_assert_uint_eq(st->entries, e);
        ck_assert_uint_eq(st->raw_bytes, b);
        ck_assert_uint_eq(st->blocks, expected_blocks(s, o.block_size));
        if (e) {
            ck_assert_uint_eq(st->kg_min, kmin);
            ck_assert_uint_eq(st->kg_max, kmax);
        }
        raw += b;
        blocks += st->blocks;
        /* Whole state, in order, byte for byte. */
        ck_assert_uint_eq(check_iter(r, s, 0, 63), e);
    }
    ck_assert_uint_eq(m->raw_bytes, raw);
    ck_assert_uint_eq(m->blocks, blocks);
    ck_assert_uint_eq(m->states[1].entries, 0); /* beta */
    ck_assert_uint_eq(m->states[1].blocks, 0);
    /* gamma: kg 3 splits around the big value (3 blocks), kg 10 spans several. */
    ck_assert_uint_ge(m->states[2].blocks, 3 + 5);
    /* Closed after one entry: the read-ahead thread, waiting for a free
     * slot, is stopped and joined (a hang or a leak fails here). */
    for (unsigned stop_after = 1; stop_after <= 3; stop_after++) {
        struct sv_ckpt_iter *it;
        ck_assert_int_eq(sv_ckpt_iter_open(r, 2, 0, 63, &it), 0);
        const uint8_t *k, *v;
        size_t kl, vl;
        for (unsigned i = 0; i < stop_after; i++)
            ck_assert_int_eq(sv_ckpt_iter_next(it, &k, &kl, &v, &vl), 1);
        sv_ckpt_iter_close(it);
    }

    struct stat st;
    ck_assert_int_eq(stat(path_in(d, "data"), &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, m->data_bytes);
    if (comp == SV_CKPT_COMPRESS_ZSTD)
        ck_assert_uint_lt(m->data_bytes, raw / 2); /* the values are repetitive */
    else
        ck_assert_uint_gt(m->data_bytes, raw);

    uint64_t seen = 0;
    char err[512] = "";
    int rc = sv_ckpt_verify(r, progress_cb, &seen, err, sizeof(err));
    ck_assert_msg(rc == 0, "verify: %s", err);
    ck_assert_uint_eq(seen, m->data_bytes);

    /* What finish reported is what the reader reads. */
    ck_assert_uint_eq(wm.entries, m->entries);
    ck_assert_uint_eq(wm.data_xxh3, m->data_xxh3);
    ck_assert_uint_eq(wm.n_states, m->n_states);
    for (size_t s = 0; s < wm.n_states; s++) {
        ck_assert_str_eq(wm.states[s].name, m->states[s].name);
        ck_assert_uint_eq(wm.states[s].entries, m->states[s].entries);
        ck_assert_uint_eq(wm.states[s].raw_bytes, m->states[s].raw_bytes);
        ck_assert_uint_eq(wm.states[s].blocks, m->states[s].blocks);
        ck_assert_uint_eq(wm.states[s].kg_min, m->states[s].kg_min);
        ck_assert_uint_eq(wm.states[s].kg_max, m->states[s].kg_max);
    }
    sv_ckpt_manifest_free(&wm);
    sv_ckpt_close(r);
    free_ents();
}
END_TEST

START_TEST(manifest_fields)
{
    make_tiny_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    o.checkpoint_id = 0x1234567890ull;
    o.compression_level = 0; /* zstd's default, recorded as the level used */
    o.key_groups = 128;
    o.kg_first = 0;
    o.kg_last = 5;
    o.server_version = NULL; /* this build's */
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    struct sv_ckpt_manifest wm;
    write_set(d, &o, &wm);
    clock_gettime(CLOCK_REALTIME, &t1);

    struct sv_ckpt_reader *r = open_ok(d);
    const struct sv_ckpt_manifest *m = sv_ckpt_manifest(r);
    ck_assert_uint_eq(m->format_version, SV_CKPT_FORMAT_V1);
    ck_assert_uint_eq(m->checkpoint_id, 0x1234567890ull);
    ck_assert_str_eq(m->server_version, SV_VERSION);
    ck_assert_uint_eq(m->key_groups, 128);
    ck_assert_uint_eq(m->kg_first, 0);
    ck_assert_uint_eq(m->kg_last, 5);
    ck_assert_int_eq(m->compression, SV_CKPT_COMPRESS_ZSTD);
    ck_assert_int_eq(m->compression_level, 3);
    uint64_t ms0 = (uint64_t)t0.tv_sec * 1000 + (uint64_t)t0.tv_nsec / 1000000;
    uint64_t ms1 = (uint64_t)t1.tv_sec * 1000 + (uint64_t)t1.tv_nsec / 1000000;
    ck_assert_uint_ge(m->created_unix_ms, ms0);
    ck_assert_uint_le(m->created_unix_ms, ms1);
    ck_assert_uint_le(m->duration_ms, ms1 - ms0);
    ck_assert_uint_eq(m->entries, 5);
    ck_assert_uint_eq(m->states[0].kg_min, 1);
    ck_assert_uint_eq(m->states[0].kg_max, 2);
    ck_assert_uint_eq(m->states[2].kg_min, 0);
    ck_assert_uint_eq(m->states[2].kg_max, 5);
    /* Every field finish handed back matches. */
    ck_assert_uint_eq(wm.checkpoint_id, m->checkpoint_id);
    ck_assert_uint_eq(wm.created_unix_ms, m->created_unix_ms);
    ck_assert_uint_eq(wm.data_bytes, m->data_bytes);
    ck_assert_uint_eq(wm.blocks, m->blocks);
    ck_assert_str_eq(wm.server_version, m->server_version);

    /* The MANIFEST's XXH3 of the data file is the real one. */
    size_t n;
    uint8_t *data = slurp(path_in(d, "data"), &n);
    ck_assert_uint_eq(XXH3_64bits(data, n), m->data_xxh3);
    free(data);
    ck_assert(!exists(path_in(d, "MANIFEST.tmp")));
    sv_ckpt_manifest_free(&wm);
    sv_ckpt_close(r);
    free_ents();
}
END_TEST

/* No states at all, and states without entries: header, empty index, footer. */
START_TEST(empty_checkpoints)
{
    free_ents();
    const char *d = subdir("none");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    struct sv_ckpt_writer *w;
    char err[512];
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(sv_ckpt_writer_finish(w, NULL, err, sizeof(err)), 0);
    struct sv_ckpt_reader *r = open_ok(d);
    ck_assert_uint_eq(sv_ckpt_manifest(r)->n_states, 0);
    ck_assert_uint_eq(sv_ckpt_manifest(r)->data_bytes, 16 + 40);
    ck_assert_int_eq(verify(r, err, sizeof(err)), 0);
    struct sv_ckpt_iter *it;
    ck_assert_int_eq(sv_ckpt_iter_open(r, 0, 0, 63, &it), SV_EINVAL);
    sv_ckpt_close(r);

    d = subdir("states");
    write_set(d, &o, NULL); /* four states, no entries */
    r = open_ok(d);
    ck_assert_uint_eq(sv_ckpt_manifest(r)->n_states, N_STATES);
    ck_assert_uint_eq(sv_ckpt_manifest(r)->blocks, 0);
    ck_assert_int_eq(verify(r, err, sizeof(err)), 0);
    ck_assert_uint_eq(check_iter(r, 1, 0, 63), 0);
    sv_ckpt_close(r);
}
END_TEST

/* The layout of docs/checkpoint-format.md, byte for byte, read without the
 * module: one state, one entry, so every offset is known. With zstd chosen
 * the 6-byte payload does not shrink and is stored as it is. */
START_TEST(format_pinned)
{
    enum sv_ckpt_compression comp = _i ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE;
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(comp);
    struct sv_ckpt_writer *w;
    char err[512];
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(sv_ckpt_writer_state(w, "s"), 0);
    const uint8_t sk[] = {0x00, 0x01, 0x01, 'k'};
    ck_assert_int_eq(sv_ckpt_writer_add(w, sk, sizeof(sk), (const uint8_t *)"v", 1), 0);
    ck_assert_int_eq(sv_ckpt_writer_finish(w, NULL, err, sizeof(err)), 0);

    size_t n;
    uint8_t *p = slurp(path_in(d, "data"), &n);
    const uint8_t payload[] = {4, 0x00, 0x01, 0x01, 'k', 1, 'v'};
    ck_assert_uint_eq(n, 16 + 44 + sizeof(payload) + 32 + 40);
    ck_assert_mem_eq(p, "SVCKDAT1\0\0\0\1\0\0\0\0", 16);
    const uint8_t *b = p + 16;
    ck_assert_mem_eq(b, "SVBK", 4);
    ck_assert_uint_eq(sv_be32_get(b + 4), 0);                /* state */
    ck_assert_uint_eq(sv_be32_get(b + 8), 1);                /* key group */
    ck_assert_uint_eq(sv_be32_get(b + 12), 1);               /* entries */
    ck_assert_uint_eq(sv_be32_get(b + 16), sizeof(payload)); /* raw */
    ck_assert_uint_eq(sv_be32_get(b + 20), sizeof(payload)); /* stored */
    ck_assert_mem_eq(b + 24, "\0\0\0\0", 4);                 /* compression none, reserved */
    ck_assert_uint_eq(sv_be64_get(b + 28), XXH3_64bits(b + 44, sizeof(payload)));
    ck_assert_uint_eq(sv_be64_get(b + 36), XXH3_64bits(b, 36));
    ck_assert_mem_eq(b + 44, payload, sizeof(payload));
    const uint8_t *x = b + 44 + sizeof(payload);
    uint64_t ioff = (uint64_t)(x - p);
    ck_assert_uint_eq(sv_be32_get(x), 0);
    ck_assert_uint_eq(sv_be32_get(x + 4), 1);
    ck_assert_uint_eq(sv_be64_get(x + 8), 16);
    ck_assert_uint_eq(sv_be32_get(x + 16), sizeof(payload));
    ck_assert_uint_eq(sv_be32_get(x + 20), sizeof(payload));
    ck_assert_uint_eq(sv_be32_get(x + 24), 1);
    ck_assert_mem_eq(x + 28, "\0\0\0\0", 4);
    const uint8_t *f = x + 32;
    ck_assert_uint_eq(sv_be64_get(f), ioff);
    ck_assert_uint_eq(sv_be64_get(f + 8), 32);
    ck_assert_uint_eq(sv_be64_get(f + 16), 1);
    ck_assert_uint_eq(sv_be64_get(f + 24), XXH3_64bits(x, 32));
    ck_assert_mem_eq(f + 32, "SVCKEND1", 8);

    size_t mn;
    uint8_t *mp = slurp(path_in(d, "MANIFEST"), &mn);
    ck_assert_mem_eq(mp, "SVCKMAN1", 8);
    ck_assert_uint_eq(sv_be32_get(mp + 8), mn - 20);
    ck_assert_uint_eq(sv_be64_get(mp + mn - 8), XXH3_64bits(mp + 12, mn - 20));
    Statesrv__V1__CheckpointManifest *pm =
        statesrv__v1__checkpoint_manifest__unpack(NULL, mn - 20, mp + 12);
    ck_assert_ptr_nonnull(pm);
    ck_assert_uint_eq(pm->format_version, 1);
    ck_assert_uint_eq(pm->data_bytes, n);
    ck_assert_uint_eq(pm->data_xxh3, XXH3_64bits(p, n));
    ck_assert_str_eq(pm->compression, _i ? "zstd" : "none");
    ck_assert_uint_eq(pm->n_states, 1);
    ck_assert_str_eq(pm->states[0]->name, "s");
    ck_assert_uint_eq(pm->states[0]->raw_bytes, sizeof(sk) + 1);
    statesrv__v1__checkpoint_manifest__free_unpacked(pm, NULL);
    free(mp);
    free(p);
}
END_TEST

/* --- the index ------------------------------------------------------------ */

struct rec {
    uint32_t state, kg;
    uint64_t offset;
    uint32_t stored, raw, entries;
};

/* Reads index record i of d/data straight from the file. */
static size_t read_index(const char *d, struct rec *out, size_t max)
{
    size_t n;
    uint8_t *p = slurp(path_in(d, "data"), &n);
    const uint8_t *f = p + n - 40;
    uint64_t ioff = sv_be64_get(f), count = sv_be64_get(f + 16);
    ck_assert_uint_le(count, max);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *x = p + ioff + 32 * i;
        out[i] = (struct rec){sv_be32_get(x),      sv_be32_get(x + 4),  sv_be64_get(x + 8),
                              sv_be32_get(x + 16), sv_be32_get(x + 20), sv_be32_get(x + 24)};
    }
    free(p);
    return (size_t)count;
}

static void flip_at(const char *path, uint64_t off)
{
    size_t n;
    uint8_t *p = slurp(path, &n);
    ck_assert_uint_lt(off, n);
    p[off] ^= 0xff;
    spit(path, p, n);
    free(p);
}

/* A ranged iteration reads only its blocks: with a block of another key
 * group corrupted it still succeeds, while verify (and a range that takes
 * in the bad block) fail. */
START_TEST(range_reads_only_its_blocks)
{
    make_std_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(_i ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE);
    write_set(d, &o, NULL);
    struct rec recs[512];
    size_t nrec = read_index(d, recs, N_ELEMS(recs));
    /* The payload of alpha's block for key group 20. */
    size_t bad = nrec;
    for (size_t i = 0; i < nrec; i++)
        if (recs[i].state == 0 && recs[i].kg == 20)
            bad = i;
    ck_assert_uint_lt(bad, nrec);
    flip_at(path_in(d, "data"), recs[bad].offset + 44 + recs[bad].stored / 2);

    struct sv_ckpt_reader *r = open_ok(d); /* open reads no blocks */
    ck_assert_uint_gt(check_iter(r, 0, 5, 19), 0);
    ck_assert_uint_gt(check_iter(r, 0, 21, 63), 0);
    ck_assert_uint_eq(check_iter(r, 2, 10, 10), 60);
    ck_assert_uint_eq(check_iter(r, 0, 0, 0), 0); /* kg 0 has no entries */

    struct sv_ckpt_iter *it;
    ck_assert_int_eq(sv_ckpt_iter_open(r, 0, 18, 22, &it), 0);
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc;
    size_t got = 0;
    while ((rc = sv_ckpt_iter_next(it, &k, &kl, &v, &vl)) == 1)
        got++;
    ck_assert_int_eq(rc, SV_ECORRUPT);
    ck_assert_uint_eq(got, 1 + 18 % 4 + (1 + 18 % 4 + 1) / 2 + 1 + 19 % 4 + (1 + 19 % 4 + 1) / 2);
    ck_assert_ptr_nonnull(strstr(sv_ckpt_errmsg(r), "payload checksum"));
    ck_assert_int_eq(sv_ckpt_iter_next(it, &k, &kl, &v, &vl), SV_ECORRUPT); /* sticky */
    sv_ckpt_iter_close(it);

    char err[512] = "";
    ck_assert_int_eq(verify(r, err, sizeof(err)), SV_ECORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "block at offset %llu", (unsigned long long)recs[bad].offset);
    ck_assert_msg(strstr(err, want) && strstr(err, "payload checksum"), "got: %s", err);
    sv_ckpt_close(r);
    free_ents();
}
END_TEST

START_TEST(kg_entries_from_index)
{
    make_std_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    write_set(d, &o, NULL);
    struct sv_ckpt_reader *r = open_ok(d);
    for (unsigned s = 0; s < N_STATES; s++) {
        for (uint32_t kg = 0; kg < 64; kg++) {
            uint64_t want = 0;
            for (size_t i = 0; i < n_ents; i++)
                want += ents[i].state == s && ents[i].kg == kg;
            ck_assert_uint_eq(sv_ckpt_kg_entries(r, s, kg), want);
        }
    }
    ck_assert_uint_eq(sv_ckpt_kg_entries(r, 2, 10), 60); /* spread over several blocks */
    ck_assert_uint_eq(sv_ckpt_kg_entries(r, 2, 3), 3);
    ck_assert_uint_eq(sv_ckpt_kg_entries(r, N_STATES, 1), 0);
    ck_assert_uint_eq(sv_ckpt_kg_entries(r, 0, 1000), 0);
    struct sv_ckpt_iter *it;
    ck_assert_int_eq(sv_ckpt_iter_open(r, N_STATES, 0, 1, &it), SV_EINVAL);
    ck_assert_int_eq(sv_ckpt_iter_open(r, 0, 5, 4, &it), SV_EINVAL);
    sv_ckpt_close(r);
    free_ents();
}
END_TEST

/* --- writer misuse -------------------------------------------------------- */

/* Each case feeds the writer something it must refuse with SV_EINVAL; the
 * refusal is sticky, so finish fails too and leaves no MANIFEST. */
static const char *const misuse_names[] = {
    "duplicate key",           "decreasing key",
    "decreasing key group",    "state names out of order",
    "same state twice",        "add before any state",
    "key group outside range", "not a stored key",
    "bad state name",
};

START_TEST(writer_refuses_misuse)
{
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
    o.kg_first = 10;
    o.kg_last = 20;
    struct sv_ckpt_writer *w;
    char err[512] = "";
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), 0);
    uint8_t a[16], b[16], c[16], far[16];
    size_t al = sv_skey_encode(a, 12, "a", 1, "", 0);
    size_t bl = sv_skey_encode(b, 12, "b", 1, "", 0);
    size_t cl = sv_skey_encode(c, 11, "z", 1, "", 0);
    size_t fl = sv_skey_encode(far, 30, "a", 1, "", 0);
    const uint8_t *v = (const uint8_t *)"\x01\x00val";
    int rc = 0;
    if (_i != 5)
        ck_assert_int_eq(sv_ckpt_writer_state(w, "m"), 0);
    switch (_i) {
    case 0:
        ck_assert_int_eq(sv_ckpt_writer_add(w, a, al, v, 5), 0);
        rc = sv_ckpt_writer_add(w, a, al, v, 5);
        break;
    case 1:
        ck_assert_int_eq(sv_ckpt_writer_add(w, b, bl, v, 5), 0);
        rc = sv_ckpt_writer_add(w, a, al, v, 5);
        break;
    case 2:
        ck_assert_int_eq(sv_ckpt_writer_add(w, b, bl, v, 5), 0);
        rc = sv_ckpt_writer_add(w, c, cl, v, 5);
        break;
    case 3:
        rc = sv_ckpt_writer_state(w, "a");
        break;
    case 4:
        rc = sv_ckpt_writer_state(w, "m");
        break;
    case 5:
        rc = sv_ckpt_writer_add(w, a, al, v, 5);
        break;
    case 6:
        rc = sv_ckpt_writer_add(w, far, fl, v, 5);
        break;
    case 7:
        rc = sv_ckpt_writer_add(w, (const uint8_t *)"\x00\x0c", 2, v, 5);
        break;
    case 8:
        rc = sv_ckpt_writer_state(w, "bad name");
        break;
    }
    ck_assert_msg(rc == SV_EINVAL, "%s: got %d", misuse_names[_i], rc);
    /* Sticky: a later good call fails the same way. */
    ck_assert_int_eq(sv_ckpt_writer_state(w, "zzz"), SV_EINVAL);
    ck_assert_int_eq(sv_ckpt_writer_finish(w, NULL, err, sizeof(err)), SV_EINVAL);
    ck_assert_msg(err[0] != '\0', "finish gave no reason");
    ck_assert(!exists(path_in(d, "MANIFEST")));
}
END_TEST

START_TEST(writer_refuses_bad_options)
{
    const char *d = subdir("c");
    struct sv_ckpt_writer *w = (struct sv_ckpt_writer *)&w;
    char err[512];
    struct sv_ckpt_writer_options o;
    for (int i = 0; i < 6; i++) {
        o = std_opts(SV_CKPT_COMPRESS_ZSTD);
        switch (i) {
        case 0:
            o.key_groups = 0;
            break;
        case 1:
            o.kg_last = 64;
            break;
        case 2:
            o.kg_first = 9, o.kg_last = 8;
            break;
        case 3:
            o.compression_level = 1000;
            break;
        case 4:
            o.block_size = (size_t)SV_CKPT_BLOCK_RAW_MAX + 1;
            break;
        case 5:
            o.server_version = "0123456789012345678901234567890123456789";
            break;
        }
        err[0] = '\0';
        ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), SV_EINVAL);
        ck_assert_ptr_null(w);
        ck_assert(err[0] != '\0');
    }
    /* The directory must be empty. */
    o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    spit(path_in(d, "stray"), (const uint8_t *)"x", 1);
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), -ENOTEMPTY);
    ck_assert_int_eq(sv_ckpt_writer_open(path_in(d, "missing"), &o, &w, err, sizeof(err)), -ENOENT);
}
END_TEST

/* abort leaves the partial data file and no MANIFEST, which open refuses. */
START_TEST(writer_abort)
{
    make_tiny_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    struct sv_ckpt_writer *w;
    char err[512];
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(sv_ckpt_writer_state(w, "alpha"), 0);
    ck_assert_int_eq(sv_ckpt_writer_add(w, ents[0].sk, ents[0].skl, ents[0].v, ents[0].vl), 0);
    sv_ckpt_writer_abort(w);
    sv_ckpt_writer_abort(NULL);
    ck_assert(exists(path_in(d, "data")));
    ck_assert(!exists(path_in(d, "MANIFEST")));
    struct sv_ckpt_reader *r;
    ck_assert_int_eq(sv_ckpt_open(d, &r, err, sizeof(err)), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "MANIFEST"));
    sv_ckpt_close(NULL);
    free_ents();
}
END_TEST

/* --- corruption ----------------------------------------------------------- */

/* Opens d and, if that works, verifies it: the first failure's code and
 * message. */
static int open_verify(const char *d, char *err, size_t errlen)
{
    struct sv_ckpt_reader *r;
    err[0] = '\0';
    int rc = sv_ckpt_open(d, &r, err, errlen);
    if (rc)
        return rc;
    rc = verify(r, err, errlen);
    sv_ckpt_close(r);
    return rc;
}

/* Rewrites d/MANIFEST through edit(), sealing it with a fresh checksum. */
static void manifest_edit(const char *d, void (*edit)(Statesrv__V1__CheckpointManifest *, void *),
                          void *ud)
{
    size_t n;
    uint8_t *p = slurp(path_in(d, "MANIFEST"), &n);
    Statesrv__V1__CheckpointManifest *pm =
        statesrv__v1__checkpoint_manifest__unpack(NULL, n - 20, p + 12);
    ck_assert_ptr_nonnull(pm);
    edit(pm, ud);
    size_t body = statesrv__v1__checkpoint_manifest__get_packed_size(pm);
    uint8_t *q = malloc(body + 20);
    ck_assert_ptr_nonnull(q);
    memcpy(q, "SVCKMAN1", 8);
    sv_be32_put(q + 8, (uint32_t)body);
    statesrv__v1__checkpoint_manifest__pack(pm, q + 12);
    sv_be64_put(q + 12 + body, XXH3_64bits(q + 12, body));
    spit(path_in(d, "MANIFEST"), q, body + 20);
    statesrv__v1__checkpoint_manifest__free_unpacked(pm, NULL);
    free(q);
    free(p);
}

static void set_data_sum(Statesrv__V1__CheckpointManifest *pm, void *ud)
{
    const uint64_t *v = ud;
    pm->data_bytes = v[0];
    pm->data_xxh3 = v[1];
}

/* Re-seals d after a deliberate edit of the data file: the block and index
 * checksums, the footer's, and the MANIFEST's size and XXH3 of the data.
 * What is left for the reader to catch is the edit's meaning. */
static void reseal(const char *d)
{
    size_t n;
    uint8_t *p = slurp(path_in(d, "data"), &n);
    uint8_t *f = p + n - 40;
    uint64_t ioff = sv_be64_get(f), ilen = sv_be64_get(f + 8);
    for (uint64_t x = ioff; x < ioff + ilen; x += 32) {
        uint8_t *h = p + sv_be64_get(p + x + 8);
        sv_be64_put(h + 28, XXH3_64bits(h + 44, sv_be32_get(h + 20)));
        sv_be64_put(h + 36, XXH3_64bits(h, 36));
    }
    sv_be64_put(f + 24, XXH3_64bits(p + ioff, ilen));
    spit(path_in(d, "data"), p, n);
    uint64_t v[2] = {n, XXH3_64bits(p, n)};
    manifest_edit(d, set_data_sum, v);
    free(p);
}

/* Each part of each file, damaged by one flipped byte (or cut or extended):
 * open or verify must fail with SV_ECORRUPT and name the part. Offsets are
 * from the start of the file (or, negative, from its end). */
static const struct {
    const char *name;
    const char *file;
    long off;    /* where to flip; -1 from the end... */
    int special; /* 0 flip, 1 truncate by one, 2 append, 3 first block header, 4 first payload,
                    5 index, 6 manifest length field, 7 truncate to the header */
    const char *part;
} damage[] = {
    {"manifest magic", "MANIFEST", 3, 0, "MANIFEST: bad magic"},
    {"manifest length", "MANIFEST", 0, 6, "MANIFEST: length"},
    {"manifest body", "MANIFEST", 20, 0, "MANIFEST: checksum"},
    {"manifest checksum", "MANIFEST", -3, 0, "MANIFEST: checksum"},
    {"manifest truncated", "MANIFEST", 0, 1, "MANIFEST"},
    {"data header magic", "data", 2, 0, "data header: bad magic"},
    {"data header version", "data", 11, 0, "data header: format version"},
    {"data header flags", "data", 15, 0, "data header: unknown flags"},
    {"block header magic", "data", 0, 3, "block header: bad magic"},
    {"block header field", "data", 13, 3, "block header: checksum"},
    {"block header checksum", "data", 40, 3, "block header: checksum"},
    {"block payload", "data", 0, 4, "payload checksum"},
    {"index", "data", 9, 5, "index: checksum"},
    {"footer index offset", "data", -34, 0, "footer: index at"},
    {"footer index length", "data", -26, 0, "footer: index count"},
    {"footer index count", "data", -18, 0, "footer: index count"},
    {"footer index checksum", "data", -10, 0, "does not match the footer"},
    {"footer magic", "data", -1, 0, "footer: bad magic"},
    {"data truncated", "data", 0, 1, "data file size"},
    {"data truncated to its header", "data", 0, 7, "data file size"},
    {"garbage appended", "data", 0, 2, "data file size"},
};

START_TEST(damage_is_caught)
{
    make_std_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    write_set(d, &o, NULL);
    char err[512];
    ck_assert_int_eq(open_verify(d, err, sizeof(err)), 0);

    char path[160];
    snprintf(path, sizeof(path), "%s/%s", d, damage[_i].file);
    size_t n;
    uint8_t *p = slurp(path, &n);
    struct rec recs[512];
    read_index(d, recs, N_ELEMS(recs));
    uint64_t ioff = sv_be64_get(p + n - 40);
    long off = damage[_i].off < 0 ? (long)n + damage[_i].off : damage[_i].off;
    switch (damage[_i].special) {
    case 0:
        p[off] ^= 0xff;
        break;
    case 1:
        n--;
        break;
    case 2:
        memcpy(p + n, "\n", 1); /* slurp leaves one spare byte */
        n++;
        break;
    case 3:
        p[recs[0].offset + (uint64_t)off] ^= 0xff;
        break;
    case 4:
        p[recs[1].offset + 44 + recs[1].stored - 1] ^= 0x01;
        break;
    case 5:
        p[ioff + (uint64_t)off] ^= 0x10;
        break;
    case 6:
        p[11] ^= 0x01;
        break;
    case 7:
        n = 16;
        break;
    }
    spit(path, p, n);
    free(p);
    int rc = open_verify(d, err, sizeof(err));
    ck_assert_msg(rc == SV_ECORRUPT, "%s: got %d (%s)", damage[_i].name, rc, err);
    ck_assert_msg(strstr(err, damage[_i].part) != NULL, "%s: message \"%s\" lacks \"%s\"",
                  damage[_i].name, err, damage[_i].part);
    free_ents();
}
END_TEST

/* Every single byte of both files, flipped in turn, is caught, and the
 * message names the part that byte belongs to. */
START_TEST(every_flipped_byte_is_caught)
{
    make_tiny_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(_i ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE);
    o.block_size = 48; /* several blocks, some with two entries */
    write_set(d, &o, NULL);
    struct rec recs[16];
    size_t nrec = read_index(d, recs, N_ELEMS(recs));
    ck_assert_uint_ge(nrec, 4);
    char err[512];

    size_t n;
    char path[160];
    snprintf(path, sizeof(path), "%s/data", d);
    uint8_t *p = slurp(path, &n);
    uint64_t ioff = sv_be64_get(p + n - 40);
    for (size_t i = 0; i < n; i++) {
        const char *part = NULL;
        if (i < 16)
            part = "data header";
        else if (i >= n - 40)
            part = "footer";
        else if (i >= ioff)
            part = "index";
        for (size_t b = 0; !part && b < nrec; b++) {
            if (i >= recs[b].offset && i < recs[b].offset + 44)
                part = "block header";
            else if (i >= recs[b].offset && i < recs[b].offset + 44 + recs[b].stored)
                part = "payload checksum";
        }
        ck_assert_ptr_nonnull(part);
        p[i] ^= 0xff;
        spit(path, p, n);
        int rc = open_verify(d, err, sizeof(err));
        ck_assert_msg(rc == SV_ECORRUPT, "data byte %zu: got %d (%s)", i, rc, err);
        ck_assert_msg(strstr(err, part), "data byte %zu: \"%s\" lacks \"%s\"", i, err, part);
        p[i] ^= 0xff;
    }
    spit(path, p, n);
    free(p);

    snprintf(path, sizeof(path), "%s/MANIFEST", d);
    p = slurp(path, &n);
    for (size_t i = 0; i < n; i++) {
        p[i] ^= 0xff;
        spit(path, p, n);
        int rc = open_verify(d, err, sizeof(err));
        ck_assert_msg(rc == SV_ECORRUPT, "MANIFEST byte %zu: got %d (%s)", i, rc, err);
        ck_assert_msg(strstr(err, "MANIFEST: "), "MANIFEST byte %zu: \"%s\"", i, err);
        p[i] ^= 0xff;
    }
    spit(path, p, n);
    free(p);
    ck_assert_int_eq(open_verify(d, err, sizeof(err)), 0);
    free_ents();
}
END_TEST

/* A data file cut at every length, with a MANIFEST that agrees on its size
 * and checksum: the reader faces a hostile footer and index on its own. */
START_TEST(every_truncation_is_caught)
{
    make_tiny_set();
    const char *d = subdir("c");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_ZSTD);
    o.block_size = 48;
    write_set(d, &o, NULL);
    size_t n;
    char path[160];
    snprintf(path, sizeof(path), "%s/data", d);
    uint8_t *p = slurp(path, &n);
    char err[512];
    for (size_t len = 0; len < n; len++) {
        spit(path, p, len);
        uint64_t v[2] = {len, XXH3_64bits(p, len)};
        manifest_edit(d, set_data_sum, v);
        int rc = open_verify(d, err, sizeof(err));
        ck_assert_msg(rc == SV_ECORRUPT, "cut to %zu: got %d (%s)", len, rc, err);
    }
    free(p);
    free_ents();
}
END_TEST

/* The data file of a twin checkpoint (same shape, one value byte different)
 * passes every block check; only the MANIFEST's whole-file XXH3 catches it. */
START_TEST(foreign_data_file_is_caught)
{
    make_std_set();
    const char *a = subdir("a");
    const char *b = subdir("b");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
    write_set(a, &o, NULL);
    ents[5].v[3] ^= 1;
    write_set(b, &o, NULL);
    size_t n;
    uint8_t *p = slurp(path_in(b, "data"), &n);
    spit(path_in(a, "data"), p, n);
    free(p);
    char err[512];
    ck_assert_int_eq(open_verify(a, err, sizeof(err)), SV_ECORRUPT);
    ck_assert_msg(strstr(err, "data checksum"), "got: %s", err);
    free_ents();
}
END_TEST

/* Entry-level damage behind valid checksums (the files re-sealed after the
 * edit): framing, stored keys, key groups, order, counts, sizes. Payloads are
 * stored uncompressed so the edits can find their bytes. */
static const struct {
    const char *name;
    const char *part;
} hostile[] = {
    {"value length past the block", "bad framing"},
    {"stored key with an empty key", "not a stored key"},
    {"entry in the wrong key group", "entry 2: key group 3"},
    {"keys out of order", "not strictly increasing"},
    {"keys out of order across blocks", "not strictly increasing"},
    {"entry count in header and index", "entries, the index says"},
    {"index raw length huge", "raw length out of bounds"},
    {"index stored length past the index", "bad compression or stored length"},
    {"index out of order", "index: record"},
    {"manifest state counts", "MANIFEST: totals"},
    {"manifest and index disagree", "differ from the MANIFEST"},
    {"unknown compression byte", "bad compression"},
    {"zstd frame shorter than raw", "decompressed to"},
};

static void add_state_entry(Statesrv__V1__CheckpointManifest *pm, void *ud)
{
    pm->states[0]->entries++;
    if (*(int *)ud)
        pm->entries++;
}

START_TEST(hostile_contents_are_caught)
{
    make_std_set();
    const char *d = subdir("c");
    int zstd = _i == 12;
    struct sv_ckpt_writer_options o =
        std_opts(zstd ? SV_CKPT_COMPRESS_ZSTD : SV_CKPT_COMPRESS_NONE);
    write_set(d, &o, NULL);
    struct rec recs[512];
    size_t nrec = read_index(d, recs, N_ELEMS(recs));
    size_t n;
    char path[160];
    snprintf(path, sizeof(path), "%s/data", d);
    uint8_t *p = slurp(path, &n);
    uint64_t ioff = sv_be64_get(p + n - 40);
    /* Block 0 is alpha, key group 1: u00010 "", u00010 "ns1", u00011 "".
     * Each entry: varint(skl) skey varint(vl) value, with skey = kg(2)
     * varint(6) "u00010" ns. */
    uint8_t *b0 = p + recs[0].offset + 44;
    ck_assert_uint_eq(recs[0].entries, 3);
    size_t e1 = 0, e2 = 0; /* where entries 1 and 2 start */
    if (!zstd) {
        ck_assert_uint_eq(b0[0], 9); /* skl */
        e1 = 1 + 9 + 1 + b0[10];
        ck_assert_uint_eq(b0[e1], 12);
        e2 = e1 + 1 + 12 + 1 + b0[e1 + 13];
        ck_assert_uint_eq(b0[e2], 9);
    }
    uint8_t *x0 = p + ioff; /* index record 0 */
    /* gamma, key group 10: the blocks after the first. */
    size_t g = nrec;
    for (size_t i = 0; i + 1 < nrec; i++)
        if (recs[i].state == 2 && recs[i].kg == 10 && recs[i + 1].kg == 10) {
            g = i;
            break;
        }
    ck_assert_uint_lt(g, nrec);
    int both = 1;
    switch (_i) {
    case 0:
        b0[10] = 0x7f; /* the first value claims 127 bytes */
        break;
    case 1:
        b0[3] = 0; /* varint(len key) = 0 */
        break;
    case 2:
        b0[e2 + 2] ^= 0x02; /* last entry: key group 1 -> 3, still in key order */
        break;
    case 3:
        b0[e1 + 1 + 3 + 4] = '0'; /* second entry's key u00010 -> u00000 */
        break;
    case 4: {
        /* The first key of a later kg-10 block made smaller than its predecessor. */
        uint8_t *gb = p + recs[g + 1].offset + 44;
        gb[1 + 2 + 1 + 2] = '0'; /* "h011" -> "h001" */
        break;
    }
    case 5:
        /* ... and the MANIFEST counts one more entry too (below). */
        sv_be32_put(p + recs[0].offset + 12, 4);
        sv_be32_put(x0 + 24, 4);
        break;
    case 6:
        sv_be32_put(x0 + 20, 0xffffffffu);
        break;
    case 7:
        sv_be32_put(x0 + 16, 0x7fffffffu);
        break;
    case 8:
        /* Swap the key groups of records 0 and 1. */
        sv_be32_put(x0 + 4, recs[1].kg);
        sv_be32_put(x0 + 32 + 4, recs[0].kg);
        break;
    case 9:
        both = 0;
        /* fall through */
    case 10:
        break;
    case 11:
        p[recs[0].offset + 24] = 7;
        x0[28] = 7;
        break;
    case 12: {
        /* A zstd block whose raw length claims one byte more than its frame. */
        size_t z = nrec;
        for (size_t i = 0; i < nrec && z == nrec; i++)
            if (p[recs[i].offset + 24] == 1)
                z = i;
        ck_assert_uint_lt(z, nrec);
        sv_be32_put(p + recs[z].offset + 16, recs[z].raw + 1);
        sv_be32_put(p + ioff + 32 * z + 20, recs[z].raw + 1);
        break;
    }
    }
    spit(path, p, n);
    free(p);
    reseal(d);
    if (_i == 5 || _i == 9 || _i == 10)
        manifest_edit(d, add_state_entry, &both);
    char err[512];
    int rc = open_verify(d, err, sizeof(err));
    ck_assert_msg(rc == SV_ECORRUPT, "%s: got %d (%s)", hostile[_i].name, rc, err);
    ck_assert_msg(strstr(err, hostile[_i].part), "%s: \"%s\" lacks \"%s\"", hostile[_i].name, err,
                  hostile[_i].part);
    free_ents();
}
END_TEST

/* --- running out of space ------------------------------------------------- */

/* A child process writes under RLIMIT_FSIZE (SIGXFSZ ignored, so write(2)
 * fails with EFBIG, as ENOSPC would on a full disk). Case 0 stays inside the
 * writer's output buffer until finish; case 1 fails during add. */
START_TEST(full_disk_fails_cleanly)
{
    const char *d = subdir("c");
    size_t total = _i ? (3u << 20) : (300u << 10);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64u << 10, 64u << 10};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(10);
        struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
        o.block_size = 0;
        struct sv_ckpt_writer *w;
        char err[512];
        if (sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)) != 0 ||
            sv_ckpt_writer_state(w, "big") != 0)
            _exit(11);
        uint8_t val[1000];
        uint64_t x = 88172645463325252ull;
        int add_rc = 0;
        for (size_t i = 0; i < total / sizeof(val) && !add_rc; i++) {
            for (size_t j = 0; j < sizeof(val); j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                val[j] = (uint8_t)x;
            }
            char key[16];
            uint8_t sk[32];
            snprintf(key, sizeof(key), "k%08zu", i);
            size_t skl = sv_skey_encode(sk, 7, key, strlen(key), "", 0);
            add_rc = sv_ckpt_writer_add(w, sk, skl, val, sizeof(val));
        }
        if (_i == 0 && add_rc != 0)
            _exit(12); /* should only show in finish */
        if (_i == 1 && add_rc != -EFBIG && add_rc != -ENOSPC)
            _exit(13);
        int rc = sv_ckpt_writer_finish(w, NULL, err, sizeof(err));
        if (rc != -EFBIG && rc != -ENOSPC)
            _exit(14);
        if (!strstr(err, "data: write"))
            _exit(15);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    ck_assert(!exists(path_in(d, "MANIFEST")));
    ck_assert(!exists(path_in(d, "MANIFEST.tmp")));
    struct sv_ckpt_reader *r;
    char err[512];
    ck_assert_int_eq(sv_ckpt_open(d, &r, err, sizeof(err)), -ENOENT);
}
END_TEST

/* --- hostile files ---------------------------------------------------------- */

static const char *const hostile_file_names[] = {SV_CKPT_MANIFEST_FILE, SV_CKPT_DATA_FILE};

/* Opens d expecting SV_ECORRUPT with a message naming `file` and `why`. */
static void open_refused(const char *d, const char *file, const char *why)
{
    struct sv_ckpt_reader *r = (struct sv_ckpt_reader *)1;
    char err[512] = "";
    int rc = sv_ckpt_open(d, &r, err, sizeof(err));
    ck_assert_msg(rc == SV_ECORRUPT, "rc %d (%s)", rc, err);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err, path_in(d, file)) && strstr(err, why), "\"%s\" lacks %s and \"%s\"",
                  err, file, why);
}

/* A FIFO in place of MANIFEST or data is refused at once: opening one for
 * reading used to block until a writer came (the server lists checkpoints
 * on its loop thread), which the case's 5 s timeout would catch. */
START_TEST(fifo_is_refused_without_blocking)
{
    make_tiny_set();
    const char *d = subdir("fifo");
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
    write_set(d, &o, NULL);
    const char *name = hostile_file_names[_i];
    ck_assert_int_eq(unlink(path_in(d, name)), 0);
    ck_assert_int_eq(mkfifo(path_in(d, name), 0644), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    open_refused(d, name, "not a regular file");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 2);
}
END_TEST

/* MANIFEST or data as a symbolic link to the same file of an identical,
 * valid checkpoint elsewhere: refused, though following it would verify (a
 * link may lead out of the directory a server confined a source to). */
START_TEST(symlinked_file_is_refused)
{
    make_tiny_set();
    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
    char d[128], other[128];
    snprintf(d, sizeof(d), "%.100s", subdir("victim"));
    snprintf(other, sizeof(other), "%.100s", subdir("elsewhere"));
    write_set(d, &o, NULL);
    write_set(other, &o, NULL);
    const char *name = hostile_file_names[_i];
    char target[200];
    snprintf(target, sizeof(target), "%s", path_in(other, name));
    ck_assert_int_eq(unlink(path_in(d, name)), 0);
    ck_assert_int_eq(symlink(target, path_in(d, name)), 0);
    /* The link's target is a good file: the same checkpoint verifies. */
    struct sv_ckpt_reader *r = open_ok(other);
    char err[512];
    ck_assert_int_eq(verify(r, err, sizeof(err)), 0);
    sv_ckpt_close(r);
    open_refused(d, name, "symbolic link");
}
END_TEST

/* A stored key longer than any store holds (LMDB's 511 bytes): the writer
 * will not write one, and a crafted file with one fails verify and
 * iteration, naming the data file; 511 bytes still verify. */
START_TEST(stored_key_longer_than_a_store_holds_is_refused)
{
    static const size_t lens[] = {SV_CKPT_SKEY_MAX, SV_CKPT_SKEY_MAX + 1, 600};
    size_t len = lens[_i];
    uint8_t sk[700], key[700];
    memset(key, 'k', sizeof(key));
    size_t klen = len - 2 - sv_varint_size(len); /* close enough: adjusted below */
    while (sv_skey_size(klen, 0) < len)
        klen++;
    while (sv_skey_size(klen, 0) > len)
        klen--;
    ck_assert_uint_eq(sv_skey_size(klen, 0), len);
    size_t skl = sv_skey_encode(sk, 5, key, klen, NULL, 0);
    const uint8_t v[] = {1, 0, 'v'};

    struct sv_ckpt_writer_options o = std_opts(SV_CKPT_COMPRESS_NONE);
    struct sv_ckpt_writer *w;
    char err[512] = "";
    ck_assert_int_eq(sv_ckpt_writer_open(subdir("writer"), &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(sv_ckpt_writer_state(w, "s"), 0);
    ck_assert_int_eq(sv_ckpt_writer_add(w, sk, skl, v, sizeof(v)),
                     len <= SV_CKPT_SKEY_MAX ? 0 : SV_EINVAL);
    sv_ckpt_writer_abort(w);

    const char *d = subdir("crafted");
    craft_ckpt_one_entry(d, 64, sk, skl, v, sizeof(v));
    struct sv_ckpt_reader *r = open_ok(d);
    int rc = verify(r, err, sizeof(err));
    struct sv_ckpt_iter *it;
    ck_assert_int_eq(sv_ckpt_iter_open(r, 0, 0, 63, &it), 0);
    const uint8_t *k, *val;
    size_t kl, vl;
    int irc = sv_ckpt_iter_next(it, &k, &kl, &val, &vl);
    sv_ckpt_iter_close(it);
    if (len <= SV_CKPT_SKEY_MAX) {
        ck_assert_msg(rc == 0, "verify: %s", err);
        ck_assert_int_eq(irc, 1);
        ck_assert_uint_eq(kl, skl);
    } else {
        ck_assert_int_eq(rc, SV_ECORRUPT);
        ck_assert_msg(strstr(err, path_in(d, SV_CKPT_DATA_FILE)) &&
                          strstr(err, "longer than a store can hold"),
                      "got: %s", err);
        ck_assert_int_eq(irc, SV_ECORRUPT);
    }
    sv_ckpt_close(r);
}
END_TEST

Suite *sv_suite_ckpt(void)
{
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, round_trip, 0, 2);
    tcase_add_test(tc, manifest_fields);
    tcase_add_test(tc, empty_checkpoints);
    tcase_add_loop_test(tc, format_pinned, 0, 2);
    tcase_add_loop_test(tc, range_reads_only_its_blocks, 0, 2);
    tcase_add_test(tc, kg_entries_from_index);
    tcase_add_loop_test(tc, writer_refuses_misuse, 0, (int)N_ELEMS(misuse_names));
    tcase_add_test(tc, writer_refuses_bad_options);
    tcase_add_test(tc, writer_abort);
    tcase_add_loop_test(tc, damage_is_caught, 0, (int)N_ELEMS(damage));
    tcase_add_loop_test(tc, every_flipped_byte_is_caught, 0, 2);
    tcase_add_test(tc, every_truncation_is_caught);
    tcase_add_test(tc, foreign_data_file_is_caught);
    tcase_add_loop_test(tc, hostile_contents_are_caught, 0, (int)N_ELEMS(hostile));
    tcase_add_loop_test(tc, full_disk_fails_cleanly, 0, 2);
    suite_add_tcase(s, tc);

    /* Short timeout: a file that blocks the reader must fail fast. */
    TCase *th = tcase_create("hostile files");
    tcase_set_timeout(th, 5);
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_add_loop_test(th, fifo_is_refused_without_blocking, 0, 2);
    tcase_add_loop_test(th, symlinked_file_is_refused, 0, 2);
    tcase_add_loop_test(th, stored_key_longer_than_a_store_holds_is_refused, 0, 3);
    suite_add_tcase(s, th);
    return s;
}
