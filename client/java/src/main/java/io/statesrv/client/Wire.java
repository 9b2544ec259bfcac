package io.statesrv.client;

import com.google.protobuf.ByteString;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import statesrv.v1.Checkpoint;
import statesrv.v1.Statesrv;

/**
 * Between this client's types and the generated protobuf messages (proto/statesrv.proto). Every
 * request op is built here, so the shared test vectors check the same code the client sends with.
 */
final class Wire {
    static final int PROTOCOL_VERSION = 1;

    private Wire() {}

    static ByteString bytes(byte[] b) {
        return b.length == 0 ? ByteString.EMPTY : ByteString.copyFrom(b);
    }

    static ByteString name(String state) {
        return ByteString.copyFrom(state, StandardCharsets.UTF_8);
    }

    // --- ops ------------------------------------------------------------------------------

    static Statesrv.Hello hello(String clientName, byte[] token) {
        Statesrv.Hello.Builder b =
                Statesrv.Hello.newBuilder()
                        .setProtocolVersion(PROTOCOL_VERSION)
                        .setClientName(clientName);
        if (token != null) {
            b.setAuthToken(bytes(token));
        }
        return b.build();
    }

    static Statesrv.Get get(StateKey k) {
        return get(k, false);
    }

    static Statesrv.Get get(StateKey k, boolean withTtl) {
        Statesrv.Get.Builder b =
                Statesrv.Get.newBuilder()
                        .setState(name(k.state()))
                        .setKey(bytes(k.keyBytes()))
                        .setNamespace(bytes(k.namespaceBytes()));
        if (withTtl) {
            b.setWithTtl(true);
        }
        if (k.rawKeyGroup() >= 0) {
            b.setKeyGroup(k.rawKeyGroup());
        }
        return b.build();
    }

    static Statesrv.Put put(StateKey k, Value v) {
        return put(k, v, 0);
    }

    /** ttlMs 0: the state's TTL, if any. */
    static Statesrv.Put put(StateKey k, Value v, long ttlMs) {
        Statesrv.Put.Builder b =
                Statesrv.Put.newBuilder()
                        .setState(name(k.state()))
                        .setKey(bytes(k.keyBytes()))
                        .setNamespace(bytes(k.namespaceBytes()))
                        .setValue(bytes(v.bytes()))
                        .setKindValue(v.kind().ordinal())
                        .setTtlMs(ttlMs);
        if (k.rawKeyGroup() >= 0) {
            b.setKeyGroup(k.rawKeyGroup());
        }
        return b.build();
    }

    static Statesrv.Delete delete(StateKey k) {
        Statesrv.Delete.Builder b =
                Statesrv.Delete.newBuilder()
                        .setState(name(k.state()))
                        .setKey(bytes(k.keyBytes()))
                        .setNamespace(bytes(k.namespaceBytes()));
        if (k.rawKeyGroup() >= 0) {
            b.setKeyGroup(k.rawKeyGroup());
        }
        return b.build();
    }

    static Statesrv.Merge merge(StateKey k, MergeOp op, byte[] operand) {
        return merge(k, op, operand, 0);
    }

    static Statesrv.Merge merge(StateKey k, MergeOp op, byte[] operand, long ttlMs) {
        Statesrv.Merge.Builder b =
                Statesrv.Merge.newBuilder()
                        .setState(name(k.state()))
                        .setKey(bytes(k.keyBytes()))
                        .setNamespace(bytes(k.namespaceBytes()))
                        .setOp(
                                op == MergeOp.APPEND
                                        ? Statesrv.MergeOp.APPEND
                                        : Statesrv.MergeOp.ADD_I64)
                        .setOperand(bytes(operand))
                        .setTtlMs(ttlMs);
        if (k.rawKeyGroup() >= 0) {
            b.setKeyGroup(k.rawKeyGroup());
        }
        return b.build();
    }

    static Statesrv.KeySelector selector(byte[] key, int kg) {
        Statesrv.KeySelector.Builder b = Statesrv.KeySelector.newBuilder().setKey(bytes(key));
        if (kg >= 0) {
            b.setKeyGroup(kg);
        }
        return b.build();
    }

    static Statesrv.Scan scan(ScanSpec s, byte[] cursor) {
        Statesrv.Scan.Builder b = Statesrv.Scan.newBuilder().setState(name(s.state));
        switch (s.mode) {
            case KEY -> b.setKey(selector(s.key, s.keyGroup));
            case KEY_GROUPS ->
                    b.setKeyGroups(
                            Statesrv.KeyGroupRange.newBuilder().setFirst(s.first).setLast(s.last));
            case STATE -> {}
        }
        b.setLimit(s.limit);
        if (cursor != null) {
            b.setCursor(bytes(cursor));
        }
        return b.build();
    }

    static Statesrv.Clear clearKey(StateKey k) {
        return Statesrv.Clear.newBuilder()
                .setState(name(k.state()))
                .setKey(selector(k.keyBytes(), k.rawKeyGroup()))
                .build();
    }

    static Statesrv.Clear dropState(String state) {
        return Statesrv.Clear.newBuilder().setState(name(state)).setWholeState(true).build();
    }

    static Statesrv.Snapshot snapshot(long id) {
        Statesrv.Snapshot.Builder b = Statesrv.Snapshot.newBuilder();
        if (id >= 0) {
            b.setId(id);
        }
        return b.build();
    }

    static Statesrv.Snapshot snapshot(SnapshotOptions o) {
        Statesrv.Snapshot.Builder b = Statesrv.Snapshot.newBuilder();
        if (o.id() >= 0) {
            b.setId(o.id());
        }
        return b.setFull(o.full()).setWaitRemote(o.waitRemote()).build();
    }

    /** ttl null: read the setting only; else set it (ttl_ms 0 removes it). */
    static Statesrv.StateTtl stateTtl(String state, TtlConfig ttl, boolean remove) {
        Statesrv.StateTtl.Builder b = Statesrv.StateTtl.newBuilder().setState(name(state));
        if (remove) {
            b.setTtl(Statesrv.TtlConfig.newBuilder().setTtlMs(0));
        } else if (ttl != null) {
            b.setTtl(ttl(ttl));
        }
        return b.build();
    }

    static Statesrv.TtlConfig ttl(TtlConfig t) {
        return Statesrv.TtlConfig.newBuilder()
                .setTtlMs(t.ttlMillis())
                .setUpdateValue(t.update().ordinal())
                .setVisibilityValue(t.visibility().ordinal())
                .build();
    }

    /**
     * A per-write TTL in ms for the wire: 0 (null or zero) is the state's TTL; a part of a ms
     * counts as a whole one, so a positive TTL never becomes "none".
     */
    static long writeTtl(java.time.Duration ttl) {
        if (ttl == null || ttl.isZero()) {
            return 0;
        }
        if (ttl.isNegative()) {
            throw new IllegalArgumentException("a TTL is not negative: " + ttl);
        }
        long ms = ttl.toMillis();
        return ttl.getNano() % 1_000_000 != 0 ? ms + 1 : ms;
    }

    static Statesrv.Restore restore(List<String> sources, int first, int last) {
        Statesrv.Restore.Builder b = Statesrv.Restore.newBuilder();
        for (String s : sources) {
            b.addSources(ByteString.copyFrom(s, StandardCharsets.UTF_8));
        }
        if (first >= 0) {
            b.setKeyGroups(Statesrv.KeyGroupRange.newBuilder().setFirst(first).setLast(last));
        }
        return b.build();
    }

    // --- results --------------------------------------------------------------------------

    static Value value(ByteString data, int kind) {
        return Value.wrap(data.toByteArray(), ValueKind.fromWire(kind));
    }

    static ServerInfo info(Statesrv.HelloResult h) {
        return new ServerInfo(
                h.getProtocolVersion(),
                h.getServerVersion(),
                h.getKeyGroups(),
                h.getMaxFrameSize(),
                h.getMaxValueSize(),
                h.getMaxKeySize(),
                h.getMaxBatchOps(),
                h.getMaxScanLimit(),
                h.getMaxStates());
    }

    static ScanPage page(Statesrv.ScanResult r) {
        List<Entry> entries = new ArrayList<>(r.getEntriesCount());
        for (Statesrv.Entry e : r.getEntriesList()) {
            entries.add(
                    new Entry(
                            e.getKey().toByteArray(),
                            e.getNamespace().toByteArray(),
                            e.getKeyGroup(),
                            value(e.getValue(), e.getKindValue())));
        }
        return new ScanPage(entries, r.getCursor().toByteArray());
    }

    static List<StateInfo> states(List<Statesrv.StateInfo> l) {
        List<StateInfo> out = new ArrayList<>(l.size());
        for (Statesrv.StateInfo s : l) {
            out.add(
                    new StateInfo(
                            s.getName(),
                            s.getEntries(),
                            s.getBytes(),
                            s.hasTtl() ? ttl(s.getTtl()) : Optional.empty()));
        }
        return out;
    }

    /** A TtlConfig from the server; empty for none (absent or ttl_ms 0). */
    static Optional<TtlConfig> ttl(Statesrv.TtlConfig t) {
        if (t.getTtlMs() == 0) {
            return Optional.empty();
        }
        if (t.getTtlMs() > Long.MAX_VALUE / 1_000_000) {
            throw new StatesrvException(
                    Status.PROTOCOL_ERROR, "a TTL of " + t.getTtlMs() + " ms", true, null);
        }
        return Optional.of(
                new TtlConfig(
                        java.time.Duration.ofMillis(t.getTtlMs()),
                        t.getUpdateValue() == 1
                                ? TtlConfig.Update.ON_READ_AND_WRITE
                                : TtlConfig.Update.ON_CREATE_AND_WRITE,
                        t.getVisibilityValue() == 1
                                ? TtlConfig.Visibility.RETURN_EXPIRED_IF_NOT_CLEANED_UP
                                : TtlConfig.Visibility.NEVER_RETURN_EXPIRED));
    }

    static CheckpointListing listing(Statesrv.ListCheckpointsResult r) {
        if (r.getRemoteCount() != 0 && r.getRemoteCount() != r.getCheckpointsCount()) {
            throw new StatesrvException(
                    Status.PROTOCOL_ERROR,
                    "list_checkpoints: "
                            + r.getRemoteCount()
                            + " remote entries for "
                            + r.getCheckpointsCount()
                            + " checkpoints",
                    true,
                    null);
        }
        List<CheckpointInfo> cps = new ArrayList<>(r.getCheckpointsCount());
        for (int i = 0; i < r.getCheckpointsCount(); i++) {
            Optional<CheckpointInfo.RemoteCopy> remote = Optional.empty();
            if (r.getRemoteCount() != 0) {
                Statesrv.CheckpointRemote cr = r.getRemote(i);
                remote =
                        Optional.of(
                                new CheckpointInfo.RemoteCopy(
                                        cr.getState(), cr.getUrl(), cr.getError()));
            }
            cps.add(checkpoint(r.getCheckpoints(i), null, remote));
        }
        List<CheckpointProblem> problems = new ArrayList<>(r.getProblemsCount());
        for (Statesrv.CheckpointProblem p : r.getProblemsList()) {
            problems.add(new CheckpointProblem(p.getId(), p.getPath(), p.getProblem()));
        }
        return new CheckpointListing(cps, problems);
    }

    static CheckpointInfo checkpoint(Checkpoint.CheckpointManifest m, String path) {
        return checkpoint(m, path, Optional.empty());
    }

    static CheckpointInfo checkpoint(
            Checkpoint.CheckpointManifest m,
            String path,
            Optional<CheckpointInfo.RemoteCopy> remote) {
        List<CheckpointInfo.State> states = new ArrayList<>(m.getStatesCount());
        for (Checkpoint.CheckpointStateInfo s : m.getStatesList()) {
            states.add(
                    new CheckpointInfo.State(
                            s.getName(),
                            s.getEntries(),
                            s.getRawBytes(),
                            s.getKgMin(),
                            s.getKgMax(),
                            s.getBlocks()));
        }
        return new CheckpointInfo(
                m.getCheckpointId(),
                m.getCreatedUnixMs(),
                m.getServerVersion(),
                m.getFormatVersion(),
                m.getKeyGroups(),
                m.getKgFirst(),
                m.getKgLast(),
                m.getEntries(),
                m.getRawBytes(),
                m.getDataBytes(),
                m.getDataXxh3(),
                m.getCompression(),
                m.getCompressionLevel(),
                m.getBlocks(),
                m.getDurationMs(),
                Optional.ofNullable(path),
                states,
                m.getIncremental(),
                m.getFormatVersion() >= 2 ? m.getBaseId() : m.getCheckpointId(),
                m.getFormatVersion() >= 2 ? m.getAddedBytes() : m.getDataBytes(),
                m.getFormatVersion() >= 2 ? m.getTotalBytes() : m.getDataBytes(),
                remote);
    }

    static RestoreResult restored(Statesrv.RestoreResult r) {
        return new RestoreResult(
                r.getEntries(), r.getStates(), r.getKgFirst(), r.getKgLast(), r.getDurationMs());
    }

    static ServerStats stats(Statesrv.StatsResult s) {
        List<ServerStats.OpStats> ops = new ArrayList<>(s.getOpsCount());
        for (Statesrv.OpStats o : s.getOpsList()) {
            Map<Status, Long> statuses = new EnumMap<>(Status.class);
            for (Statesrv.StatusCount c : o.getStatusesList()) {
                statuses.merge(Status.fromWire(c.getStatusValue()), c.getCount(), Long::sum);
            }
            ops.add(
                    new ServerStats.OpStats(
                            o.getOp(),
                            o.getCount(),
                            o.getErrors(),
                            statuses,
                            o.getLatencyCount(),
                            o.getLatencySumNs(),
                            o.getLatencyBucketsList()));
        }
        Optional<ServerStats.CheckpointProgress> progress = Optional.empty();
        if (s.hasCheckpointInProgress()) {
            Statesrv.CheckpointProgress p = s.getCheckpointInProgress();
            progress =
                    Optional.of(
                            new ServerStats.CheckpointProgress(
                                    p.getKind(),
                                    p.getCheckpointId(),
                                    p.getEntries(),
                                    p.getBytes(),
                                    p.getElapsedMs()));
        }
        return new ServerStats(
                s.getServerVersion(),
                s.getUptimeSeconds(),
                s.getConnectionsCurrent(),
                s.getConnectionsTotal(),
                s.getConnectionsRejected(),
                ops,
                states(s.getStatesList()),
                s.getKeyGroups(),
                s.getCommits(),
                s.getBytesIn(),
                s.getBytesOut(),
                s.getMapSize(),
                s.getMapUsed(),
                s.getMapInUse(),
                s.getMapLimit(),
                s.getMapFreePinned(),
                progress,
                s.getCheckpointsCompleted(),
                s.getCheckpointFailures(),
                s.getLastCheckpointId(),
                s.getLastCheckpointBytes(),
                s.getLastCheckpointDurationMs(),
                s.getLastCheckpointUnixMs(),
                s.getLastCheckpointAgeMs(),
                s.getRestoresCompleted(),
                s.getLastRestoreDurationMs(),
                s.getLatencyBoundsUsList(),
                counts(s.getStatusErrorsList()),
                counts(s.getConnectionErrorsList()));
    }

    private static Map<String, Long> counts(List<Statesrv.ErrorCount> l) {
        Map<String, Long> m = new HashMap<>();
        for (Statesrv.ErrorCount c : l) {
            m.merge(c.getKind(), c.getCount(), Long::sum);
        }
        return m;
    }
}
