package io.statesrv.flink;

import static org.apache.flink.configuration.ConfigOptions.key;

import java.time.Duration;
import java.util.List;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.MemorySize;

/**
 * Configuration options of the {@link StatesrvStateBackend}, as {@code state.backend.statesrv.*}
 * keys in the Flink configuration (or set on the backend in code). Every option has a default; the
 * one that usually needs setting is {@link #STATESRVD_BINARY} when {@code statesrvd} is not on the
 * {@code PATH}.
 */
public final class StatesrvOptions {
    private StatesrvOptions() {}

    /** The statesrvd executable each keyed backend starts as its child process. */
    public static final ConfigOption<String> STATESRVD_BINARY =
            key("state.backend.statesrv.binary")
                    .stringType()
                    .defaultValue("statesrvd")
                    .withDescription(
                            "The statesrvd executable: an absolute path, or a name looked up on"
                                    + " the TaskManager's PATH. Each keyed state backend (one per"
                                    + " keyed operator subtask) starts one statesrvd as a child"
                                    + " process and stops it when the backend is disposed.");

    /** Where the statesrvd of a backend keeps its socket, data, checkpoints and log. */
    public static final ConfigOption<List<String>> LOCAL_DIRECTORIES =
            key("state.backend.statesrv.localdir")
                    .stringType()
                    .asList()
                    .noDefaultValue()
                    .withDescription(
                            "Local directories (separated by ';') under"
                                    + " which each backend's statesrvd gets a working directory:"
                                    + " its Unix socket, LMDB data directory, local checkpoints,"
                                    + " restore area and log. One is picked at random per backend."
                                    + " Unset: the TaskManager's temporary directories"
                                    + " (io.tmp.dirs), as RocksDB's backend does. The working"
                                    + " directory is removed when the backend is disposed.");

    /** How long a statesrvd may take to start and listen. */
    public static final ConfigOption<Duration> START_TIMEOUT =
            key("state.backend.statesrv.start-timeout")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(30))
                    .withDescription(
                            "How long the backend waits for its statesrvd to start (and, when"
                                    + " restoring, to open its store) before it fails the task.");

    /** The client's bound on one state access. */
    public static final ConfigOption<Duration> REQUEST_TIMEOUT =
            key("state.backend.statesrv.request-timeout")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(60))
                    .withDescription(
                            "The longest one state access (a request to the local statesrvd) may"
                                    + " wait for its reply; past it the connection is failed and"
                                    + " the task fails over. It bounds a hung server, never a slow"
                                    + " one under normal load.");

    /** The bound on a local checkpoint or restore. */
    public static final ConfigOption<Duration> CHECKPOINT_TIMEOUT =
            key("state.backend.statesrv.checkpoint-timeout")
                    .durationType()
                    .defaultValue(Duration.ofMinutes(10))
                    .withDescription(
                            "The longest the local statesrvd may take to write a checkpoint (the"
                                    + " synchronous part of Flink's snapshot) or to restore one.");

    /** How many local checkpoints statesrvd itself keeps at most. */
    public static final ConfigOption<Integer> LOCAL_CHECKPOINTS_RETAINED =
            key("state.backend.statesrv.local-checkpoints-retained")
                    .intType()
                    .defaultValue(3)
                    .withDescription(
                            "statesrvd's checkpoint_retain: the most local checkpoints kept on"
                                    + " disk. The backend deletes a local checkpoint itself once a"
                                    + " later Flink checkpoint completes or when its own is"
                                    + " aborted; this is the bound if notifications are lost."
                                    + " Must be at least 2 (one being uploaded, one being"
                                    + " written).");

    /** The initial LMDB map of each statesrvd. */
    public static final ConfigOption<MemorySize> MAP_SIZE =
            key("state.backend.statesrv.map-size")
                    .memoryType()
                    .defaultValue(MemorySize.parse("64mb"))
                    .withDescription(
                            "statesrvd's initial LMDB map size (map_size); the map doubles as it"
                                    + " fills, up to state.backend.statesrv.map-size-max.");

    /** The largest LMDB map of each statesrvd. */
    public static final ConfigOption<MemorySize> MAP_SIZE_MAX =
            key("state.backend.statesrv.map-size-max")
                    .memoryType()
                    .defaultValue(MemorySize.parse("64gb"))
                    .withDescription(
                            "statesrvd's map_size_max: the most state one backend may hold on"
                                    + " disk; past it writes fail with NO_SPACE and the task fails.");

    /** The largest value statesrvd accepts. */
    public static final ConfigOption<MemorySize> MAX_VALUE_SIZE =
            key("state.backend.statesrv.max-value-size")
                    .memoryType()
                    .defaultValue(MemorySize.parse("4mb"))
                    .withDescription(
                            "statesrvd's max_value_size: the largest serialized value (a whole"
                                    + " ListState included). The frame limit is set 1 MiB above"
                                    + " it.");

    /** Most named states per backend. */
    public static final ConfigOption<Boolean> WRITE_BEHIND =
            key("state.backend.statesrv.write-behind")
                    .booleanType()
                    .defaultValue(true)
                    .withDescription(
                            "Send state writes (update, add, put, remove, clear) without waiting"
                                    + " for their reply: the task goes on while the reply travels,"
                                    + " and a later read still sees the write (statesrvd answers"
                                    + " a connection in order). A failed write fails the task at"
                                    + " its next read or checkpoint instead of at the call, before"
                                    + " any checkpoint could miss it. false: every write waits.");

    public static final ConfigOption<Integer> READ_CACHE_ENTRIES =
            key("state.backend.statesrv.read-cache-entries")
                    .intType()
                    .defaultValue(64)
                    .withDescription(
                            "How many entries (the last read or written) the backend keeps to"
                                    + " answer reads without a round trip to statesrvd: a state"
                                    + " read twice within one element is read once. Coherent"
                                    + " because each backend's statesrvd is its own; 0: none.");

    public static final ConfigOption<Integer> MAX_STATES =
            key("state.backend.statesrv.max-states")
                    .intType()
                    .defaultValue(256)
                    .withDescription(
                            "statesrvd's max_states: the most state descriptors one keyed"
                                    + " operator may register.");

    /** Extra statesrvd config lines. */
    public static final ConfigOption<List<String>> EXTRA_CONFIG =
            key("state.backend.statesrv.server-config")
                    .stringType()
                    .asList()
                    .defaultValues()
                    .withDescription(
                            "Extra lines for the statesrvd config file, as 'name = value'"
                                    + " separated by ';' (see statesrvd's conf/statesrvd.conf),"
                                    + " e.g. 'checkpoint_compression = none'. The backend's own"
                                    + " settings (sockets, directories, key_groups) cannot be"
                                    + " overridden this way.");
}
