/* The checkpoint format's codec (see sv_ckpt_format.h): bytes in memory to
 * structs and back. Magics and field offsets appear only here. */
#include "sv_ckpt_format.h"
#include "checkpoint.pb-c.h"
#include "sv_be.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define DATA_MAGIC "SVCKDAT1"
#define BLOCK_MAGIC "SVBK"
#define BLOCK_HEADER_HASHED 36u /* the header checksum covers bytes 0..35 */
#define FOOTER_MAGIC "SVCKEND1"
#define MANIFEST_MAGIC "SVCKMAN1"
/* Per entry, the two varints take 2..20 bytes. */
#define ENTRY_OVERHEAD_MIN 2u
#define ENTRY_OVERHEAD_MAX 20u

/* Block compression byte values (on disk, same numbers as the enum). */
#define COMP_NONE 0u
#define COMP_ZSTD 1u

/* Formats a reason into why; returns rc. */
__attribute__((format(printf, 4, 5))) static int fail(int rc, char *why, size_t whylen,
                                                      const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Adds b to *a unless that overflows; 0 or -1. */
static int add_u64(uint64_t *a, uint64_t b)
{
    if (*a > UINT64_MAX - b)
        return -1;
    *a += b;
    return 0;
}

void sv_ckpt_manifest_free(struct sv_ckpt_manifest *m)
{
    if (!m)
        return;
    free(m->states);
    m->states = NULL;
    m->n_states = 0;
    for (size_t i = 0; i < m->n_links; i++)
        free(m->links[i].states);
    free(m->links);
    m->links = NULL;
    m->n_links = 0;
}

int sv_ckpt_link_manifest(const struct sv_ckpt_manifest *m, size_t i, struct sv_ckpt_manifest *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= m->n_links)
        return SV_EINVAL;
    const struct sv_ckpt_link *l = &m->links[i];
    out->format_version = m->format_version;
    out->checkpoint_id = l->checkpoint_id;
    out->created_unix_ms = m->created_unix_ms;
    memcpy(out->server_version, m->server_version, sizeof(out->server_version));
    out->key_groups = m->key_groups;
    out->kg_first = m->kg_first;
    out->kg_last = m->kg_last;
    out->entries = l->entries;
    out->raw_bytes = l->raw_bytes;
    out->data_bytes = l->data_bytes;
    out->data_xxh3 = l->data_xxh3;
    out->compression = m->compression;
    out->compression_level = m->compression_level;
    out->blocks = l->blocks;
    out->incremental = l->incremental;
    out->base_id = m->base_id;
    out->added_bytes = l->data_bytes;
    out->total_bytes = l->data_bytes;
    if (l->n_states) {
        out->states = calloc(l->n_states, sizeof(*out->states));
        if (!out->states)
            return -ENOMEM;
        memcpy(out->states, l->states, l->n_states * sizeof(*out->states));
    }
    out->n_states = l->n_states;
    return 0;
}

/* --- MANIFEST -------------------------------------------------------------- */

static const char *compression_name(enum sv_ckpt_compression c)
{
    return c == SV_CKPT_COMPRESS_ZSTD ? "zstd" : "none";
}

static void state_to_pb(const struct sv_ckpt_state *s, Statesrv__V1__CheckpointStateInfo *info)
{
    Statesrv__V1__CheckpointStateInfo init = STATESRV__V1__CHECKPOINT_STATE_INFO__INIT;
    *info = init;
    info->name = (char *)s->name;
    info->entries = s->entries;
    info->raw_bytes = s->raw_bytes;
    info->kg_min = s->kg_min;
    info->kg_max = s->kg_max;
    info->blocks = s->blocks;
    info->reset = s->reset != 0;
    info->tombstones = s->tombstones;
    info->ttl_ms = s->ttl_ms;
    info->ttl_update = s->ttl_update;
    info->ttl_visibility = s->ttl_visibility;
}

/* Protobuf views of states[0..n): infos and the pointer array, in one
 * allocation the caller frees. NULL on -ENOMEM. */
static Statesrv__V1__CheckpointStateInfo **states_to_pb(const struct sv_ckpt_state *states,
                                                        size_t n)
{
    size_t k = n ? n : 1;
    void *mem = calloc(k, sizeof(Statesrv__V1__CheckpointStateInfo *) +
                              sizeof(Statesrv__V1__CheckpointStateInfo));
    if (!mem)
        return NULL;
    Statesrv__V1__CheckpointStateInfo **ptrs = mem;
    Statesrv__V1__CheckpointStateInfo *infos = (void *)(ptrs + k);
    for (size_t i = 0; i < n; i++) {
        state_to_pb(&states[i], &infos[i]);
        ptrs[i] = &infos[i];
    }
    return ptrs;
}

int sv_ckpt_manifest_encode(const struct sv_ckpt_manifest *m, uint8_t **out, size_t *outlen)
{
    Statesrv__V1__CheckpointManifest pm = STATESRV__V1__CHECKPOINT_MANIFEST__INIT;
    size_t nl = m->n_links;
    Statesrv__V1__CheckpointStateInfo **ptrs = states_to_pb(m->states, m->n_states);
    Statesrv__V1__CheckpointLink *links = calloc(nl ? nl : 1, sizeof(*links));
    Statesrv__V1__CheckpointLink **lptrs = calloc(nl ? nl : 1, sizeof(*lptrs));
    int rc = -ENOMEM;
    if (!ptrs || !links || !lptrs)
        goto out;
    for (size_t i = 0; i < nl; i++) {
        const struct sv_ckpt_link *l = &m->links[i];
        Statesrv__V1__CheckpointLink init = STATESRV__V1__CHECKPOINT_LINK__INIT;
        links[i] = init;
        links[i].checkpoint_id = l->checkpoint_id;
        links[i].file = (char *)l->file;
        links[i].data_bytes = l->data_bytes;
        links[i].data_xxh3 = l->data_xxh3;
        links[i].incremental = l->incremental != 0;
        links[i].entries = l->entries;
        links[i].raw_bytes = l->raw_bytes;
        links[i].blocks = l->blocks;
        links[i].n_states = l->n_states;
        if (!(links[i].states = states_to_pb(l->states, l->n_states)))
            goto out;
        lptrs[i] = &links[i];
    }
    pm.format_version = m->format_version;
    pm.checkpoint_id = m->checkpoint_id;
    pm.created_unix_ms = m->created_unix_ms;
    pm.server_version = (char *)m->server_version;
    pm.key_groups = m->key_groups;
    pm.kg_first = m->kg_first;
    pm.kg_last = m->kg_last;
    pm.entries = m->entries;
    pm.raw_bytes = m->raw_bytes;
    pm.data_bytes = m->data_bytes;
    pm.data_xxh3 = m->data_xxh3;
    pm.compression = (char *)compression_name(m->compression);
    pm.compression_level = m->compression_level;
    pm.n_states = m->n_states;
    pm.states = ptrs;
    pm.blocks = m->blocks;
    pm.duration_ms = m->duration_ms;
    if (m->format_version != SV_CKPT_FORMAT_V1) { /* version 1 has no chain */
        pm.incremental = m->incremental != 0;
        pm.base_id = m->base_id;
        pm.added_bytes = m->added_bytes;
        pm.total_bytes = m->total_bytes;
        pm.n_chain = nl;
        pm.chain = lptrs;
    }

    size_t body = statesrv__v1__checkpoint_manifest__get_packed_size(&pm);
    if (body > SV_CKPT_MANIFEST_MAX - SV_CKPT_MANIFEST_OVERHEAD) {
        rc = SV_ETOOLARGE;
        goto out;
    }
    uint8_t *buf = malloc(body + SV_CKPT_MANIFEST_OVERHEAD);
    if (!buf)
        goto out;
    memcpy(buf, MANIFEST_MAGIC, 8);
    statesrv__v1__checkpoint_manifest__pack(&pm, buf + 12);
    sv_ckpt_manifest_seal(buf, body + SV_CKPT_MANIFEST_OVERHEAD);
    *out = buf;
    *outlen = body + SV_CKPT_MANIFEST_OVERHEAD;
    rc = 0;
out:
    for (size_t i = 0; links && i < nl; i++)
        free(links[i].states);
    free(links);
    free(lptrs);
    free(ptrs);
    return rc;
}

/* Checks and copies n decoded states (of a version-1 manifest, or of a
 * chain link: `what` names it) into *out; sums[0..2] get their entries, raw
 * bytes and blocks. Names valid and strictly increasing; per-state counts
 * consistent within kg_first..kg_last. With live (the states of a
 * version-2 manifest, which only name the states at the cut and count their
 * live entries) only the names and entries are read. */
static int decode_states(Statesrv__V1__CheckpointStateInfo *const *in, size_t n, uint32_t kg_first,
                         uint32_t kg_last, int live, int incremental, const char *what,
                         struct sv_ckpt_state **out, size_t *nout, uint64_t sums[3], char *why,
                         size_t whylen)
{
    *out = NULL;
    *nout = 0;
    sums[0] = sums[1] = sums[2] = 0;
    if (n) {
        *out = calloc(n, sizeof(**out));
        if (!*out)
            return -ENOMEM;
    }
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        const Statesrv__V1__CheckpointStateInfo *si = in[i];
        struct sv_ckpt_state *s = &(*out)[i];
        size_t nl = strlen(si->name);
        if (!sv_state_name_valid(si->name, nl))
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %sstate %zu: invalid name", what, i);
        memcpy(s->name, si->name, nl + 1);
        if (i > 0 && strcmp((*out)[i - 1].name, s->name) >= 0)
            return fail(SV_ECORRUPT, why, whylen,
                        "MANIFEST: %sstate %zu (%s): names not in increasing order", what, i,
                        s->name);
        s->entries = si->entries;
        if (add_u64(&sums[0], s->entries))
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %sstate totals overflow", what);
        if (si->ttl_update > 1 || si->ttl_visibility > 1 || si->ttl_ms > 3155760000000ull)
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %sstate %zu (%s): a bad TTL setting",
                        what, i, s->name);
        s->ttl_ms = si->ttl_ms;
        s->ttl_update = si->ttl_update;
        s->ttl_visibility = si->ttl_visibility;
        if (live)
            continue;
        s->raw_bytes = si->raw_bytes;
        s->kg_min = si->kg_min;
        s->kg_max = si->kg_max;
        s->blocks = si->blocks;
        s->reset = si->reset;
        s->tombstones = si->tombstones;
        int bad = s->entries ? (s->kg_min > s->kg_max || s->kg_min < kg_first ||
                                s->kg_max > kg_last || s->blocks == 0 || s->blocks > s->entries)
                             : (s->blocks != 0 || s->raw_bytes != 0);
        /* Only an incremental link deletes, and it is the only one a reset
         * means anything in. */
        bad = bad || s->tombstones > s->entries || (!incremental && (s->tombstones || s->reset));
        if (bad)
            return fail(SV_ECORRUPT, why, whylen,
                        "MANIFEST: %sstate %s: inconsistent counts or key groups", what, s->name);
        if (add_u64(&sums[1], s->raw_bytes) || add_u64(&sums[2], s->blocks))
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %sstate totals overflow", what);
    }
    return 0;
}

/* Checks and copies the states of a decoded version-1 manifest into m. */
static int manifest_states(const Statesrv__V1__CheckpointManifest *pm, struct sv_ckpt_manifest *m,
                           char *why, size_t whylen)
{
    uint64_t sums[3];
    int rc = decode_states(pm->states, pm->n_states, m->kg_first, m->kg_last, 0, 0, "", &m->states,
                           &m->n_states, sums, why, whylen);
    if (rc)
        return rc;
    if (sums[0] != m->entries || sums[1] != m->raw_bytes || sums[2] != m->blocks)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: totals do not match the sum of the states");
    return 0;
}

/* The chain of a version-2 manifest: ids strictly increasing, the first
 * link full and the others incremental, the last one this checkpoint's
 * own, each file named after its checkpoint, per-link totals equal to the
 * sums over its states, and the manifest's own-file and chain totals. The
 * last link's states are the states at the cut. */
static int manifest_chain(const Statesrv__V1__CheckpointManifest *pm, struct sv_ckpt_manifest *m,
                          char *why, size_t whylen)
{
    uint64_t sums[3];
    int rc = decode_states(pm->states, pm->n_states, m->kg_first, m->kg_last, 1, 0, "", &m->states,
                           &m->n_states, sums, why, whylen);
    if (rc)
        return rc;
    if (sums[0] != m->entries)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: entries do not match the sum of the states");
    size_t n = pm->n_chain;
    if (n == 0 || n > SV_CKPT_CHAIN_MAX)
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: a chain of %zu files (1..%u)", n,
                    SV_CKPT_CHAIN_MAX);
    m->links = calloc(n, sizeof(*m->links));
    if (!m->links)
        return -ENOMEM;
    m->n_links = n;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const Statesrv__V1__CheckpointLink *pl = pm->chain[i];
        struct sv_ckpt_link *l = &m->links[i];
        char what[48], want[48];
        snprintf(what, sizeof(what), "chain link %zu: ", i);
        l->checkpoint_id = pl->checkpoint_id;
        l->data_bytes = pl->data_bytes;
        l->data_xxh3 = pl->data_xxh3;
        l->incremental = pl->incremental;
        l->entries = pl->entries;
        l->raw_bytes = pl->raw_bytes;
        l->blocks = pl->blocks;
        snprintf(want, sizeof(want), "chk-%llu/data", (unsigned long long)l->checkpoint_id);
        if (strcmp(pl->file, want) != 0)
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %sfile \"%.40s\" is not \"%s\"", what,
                        pl->file, want);
        memcpy(l->file, want, strlen(want) + 1);
        if (i > 0 && l->checkpoint_id <= m->links[i - 1].checkpoint_id)
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %scheckpoint ids not increasing",
                        what);
        if (l->incremental != (i > 0))
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: %s%s", what,
                        i ? "an incremental link must build on the one before"
                          : "the chain must start with a full checkpoint");
        if ((rc = decode_states(pl->states, pl->n_states, m->kg_first, m->kg_last, 0,
                                l->incremental, what, &l->states, &l->n_states, sums, why, whylen)))
            return rc;
        if (sums[0] != l->entries || sums[1] != l->raw_bytes || sums[2] != l->blocks)
            return fail(SV_ECORRUPT, why, whylen,
                        "MANIFEST: %stotals do not match the sum of its states", what);
        if (add_u64(&total, l->data_bytes))
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: chain sizes overflow");
    }
    const struct sv_ckpt_link *own = &m->links[n - 1];
    int same_states = own->n_states == m->n_states;
    for (size_t i = 0; same_states && i < m->n_states; i++)
        same_states = strcmp(own->states[i].name, m->states[i].name) == 0;
    if (own->checkpoint_id != m->checkpoint_id || m->base_id != m->links[0].checkpoint_id ||
        m->incremental != (n > 1) || m->added_bytes != own->data_bytes || m->total_bytes != total ||
        m->data_bytes != own->data_bytes || m->data_xxh3 != own->data_xxh3 ||
        m->raw_bytes != own->raw_bytes || m->blocks != own->blocks || !same_states)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: the chain does not end with this checkpoint's own file as the "
                    "manifest describes it");
    return 0;
}

/* Checks and copies the fields of a decoded manifest into m. */
static int manifest_fields(const Statesrv__V1__CheckpointManifest *pm, struct sv_ckpt_manifest *m,
                           char *why, size_t whylen)
{
    if (pm->format_version != SV_CKPT_FORMAT_V1 && pm->format_version != SV_CKPT_FORMAT_V2)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: format version %u is not supported (this reader knows 1 and 2)",
                    (unsigned)pm->format_version);
    m->format_version = pm->format_version;
    m->checkpoint_id = pm->checkpoint_id;
    m->created_unix_ms = pm->created_unix_ms;
    if (strlen(pm->server_version) >= sizeof(m->server_version))
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: server_version too long");
    snprintf(m->server_version, sizeof(m->server_version), "%s", pm->server_version);
    m->key_groups = pm->key_groups;
    m->kg_first = pm->kg_first;
    m->kg_last = pm->kg_last;
    if (m->key_groups == 0 || m->key_groups > SV_KEY_GROUPS_MAX || m->kg_first > m->kg_last ||
        m->kg_last >= m->key_groups)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: key groups %u..%u of %u are not a valid range",
                    (unsigned)m->kg_first, (unsigned)m->kg_last, (unsigned)m->key_groups);
    m->entries = pm->entries;
    m->raw_bytes = pm->raw_bytes;
    m->data_bytes = pm->data_bytes;
    m->data_xxh3 = pm->data_xxh3;
    if (strcmp(pm->compression, "zstd") == 0)
        m->compression = SV_CKPT_COMPRESS_ZSTD;
    else if (strcmp(pm->compression, "none") == 0)
        m->compression = SV_CKPT_COMPRESS_NONE;
    else
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: unknown compression \"%.32s\"",
                    pm->compression);
    m->compression_level = pm->compression_level;
    m->blocks = pm->blocks;
    m->duration_ms = pm->duration_ms;
    if (m->format_version == SV_CKPT_FORMAT_V1) {
        if (pm->n_chain || pm->incremental || pm->base_id || pm->added_bytes || pm->total_bytes)
            return fail(SV_ECORRUPT, why, whylen, "MANIFEST: version 1 with a chain");
        m->added_bytes = m->total_bytes = m->data_bytes;
        m->base_id = m->checkpoint_id;
        return manifest_states(pm, m, why, whylen);
    }
    m->incremental = pm->incremental;
    m->base_id = pm->base_id;
    m->added_bytes = pm->added_bytes;
    m->total_bytes = pm->total_bytes;
    return manifest_chain(pm, m, why, whylen);
}

int sv_ckpt_manifest_decode(const uint8_t *p, size_t n, struct sv_ckpt_manifest *m, char *why,
                            size_t whylen)
{
    memset(m, 0, sizeof(*m));
    if (n < SV_CKPT_MANIFEST_OVERHEAD)
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: too short (%zu bytes)", n);
    if (memcmp(p, MANIFEST_MAGIC, 8) != 0)
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: bad magic");
    uint32_t body = sv_be32_get(p + 8);
    if ((uint64_t)body != n - SV_CKPT_MANIFEST_OVERHEAD)
        return fail(SV_ECORRUPT, why, whylen,
                    "MANIFEST: length field says %u bytes, the file holds %zu", (unsigned)body,
                    n - SV_CKPT_MANIFEST_OVERHEAD);
    if (XXH3_64bits(p + 12, body) != sv_be64_get(p + 12 + body))
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: checksum mismatch");
    Statesrv__V1__CheckpointManifest *pm =
        statesrv__v1__checkpoint_manifest__unpack(NULL, body, p + 12);
    if (!pm)
        return fail(SV_ECORRUPT, why, whylen, "MANIFEST: body is not a CheckpointManifest");
    int rc = manifest_fields(pm, m, why, whylen);
    statesrv__v1__checkpoint_manifest__free_unpacked(pm, NULL);
    if (rc)
        sv_ckpt_manifest_free(m);
    return rc;
}

const uint8_t *sv_ckpt_manifest_body(const uint8_t *p, size_t n, size_t *body_len)
{
    if (n < SV_CKPT_MANIFEST_OVERHEAD)
        return NULL;
    *body_len = n - SV_CKPT_MANIFEST_OVERHEAD;
    return p + 12;
}

void sv_ckpt_manifest_seal(uint8_t *p, size_t n)
{
    size_t body = n - SV_CKPT_MANIFEST_OVERHEAD;
    sv_be32_put(p + 8, (uint32_t)body);
    sv_be64_put(p + 12 + body, XXH3_64bits(p + 12, body));
}

/* --- data file: header, footer, index -------------------------------------- */

void sv_ckpt_data_header_put(uint8_t *out, uint32_t version)
{
    memcpy(out, DATA_MAGIC, 8);
    sv_be32_put(out + 8, version);
    sv_be32_put(out + 12, 0);
}

int sv_ckpt_data_header_check(const uint8_t *p, uint32_t version, char *why, size_t whylen)
{
    if (memcmp(p, DATA_MAGIC, 8) != 0)
        return fail(SV_ECORRUPT, why, whylen, "data header: bad magic");
    if (sv_be32_get(p + 8) != version)
        return fail(SV_ECORRUPT, why, whylen,
                    "data header: format version %u, the MANIFEST says %u",
                    (unsigned)sv_be32_get(p + 8), (unsigned)version);
    if (sv_be32_get(p + 12) != 0)
        return fail(SV_ECORRUPT, why, whylen, "data header: unknown flags %#x",
                    (unsigned)sv_be32_get(p + 12));
    return 0;
}

void sv_ckpt_footer_put(uint8_t *out, const struct sv_ckpt_footer *f)
{
    sv_be64_put(out, f->index_offset);
    sv_be64_put(out + 8, f->index_len);
    sv_be64_put(out + 16, f->index_count);
    sv_be64_put(out + 24, f->index_xxh3);
    memcpy(out + 32, FOOTER_MAGIC, 8);
}

int sv_ckpt_footer_decode(const uint8_t *p, uint64_t file_size, struct sv_ckpt_footer *f, char *why,
                          size_t whylen)
{
    if (file_size < SV_CKPT_DATA_HEADER_SIZE + SV_CKPT_FOOTER_SIZE)
        return fail(SV_ECORRUPT, why, whylen, "footer: a data file of %llu bytes has none",
                    (unsigned long long)file_size);
    if (memcmp(p + 32, FOOTER_MAGIC, 8) != 0)
        return fail(SV_ECORRUPT, why, whylen, "footer: bad magic");
    uint64_t foot_off = file_size - SV_CKPT_FOOTER_SIZE;
    f->index_offset = sv_be64_get(p);
    f->index_len = sv_be64_get(p + 8);
    f->index_count = sv_be64_get(p + 16);
    f->index_xxh3 = sv_be64_get(p + 24);
    if (f->index_count > foot_off / SV_CKPT_INDEX_RECORD_SIZE ||
        f->index_len != f->index_count * SV_CKPT_INDEX_RECORD_SIZE)
        return fail(SV_ECORRUPT, why, whylen,
                    "footer: index count %llu does not fit index length %llu",
                    (unsigned long long)f->index_count, (unsigned long long)f->index_len);
    if (f->index_offset < SV_CKPT_DATA_HEADER_SIZE || f->index_offset > foot_off ||
        foot_off - f->index_offset != f->index_len)
        return fail(SV_ECORRUPT, why, whylen,
                    "footer: index at %llu (+%llu) does not end where the footer starts (%llu)",
                    (unsigned long long)f->index_offset, (unsigned long long)f->index_len,
                    (unsigned long long)foot_off);
    return 0;
}

void sv_ckpt_index_put(uint8_t *out, const struct sv_ckpt_block_info *x)
{
    sv_be32_put(out, x->state);
    sv_be32_put(out + 4, x->kg);
    sv_be64_put(out + 8, x->offset);
    sv_be32_put(out + 16, x->stored);
    sv_be32_put(out + 20, x->raw);
    sv_be32_put(out + 24, x->entries);
    out[28] = x->comp;
    out[29] = out[30] = out[31] = 0;
}

/* Decodes index record i at p into x and checks it on its own and after
 * prev (NULL for the first); NULL or what is wrong. */
static const char *index_record(const uint8_t *p, const struct sv_ckpt_block_info *prev,
                                const struct sv_ckpt_footer *f, const struct sv_ckpt_manifest *m,
                                struct sv_ckpt_block_info *x)
{
    x->state = sv_be32_get(p);
    x->kg = sv_be32_get(p + 4);
    x->offset = sv_be64_get(p + 8);
    x->stored = sv_be32_get(p + 16);
    x->raw = sv_be32_get(p + 20);
    x->entries = sv_be32_get(p + 24);
    x->comp = p[28];
    uint64_t expect =
        prev ? prev->offset + SV_CKPT_BLOCK_HEADER_SIZE + prev->stored : SV_CKPT_DATA_HEADER_SIZE;
    uint64_t ioff = f->index_offset;
    if (p[29] || p[30] || p[31])
        return "reserved bytes are not zero";
    if (x->state >= m->n_states)
        return "state out of range";
    if (x->kg < m->kg_first || x->kg > m->kg_last)
        return "key group outside the checkpoint's range";
    if (prev && (x->state < prev->state || (x->state == prev->state && x->kg < prev->kg)))
        return "not sorted by (state, key group)";
    if (x->offset != expect)
        return "offset is not where the previous block ends";
    if (x->entries == 0 || x->raw > SV_CKPT_BLOCK_RAW_MAX ||
        x->raw / SV_CKPT_ENTRY_MIN < x->entries)
        return "entry count or raw length out of bounds";
    if (x->comp == COMP_NONE   ? x->stored != x->raw
        : x->comp == COMP_ZSTD ? x->stored == 0 || x->stored > ZSTD_COMPRESSBOUND((uint64_t)x->raw)
                               : 1)
        return "bad compression or stored length";
    if (x->stored > ioff - x->offset || ioff - x->offset - x->stored < SV_CKPT_BLOCK_HEADER_SIZE)
        return "block runs past the index";
    return NULL;
}

/* The per-state sums of the index against the MANIFEST. */
static int index_against_manifest(const struct sv_ckpt_state *sum, const struct sv_ckpt_manifest *m,
                                  char *why, size_t whylen)
{
    for (size_t i = 0; i < m->n_states; i++) {
        const struct sv_ckpt_state *ms = &m->states[i], *s = &sum[i];
        /* raw_bytes counts keys and values; the index's raw lengths add the
         * two varints of each entry. */
        int bad = s->entries != ms->entries || s->blocks != ms->blocks ||
                  (s->entries && (s->kg_min != ms->kg_min || s->kg_max != ms->kg_max)) ||
                  ms->raw_bytes > s->raw_bytes - ENTRY_OVERHEAD_MIN * s->entries ||
                  ms->raw_bytes + ENTRY_OVERHEAD_MAX * s->entries < s->raw_bytes;
        if (bad)
            return fail(SV_ECORRUPT, why, whylen,
                        "index: state %s: blocks, entries, sizes or key groups differ from "
                        "the MANIFEST",
                        ms->name);
    }
    return 0;
}

int sv_ckpt_index_decode(const uint8_t *p, const struct sv_ckpt_footer *f,
                         const struct sv_ckpt_manifest *m, struct sv_ckpt_block_info **out,
                         char *why, size_t whylen)
{
    *out = NULL;
    if (f->index_count != m->blocks)
        return fail(SV_ECORRUPT, why, whylen, "footer: %llu blocks, MANIFEST says %llu",
                    (unsigned long long)f->index_count, (unsigned long long)m->blocks);
    if (XXH3_64bits(p, (size_t)f->index_len) != f->index_xxh3)
        return fail(SV_ECORRUPT, why, whylen, "index: checksum does not match the footer's");
    size_t n = (size_t)f->index_count;
    struct sv_ckpt_block_info *idx = calloc(n ? n : 1, sizeof(*idx));
    /* Per-state sums, to compare with the manifest. */
    struct sv_ckpt_state *sum = calloc(m->n_states ? m->n_states : 1, sizeof(*sum));
    int rc = 0;
    if (!idx || !sum) {
        rc = fail(-ENOMEM, why, whylen, "index: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct sv_ckpt_block_info *x = &idx[i];
        const char *bad =
            index_record(p + i * SV_CKPT_INDEX_RECORD_SIZE, i ? &idx[i - 1] : NULL, f, m, x);
        if (bad) {
            rc = fail(SV_ECORRUPT, why, whylen, "index: record %zu (block at offset %llu): %s", i,
                      (unsigned long long)x->offset, bad);
            goto out;
        }
        struct sv_ckpt_state *s = &sum[x->state];
        if (!s->entries || x->kg < s->kg_min)
            s->kg_min = x->kg;
        if (!s->entries || x->kg > s->kg_max)
            s->kg_max = x->kg;
        if (add_u64(&s->entries, x->entries) || add_u64(&s->raw_bytes, x->raw)) {
            rc = fail(SV_ECORRUPT, why, whylen, "index: record %zu: totals overflow", i);
            goto out;
        }
        s->blocks++;
    }
    uint64_t end = n ? idx[n - 1].offset + SV_CKPT_BLOCK_HEADER_SIZE + idx[n - 1].stored
                     : SV_CKPT_DATA_HEADER_SIZE;
    if (end != f->index_offset) {
        rc =
            fail(SV_ECORRUPT, why, whylen, "index: blocks end at %llu but the index starts at %llu",
                 (unsigned long long)end, (unsigned long long)f->index_offset);
        goto out;
    }
    rc = index_against_manifest(sum, m, why, whylen);
out:
    free(sum);
    if (rc)
        free(idx);
    else
        *out = idx;
    return rc;
}

/* --- blocks ---------------------------------------------------------------- */

int sv_ckpt_block_encoder_init(struct sv_ckpt_block_encoder *e, enum sv_ckpt_compression c,
                               int level)
{
    memset(e, 0, sizeof(*e));
    e->compression = c;
    e->level = level;
    if (c == SV_CKPT_COMPRESS_ZSTD && !(e->cctx = ZSTD_createCCtx()))
        return -ENOMEM;
    return 0;
}

void sv_ckpt_block_encoder_free(struct sv_ckpt_block_encoder *e)
{
    ZSTD_freeCCtx(e->cctx);
    e->cctx = NULL;
    sv_buf_free(&e->cbuf);
}

void sv_ckpt_block_header_get(const uint8_t *p, struct sv_ckpt_block_info *x)
{
    x->state = sv_be32_get(p + 4);
    x->kg = sv_be32_get(p + 8);
    x->entries = sv_be32_get(p + 12);
    x->raw = sv_be32_get(p + 16);
    x->stored = sv_be32_get(p + 20);
    x->comp = p[24];
}

void sv_ckpt_block_header_put(uint8_t *p, const struct sv_ckpt_block_info *x, uint64_t payload_xxh3)
{
    memcpy(p, BLOCK_MAGIC, 4);
    sv_be32_put(p + 4, x->state);
    sv_be32_put(p + 8, x->kg);
    sv_be32_put(p + 12, x->entries);
    sv_be32_put(p + 16, x->raw);
    sv_be32_put(p + 20, x->stored);
    p[24] = x->comp;
    p[25] = p[26] = p[27] = 0;
    sv_be64_put(p + 28, payload_xxh3);
    sv_be64_put(p + 36, XXH3_64bits(p, BLOCK_HEADER_HASHED));
}

int sv_ckpt_block_encode(struct sv_ckpt_block_encoder *e, struct sv_ckpt_block_info *x,
                         const uint8_t *raw, uint8_t *hdr, const uint8_t **payload, char *why,
                         size_t whylen)
{
    *payload = raw;
    x->stored = x->raw;
    x->comp = COMP_NONE;
    if (e->compression == SV_CKPT_COMPRESS_ZSTD) {
        size_t bound = ZSTD_compressBound(x->raw);
        e->cbuf.len = 0;
        if (sv_buf_reserve(&e->cbuf, bound))
            return fail(-ENOMEM, why, whylen, "out of memory");
        size_t c = ZSTD_compressCCtx(e->cctx, e->cbuf.data, bound, raw, x->raw, e->level);
        if (ZSTD_isError(c))
            return fail(SV_EINTERNAL, why, whylen, "zstd: %s", ZSTD_getErrorName(c));
        /* A block zstd cannot shrink is stored as it is. */
        if (c < x->raw) {
            *payload = e->cbuf.data;
            x->stored = (uint32_t)c;
            x->comp = COMP_ZSTD;
        }
    }
    sv_ckpt_block_header_put(hdr, x, XXH3_64bits(*payload, x->stored));
    return 0;
}

void sv_ckpt_block_decoder_free(struct sv_ckpt_block_decoder *d)
{
    sv_buf_free(&d->raw);
    ZSTD_freeDCtx(d->dctx);
    d->dctx = NULL;
}

#define BLOCK_FMT "block at offset %llu (state %u, key group %u): "
#define BLOCK_ARGS(x) (unsigned long long)(x)->offset, (unsigned)(x)->state, (unsigned)(x)->kg

/* Decompresses the zstd payload of x into d's buffer. */
static int block_inflate(struct sv_ckpt_block_decoder *d, const struct sv_ckpt_block_info *x,
                         const uint8_t *payload, char *why, size_t whylen)
{
    if (!d->dctx && !(d->dctx = ZSTD_createDCtx()))
        return fail(-ENOMEM, why, whylen, BLOCK_FMT "out of memory", BLOCK_ARGS(x));
    /* x->raw <= SV_CKPT_BLOCK_RAW_MAX was checked with the index. */
    d->raw.len = 0;
    if (sv_buf_reserve(&d->raw, x->raw ? x->raw : 1))
        return fail(-ENOMEM, why, whylen, BLOCK_FMT "out of memory for %u bytes", BLOCK_ARGS(x),
                    (unsigned)x->raw);
    if (ZSTD_findFrameCompressedSize(payload, x->stored) != x->stored)
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "payload is not one zstd frame",
                    BLOCK_ARGS(x));
    size_t got = ZSTD_decompressDCtx(d->dctx, d->raw.data, x->raw, payload, x->stored);
    if (ZSTD_isError(got))
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "zstd: %s", BLOCK_ARGS(x),
                    ZSTD_getErrorName(got));
    if (got != x->raw)
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "decompressed to %zu bytes, not %u",
                    BLOCK_ARGS(x), got, (unsigned)x->raw);
    return 0;
}

int sv_ckpt_block_decode(struct sv_ckpt_block_decoder *d, const struct sv_ckpt_block_info *x,
                         const uint8_t *p, const uint8_t **raw, char *why, size_t whylen)
{
    *raw = NULL;
    if (memcmp(p, BLOCK_MAGIC, 4) != 0)
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "block header: bad magic", BLOCK_ARGS(x));
    if (XXH3_64bits(p, BLOCK_HEADER_HASHED) != sv_be64_get(p + 36))
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "block header: checksum mismatch",
                    BLOCK_ARGS(x));
    struct sv_ckpt_block_info h;
    sv_ckpt_block_header_get(p, &h);
    if (h.state != x->state || h.kg != x->kg || h.entries != x->entries || h.raw != x->raw ||
        h.stored != x->stored || h.comp != x->comp || p[25] || p[26] || p[27])
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "block header does not match the index",
                    BLOCK_ARGS(x));
    const uint8_t *payload = p + SV_CKPT_BLOCK_HEADER_SIZE;
    if (XXH3_64bits(payload, x->stored) != sv_be64_get(p + 28))
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "payload checksum mismatch", BLOCK_ARGS(x));
    if (x->comp == COMP_ZSTD) {
        int rc = block_inflate(d, x, payload, why, whylen);
        if (rc)
            return rc;
        *raw = d->raw.data;
    } else {
        *raw = payload;
    }
    return 0;
}

/* --- entries --------------------------------------------------------------- */

size_t sv_ckpt_entry_size(size_t sklen, size_t vlen)
{
    return sv_varint_size(sklen) + sklen + sv_varint_size(vlen) + vlen;
}

size_t sv_ckpt_entry_put(uint8_t *out, const uint8_t *skey, size_t sklen, const uint8_t *value,
                         size_t vlen)
{
    uint8_t *p = out;
    p += sv_varint_put(p, sklen);
    memcpy(p, skey, sklen);
    p += sklen;
    p += sv_varint_put(p, vlen);
    if (vlen)
        memcpy(p, value, vlen);
    return (size_t)(p - out) + vlen;
}

size_t sv_ckpt_entry_parse(const uint8_t *p, size_t n, const uint8_t **k, size_t *kl,
                           const uint8_t **v, size_t *vl)
{
    uint64_t len;
    int vn = sv_varint_get(p, n, &len);
    if (vn < 0 || len > n - (size_t)vn)
        return 0;
    size_t off = (size_t)vn;
    *k = p + off;
    *kl = (size_t)len;
    off += (size_t)len;
    vn = sv_varint_get(p + off, n - off, &len);
    if (vn < 0 || len > n - off - (size_t)vn)
        return 0;
    off += (size_t)vn;
    *v = p + off;
    *vl = (size_t)len;
    return off + (size_t)len;
}

int sv_ckpt_entries_check(const uint8_t *raw, const struct sv_ckpt_block_info *x,
                          struct sv_buf *prev, uint64_t *kv_bytes, char *why, size_t whylen)
{
    const uint8_t *lk = prev->len ? prev->data : NULL;
    size_t lkl = prev->len;
    uint64_t count = 0, kv = 0;
    for (size_t off = 0; off < x->raw;) {
        const uint8_t *k, *v;
        size_t kl, vl;
        size_t used = sv_ckpt_entry_parse(raw + off, x->raw - off, &k, &kl, &v, &vl);
        struct sv_skey sk;
        if (!used)
            return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "entry %llu: bad framing",
                        BLOCK_ARGS(x), (unsigned long long)count);
        if (sv_skey_decode(k, kl, &sk) != 0)
            return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "entry %llu: not a stored key",
                        BLOCK_ARGS(x), (unsigned long long)count);
        if (kl > SV_CKPT_SKEY_MAX)
            return fail(SV_ECORRUPT, why, whylen,
                        BLOCK_FMT "entry %llu: a stored key of %zu bytes, longer than a store "
                                  "can hold (%u)",
                        BLOCK_ARGS(x), (unsigned long long)count, kl, SV_CKPT_SKEY_MAX);
        if (sk.kg != x->kg)
            return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "entry %llu: key group %u",
                        BLOCK_ARGS(x), (unsigned long long)count, (unsigned)sk.kg);
        if (lk && sv_skey_cmp(lk, lkl, k, kl) >= 0)
            return fail(SV_ECORRUPT, why, whylen,
                        BLOCK_FMT "entry %llu: keys not strictly increasing", BLOCK_ARGS(x),
                        (unsigned long long)count);
        lk = k;
        lkl = kl;
        count++;
        kv += kl + vl;
        off += used;
    }
    if (count != x->entries)
        return fail(SV_ECORRUPT, why, whylen, BLOCK_FMT "%llu entries, the index says %u",
                    BLOCK_ARGS(x), (unsigned long long)count, (unsigned)x->entries);
    /* With no entries (x->entries 0, which no index record has) lk is still
     * prev's own key. */
    if (lk != prev->data) {
        prev->len = 0;
        if (sv_buf_append(prev, lk, lkl))
            return fail(-ENOMEM, why, whylen, BLOCK_FMT "out of memory", BLOCK_ARGS(x));
    }
    if (kv_bytes)
        *kv_bytes = kv;
    return 0;
}
