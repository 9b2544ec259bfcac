#include "sv_frame.h"
#include "sv_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An idle connection keeps at most this much buffer. */
#define SV_FRAME_KEEP_CAP (64u * 1024)

void sv_frame_reader_init(struct sv_frame_reader *r, uint32_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame;
}

void sv_frame_reader_free(struct sv_frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int sv_frame_reader_space(struct sv_frame_reader *r, size_t min, uint8_t **p, size_t *avail)
{
    if (!r->buf || r->cap - r->len < min) {
        size_t need = r->len + min;
        if (need < r->len)
            return -ENOMEM;
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    *p = r->buf + r->len;
    *avail = r->cap - r->len;
    return 0;
}

void sv_frame_reader_produced(struct sv_frame_reader *r, size_t n)
{
    r->len += n;
}

int sv_frame_reader_feed(struct sv_frame_reader *r, const void *data, size_t n)
{
    uint8_t *p;
    size_t avail;
    int rc = sv_frame_reader_space(r, n, &p, &avail);
    if (rc)
        return rc;
    if (n)
        memcpy(p, data, n);
    r->len += n;
    return 0;
}

int sv_frame_reader_next(struct sv_frame_reader *r, const uint8_t **payload, size_t *len)
{
    size_t have = r->len - r->pos;
    if (have < SV_FRAME_HEADER_SIZE)
        return 0;
    uint32_t n = sv_frame_header_get(r->buf + r->pos);
    if (n > r->max_frame) {
        r->bad_len = n;
        return SV_ETOOLARGE;
    }
    if (have - SV_FRAME_HEADER_SIZE < n)
        return 0;
    *payload = r->buf + r->pos + SV_FRAME_HEADER_SIZE;
    *len = n;
    r->pos += SV_FRAME_HEADER_SIZE + n;
    return 1;
}

int sv_frame_reader_ready(const struct sv_frame_reader *r)
{
    size_t have = r->len - r->pos;
    if (have < SV_FRAME_HEADER_SIZE)
        return 0;
    uint32_t n = sv_frame_header_get(r->buf + r->pos);
    return n > r->max_frame || have - SV_FRAME_HEADER_SIZE >= n;
}

void sv_frame_reader_discard(struct sv_frame_reader *r)
{
    size_t rest = r->len - r->pos;
    if (rest && r->pos)
        memmove(r->buf, r->buf + r->pos, rest);
    r->len = rest;
    r->pos = 0;
    if (rest == 0 && r->cap > SV_FRAME_KEEP_CAP) {
        /* A burst of large frames is over: give the memory back. */
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}
