/* UTF-8, as proto3 strings and JSON need it: no overlong forms, no UTF-16
 * surrogates, nothing past U+10FFFF. */
#ifndef SV_UTF8_H
#define SV_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length (1..4) of the well-formed UTF-8 sequence at p (n bytes
 * available), or 0 if there is none there. */
size_t sv_utf8_seq(const uint8_t *p, size_t n);
/* Whether all n bytes are well-formed UTF-8. */
int sv_utf8_valid(const uint8_t *p, size_t n);
/* Makes the NUL-terminated s valid UTF-8 in place: every byte that is not
 * part of a well-formed sequence becomes '?'. */
void sv_utf8_scrub(char *s);

#endif
