package io.statesrv.flink;

import io.statesrv.client.CheckpointInfo;
import io.statesrv.client.SnapshotOptions;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.annotation.Nonnull;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.core.memory.DataOutputViewStreamWrapper;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SnapshotType;
import org.apache.flink.runtime.checkpoint.filemerging.FileMergingSnapshotManager;
import org.apache.flink.runtime.state.CheckpointStateOutputStream;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.CheckpointedStateScope;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyedBackendSerializationProxy;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PlaceholderStreamStateHandle;
import org.apache.flink.runtime.state.SnapshotResources;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.SnapshotStrategy;
import org.apache.flink.runtime.state.StateUtil;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;

/**
 * Flink checkpoint N as a statesrvd checkpoint, the way RocksDB's backend treats its SST files.
 *
 * <p><b>Synchronous part</b> (task thread, between two records): the state's meta data (key
 * serializer, each state's serializers) and a statesrvd {@code snapshot} sent on the task's own
 * connection. Every write of the task before the barrier has been acknowledged (state calls wait
 * for their reply), so the checkpoint is exactly the cut at the barrier. The reply comes when the
 * local checkpoint is complete and fsynced. statesrvd makes it incremental where it can: a chain of
 * data files, a full one first, then one per later checkpoint with only the changes since the one
 * before (docs/checkpoint-format.md, "Version 2"); its MANIFEST names them.
 *
 * <p><b>Asynchronous part</b> (Flink's snapshot thread): the result is an {@link
 * IncrementalRemoteKeyedStateHandle} (a type Flink's checkpoint metadata already knows, so retained
 * checkpoints, rescaling and NO_CLAIM restores work unchanged): the backend's key-group range, the
 * chain's data files as <em>shared</em> state under their local path {@code chk-<id>/data}, the
 * MANIFEST as private state, and the meta data handle. A data file that the last checkpoint Flink
 * confirmed complete already uploaded is not uploaded again: the handle names it with a {@link
 * PlaceholderStreamStateHandle} of the same physical id, which Flink's shared-state registry
 * resolves to the uploaded file and counts as one more reference. So a file lives in Flink's
 * storage exactly as long as a checkpoint Flink retains names it, base files included, and the
 * registry (not this backend, not statesrvd's local retention) decides when it goes. Files of
 * checkpoints that are not confirmed are uploaded again (RocksDB's rule: only a completed
 * checkpoint's files are surely registered).
 *
 * <p>A checkpoint that may not share files with earlier ones (Flink's {@link
 * SnapshotType.SharingFilesStrategy#FORWARD}: the first checkpoint after a NO_CLAIM restore) is a
 * full statesrvd checkpoint, its one file uploaded as new shared state; one that may share nothing
 * ({@link SnapshotType.SharingFilesStrategy#NO_SHARING}: a native savepoint) is a full checkpoint
 * whose files are all private and exclusive, so it is self-contained.
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
        final List<Long> chain; // the checkpoint ids of the chain's data files, oldest first
        final Map<Long, StreamStateHandle> reusable; // uploaded data files Flink confirmed
        final SnapshotType.SharingFilesStrategy sharing;

        Resources(
                Path dir,
                long localId,
                List<StateMetaInfoSnapshot> meta,
                List<Long> chain,
                Map<Long, StreamStateHandle> reusable,
                SnapshotType.SharingFilesStrategy sharing) {
            this.dir = dir;
            this.localId = localId;
            this.meta = meta;
            this.chain = chain;
            this.reusable = reusable;
            this.sharing = sharing;
        }

        @Override
        public void release() {
            // The local checkpoint outlives the upload: notifyCheckpointComplete/Aborted and
            // statesrvd's checkpoint_retain remove it.
        }
    }

    @Override
    public Resources syncPrepareResources(long checkpointId) throws Exception {
        SnapshotType.SharingFilesStrategy sharing = backend.sharingOfNextSnapshot();
        if (backend.states().isEmpty()) {
            return new Resources(null, 0, Collections.emptyList(), List.of(), Map.of(), sharing);
        }
        List<StateMetaInfoSnapshot> meta = new ArrayList<>();
        for (StatesrvKeyedStateBackend.StateInfo i : backend.states().values()) {
            meta.add(i.metaInfo.snapshot());
        }
        boolean share = sharing == SnapshotType.SharingFilesStrategy.FORWARD_BACKWARD;
        CheckpointInfo ci =
                backend.db()
                        .snapshot(
                                SnapshotOptions.defaults()
                                        .id(backend.nextLocalId(checkpointId))
                                        .full(!share));
        backend.recordLocalCheckpoint(checkpointId, ci.id());
        Path dir =
                ci.path()
                        .map(Path::of)
                        .orElseThrow(
                                () ->
                                        new IOException(
                                                "statesrvd answered a snapshot without its path"));
        List<Long> chain = LocalManifest.chain(dir.resolve("MANIFEST"), ci.id());
        return new Resources(
                dir, ci.id(), meta, chain, share ? backend.confirmedUploads() : Map.of(), sharing);
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
        boolean noSharing = res.sharing == SnapshotType.SharingFilesStrategy.NO_SHARING;
        CheckpointedStateScope dataScope =
                noSharing ? CheckpointedStateScope.EXCLUSIVE : CheckpointedStateScope.SHARED;
        List<HandleAndLocalPath> shared = new ArrayList<>();
        List<HandleAndLocalPath> own = new ArrayList<>();
        List<StreamStateHandle> written = new ArrayList<>(); // uploaded by this snapshot
        Map<Long, StreamStateHandle> uploads = new HashMap<>(); // data file id -> its handle
        StreamStateHandle metaHandle = null;
        boolean ok = false;
        try {
            long added = 0; // bytes this checkpoint adds to Flink's storage
            Path parent = res.dir.getParent();
            for (long link : res.chain) {
                String localPath = LocalManifest.dataPath(link);
                StreamStateHandle reuse = res.reusable.get(link);
                StreamStateHandle h;
                if (reuse != null) {
                    uploads.put(link, reuse);
                    h =
                            new PlaceholderStreamStateHandle(
                                    reuse.getStreamStateHandleID(),
                                    reuse.getStateSize(),
                                    FileMergingSnapshotManager.isFileMergingHandle(reuse));
                } else {
                    h = copy(parent.resolve(localPath), dataScope, streamFactory, registry);
                    written.add(h);
                    uploads.put(link, h);
                    added += h.getStateSize();
                }
                (noSharing ? own : shared).add(HandleAndLocalPath.of(h, localPath));
            }
            StreamStateHandle manifest =
                    copy(
                            res.dir.resolve("MANIFEST"),
                            CheckpointedStateScope.EXCLUSIVE,
                            streamFactory,
                            registry);
            written.add(manifest);
            own.add(HandleAndLocalPath.of(manifest, "MANIFEST"));
            added += manifest.getStateSize();
            metaHandle = writeMeta(res.meta, streamFactory, registry);
            written.add(metaHandle);
            added += metaHandle.getStateSize();
            IncrementalRemoteKeyedStateHandle handle =
                    new IncrementalRemoteKeyedStateHandle(
                            backend.backendUid(),
                            backend.getKeyGroupRange(),
                            checkpointId,
                            shared,
                            own,
                            metaHandle,
                            added);
            if (!noSharing) {
                backend.recordUploads(checkpointId, uploads);
            }
            ok = true;
            return SnapshotResult.of(handle);
        } finally {
            if (!ok) {
                // Only what this snapshot wrote: a placeholder's file belongs to the registry.
                StateUtil.bestEffortDiscardAllStateObjects(written);
            }
        }
    }

    private static StreamStateHandle copy(
            Path file,
            CheckpointedStateScope scope,
            CheckpointStreamFactory factory,
            CloseableRegistry registry)
            throws IOException {
        CheckpointStateOutputStream out = factory.createCheckpointStateOutputStream(scope);
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
