package io.statesrv.client;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/** A stored value and its kind. Immutable; the bytes are copied in and out. */
public final class Value {
    private final byte[] data;
    private final ValueKind kind;

    private Value(byte[] data, ValueKind kind) {
        this.data = data;
        this.kind = kind;
    }

    public static Value of(byte[] data, ValueKind kind) {
        if (kind == null) {
            throw new NullPointerException("kind");
        }
        return new Value(data.clone(), kind);
    }

    /** A RAW value. */
    public static Value raw(byte[] data) {
        return of(data, ValueKind.RAW);
    }

    /** A RAW value holding the UTF-8 encoding of {@code s}. */
    public static Value raw(String s) {
        return new Value(s.getBytes(StandardCharsets.UTF_8), ValueKind.RAW);
    }

    /** A LIST value of these elements. */
    public static Value list(List<byte[]> elements) {
        return new Value(Values.encodeList(elements), ValueKind.LIST);
    }

    /** A COUNTER value. */
    public static Value counter(long v) {
        return new Value(Values.encodeCounter(v), ValueKind.COUNTER);
    }

    static Value wrap(byte[] data, ValueKind kind) {
        return new Value(data, kind);
    }

    public byte[] data() {
        return data.clone();
    }

    public ValueKind kind() {
        return kind;
    }

    public int size() {
        return data.length;
    }

    /** The bytes as UTF-8 text. */
    public String asString() {
        return new String(data, StandardCharsets.UTF_8);
    }

    /**
     * The elements of a LIST value.
     *
     * @throws IllegalStateException if the bytes are not list framing
     */
    public List<byte[]> asList() {
        return Values.decodeList(data);
    }

    /**
     * The number in a COUNTER value.
     *
     * @throws IllegalStateException if the value is not 8 bytes
     */
    public long asCounter() {
        return Values.decodeCounter(data);
    }

    byte[] bytes() {
        return data;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Value v && kind == v.kind && Arrays.equals(data, v.data);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(data) * 31 + kind.hashCode();
    }

    @Override
    public String toString() {
        return "Value[" + kind + ", " + HexFormat.of().formatHex(data) + "]";
    }
}
