package io.statesrv.flink;

import io.statesrv.client.Batch;
import io.statesrv.client.StateKey;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.Value;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.KeyExtractorFunction;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.RegisteredKeyValueStateBackendMetaInfo;
import org.apache.flink.runtime.state.RegisteredPriorityQueueStateBackendMetaInfo;
import org.apache.flink.runtime.state.StateSerializerProvider;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSet;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSnapshotRestoreWrapper;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;
import org.apache.flink.runtime.state.restore.FullSnapshotRestoreOperation;
import org.apache.flink.runtime.state.restore.KeyGroup;
import org.apache.flink.runtime.state.restore.KeyGroupEntry;
import org.apache.flink.runtime.state.restore.SavepointRestoreResult;
import org.apache.flink.runtime.state.restore.ThrowingIterator;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * Restores Flink's canonical format — canonical savepoints of any backend, and the heap backend's
 * checkpoints ({@code KeyGroupsStateHandle}s) — into a fresh statesrvd. Flink's {@code
 * FullSnapshotRestoreOperation} reads the streams (meta data, key-group offsets, compression, the
 * key serializer's compatibility check); this class turns each entry back into a statesrvd entry
 * (see {@link StatesrvSavepointResources} for the format) and writes them in pipelined batches, and
 * puts timers into the heap queues the backend then takes over. Serializers are the restored ones
 * (as in the heap backend's restore): their bytes are kept verbatim, so a later registration checks
 * compatibility as after a native restore.
 */
final class StatesrvCanonicalRestore<K> {
    private static final int MAX_BATCH_BYTES = 512 * 1024;
    private static final int IN_FLIGHT = 8;

    private final StatesrvClient client;
    private final int maxBatchOps;
    private final KeyGroupRange range;
    private final int numberOfKeyGroups;
    private final int keyGroupPrefixBytes;
    private final ClassLoader classLoader;
    private final StateSerializerProvider<K> keySerializer;
    private final HeapPriorityQueueSetFactory queueFactory;
    private final LinkedHashMap<String, StatesrvKeyedStateBackend.StateInfo> states;
    private final Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues;

    private final DataInputDeserializer in = new DataInputDeserializer();
    private final DataOutputSerializer nsOut = new DataOutputSerializer(64);
    private final ArrayDeque<CompletableFuture<Integer>> inFlight = new ArrayDeque<>();
    private Batch batch = new Batch();
    private int batchBytes;
    private long entries;
    private long timers;

    StatesrvCanonicalRestore(
            StatesrvClient client,
            KeyGroupRange range,
            int numberOfKeyGroups,
            ClassLoader classLoader,
            StateSerializerProvider<K> keySerializer,
            HeapPriorityQueueSetFactory queueFactory,
            LinkedHashMap<String, StatesrvKeyedStateBackend.StateInfo> states,
            Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues) {
        this.client = client;
        this.maxBatchOps = Math.max(1, client.info().maxBatchOps());
        this.range = range;
        this.numberOfKeyGroups = numberOfKeyGroups;
        this.keyGroupPrefixBytes =
                CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix(
                        numberOfKeyGroups);
        this.classLoader = classLoader;
        this.keySerializer = keySerializer;
        this.queueFactory = queueFactory;
        this.states = states;
        this.queues = queues;
    }

    long entries() {
        return entries;
    }

    long timers() {
        return timers;
    }

    /** Where one state id's entries go. */
    private interface Target {
        void accept(KeyGroupEntry e) throws IOException;
    }

    void restore(Collection<KeyedStateHandle> handles) throws Exception {
        FullSnapshotRestoreOperation<K> op =
                new FullSnapshotRestoreOperation<>(range, classLoader, handles, keySerializer);
        try (ThrowingIterator<SavepointRestoreResult> results = op.restore()) {
            while (results.hasNext()) {
                SavepointRestoreResult r = results.next();
                List<Target> byId = new ArrayList<>();
                for (StateMetaInfoSnapshot m : r.getStateMetaInfoSnapshots()) {
                    byId.add(target(m));
                }
                try (ThrowingIterator<KeyGroup> groups = r.getRestoredKeyGroups()) {
                    while (groups.hasNext()) {
                        try (ThrowingIterator<KeyGroupEntry> es =
                                groups.next().getKeyGroupEntries()) {
                            while (es.hasNext()) {
                                KeyGroupEntry e = es.next();
                                byId.get(e.getKvStateId()).accept(e);
                            }
                        }
                    }
                }
            }
        }
        flush();
        while (!inFlight.isEmpty()) {
            StatesrvDb.await(inFlight.poll());
        }
    }

    private Target target(StateMetaInfoSnapshot m) {
        switch (m.getBackendStateType()) {
            case KEY_VALUE:
                return keyValueTarget(m);
            case PRIORITY_QUEUE:
                return queueTarget(m);
            default:
                throw new FlinkRuntimeException(
                        "a keyed state snapshot holds a state of type "
                                + m.getBackendStateType()
                                + ": "
                                + m.getName());
        }
    }

    // --- key/value states ------------------------------------------------------------------

    private Target keyValueTarget(StateMetaInfoSnapshot m) {
        StatesrvKeyedStateBackend.StateInfo info =
                states.computeIfAbsent(
                        m.getName(),
                        n ->
                                new StatesrvKeyedStateBackend.StateInfo(
                                        n, new RegisteredKeyValueStateBackendMetaInfo<>(m)));
        RegisteredKeyValueStateBackendMetaInfo<?, ?> meta = info.metaInfo;
        TypeSerializer<K> keySer = keySerializer.previousSchemaSerializer();
        TypeSerializer<?> nsSer = meta.getPreviousNamespaceSerializer();
        boolean ambiguous = CompositeKeySerializationUtils.isAmbiguousKeyPossible(keySer, nsSer);
        StateDescriptor.Type type = meta.getStateType();
        TypeSerializer<?> elementSer =
                type == StateDescriptor.Type.LIST
                        ? ((ListSerializer<?>) meta.getPreviousStateSerializer())
                                .getElementSerializer()
                        : null;
        String name = info.serverName;
        return e -> {
            byte[] k = e.getKey();
            in.setBuffer(k);
            int kg = CompositeKeySerializationUtils.readKeyGroup(keyGroupPrefixBytes, in);
            if (!range.contains(kg)) {
                throw new IOException(
                        "an entry of " + m.getName() + " in key group " + kg + " outside " + range);
            }
            int k0 = in.getPosition();
            skip(keySer, in);
            int k1 = in.getPosition();
            if (ambiguous) {
                CompositeKeySerializationUtils.readVariableIntBytes(in, k1 - k0);
            }
            int n0 = in.getPosition();
            skip(nsSer, in);
            int n1 = in.getPosition();
            if (ambiguous) {
                CompositeKeySerializationUtils.readVariableIntBytes(in, n1 - n0);
            }
            int u0 = in.getPosition();
            // statesrvd's namespace field: varint(len(ns)) || ns || the rest (a map's user key)
            nsOut.clear();
            int len = n1 - n0;
            while ((len & ~0x7f) != 0) {
                nsOut.writeByte((len & 0x7f) | 0x80);
                len >>>= 7;
            }
            nsOut.writeByte(len);
            nsOut.write(k, n0, n1 - n0);
            nsOut.write(k, u0, k.length - u0);
            StateKey addr =
                    StateKey.of(name, Arrays.copyOfRange(k, k0, k1), nsOut.getCopyOfBuffer())
                            .withKeyGroup(kg);
            byte[] v = e.getValue();
            if (elementSer != null) {
                List<byte[]> elements = splitList(v, elementSer);
                if (elements.isEmpty()) {
                    return;
                }
                add(addr, Value.list(elements), k.length + v.length + 4 * elements.size());
            } else {
                add(addr, Value.raw(v), k.length + v.length);
            }
        };
    }

    /** {@code ListDelimitedSerializer}'s format: elements separated by one delimiter byte. */
    private List<byte[]> splitList(byte[] v, TypeSerializer<?> elementSer) throws IOException {
        List<byte[]> out = new ArrayList<>();
        DataInputDeserializer li = new DataInputDeserializer(v);
        while (li.available() > 0) {
            int from = li.getPosition();
            skip(elementSer, li);
            out.add(Arrays.copyOfRange(v, from, li.getPosition()));
            if (li.available() > 0) {
                li.skipBytesToRead(1);
            }
        }
        return out;
    }

    /**
     * Reads past one serialized value. By deserializing it: {@code getLength()} cannot be trusted
     * for this (VoidNamespaceSerializer says 0 and writes one byte).
     */
    private static void skip(TypeSerializer<?> s, DataInputDeserializer in) throws IOException {
        s.deserialize(in);
    }

    private void add(StateKey k, Value v, int bytes) {
        if (batch.size() >= maxBatchOps
                || (batch.size() > 0 && batchBytes + bytes > MAX_BATCH_BYTES)) {
            flush();
        }
        batch.put(k, v);
        batchBytes += bytes;
        entries++;
    }

    private void flush() {
        if (batch.size() == 0) {
            return;
        }
        if (inFlight.size() >= IN_FLIGHT) {
            StatesrvDb.await(inFlight.poll());
        }
        inFlight.add(client.batch(batch));
        batch = new Batch();
        batchBytes = 0;
    }

    // --- timers ----------------------------------------------------------------------------

    @SuppressWarnings({"unchecked", "rawtypes"})
    private Target queueTarget(StateMetaInfoSnapshot m) {
        HeapPriorityQueueSnapshotRestoreWrapper<?> w =
                queues.computeIfAbsent(
                        m.getName(),
                        n -> {
                            RegisteredPriorityQueueStateBackendMetaInfo meta =
                                    new RegisteredPriorityQueueStateBackendMetaInfo<>(m);
                            HeapPriorityQueueSet set =
                                    queueFactory.create(n, meta.getElementSerializer());
                            return new HeapPriorityQueueSnapshotRestoreWrapper(
                                    set,
                                    meta,
                                    KeyExtractorFunction.forKeyedObjects(),
                                    range,
                                    numberOfKeyGroups);
                        });
        HeapPriorityQueueSnapshotRestoreWrapper<HeapPriorityQueueElement> q =
                (HeapPriorityQueueSnapshotRestoreWrapper<HeapPriorityQueueElement>) w;
        TypeSerializer<HeapPriorityQueueElement> s = q.getMetaInfo().getElementSerializer();
        return e -> {
            in.setBuffer(e.getKey());
            in.skipBytesToRead(keyGroupPrefixBytes);
            q.getPriorityQueue().add(s.deserialize(in));
            timers++;
        };
    }
}
