package io.statesrv.flink;

import io.statesrv.client.Batch;
import io.statesrv.client.CheckpointInfo;
import io.statesrv.client.Entry;
import io.statesrv.client.RestoreResult;
import io.statesrv.client.ScanSpec;
import io.statesrv.client.StateInfo;
import io.statesrv.client.StateKey;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.StatesrvException;
import io.statesrv.client.Status;
import io.statesrv.client.Value;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The client calls the backend makes, waiting for each reply <em>uninterruptibly</em> (as a RocksDB
 * call does): Flink interrupts a task thread to cancel it, and a state access must then not fail
 * half-way with a misleading error. Every wait is still bounded by the client's I/O timeout (job
 * timeout for snapshot and restore).
 *
 * <p><b>Write-behind</b> (on unless {@code state.backend.statesrv.write-behind} is false): a write
 * (put, delete, append, batch) is sent and not waited for; the task goes on to its next record
 * while the reply travels. This keeps Flink's semantics because statesrvd answers one connection's
 * requests in order and every read sees every earlier write of its connection, so a later read sees
 * the write, and the reply of any later request means the earlier ones are answered too. A write
 * that failed is found at the next read, snapshot or {@link #sync()} (a checkpoint's synchronous
 * part always syncs): that call throws and so does every later one (the backend is poisoned), so
 * the task fails over and no checkpoint can hold state that lacks the write. Writes in flight are
 * bounded by the client's {@code maxInFlight} (the sender waits for a slot).
 */
final class StatesrvDb {
    /**
     * Writes in flight at most: past it the oldest is waited for (uninterruptibly). Well under the
     * client's maxInFlight (1024), so that another thread's request (a queryable-state read) never
     * waits, interruptibly, for a slot the task's writes hold.
     */
    static final int MAX_WRITES_BEHIND = 256;

    private final StatesrvClient c;
    private final boolean writeBehind;
    private final ArrayDeque<CompletableFuture<?>> pending = new ArrayDeque<>();
    private StatesrvException failed;

    StatesrvDb(StatesrvClient c) {
        this(c, false);
    }

    StatesrvDb(StatesrvClient c, boolean writeBehind) {
        this.c = c;
        this.writeBehind = writeBehind;
    }

    Optional<Value> get(StateKey k) {
        return read(c.get(k));
    }

    void put(StateKey k, byte[] value) {
        write(c.put(k, value));
    }

    void put(StateKey k, Value value) {
        write(c.put(k, value));
    }

    void delete(StateKey k) {
        write(c.delete(k));
    }

    void append(StateKey k, byte[] element) {
        write(c.append(k, element));
    }

    void batch(Batch b) {
        write(c.batch(b));
    }

    List<Entry> scanAll(ScanSpec spec) {
        return read(c.scanAll(spec));
    }

    List<StateInfo> listStates() {
        return read(c.listStates());
    }

    CheckpointInfo snapshot(long id) {
        return read(c.snapshot(id));
    }

    void deleteCheckpoint(long id) {
        read(c.deleteCheckpoint(id));
    }

    RestoreResult restore(List<String> sources, int first, int last) {
        return read(c.restore(sources, first, last));
    }

    /** Waits for every write in flight; throws if one failed (and from then on). */
    synchronized void sync() {
        check();
        while (!pending.isEmpty()) {
            settle(pending.poll());
        }
    }

    private synchronized void write(CompletableFuture<?> f) {
        if (!writeBehind) {
            await(f);
            return;
        }
        check();
        pending.add(f);
        while (!pending.isEmpty()
                && (pending.peek().isDone() || pending.size() > MAX_WRITES_BEHIND)) {
            settle(pending.poll());
        }
    }

    private <T> T read(CompletableFuture<T> f) {
        check();
        T r = await(f);
        // Its reply came after every earlier one: the writes before it are answered.
        sync();
        return r;
    }

    private void settle(CompletableFuture<?> f) {
        try {
            await(f);
        } catch (StatesrvException e) {
            failed = e;
            throw new StatesrvException(
                    e.status(),
                    "a state write sent earlier failed: " + e.detail(),
                    e.isConnectionError(),
                    e);
        }
    }

    private void check() {
        if (failed != null) {
            throw new StatesrvException(
                    failed.status(),
                    "an earlier state write failed (the task must fail over): " + failed.detail(),
                    failed.isConnectionError(),
                    failed);
        }
    }

    static <T> T await(CompletableFuture<T> f) {
        try {
            return f.join();
        } catch (CompletionException e) {
            Throwable t = e.getCause() != null ? e.getCause() : e;
            if (t instanceof StatesrvException se) {
                // With the caller's stack; the original (the reader thread's) is the cause.
                throw new StatesrvException(se.status(), se.detail(), se.isConnectionError(), se);
            }
            throw new StatesrvException(Status.INTERNAL, "unexpected: " + t, false, t);
        }
    }
}
