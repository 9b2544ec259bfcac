package io.statesrv.client;

import java.util.Arrays;
import java.util.HexFormat;

/** One entry of a scan, in stored order (key group, key, namespace). Immutable. */
public final class Entry {
    private final byte[] key;
    private final byte[] namespace;
    private final int keyGroup;
    private final Value value;

    Entry(byte[] key, byte[] namespace, int keyGroup, Value value) {
        this.key = key;
        this.namespace = namespace;
        this.keyGroup = keyGroup;
        this.value = value;
    }

    public byte[] key() {
        return key.clone();
    }

    public byte[] namespace() {
        return namespace.clone();
    }

    public int keyGroup() {
        return keyGroup;
    }

    public Value value() {
        return value;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Entry e
                && keyGroup == e.keyGroup
                && Arrays.equals(key, e.key)
                && Arrays.equals(namespace, e.namespace)
                && value.equals(e.value);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(key) * 31 + Arrays.hashCode(namespace) + keyGroup + value.hashCode();
    }

    @Override
    public String toString() {
        HexFormat hex = HexFormat.of();
        return "Entry[kg="
                + keyGroup
                + ", key="
                + hex.formatHex(key)
                + ", ns="
                + hex.formatHex(namespace)
                + ", "
                + value
                + "]";
    }
}
