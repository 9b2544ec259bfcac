package io.statesrv.flink;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.runtime.state.internal.InternalValueState;

/** ValueState: one RAW entry holding the serialized value; null deletes it. */
final class StatesrvValueState<K, N, V> extends AbstractStatesrvState<K, N, V>
        implements InternalValueState<K, N, V> {
    private final V defaultValue;

    StatesrvValueState(
            StatesrvKeyedStateBackend<K> backend,
            StatesrvKeyedStateBackend.StateInfo info,
            V defaultValue) {
        super(backend, info);
        this.defaultValue = defaultValue;
    }

    @Override
    public V value() {
        byte[] b = getBytes(current());
        if (b == null) {
            return defaultValue == null ? null : getValueSerializer().copy(defaultValue);
        }
        return deserialize(b, getValueSerializer());
    }

    @Override
    public void update(V value) {
        if (value == null) {
            clear();
            return;
        }
        backend.db().put(current(), serialize(value, getValueSerializer()));
    }

    /** For {@link ValueState}'s javadoc: nothing else to say. */
    @Override
    public String toString() {
        return "StatesrvValueState[" + info.flinkName + "]";
    }
}
