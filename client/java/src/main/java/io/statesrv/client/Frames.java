package io.statesrv.client;

import java.util.Arrays;

/**
 * The frame codec, no I/O: a 4-byte big-endian length N, then N bytes of one protobuf message
 * (common/sv_frame.h). {@link #requestFrame} writes a request; a {@link Decoder} takes whole frames
 * out of the bytes fed to it.
 */
final class Frames {
    static final int HEADER = 4;

    private Frames() {}

    /**
     * The frame of a {@code Request} whose op is already encoded in {@code opBytes} (a Request with
     * id 0, which proto3 leaves out): field 1 (id, varint) goes first, as protobuf-c and
     * protobuf-java put fields in number order, so the bytes equal a whole Request's encoding. This
     * lets the op be encoded outside the connection's lock and only the id inside it.
     */
    static byte[] requestFrame(long id, byte[] opBytes) {
        int idLen = id == 0 ? 0 : 1 + varintSize(id);
        int n = idLen + opBytes.length;
        byte[] f = new byte[HEADER + n];
        putHeader(f, n);
        int p = HEADER;
        if (id != 0) {
            f[p++] = 0x08; // field 1, wire type 0
            long v = id;
            while (Long.compareUnsigned(v, 0x80) >= 0) {
                f[p++] = (byte) (v | 0x80);
                v >>>= 7;
            }
            f[p++] = (byte) v;
        }
        System.arraycopy(opBytes, 0, f, p, opBytes.length);
        return f;
    }

    /** The frame of any encoded message. */
    static byte[] frame(byte[] message) {
        byte[] f = new byte[HEADER + message.length];
        putHeader(f, message.length);
        System.arraycopy(message, 0, f, HEADER, message.length);
        return f;
    }

    /** The size of a request frame for an id of up to 10 varint bytes. */
    static long maxRequestFrameSize(int opBytes) {
        return HEADER + 11L + opBytes;
    }

    static int varintSize(long v) {
        int n = 1;
        while (Long.compareUnsigned(v, 0x80) >= 0) {
            v >>>= 7;
            n++;
        }
        return n;
    }

    private static void putHeader(byte[] f, int n) {
        f[0] = (byte) (n >>> 24);
        f[1] = (byte) (n >>> 16);
        f[2] = (byte) (n >>> 8);
        f[3] = (byte) n;
    }

    /** An announced frame length over the decoder's limit: the stream cannot be resynchronised. */
    static final class FrameTooLargeException extends Exception {
        private static final long serialVersionUID = 1L;

        FrameTooLargeException(long len, long max) {
            super("frame of " + len + " bytes announced, more than the limit of " + max);
        }
    }

    /** Feed bytes, take whole frames. Not thread-safe (the connection's reader owns one). */
    static final class Decoder {
        private byte[] buf = new byte[64 * 1024];
        private int start; // first byte not yet taken
        private int end; // bytes held
        private long maxFrame;

        Decoder(long maxFrame) {
            this.maxFrame = maxFrame;
        }

        void setMaxFrame(long max) {
            this.maxFrame = max;
        }

        void feed(byte[] data, int off, int len) {
            if (end + len > buf.length) {
                int held = end - start;
                if (held + len <= buf.length && start > 0) {
                    System.arraycopy(buf, start, buf, 0, held);
                } else {
                    byte[] b = new byte[Math.max(buf.length * 2, held + len)];
                    System.arraycopy(buf, start, b, 0, held);
                    buf = b;
                }
                start = 0;
                end = held;
            }
            System.arraycopy(data, off, buf, end, len);
            end += len;
        }

        /**
         * The next whole frame's payload, or null when more bytes are needed.
         *
         * @throws FrameTooLargeException when the announced length passes the limit
         */
        byte[] next() throws FrameTooLargeException {
            if (end - start < HEADER) {
                return null;
            }
            long n =
                    (buf[start] & 0xffL) << 24
                            | (buf[start + 1] & 0xffL) << 16
                            | (buf[start + 2] & 0xffL) << 8
                            | (buf[start + 3] & 0xffL);
            if (n > maxFrame) {
                throw new FrameTooLargeException(n, maxFrame);
            }
            if (end - start - HEADER < n) {
                return null;
            }
            int from = start + HEADER;
            start = from + (int) n;
            if (start == end) {
                start = 0;
                end = 0;
                byte[] p = Arrays.copyOfRange(buf, from, from + (int) n);
                if (buf.length > 1024 * 1024) {
                    buf = new byte[64 * 1024]; // do not keep one huge reply's buffer
                }
                return p;
            }
            return Arrays.copyOfRange(buf, from, from + (int) n);
        }
    }
}
