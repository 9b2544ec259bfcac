package io.statesrv.flink;

import io.statesrv.client.CheckpointInfo;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;
import javax.annotation.Nonnull;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataOutputViewStreamWrapper;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.state.CheckpointStateOutputStream;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.CheckpointedStateScope;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyedBackendSerializationProxy;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SnapshotResources;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategy;
import org.apache.flink.runtime.state.StateUtil;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;

/**
 * Flink checkpoint N as a statesrvd checkpoint, the way RocksDB's backend treats its files.
 *
 * <p><b>Synchronous part</b> (task thread, between two records): the state's meta data (key
 * serializer, each state's serializers) and a statesrvd {@code snapshot} sent on the task's own
 * connection. Every write of the task before the barrier has been acknowledged (state calls wait
 * for their reply), so the checkpoint is exactly the cut at the barrier. The reply comes when the
 * local checkpoint is complete and fsynced.
 *
 * <p><b>Asynchronous part</b> (Flink's snapshot thread): every file of the local checkpoint
 * directory (MANIFEST, data) is copied into Flink's checkpoint storage through the {@link
 * CheckpointStreamFactory}, and the meta data written as one more stream. The result is an {@link
 * IncrementalRemoteKeyedStateHandle} (a type Flink's checkpoint metadata already knows, so retained
 * checkpoints, rescaling and NO_CLAIM restores work unchanged): the backend's key-group range, the
 * files as private state (each checkpoint is a complete copy; nothing is shared between
 * checkpoints) and the meta data handle.
 */
final class StatesrvSnapshotStrategy<K>
        implements SnapshotStrategy<KeyedStateHandle, StatesrvSnapshotStrategy.Resources> {
    private static final int COPY_BUFFER = 64 * 1024;

    private final StatesrvKeyedStateBackend<K> backend;

    StatesrvSnapshotStrategy(StatesrvKeyedStateBackend<K> backend) {
        this.backend = backend;
    }

    /** What the synchronous part hands the asynchronous one. */
    static final class Resources implements SnapshotResources {
        final Path dir; // null: nothing to snapshot
        final long localId;
        final List<StateMetaInfoSnapshot> meta;

        Resources(Path dir, long localId, List<StateMetaInfoSnapshot> meta) {
            this.dir = dir;
            this.localId = localId;
            this.meta = meta;
        }

        @Override
        public void release() {
            // The local checkpoint outlives the upload: notifyCheckpointComplete/Aborted and
            // statesrvd's checkpoint_retain remove it.
        }
    }

    @Override
    public Resources syncPrepareResources(long checkpointId) throws Exception {
        if (backend.states().isEmpty()) {
            return new Resources(null, 0, Collections.emptyList());
        }
        List<StateMetaInfoSnapshot> meta = new ArrayList<>();
        for (StatesrvKeyedStateBackend.StateInfo i : backend.states().values()) {
            meta.add(i.metaInfo.snapshot());
        }
        CheckpointInfo ci = backend.db().snapshot(backend.nextLocalId(checkpointId));
        backend.recordLocalCheckpoint(checkpointId, ci.id());
        Path dir =
                ci.path()
                        .map(Path::of)
                        .orElseThrow(
                                () ->
                                        new IOException(
                                                "statesrvd answered a snapshot without its path"));
        return new Resources(dir, ci.id(), meta);
    }

    @Override
    public SnapshotResultSupplier<KeyedStateHandle> asyncSnapshot(
            Resources res,
            long checkpointId,
            long timestamp,
            @Nonnull CheckpointStreamFactory streamFactory,
            @Nonnull CheckpointOptions checkpointOptions) {
        if (res.dir == null) {
            return registry -> SnapshotResult.empty();
        }
        return registry -> upload(res, checkpointId, streamFactory, registry);
    }

    private SnapshotResult<KeyedStateHandle> upload(
            Resources res,
            long checkpointId,
            CheckpointStreamFactory streamFactory,
            CloseableRegistry registry)
            throws Exception {
        List<HandleAndLocalPath> files = new ArrayList<>();
        StreamStateHandle metaHandle = null;
        boolean ok = false;
        try {
            List<Path> paths;
            try (Stream<Path> s = Files.list(res.dir)) {
                paths = s.filter(Files::isRegularFile).sorted().toList();
            }
            long size = 0;
            for (Path p : paths) {
                StreamStateHandle h = copy(p, streamFactory, registry);
                files.add(HandleAndLocalPath.of(h, p.getFileName().toString()));
                size += h.getStateSize();
            }
            metaHandle = writeMeta(res.meta, streamFactory, registry);
            size += metaHandle.getStateSize();
            IncrementalRemoteKeyedStateHandle handle =
                    new IncrementalRemoteKeyedStateHandle(
                            backend.backendUid(),
                            backend.getKeyGroupRange(),
                            checkpointId,
                            Collections.emptyList(),
                            files,
                            metaHandle,
                            size);
            ok = true;
            return SnapshotResult.of(handle);
        } finally {
            if (!ok) {
                List<StreamStateHandle> written = new ArrayList<>();
                for (HandleAndLocalPath f : files) {
                    written.add(f.getHandle());
                }
                if (metaHandle != null) {
                    written.add(metaHandle);
                }
                StateUtil.bestEffortDiscardAllStateObjects(written);
            }
        }
    }

    private static StreamStateHandle copy(
            Path file, CheckpointStreamFactory factory, CloseableRegistry registry)
            throws IOException {
        CheckpointStateOutputStream out =
                factory.createCheckpointStateOutputStream(CheckpointedStateScope.EXCLUSIVE);
        registry.registerCloseable(out);
        try (InputStream in = Files.newInputStream(file)) {
            registry.registerCloseable(in);
            byte[] buf = new byte[COPY_BUFFER];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            registry.unregisterCloseable(in);
        }
        return finish(out, registry, file.toString());
    }

    private StreamStateHandle writeMeta(
            List<StateMetaInfoSnapshot> meta,
            CheckpointStreamFactory factory,
            CloseableRegistry registry)
            throws IOException {
        CheckpointStateOutputStream out =
                factory.createCheckpointStateOutputStream(CheckpointedStateScope.EXCLUSIVE);
        registry.registerCloseable(out);
        new KeyedBackendSerializationProxy<>(backend.getKeySerializer(), meta, false)
                .write(new DataOutputViewStreamWrapper(out));
        return finish(out, registry, "the meta data");
    }

    private static StreamStateHandle finish(
            CheckpointStateOutputStream out, CloseableRegistry registry, String what)
            throws IOException {
        if (!registry.unregisterCloseable(out)) {
            throw new IOException("snapshot cancelled while writing " + what);
        }
        StreamStateHandle h = out.closeAndGetHandle();
        if (h == null) {
            throw new IOException("the checkpoint stream gave no handle for " + what);
        }
        return h;
    }
}
