package io.statesrv.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statesrv.client.StatesrvException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.IntSerializer;
import org.apache.flink.api.common.typeutils.base.array.BytePrimitiveArraySerializer;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.CheckpointStorageLocationReference;
import org.apache.flink.runtime.state.CheckpointableKeyedStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.KeyGroupsStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SharedStateRegistryImpl;
import org.apache.flink.runtime.state.StateBackendTestBase;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.runtime.state.storage.JobManagerCheckpointStorage;
import org.apache.flink.streaming.api.operators.StreamOperatorStateHandler;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameter;
import org.apache.flink.testutils.junit.extensions.parameterized.ParameterizedTestExtension;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameters;
import org.apache.flink.util.IOUtils;
import org.apache.flink.util.function.SupplierWithException;
import org.junit.jupiter.api.TestTemplate;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink's own keyed-state backend suite ({@code StateBackendTestBase} from flink-runtime's
 * test-jar) against the statesrv backend, with real statesrvd child processes, once with the
 * JobManager's in-memory checkpoint storage and once with files, as Flink runs it for its HashMap
 * and RocksDB backends. Cases that cannot hold for this backend are overridden below with the
 * reason.
 */
@ExtendWith(ParameterizedTestExtension.class)
class StatesrvStateBackendTest extends StateBackendTestBase<StatesrvStateBackend> {
    @TempDir private static Path tempFolder;

    @Parameter public SupplierWithException<CheckpointStorage, IOException> storageSupplier;

    @Parameters(name = "storage={0}")
    public static List<Object[]> modes() {
        return Arrays.asList(
                new Object[][] {
                    {
                        (SupplierWithException<CheckpointStorage, IOException>)
                                JobManagerCheckpointStorage::new
                    },
                    {
                        (SupplierWithException<CheckpointStorage, IOException>)
                                () ->
                                        new FileSystemCheckpointStorage(
                                                Files.createTempDirectory(tempFolder, "chk")
                                                        .toUri()
                                                        .toString())
                    }
                });
    }

    static String statesrvd() {
        String p = System.getProperty("statesrvd");
        if (p == null) {
            throw new IllegalStateException("system property statesrvd (make test-flink sets it)");
        }
        return p;
    }

    @Override
    protected ConfigurableStateBackend getStateBackend() throws IOException {
        return new StatesrvStateBackend()
                .setStatesrvdBinary(statesrvd())
                .setLocalDirectories(Files.createTempDirectory(tempFolder, "sv").toString())
                .configure(new Configuration(), getClass().getClassLoader());
    }

    @Override
    protected CheckpointStorage getCheckpointStorage() throws Exception {
        return storageSupplier.get();
    }

    @Override
    protected boolean isSerializerPresenceRequiredOnRestore() {
        return false;
    }

    @Override
    protected boolean supportsAsynchronousSnapshots() {
        return true;
    }

    /** Every read deserializes a fresh object, as with RocksDB (whose test says the same). */
    @Override
    protected boolean isSafeToReuseKVState() {
        return true;
    }

    /**
     * Write-behind (the default): a write that statesrvd refuses (a value over max_value_size, 4
     * MiB, still under the frame limit) is not lost silently: the next read fails, and so does
     * every later access and the next checkpoint, so the task fails over before a checkpoint could
     * miss the write.
     */
    @TestTemplate
    void aRefusedWriteBehindFailsTheNextReadAndCheckpoint() throws Exception {
        CheckpointableKeyedStateBackend<Integer> b = createKeyedBackend(IntSerializer.INSTANCE);
        try {
            ValueState<byte[]> s =
                    b.getPartitionedState(
                            VoidNamespace.INSTANCE,
                            VoidNamespaceSerializer.INSTANCE,
                            new ValueStateDescriptor<>("v", BytePrimitiveArraySerializer.INSTANCE));
            b.setCurrentKey(1);
            s.update(new byte[10]);
            assertThat(s.value()).hasSize(10);
            s.update(new byte[4 * 1024 * 1024 + 1000]); // sent, not waited for
            assertThatThrownBy(s::value)
                    .isInstanceOf(StatesrvException.class)
                    .hasMessageContaining("a state write sent earlier failed");
            b.setCurrentKey(2);
            assertThatThrownBy(() -> s.update(new byte[1]))
                    .hasMessageContaining("an earlier state write failed");
            assertThatThrownBy(
                            () ->
                                    b.snapshot(
                                            1,
                                            1,
                                            createStreamFactory(),
                                            CheckpointOptions.forCheckpointWithDefaultLocation()))
                    .hasMessageContaining("an earlier state write failed");
        } finally {
            IOUtils.closeQuietly(b);
            b.dispose();
        }
    }

    /**
     * A canonical savepoint (Flink's full-snapshot writer over this backend's scans) of a backend
     * with a state that was registered but never written (statesrvd has no such state: a scan of it
     * is NOT_FOUND) and a MapState read before any write, restored into a new backend.
     */
    @TestTemplate
    void aCanonicalSavepointWithAStateNeverWrittenRestores() throws Exception {
        ValueStateDescriptor<Long> written = new ValueStateDescriptor<>("written", Long.class);
        ValueStateDescriptor<Long> never = new ValueStateDescriptor<>("never", Long.class);
        MapStateDescriptor<Long, Long> map =
                new MapStateDescriptor<>("map", Long.class, Long.class);
        KeyedStateHandle handle;
        CheckpointableKeyedStateBackend<Integer> b = createKeyedBackend(IntSerializer.INSTANCE);
        try {
            ValueState<Long> w =
                    b.getPartitionedState(
                            VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, written);
            b.getPartitionedState(VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, never);
            MapState<Long, Long> m =
                    b.getPartitionedState(
                            VoidNamespace.INSTANCE, VoidNamespaceSerializer.INSTANCE, map);
            b.setCurrentKey(7);
            assertThat(m.isEmpty()).isTrue();
            assertThat(m.entries()).isEmpty();
            w.update(42L);
            handle =
                    runSnapshot(
                            StreamOperatorStateHandler.prepareCanonicalSavepoint(
                                            b, new CloseableRegistry())
                                    .snapshot(
                                            1,
                                            1,
                                            createStreamFactory(),
                                            CheckpointOptions.forConfig(
                                                    SavepointType.savepoint(
                                                            SavepointFormatType.CANONICAL),
                                                    CheckpointStorageLocationReference.getDefault(),
                                                    true,
                                                    false,
                                                    0)),
                            new SharedStateRegistryImpl());
        } finally {
            IOUtils.closeQuietly(b);
            b.dispose();
        }
        assertThat(handle).isInstanceOf(KeyGroupsStateHandle.class);
        CheckpointableKeyedStateBackend<Integer> r =
                restoreKeyedBackend(IntSerializer.INSTANCE, handle);
        try {
            r.setCurrentKey(7);
            assertThat(
                            r.getPartitionedState(
                                            VoidNamespace.INSTANCE,
                                            VoidNamespaceSerializer.INSTANCE,
                                            written)
                                    .value())
                    .isEqualTo(42L);
            assertThat(
                            r.getPartitionedState(
                                            VoidNamespace.INSTANCE,
                                            VoidNamespaceSerializer.INSTANCE,
                                            never)
                                    .value())
                    .isNull();
        } finally {
            IOUtils.closeQuietly(r);
            r.dispose();
        }
    }
}
