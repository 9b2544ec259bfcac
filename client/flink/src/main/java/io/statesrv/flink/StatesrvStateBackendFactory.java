package io.statesrv.flink;

import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * Creates a {@link StatesrvStateBackend} from the configuration: {@code state.backend.type:
 * io.statesrv.flink.StatesrvStateBackendFactory}, with the {@link StatesrvOptions} keys.
 */
@PublicEvolving
public final class StatesrvStateBackendFactory
        implements StateBackendFactory<StatesrvStateBackend> {
    @Override
    public StatesrvStateBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new StatesrvStateBackend().configure(config, classLoader);
    }
}
