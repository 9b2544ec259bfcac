/* A small exact cache of byte strings, direct-mapped: one 64-byte slot per
 * hash, a later key of the same slot replaces the earlier one. The store
 * uses it to remember keys the change log already holds since a checkpoint's
 * cut, so a hot key written again is not logged again: a hit is exact (the
 * bytes are compared), a miss costs only a record logged twice. A slot holds
 * keys of up to SV_KEYCACHE_KEY_MAX bytes; longer ones are never cached.
 * Not thread-safe; owns its memory. */
#ifndef SV_KEYCACHE_H
#define SV_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#define SV_KEYCACHE_KEY_MAX 52

struct sv_keycache_slot {
    uint64_t hash;
    uint16_t len; /* 0: empty */
    uint8_t key[SV_KEYCACHE_KEY_MAX];
    uint8_t pad[2];
};

struct sv_keycache {
    struct sv_keycache_slot *slots;
    size_t mask; /* slots - 1 */
};

/* A cache of `slots` slots (rounded down to a power of two, at least 1):
 * 0 or -ENOMEM. */
int sv_keycache_init(struct sv_keycache *kc, size_t slots);
/* The hash the other calls take (computed once per key by the caller). */
uint64_t sv_keycache_hash(const void *key, size_t len);
/* 1 if key (with hash h) is cached. */
int sv_keycache_has(const struct sv_keycache *kc, const void *key, size_t len, uint64_t h);
/* Caches key, replacing whatever shared its slot; a key longer than
 * SV_KEYCACHE_KEY_MAX (or empty) is not cached. */
void sv_keycache_put(struct sv_keycache *kc, const void *key, size_t len, uint64_t h);
/* Forgets every key. */
void sv_keycache_clear(struct sv_keycache *kc);
void sv_keycache_free(struct sv_keycache *kc);

#endif
