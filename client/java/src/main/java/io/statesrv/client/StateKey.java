package io.statesrv.client;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.OptionalInt;

/**
 * The address of one entry: {@code (state, key, namespace)}, and optionally an explicit key group.
 * Immutable; the byte arrays are copied in and out.
 *
 * <p>The state is the name of the state descriptor (1..64 bytes of {@code [A-Za-z0-9_.-]}), the key
 * the record's key (non-empty), the namespace usually the window or a MapState's user key (may be
 * empty). Without an explicit key group the server puts the key in {@link KeyGroups#of}; a job that
 * computes its own gives it with {@link #withKeyGroup}, and must then give the same group on every
 * access to that key. The server judges names, sizes and groups; its status comes back unchanged.
 */
public final class StateKey {
    private static final byte[] EMPTY = new byte[0];

    private final String state;
    private final byte[] key;
    private final byte[] namespace;
    private final int keyGroup; // -1: none

    private StateKey(String state, byte[] key, byte[] namespace, int keyGroup) {
        if (state == null || key == null || namespace == null) {
            throw new NullPointerException("state, key and namespace must not be null");
        }
        this.state = state;
        this.key = key;
        this.namespace = namespace;
        this.keyGroup = keyGroup;
    }

    /** An entry with an empty namespace. */
    public static StateKey of(String state, byte[] key) {
        return new StateKey(state, key.clone(), EMPTY, -1);
    }

    /** An entry whose key is the UTF-8 encoding of {@code key}. */
    public static StateKey of(String state, String key) {
        return new StateKey(state, key.getBytes(StandardCharsets.UTF_8), EMPTY, -1);
    }

    public static StateKey of(String state, byte[] key, byte[] namespace) {
        return new StateKey(state, key.clone(), namespace.clone(), -1);
    }

    /** The same address in another namespace. */
    public StateKey withNamespace(byte[] ns) {
        return new StateKey(state, key, ns.clone(), keyGroup);
    }

    /** The same address in another namespace, the UTF-8 encoding of {@code ns}. */
    public StateKey withNamespace(String ns) {
        return new StateKey(state, key, ns.getBytes(StandardCharsets.UTF_8), keyGroup);
    }

    /**
     * The same address with an explicit key group ({@code 0 <= kg < key_groups}, checked by the
     * server).
     */
    public StateKey withKeyGroup(int kg) {
        if (kg < 0) {
            throw new IllegalArgumentException("key group " + kg + " is negative");
        }
        return new StateKey(state, key, namespace, kg);
    }

    public String state() {
        return state;
    }

    public byte[] key() {
        return key.clone();
    }

    public byte[] namespace() {
        return namespace.clone();
    }

    public OptionalInt keyGroup() {
        return keyGroup < 0 ? OptionalInt.empty() : OptionalInt.of(keyGroup);
    }

    byte[] keyBytes() {
        return key;
    }

    byte[] namespaceBytes() {
        return namespace;
    }

    int rawKeyGroup() {
        return keyGroup;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof StateKey k
                && state.equals(k.state)
                && Arrays.equals(key, k.key)
                && Arrays.equals(namespace, k.namespace)
                && keyGroup == k.keyGroup;
    }

    @Override
    public int hashCode() {
        return ((state.hashCode() * 31 + Arrays.hashCode(key)) * 31 + Arrays.hashCode(namespace))
                        * 31
                + keyGroup;
    }

    @Override
    public String toString() {
        HexFormat hex = HexFormat.of();
        return "StateKey["
                + state
                + ", key="
                + hex.formatHex(key)
                + ", ns="
                + hex.formatHex(namespace)
                + (keyGroup < 0 ? "" : ", kg=" + keyGroup)
                + "]";
    }
}
