package io.statesrv.client;

/** How the server interprets a stored value. */
public enum ValueKind {
    /** Opaque bytes. */
    RAW,
    /** Elements, each {@code varint(length) || bytes}; see {@link Values#decodeList}. */
    LIST,
    /** Exactly 8 bytes, a big-endian two's complement int64; see {@link Values#decodeCounter}. */
    COUNTER;

    static ValueKind fromWire(int code) {
        return code >= 0 && code < values().length ? values()[code] : RAW;
    }
}
