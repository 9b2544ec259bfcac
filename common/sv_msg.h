/* Protobuf messages on frames: encode into a buffer with the length header,
 * decode with a size cap and a caller-chosen allocator. */
#ifndef SV_MSG_H
#define SV_MSG_H

#include "statesrv.pb-c.h"
#include "sv_buf.h"

#include <stddef.h>
#include <stdint.h>

#define SV_PROTOCOL_VERSION 1u
#define SV_VERSION "0.1.0"

/* Appends one frame (header + packed message) to out. 0, SV_ETOOLARGE when
 * the packed message is bigger than max_frame (out unchanged), or -ENOMEM. */
int sv_msg_append(struct sv_buf *out, const ProtobufCMessage *msg, uint32_t max_frame)
    __attribute__((warn_unused_result));

/* Unpacks a Request. 0, or SV_EPROTO if the bytes are not a Request or name
 * no op. The result belongs to `alloc` (NULL: malloc; free it with
 * statesrv__v1__request__free_unpacked). */
int sv_msg_unpack_request(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                          Statesrv__V1__Request **out) __attribute__((warn_unused_result));

/* Unpacks a Response; same contract. */
int sv_msg_unpack_response(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                           Statesrv__V1__Response **out) __attribute__((warn_unused_result));
/* Frees a Response unpacked with alloc NULL (the hot shapes by hand, the
 * rest with statesrv__v1__response__free_unpacked). NULL is ignored. */
void sv_msg_free_response(Statesrv__V1__Response *r);

#endif
