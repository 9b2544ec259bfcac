/* The hot path's protobuf codec.
 *
 * A stream job sends get, put, merge and delete by the million; decoding and
 * encoding them through protobuf-c's descriptor walk cost about half of the
 * server's CPU per request. These functions handle exactly those shapes by
 * hand and produce the same result protobuf-c would, byte for byte (encode)
 * and field for field (decode); a differential test and a fuzz target hold
 * them to it. Anything else (another op or result, an unknown or repeated
 * field, a value out of its field's range) is declined, and the caller uses
 * protobuf-c, so this is a shortcut and never a second definition of the
 * protocol.
 *
 * The client's direction (requests packed, replies decoded) follows the
 * same rules, for get, multi_get, put, delete, merge and batch.
 *
 * sv_msg.c calls them; other code keeps using sv_msg.h. */
#ifndef SV_WIRE_H
#define SV_WIRE_H

#include "statesrv.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* Decodes a Request whose op is ping, get, put, delete or merge. Returns 1
 * and sets *out, allocated from alloc (NULL: malloc) exactly as
 * statesrv__v1__request__unpack() allocates, so it is freed the same way;
 * 0 when protobuf-c must decode these bytes (nothing is allocated then). */
int sv_wire_request_decode(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                           Statesrv__V1__Request **out);

/* Packed size of a Response whose result is unset, ping, get, put, delete
 * or merge: 1 and *size, or 0 when protobuf-c must pack it. */
int sv_wire_response_size(const Statesrv__V1__Response *r, size_t *size);

/* Packs a Response sv_wire_response_size() accepted into out (at least
 * that size); returns the bytes written. */
size_t sv_wire_response_pack(const Statesrv__V1__Response *r, uint8_t *out);

/* The client's direction (sv_wire_client.c). */

/* Packed size of a Request whose op is get, multi_get, put, delete, merge
 * or batch: 1 and *size, or 0 when protobuf-c must pack it. */
int sv_wire_request_size(const Statesrv__V1__Request *r, size_t *size);
/* Packs a Request sv_wire_request_size() accepted into out (at least that
 * size); returns the bytes written. */
size_t sv_wire_request_pack(const Statesrv__V1__Request *r, uint8_t *out);

/* Decodes a Response with no message and a result unset, ping, get,
 * multi_get, put, delete, merge or batch. Returns 1 and sets *out (malloc'd
 * as statesrv__v1__response__unpack(NULL, ...) allocates, so either free
 * works); 0 when protobuf-c must decode these bytes (nothing allocated). */
int sv_wire_response_decode(const uint8_t *p, size_t n, Statesrv__V1__Response **out);
/* Frees a Response unpacked with the default allocator, by either decoder:
 * by hand when it is one of the shapes above without unknown fields,
 * otherwise with statesrv__v1__response__free_unpacked(). NULL is ignored. */
void sv_wire_response_free(Statesrv__V1__Response *r);

#endif
