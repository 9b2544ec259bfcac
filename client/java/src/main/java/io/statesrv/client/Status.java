package io.statesrv.client;

/**
 * What a request came to: the server's statuses (the wire's {@code Status}, codes 0..8) and the
 * client's own failures, which never travel on the wire.
 */
public enum Status {
    OK(0),
    /** {@code get}: no entry at that address; {@code delete_checkpoint}: no such checkpoint. */
    NOT_FOUND(1),
    /** A field is wrong; the server's message says which. */
    INVALID_ARGUMENT(2),
    /** A frame, key, value, batch or reply over a limit (named in the message). */
    TOO_LARGE(3),
    /** The server wants a hello with its token; the connection is closed. */
    UNAUTHENTICATED(4),
    /** A snapshot or restore runs; retry later. */
    BUSY(5),
    /** The server cannot take the request now (full, shutting down, commit failed). */
    UNAVAILABLE(6),
    /** A server fault; see its log. */
    INTERNAL(7),
    /** The store or its disk is full; reads still work. */
    NO_SPACE(8),
    /** A status code this client does not know (a newer server). */
    UNKNOWN(-1),

    /** Could not connect, or the handshake failed. */
    CONNECT_FAILED(-1),
    /** The connection failed or the server closed it. */
    IO_ERROR(-1),
    /**
     * No reply within the configured timeout (the connection is then closed), or no in-flight slot
     * became free in time (then nothing was sent and the connection stays up).
     */
    TIMEOUT(-1),
    /** The server's bytes made no sense; the connection is closed. */
    PROTOCOL_ERROR(-1),
    /** The client was closed. */
    CLOSED(-1),
    /** The calling thread was interrupted while it waited; the request may have been sent. */
    INTERRUPTED(-1);

    private final int wireCode;

    Status(int wireCode) {
        this.wireCode = wireCode;
    }

    /** The code on the wire, or -1 for {@link #UNKNOWN} and the client's own failures. */
    public int wireCode() {
        return wireCode;
    }

    /** True for the statuses a server sends (including {@link #UNKNOWN}). */
    public boolean isServerStatus() {
        return ordinal() <= UNKNOWN.ordinal();
    }

    /** The status of a wire code; {@link #UNKNOWN} for a code this client does not know. */
    public static Status fromWire(int code) {
        return code >= 0 && code <= NO_SPACE.wireCode ? values()[code] : UNKNOWN;
    }
}
