/* A bump allocator for short-lived objects: the server unpacks every request
 * of one group commit into it and resets it after the replies are encoded,
 * so the request path does no per-request malloc/free.
 *
 * `pb` is a ProtobufCAllocator backed by the arena (its free is a no-op). */
#ifndef SV_ARENA_H
#define SV_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct sv_arena_chunk;

struct sv_arena {
    struct sv_arena_chunk *head; /* newest chunk; older ones follow */
    size_t chunk_size;
    size_t used;   /* bytes handed out since the last reset */
    size_t limit;  /* alloc fails once used would pass this (0: none) */
    int exhausted; /* an alloc failed on the limit since the last reset */
    ProtobufCAllocator pb;
};

void sv_arena_init(struct sv_arena *a, size_t chunk_size);
/* NULL when memory is exhausted or `limit` would be passed (then `exhausted`
 * is set). Memory is 16-byte aligned. */
void *sv_arena_alloc(struct sv_arena *a, size_t n);
/* Frees every allocation; keeps one standard chunk for reuse. */
void sv_arena_reset(struct sv_arena *a);
void sv_arena_free(struct sv_arena *a);

#endif
