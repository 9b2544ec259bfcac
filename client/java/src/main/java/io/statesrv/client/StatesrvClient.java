package io.statesrv.client;

import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import statesrv.v1.Statesrv;
import statesrv.v1.Statesrv.Response.ResultCase;

/**
 * A connection to statesrvd with an asynchronous API: every request returns a {@link
 * CompletableFuture} at once, and many may be in flight (pipelining). {@link #blocking()} gives the
 * same operations as calls that wait.
 *
 * <p><b>Order.</b> Requests go out in the order their calls were made (across threads: the order in
 * which they took the connection's lock) and the server applies and answers them in that order, so
 * a read sees every earlier write of this client. Futures complete in that order too.
 *
 * <p><b>Back-pressure.</b> At most {@link StatesrvConfig.Builder#maxInFlight} requests are
 * unanswered; a call beyond that blocks until a slot is free, at most {@link
 * StatesrvConfig.Builder#inFlightWait}, then its future fails with {@link Status#TIMEOUT} and
 * nothing is sent. {@link #inFlight()} shows the current count.
 *
 * <p><b>Errors.</b> A future fails with a {@link StatesrvException} carrying the {@link Status} and
 * the server's message. A request-level error (bad field, too large) leaves the connection usable.
 * A connection error ({@link StatesrvException#isConnectionError()}: I/O failure, the server's
 * connection-level error, a timeout, a protocol error, close) is sticky: every pending future fails
 * with it and every later call fails at once. A server that goes away fails the pending futures
 * when its socket closes; one that hangs, after the I/O timeout.
 *
 * <p><b>Threads.</b> Thread-safe. Futures complete on the connection's reader thread: a callback
 * that blocks there (a {@code join()} on another request of this client) stalls every reply until
 * the I/O timeout; chain an {@code *Async} stage for heavy work. Requests sent from a callback
 * never wait for a slot (they may pass the bound), since only that thread frees slots.
 *
 * <p>Arguments are copied before a call returns, so arrays may be reused at once.
 */
public final class StatesrvClient implements AutoCloseable {
    private final Connection conn;
    private final ServerInfo info;
    private final BlockingClient blocking;

    private StatesrvClient(Connection conn, ServerInfo info) {
        this.conn = conn;
        this.info = info;
        this.blocking = new BlockingClient(this);
    }

    /**
     * Connects and performs the handshake (hello, with the auth token if configured). Blocks for at
     * most the connect timeout, twice (socket, then handshake).
     *
     * @throws StatesrvException {@link Status#CONNECT_FAILED}, {@link Status#TIMEOUT}, or the
     *     server's refusal ({@link Status#UNAUTHENTICATED}, {@link Status#UNAVAILABLE} when it is
     *     full, {@link Status#INVALID_ARGUMENT} for another protocol version)
     */
    public static StatesrvClient connect(StatesrvConfig config) {
        byte[] token = config.authToken;
        if (config.authTokenFile != null) {
            token = readTokenFile(config);
        }
        Connection c = Connection.open(config);
        CompletableFuture<ServerInfo> hello =
                c.submit(
                        request().setHello(Wire.hello(config.clientName, token)).build(),
                        false,
                        r -> Wire.info(expect(r, ResultCase.HELLO).getHello()));
        ServerInfo info;
        try {
            info = hello.get(config.connectTimeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            StatesrvException t =
                    new StatesrvException(
                            Status.TIMEOUT,
                            "handshake with "
                                    + config.address
                                    + ": no answer in "
                                    + config.connectTimeout.toMillis()
                                    + " ms",
                            true,
                            e);
            c.fail(t);
            throw t;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            c.fail(new StatesrvException(Status.INTERRUPTED, "interrupted", true, e));
            throw new StatesrvException(Status.INTERRUPTED, "interrupted during the handshake");
        } catch (ExecutionException e) {
            c.close();
            throw BlockingClient.unwrap(e);
        }
        if (info.protocolVersion() != Wire.PROTOCOL_VERSION) {
            c.close();
            throw new StatesrvException(
                    Status.CONNECT_FAILED,
                    "server speaks protocol version "
                            + info.protocolVersion()
                            + ", this client "
                            + Wire.PROTOCOL_VERSION,
                    true,
                    null);
        }
        if (info.maxFrameSize() == 0) {
            c.close();
            throw new StatesrvException(
                    Status.PROTOCOL_ERROR, "server announced a max_frame_size of 0", true, null);
        }
        c.setLimits(info.maxFrameSize());
        return new StatesrvClient(c, info);
    }

    /** Connects to {@code address} ("host:port" or "unix:/path") with the defaults. */
    public static StatesrvClient connect(String address) {
        return connect(StatesrvConfig.builder().address(address).build());
    }

    /** The token is the file's first line, up to CR or LF, and not empty (as libstatesrv). */
    private static byte[] readTokenFile(StatesrvConfig config) {
        byte[] all;
        try {
            all = Files.readAllBytes(config.authTokenFile);
        } catch (IOException e) {
            throw new StatesrvException(
                    Status.CONNECT_FAILED,
                    "auth token file " + config.authTokenFile + ": " + e,
                    true,
                    e);
        }
        int n = 0;
        while (n < all.length && all[n] != '\n' && all[n] != '\r') {
            n++;
        }
        if (n == 0) {
            throw new StatesrvException(
                    Status.CONNECT_FAILED,
                    "auth token file " + config.authTokenFile + ": the first line is empty",
                    true,
                    null);
        }
        return Arrays.copyOf(all, n);
    }

    /** What the server said in the handshake. */
    public ServerInfo info() {
        return info;
    }

    /** The same operations as calls that wait for their reply. */
    public BlockingClient blocking() {
        return blocking;
    }

    /** Requests sent (or queued) and not yet answered. */
    public int inFlight() {
        return conn.inFlight();
    }

    /** False after a connection error or close. */
    public boolean isOpen() {
        return conn.isOpen();
    }

    /**
     * Waits (at most the configured close timeout) for outstanding replies, then closes the
     * connection; what is still pending fails with {@link Status#CLOSED}. Idempotent.
     */
    @Override
    public void close() {
        conn.close();
    }

    // --- ops ------------------------------------------------------------------------------

    public CompletableFuture<Void> ping() {
        return send(
                request().setPing(Statesrv.Ping.getDefaultInstance()),
                r -> {
                    expect(r, ResultCase.PING);
                    return null;
                });
    }

    /** The entry's value, or empty when there is none (NOT_FOUND is not an error here). */
    public CompletableFuture<Optional<Value>> get(StateKey k) {
        return send(
                request().setGet(Wire.get(k)),
                r -> {
                    if (r.getStatus() == Statesrv.Status.NOT_FOUND) {
                        return Optional.empty();
                    }
                    Statesrv.GetResult g = expect(r, ResultCase.GET).getGet();
                    return Optional.of(Wire.value(g.getValue(), g.getKindValue()));
                });
    }

    /**
     * The entry's value and what is left of its TTL ({@link ValueWithTtl#ttlRemainingMillis()}: -1
     * when it has none), or empty when there is none. Under {@link
     * TtlConfig.Update#ON_READ_AND_WRITE} this read refreshes the expiry, as any get does.
     */
    public CompletableFuture<Optional<ValueWithTtl>> getWithTtl(StateKey k) {
        return send(
                request().setGet(Wire.get(k, true)),
                r -> {
                    if (r.getStatus() == Statesrv.Status.NOT_FOUND) {
                        return Optional.empty();
                    }
                    Statesrv.GetResult g = expect(r, ResultCase.GET).getGet();
                    if (g.getTtlRemainingMs() < -1) {
                        throw new StatesrvException(
                                Status.PROTOCOL_ERROR,
                                "get: ttl_remaining_ms " + g.getTtlRemainingMs(),
                                true,
                                null);
                    }
                    return Optional.of(
                            new ValueWithTtl(
                                    Wire.value(g.getValue(), g.getKindValue()),
                                    g.getTtlRemainingMs()));
                });
    }

    /** Several entries in one round trip: one result per key, in order. */
    public CompletableFuture<List<Optional<Value>>> multiGet(List<StateKey> keys) {
        Statesrv.MultiGet.Builder b = Statesrv.MultiGet.newBuilder();
        for (StateKey k : keys) {
            b.addGets(Wire.get(k));
        }
        return send(
                request().setMultiGet(b),
                r -> {
                    Statesrv.MultiGetResult m = expect(r, ResultCase.MULTI_GET).getMultiGet();
                    if (m.getItemsCount() != keys.size()) {
                        throw new StatesrvException(
                                Status.PROTOCOL_ERROR,
                                "multi_get: " + m.getItemsCount() + " items for " + keys.size(),
                                true,
                                null);
                    }
                    List<Optional<Value>> out = new ArrayList<>(keys.size());
                    for (Statesrv.MultiGetItem i : m.getItemsList()) {
                        out.add(
                                i.getFound()
                                        ? Optional.of(Wire.value(i.getValue(), i.getKindValue()))
                                        : Optional.empty());
                    }
                    return out;
                });
    }

    /** Writes a RAW value, replacing any previous one. */
    public CompletableFuture<Void> put(StateKey k, byte[] value) {
        return put(k, Value.raw(value));
    }

    /** Writes a value of any kind; the server checks LIST framing and COUNTER size. */
    public CompletableFuture<Void> put(StateKey k, Value value) {
        return send(
                request().setPut(Wire.put(k, value)),
                r -> {
                    expect(r, ResultCase.PUT);
                    return null;
                });
    }

    /**
     * Writes a value with its own TTL: the entry expires {@code ttl} after this write, whatever the
     * state's setting ({@link Duration#ZERO} or null: the state's TTL, if any; a part of a
     * millisecond counts as a whole one).
     */
    public CompletableFuture<Void> put(StateKey k, Value value, Duration ttl) {
        return send(
                request().setPut(Wire.put(k, value, Wire.writeTtl(ttl))),
                r -> {
                    expect(r, ResultCase.PUT);
                    return null;
                });
    }

    /** Deletes one entry: true if it existed (a missing entry is not an error). */
    public CompletableFuture<Boolean> delete(StateKey k) {
        return send(
                request().setDelete(Wire.delete(k)),
                r -> expect(r, ResultCase.DELETE).getDelete().getFound());
    }

    /** A server-side merge with a raw operand (see {@link MergeOp}). */
    public CompletableFuture<MergeResult> merge(StateKey k, MergeOp op, byte[] operand) {
        return send(
                request().setMerge(Wire.merge(k, op, operand)),
                r -> {
                    Statesrv.MergeResult m = expect(r, ResultCase.MERGE).getMerge();
                    return new MergeResult(m.getCounter(), m.getValueSize());
                });
    }

    /**
     * A merge whose entry expires {@code ttl} after it (zero or null: the state's TTL, if any);
     * onto an expired entry it starts from empty.
     */
    public CompletableFuture<MergeResult> merge(
            StateKey k, MergeOp op, byte[] operand, Duration ttl) {
        return send(
                request().setMerge(Wire.merge(k, op, operand, Wire.writeTtl(ttl))),
                r -> {
                    Statesrv.MergeResult m = expect(r, ResultCase.MERGE).getMerge();
                    return new MergeResult(m.getCounter(), m.getValueSize());
                });
    }

    /** An append whose list expires {@code ttl} after it (as a whole: see docs/protocol.md). */
    public CompletableFuture<Long> append(StateKey k, byte[] element, Duration ttl) {
        return merge(k, MergeOp.APPEND, element, ttl).thenApply(MergeResult::valueSize);
    }

    /** An add whose counter expires {@code ttl} after it. */
    public CompletableFuture<Long> add(StateKey k, long delta, Duration ttl) {
        return merge(k, MergeOp.ADD_I64, Values.encodeCounter(delta), ttl)
                .thenApply(MergeResult::counter);
    }

    /** ListState.add: appends one element to a LIST value; the list's new size in bytes. */
    public CompletableFuture<Long> append(StateKey k, byte[] element) {
        return merge(k, MergeOp.APPEND, element).thenApply(MergeResult::valueSize);
    }

    /** Adds {@code delta} to a COUNTER value (absent = 0); the new value. */
    public CompletableFuture<Long> add(StateKey k, long delta) {
        return merge(k, MergeOp.ADD_I64, Values.encodeCounter(delta))
                .thenApply(MergeResult::counter);
    }

    /** Applies every op of the batch in one transaction, all or none; the ops applied. */
    public CompletableFuture<Integer> batch(Batch b) {
        return send(
                request().setBatch(Statesrv.Batch.newBuilder().addAllOps(b.ops())),
                r -> expect(r, ResultCase.BATCH).getBatch().getApplied());
    }

    /**
     * One page of a scan.
     *
     * @param cursor null to start, else {@link ScanPage#cursor()} of the previous page
     */
    public CompletableFuture<ScanPage> scan(ScanSpec spec, byte[] cursor) {
        return send(
                request().setScan(Wire.scan(spec, cursor)),
                r -> Wire.page(expect(r, ResultCase.SCAN).getScan()));
    }

    /** Every entry of the scan, fetching page after page. Entries are held in memory. */
    public CompletableFuture<List<Entry>> scanAll(ScanSpec spec) {
        List<Entry> out = new ArrayList<>();
        return scanFrom(spec, null, out);
    }

    private CompletableFuture<List<Entry>> scanFrom(ScanSpec spec, byte[] cursor, List<Entry> out) {
        return scan(spec, cursor)
                .thenCompose(
                        p -> {
                            out.addAll(p.entries());
                            return p.hasMore()
                                    ? scanFrom(spec, p.cursor(), out)
                                    : CompletableFuture.completedFuture(out);
                        });
    }

    /** Flink's clear(): deletes every namespace of {@code k}'s key; the entries removed. */
    public CompletableFuture<Long> clear(StateKey k) {
        return send(
                request().setClear(Wire.clearKey(k)),
                r -> expect(r, ResultCase.CLEAR).getClear().getDeleted());
    }

    /** Drops a whole state; the entries removed. */
    public CompletableFuture<Long> dropState(String state) {
        return send(
                request().setClear(Wire.dropState(state)),
                r -> expect(r, ResultCase.CLEAR).getClear().getDeleted());
    }

    public CompletableFuture<List<StateInfo>> listStates() {
        return send(
                request().setListStates(Statesrv.ListStates.getDefaultInstance()),
                r ->
                        Wire.states(
                                expect(r, ResultCase.LIST_STATES).getListStates().getStatesList()));
    }

    /** A state's TTL setting; empty when it has none. (A state that does not exist has none.) */
    public CompletableFuture<Optional<TtlConfig>> stateTtl(String state) {
        return stateTtlOp(state, null, false);
    }

    /**
     * Sets a state's TTL (creating the state, empty, when it does not exist yet, so that
     * checkpoints carry the setting); the setting in effect afterwards. New writes follow it;
     * entries already stored keep the expiry they were written with, while the update type and
     * visibility apply to them at once.
     */
    public CompletableFuture<Optional<TtlConfig>> setStateTtl(String state, TtlConfig ttl) {
        if (ttl == null) {
            throw new NullPointerException("ttl (removeStateTtl removes it)");
        }
        return stateTtlOp(state, ttl, false);
    }

    /** Removes a state's TTL: new writes do not expire (entries stored keep their expiry). */
    public CompletableFuture<Optional<TtlConfig>> removeStateTtl(String state) {
        return stateTtlOp(state, null, true);
    }

    private CompletableFuture<Optional<TtlConfig>> stateTtlOp(
            String state, TtlConfig ttl, boolean remove) {
        return send(
                request().setStateTtl(Wire.stateTtl(state, ttl, remove)),
                r -> {
                    Statesrv.StateTtlResult t = expect(r, ResultCase.STATE_TTL).getStateTtl();
                    return t.hasTtl() ? Wire.ttl(t.getTtl()) : Optional.empty();
                });
    }

    /** The server's counters (the numbers of its /metrics). */
    public CompletableFuture<ServerStats> stats() {
        return send(
                request().setStats(Statesrv.Stats.getDefaultInstance()),
                r -> Wire.stats(expect(r, ResultCase.STATS).getStats()));
    }

    /**
     * Writes a checkpoint of every state with the next id; completes when it is durable. Later
     * requests of this client wait behind it (replies are in order): use another client for traffic
     * that must not.
     */
    public CompletableFuture<CheckpointInfo> snapshot() {
        return snapshotWithId(-1);
    }

    /** A snapshot with this id (at least 1, not yet present). */
    public CompletableFuture<CheckpointInfo> snapshot(long id) {
        if (id < 0) {
            throw new IllegalArgumentException("checkpoint id " + id + " is negative");
        }
        return snapshotWithId(id);
    }

    private CompletableFuture<CheckpointInfo> snapshotWithId(long id) {
        return conn.submit(
                request().setSnapshot(Wire.snapshot(id)).build(),
                true,
                r -> {
                    Statesrv.SnapshotResult s = expect(r, ResultCase.SNAPSHOT).getSnapshot();
                    return Wire.checkpoint(s.getManifest(), s.getPath());
                });
    }

    /**
     * A checkpoint as {@code options} say: a full one, or one that completes only once it is in the
     * server's object store ({@link SnapshotOptions#waitRemote}, then with {@link
     * CheckpointInfo#remoteUrl()}). Otherwise as {@link #snapshot()}.
     */
    public CompletableFuture<CheckpointInfo> snapshot(SnapshotOptions options) {
        return conn.submit(
                request().setSnapshot(Wire.snapshot(options)).build(),
                true,
                r -> {
                    Statesrv.SnapshotResult s = expect(r, ResultCase.SNAPSHOT).getSnapshot();
                    Optional<CheckpointInfo.RemoteCopy> remote = Optional.empty();
                    if (!s.getRemoteUrl().isEmpty()) {
                        remote =
                                Optional.of(
                                        new CheckpointInfo.RemoteCopy(
                                                "remote", s.getRemoteUrl(), ""));
                    } else if (options.waitRemote()) {
                        throw new StatesrvException(
                                Status.PROTOCOL_ERROR,
                                "snapshot with wait_remote answered without remote_url",
                                true,
                                null);
                    }
                    return Wire.checkpoint(s.getManifest(), s.getPath(), remote);
                });
    }

    /**
     * The complete checkpoints in the server's checkpoint_dir, by id (with their remote copies'
     * status when the server has checkpoint_remote).
     */
    public CompletableFuture<List<CheckpointInfo>> listCheckpoints() {
        return checkpointListing().thenApply(CheckpointListing::checkpoints);
    }

    /**
     * The {@code chk-<id>} directories of checkpoint_dir that do not read as a checkpoint, by id:
     * what {@link #listCheckpoints()} leaves out.
     */
    public CompletableFuture<List<CheckpointProblem>> listCheckpointProblems() {
        return checkpointListing().thenApply(CheckpointListing::problems);
    }

    /** Checkpoints and problems of one {@code list_checkpoints} round trip. */
    public CompletableFuture<CheckpointListing> checkpointListing() {
        return send(
                request().setListCheckpoints(Statesrv.ListCheckpoints.getDefaultInstance()),
                r -> Wire.listing(expect(r, ResultCase.LIST_CHECKPOINTS).getListCheckpoints()));
    }

    /** Deletes a checkpoint; fails with NOT_FOUND if there is none with that id. */
    public CompletableFuture<Void> deleteCheckpoint(long id) {
        return send(
                request()
                        .setDeleteCheckpoint(
                                Statesrv.DeleteCheckpoint.newBuilder().setId(id).build()),
                r -> {
                    expect(r, ResultCase.DELETE_CHECKPOINT);
                    return null;
                });
    }

    /**
     * Replaces the whole live state with the sources' entries (checkpoint ids such as "42", or
     * checkpoint directories under the server's restore_roots), all key groups.
     */
    public CompletableFuture<RestoreResult> restore(List<String> sources) {
        return restoreRange(sources, -1, -1);
    }

    /** A restore of key groups {@code first..last} only (rescaling). */
    public CompletableFuture<RestoreResult> restore(List<String> sources, int first, int last) {
        if (first < 0 || last < 0) {
            throw new IllegalArgumentException("key groups are not negative");
        }
        return restoreRange(sources, first, last);
    }

    private CompletableFuture<RestoreResult> restoreRange(
            List<String> sources, int first, int last) {
        return conn.submit(
                request().setRestore(Wire.restore(sources, first, last)).build(),
                true,
                r -> Wire.restored(expect(r, ResultCase.RESTORE).getRestore()));
    }

    // --- plumbing -------------------------------------------------------------------------

    private static Statesrv.Request.Builder request() {
        return Statesrv.Request.newBuilder();
    }

    private <T> CompletableFuture<T> send(
            Statesrv.Request.Builder r, java.util.function.Function<Statesrv.Response, T> decode) {
        return conn.submit(r.build(), false, decode);
    }

    /**
     * The response, if it is OK with the expected result; else the server's status as an exception
     * (UNAUTHENTICATED closes the connection), or a protocol error.
     */
    static Statesrv.Response expect(Statesrv.Response r, ResultCase want) {
        if (r.getStatus() != Statesrv.Status.OK) {
            Status s = Status.fromWire(r.getStatusValue());
            throw new StatesrvException(s, r.getMessage(), s == Status.UNAUTHENTICATED, null);
        }
        if (r.getResultCase() != want) {
            throw new StatesrvException(
                    Status.PROTOCOL_ERROR,
                    "expected a " + want + " result, got " + r.getResultCase(),
                    true,
                    null);
        }
        return r;
    }
}
