#include "sv_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sv_arena_chunk {
    struct sv_arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t off;
    _Alignas(16) unsigned char data[];
};

static void *pb_alloc(void *ud, size_t n)
{
    return sv_arena_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

void sv_arena_init(struct sv_arena *a, size_t chunk_size)
{
    memset(a, 0, sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
}

void *sv_arena_alloc(struct sv_arena *a, size_t n)
{
    if (n > SIZE_MAX - 15 - sizeof(struct sv_arena_chunk))
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (a->limit && n > a->limit - (a->used < a->limit ? a->used : a->limit)) {
        a->exhausted = 1;
        return NULL;
    }
    struct sv_arena_chunk *c = a->head;
    if (!c || c->size - c->off < n) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->off = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->off;
    c->off += n;
    a->used += n;
    return p;
}

void sv_arena_reset(struct sv_arena *a)
{
    struct sv_arena_chunk *keep = NULL, *c = a->head;
    while (c) {
        struct sv_arena_chunk *next = c->next;
        if (!keep && c->size == a->chunk_size) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    if (keep) {
        keep->off = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
    a->exhausted = 0;
}

void sv_arena_free(struct sv_arena *a)
{
    struct sv_arena_chunk *c = a->head;
    while (c) {
        struct sv_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
