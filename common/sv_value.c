#include "sv_value.h"
#include "sv_be.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_keys.h"

#include <errno.h>
#include <string.h>

const char *sv_value_kind_name(enum sv_value_kind kind)
{
    switch (kind) {
    case SV_KIND_RAW:
        return "raw";
    case SV_KIND_LIST:
        return "list";
    case SV_KIND_COUNTER:
        return "counter";
    default:
        return "unknown";
    }
}

size_t sv_value_header_size(uint64_t expiry_ms)
{
    return expiry_ms ? 10 : 2;
}

size_t sv_value_header_put(uint8_t *out, enum sv_value_kind kind, uint64_t expiry_ms)
{
    out[0] = SV_VALUE_VERSION | (expiry_ms ? SV_VALUE_HAS_EXPIRY : 0);
    out[1] = (uint8_t)kind;
    if (!expiry_ms)
        return 2;
    sv_be64_put(out + 2, expiry_ms);
    return 10;
}

int sv_value_parse(const uint8_t *p, size_t n, struct sv_value *out)
{
    if (n < 2 || (p[0] & 0x0f) != SV_VALUE_VERSION || (p[0] & 0xc0) || p[1] >= SV_KIND_MAX)
        return SV_ECORRUPT;
    /* A timed list is a list, and its header always has an expiry field. */
    out->timed = (p[0] & SV_VALUE_ELEM_EXPIRY) != 0;
    out->scratch = 0;
    if (out->timed && (p[1] != SV_KIND_LIST || !(p[0] & SV_VALUE_HAS_EXPIRY)))
        return SV_ECORRUPT;
    size_t hdr = 2;
    out->expiry_ms = 0;
    if (p[0] & SV_VALUE_HAS_EXPIRY) {
        if (n < 10)
            return SV_ECORRUPT;
        out->expiry_ms = sv_be64_get(p + 2);
        hdr = 10;
    }
    out->kind = (enum sv_value_kind)p[1];
    out->data = p + hdr;
    out->len = n - hdr;
    return 0;
}

int sv_list_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **elem, size_t *elem_len)
{
    if (*off >= n)
        return 0;
    uint64_t len;
    int vn = sv_varint_get(p + *off, n - *off, &len);
    if (vn < 0 || len > n - *off - (size_t)vn)
        return SV_ECORRUPT;
    *elem = p + *off + vn;
    *elem_len = (size_t)len;
    *off += (size_t)vn + (size_t)len;
    return 1;
}

int sv_value_check_kind(enum sv_value_kind kind, const uint8_t *data, size_t len)
{
    switch (kind) {
    case SV_KIND_RAW:
        return 0;
    case SV_KIND_COUNTER:
        return len == SV_COUNTER_SIZE ? 0 : SV_EINVAL;
    case SV_KIND_LIST: {
        size_t off = 0, elen;
        const uint8_t *e;
        int rc;
        while ((rc = sv_list_next(data, len, &off, &e, &elen)) == 1)
            ;
        return rc == 0 ? 0 : SV_EINVAL;
    }
    default:
        return SV_EINVAL;
    }
}

int sv_value_check(const struct sv_value *v)
{
    if (!v->timed)
        return sv_value_check_kind(v->kind, v->data, v->len);
    size_t off = 0, elen, n = 0;
    const uint8_t *e;
    uint64_t exp, latest = 0;
    int rc, forever = 0;
    while ((rc = sv_tlist_next(v->data, v->len, &off, &e, &elen, &exp)) == 1) {
        n++;
        if (!exp)
            forever = 1;
        else if (exp > latest)
            latest = exp;
    }
    /* Not empty, and the header's expiry the one sv_tlist_finish writes:
     * the store trusts it to say when the whole entry has expired. */
    if (rc || !n || v->expiry_ms != (forever ? 0 : latest))
        return SV_EINVAL;
    return 0;
}

int sv_tlist_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **elem, size_t *elem_len,
                  uint64_t *expiry)
{
    if (*off >= n)
        return 0;
    uint64_t len;
    int vn = sv_varint_get(p + *off, n - *off, &len);
    if (vn < 0 || n - *off - (size_t)vn < 8 || len > n - *off - (size_t)vn - 8)
        return SV_ECORRUPT;
    *expiry = sv_be64_get(p + *off + vn);
    *elem = p + *off + vn + 8;
    *elem_len = (size_t)len;
    *off += (size_t)vn + 8 + (size_t)len;
    return 1;
}

size_t sv_tlist_elem_size(size_t elem_len)
{
    return sv_varint_size(elem_len) + 8 + elem_len;
}

int sv_tlist_begin(struct sv_tlist_builder *b, struct sv_buf *out)
{
    memset(b, 0, sizeof(*b));
    b->out = out;
    b->start = out->len;
    b->uniform = 1;
    static const uint8_t room[SV_VALUE_HEADER_MAX];
    return sv_buf_append(out, room, sizeof(room));
}

int sv_tlist_add(struct sv_tlist_builder *b, const void *elem, size_t elem_len, uint64_t expiry)
{
    int rc = sv_buf_reserve(b->out, sv_tlist_elem_size(elem_len));
    if (rc)
        return rc;
    uint8_t *p = b->out->data + b->out->len;
    size_t n = sv_varint_put(p, elem_len);
    sv_be64_put(p + n, expiry);
    if (elem_len)
        memcpy(p + n + 8, elem, elem_len);
    b->out->len += n + 8 + elem_len;
    if (b->n++ == 0)
        b->first = expiry;
    else if (expiry != b->first)
        b->uniform = 0;
    if (!expiry)
        b->forever = 1;
    else if (expiry > b->latest)
        b->latest = expiry;
    return 0;
}

uint64_t sv_tlist_finish(struct sv_tlist_builder *b)
{
    uint8_t *v = b->out->data + b->start;
    if (!b->uniform) {
        uint64_t expiry = b->forever ? 0 : b->latest;
        v[0] = SV_VALUE_VERSION | SV_VALUE_HAS_EXPIRY | SV_VALUE_ELEM_EXPIRY;
        v[1] = SV_KIND_LIST;
        sv_be64_put(v + 2, expiry);
        return expiry;
    }
    /* One expiry for all: a plain list, each element 8 bytes shorter,
     * moved down in place (the write position never passes the read). */
    size_t n = b->out->len - b->start, off = SV_VALUE_HEADER_MAX;
    size_t w = sv_value_header_put(v, SV_KIND_LIST, b->first);
    const uint8_t *e;
    size_t elen;
    uint64_t exp;
    while (sv_tlist_next(v, n, &off, &e, &elen, &exp) == 1) {
        w += sv_varint_put(v + w, elen);
        memmove(v + w, e, elen);
        w += elen;
    }
    b->out->len = b->start + w;
    return b->first;
}

int sv_tlist_plain(const struct sv_value *v, uint64_t now, int keep_expired, struct sv_buf *out,
                   size_t *dropped)
{
    size_t off = 0, elen;
    const uint8_t *e;
    uint64_t exp = v->expiry_ms;
    int rc;
    *dropped = 0;
    if (!v->timed) {
        if (!keep_expired && exp && exp <= now) {
            while ((rc = sv_list_next(v->data, v->len, &off, &e, &elen)) == 1)
                ++*dropped;
            return rc ? SV_ECORRUPT : 0;
        }
        return sv_buf_append(out, v->data, v->len);
    }
    if ((rc = sv_buf_reserve(out, v->len)))
        return rc;
    while ((rc = sv_tlist_next(v->data, v->len, &off, &e, &elen, &exp)) == 1) {
        if (!keep_expired && exp && exp <= now) {
            ++*dropped;
            continue;
        }
        /* Shorter than its timed framing: the reserve holds it. */
        out->len += sv_list_elem_put(out->data + out->len, e, elen);
    }
    return rc ? SV_ECORRUPT : 0;
}

int sv_tlist_trim(const struct sv_value *v, uint64_t now, struct sv_buf *out, size_t *left,
                  size_t *dropped)
{
    struct sv_tlist_builder b;
    size_t off = 0, elen;
    const uint8_t *e;
    uint64_t exp;
    int rc;
    *left = *dropped = 0;
    if ((rc = sv_tlist_begin(&b, out)))
        return rc;
    while ((rc = sv_tlist_next(v->data, v->len, &off, &e, &elen, &exp)) == 1) {
        if (exp && exp <= now) {
            ++*dropped;
            continue;
        }
        if ((rc = sv_tlist_add(&b, e, elen, exp))) {
            out->len = b.start;
            return rc;
        }
    }
    if (rc || !b.n) {
        out->len = b.start;
        return rc ? SV_ECORRUPT : 0;
    }
    *left = b.n;
    sv_tlist_finish(&b);
    return 0;
}

size_t sv_list_elem_size(size_t elem_len)
{
    return sv_varint_size(elem_len) + elem_len;
}

size_t sv_list_elem_put(uint8_t *out, const void *elem, size_t elem_len)
{
    size_t n = sv_varint_put(out, elem_len);
    if (elem_len)
        memcpy(out + n, elem, elem_len);
    return n + elem_len;
}

void sv_i64_put(uint8_t *out, int64_t v)
{
    sv_be64_put(out, (uint64_t)v);
}

int64_t sv_i64_get(const uint8_t *p)
{
    return (int64_t)sv_be64_get(p); /* two's complement on every platform we build for */
}
