/* Incremental frame codec: a 4-byte big-endian length N, then N payload
 * bytes. No I/O: bytes go in with sv_frame_reader_feed() (or are read
 * straight into sv_frame_reader_space()), whole frames come out of
 * sv_frame_reader_next().
 *
 * Taken frames stay in the buffer until sv_frame_reader_discard(), so a
 * caller can rewind (set `pos` back to a saved value) and take the same
 * frames again; the server uses this to re-run a group commit. */
#ifndef SV_FRAME_H
#define SV_FRAME_H

#include "sv_be.h"

#include <stddef.h>
#include <stdint.h>

#define SV_FRAME_HEADER_SIZE 4u

static inline void sv_frame_header_put(uint8_t *p, uint32_t n)
{
    sv_be32_put(p, n);
}

static inline uint32_t sv_frame_header_get(const uint8_t *p)
{
    return sv_be32_get(p);
}

struct sv_frame_reader {
    uint8_t *buf;
    size_t len; /* bytes held */
    size_t cap;
    size_t pos;         /* start of the first frame not yet taken */
    uint32_t max_frame; /* largest payload accepted */
    uint32_t bad_len;   /* after SV_ETOOLARGE: the announced length */
};

void sv_frame_reader_init(struct sv_frame_reader *r, uint32_t max_frame);
void sv_frame_reader_free(struct sv_frame_reader *r);

/* Copies n bytes in. 0 or -ENOMEM. Invalidates pointers from _next(). */
int sv_frame_reader_feed(struct sv_frame_reader *r, const void *data, size_t n)
    __attribute__((warn_unused_result));

/* Gives at least `min` writable bytes at *p (*avail of them) so a read can
 * land in place; report what arrived with sv_frame_reader_produced().
 * 0 or -ENOMEM. Invalidates pointers from _next(). */
int sv_frame_reader_space(struct sv_frame_reader *r, size_t min, uint8_t **p, size_t *avail)
    __attribute__((warn_unused_result));
void sv_frame_reader_produced(struct sv_frame_reader *r, size_t n);

/* Takes the next whole frame: 1 with *payload and *len set (valid until the next
 * feed/space/discard), 0 when more bytes are needed, SV_ETOOLARGE when the
 * announced length exceeds max_frame (bad_len holds it; the stream cannot be
 * resynchronised and should be closed). */
int sv_frame_reader_next(struct sv_frame_reader *r, const uint8_t **payload, size_t *len);

/* True when at least one whole frame (or an oversize header) is waiting. */
int sv_frame_reader_ready(const struct sv_frame_reader *r);

/* Drops the frames already taken (bytes before pos). */
void sv_frame_reader_discard(struct sv_frame_reader *r);

#endif
