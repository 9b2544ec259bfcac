package io.statesrv.flink;

import io.statesrv.client.Batch;
import io.statesrv.client.Entry;
import io.statesrv.client.ScanSpec;
import io.statesrv.client.StateKey;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.StatesrvException;
import io.statesrv.client.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.RunnableFuture;
import java.util.stream.Stream;
import javax.annotation.Nonnull;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.state.AggregatingStateDescriptor;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.State;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.runtime.checkpoint.SnapshotType;
import org.apache.flink.runtime.query.TaskKvStateRegistry;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.HeapPriorityQueuesManager;
import org.apache.flink.runtime.state.InternalKeyContext;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.Keyed;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PriorityComparable;
import org.apache.flink.runtime.state.RegisteredKeyValueStateBackendMetaInfo;
import org.apache.flink.runtime.state.SavepointResources;
import org.apache.flink.runtime.state.SnapshotExecutionType;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategyRunner;
import org.apache.flink.runtime.state.StateSnapshotTransformer.StateSnapshotTransformFactory;
import org.apache.flink.runtime.state.StreamCompressionDecorator;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSnapshotRestoreWrapper;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.util.FlinkRuntimeException;
import org.apache.flink.util.StateMigrationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A keyed state backend whose state lives in its own statesrvd child process ({@link
 * StatesrvProcess}), reached over a Unix socket; every state access is a request on one connection,
 * so each sees every earlier write of the task. Built (and restored) by {@link
 * StatesrvKeyedStateBackendBuilder}; checkpoints by {@link StatesrvSnapshotStrategy}.
 *
 * <p>Key groups: statesrvd runs with {@code key_groups} = the job's max parallelism, and every
 * entry carries Flink's key group explicitly, so statesrvd's ranged restore is Flink's rescaling.
 * Timers are heap priority queues, written into checkpoints by the operator as raw keyed state
 * ({@link #requiresLegacySynchronousTimerSnapshots}), as RocksDB's backend does with heap timers.
 */
public class StatesrvKeyedStateBackend<K> extends AbstractKeyedStateBackend<K> {
    private static final Logger LOG = LoggerFactory.getLogger(StatesrvKeyedStateBackend.class);

    /** A registered (or restored, not yet registered) state. */
    static final class StateInfo {
        final String flinkName;
        final String serverName;
        RegisteredKeyValueStateBackendMetaInfo<?, ?> metaInfo;
        AbstractStatesrvState<?, ?, ?> state; // null: restored, not yet asked for

        StateInfo(String flinkName, RegisteredKeyValueStateBackendMetaInfo<?, ?> metaInfo) {
            this.flinkName = flinkName;
            this.serverName = StateNames.of(flinkName);
            this.metaInfo = metaInfo;
        }
    }

    private final StatesrvProcess server;
    private final StatesrvClient client;
    private final StatesrvDb db;
    private final int maxBatchOps;
    private final UUID backendUid = UUID.randomUUID();
    private final LinkedHashMap<String, StateInfo> states;
    private final HeapPriorityQueuesManager priorityQueues;
    private final StatesrvSnapshotStrategy<K> snapshotStrategy;
    private final SnapshotStrategyRunner<KeyedStateHandle, StatesrvSnapshotStrategy.Resources>
            snapshotRunner;

    /** Flink checkpoint id -> local statesrvd checkpoint id, for retention. */
    private final TreeMap<Long, Long> localCheckpoints = new TreeMap<>();

    /**
     * Flink checkpoint id -> the data files its handle names (statesrvd checkpoint id of the file
     * -> its handle in Flink's storage), for checkpoints not yet confirmed or aborted.
     */
    private final TreeMap<Long, Map<Long, StreamStateHandle>> uploads = new TreeMap<>();

    /** The data files of the newest checkpoint Flink confirmed: later ones reference them. */
    private Map<Long, StreamStateHandle> confirmed = Map.of();

    private long confirmedId = -1;

    /** The file sharing Flink allows the snapshot being taken (set on the task thread). */
    private SnapshotType.SharingFilesStrategy nextSharing =
            SnapshotType.SharingFilesStrategy.FORWARD_BACKWARD;

    private final DataOutputSerializer keyOut = new DataOutputSerializer(64);
    private final DataOutputSerializer nsOut = new DataOutputSerializer(32);
    private byte[] currentKeyBytes;
    private boolean disposed;

    StatesrvKeyedStateBackend(
            TaskKvStateRegistry kvStateRegistry,
            TypeSerializer<K> keySerializer,
            ClassLoader userCodeClassLoader,
            ExecutionConfig executionConfig,
            TtlTimeProvider ttlTimeProvider,
            LatencyTrackingStateConfig latencyTrackingStateConfig,
            CloseableRegistry cancelStreamRegistry,
            StreamCompressionDecorator compression,
            InternalKeyContext<K> keyContext,
            StatesrvProcess server,
            StatesrvClient client,
            LinkedHashMap<String, StateInfo> restoredStates,
            Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> restoredQueues,
            HeapPriorityQueueSetFactory queueFactory,
            boolean writeBehind,
            int readCacheEntries) {
        super(
                kvStateRegistry,
                keySerializer,
                userCodeClassLoader,
                executionConfig,
                ttlTimeProvider,
                latencyTrackingStateConfig,
                cancelStreamRegistry,
                compression,
                keyContext);
        this.server = server;
        this.client = client;
        this.db = new StatesrvDb(client, writeBehind, readCacheEntries);
        this.maxBatchOps = Math.max(1, client.info().maxBatchOps());
        this.states = restoredStates;
        this.priorityQueues =
                new HeapPriorityQueuesManager(
                        restoredQueues, queueFactory, keyGroupRange, numberOfKeyGroups);
        this.snapshotStrategy = new StatesrvSnapshotStrategy<>(this);
        this.snapshotRunner =
                new SnapshotStrategyRunner<>(
                        "statesrv snapshot",
                        snapshotStrategy,
                        cancelStreamRegistry,
                        SnapshotExecutionType.ASYNCHRONOUS);
    }

    // --- addressing ----------------------------------------------------------------------

    StatesrvDb db() {
        return db;
    }

    StatesrvProcess server() {
        return server;
    }

    UUID backendUid() {
        return backendUid;
    }

    @Override
    public void setCurrentKey(K newKey) {
        super.setCurrentKey(newKey);
        currentKeyBytes = null;
    }

    private byte[] currentKeyBytes() {
        if (currentKeyBytes == null) {
            K key = getCurrentKey();
            if (key == null) {
                throw new NullPointerException("no current key: call setCurrentKey");
            }
            try {
                keyOut.clear();
                keySerializer.serialize(key, keyOut);
            } catch (IOException e) {
                throw new FlinkRuntimeException("cannot serialize the key " + key, e);
            }
            currentKeyBytes = keyOut.getCopyOfBuffer();
        }
        return currentKeyBytes;
    }

    /** The entry (current key, its key group, {@code nsField}) of state {@code serverName}. */
    StateKey entry(String serverName, byte[] nsField) {
        return StateKey.of(serverName, currentKeyBytes(), nsField)
                .withKeyGroup(getCurrentKeyGroupIndex());
    }

    /** {@code varint(len(ns)) || ns}: see {@link AbstractStatesrvState}. */
    <N> byte[] namespacePrefix(N namespace, TypeSerializer<N> s) {
        return namespacePrefix(namespace, s, nsOut);
    }

    static <N> byte[] namespacePrefix(N namespace, TypeSerializer<N> s, DataOutputSerializer out) {
        if (namespace == null) {
            throw new NullPointerException("namespace must not be null");
        }
        try {
            out.clear();
            s.serialize(namespace, out);
            byte[] ns = out.getCopyOfBuffer();
            out.clear();
            int n = ns.length;
            while ((n & ~0x7f) != 0) {
                out.writeByte((n & 0x7f) | 0x80);
                n >>>= 7;
            }
            out.writeByte(n);
            out.write(ns);
            return out.getCopyOfBuffer();
        } catch (IOException e) {
            throw new FlinkRuntimeException("cannot serialize the namespace " + namespace, e);
        }
    }

    /** Splits a namespace field into (namespace bytes, the rest). */
    static byte[][] splitNamespaceField(byte[] field) {
        int n = 0;
        int shift = 0;
        int i = 0;
        int b;
        do {
            b = field[i++] & 0xff;
            n |= (b & 0x7f) << shift;
            shift += 7;
        } while ((b & 0x80) != 0);
        return new byte[][] {
            Arrays.copyOfRange(field, i, i + n), Arrays.copyOfRange(field, i + n, field.length)
        };
    }

    /** A group of writes sent as batches of at most max_batch_ops (each batch atomic). */
    Writes writes() {
        return new Writes();
    }

    final class Writes {
        private final List<Batch> full = new ArrayList<>();
        private Batch cur = new Batch();
        private int size;

        private Batch room() {
            if (cur.size() >= maxBatchOps) {
                full.add(cur);
                cur = new Batch();
            }
            size++;
            return cur;
        }

        Writes put(StateKey k, byte[] v) {
            room().put(k, v);
            return this;
        }

        Writes delete(StateKey k) {
            room().delete(k);
            return this;
        }

        Writes append(StateKey k, byte[] element) {
            room().append(k, element);
            return this;
        }

        int size() {
            return size;
        }

        void apply() {
            for (Batch b : full) {
                db.batch(b);
            }
            if (cur.size() > 0) {
                db.batch(cur);
            }
            full.clear();
            cur = new Batch();
            size = 0;
        }
    }

    /** The current key's entries of a state whose namespace field starts with {@code prefix}. */
    List<Entry> scanNamespace(String serverName, byte[] prefix) {
        return scanNamespace(entry(serverName, prefix), prefix);
    }

    List<Entry> scanNamespace(StateKey keyAddress, byte[] prefix) {
        List<Entry> out = new ArrayList<>();
        for (Entry e : db.scanAll(ScanSpec.key(keyAddress))) {
            if (startsWith(e.namespace(), prefix)) {
                out.add(e);
            }
        }
        return out;
    }

    static boolean startsWith(byte[] a, byte[] prefix) {
        return a.length >= prefix.length
                && Arrays.equals(a, 0, prefix.length, prefix, 0, prefix.length);
    }

    // --- states --------------------------------------------------------------------------

    @Override
    @Nonnull
    public <N, SV, SEV, S extends State, IS extends S> IS createOrUpdateInternalState(
            @Nonnull TypeSerializer<N> namespaceSerializer,
            @Nonnull StateDescriptor<S, SV> stateDesc,
            @Nonnull StateSnapshotTransformFactory<SEV> snapshotTransformFactory)
            throws Exception {
        return createOrUpdateInternalState(
                namespaceSerializer, stateDesc, snapshotTransformFactory, false);
    }

    @Override
    @Nonnull
    @SuppressWarnings("unchecked")
    public <N, SV, SEV, S extends State, IS extends S> IS createOrUpdateInternalState(
            @Nonnull TypeSerializer<N> namespaceSerializer,
            @Nonnull StateDescriptor<S, SV> stateDesc,
            @Nonnull StateSnapshotTransformFactory<SEV> snapshotTransformFactory,
            boolean allowFutureMetadataUpdates)
            throws Exception {
        StateInfo info = states.get(stateDesc.getName());
        RegisteredKeyValueStateBackendMetaInfo<N, SV> meta;
        if (info != null) {
            meta = (RegisteredKeyValueStateBackendMetaInfo<N, SV>) info.metaInfo;
            TypeSerializer<N> previousNs = meta.getNamespaceSerializer();
            TypeSerializerSchemaCompatibility<N> nsCompat =
                    meta.updateNamespaceSerializer(namespaceSerializer);
            if (nsCompat.isCompatibleAfterMigration() || nsCompat.isIncompatible()) {
                throw new StateMigrationException(
                        "The new namespace serializer ("
                                + namespaceSerializer
                                + ") must be compatible with the old namespace serializer ("
                                + previousNs
                                + ").");
            }
            meta.checkStateMetaInfo(stateDesc);
            TypeSerializer<SV> previous = meta.getStateSerializer();
            TypeSerializerSchemaCompatibility<SV> compat =
                    meta.updateStateSerializer(stateDesc.getSerializer());
            if (compat.isCompatibleAfterMigration()) {
                throw new StateMigrationException(
                        "The state serializer of "
                                + stateDesc.getName()
                                + " changed its format ("
                                + previous
                                + " -> "
                                + stateDesc.getSerializer()
                                + "): state migration is not supported by the statesrv backend"
                                + " yet.");
            } else if (compat.isIncompatible()) {
                throw new StateMigrationException(
                        "The new state serializer ("
                                + stateDesc.getSerializer()
                                + ") must not be incompatible with the old state serializer ("
                                + previous
                                + ").");
            }
        } else {
            meta =
                    new RegisteredKeyValueStateBackendMetaInfo<>(
                            stateDesc.getType(),
                            stateDesc.getName(),
                            namespaceSerializer,
                            stateDesc.getSerializer(),
                            StateSnapshotTransformFactory.noTransform());
            info = new StateInfo(stateDesc.getName(), meta);
            states.put(stateDesc.getName(), info);
        }
        if (allowFutureMetadataUpdates) {
            meta = meta.withSerializerUpgradesAllowed();
        }
        info.metaInfo = meta;
        if (info.state == null) {
            info.state = newState(stateDesc, info);
        }
        return (IS) info.state;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private AbstractStatesrvState<?, ?, ?> newState(StateDescriptor<?, ?> d, StateInfo info) {
        switch (d.getType()) {
            case VALUE:
                return new StatesrvValueState<>(this, info, d.getDefaultValue());
            case LIST:
                return new StatesrvListState<>(this, info);
            case MAP:
                return new StatesrvMapState<>(this, info);
            case REDUCING:
                return new StatesrvReducingState<>(
                        this, info, ((ReducingStateDescriptor) d).getReduceFunction());
            case AGGREGATING:
                return new StatesrvAggregatingState<>(
                        this, info, ((AggregatingStateDescriptor) d).getAggregateFunction());
            default:
                throw new FlinkRuntimeException(
                        "State " + d.getClass() + " is not supported by " + getClass());
        }
    }

    Map<String, StateInfo> states() {
        return states;
    }

    HeapPriorityQueuesManager priorityQueues() {
        return priorityQueues;
    }

    @Nonnull
    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    @Nonnull String stateName,
                    @Nonnull TypeSerializer<T> byteOrderedElementSerializer) {
        return priorityQueues.createOrUpdate(stateName, byteOrderedElementSerializer, false);
    }

    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    @Nonnull String stateName,
                    @Nonnull TypeSerializer<T> byteOrderedElementSerializer,
                    boolean allowFutureMetadataUpdates) {
        return priorityQueues.createOrUpdate(
                stateName, byteOrderedElementSerializer, allowFutureMetadataUpdates);
    }

    // --- key iteration -------------------------------------------------------------------

    @Override
    public <N> Stream<K> getKeys(String state, N namespace) {
        return getKeys(List.of(state), namespace);
    }

    @Override
    @SuppressWarnings("unchecked")
    public <N> Stream<K> getKeys(List<String> stateNames, N namespace) {
        Set<K> keys = new LinkedHashSet<>();
        for (String name : stateNames) {
            StateInfo info = states.get(name);
            if (info == null) {
                continue;
            }
            byte[] prefix =
                    namespacePrefix(
                            namespace,
                            (TypeSerializer<N>) info.metaInfo.getNamespaceSerializer(),
                            new DataOutputSerializer(32));
            DataInputDeserializer in = new DataInputDeserializer();
            byte[] last = null;
            for (Entry e : scanState(info)) {
                byte[] key = e.key();
                if (!startsWith(e.namespace(), prefix) || Arrays.equals(key, last)) {
                    continue;
                }
                last = key;
                keys.add(deserializeKey(key, in));
            }
        }
        return keys.stream();
    }

    @Override
    @SuppressWarnings("unchecked")
    public <N> Stream<Tuple2<K, N>> getKeysAndNamespaces(String state) {
        StateInfo info = states.get(state);
        if (info == null) {
            return Stream.empty();
        }
        TypeSerializer<N> nss = (TypeSerializer<N>) info.metaInfo.getNamespaceSerializer();
        List<Tuple2<K, N>> out = new ArrayList<>();
        DataInputDeserializer in = new DataInputDeserializer();
        byte[] lastKey = null;
        byte[] lastNs = null;
        for (Entry e : scanState(info)) {
            byte[] key = e.key();
            byte[] ns = splitNamespaceField(e.namespace())[0];
            if (Arrays.equals(key, lastKey) && Arrays.equals(ns, lastNs)) {
                continue;
            }
            lastKey = key;
            lastNs = ns;
            try {
                K k = deserializeKey(key, in);
                in.setBuffer(ns);
                out.add(Tuple2.of(k, nss.deserialize(in)));
            } catch (IOException ex) {
                throw new FlinkRuntimeException("cannot deserialize a namespace of " + state, ex);
            }
        }
        return out.stream();
    }

    private List<Entry> scanState(StateInfo info) {
        return db.scanAll(
                ScanSpec.keyGroups(
                        info.serverName,
                        keyGroupRange.getStartKeyGroup(),
                        keyGroupRange.getEndKeyGroup()));
    }

    private K deserializeKey(byte[] key, DataInputDeserializer in) {
        try {
            in.setBuffer(key);
            return keySerializer.deserialize(in);
        } catch (IOException e) {
            throw new FlinkRuntimeException("cannot deserialize a key", e);
        }
    }

    @Override
    public int numKeyValueStateEntries() {
        Set<String> ours = new java.util.HashSet<>();
        for (StateInfo i : states.values()) {
            ours.add(i.serverName);
        }
        long n = 0;
        for (io.statesrv.client.StateInfo s : db.listStates()) {
            if (ours.contains(s.name())) {
                n += s.entries();
            }
        }
        return (int) n;
    }

    // --- checkpoints ---------------------------------------------------------------------

    @Nonnull
    @Override
    public RunnableFuture<SnapshotResult<KeyedStateHandle>> snapshot(
            long checkpointId,
            long timestamp,
            @Nonnull CheckpointStreamFactory streamFactory,
            @Nonnull CheckpointOptions checkpointOptions)
            throws Exception {
        nextSharing = checkpointOptions.getCheckpointType().getSharingFilesStrategy();
        return snapshotRunner.snapshot(checkpointId, timestamp, streamFactory, checkpointOptions);
    }

    /** For the snapshot's synchronous part: what Flink lets this snapshot share. */
    SnapshotType.SharingFilesStrategy sharingOfNextSnapshot() {
        return nextSharing;
    }

    /** The uploaded data files a new checkpoint may reference instead of uploading them. */
    synchronized Map<Long, StreamStateHandle> confirmedUploads() {
        return confirmed;
    }

    /** Called by the snapshot's asynchronous part: the data files checkpoint flinkId names. */
    synchronized void recordUploads(long flinkId, Map<Long, StreamStateHandle> files) {
        if (flinkId > confirmedId) {
            uploads.put(flinkId, Map.copyOf(files));
        }
    }

    /** Called by the snapshot's synchronous part: the local checkpoint for Flink's. */
    synchronized void recordLocalCheckpoint(long flinkId, long localId) {
        localCheckpoints.put(flinkId, localId);
    }

    /** The next local checkpoint id: Flink's when it is free, else one more than the last. */
    synchronized long nextLocalId(long flinkId) {
        long last = 0;
        for (long v : localCheckpoints.values()) {
            last = Math.max(last, v);
        }
        return flinkId > last ? flinkId : last + 1;
    }

    /**
     * A canonical savepoint (Flink's format, readable by every backend): the key/value states'
     * entries read from statesrvd and the timers copied from their heap queues, written by Flink's
     * {@code FullSnapshotAsyncWriter} on the task thread (see {@link StatesrvSavepointResources}).
     */
    @Nonnull
    @Override
    public SavepointResources<K> savepoint() {
        db.sync(); // the scans see the writes in flight; a failed one fails the savepoint
        List<StatesrvSavepointResources.Source> sources = new ArrayList<>();
        for (StateInfo i : states.values()) {
            sources.add(
                    StatesrvSavepointResources.Source.keyValue(
                            i.metaInfo.snapshot(),
                            i.serverName,
                            i.metaInfo.getNamespaceSerializer(),
                            i.metaInfo.getStateType() == StateDescriptor.Type.LIST));
        }
        for (HeapPriorityQueueSnapshotRestoreWrapper<?> q :
                priorityQueues.getRegisteredPQStates().values()) {
            sources.add(StatesrvSavepointResources.Source.queue(q.stateSnapshot()));
        }
        return new SavepointResources<>(
                new StatesrvSavepointResources<>(
                        client,
                        sources,
                        keyGroupRange,
                        numberOfKeyGroups,
                        keySerializer,
                        keyGroupCompressionDecorator),
                SnapshotExecutionType.SYNCHRONOUS);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
        // Local copies older than the completed checkpoint are no longer needed (the completed
        // one stays as the newest local copy until the next one completes; statesrvd keeps the
        // data files of older ones while a kept checkpoint's chain names them).
        List<Long> drop = new ArrayList<>();
        synchronized (this) {
            // Its files are registered with Flink's shared-state registry now, and stay there
            // while it is retained (the newest completed one always is): later checkpoints may
            // name them by placeholder. Older checkpoints' uploads will never be confirmed.
            Map<Long, StreamStateHandle> files = uploads.get(checkpointId);
            if (files != null && checkpointId > confirmedId) {
                confirmed = files;
                confirmedId = checkpointId;
            }
            uploads.headMap(checkpointId, true).clear();
            Iterator<Map.Entry<Long, Long>> it =
                    localCheckpoints.headMap(checkpointId, false).entrySet().iterator();
            while (it.hasNext()) {
                drop.add(it.next().getValue());
                it.remove();
            }
        }
        deleteLocal(drop);
    }

    @Override
    public void notifyCheckpointAborted(long checkpointId) {
        Long local;
        synchronized (this) {
            local = localCheckpoints.remove(checkpointId);
            uploads.remove(checkpointId);
        }
        if (local != null) {
            deleteLocal(List.of(local));
        }
    }

    private void deleteLocal(List<Long> ids) {
        if (disposed) {
            return;
        }
        for (long id : ids) {
            try {
                db.deleteCheckpoint(id);
            } catch (StatesrvException e) {
                if (e.status() != Status.NOT_FOUND) { // checkpoint_retain took it already
                    LOG.warn(
                            "could not delete local statesrvd checkpoint {}: {}", id, e.toString());
                }
            }
        }
    }

    @Override
    public boolean requiresLegacySynchronousTimerSnapshots(SnapshotType checkpointType) {
        // Checkpoints and native savepoints hold statesrvd's files, not the heap timers: the
        // operator writes those as raw keyed state. A canonical savepoint has them in its own
        // stream, as every backend's canonical savepoint does.
        return !(checkpointType instanceof SavepointType t
                && t.getFormatType() == SavepointFormatType.CANONICAL);
    }

    @Override
    public boolean isSafeToReuseKVState() {
        return true;
    }

    @Override
    public void dispose() {
        if (disposed) {
            return;
        }
        disposed = true;
        super.dispose();
        try {
            client.close();
        } finally {
            server.close();
        }
        states.clear();
    }

    boolean isDisposed() {
        return disposed;
    }
}
