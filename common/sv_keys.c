#include "sv_keys.h"
#include "sv_be.h"
#include "sv_error.h"

#include <string.h>

int sv_state_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > SV_STATE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static inline uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

uint32_t sv_murmur3_32(const void *data, size_t len, uint32_t seed)
{
    const uint8_t *p = data;
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = seed;
    size_t nblocks = len / 4;

    for (size_t i = 0; i < nblocks; i++, p += 4) {
        uint32_t k =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64u;
    }

    uint32_t k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        k ^= p[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }

    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t sv_key_group_of(const void *key, size_t len, uint32_t key_groups)
{
    return sv_murmur3_32(key, len, 0) % key_groups;
}

size_t sv_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t sv_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int sv_varint_get(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < len && i < SV_VARINT_MAX; i++) {
        uint64_t b = p[i] & 0x7f;
        if (i == 9 && b > 1)
            return -1; /* would overflow 64 bits */
        r |= b << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return (int)i + 1;
        }
    }
    return -1;
}

size_t sv_skey_size(size_t key_len, size_t ns_len)
{
    return 2 + sv_varint_size(key_len) + key_len + ns_len;
}

size_t sv_skey_prefix(uint8_t *out, uint32_t kg, const void *key, size_t key_len)
{
    sv_be16_put(out, (uint16_t)kg);
    size_t n = 2 + sv_varint_put(out + 2, key_len);
    if (key_len)
        memcpy(out + n, key, key_len);
    return n + key_len;
}

size_t sv_skey_encode(uint8_t *out, uint32_t kg, const void *key, size_t key_len, const void *ns,
                      size_t ns_len)
{
    size_t n = sv_skey_prefix(out, kg, key, key_len);
    if (ns_len)
        memcpy(out + n, ns, ns_len);
    return n + ns_len;
}

int sv_skey_decode(const uint8_t *p, size_t n, struct sv_skey *out)
{
    if (n < 3)
        return SV_ECORRUPT;
    uint64_t klen;
    int vn = sv_varint_get(p + 2, n - 2, &klen);
    if (vn < 0 || klen == 0 || klen > n - 2 - (size_t)vn)
        return SV_ECORRUPT;
    size_t off = 2 + (size_t)vn;
    out->kg = sv_be16_get(p);
    out->key = p + off;
    out->key_len = (size_t)klen;
    out->ns = p + off + klen;
    out->ns_len = n - off - (size_t)klen;
    return 0;
}
