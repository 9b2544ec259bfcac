#include "keycache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

_Static_assert(sizeof(struct sv_keycache_slot) == 64, "a slot is a cache line");

int sv_keycache_init(struct sv_keycache *kc, size_t slots)
{
    size_t n = 1;
    while (n * 2 <= slots)
        n *= 2;
    kc->slots = calloc(n, sizeof(*kc->slots));
    kc->mask = kc->slots ? n - 1 : 0;
    return kc->slots ? 0 : -ENOMEM;
}

uint64_t sv_keycache_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

int sv_keycache_has(const struct sv_keycache *kc, const void *key, size_t len, uint64_t h)
{
    if (!kc->slots)
        return 0;
    const struct sv_keycache_slot *sl = &kc->slots[h & kc->mask];
    return sl->hash == h && sl->len == len && len && memcmp(sl->key, key, len) == 0;
}

void sv_keycache_put(struct sv_keycache *kc, const void *key, size_t len, uint64_t h)
{
    if (!kc->slots || !len || len > SV_KEYCACHE_KEY_MAX)
        return;
    struct sv_keycache_slot *sl = &kc->slots[h & kc->mask];
    sl->hash = h;
    sl->len = (uint16_t)len;
    memcpy(sl->key, key, len);
}

void sv_keycache_clear(struct sv_keycache *kc)
{
    if (kc->slots)
        memset(kc->slots, 0, (kc->mask + 1) * sizeof(*kc->slots));
}

void sv_keycache_free(struct sv_keycache *kc)
{
    free(kc->slots);
    kc->slots = NULL;
    kc->mask = 0;
}
