package io.statesrv.flink;

import java.util.Collection;
import org.apache.flink.api.common.functions.AggregateFunction;
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
    public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
        mergeValues(target, sources, fn::merge);
    }
}
