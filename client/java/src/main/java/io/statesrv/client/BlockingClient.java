package io.statesrv.client;

import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * The operations of a {@link StatesrvClient} as calls that wait for their reply and throw {@link
 * StatesrvException}. Every wait is bounded by the client's I/O timeout (job timeout for snapshot
 * and restore), which fails the connection. Thread-safe; shares the client's connection, order and
 * in-flight bound. Do not call it from a callback of the same client's futures.
 */
public final class BlockingClient {
    private final StatesrvClient c;

    BlockingClient(StatesrvClient c) {
        this.c = c;
    }

    public void ping() {
        await(c.ping());
    }

    public Optional<Value> get(StateKey k) {
        return await(c.get(k));
    }

    public Optional<ValueWithTtl> getWithTtl(StateKey k) {
        return await(c.getWithTtl(k));
    }

    public List<Optional<Value>> multiGet(List<StateKey> keys) {
        return await(c.multiGet(keys));
    }

    public void put(StateKey k, byte[] value) {
        await(c.put(k, value));
    }

    public void put(StateKey k, Value value) {
        await(c.put(k, value));
    }

    public void put(StateKey k, Value value, Duration ttl) {
        await(c.put(k, value, ttl));
    }

    public boolean delete(StateKey k) {
        return await(c.delete(k));
    }

    public MergeResult merge(StateKey k, MergeOp op, byte[] operand) {
        return await(c.merge(k, op, operand));
    }

    public MergeResult merge(StateKey k, MergeOp op, byte[] operand, Duration ttl) {
        return await(c.merge(k, op, operand, ttl));
    }

    public long append(StateKey k, byte[] element, Duration ttl) {
        return await(c.append(k, element, ttl));
    }

    public long add(StateKey k, long delta, Duration ttl) {
        return await(c.add(k, delta, ttl));
    }

    public long append(StateKey k, byte[] element) {
        return await(c.append(k, element));
    }

    public long add(StateKey k, long delta) {
        return await(c.add(k, delta));
    }

    public int batch(Batch b) {
        return await(c.batch(b));
    }

    public ScanPage scan(ScanSpec spec, byte[] cursor) {
        return await(c.scan(spec, cursor));
    }

    public List<Entry> scanAll(ScanSpec spec) {
        return await(c.scanAll(spec));
    }

    public long clear(StateKey k) {
        return await(c.clear(k));
    }

    public long dropState(String state) {
        return await(c.dropState(state));
    }

    public List<StateInfo> listStates() {
        return await(c.listStates());
    }

    public Optional<TtlConfig> stateTtl(String state) {
        return await(c.stateTtl(state));
    }

    public Optional<TtlConfig> setStateTtl(String state, TtlConfig ttl) {
        return await(c.setStateTtl(state, ttl));
    }

    public Optional<TtlConfig> removeStateTtl(String state) {
        return await(c.removeStateTtl(state));
    }

    public ServerStats stats() {
        return await(c.stats());
    }

    public CheckpointInfo snapshot() {
        return await(c.snapshot());
    }

    public CheckpointInfo snapshot(long id) {
        return await(c.snapshot(id));
    }

    public CheckpointInfo snapshot(SnapshotOptions options) {
        return await(c.snapshot(options));
    }

    public List<CheckpointInfo> listCheckpoints() {
        return await(c.listCheckpoints());
    }

    public List<CheckpointProblem> listCheckpointProblems() {
        return await(c.listCheckpointProblems());
    }

    public CheckpointListing checkpointListing() {
        return await(c.checkpointListing());
    }

    public void deleteCheckpoint(long id) {
        await(c.deleteCheckpoint(id));
    }

    public RestoreResult restore(List<String> sources) {
        return await(c.restore(sources));
    }

    public RestoreResult restore(List<String> sources, int first, int last) {
        return await(c.restore(sources, first, last));
    }

    /**
     * Waits for f; the connection's own timeouts bound the wait.
     *
     * @throws StatesrvException what the request came to
     */
    static <T> T await(CompletableFuture<T> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new StatesrvException(
                    Status.INTERRUPTED, "interrupted while waiting for the reply", false, e);
        } catch (ExecutionException e) {
            throw unwrap(e);
        }
    }

    /** The StatesrvException inside, with the caller's stack (the original is its cause). */
    static StatesrvException unwrap(Throwable e) {
        Throwable t = e;
        while ((t instanceof ExecutionException || t instanceof CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof StatesrvException se) {
            return new StatesrvException(se.status(), se.detail(), se.isConnectionError(), se);
        }
        return new StatesrvException(Status.INTERNAL, "unexpected: " + t, false, t);
    }
}
