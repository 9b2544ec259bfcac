package io.statesrv.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.DataInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.checkpoint.Checkpoints;
import org.apache.flink.runtime.checkpoint.OperatorState;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.checkpoint.metadata.CheckpointMetadata;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.SinkFunction;
import org.apache.flink.streaming.api.functions.source.RichParallelSourceFunction;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Whole Flink jobs on a MiniCluster with the backend chosen by configuration ({@code
 * state.backend.type: io.statesrv.flink.StatesrvStateBackendFactory}), real statesrvd processes for
 * every keyed subtask, checkpoints every 200 ms into a file checkpoint directory.
 */
class StatesrvJobTest {
    private static final int KEYS = 20;
    private static final int MAX_PARALLELISM = 128;

    @TempDir Path tmp;

    @BeforeEach
    void reset() {
        Results.clear();
        FailOnce.failed.set(false);
        FailOnce.checkpointDone.set(false);
        Src.allEmittedAndCheckpointed.set(false);
        Src.emitted.set(0);
        Src.offsetAt.clear();
        FailOnce.checkpointsDone.set(0);
    }

    private Configuration conf(Path checkpoints) {
        Configuration c = new Configuration();
        c.setString("state.backend.type", StatesrvStateBackendFactory.class.getName());
        c.setString("state.backend.statesrv.binary", StatesrvStateBackendTest.statesrvd());
        c.setString("io.tmp.dirs", tmp.resolve("tm").toString());
        c.setString("state.checkpoints.dir", checkpoints.toUri().toString());
        // Every file into the checkpoint directory (none inline in _metadata), as in production.
        c.setString("state.storage.fs.memory-threshold", "0");
        c.setString("execution.checkpointing.interval", "200 ms");
        c.setString(
                "execution.checkpointing.externalized-checkpoint-retention",
                "RETAIN_ON_CANCELLATION");
        c.setString("restart-strategy.type", "fixed-delay");
        c.setString("restart-strategy.fixed-delay.attempts", "3");
        c.setString("restart-strategy.fixed-delay.delay", "100 ms");
        // statesrvd's incremental checkpoints, with chains that grow for the whole test (by
        // default a chain's incremental files may add half the full file before a full one).
        c.setString(
                "state.backend.statesrv.server-config",
                "checkpoint_chain_ratio = 10000;checkpoint_chain_max = 1000");
        return c;
    }

    /**
     * A keyed tumbling-window sum, session windows (merging namespaces) and a per-key running count
     * in ValueState, with a task failure injected after the third completed checkpoint (so the
     * recovery restores an incremental chain: the first statesrvd checkpoint is full, later ones
     * add to it): every window result and the final counts equal a plain computation (state exactly
     * once; a window fired again after the failover carries the same value).
     */
    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void windowedAggregationSurvivesATaskFailureExactlyOnce() throws Exception {
        Files.createDirectories(tmp.resolve("tm"));
        int n = 6000;
        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.createLocalEnvironment(2, conf(tmp.resolve("chk")));
        env.setMaxParallelism(MAX_PARALLELISM);
        var input =
                env.addSource(new Src(n, Src.Mode.DATA_THEN_FINISH))
                        .setParallelism(1)
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy
                                        .<Tuple3<Integer, Long, Long>>forMonotonousTimestamps()
                                        .withTimestampAssigner((e, ts) -> e.f1))
                        .map(new FailOnce(n / 4))
                        .returns(Types.TUPLE(Types.INT, Types.LONG, Types.LONG));
        input.keyBy(e -> e.f0)
                .window(TumblingEventTimeWindows.of(Duration.ofMillis(500)))
                .reduce((a, b) -> Tuple3.of(a.f0, a.f1, a.f2 + b.f2))
                .map(e -> "tumble " + e.f0 + " " + (e.f1 / 500) + " " + e.f2)
                .addSink(new Results());
        input.keyBy(e -> e.f0)
                .window(EventTimeSessionWindows.withGap(Duration.ofMillis(300)))
                .reduce((a, b) -> Tuple3.of(a.f0, Math.min(a.f1, b.f1), a.f2 + b.f2))
                .map(e -> "session " + e.f0 + " " + e.f1 + " " + e.f2)
                .addSink(new Results());
        input.keyBy(e -> e.f0).process(new Counter()).map(s -> "count " + s).addSink(new Results());
        env.execute("statesrv windowed aggregation");

        assertThat(FailOnce.failed).as("the failure was injected").isTrue();
        Map<String, Long> tumble = new HashMap<>();
        Map<String, Long> session = new HashMap<>();
        Map<Integer, Long> lastCount = new HashMap<>();
        long[] perKey = new long[KEYS];
        for (int i = 0; i < n; i++) {
            Tuple3<Integer, Long, Long> e = Src.record(i);
            tumble.merge(e.f0 + " " + (e.f1 / 500), e.f2, Long::sum);
            perKey[e.f0] += e.f2;
        }
        // Sessions: a key's records are 20 ms apart except a 400 ms pause every 1000 records.
        Map<Integer, List<long[]>> sessions = new HashMap<>();
        for (int i = 0; i < n; i++) {
            Tuple3<Integer, Long, Long> e = Src.record(i);
            List<long[]> s = sessions.computeIfAbsent(e.f0, k -> new ArrayList<>());
            long[] last = s.isEmpty() ? null : s.get(s.size() - 1);
            if (last != null && e.f1 < last[1] + 300) {
                last[1] = e.f1;
                last[2] += e.f2;
            } else {
                s.add(new long[] {e.f1, e.f1, e.f2});
            }
        }
        sessions.forEach((k, l) -> l.forEach(s -> session.put(k + " " + s[0], s[2])));

        Map<String, Long> gotTumble = new HashMap<>();
        Map<String, Long> gotSession = new HashMap<>();
        for (String r : Results.all()) {
            String[] f = r.split(" ");
            switch (f[0]) {
                case "tumble" -> {
                    Long prev = gotTumble.put(f[1] + " " + f[2], Long.parseLong(f[3]));
                    assertThat(prev == null || prev == Long.parseLong(f[3]))
                            .as("a window fired twice with the same value: %s", r)
                            .isTrue();
                }
                case "session" -> {
                    Long prev = gotSession.put(f[1] + " " + f[2], Long.parseLong(f[3]));
                    assertThat(prev == null || prev == Long.parseLong(f[3]))
                            .as("a session fired twice with the same value: %s", r)
                            .isTrue();
                }
                case "count" -> {
                    int k = Integer.parseInt(f[1]);
                    lastCount.merge(k, Long.parseLong(f[2]), Math::max);
                }
                default -> throw new AssertionError(r);
            }
        }
        assertThat(gotTumble).isEqualTo(tumble);
        assertThat(gotSession).isEqualTo(session);
        for (int k = 0; k < KEYS; k++) {
            assertThat(lastCount.get(k)).as("count of key %d", k).isEqualTo(perKey[k]);
        }
    }

    /**
     * Rescaling from retained checkpoints: state written at parallelism 4 is restored at 2 (each
     * new subtask merges two old checkpoints' halves), probed, checkpointed again, and restored at
     * 3 (each new subtask takes a range spanning the old ones); every key's ValueState, MapState
     * and ListState survive both steps.
     */
    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void rescalesFromRetainedCheckpointsFourToTwoToThree() throws Exception {
        Files.createDirectories(tmp.resolve("tm"));
        int n = 2000;
        Path chk4 = tmp.resolve("chk4");
        Path retained4 = runUntilCheckpointed(4, n, Src.Mode.DATA_THEN_IDLE, chk4, null);
        assertThat(probes()).isEmpty();
        // Taken while the input ran through several checkpoints: each subtask's handle is a
        // chain of statesrvd files (rescaling from an incremental checkpoint).
        assertThat(keyedHandles(retained4))
                .hasSize(4)
                .allSatisfy(h -> assertThat(h.getSharedState()).hasSizeGreaterThan(1));

        Path chk2 = tmp.resolve("chk2");
        Path retained2 = runUntilCheckpointed(2, n, Src.Mode.PROBE_THEN_IDLE, chk2, retained4);
        checkProbes(n, 1);

        Results.clear();
        runUntilCheckpointed(3, n, Src.Mode.PROBE_THEN_IDLE, tmp.resolve("chk3"), retained2);
        checkProbes(n, 2);
    }

    /**
     * A checkpoint Flink retains stays restorable after later checkpoints: with 100 retained, a job
     * at parallelism 2 checkpoints through its input; the chains of its checkpoints share uploaded
     * files (each data file is in Flink's storage once, named by every later checkpoint of its
     * chain). An incremental checkpoint from the middle of the input, with at least two checkpoints
     * after it, is then restored at parallelism 2 and at 3 (2 -> 3): every key holds exactly the
     * state of the records before that checkpoint's barrier.
     */
    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void restoresAnOlderRetainedIncrementalCheckpointAndRescalesIt() throws Exception {
        Files.createDirectories(tmp.resolve("tm"));
        int n = 4000;
        Path chk = tmp.resolve("chk");
        Path latest = runUntilCheckpointed(2, n, Src.Mode.DATA_THEN_IDLE, chk, null, 100);
        List<Path> retained = retainedCheckpoints(latest.getParent());
        Map<Long, Long> offsets = new HashMap<>(Src.offsetAt);

        // Upload once: a shared file of one checkpoint is the same object in later ones.
        Map<Object, Integer> namedBy = new HashMap<>();
        int references = 0;
        for (Path p : retained) {
            for (var h : keyedHandles(p)) {
                for (var f : h.getSharedState()) {
                    namedBy.merge(f.getHandle().getStreamStateHandleID(), 1, Integer::sum);
                    references++;
                }
            }
        }
        assertThat(namedBy.values())
                .as("a file named by several checkpoints")
                .anySatisfy(v -> assertThat(v).isGreaterThan(1));
        long sharedFiles;
        try (Stream<Path> s = Files.list(latest.getParent().resolve("shared"))) {
            sharedFiles = s.count();
        }
        // Every named file is there (a checkpoint pending at the cancel may have left more).
        assertThat(sharedFiles).isGreaterThanOrEqualTo(namedBy.size());
        assertThat(namedBy.size()).isLessThan(references);

        Path pick = null;
        for (int i = 0; i + 2 < retained.size() && pick == null; i++) {
            Path p = retained.get(i);
            Long off = offsets.get(id(p));
            if (off != null
                    && off >= 2 * KEYS
                    && off < n
                    && keyedHandles(p).stream().allMatch(h -> h.getSharedState().size() > 1)) {
                pick = p;
            }
        }
        assertThat(pick)
                .as("an incremental checkpoint inside the input, two after it: %s", offsets)
                .isNotNull();
        long m = offsets.get(id(pick));

        Results.clear();
        runUntilCheckpointed(2, n, Src.Mode.PROBE_THEN_IDLE, tmp.resolve("chk-b"), pick);
        checkProbes(m, 1);
        Results.clear();
        runUntilCheckpointed(3, n, Src.Mode.PROBE_THEN_IDLE, tmp.resolve("chk-c"), pick);
        checkProbes(m, 1);
    }

    private static long id(Path checkpoint) {
        return Long.parseLong(checkpoint.getFileName().toString().substring(4));
    }

    private static List<Path> retainedCheckpoints(Path jobDir) throws Exception {
        try (Stream<Path> s = Files.list(jobDir)) {
            return s.filter(p -> p.getFileName().toString().startsWith("chk-"))
                    .filter(p -> Files.exists(p.resolve("_metadata")))
                    .sorted(Comparator.comparingLong(StatesrvJobTest::id))
                    .toList();
        }
    }

    /** The keyed state handles of a retained checkpoint, as Flink's metadata holds them. */
    private static List<IncrementalRemoteKeyedStateHandle> keyedHandles(Path checkpoint)
            throws Exception {
        CheckpointMetadata md;
        try (DataInputStream in =
                new DataInputStream(Files.newInputStream(checkpoint.resolve("_metadata")))) {
            md =
                    Checkpoints.loadCheckpointMetadata(
                            in, StatesrvJobTest.class.getClassLoader(), checkpoint.toString());
        }
        List<IncrementalRemoteKeyedStateHandle> out = new ArrayList<>();
        for (OperatorState o : md.getOperatorStates()) {
            for (OperatorSubtaskState st : o.getStates()) {
                for (KeyedStateHandle h : st.getManagedKeyedState()) {
                    assertThat(h).isInstanceOf(IncrementalRemoteKeyedStateHandle.class);
                    out.add((IncrementalRemoteKeyedStateHandle) h);
                }
            }
        }
        return out;
    }

    private static List<String> probes() {
        return Results.all().stream().filter(s -> s.startsWith("probe")).toList();
    }

    /**
     * Each key's probe answer: its count, map entries and list length after the first n records.
     */
    private static void checkProbes(long n, int probesBefore) {
        long[] perKey = new long[KEYS];
        int[] records = new int[KEYS];
        List<java.util.Set<Long>> buckets = new ArrayList<>();
        for (int k = 0; k < KEYS; k++) {
            buckets.add(new java.util.HashSet<>());
        }
        for (long i = 0; i < n; i++) {
            Tuple3<Integer, Long, Long> e = Src.record(i);
            perKey[e.f0] += e.f2;
            records[e.f0]++;
            buckets.get(e.f0).add(e.f2 % 4);
        }
        List<String> p = probes();
        assertThat(p).hasSize(KEYS);
        for (String s : p) {
            String[] f = s.split(" ");
            int k = Integer.parseInt(f[1]);
            assertThat(Long.parseLong(f[2])).as("count of key %d in %s", k, s).isEqualTo(perKey[k]);
            assertThat(Integer.parseInt(f[3]))
                    .as("map entries of %s", s)
                    .isEqualTo(buckets.get(k).size());
            assertThat(Integer.parseInt(f[4]))
                    .as("list of %s", s)
                    .isEqualTo(records[k] + probesBefore - 1);
        }
    }

    private Path runUntilCheckpointed(
            int parallelism, int n, Src.Mode mode, Path checkpoints, Path restoreFrom)
            throws Exception {
        return runUntilCheckpointed(parallelism, n, mode, checkpoints, restoreFrom, 1);
    }

    private Path runUntilCheckpointed(
            int parallelism, int n, Src.Mode mode, Path checkpoints, Path restoreFrom, int retain)
            throws Exception {
        Src.allEmittedAndCheckpointed.set(false);
        Configuration c = conf(checkpoints);
        c.setString("state.checkpoints.num-retained", Integer.toString(retain));
        if (restoreFrom != null) {
            c.setString("execution.savepoint.path", restoreFrom.toUri().toString());
        }
        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.createLocalEnvironment(parallelism, c);
        env.setMaxParallelism(MAX_PARALLELISM);
        env.addSource(new Src(n, mode))
                .uid("source")
                .setParallelism(1)
                .keyBy(e -> e.f0)
                .process(new Prober())
                .uid("prober")
                .addSink(new Results());
        JobClient job = env.executeAsync("statesrv rescale p=" + parallelism);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!Src.allEmittedAndCheckpointed.get()) {
            assertThat(System.nanoTime()).as("a checkpoint after the input").isLessThan(deadline);
            assertThat(job.getJobStatus().get().isGloballyTerminalState()).isFalse();
            Thread.sleep(20);
        }
        job.cancel().get(60, TimeUnit.SECONDS);
        try {
            job.getJobExecutionResult().get(60, TimeUnit.SECONDS);
        } catch (Exception expected) {
            // cancelled
        }
        return latestCheckpoint(checkpoints.resolve(job.getJobID().toString()))
                .orElseThrow(() -> new AssertionError("no retained checkpoint in " + checkpoints));
    }

    private static Optional<Path> latestCheckpoint(Path jobDir) throws Exception {
        try (Stream<Path> s = Files.list(jobDir)) {
            return s.filter(p -> p.getFileName().toString().startsWith("chk-"))
                    .filter(p -> Files.exists(p.resolve("_metadata")))
                    .max(
                            Comparator.comparingLong(
                                    p -> Long.parseLong(p.getFileName().toString().substring(4))));
        }
    }

    // --- job parts -----------------------------------------------------------------------

    /**
     * Record i: key i % 20, event time 20 ms per round of keys plus a 400 ms pause every 1000
     * records (so sessions close), value 1 + i % 7. Checkpointed offset; slowed down so that
     * checkpoints fall inside the input.
     */
    static final class Src extends RichParallelSourceFunction<Tuple3<Integer, Long, Long>>
            implements CheckpointedFunction, CheckpointListener {
        enum Mode {
            DATA_THEN_FINISH,
            DATA_THEN_IDLE,
            PROBE_THEN_IDLE
        }

        static final AtomicBoolean allEmittedAndCheckpointed = new AtomicBoolean();
        static final AtomicLong emitted = new AtomicLong();

        /** Checkpoint id -> the offset its barrier followed (records before it are in it). */
        static final Map<Long, Long> offsetAt = new java.util.concurrent.ConcurrentHashMap<>();

        private final int n;
        private final Mode mode;
        private volatile boolean running = true;
        private long offset;
        private transient ListState<Long> offsetState;
        private final Map<Long, Boolean> doneAt = new java.util.concurrent.ConcurrentHashMap<>();

        Src(int n, Mode mode) {
            this.n = n;
            this.mode = mode;
        }

        static Tuple3<Integer, Long, Long> record(long i) {
            long round = i / KEYS;
            long ts = round * 20 + (i / 1000) * 400;
            return Tuple3.of((int) (i % KEYS), ts, 1 + i % 7);
        }

        @Override
        public void run(SourceContext<Tuple3<Integer, Long, Long>> ctx) throws Exception {
            long end = mode == Mode.PROBE_THEN_IDLE ? KEYS : n;
            if (mode == Mode.PROBE_THEN_IDLE) {
                offset = 0;
            }
            while (running && offset < end) {
                synchronized (ctx.getCheckpointLock()) {
                    Tuple3<Integer, Long, Long> r = record(offset);
                    if (mode == Mode.PROBE_THEN_IDLE) {
                        r = Tuple3.of(r.f0, Long.MAX_VALUE / 2, -1L);
                    }
                    ctx.collect(r);
                    offset++;
                    emitted.incrementAndGet();
                }
                if (offset % 20 == 0) {
                    Thread.sleep(10);
                }
            }
            while (running && mode != Mode.DATA_THEN_FINISH) {
                Thread.sleep(10);
            }
        }

        @Override
        public void cancel() {
            running = false;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext ctx) throws Exception {
            offsetState.update(List.of(offset));
            long end = mode == Mode.PROBE_THEN_IDLE ? KEYS : n;
            doneAt.put(ctx.getCheckpointId(), offset >= end);
            offsetAt.put(ctx.getCheckpointId(), offset);
        }

        @Override
        public void initializeState(FunctionInitializationContext ctx) throws Exception {
            offsetState =
                    ctx.getOperatorStateStore()
                            .getListState(new ListStateDescriptor<>("offset", Long.class));
            for (Long o : offsetState.get()) {
                offset = o;
            }
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            if (Boolean.TRUE.equals(doneAt.get(checkpointId))) {
                allEmittedAndCheckpointed.set(true);
            }
        }
    }

    /** Fails its task once, after three checkpoints completed and a quarter of the input. */
    static final class FailOnce
            extends RichMapFunction<Tuple3<Integer, Long, Long>, Tuple3<Integer, Long, Long>>
            implements CheckpointListener {
        static final AtomicBoolean failed = new AtomicBoolean();
        static final AtomicBoolean checkpointDone = new AtomicBoolean();
        static final AtomicLong checkpointsDone = new AtomicLong();
        private final long after;
        private long seen;

        FailOnce(long after) {
            this.after = after;
        }

        @Override
        public Tuple3<Integer, Long, Long> map(Tuple3<Integer, Long, Long> v) {
            if (++seen >= after
                    && checkpointsDone.get() >= 3
                    && failed.compareAndSet(false, true)) {
                throw new RuntimeException("injected failure");
            }
            return v;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointDone.set(true);
            checkpointsDone.incrementAndGet();
        }
    }

    /** A running sum per key in ValueState, emitted on every record. */
    static final class Counter
            extends KeyedProcessFunction<Integer, Tuple3<Integer, Long, Long>, String> {
        private transient ValueState<Long> sum;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Long.class));
        }

        @Override
        public void processElement(
                Tuple3<Integer, Long, Long> e, Context ctx, Collector<String> out)
                throws Exception {
            long s = (sum.value() == null ? 0 : sum.value()) + e.f2;
            sum.update(s);
            out.collect(e.f0 + " " + s);
        }
    }

    /**
     * Data records update a ValueState sum, a MapState (value % 4 -> count) and a ListState of
     * values; a probe (value -1) answers "probe key sum mapEntries listLength" and appends -1.
     */
    static final class Prober
            extends KeyedProcessFunction<Integer, Tuple3<Integer, Long, Long>, String> {
        private transient ValueState<Long> sum;
        private transient MapState<Long, Long> buckets;
        private transient ListState<Long> values;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Long.class));
            buckets =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("buckets", Long.class, Long.class));
            values =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("values", Long.class));
        }

        @Override
        public void processElement(
                Tuple3<Integer, Long, Long> e, Context ctx, Collector<String> out)
                throws Exception {
            if (e.f2 < 0) {
                int entries = 0;
                for (Long ignored : buckets.keys()) {
                    entries++;
                }
                int len = 0;
                for (Long ignored : values.get()) {
                    len++;
                }
                values.add(-1L);
                out.collect("probe " + e.f0 + " " + sum.value() + " " + entries + " " + len);
                return;
            }
            sum.update((sum.value() == null ? 0 : sum.value()) + e.f2);
            Long b = buckets.get(e.f2 % 4);
            buckets.put(e.f2 % 4, b == null ? 1 : b + 1);
            values.add(e.f2);
        }
    }

    /** Collects every result in this JVM (the MiniCluster runs here). */
    static final class Results implements SinkFunction<String> {
        private static final ConcurrentLinkedQueue<String> ALL = new ConcurrentLinkedQueue<>();

        @Override
        public void invoke(String value, Context context) {
            ALL.add(value);
        }

        static List<String> all() {
            return new ArrayList<>(ALL);
        }

        static void clear() {
            ALL.clear();
        }
    }
}
