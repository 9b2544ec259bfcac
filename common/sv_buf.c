#include "sv_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sv_buf_reserve(struct sv_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sv_buf_append(struct sv_buf *b, const void *p, size_t n)
{
    int rc = sv_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void sv_buf_clear(struct sv_buf *b, size_t keep_cap)
{
    b->len = 0;
    if (b->cap > keep_cap) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void sv_buf_free(struct sv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
