#include "sv_msg.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_wire.h"

int sv_msg_append(struct sv_buf *out, const ProtobufCMessage *msg, uint32_t max_frame)
{
    /* Replies to the hot ops are packed by hand (sv_wire.h). */
    const Statesrv__V1__Response *resp = msg->descriptor == &statesrv__v1__response__descriptor
                                             ? (const Statesrv__V1__Response *)msg
                                             : NULL;
    size_t n;
    if (!resp || !sv_wire_response_size(resp, &n)) {
        resp = NULL;
        n = protobuf_c_message_get_packed_size(msg);
    }
    if (n > max_frame)
        return SV_ETOOLARGE;
    int rc = sv_buf_reserve(out, SV_FRAME_HEADER_SIZE + n);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    sv_frame_header_put(p, (uint32_t)n);
    if (resp)
        sv_wire_response_pack(resp, p + SV_FRAME_HEADER_SIZE);
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
    Statesrv__V1__Response *resp = statesrv__v1__response__unpack(alloc, n, p);
    if (!resp)
        return SV_EPROTO;
    *out = resp;
    return 0;
}

/* The length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void sv_msg_scrub_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}
