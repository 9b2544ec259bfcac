package io.statesrv.flink;

import io.statesrv.client.StateKey;
import io.statesrv.client.Value;
import io.statesrv.client.Values;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.runtime.state.internal.InternalListState;
import org.apache.flink.util.Preconditions;

/**
 * ListState: one statesrvd LIST entry, one element per serialized Flink element; {@code add} is a
 * server-side APPEND (no read), {@code get} reads the list once.
 */
final class StatesrvListState<K, N, V> extends AbstractStatesrvState<K, N, List<V>>
        implements InternalListState<K, N, V> {

    StatesrvListState(
            StatesrvKeyedStateBackend<K> backend, StatesrvKeyedStateBackend.StateInfo info) {
        super(backend, info);
    }

    private TypeSerializer<V> elementSerializer() {
        return ((ListSerializer<V>) getValueSerializer()).getElementSerializer();
    }

    @Override
    public Iterable<V> get() {
        return getInternal();
    }

    @Override
    public List<V> getInternal() {
        return read(current());
    }

    private List<V> read(StateKey k) {
        byte[] b = getBytes(k);
        if (b == null) {
            return null;
        }
        TypeSerializer<V> s = elementSerializer();
        List<byte[]> elements = Values.decodeList(b);
        List<V> out = new ArrayList<>(elements.size());
        for (byte[] e : elements) {
            out.add(deserialize(e, s));
        }
        return out;
    }

    @Override
    public void add(V value) {
        Preconditions.checkNotNull(value, "You cannot add null to a ListState.");
        backend.db().append(current(), serialize(value, elementSerializer()));
    }

    @Override
    public void addAll(List<V> values) {
        Preconditions.checkNotNull(values, "List of values to add cannot be null.");
        if (values.isEmpty()) {
            return;
        }
        List<byte[]> elements = serializeAll(values);
        StateKey k = current();
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        for (byte[] e : elements) {
            b.append(k, e);
        }
        b.apply();
    }

    @Override
    public void update(List<V> values) {
        Preconditions.checkNotNull(values, "List of values to add cannot be null.");
        updateInternal(values);
    }

    @Override
    public void updateInternal(List<V> values) {
        if (values == null || values.isEmpty()) {
            clear();
            return;
        }
        backend.db().put(current(), Value.list(serializeAll(values)));
    }

    /** Every element serialized, or NPE before anything is written if one is null. */
    private List<byte[]> serializeAll(List<V> values) {
        TypeSerializer<V> s = elementSerializer();
        List<byte[]> out = new ArrayList<>(values.size());
        for (V v : values) {
            Preconditions.checkNotNull(v, "You cannot add null to a ListState.");
            out.add(serialize(v, s));
        }
        return out;
    }

    @Override
    public void mergeNamespaces(N target, Collection<N> sources) {
        if (sources == null || sources.isEmpty()) {
            return;
        }
        TypeSerializer<N> nss = getNamespaceSerializer();
        StateKey t = entry(backend.namespacePrefix(target, nss));
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        for (N source : sources) {
            StateKey s = entry(backend.namespacePrefix(source, nss));
            if (s.equals(t)) {
                continue;
            }
            byte[] bytes = getBytes(s);
            if (bytes == null) {
                continue;
            }
            b.delete(s);
            for (byte[] e : Values.decodeList(bytes)) {
                b.append(t, e);
            }
        }
        if (b.size() > 0) {
            b.apply();
        }
    }

    @Override
    public byte[] getSerializedValue(
            byte[] serializedKeyAndNamespace,
            TypeSerializer<K> safeKeySerializer,
            TypeSerializer<N> safeNamespaceSerializer,
            TypeSerializer<List<V>> safeValueSerializer)
            throws Exception {
        byte[] b =
                getForQuery(serializedKeyAndNamespace, safeKeySerializer, safeNamespaceSerializer);
        if (b == null) {
            return null;
        }
        // Flink's queryable-state list format: the elements separated by one delimiter byte.
        ByteArrayOutputStream o = new ByteArrayOutputStream(b.length);
        boolean first = true;
        for (byte[] e : Values.decodeList(b)) {
            if (!first) {
                o.write(',');
            }
            o.write(e, 0, e.length);
            first = false;
        }
        return o.toByteArray();
    }
}
