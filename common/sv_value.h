/* Stored values: a small header, then the value bytes.
 *
 *   byte 0: bits 0-3 header version (1), bit 4 HAS_EXPIRY, bit 5
 *           ELEM_EXPIRY (LIST only, always with HAS_EXPIRY), bits 6-7 zero
 *   byte 1: kind (0 RAW, 1 LIST, 2 COUNTER)
 *   bytes 2-9, only with HAS_EXPIRY: expiry, ms since the epoch, big-endian
 *           (0: none)
 *
 * LIST values are a sequence of elements, each varint(length) || bytes;
 * COUNTER values are 8 bytes, a big-endian two's complement int64.
 *
 * A timed list (ELEM_EXPIRY) gives each element an expiry of its own, as
 * Flink's ListState TTL does: each element is varint(length) || expiry (u64
 * BE ms, 0: none) || bytes. Its header's expiry is 0 when some element has
 * none, else the latest element's, so the entry as a whole has expired
 * exactly when every element has. Only the server writes timed lists (a list
 * appended to with a TTL other than its own); what it answers is always a
 * plain list of the elements still alive (sv_tlist_plain). */
#ifndef SV_VALUE_H
#define SV_VALUE_H

#include <stddef.h>
#include <stdint.h>

#define SV_VALUE_VERSION 1u
#define SV_VALUE_HAS_EXPIRY 0x10u
#define SV_VALUE_ELEM_EXPIRY 0x20u
#define SV_VALUE_HEADER_MAX 10u
#define SV_COUNTER_SIZE 8u

enum sv_value_kind { SV_KIND_RAW = 0, SV_KIND_LIST = 1, SV_KIND_COUNTER = 2, SV_KIND_MAX };

struct sv_value {
    enum sv_value_kind kind;
    uint64_t expiry_ms; /* 0: none */
    int timed;          /* a timed list: data holds timed elements */
    int scratch;        /* data is the store's view of a timed list, which the next
                           read of one reuses: copy it to keep it */
    const uint8_t *data;
    size_t len;
};

const char *sv_value_kind_name(enum sv_value_kind kind);

/* Writes a header (<= SV_VALUE_HEADER_MAX bytes); returns its size. */
size_t sv_value_header_put(uint8_t *out, enum sv_value_kind kind, uint64_t expiry_ms);
size_t sv_value_header_size(uint64_t expiry_ms);

/* Parses a stored value's header; data points into p. 0 or SV_ECORRUPT. */
int sv_value_parse(const uint8_t *p, size_t n, struct sv_value *out);

/* Checks that data is well-formed for its kind. 0 or SV_EINVAL. */
int sv_value_check_kind(enum sv_value_kind kind, const uint8_t *data, size_t len);
/* The same for a parsed stored value (a timed list's elements too). */
int sv_value_check(const struct sv_value *v);

/* List elements. next: 1 with *elem and *elem_len set and *off advanced, 0 at the
 * end, SV_ECORRUPT on malformed framing. */
int sv_list_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **elem, size_t *elem_len);
size_t sv_list_elem_size(size_t elem_len);
size_t sv_list_elem_put(uint8_t *out, const void *elem, size_t elem_len);

/* Timed list elements: as sv_list_next, with the element's *expiry. */
int sv_tlist_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **elem, size_t *elem_len,
                  uint64_t *expiry);
size_t sv_tlist_elem_size(size_t elem_len);

/* Builds a timed list stored value (header included) at the end of out:
 * begin, add each element, finish (which writes the header). A list whose
 * elements all share one expiry is better stored plain (sv_tlist_uniform). */
struct sv_buf;
struct sv_tlist_builder {
    struct sv_buf *out;
    size_t start;    /* where the value begins in out */
    uint64_t latest; /* the latest element expiry */
    uint64_t first;  /* the first element's expiry */
    size_t n;        /* elements added */
    int forever;     /* some element has no expiry */
    int uniform;     /* every element has the first's expiry */
};
int sv_tlist_begin(struct sv_tlist_builder *b, struct sv_buf *out)
    __attribute__((warn_unused_result));
int sv_tlist_add(struct sv_tlist_builder *b, const void *elem, size_t elem_len, uint64_t expiry)
    __attribute__((warn_unused_result));
/* Writes the header; returns the entry's expiry (0: none). */
uint64_t sv_tlist_finish(struct sv_tlist_builder *b);

/* Appends to out the elements of list value v (timed or plain) that are
 * alive at now (expiry 0 or after now; every one with keep_expired), as a
 * plain list; *dropped: how many were left out. 0, SV_ECORRUPT or -ENOMEM. */
int sv_tlist_plain(const struct sv_value *v, uint64_t now, int keep_expired, struct sv_buf *out,
                   size_t *dropped) __attribute__((warn_unused_result));

/* Appends to out the stored value of timed list v without the elements
 * expired at now; *left: how many remain (0: nothing was written, the entry
 * is gone), *dropped: how many were left out. A list whose remaining
 * elements share one expiry is written plain. 0, SV_ECORRUPT or -ENOMEM. */
int sv_tlist_trim(const struct sv_value *v, uint64_t now, struct sv_buf *out, size_t *left,
                  size_t *dropped) __attribute__((warn_unused_result));

void sv_i64_put(uint8_t *out, int64_t v);
int64_t sv_i64_get(const uint8_t *p);

#endif
