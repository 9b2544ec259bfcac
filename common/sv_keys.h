/* Keyed-state addressing: state names, key groups and the stored key.
 *
 * Stored LMDB key = kg (2 bytes, big-endian) || varint(len(key)) || key ||
 * namespace. One key group is one contiguous range, and all namespaces of one
 * key share the prefix kg || varint(len(key)) || key. */
#ifndef SV_KEYS_H
#define SV_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SV_STATE_NAME_MAX 64u
#define SV_KEY_GROUPS_MAX 32768u
#define SV_KEY_GROUPS_DEFAULT 128u
#define SV_VARINT_MAX 10u

/* 1..64 bytes of [A-Za-z0-9_.-]. */
int sv_state_name_valid(const char *name, size_t len);

/* MurmurHash3 x86_32, as published by Austin Appleby. */
uint32_t sv_murmur3_32(const void *data, size_t len, uint32_t seed);

/* murmur3_x86_32(key, seed 0) mod key_groups (key_groups >= 1). */
uint32_t sv_key_group_of(const void *key, size_t len, uint32_t key_groups);

/* LEB128 unsigned varint. put: bytes written (<= SV_VARINT_MAX). get: bytes
 * read, or -1 if truncated or longer than 10 bytes / overflowing 64 bits. */
size_t sv_varint_put(uint8_t *p, uint64_t v);
int sv_varint_get(const uint8_t *p, size_t len, uint64_t *v);
size_t sv_varint_size(uint64_t v);

/* Size of the stored key for a key and namespace of these lengths. */
size_t sv_skey_size(size_t key_len, size_t ns_len);
/* Writes the stored key; out must hold sv_skey_size() bytes. Returns its size. */
size_t sv_skey_encode(uint8_t *out, uint32_t kg, const void *key, size_t key_len, const void *ns,
                      size_t ns_len);
/* Writes the shared prefix of every namespace of one key. */
size_t sv_skey_prefix(uint8_t *out, uint32_t kg, const void *key, size_t key_len);

struct sv_skey {
    uint32_t kg;
    const uint8_t *key; /* points into the decoded buffer */
    size_t key_len;
    const uint8_t *ns;
    size_t ns_len;
};

/* Splits a stored key. 0, or SV_ECORRUPT if it is not one. */
int sv_skey_decode(const uint8_t *p, size_t n, struct sv_skey *out);

/* Stored keys in LMDB's order (its default comparator): bytewise, a key
 * before every longer key it is a prefix of. <0, 0 or >0 like memcmp. */
static inline int sv_skey_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

#endif
