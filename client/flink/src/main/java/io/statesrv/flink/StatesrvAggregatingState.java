package io.statesrv.flink;

import io.statesrv.client.StateKey;
import java.util.Collection;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalAggregatingState;

/** AggregatingState: one RAW entry holding the accumulator, updated on the task. */
final class StatesrvAggregatingState<K, N, IN, ACC, OUT> extends AbstractStatesrvState<K, N, ACC>
        implements InternalAggregatingState<K, N, IN, ACC, OUT> {
    private final AggregateFunction<IN, ACC, OUT> fn;

    StatesrvAggregatingState(
            StatesrvKeyedStateBackend<K> backend,
            StatesrvKeyedStateBackend.StateInfo info,
            AggregateFunction<IN, ACC, OUT> fn) {
        super(backend, info);
        this.fn = fn;
    }

    @Override
    public OUT get() {
        ACC acc = getInternal();
        return acc == null ? null : fn.getResult(acc);
    }

    @Override
    public ACC getInternal() {
        byte[] b = getBytes(current());
        return b == null ? null : deserialize(b, getValueSerializer());
    }

    @Override
    public void updateInternal(ACC acc) {
        if (acc == null) {
            clear();
        } else {
            backend.db().put(current(), serialize(acc, getValueSerializer()));
        }
    }

    @Override
    public void add(IN value) {
        ACC acc = getInternal();
        updateInternal(fn.add(value, acc == null ? fn.createAccumulator() : acc));
    }

    @Override
    public void mergeNamespaces(N target, Collection<N> sources) {
        if (sources == null || sources.isEmpty()) {
            return;
        }
        TypeSerializer<N> nss = getNamespaceSerializer();
        TypeSerializer<ACC> vs = getValueSerializer();
        StateKey t = entry(backend.namespacePrefix(target, nss));
        StatesrvKeyedStateBackend<K>.Writes b = backend.writes();
        ACC merged = null;
        for (N source : sources) {
            StateKey s = entry(backend.namespacePrefix(source, nss));
            byte[] bytes = s.equals(t) ? null : getBytes(s);
            if (bytes == null) {
                continue;
            }
            b.delete(s);
            ACC a = deserialize(bytes, vs);
            merged = merged == null ? a : fn.merge(merged, a);
        }
        if (merged != null) {
            byte[] tb = getBytes(t);
            if (tb != null) {
                merged = fn.merge(merged, deserialize(tb, vs));
            }
            b.put(t, serialize(merged, vs));
            b.apply();
        }
    }
}
