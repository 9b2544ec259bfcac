#include "sv_value.h"
#include "sv_be.h"
#include "sv_error.h"
#include "sv_keys.h"

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
    if (n < 2 || (p[0] & 0x0f) != SV_VALUE_VERSION || (p[0] & 0xe0) || p[1] >= SV_KIND_MAX)
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
