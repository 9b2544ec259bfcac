#include "sv_msg.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_wire.h"

int sv_msg_append(struct sv_buf *out, const ProtobufCMessage *msg, uint32_t max_frame)
{
    /* Replies to the hot ops (server) and the hot requests (client) are
     * packed by hand (sv_wire.h). */
    const Statesrv__V1__Response *resp = msg->descriptor == &statesrv__v1__response__descriptor
                                             ? (const Statesrv__V1__Response *)msg
                                             : NULL;
    const Statesrv__V1__Request *req = msg->descriptor == &statesrv__v1__request__descriptor
                                           ? (const Statesrv__V1__Request *)msg
                                           : NULL;
    size_t n;
    if (resp && !sv_wire_response_size(resp, &n))
        resp = NULL;
    if (req && !sv_wire_request_size(req, &n))
        req = NULL;
    if (!resp && !req)
        n = protobuf_c_message_get_packed_size(msg);
    if (n > max_frame)
        return SV_ETOOLARGE;
    int rc = sv_buf_reserve(out, SV_FRAME_HEADER_SIZE + n);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    sv_frame_header_put(p, (uint32_t)n);
    if (resp)
        sv_wire_response_pack(resp, p + SV_FRAME_HEADER_SIZE);
    else if (req)
        sv_wire_request_pack(req, p + SV_FRAME_HEADER_SIZE);
    else
        protobuf_c_message_pack(msg, p + SV_FRAME_HEADER_SIZE);
    out->len += SV_FRAME_HEADER_SIZE + n;
    return 0;
}

int sv_msg_unpack_request(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                          Statesrv__V1__Request **out)
{
    /* The hot ops are decoded by hand (sv_wire.h). */
    if (sv_wire_request_decode(p, n, alloc, out))
        return 0;
    Statesrv__V1__Request *req = statesrv__v1__request__unpack(alloc, n, p);
    if (!req)
        return SV_EPROTO;
    if (req->op_case == STATESRV__V1__REQUEST__OP__NOT_SET) {
        statesrv__v1__request__free_unpacked(req, alloc);
        return SV_EPROTO;
    }
    *out = req;
    return 0;
}

int sv_msg_unpack_response(const uint8_t *p, size_t n, ProtobufCAllocator *alloc,
                           Statesrv__V1__Response **out)
{
    /* Replies to the hot requests are decoded by hand (sv_wire.h). */
    if (!alloc && sv_wire_response_decode(p, n, out))
        return 0;
    Statesrv__V1__Response *resp = statesrv__v1__response__unpack(alloc, n, p);
    if (!resp)
        return SV_EPROTO;
    *out = resp;
    return 0;
}

void sv_msg_free_response(Statesrv__V1__Response *r)
{
    sv_wire_response_free(r);
}
