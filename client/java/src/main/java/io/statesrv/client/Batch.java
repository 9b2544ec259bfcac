package io.statesrv.client;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import statesrv.v1.Statesrv;

/**
 * Writes applied atomically by {@link StatesrvClient#batch}: all or none. Each method copies its
 * arguments, so the caller's arrays may change afterwards. Not thread-safe: fill it on one thread.
 */
public final class Batch {
    private final List<Statesrv.BatchOp> ops = new ArrayList<>();

    public Batch put(StateKey k, byte[] value) {
        return put(k, Value.raw(value));
    }

    /** A put of a value of any kind (the server checks LIST framing and COUNTER size). */
    public Batch put(StateKey k, Value value) {
        ops.add(Statesrv.BatchOp.newBuilder().setPut(Wire.put(k, value)).build());
        return this;
    }

    /** A put whose entry expires {@code ttl} after it (zero or null: the state's TTL). */
    public Batch put(StateKey k, Value value, Duration ttl) {
        ops.add(
                Statesrv.BatchOp.newBuilder()
                        .setPut(Wire.put(k, value, Wire.writeTtl(ttl)))
                        .build());
        return this;
    }

    public Batch delete(StateKey k) {
        ops.add(Statesrv.BatchOp.newBuilder().setDelete(Wire.delete(k)).build());
        return this;
    }

    /** Appends one element to a LIST value. */
    public Batch append(StateKey k, byte[] element) {
        ops.add(
                Statesrv.BatchOp.newBuilder()
                        .setMerge(Wire.merge(k, MergeOp.APPEND, element))
                        .build());
        return this;
    }

    /** An append whose list expires {@code ttl} after it. */
    public Batch append(StateKey k, byte[] element, Duration ttl) {
        ops.add(
                Statesrv.BatchOp.newBuilder()
                        .setMerge(Wire.merge(k, MergeOp.APPEND, element, Wire.writeTtl(ttl)))
                        .build());
        return this;
    }

    /** An add whose counter expires {@code ttl} after it. */
    public Batch add(StateKey k, long delta, Duration ttl) {
        ops.add(
                Statesrv.BatchOp.newBuilder()
                        .setMerge(
                                Wire.merge(
                                        k,
                                        MergeOp.ADD_I64,
                                        Values.encodeCounter(delta),
                                        Wire.writeTtl(ttl)))
                        .build());
        return this;
    }

    /** Adds {@code delta} to a COUNTER value. */
    public Batch add(StateKey k, long delta) {
        ops.add(
                Statesrv.BatchOp.newBuilder()
                        .setMerge(Wire.merge(k, MergeOp.ADD_I64, Values.encodeCounter(delta)))
                        .build());
        return this;
    }

    /** Operations queued. */
    public int size() {
        return ops.size();
    }

    /** Empties the batch for reuse. */
    public void clear() {
        ops.clear();
    }

    List<Statesrv.BatchOp> ops() {
        return ops;
    }
}
