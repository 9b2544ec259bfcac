package io.statesrv.flink;

import io.statesrv.client.Batch;
import io.statesrv.client.CheckpointInfo;
import io.statesrv.client.Entry;
import io.statesrv.client.RestoreResult;
import io.statesrv.client.ScanSpec;
import io.statesrv.client.SnapshotOptions;
import io.statesrv.client.StateInfo;
import io.statesrv.client.StateKey;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.StatesrvException;
import io.statesrv.client.Status;
import io.statesrv.client.Value;
import io.statesrv.client.ValueKind;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * bounded by {@link #MAX_WRITES_BEHIND}.
 *
 * <p><b>Read cache</b> ({@code state.backend.statesrv.read-cache-entries}, 0: none): the last
 * entries read or written, least recently used out. Coherent because the backend's statesrvd is its
 * own (nothing else writes to it) and every write goes through this class: a put or delete updates
 * the entry, an append or a batch drops it (a batch drops them all). A hit costs no round trip: a
 * state read twice within one element, or an accumulator read again at a window's firing, is read
 * once.
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
    private final LinkedHashMap<StateKey, Cached> cache; // null: no read cache
    private volatile StatesrvException failed;

    StatesrvDb(StatesrvClient c) {
        this(c, false, 0);
    }

    StatesrvDb(StatesrvClient c, boolean writeBehind, int cacheEntries) {
        this.c = c;
        this.writeBehind = writeBehind;
        this.cache =
                cacheEntries <= 0
                        ? null
                        : new LinkedHashMap<>(cacheEntries * 2, 0.75f, true) {
                            private static final long serialVersionUID = 1L;

                            @Override
                            protected boolean removeEldestEntry(Map.Entry<StateKey, Cached> e) {
                                return size() > cacheEntries;
                            }
                        };
    }

    /** An entry as last read or written; {@code write}: the write that made it, or null. */
    private record Cached(Optional<Value> value, CompletableFuture<?> write) {}

    Optional<Value> get(StateKey k) {
        if (cache != null) {
            synchronized (this) {
                Cached hit = cache.get(k);
                if (hit != null) {
                    check();
                    if (hit.write != null && !hit.write.isDone()) {
                        // Never answer with a write the server has not acknowledged.
                        sync();
                    } else {
                        reapDone();
                    }
                    return hit.value;
                }
            }
        }
        Optional<Value> v = read(c.get(k));
        remember(k, v, null);
        return v;
    }

    /**
     * A read that leaves the cache alone, for another thread than the task's (queryable state): its
     * miss must not put back a value the task may have overwritten since the request left.
     */
    Optional<Value> getUncached(StateKey k) {
        return read(c.get(k));
    }

    void put(StateKey k, byte[] value) {
        CompletableFuture<?> f = write(c.put(k, value));
        remember(k, Optional.of(Value.raw(value)), f);
    }

    void put(StateKey k, Value value) {
        CompletableFuture<?> f = write(c.put(k, value));
        if (value.kind() == ValueKind.RAW) {
            remember(k, Optional.of(value), f);
        } else {
            forget(k);
        }
    }

    void delete(StateKey k) {
        CompletableFuture<?> f = write(c.delete(k));
        remember(k, Optional.empty(), f);
    }

    void append(StateKey k, byte[] element) {
        write(c.append(k, element));
        forget(k);
    }

    void batch(Batch b) {
        write(c.batch(b));
        forgetAll(); // its ops cannot be inspected
    }

    // The read cache: the backend owns its statesrvd and every write of it passes here, so an
    // entry remembered from a read or a write stays what the server holds until the next write
    // to it, which updates or drops it.

    private synchronized void remember(StateKey k, Optional<Value> v, CompletableFuture<?> write) {
        if (cache != null) {
            cache.put(k, new Cached(v, write));
        }
    }

    private synchronized void forget(StateKey k) {
        if (cache != null) {
            cache.remove(k);
        }
    }

    private synchronized void forgetAll() {
        if (cache != null) {
            cache.clear();
        }
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

    CheckpointInfo snapshot(SnapshotOptions o) {
        return read(c.snapshot(o));
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

    private synchronized CompletableFuture<?> write(CompletableFuture<?> f) {
        if (!writeBehind) {
            await(f);
            return f;
        }
        check();
        pending.add(f);
        while (pending.size() > MAX_WRITES_BEHIND) {
            settle(pending.poll());
        }
        reapDone();
        return f;
    }

    private void reapDone() {
        while (!pending.isEmpty() && pending.peek().isDone()) {
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
