/* Protobuf wire primitives the hand codecs share (sv_wire.c, the server's
 * direction; sv_wire_client.c, the client's): varints and length prefixes
 * read exactly as protobuf-c reads them, so that what they accept and what
 * protobuf-c accepts cannot drift apart. Internal to common/. */
#ifndef SV_PB_H
#define SV_PB_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Wire types. */
#define WT_VARINT 0
#define WT_LEN 2

/* A varint of at most 10 bytes, as protobuf-c reads it (bits past 64 are
 * dropped). 0, or -1 when it does not end in time. */
static inline int sv_pb_get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* A length prefix as protobuf-c accepts it: at most 5 bytes, at most
 * INT_MAX, within the buffer. */
static inline int sv_pb_get_len(const uint8_t **pp, const uint8_t *end, size_t *len)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned i = 0; i < 5 && p < end; i++) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (x > INT_MAX || x > (uint64_t)(end - p))
                return -1;
            *pp = p;
            *len = (size_t)x;
            return 0;
        }
    }
    return -1;
}

static inline size_t sv_pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *sv_pb_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

#endif
