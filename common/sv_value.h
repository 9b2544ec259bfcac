/* Stored values: a small header, then the value bytes.
 *
 *   byte 0: bits 0-3 header version (1), bit 4 HAS_EXPIRY, bits 5-7 zero
 *   byte 1: kind (0 RAW, 1 LIST, 2 COUNTER)
 *   bytes 2-9, only with HAS_EXPIRY: expiry, ms since the epoch, big-endian
 *
 * TTL can therefore arrive later without a format change. LIST values are a
 * sequence of elements, each varint(length) || bytes; COUNTER values are 8
 * bytes, a big-endian two's complement int64. */
#ifndef SV_VALUE_H
#define SV_VALUE_H

#include <stddef.h>
#include <stdint.h>

#define SV_VALUE_VERSION 1u
#define SV_VALUE_HAS_EXPIRY 0x10u
#define SV_VALUE_HEADER_MAX 10u
#define SV_COUNTER_SIZE 8u

enum sv_value_kind { SV_KIND_RAW = 0, SV_KIND_LIST = 1, SV_KIND_COUNTER = 2, SV_KIND_MAX };

struct sv_value {
    enum sv_value_kind kind;
    uint64_t expiry_ms; /* 0: none */
    const uint8_t *data;
    size_t len;
};

const char *sv_value_kind_name(enum sv_value_kind kind);

/* Writes a header (<= SV_VALUE_HEADER_MAX bytes); returns its size. */
size_t sv_value_header_put(uint8_t *out, enum sv_value_kind kind, uint64_t expiry_ms);
size_t sv_value_header_size(uint64_t expiry_ms);

/* Parses a stored value; data points into p. 0 or SV_ECORRUPT. */
int sv_value_parse(const uint8_t *p, size_t n, struct sv_value *out);

/* Checks that data is well-formed for its kind. 0 or SV_EINVAL. */
int sv_value_check_kind(enum sv_value_kind kind, const uint8_t *data, size_t len);

/* List elements. next: 1 with *elem and *elem_len set and *off advanced, 0 at the
 * end, SV_ECORRUPT on malformed framing. */
int sv_list_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **elem, size_t *elem_len);
size_t sv_list_elem_size(size_t elem_len);
size_t sv_list_elem_put(uint8_t *out, const void *elem, size_t elem_len);

void sv_i64_put(uint8_t *out, int64_t v);
int64_t sv_i64_get(const uint8_t *p);

#endif
