package io.statesrv.flink;

import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.execution.Environment;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.DefaultOperatorStateBackendBuilder;
import org.apache.flink.runtime.state.OperatorStateBackend;

/**
 * A {@link org.apache.flink.runtime.state.StateBackend} that keeps keyed state in statesrvd, a
 * keyed-state server on LMDB. Each keyed backend (one per keyed operator subtask) starts its own
 * statesrvd as a child process on a Unix socket in a local directory of the TaskManager, with as
 * many key groups as the job's max parallelism; state accesses are requests to it. Checkpoints are
 * statesrvd checkpoints whose files are copied into Flink's checkpoint storage, so a job survives
 * the loss of its TaskManager and can be rescaled; see docs/flink.md.
 *
 * <p>Select it with {@code state.backend.type: io.statesrv.flink.StatesrvStateBackendFactory} (its
 * options are in {@link StatesrvOptions}) or in code with {@code env.setStateBackend(new
 * StatesrvStateBackend())}. Timers stay on the JVM heap (as with RocksDB's {@code
 * state.backend.rocksdb.timer-service.factory: HEAP}) and go into checkpoints as raw keyed state.
 * Operator state is kept on the heap, as with every Flink backend.
 *
 * <p>Savepoints come in both formats: native (statesrvd's files) and canonical (Flink's format, so
 * a job can move between this backend and RocksDB's or the heap backend).
 */
@PublicEvolving
public class StatesrvStateBackend extends AbstractStateBackend implements ConfigurableStateBackend {
    private static final long serialVersionUID = 1L;

    // Unset (null) settings take the configuration's value, then the option's default.
    private String binary;
    private String[] localDirs;
    private Duration startTimeout;
    private Duration requestTimeout;
    private Duration checkpointTimeout;
    private Integer localCheckpointsRetained;
    private Long mapSize;
    private Long mapSizeMax;
    private Long maxValueSize;
    private Integer maxStates;
    private Boolean writeBehind;
    private Integer readCacheEntries;
    private List<String> extraConfig;

    /** A backend with every option unset (the configuration or the defaults decide). */
    public StatesrvStateBackend() {}

    private StatesrvStateBackend(StatesrvStateBackend original, ReadableConfig config) {
        this.binary = pick(original.binary, config, StatesrvOptions.STATESRVD_BINARY);
        List<String> dirs =
                original.localDirs != null
                        ? List.of(original.localDirs)
                        : config.getOptional(StatesrvOptions.LOCAL_DIRECTORIES).orElse(null);
        this.localDirs = dirs == null ? null : dirs.toArray(new String[0]);
        this.startTimeout = pick(original.startTimeout, config, StatesrvOptions.START_TIMEOUT);
        this.requestTimeout =
                pick(original.requestTimeout, config, StatesrvOptions.REQUEST_TIMEOUT);
        this.checkpointTimeout =
                pick(original.checkpointTimeout, config, StatesrvOptions.CHECKPOINT_TIMEOUT);
        this.localCheckpointsRetained =
                pick(
                        original.localCheckpointsRetained,
                        config,
                        StatesrvOptions.LOCAL_CHECKPOINTS_RETAINED);
        this.mapSize =
                original.mapSize != null
                        ? original.mapSize
                        : config.get(StatesrvOptions.MAP_SIZE).getBytes();
        this.mapSizeMax =
                original.mapSizeMax != null
                        ? original.mapSizeMax
                        : config.get(StatesrvOptions.MAP_SIZE_MAX).getBytes();
        this.maxValueSize =
                original.maxValueSize != null
                        ? original.maxValueSize
                        : config.get(StatesrvOptions.MAX_VALUE_SIZE).getBytes();
        this.maxStates = pick(original.maxStates, config, StatesrvOptions.MAX_STATES);
        this.writeBehind = pick(original.writeBehind, config, StatesrvOptions.WRITE_BEHIND);
        this.readCacheEntries =
                pick(original.readCacheEntries, config, StatesrvOptions.READ_CACHE_ENTRIES);
        this.extraConfig = pick(original.extraConfig, config, StatesrvOptions.EXTRA_CONFIG);
        this.latencyTrackingConfigBuilder = original.latencyTrackingConfigBuilder.configure(config);
        if (localCheckpointsRetained < 2) {
            throw new IllegalConfigurationException(
                    StatesrvOptions.LOCAL_CHECKPOINTS_RETAINED.key()
                            + " must be at least 2, not "
                            + localCheckpointsRetained);
        }
    }

    private static <T> T pick(
            T set, ReadableConfig config, org.apache.flink.configuration.ConfigOption<T> option) {
        return set != null ? set : config.get(option);
    }

    @Override
    public StatesrvStateBackend configure(ReadableConfig config, ClassLoader classLoader) {
        return new StatesrvStateBackend(this, config);
    }

    // --- settings in code (they win over the configuration) --------------------------------

    /** The statesrvd executable ({@link StatesrvOptions#STATESRVD_BINARY}). */
    public StatesrvStateBackend setStatesrvdBinary(String path) {
        this.binary = path;
        return this;
    }

    /** Local working directories ({@link StatesrvOptions#LOCAL_DIRECTORIES}). */
    public StatesrvStateBackend setLocalDirectories(String... dirs) {
        this.localDirs = dirs.clone();
        return this;
    }

    /** {@link StatesrvOptions#REQUEST_TIMEOUT}. */
    public StatesrvStateBackend setRequestTimeout(Duration d) {
        this.requestTimeout = d;
        return this;
    }

    /** {@link StatesrvOptions#CHECKPOINT_TIMEOUT}. */
    public StatesrvStateBackend setCheckpointTimeout(Duration d) {
        this.checkpointTimeout = d;
        return this;
    }

    /** {@link StatesrvOptions#WRITE_BEHIND}. */
    public StatesrvStateBackend setWriteBehind(boolean on) {
        this.writeBehind = on;
        return this;
    }

    /** {@link StatesrvOptions#READ_CACHE_ENTRIES}. */
    public StatesrvStateBackend setReadCacheEntries(int n) {
        this.readCacheEntries = n;
        return this;
    }

    /** Extra statesrvd config lines ({@link StatesrvOptions#EXTRA_CONFIG}). */
    public StatesrvStateBackend setServerConfig(List<String> lines) {
        this.extraConfig = List.copyOf(lines);
        return this;
    }

    public String getStatesrvdBinary() {
        return binary != null ? binary : StatesrvOptions.STATESRVD_BINARY.defaultValue();
    }

    // --- StateBackend --------------------------------------------------------------------

    @Override
    public String getName() {
        return "statesrv";
    }

    @Override
    public boolean supportsNoClaimRestoreMode() {
        // Every checkpoint is a complete, independent copy of the state.
        return true;
    }

    @Override
    public boolean supportsSavepointFormat(SavepointFormatType formatType) {
        // Native: statesrvd's own files; canonical: Flink's format, readable by every backend.
        return formatType == SavepointFormatType.NATIVE
                || formatType == SavepointFormatType.CANONICAL;
    }

    @Override
    public <K> AbstractKeyedStateBackend<K> createKeyedStateBackend(
            KeyedStateBackendParameters<K> parameters) throws IOException {
        // A backend used without configure() (a test, or code that sets it directly).
        StatesrvStateBackend b =
                startTimeout == null
                        ? configure(
                                new org.apache.flink.configuration.Configuration(),
                                getClass().getClassLoader())
                        : this;
        Environment env = parameters.getEnv();
        Path workDir =
                b.pickLocalDir(env)
                        .resolve(
                                "statesrv-"
                                        + sanitize(parameters.getOperatorIdentifier())
                                        + "-"
                                        + UUID.randomUUID().toString().substring(0, 8));
        StatesrvProcess.StatesrvConfigValues cfg =
                new StatesrvProcess.StatesrvConfigValues(
                        b.localCheckpointsRetained,
                        b.mapSize,
                        b.mapSizeMax,
                        b.maxValueSize,
                        b.maxStates,
                        b.extraConfig);
        return new StatesrvKeyedStateBackendBuilder<>(
                        parameters,
                        b.binary,
                        workDir,
                        cfg,
                        b.startTimeout,
                        b.requestTimeout,
                        b.checkpointTimeout,
                        b.writeBehind,
                        b.readCacheEntries,
                        b.latencyTrackingConfigBuilder
                                .setMetricGroup(parameters.getMetricGroup())
                                .build())
                .build();
    }

    @Override
    public OperatorStateBackend createOperatorStateBackend(
            OperatorStateBackendParameters parameters) throws Exception {
        return new DefaultOperatorStateBackendBuilder(
                        parameters.getEnv().getUserCodeClassLoader().asClassLoader(),
                        parameters.getEnv().getExecutionConfig(),
                        true,
                        parameters.getStateHandles(),
                        parameters.getCancelStreamRegistry())
                .build();
    }

    private Path pickLocalDir(Environment env) {
        List<String> dirs = new ArrayList<>();
        if (localDirs != null && localDirs.length > 0) {
            dirs.addAll(List.of(localDirs));
        } else {
            for (File f : env.getIOManager().getSpillingDirectories()) {
                dirs.add(f.getPath());
            }
        }
        if (dirs.isEmpty()) {
            dirs.add(System.getProperty("java.io.tmpdir"));
        }
        return Path.of(dirs.get(ThreadLocalRandom.current().nextInt(dirs.size()))).toAbsolutePath();
    }

    /** Operator identifiers hold '(', ' ', '/' ...: keep a readable, safe file name. */
    private static String sanitize(String s) {
        String t = s.replaceAll("[^A-Za-z0-9_.-]", "_");
        return t.length() > 24 ? t.substring(0, 24) : t;
    }

    @Override
    public String toString() {
        return "StatesrvStateBackend{binary=" + getStatesrvdBinary() + "}";
    }
}
