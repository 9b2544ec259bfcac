package io.statesrv.flink;

import io.statesrv.client.RestoreResult;
import io.statesrv.client.StatesrvClient;
import io.statesrv.client.StatesrvConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataInputViewStreamWrapper;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.BackendBuildingException;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.InternalKeyContextImpl;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedBackendSerializationProxy;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.RegisteredKeyValueStateBackendMetaInfo;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.StateSerializerProvider;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSetFactory;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueSnapshotRestoreWrapper;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.util.IOUtils;
import org.apache.flink.util.StateMigrationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts the backend's statesrvd, connects, and restores it when Flink hands over state: every
 * handle's files are downloaded into the server's restore root, then one statesrvd {@code restore}
 * merges them, taking only this subtask's key-group range (so 4 old subtasks → 2 new ones, or 2 →
 * 3, is one request per new subtask). The handles' meta data restore the states' registrations,
 * checked against the new serializers when the operator asks for each state.
 */
final class StatesrvKeyedStateBackendBuilder<K> {
    private static final Logger LOG =
            LoggerFactory.getLogger(StatesrvKeyedStateBackendBuilder.class);

    private final StateBackend.KeyedStateBackendParameters<K> p;
    private final String binary;
    private final Path workDir;
    private final StatesrvProcess.StatesrvConfigValues cfg;
    private final Duration startTimeout;
    private final Duration requestTimeout;
    private final Duration checkpointTimeout;
    private final boolean writeBehind;
    private final int readCacheEntries;
    private final LatencyTrackingStateConfig latencyTracking;

    StatesrvKeyedStateBackendBuilder(
            StateBackend.KeyedStateBackendParameters<K> p,
            String binary,
            Path workDir,
            StatesrvProcess.StatesrvConfigValues cfg,
            Duration startTimeout,
            Duration requestTimeout,
            Duration checkpointTimeout,
            boolean writeBehind,
            int readCacheEntries,
            LatencyTrackingStateConfig latencyTracking) {
        this.p = p;
        this.binary = binary;
        this.workDir = workDir;
        this.cfg = cfg;
        this.startTimeout = startTimeout;
        this.requestTimeout = requestTimeout;
        this.checkpointTimeout = checkpointTimeout;
        this.writeBehind = writeBehind;
        this.readCacheEntries = readCacheEntries;
        this.latencyTracking = latencyTracking;
    }

    StatesrvKeyedStateBackend<K> build() throws BackendBuildingException {
        int keyGroups = p.getNumberOfKeyGroups();
        if (keyGroups < 1 || keyGroups > 32768) {
            throw new BackendBuildingException(
                    "statesrvd takes 1..32768 key groups; the job's max parallelism is "
                            + keyGroups);
        }
        CloseableRegistry cancelRegistry = new CloseableRegistry();
        StatesrvProcess server = null;
        StatesrvClient client = null;
        try {
            server = StatesrvProcess.start(binary, workDir, keyGroups, cfg, startTimeout);
            client =
                    StatesrvClient.connect(
                            StatesrvConfig.builder()
                                    .address(server.address())
                                    .clientName("flink " + p.getOperatorIdentifier())
                                    .connectTimeout(startTimeout)
                                    .ioTimeout(requestTimeout)
                                    .jobTimeout(checkpointTimeout)
                                    .build());
            if (client.info().keyGroups() != keyGroups) {
                throw new BackendBuildingException(
                        "statesrvd serves "
                                + client.info().keyGroups()
                                + " key groups, the job's max parallelism is "
                                + keyGroups
                                + ": they must be equal");
            }
            StateSerializerProvider<K> keySerializer =
                    StateSerializerProvider.fromNewRegisteredSerializer(p.getKeySerializer());
            LinkedHashMap<String, StatesrvKeyedStateBackend.StateInfo> states =
                    new LinkedHashMap<>();
            Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues = new LinkedHashMap<>();
            HeapPriorityQueueSetFactory queueFactory =
                    new HeapPriorityQueueSetFactory(p.getKeyGroupRange(), keyGroups, 128);
            restore(server, client, keySerializer, states, queues, queueFactory, cancelRegistry);
            ClassLoader cl = p.getEnv().getUserCodeClassLoader().asClassLoader();
            return new StatesrvKeyedStateBackend<>(
                    p.getKvStateRegistry(),
                    keySerializer.currentSchemaSerializer(),
                    cl,
                    p.getEnv().getExecutionConfig(),
                    p.getTtlTimeProvider(),
                    latencyTracking,
                    cancelRegistry,
                    AbstractStateBackend.getCompressionDecorator(p.getEnv().getExecutionConfig()),
                    new InternalKeyContextImpl<>(p.getKeyGroupRange(), keyGroups),
                    server,
                    client,
                    states,
                    queues,
                    queueFactory,
                    writeBehind,
                    readCacheEntries);
        } catch (Exception e) {
            String log = server == null ? "" : "\nstatesrvd log:\n" + server.logTail();
            IOUtils.closeQuietly(cancelRegistry);
            if (client != null) {
                client.close();
            }
            if (server != null) {
                server.close();
            }
            if (e instanceof BackendBuildingException b) {
                throw b;
            }
            throw new BackendBuildingException(
                    "Failed to build the statesrv keyed state backend: " + e + log, e);
        }
    }

    private void restore(
            StatesrvProcess server,
            StatesrvClient client,
            StateSerializerProvider<K> keySerializer,
            LinkedHashMap<String, StatesrvKeyedStateBackend.StateInfo> states,
            Map<String, HeapPriorityQueueSnapshotRestoreWrapper<?>> queues,
            HeapPriorityQueueSetFactory queueFactory,
            CloseableRegistry cancelRegistry)
            throws Exception {
        List<IncrementalRemoteKeyedStateHandle> handles = new ArrayList<>();
        List<KeyedStateHandle> canonical = new ArrayList<>();
        for (KeyedStateHandle h : p.getStateHandles()) {
            if (h == null) {
                continue;
            }
            if (h instanceof IncrementalRemoteKeyedStateHandle r) {
                handles.add(r);
            } else if (h instanceof KeyGroupsStateHandle) {
                canonical.add(h);
            } else {
                throw new BackendBuildingException(
                        "The statesrv backend restores its own checkpoints and native savepoints"
                                + " and Flink's canonical format (canonical savepoints, the heap"
                                + " backend's checkpoints), not a "
                                + h.getClass().getSimpleName()
                                + " (another backend's native checkpoint or savepoint).");
            }
        }
        if (!handles.isEmpty() && !canonical.isEmpty()) {
            throw new BackendBuildingException(
                    "The statesrv backend was handed both its own checkpoints and canonical"
                            + " snapshots to restore one subtask from: "
                            + p.getStateHandles());
        }
        long start = System.nanoTime();
        if (!canonical.isEmpty()) {
            StatesrvCanonicalRestore<K> r =
                    new StatesrvCanonicalRestore<>(
                            client,
                            p.getKeyGroupRange(),
                            p.getNumberOfKeyGroups(),
                            p.getEnv().getUserCodeClassLoader().asClassLoader(),
                            keySerializer,
                            queueFactory,
                            states,
                            queues);
            r.restore(canonical);
            LOG.info(
                    "restored {} entries in {} states and {} timers, key groups {}, from {}"
                            + " canonical snapshot(s) in {} ms",
                    r.entries(),
                    states.size(),
                    r.timers(),
                    p.getKeyGroupRange(),
                    canonical.size(),
                    (System.nanoTime() - start) / 1_000_000);
            return;
        }
        if (handles.isEmpty()) {
            return;
        }
        boolean keyChecked = false;
        List<String> sources = new ArrayList<>();
        int n = 0;
        for (IncrementalRemoteKeyedStateHandle h : handles) {
            KeyedBackendSerializationProxy<K> proxy = readMeta(h.getMetaDataStateHandle());
            if (!keyChecked) {
                TypeSerializer<K> current = keySerializer.currentSchemaSerializer();
                TypeSerializerSchemaCompatibility<K> c =
                        keySerializer.setPreviousSerializerSnapshotForRestoredState(
                                proxy.getKeySerializerSnapshot());
                if (c.isCompatibleAfterMigration() || c.isIncompatible()) {
                    throw new StateMigrationException(
                            "The new key serializer ("
                                    + current
                                    + ") must be compatible with the previous key serializer ("
                                    + keySerializer.previousSchemaSerializer()
                                    + ").");
                }
                keyChecked = true;
            }
            for (StateMetaInfoSnapshot s : proxy.getStateMetaInfoSnapshots()) {
                if (s.getBackendStateType() != StateMetaInfoSnapshot.BackendStateType.KEY_VALUE
                        || states.containsKey(s.getName())) {
                    continue;
                }
                states.put(
                        s.getName(),
                        new StatesrvKeyedStateBackend.StateInfo(
                                s.getName(), new RegisteredKeyValueStateBackendMetaInfo<>(s)));
            }
            Path dir =
                    server.restoreDir()
                            .resolve(Integer.toString(n++))
                            .resolve("chk-" + localCheckpointId(h));
            Files.createDirectories(dir);
            // The MANIFEST into chk-<id>/, the chain's data files (chk-<k>/data) beside it, where
            // the MANIFEST names them (an older handle's own "data" lands in chk-<id>/).
            for (HandleAndLocalPath f : h.getPrivateState()) {
                download(f.getHandle(), target(dir, f.getLocalPath()), cancelRegistry);
            }
            for (HandleAndLocalPath f : h.getSharedState()) {
                download(f.getHandle(), target(dir, f.getLocalPath()), cancelRegistry);
            }
            sources.add(dir.toAbsolutePath().toString());
        }
        KeyGroupRange r = p.getKeyGroupRange();
        RestoreResult res =
                new StatesrvDb(client).restore(sources, r.getStartKeyGroup(), r.getEndKeyGroup());
        for (int i = 0; i < n; i++) {
            StatesrvProcess.deleteQuietly(server.restoreDir().resolve(Integer.toString(i)));
        }
        LOG.info(
                "restored {} entries in {} states, key groups {}-{}, from {} checkpoint(s) in {} ms",
                res.entries(),
                res.states(),
                res.kgFirst(),
                res.kgLast(),
                handles.size(),
                (System.nanoTime() - start) / 1_000_000);
    }

    private KeyedBackendSerializationProxy<K> readMeta(StreamStateHandle h) throws IOException {
        ClassLoader cl = p.getEnv().getUserCodeClassLoader().asClassLoader();
        KeyedBackendSerializationProxy<K> proxy = new KeyedBackendSerializationProxy<>(cl);
        try (InputStream in = h.openInputStream()) {
            proxy.read(new DataInputViewStreamWrapper(in));
        }
        return proxy;
    }

    /**
     * The statesrvd checkpoint a handle holds: the newest of its chain's data files ({@code
     * chk-K/data}); a handle of before incremental checkpoints (its files "MANIFEST" and "data")
     * was uploaded from the directory named after Flink's checkpoint id.
     */
    static long localCheckpointId(IncrementalRemoteKeyedStateHandle h) {
        long id = -1;
        for (List<HandleAndLocalPath> l : List.of(h.getSharedState(), h.getPrivateState())) {
            for (HandleAndLocalPath f : l) {
                String p = f.getLocalPath();
                if (p.matches("chk-[1-9][0-9]{0,18}/data")) {
                    id = Math.max(id, Long.parseLong(p.substring(4, p.length() - 5)));
                }
            }
        }
        return id >= 0 ? id : h.getCheckpointId();
    }

    /**
     * Where a file of a handle goes: "chk-K/data" beside the checkpoint's directory, a plain name
     * into it. Anything else (a path that would leave the restore area) is refused.
     */
    static Path target(Path dir, String localPath) throws IOException {
        if (localPath.matches("chk-[1-9][0-9]{0,18}/data")) {
            Path t = dir.getParent().resolve(localPath);
            Files.createDirectories(t.getParent());
            return t;
        }
        if (localPath.matches("[A-Za-z0-9_.-]{1,64}") && !localPath.startsWith(".")) {
            return dir.resolve(localPath);
        }
        throw new IOException("a checkpoint handle names a file " + localPath);
    }

    private static void download(StreamStateHandle h, Path target, CloseableRegistry registry)
            throws IOException {
        try (InputStream in = h.openInputStream();
                OutputStream out = Files.newOutputStream(target)) {
            registry.registerCloseable(in);
            in.transferTo(out);
            registry.unregisterCloseable(in);
        }
    }
}
