package io.statesrv.flink;

import java.util.Collection;
import org.apache.flink.api.common.functions.ReduceFunction;
import org.apache.flink.runtime.state.internal.InternalReducingState;

/** ReducingState: one RAW entry; {@code add} reads, reduces on the task and writes back. */
final class StatesrvReducingState<K, N, V> extends AbstractStatesrvState<K, N, V>
        implements InternalReducingState<K, N, V> {
    private final ReduceFunction<V> reduce;

    StatesrvReducingState(
            StatesrvKeyedStateBackend<K> backend,
            StatesrvKeyedStateBackend.StateInfo info,
            ReduceFunction<V> reduce) {
        super(backend, info);
        this.reduce = reduce;
    }

    @Override
    public V get() {
        return getInternal();
    }

    @Override
    public V getInternal() {
        byte[] b = getBytes(current());
        return b == null ? null : deserialize(b, getValueSerializer());
    }

    @Override
    public void updateInternal(V value) {
        if (value == null) {
            clear();
        } else {
            backend.db().put(current(), serialize(value, getValueSerializer()));
        }
    }

    @Override
    public void add(V value) throws Exception {
        V old = getInternal();
        updateInternal(old == null ? value : reduce.reduce(old, value));
    }

    @Override
    public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
        mergeValues(target, sources, reduce::reduce);
    }
}
