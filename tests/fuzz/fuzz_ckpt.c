/* libFuzzer target: the checkpoint format's parsers (common/sv_ckpt_format.c)
 * on buffers, and the file reader (io/sv_ckpt.c) on the same bytes.
 *
 * Input layout:
 *   u8       flags (below)
 *   u8       seed for the key-group ranges iterated
 *   u32 BE   L, the MANIFEST's size (clamped to what follows)
 *   L bytes  MANIFEST
 *   rest     data
 *
 * First the parsers run on the buffers directly, as a reader must chain
 * them: sv_ckpt_manifest_decode, sv_ckpt_data_header_check,
 * sv_ckpt_footer_decode, sv_ckpt_index_decode, then sv_ckpt_block_decode and
 * sv_ckpt_entries_check of every block, the per-state byte counts and the
 * whole-file XXH3. Then both files are written into a directory made once
 * per process (mkdtemp) and sv_ckpt_open, sv_ckpt_verify and an iteration of
 * every state over several key-group ranges (the whole range, the
 * manifest's, random ones, invalid ones) run on it. It must never crash,
 * hang or leak; the reader must agree with the parsers (it passes exactly
 * when they do, with the same reason behind the file's path); every entry an
 * iterator hands out must be a stored key in the range asked for, in
 * strictly increasing order; and once verify has passed, iteration must not
 * fail, and must yield exactly the manifest's entries and bytes per state
 * and the index's per-key-group counts.
 *
 * Checksums would stop a mutation at the first XXH3, so flags can repair them
 * after mutation, through the format module's own encoders (a fixed-up input
 * still exercises the structural checks behind the checksums). Seeds are real
 * checkpoints from the writer. */
#include "checkpoint.pb-c.h"
#include "sv_be.h"
#include "sv_ckpt.h"
#include "sv_ckpt_format.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ckpt: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "fuzz_ckpt: " __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* flags */
#define FIX_BLOCKS 0x01u        /* block header and payload checksums */
#define FIX_INDEX 0x02u         /* the footer's index checksum */
#define FIX_MANIFEST_DATA 0x04u /* the manifest's data_bytes and data_xxh3 */
#define FIX_MANIFEST 0x08u      /* the MANIFEST length field and checksum */
#define NO_MANIFEST 0x10u
#define NO_DATA 0x20u
#define DATA_IS_DIR 0x40u
#define ITER_FIRST 0x80u /* iterate before verifying, as well as after */

#define HDR 6u /* of the fuzz input: flags, seed, L */
#define MAX_STATES_ITERATED 64
#define MAX_RANGE_COUNTED 512u /* ranges up to this many key groups are cross-checked */

static char dir[256], manifest_path[300], data_path[300];
static int verbose; /* FUZZ_VERBOSE=1: say how far each input got */

static void cleanup(void)
{
    if (!dir[0])
        return;
    unlink(manifest_path);
    unlink(data_path);
    rmdir(data_path);
    rmdir(dir);
    dir[0] = '\0';
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz_ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        DIE("mkdtemp %s: %s", dir, strerror(errno));
    snprintf(manifest_path, sizeof(manifest_path), "%s/%s", dir, SV_CKPT_MANIFEST_FILE);
    snprintf(data_path, sizeof(data_path), "%s/%s", dir, SV_CKPT_DATA_FILE);
    atexit(cleanup);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

/* --- checksum repair ------------------------------------------------------ */

/* The data file's footer, if it decodes (a file whose footer does not is
 * refused there, repaired or not). */
static int footer_of(const uint8_t *d, size_t n, struct sv_ckpt_footer *f)
{
    return n >= SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE &&
           sv_ckpt_footer_decode(d + n - SV_CKPT_FOOTER_SIZE, n, f, NULL, 0) == 0;
}

/* Re-seals every block header in the chain from the first block to the
 * index (or the footer), whatever its fields say. */
static void fix_blocks(uint8_t *d, size_t n)
{
    struct sv_ckpt_footer f;
    uint64_t end = footer_of(d, n, &f) ? f.index_offset : n - SV_CKPT_FOOTER_SIZE;
    uint64_t off = SV_CKPT_DATA_HEADER_SIZE;
    while (off + SV_CKPT_BLOCK_HEADER_SIZE <= end) {
        uint8_t *h = d + off;
        struct sv_ckpt_block_info x;
        sv_ckpt_block_header_get(h, &x);
        if (x.stored > end - off - SV_CKPT_BLOCK_HEADER_SIZE)
            break;
        sv_ckpt_block_header_put(h, &x, XXH3_64bits(h + SV_CKPT_BLOCK_HEADER_SIZE, x.stored));
        off += SV_CKPT_BLOCK_HEADER_SIZE + x.stored;
    }
}

static void fix_index(uint8_t *d, size_t n)
{
    struct sv_ckpt_footer f;
    if (!footer_of(d, n, &f))
        return;
    f.index_xxh3 = XXH3_64bits(d + f.index_offset, (size_t)f.index_len);
    sv_ckpt_footer_put(d + n - SV_CKPT_FOOTER_SIZE, &f);
}

/* Rewrites the manifest body with data_bytes and data_xxh3 matching the data
 * file. *m is replaced by a new malloc'd image (same magic and trailer). */
static void fix_manifest_data(uint8_t **m, size_t *mlen, const uint8_t *d, size_t dlen)
{
    size_t blen;
    const uint8_t *b = sv_ckpt_manifest_body(*m, *mlen, &blen);
    if (!b)
        return;
    Statesrv__V1__CheckpointManifest *pm = statesrv__v1__checkpoint_manifest__unpack(NULL, blen, b);
    if (!pm)
        return;
    pm->data_bytes = dlen;
    pm->data_xxh3 = XXH3_64bits(d, dlen);
    if (pm->n_chain) { /* version 2: the data file is the chain's last link */
        Statesrv__V1__CheckpointLink *own = pm->chain[pm->n_chain - 1];
        uint64_t total = pm->total_bytes - own->data_bytes;
        own->data_bytes = dlen;
        own->data_xxh3 = pm->data_xxh3;
        pm->added_bytes = dlen;
        pm->total_bytes = total + dlen;
    }
    size_t body = statesrv__v1__checkpoint_manifest__get_packed_size(pm);
    size_t head = (size_t)(b - *m);
    size_t nlen = body + SV_CKPT_MANIFEST_OVERHEAD;
    uint8_t *n = malloc(nlen);
    CHECK(n != NULL);
    memcpy(n, *m, head);
    statesrv__v1__checkpoint_manifest__pack(pm, n + head);
    memcpy(n + nlen - (*mlen - head - blen), b + blen, *mlen - head - blen);
    statesrv__v1__checkpoint_manifest__free_unpacked(pm, NULL);
    free(*m);
    *m = n;
    *mlen = nlen;
}

static void fix_manifest(uint8_t *m, size_t n)
{
    if (n >= SV_CKPT_MANIFEST_OVERHEAD)
        sv_ckpt_manifest_seal(m, n);
}

/* --- the parsers on buffers --------------------------------------------------- */

/* What the parsers say of the two buffers: 0, or the first failure with its
 * reason in why. The checks a file reader adds (file type, sizes against
 * the MANIFEST) come first, as the reader makes them. */
static int parse_buffers(const uint8_t *m, size_t mlen, const uint8_t *d, size_t dlen, char *why,
                         size_t whylen)
{
    struct sv_ckpt_manifest man;
    struct sv_ckpt_block_info *idx = NULL;
    struct sv_ckpt_block_decoder dec = {SV_BUF_INIT, NULL};
    struct sv_buf prev = SV_BUF_INIT;
    uint64_t *kv = NULL;
    snprintf(why, whylen, "file checks");
    if (mlen < SV_CKPT_MANIFEST_OVERHEAD)
        return SV_ECORRUPT;
    struct sv_ckpt_manifest top;
    int rc = sv_ckpt_manifest_decode(m, mlen, &top, why, whylen);
    if (rc)
        return rc;
    if (top.format_version == SV_CKPT_FORMAT_V1) {
        man = top;
    } else { /* version 2: the data file is checked against its own link */
        rc = sv_ckpt_link_manifest(&top, top.n_links - 1, &man);
        sv_ckpt_manifest_free(&top);
        CHECK(rc == 0);
    }
    snprintf(why, whylen, "file checks");
    rc = SV_ECORRUPT;
    if (dlen != man.data_bytes || dlen < SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE)
        goto out;
    struct sv_ckpt_footer f;
    if ((rc = sv_ckpt_data_header_check(d, man.format_version, why, whylen)) ||
        (rc = sv_ckpt_footer_decode(d + dlen - SV_CKPT_FOOTER_SIZE, dlen, &f, why, whylen)) ||
        (rc = sv_ckpt_index_decode(d + f.index_offset, &f, &man, &idx, why, whylen)))
        goto out;
    kv = calloc(man.n_states ? man.n_states : 1, sizeof(*kv));
    CHECK(kv != NULL);
    for (size_t i = 0; i < f.index_count; i++) {
        const struct sv_ckpt_block_info *x = &idx[i];
        const uint8_t *raw;
        uint64_t bytes;
        if (i == 0 || x->state != idx[i - 1].state)
            prev.len = 0;
        if ((rc = sv_ckpt_block_decode(&dec, x, d + x->offset, &raw, why, whylen)) ||
            (rc = sv_ckpt_entries_check(raw, x, &prev, &bytes, why, whylen)))
            goto out;
        kv[x->state] += bytes;
    }
    snprintf(why, whylen, "sums");
    rc = SV_ECORRUPT;
    for (size_t i = 0; i < man.n_states; i++)
        if (kv[i] != man.states[i].raw_bytes)
            goto out;
    if (XXH3_64bits(d, dlen) != man.data_xxh3)
        goto out;
    rc = 0;
out:
    free(kv);
    free(idx);
    sv_buf_free(&prev);
    sv_ckpt_block_decoder_free(&dec);
    sv_ckpt_manifest_free(&man);
    return rc;
}

/* The reader's message for a failure the parsers gave as why: the same
 * reason with a path in front (the file checks and the sums are worded by
 * the reader alone). */
static void check_same_reason(const char *err, const char *why)
{
    if (strcmp(why, "file checks") == 0 || strcmp(why, "sums") == 0)
        return;
    const char *tail = strstr(err, ": ");
    if (!tail || strcmp(tail + 2, why) != 0)
        DIE("the reader says \"%s\", the parsers \"%s\"", err, why);
}

/* --- files ------------------------------------------------------------------ */

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        DIE("%s: %s", path, strerror(errno));
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            DIE("%s: write: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

/* --- iteration ---------------------------------------------------------------- */

static uint32_t rng(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Iterates state s over first..last and checks what comes out. verified: the
 * checkpoint passed sv_ckpt_verify. */
static void iterate(struct sv_ckpt_reader *r, size_t s, uint32_t first, uint32_t last, int verified)
{
    const struct sv_ckpt_manifest *m = sv_ckpt_file_manifest(r);
    struct sv_ckpt_iter *it;
    int rc = sv_ckpt_iter_open(r, s, first, last, &it);
    if (s >= m->n_states || first > last) {
        CHECK(rc == SV_EINVAL && it == NULL);
        return;
    }
    CHECK(rc == 0 && it != NULL);
    uint8_t prev[1024];
    size_t prevlen = 0;
    int have_prev = 0;
    uint64_t count = 0, bytes = 0;
    volatile uint8_t sink = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    while ((rc = sv_ckpt_iter_next(it, &k, &kl, &v, &vl)) == 1) {
        struct sv_skey sk;
        CHECK(sv_skey_decode(k, kl, &sk) == 0);
        CHECK(sk.kg >= first && sk.kg <= last);
        CHECK(sk.kg >= m->kg_first && sk.kg <= m->kg_last);
        if (have_prev)
            CHECK(sv_skey_cmp(prev, prevlen, k, kl) < 0);
        /* Every byte handed out is readable (ASan checks the bounds). */
        for (size_t i = 0; i < kl; i++)
            sink ^= k[i];
        for (size_t i = 0; i < vl; i++)
            sink ^= v[i];
        if (kl <= sizeof(prev)) {
            memcpy(prev, k, kl);
            prevlen = kl;
            have_prev = 1;
        } else {
            have_prev = 0;
        }
        count++;
        bytes += kl + vl;
    }
    (void)sink;
    if (rc != 0) {
        CHECK(rc < 0);
        CHECK(sv_ckpt_errmsg(r)[0] != '\0');
        /* Errors are sticky. */
        CHECK(sv_ckpt_iter_next(it, &k, &kl, &v, &vl) == rc);
        if (verified)
            DIE("iteration of state %zu, key groups %u..%u failed after verify passed: %s", s,
                (unsigned)first, (unsigned)last, sv_ckpt_errmsg(r));
    }
    sv_ckpt_iter_close(it);
    if (!verified || rc != 0)
        return;
    const struct sv_ckpt_state *st = &m->states[s];
    if (first <= m->kg_first && last >= m->kg_last) {
        CHECK(count == st->entries);
        CHECK(bytes == st->raw_bytes);
    }
    if ((uint64_t)last - first < MAX_RANGE_COUNTED) {
        uint64_t expect = 0;
        for (uint64_t kg = first; kg <= last; kg++)
            expect += sv_ckpt_kg_entries(r, s, (uint32_t)kg);
        CHECK(count == expect);
    }
}

static void iterate_all(struct sv_ckpt_reader *r, uint32_t *seed, int verified)
{
    const struct sv_ckpt_manifest *m = sv_ckpt_file_manifest(r);
    size_t n = m->n_states < MAX_STATES_ITERATED ? m->n_states : MAX_STATES_ITERATED;
    uint32_t kgs = m->key_groups;
    for (size_t s = 0; s < n; s++) {
        iterate(r, s, 0, UINT32_MAX, verified);
        iterate(r, s, m->kg_first, m->kg_last, verified);
        for (int i = 0; i < 3; i++) {
            uint32_t a = rng(seed) % (kgs + 2), b = rng(seed) % (kgs + 2);
            if (rng(seed) % 8 && a > b) {
                uint32_t t = a;
                a = b;
                b = t;
            }
            iterate(r, s, a, b, verified); /* a > b now and then: SV_EINVAL */
        }
        uint32_t kg = rng(seed) % kgs;
        iterate(r, s, kg, kg, verified);
    }
    iterate(r, m->n_states, 0, UINT32_MAX, verified); /* out of range */
}

/* verify's progress callback: byte counts only grow, and stay in the file. */
struct progress {
    uint64_t last, size;
    int calls;
};

static void on_progress(void *ud, uint64_t bytes)
{
    struct progress *p = ud;
    CHECK(bytes >= p->last && bytes <= p->size);
    p->last = bytes;
    p->calls++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    unsigned flags = data[0];
    uint32_t seed = (uint32_t)data[1] * 2654435761u + 1u;
    size_t mlen = sv_be32_get(data + 2);
    if (mlen > size - HDR)
        mlen = size - HDR;
    size_t dlen = size - HDR - mlen;
    uint8_t *m = malloc(mlen ? mlen : 1), *d = malloc(dlen ? dlen : 1);
    CHECK(m && d);
    memcpy(m, data + HDR, mlen);
    memcpy(d, data + HDR + mlen, dlen);

    if (dlen >= SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE) {
        if (flags & FIX_BLOCKS)
            fix_blocks(d, dlen);
        if (flags & FIX_INDEX)
            fix_index(d, dlen);
    }
    if (flags & FIX_MANIFEST_DATA)
        fix_manifest_data(&m, &mlen, d, dlen);
    if (flags & FIX_MANIFEST)
        fix_manifest(m, mlen);

    char why[512];
    int prc = flags & (NO_MANIFEST | NO_DATA | DATA_IS_DIR)
                  ? SV_ECORRUPT
                  : parse_buffers(m, mlen, d, dlen, why, sizeof(why));

    unlink(manifest_path);
    unlink(data_path);
    rmdir(data_path);
    if (!(flags & NO_MANIFEST))
        write_file(manifest_path, m, mlen);
    if (flags & DATA_IS_DIR) {
        CHECK(mkdir(data_path, 0750) == 0);
    } else if (!(flags & NO_DATA)) {
        write_file(data_path, d, dlen);
    }
    free(m);
    free(d);

    struct sv_ckpt_reader *r = NULL;
    char err[512];
    err[0] = '\0';
    int rc = sv_ckpt_open(dir, &r, err, sizeof(err));
    if (rc) {
        CHECK(rc < 0 && r == NULL && err[0]);
        if (verbose)
            fprintf(stderr, "fuzz_ckpt: open: %s\n", err);
        if (!(flags & (NO_MANIFEST | NO_DATA | DATA_IS_DIR))) {
            if (prc == 0)
                DIE("the parsers pass what the reader refuses: %s", err);
            check_same_reason(err, why);
        }
        return 0;
    }
    CHECK(r != NULL);
    const struct sv_ckpt_manifest *man = sv_ckpt_manifest(r);
    CHECK(man->format_version == SV_CKPT_FORMAT_V1 || man->format_version == SV_CKPT_FORMAT_V2);
    /* Version 2: the chain ends with this file, as its link says. */
    CHECK(man->format_version == SV_CKPT_FORMAT_V1 ||
          (man->n_links >= 1 && man->links[man->n_links - 1].checkpoint_id == man->checkpoint_id &&
           sv_ckpt_file_manifest(r)->data_bytes == man->added_bytes));
    CHECK(man->kg_first <= man->kg_last && man->kg_last < man->key_groups);
    CHECK(man->key_groups <= SV_KEY_GROUPS_MAX);

    if (flags & ITER_FIRST)
        iterate_all(r, &seed, 0);
    struct progress prog = {.size = man->data_bytes};
    rc = sv_ckpt_verify(r, on_progress, &prog, err, sizeof(err));
    if (rc)
        CHECK(rc < 0 && err[0]);
    else
        CHECK(prog.calls > 0 && prog.last == man->data_bytes);
    if ((rc == 0) != (prc == 0))
        DIE("verify: %s, the parsers: %s", rc ? err : "ok", prc ? why : "ok");
    if (rc)
        check_same_reason(err, why);
    if (verbose)
        fprintf(stderr, "fuzz_ckpt: %zu state(s), verify: %s\n", man->n_states, rc ? err : "ok");
    iterate_all(r, &seed, rc == 0);
    sv_ckpt_close(r);
    return 0;
}
