package io.statesrv.flink;

import io.statesrv.client.Entry;
import io.statesrv.client.StateKey;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.function.Function;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.MapSerializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.queryablestate.client.state.serialization.KvStateSerializer;
import org.apache.flink.runtime.state.internal.InternalMapState;

/**
 * MapState: one statesrvd entry per user key, its namespace field the Flink namespace's prefix
 * followed by the user key's bytes; the value is a null flag (1 byte) and the serialized user
 * value. Iteration is a scan of the current key's entries with that prefix, in the user keys'
 * serialized byte order (as RocksDB's).
 */
final class StatesrvMapState<K, N, UK, UV> extends AbstractStatesrvState<K, N, Map<UK, UV>>
        implements InternalMapState<K, N, UK, UV> {
    private final DataOutputSerializer ukOut = new DataOutputSerializer(64);

    StatesrvMapState(
            StatesrvKeyedStateBackend<K> backend, StatesrvKeyedStateBackend.StateInfo info) {
        super(backend, info);
    }

    private MapSerializer<UK, UV> mapSerializer() {
        return (MapSerializer<UK, UV>) getValueSerializer();
    }

    private StateKey userEntry(UK userKey) {
        return userEntry(currentPrefix(), userKey, mapSerializer().getKeySerializer());
    }

    private StateKey userEntry(byte[] prefix, UK userKey, TypeSerializer<UK> s) {
        try {
            ukOut.clear();
            ukOut.write(prefix);
            s.serialize(userKey, ukOut);
            return entry(ukOut.getCopyOfBuffer());
        } catch (java.io.IOException e) {
            throw new org.apache.flink.util.FlinkRuntimeException(
                    "cannot serialize a user key of " + info.flinkName, e);
        }
    }

    private byte[] encodeValue(UV v, TypeSerializer<UV> s) {
        try {
            out.clear();
            out.writeBoolean(v == null);
            if (v != null) {
                s.serialize(v, out);
            }
            return out.getCopyOfBuffer();
        } catch (java.io.IOException e) {
            throw new org.apache.flink.util.FlinkRuntimeException(
                    "cannot serialize a value of " + info.flinkName, e);
        }
    }

    private UV decodeValue(byte[] b, TypeSerializer<UV> s) {
        if (b[0] != 0) {
            return null;
        }
        return deserialize(Arrays.copyOfRange(b, 1, b.length), s);
    }

    @Override
    public UV get(UK key) {
        byte[] b = getBytes(userEntry(key));
        return b == null ? null : decodeValue(b, mapSerializer().getValueSerializer());
    }

    @Override
    public void put(UK key, UV value) {
        backend.db().put(userEntry(key), encodeValue(value, mapSerializer().getValueSerializer()));
    }

    @Override
    public void putAll(Map<UK, UV> map) {
        if (map == null || map.isEmpty()) {
            return;
        }
        TypeSerializer<UV> vs = mapSerializer().getValueSerializer();
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        for (Map.Entry<UK, UV> e : map.entrySet()) {
            b.put(userEntry(e.getKey()), encodeValue(e.getValue(), vs));
        }
        b.apply();
    }

    @Override
    public void remove(UK key) {
        backend.db().delete(userEntry(key));
    }

    @Override
    public boolean contains(UK key) {
        return getBytes(userEntry(key)) != null;
    }

    @Override
    public Iterable<Map.Entry<UK, UV>> entries() {
        return () -> iterate(e -> e);
    }

    @Override
    public Iterable<UK> keys() {
        return () -> iterate(Map.Entry::getKey);
    }

    @Override
    public Iterable<UV> values() {
        return () -> iterate(Map.Entry::getValue);
    }

    @Override
    public Iterator<Map.Entry<UK, UV>> iterator() {
        return iterate(e -> e);
    }

    @Override
    public boolean isEmpty() {
        return backend.scanNamespace(info.serverName, currentPrefix()).isEmpty();
    }

    @Override
    public void clear() {
        List<Entry> all = backend.scanNamespace(info.serverName, currentPrefix());
        if (all.isEmpty()) {
            return;
        }
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        for (Entry e : all) {
            b.delete(entry(e.namespace()));
        }
        b.apply();
    }

    /**
     * The current (key, namespace)'s entries as read now; remove() and setValue() write through.
     */
    private <T> Iterator<T> iterate(Function<Map.Entry<UK, UV>, T> view) {
        byte[] prefix = currentPrefix();
        List<Entry> all = backend.scanNamespace(info.serverName, prefix);
        MapSerializer<UK, UV> ms = mapSerializer();
        List<StatesrvMapEntry> entries = new ArrayList<>(all.size());
        for (Entry e : all) {
            byte[] ns = e.namespace();
            UK k =
                    deserialize(
                            Arrays.copyOfRange(ns, prefix.length, ns.length),
                            ms.getKeySerializer());
            entries.add(new StatesrvMapEntry(entry(ns), k, e.value().data()));
        }
        return new Iterator<T>() {
            private int next;
            private StatesrvMapEntry last;

            @Override
            public boolean hasNext() {
                return next < entries.size();
            }

            @Override
            public T next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                last = entries.get(next++);
                return view.apply(last);
            }

            @Override
            public void remove() {
                if (last == null || last.deleted) {
                    throw new IllegalStateException("nothing to remove");
                }
                last.deleted = true;
                backend.db().delete(last.address);
            }
        };
    }

    /** One entry of an iteration; its value is deserialized when asked for. */
    private final class StatesrvMapEntry implements Map.Entry<UK, UV> {
        final StateKey address;
        final UK key;
        byte[] raw;
        boolean deleted;

        StatesrvMapEntry(StateKey address, UK key, byte[] raw) {
            this.address = address;
            this.key = key;
            this.raw = raw;
        }

        @Override
        public UK getKey() {
            return key;
        }

        @Override
        public UV getValue() {
            return deleted ? null : decodeValue(raw, mapSerializer().getValueSerializer());
        }

        @Override
        public UV setValue(UV value) {
            if (deleted) {
                throw new IllegalStateException("the entry was removed");
            }
            UV old = getValue();
            raw = encodeValue(value, mapSerializer().getValueSerializer());
            backend.db().put(address, raw);
            return old;
        }

        @Override
        public boolean equals(Object o) {
            if (!(o instanceof Map.Entry<?, ?> e)) {
                return false;
            }
            return java.util.Objects.equals(key, e.getKey())
                    && java.util.Objects.equals(getValue(), e.getValue());
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hashCode(key) ^ java.util.Objects.hashCode(getValue());
        }

        @Override
        public String toString() {
            return key + "=" + getValue();
        }
    }

    @Override
    public byte[] getSerializedValue(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer,
            TypeSerializer<Map<UK, UV>> safeValueSerializer)
            throws Exception {
        StateKey k =
                queryKey(serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
        byte[] prefix = k.namespace();
        MapSerializer<UK, UV> ms = (MapSerializer<UK, UV>) safeValueSerializer;
        List<Entry> all = backend.scanNamespace(k, prefix);
        if (all.isEmpty()) {
            return null;
        }
        org.apache.flink.core.memory.DataInputDeserializer din =
                new org.apache.flink.core.memory.DataInputDeserializer();
        List<Map.Entry<UK, UV>> entries = new ArrayList<>(all.size());
        for (Entry e : all) {
            byte[] ns = e.namespace();
            din.setBuffer(ns, prefix.length, ns.length - prefix.length);
            UK uk = ms.getKeySerializer().deserialize(din);
            byte[] v = e.value().data();
            UV uv = null;
            if (v[0] == 0) {
                din.setBuffer(v, 1, v.length - 1);
                uv = ms.getValueSerializer().deserialize(din);
            }
            entries.add(new java.util.AbstractMap.SimpleEntry<>(uk, uv));
        }
        return KvStateSerializer.serializeMap(
                entries, ms.getKeySerializer(), ms.getValueSerializer());
    }
}
