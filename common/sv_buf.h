/* A growable byte buffer. Owns its memory; sv_buf_free() releases it. */
#ifndef SV_BUF_H
#define SV_BUF_H

#include <stddef.h>
#include <stdint.h>

struct sv_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

#define SV_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Ensures room for `extra` more bytes after len. 0 or -ENOMEM. */
int sv_buf_reserve(struct sv_buf *b, size_t extra) __attribute__((warn_unused_result));
int sv_buf_append(struct sv_buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
/* Empties the buffer; releases its memory if it grew beyond keep_cap. */
void sv_buf_clear(struct sv_buf *b, size_t keep_cap);
void sv_buf_free(struct sv_buf *b);

#endif
