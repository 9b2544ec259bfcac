/* Big-endian integers in byte buffers: the one definition for every on-disk
 * and on-wire field of this project (frame lengths, key groups in stored
 * keys, value expiries and counters, the store's metadata, the checkpoint
 * files). p must hold the field's size; nothing is checked. No I/O. */
#ifndef SV_BE_H
#define SV_BE_H

#include <stdint.h>

static inline void sv_be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t sv_be16_get(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline void sv_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t sv_be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void sv_be64_put(uint8_t *p, uint64_t v)
{
    sv_be32_put(p, (uint32_t)(v >> 32));
    sv_be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t sv_be64_get(const uint8_t *p)
{
    return (uint64_t)sv_be32_get(p) << 32 | sv_be32_get(p + 4);
}

#endif
