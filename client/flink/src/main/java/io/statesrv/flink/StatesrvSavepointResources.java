package io.statesrv.flink;

import io.statesrv.client.Entry;
import io.statesrv.client.ScanPage;
import io.statesrv.client.ScanSpec;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.ValueKind;
import io.statesrv.client.Values;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.FullSnapshotResources;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyValueStateIterator;
import org.apache.flink.runtime.state.StreamCompressionDecorator;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueStateSnapshot;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * A canonical savepoint's contents for Flink's {@code FullSnapshotAsyncWriter}: the meta data of
 * every keyed state and timer queue, and an iterator over their entries in the canonical format
 * that RocksDB's and the heap backend's savepoints share, ordered by key group and then by state.
 *
 * <p>Per entry: the key is {@code key group (1 or 2 bytes) || key || [len(key)] || namespace ||
 * [len(namespace)] || [user key]} (the lengths only when both the key and the namespace serializer
 * are variable-sized, as {@code CompositeKeySerializationUtils} writes them); the value is the
 * serialized value; a list's elements are joined by one delimiter byte ({@code
 * ListDelimitedSerializer}'s format); a map entry's value is a null flag and the user value. The
 * bytes statesrvd holds are these serializers' bytes already, so no value is deserialized. Timers
 * are entries of their queue's state: {@code key group || element}, value empty.
 *
 * <p>The iterator reads the backend's statesrvd over the task's own connection, page after page
 * (the next page is requested as soon as one arrives), so the savepoint is written synchronously on
 * the task thread ({@code SnapshotExecutionType.SYNCHRONOUS}): no write can come between the pages,
 * and the savepoint is the cut at its barrier. The timers are copied when the savepoint is
 * prepared.
 */
final class StatesrvSavepointResources<K> implements FullSnapshotResources<K> {
    private static final int PAGE = 1000;
    private static final byte[] EMPTY = new byte[0];

    /** One state of the savepoint: its meta data and where its entries come from. */
    static final class Source {
        final StateMetaInfoSnapshot meta;
        final String serverName; // key/value states
        final TypeSerializer<?> namespaceSerializer;
        final boolean list;
        final HeapPriorityQueueStateSnapshot<?> queue; // timer queues

        private Source(
                StateMetaInfoSnapshot meta,
                String serverName,
                TypeSerializer<?> namespaceSerializer,
                boolean list,
                HeapPriorityQueueStateSnapshot<?> queue) {
            this.meta = meta;
            this.serverName = serverName;
            this.namespaceSerializer = namespaceSerializer;
            this.list = list;
            this.queue = queue;
        }

        static Source keyValue(
                StateMetaInfoSnapshot meta,
                String serverName,
                TypeSerializer<?> namespaceSerializer,
                boolean list) {
            return new Source(meta, serverName, namespaceSerializer, list, null);
        }

        static Source queue(HeapPriorityQueueStateSnapshot<?> q) {
            return new Source(q.getMetaInfoSnapshot(), null, null, false, q);
        }
    }

    private final StatesrvClient client;
    private final List<Source> sources;
    private final List<StateMetaInfoSnapshot> meta;
    private final KeyGroupRange range;
    private final int keyGroupPrefixBytes;
    private final TypeSerializer<K> keySerializer;
    private final StreamCompressionDecorator compression;

    StatesrvSavepointResources(
            StatesrvClient client,
            List<Source> sources,
            KeyGroupRange range,
            int numberOfKeyGroups,
            TypeSerializer<K> keySerializer,
            StreamCompressionDecorator compression) {
        this.client = client;
        this.sources = List.copyOf(sources);
        List<StateMetaInfoSnapshot> m = new ArrayList<>();
        for (Source s : sources) {
            m.add(s.meta);
        }
        this.meta = List.copyOf(m);
        this.range = range;
        this.keyGroupPrefixBytes =
                CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix(
                        numberOfKeyGroups);
        this.keySerializer = keySerializer;
        this.compression = compression;
    }

    @Override
    public List<StateMetaInfoSnapshot> getMetaInfoSnapshots() {
        return meta;
    }

    @Override
    public KeyValueStateIterator createKVStateIterator() throws IOException {
        List<Cursor> cursors = new ArrayList<>();
        for (Source s : sources) {
            cursors.add(
                    s.queue != null
                            ? new QueueCursor(s.queue)
                            : new ScanCursor(
                                    s,
                                    CompositeKeySerializationUtils.isAmbiguousKeyPossible(
                                            keySerializer, s.namespaceSerializer)));
        }
        return new MergeIterator(cursors);
    }

    @Override
    public KeyGroupRange getKeyGroupRange() {
        return range;
    }

    @Override
    public TypeSerializer<K> getKeySerializer() {
        return keySerializer;
    }

    @Override
    public StreamCompressionDecorator getStreamCompressionDecorator() {
        return compression;
    }

    @Override
    public void release() {}

    // --- iteration -------------------------------------------------------------------------

    /** One state's entries in key-group order. */
    private interface Cursor {
        /** The current entry's key group; {@link Integer#MAX_VALUE} when done. */
        int keyGroup();

        byte[] key() throws IOException;

        byte[] value();

        void advance() throws IOException;
    }

    /** A key/value state: statesrvd scan pages over the backend's key groups. */
    private final class ScanCursor implements Cursor {
        private final Source source;
        private final boolean ambiguous;
        private final ScanSpec spec;
        private final DataOutputSerializer out = new DataOutputSerializer(128);
        private Iterator<Entry> page;
        private CompletableFuture<ScanPage> next;
        private Entry cur;

        ScanCursor(Source source, boolean ambiguous) {
            this.source = source;
            this.ambiguous = ambiguous;
            this.spec =
                    ScanSpec.keyGroups(
                                    source.serverName,
                                    range.getStartKeyGroup(),
                                    range.getEndKeyGroup())
                            .limit(PAGE);
            this.next = client.scan(spec, null);
            advance();
        }

        @Override
        public int keyGroup() {
            return cur == null ? Integer.MAX_VALUE : cur.keyGroup();
        }

        @Override
        public void advance() {
            while ((page == null || !page.hasNext()) && next != null) {
                ScanPage p = StatesrvDb.await(next);
                // Ask for the next page now: it travels while this one is written out.
                next = p.hasMore() ? client.scan(spec, p.cursor()) : null;
                page = p.entries().iterator();
            }
            cur = page != null && page.hasNext() ? page.next() : null;
        }

        @Override
        public byte[] key() throws IOException {
            byte[] field = cur.namespace();
            int n = 0;
            int shift = 0;
            int i = 0;
            int b;
            do {
                b = field[i++] & 0xff;
                n |= (b & 0x7f) << shift;
                shift += 7;
            } while ((b & 0x80) != 0);
            byte[] key = cur.key();
            out.clear();
            CompositeKeySerializationUtils.writeKeyGroup(cur.keyGroup(), keyGroupPrefixBytes, out);
            out.write(key);
            if (ambiguous) {
                CompositeKeySerializationUtils.writeVariableIntBytes(key.length, out);
            }
            out.write(field, i, n); // the namespace
            if (ambiguous) {
                CompositeKeySerializationUtils.writeVariableIntBytes(n, out);
            }
            out.write(field, i + n, field.length - i - n); // a map's user key, or nothing
            return out.getCopyOfBuffer();
        }

        @Override
        public byte[] value() {
            if (!source.list) {
                return cur.value().data();
            }
            if (cur.value().kind() != ValueKind.LIST) {
                throw new FlinkRuntimeException(
                        "list state " + source.meta.getName() + " holds a non-list entry");
            }
            List<byte[]> elements = Values.decodeList(cur.value().data());
            int size = Math.max(0, elements.size() - 1);
            for (byte[] e : elements) {
                size += e.length;
            }
            byte[] v = new byte[size];
            int at = 0;
            for (byte[] e : elements) {
                if (at > 0) {
                    v[at++] = ',';
                }
                System.arraycopy(e, 0, v, at, e.length);
                at += e.length;
            }
            return v;
        }
    }

    /** A timer queue, key group after key group, from the copy taken at the savepoint. */
    private final class QueueCursor implements Cursor {
        private final HeapPriorityQueueStateSnapshot<Object> queue;
        private final TypeSerializer<Object> elementSerializer;
        private final DataOutputSerializer out = new DataOutputSerializer(64);
        private int kg;
        private Iterator<Object> it;
        private Object cur;

        @SuppressWarnings("unchecked")
        QueueCursor(HeapPriorityQueueStateSnapshot<?> q) {
            this.queue = (HeapPriorityQueueStateSnapshot<Object>) q;
            this.elementSerializer = queue.getMetaInfo().getElementSerializer();
            this.kg = range.getStartKeyGroup() - 1;
            advance();
        }

        @Override
        public int keyGroup() {
            return cur == null ? Integer.MAX_VALUE : kg;
        }

        @Override
        public void advance() {
            while (it == null || !it.hasNext()) {
                if (++kg > range.getEndKeyGroup()) {
                    cur = null;
                    return;
                }
                it = queue.getIteratorForKeyGroup(kg);
            }
            cur = it.next();
        }

        @Override
        public byte[] key() throws IOException {
            out.clear();
            CompositeKeySerializationUtils.writeKeyGroup(kg, keyGroupPrefixBytes, out);
            elementSerializer.serialize(cur, out);
            return out.getCopyOfBuffer();
        }

        @Override
        public byte[] value() {
            return EMPTY;
        }
    }

    /**
     * Every state's entries by key group, and within one key group state after state (in the order
     * of the meta data, which is the state id), as {@code FullSnapshotAsyncWriter} reads them. Each
     * key is a fresh array: the writer flags the last one of a run in place.
     */
    private static final class MergeIterator implements KeyValueStateIterator {
        private final List<Cursor> cursors;
        private int state = -1;
        private int keyGroup = -1;
        private boolean newKeyGroup;
        private boolean newState;
        private boolean valid;
        private byte[] key;
        private byte[] value;

        MergeIterator(List<Cursor> cursors) throws IOException {
            this.cursors = cursors;
            nextKeyGroup();
        }

        @Override
        public void next() throws IOException {
            newKeyGroup = false;
            newState = false;
            Cursor c = cursors.get(state);
            c.advance();
            if (c.keyGroup() == keyGroup) {
                load(c);
                return;
            }
            for (int s = state + 1; s < cursors.size(); s++) {
                if (cursors.get(s).keyGroup() == keyGroup) {
                    state = s;
                    newState = true;
                    load(cursors.get(s));
                    return;
                }
            }
            nextKeyGroup();
        }

        private void nextKeyGroup() throws IOException {
            int min = Integer.MAX_VALUE;
            for (Cursor c : cursors) {
                min = Math.min(min, c.keyGroup());
            }
            if (min == Integer.MAX_VALUE) {
                valid = false;
                key = null;
                value = null;
                return;
            }
            keyGroup = min;
            newKeyGroup = true;
            newState = true;
            for (int s = 0; s < cursors.size(); s++) {
                if (cursors.get(s).keyGroup() == min) {
                    state = s;
                    load(cursors.get(s));
                    return;
                }
            }
        }

        private void load(Cursor c) throws IOException {
            valid = true;
            key = c.key();
            value = c.value();
        }

        @Override
        public int keyGroup() {
            return keyGroup;
        }

        @Override
        public byte[] key() {
            return key;
        }

        @Override
        public byte[] value() {
            return value;
        }

        @Override
        public int kvStateId() {
            return state;
        }

        @Override
        public boolean isNewKeyValueState() {
            return newState;
        }

        @Override
        public boolean isNewKeyGroup() {
            return newKeyGroup;
        }

        @Override
        public boolean isValid() {
            return valid;
        }

        @Override
        public void close() {}
    }
}
