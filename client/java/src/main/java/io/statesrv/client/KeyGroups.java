package io.statesrv.client;

import java.io.ByteArrayOutputStream;

/**
 * Keyed-state addressing as the server does it (common/sv_keys.c): the key-group hash and the
 * stored key. The shared test vectors (tests/vectors/client.txt) pin both to the C code.
 */
public final class KeyGroups {
    private KeyGroups() {}

    /** The key group the server assigns to {@code key}: murmur3_x86_32(key, 0) mod keyGroups. */
    public static int of(byte[] key, int keyGroups) {
        if (keyGroups <= 0) {
            throw new IllegalArgumentException("key_groups must be positive, not " + keyGroups);
        }
        return (int) (Integer.toUnsignedLong(murmur3(key, 0)) % keyGroups);
    }

    /** MurmurHash3 x86_32 as published by Austin Appleby; blocks are read little-endian. */
    public static int murmur3(byte[] data, int seed) {
        final int c1 = 0xcc9e2d51;
        final int c2 = 0x1b873593;
        int h = seed;
        int n = data.length / 4 * 4;
        for (int i = 0; i < n; i += 4) {
            int k =
                    (data[i] & 0xff)
                            | (data[i + 1] & 0xff) << 8
                            | (data[i + 2] & 0xff) << 16
                            | (data[i + 3] & 0xff) << 24;
            k *= c1;
            k = Integer.rotateLeft(k, 15);
            k *= c2;
            h ^= k;
            h = Integer.rotateLeft(h, 13);
            h = h * 5 + 0xe6546b64;
        }
        int tail = data.length & 3;
        if (tail > 0) {
            int k = 0;
            if (tail == 3) {
                k ^= (data[n + 2] & 0xff) << 16;
            }
            if (tail >= 2) {
                k ^= (data[n + 1] & 0xff) << 8;
            }
            k ^= data[n] & 0xff;
            k *= c1;
            k = Integer.rotateLeft(k, 15);
            k *= c2;
            h ^= k;
        }
        h ^= data.length;
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        h ^= h >>> 16;
        return h;
    }

    /**
     * The stored key: {@code kg} (2 bytes, big-endian) || varint(len(key)) || key || namespace. All
     * namespaces of a key share the prefix, and a key group is one contiguous range.
     */
    public static byte[] storedKey(int kg, byte[] key, byte[] namespace) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(12 + key.length + namespace.length);
        out.write(kg >>> 8);
        out.write(kg);
        putVarint(out, key.length);
        out.write(key, 0, key.length);
        out.write(namespace, 0, namespace.length);
        return out.toByteArray();
    }

    static void putVarint(ByteArrayOutputStream out, long v) {
        while (Long.compareUnsigned(v, 0x80) >= 0) {
            out.write((int) (v | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }
}
