package io.statesrv.flink;

import io.statesrv.client.StateKey;
import io.statesrv.client.Value;
import java.io.IOException;
import java.util.Collection;
import java.util.Optional;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.queryablestate.client.state.serialization.KvStateSerializer;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.internal.InternalKvState;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * What every statesrv state shares: the entry address of (current key, current namespace), and the
 * serializers, read from the backend's registration so that a re-registration (TTL, a new
 * serializer after restore) takes effect at once.
 *
 * <p>An entry is addressed as statesrvd (state, key, namespace) with Flink's key group given
 * explicitly: the key is the Flink key's serialized bytes; the namespace field is {@code
 * varint(len(ns)) || ns}, the Flink namespace's bytes with their length in front, followed, for a
 * MapState, by the user key's bytes. The length makes the prefix of one namespace never the prefix
 * of another, so a MapState's entries of one namespace are exactly those with that prefix.
 *
 * <p>Not thread-safe: used on the task thread, as every Flink state.
 */
abstract class AbstractStatesrvState<K, N, V> implements InternalKvState<K, N, V> {
    final StatesrvKeyedStateBackend<K> backend;
    final StatesrvKeyedStateBackend.StateInfo info;
    final DataOutputSerializer out = new DataOutputSerializer(128);
    final DataInputDeserializer in = new DataInputDeserializer();
    N currentNamespace;
    byte[] nsPrefix;

    AbstractStatesrvState(
            StatesrvKeyedStateBackend<K> backend, StatesrvKeyedStateBackend.StateInfo info) {
        this.backend = backend;
        this.info = info;
    }

    @Override
    public TypeSerializer<K> getKeySerializer() {
        return backend.getKeySerializer();
    }

    @Override
    @SuppressWarnings("unchecked")
    public TypeSerializer<N> getNamespaceSerializer() {
        return (TypeSerializer<N>) info.metaInfo.getNamespaceSerializer();
    }

    @Override
    @SuppressWarnings("unchecked")
    public TypeSerializer<V> getValueSerializer() {
        return (TypeSerializer<V>) info.metaInfo.getStateSerializer();
    }

    @Override
    public void setCurrentNamespace(N namespace) {
        this.currentNamespace = namespace;
        this.nsPrefix = backend.namespacePrefix(namespace, getNamespaceSerializer());
    }

    /** The entry of the current key in namespace {@code ns} (a namespace field). */
    StateKey entry(byte[] nsField) {
        return backend.entry(info.serverName, nsField);
    }

    StateKey current() {
        return entry(currentPrefix());
    }

    byte[] currentPrefix() {
        if (nsPrefix == null) {
            throw new NullPointerException("no current namespace: call setCurrentNamespace");
        }
        return nsPrefix;
    }

    byte[] getBytes(StateKey k) {
        Optional<Value> v = backend.db().get(k);
        return v.isPresent() ? v.get().data() : null;
    }

    <T> byte[] serialize(T value, TypeSerializer<T> s) {
        try {
            out.clear();
            s.serialize(value, out);
            return out.getCopyOfBuffer();
        } catch (IOException e) {
            throw new FlinkRuntimeException("cannot serialize the value of " + info.flinkName, e);
        }
    }

    <T> T deserialize(byte[] bytes, TypeSerializer<T> s) {
        try {
            in.setBuffer(bytes);
            return s.deserialize(in);
        } catch (IOException e) {
            throw new FlinkRuntimeException("cannot deserialize the value of " + info.flinkName, e);
        }
    }

    @Override
    public void clear() {
        backend.db().delete(current());
    }

    /** The server's value bytes for a queryable-state request, or null. */
    byte[] getForQuery(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer)
            throws Exception {
        StateKey k =
                queryKey(serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
        // On a queryable-state thread: not through the task's read cache.
        Optional<Value> v = backend.db().getUncached(k);
        return v.isPresent() ? v.get().data() : null;
    }

    StateKey queryKey(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer)
            throws IOException {
        var kn =
                KvStateSerializer.deserializeKeyAndNamespace(
                        serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
        DataOutputSerializer o = new DataOutputSerializer(64);
        safeKeySerializer.serialize(kn.f0, o);
        byte[] key = o.getCopyOfBuffer();
        int kg = KeyGroupRangeAssignment.assignToKeyGroup(kn.f0, backend.getNumberOfKeyGroups());
        byte[] ns =
                StatesrvKeyedStateBackend.namespacePrefix(
                        kn.f1, safeNamespaceSerializer, new DataOutputSerializer(32));
        return StateKey.of(info.serverName, key, ns).withKeyGroup(kg);
    }

    @Override
    public byte[] getSerializedValue(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer,
            TypeSerializer<V> safeValueSerializer)
            throws Exception {
        return getForQuery(serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
    }

    @Override
    public StateIncrementalVisitor<K, N, V> getStateIncrementalVisitor(
            int recommendedMaxNumberOfReturnedRecords) {
        throw new UnsupportedOperationException(
                "statesrv states do not support incremental visitors (as RocksDB's)");
    }

    /** Two values made one: {@code ReduceFunction.reduce}, {@code AggregateFunction.merge}. */
    interface Combiner<T> {
        T combine(T a, T b) throws Exception;
    }

    /**
     * Merges the sources' values into the target's (session windows merging namespaces): the
     * sources are deleted and the combined value written in one atomic batch.
     */
    void mergeValues(N target, Collection<N> sources, Combiner<V> combiner) throws Exception {
        if (sources == null || sources.isEmpty()) {
            return;
        }
        TypeSerializer<N> nss = getNamespaceSerializer();
        TypeSerializer<V> vs = getValueSerializer();
        StateKey t = entry(backend.namespacePrefix(target, nss));
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        V merged = null;
        for (N source : sources) {
            StateKey s = entry(backend.namespacePrefix(source, nss));
            byte[] bytes = s.equals(t) ? null : getBytes(s);
            if (bytes == null) {
                continue;
            }
            b.delete(s);
            V v = deserialize(bytes, vs);
            merged = merged == null ? v : combiner.combine(merged, v);
        }
        if (merged != null) {
            byte[] tb = getBytes(t);
            if (tb != null) {
                merged = combiner.combine(merged, deserialize(tb, vs));
            }
            b.put(t, serialize(merged, vs));
            b.apply();
        }
    }
}
