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
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The client calls the backend makes, waiting for each reply <em>uninterruptibly</em> (as a RocksDB
 * call does): Flink interrupts a task thread to cancel it, and a state access must then not fail
 * half-way with a misleading error. Every wait is still bounded by the client's I/O timeout (job
 * timeout for snapshot and restore).
 */
final class StatesrvDb {
    private final StatesrvClient c;

    StatesrvDb(StatesrvClient c) {
        this.c = c;
    }

    Optional<Value> get(StateKey k) {
        return await(c.get(k));
    }

    void put(StateKey k, byte[] value) {
        await(c.put(k, value));
    }

    void put(StateKey k, Value value) {
        await(c.put(k, value));
    }

    boolean delete(StateKey k) {
        return await(c.delete(k));
    }

    long append(StateKey k, byte[] element) {
        return await(c.append(k, element));
    }

    int batch(Batch b) {
        return await(c.batch(b));
    }

    List<Entry> scanAll(ScanSpec spec) {
        return await(c.scanAll(spec));
    }

    List<StateInfo> listStates() {
        return await(c.listStates());
    }

    CheckpointInfo snapshot(long id) {
        return await(c.snapshot(id));
    }

    void deleteCheckpoint(long id) {
        await(c.deleteCheckpoint(id));
    }

    RestoreResult restore(List<String> sources, int first, int last) {
        return await(c.restore(sources, first, last));
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
