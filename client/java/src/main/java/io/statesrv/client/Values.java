package io.statesrv.client;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The value encodings the server interprets: LIST ({@code varint(length) || bytes} per element,
 * varint = unsigned LEB128) and COUNTER (8 bytes, big-endian two's complement). No I/O.
 */
public final class Values {
    private Values() {}

    /** The LIST encoding of these elements. */
    public static byte[] encodeList(List<byte[]> elements) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] e : elements) {
            KeyGroups.putVarint(out, e.length);
            out.write(e, 0, e.length);
        }
        return out.toByteArray();
    }

    /**
     * The elements of a LIST encoding.
     *
     * @throws IllegalStateException if the bytes are not well-formed list framing
     */
    public static List<byte[]> decodeList(byte[] data) {
        List<byte[]> out = new ArrayList<>();
        int off = 0;
        while (off < data.length) {
            long len = 0;
            int shift = 0;
            int b;
            do {
                if (off >= data.length || shift > 63) {
                    throw new IllegalStateException("truncated list element length at " + off);
                }
                b = data[off++] & 0xff;
                len |= (long) (b & 0x7f) << shift;
                shift += 7;
            } while ((b & 0x80) != 0);
            if (len < 0 || len > data.length - off) {
                throw new IllegalStateException(
                        "list element of " + len + " bytes at " + off + " passes the end");
            }
            byte[] e = new byte[(int) len];
            System.arraycopy(data, off, e, 0, e.length);
            off += e.length;
            out.add(e);
        }
        return out;
    }

    /** The COUNTER encoding of {@code v}. */
    public static byte[] encodeCounter(long v) {
        byte[] b = new byte[8];
        for (int i = 0; i < 8; i++) {
            b[i] = (byte) (v >>> (56 - 8 * i));
        }
        return b;
    }

    /**
     * The number in a COUNTER encoding.
     *
     * @throws IllegalStateException if the value is not 8 bytes
     */
    public static long decodeCounter(byte[] data) {
        if (data.length != 8) {
            throw new IllegalStateException("a counter is 8 bytes, not " + data.length);
        }
        long v = 0;
        for (byte b : data) {
            v = (v << 8) | (b & 0xff);
        }
        return v;
    }
}
