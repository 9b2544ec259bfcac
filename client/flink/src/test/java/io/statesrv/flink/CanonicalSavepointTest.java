package io.statesrv.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
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
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.SinkFunction;
import org.apache.flink.streaming.api.functions.source.RichParallelSourceFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Canonical savepoints move a job between backends: a job runs on one backend (parallelism 2), a
 * canonical savepoint is taken once all its input is in, and the job resumes from it on another
 * backend at parallelism 3 (a rescale, too). Every key's ValueState, MapState and ListState, the
 * pending windows (ReducingState and their timers) and an event-time timer per key must arrive
 * exactly: the resumed job's answers and every window equal a plain computation. The other backends
 * are Flink's own: RocksDB (incremental checkpoints, timers in RocksDB) and HashMap.
 */
class CanonicalSavepointTest {
    private static final int KEYS = 20;
    private static final int N = 2000;
    private static final long TIMER_AT = 1_000_000_000_000L;

    enum Backend {
        STATESRV,
        ROCKSDB,
        HASHMAP
    }

    @TempDir Path tmp;

    @BeforeEach
    void reset() {
        Results.clear();
        Src.emitted.set(0);
    }

    static Stream<Arguments> moves() {
        // Max parallelism 128: key groups in 1 byte of the canonical key; 256: in 2.
        return Stream.of(
                Arguments.of(Backend.STATESRV, Backend.ROCKSDB, 128),
                Arguments.of(Backend.ROCKSDB, Backend.STATESRV, 128),
                Arguments.of(Backend.STATESRV, Backend.HASHMAP, 128),
                Arguments.of(Backend.HASHMAP, Backend.STATESRV, 128),
                Arguments.of(Backend.STATESRV, Backend.STATESRV, 128),
                Arguments.of(Backend.STATESRV, Backend.ROCKSDB, 256),
                Arguments.of(Backend.ROCKSDB, Backend.STATESRV, 256));
    }

    @ParameterizedTest(name = "{0} -> {1}, max parallelism {2}")
    @MethodSource("moves")
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void canonicalSavepointMovesTheJob(Backend from, Backend to, int maxParallelism)
            throws Exception {
        Files.createDirectories(tmp.resolve("tm"));
        // Phase 1: all input, then a canonical savepoint (the source has emitted everything
        // before it is triggered, so the savepoint holds all of it), then cancel.
        StreamExecutionEnvironment env1 =
                StreamExecutionEnvironment.createLocalEnvironment(2, conf(from));
        build(env1, false, maxParallelism);
        JobClient job = env1.executeAsync("phase 1 on " + from);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (Src.emitted.get() < N) {
            assertThat(System.nanoTime()).as("the input is emitted").isLessThan(deadline);
            assertThat(job.getJobStatus().get().isGloballyTerminalState()).isFalse();
            Thread.sleep(20);
        }
        String savepoint = null;
        while (savepoint == null) {
            // Refused until every task runs (the source can be done before the others start).
            try {
                savepoint =
                        job.triggerSavepoint(
                                        tmp.resolve("savepoints").toUri().toString(),
                                        SavepointFormatType.CANONICAL)
                                .get(60, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                assertThat(e)
                        .hasStackTraceContaining("Not all required tasks are currently running");
                assertThat(System.nanoTime()).as("the tasks run").isLessThan(deadline);
                Thread.sleep(50);
            }
        }
        job.cancel().get(60, TimeUnit.SECONDS);
        try {
            job.getJobExecutionResult().get(60, TimeUnit.SECONDS);
        } catch (Exception expected) {
            // cancelled
        }
        assertThat(probes()).isEmpty();

        // Phase 2: resume on the other backend at parallelism 3; the source sends one probe per
        // key and ends, so the final watermark fires the pending windows and the timers.
        Configuration c2 = conf(to);
        c2.setString("execution.savepoint.path", savepoint);
        StreamExecutionEnvironment env2 = StreamExecutionEnvironment.createLocalEnvironment(3, c2);
        build(env2, true, maxParallelism);
        env2.execute("phase 2 on " + to);

        long[] sum = new long[KEYS];
        Map<String, Long> windows = new HashMap<>();
        for (int i = 0; i < N; i++) {
            Tuple3<Integer, Long, Long> e = Src.record(i);
            sum[e.f0] += e.f2;
            windows.merge(e.f0 + " " + (e.f1 / 500), e.f2, Long::sum);
        }
        Map<String, Long> gotWindows = new HashMap<>();
        Map<Integer, String> gotProbes = new HashMap<>();
        Map<Integer, Long> gotTimers = new HashMap<>();
        for (String r : Results.all()) {
            String[] f = r.split(" ");
            switch (f[0]) {
                case "window" -> {
                    Long prev = gotWindows.put(f[1] + " " + f[2], Long.parseLong(f[3]));
                    // A window that fired in phase 1 after the savepoint fires again in phase 2:
                    // with the same value.
                    assertThat(prev == null || prev == Long.parseLong(f[3]))
                            .as("a window fired twice with different values: %s", r)
                            .isTrue();
                }
                case "probe" -> {
                    assertThat(gotProbes.put(Integer.parseInt(f[1]), r)).as(r).isNull();
                }
                case "timer" -> {
                    assertThat(gotTimers.put(Integer.parseInt(f[1]), Long.parseLong(f[2])))
                            .as("one timer per key: %s", r)
                            .isNull();
                }
                default -> throw new AssertionError(r);
            }
        }
        assertThat(gotWindows).isEqualTo(windows);
        assertThat(gotProbes).hasSize(KEYS);
        assertThat(gotTimers).hasSize(KEYS);
        for (int k = 0; k < KEYS; k++) {
            // sum, map entries (value % 4 -> count), list length, list sum
            assertThat(gotProbes.get(k))
                    .isEqualTo("probe " + k + " " + sum[k] + " 4 " + (N / KEYS) + " " + sum[k]);
            assertThat(gotTimers.get(k)).as("timer of key %d", k).isEqualTo(sum[k]);
        }
    }

    private Configuration conf(Backend b) {
        Configuration c = new Configuration();
        switch (b) {
            case STATESRV -> {
                c.setString("state.backend.type", StatesrvStateBackendFactory.class.getName());
                c.setString("state.backend.statesrv.binary", StatesrvStateBackendTest.statesrvd());
            }
            case ROCKSDB -> {
                c.setString("state.backend.type", "rocksdb");
                c.setString("state.backend.incremental", "true");
            }
            case HASHMAP -> c.setString("state.backend.type", "hashmap");
        }
        c.setString("io.tmp.dirs", tmp.resolve("tm").toString());
        c.setString("state.checkpoints.dir", tmp.resolve("chk").toUri().toString());
        c.setString("restart-strategy.type", "none");
        return c;
    }

    private static void build(StreamExecutionEnvironment env, boolean probe, int maxParallelism) {
        env.setMaxParallelism(maxParallelism);
        DataStream<Tuple3<Integer, Long, Long>> input =
                env.addSource(new Src(probe))
                        .uid("source")
                        .setParallelism(1)
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy
                                        .<Tuple3<Integer, Long, Long>>forMonotonousTimestamps()
                                        .withTimestampAssigner((e, ts) -> e.f1))
                        .uid("watermarks");
        input.keyBy(e -> e.f0)
                .process(new Prober())
                .uid("prober")
                .addSink(new Results())
                .uid("prober-sink");
        input.filter(e -> e.f2 >= 0)
                .uid("data")
                .keyBy(e -> e.f0)
                .window(TumblingEventTimeWindows.of(Duration.ofMillis(500)))
                .reduce((a, b) -> Tuple3.of(a.f0, a.f1, a.f2 + b.f2))
                .uid("window")
                .map(e -> "window " + e.f0 + " " + (e.f1 / 500) + " " + e.f2)
                .returns(Types.STRING)
                .uid("window-format")
                .addSink(new Results())
                .uid("window-sink");
    }

    private static List<String> probes() {
        return Results.all().stream().filter(s -> s.startsWith("probe")).toList();
    }

    /**
     * Phase 1: records 0..N-1 (key i % 20, event time 10 ms per round of keys, value 1 + i % 7),
     * then idles. Phase 2 (restored offset N): one probe per key (value -1), then ends.
     */
    static final class Src extends RichParallelSourceFunction<Tuple3<Integer, Long, Long>>
            implements CheckpointedFunction {
        static final AtomicLong emitted = new AtomicLong();
        private final boolean probe;
        private volatile boolean running = true;
        private long offset;
        private transient ListState<Long> offsetState;

        Src(boolean probe) {
            this.probe = probe;
        }

        static Tuple3<Integer, Long, Long> record(long i) {
            return Tuple3.of((int) (i % KEYS), (i / KEYS) * 10, 1 + i % 7);
        }

        @Override
        public void run(SourceContext<Tuple3<Integer, Long, Long>> ctx) throws Exception {
            if (probe) {
                long ts = record(N - 1).f1;
                for (int k = 0; k < KEYS && running; k++) {
                    synchronized (ctx.getCheckpointLock()) {
                        ctx.collect(Tuple3.of(k, ts, -1L));
                    }
                }
                return;
            }
            while (running && offset < N) {
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(record(offset));
                    offset++;
                    emitted.incrementAndGet();
                }
            }
            while (running) {
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
    }

    /**
     * Data records add to a ValueState sum, a MapState (value % 4 -> count) and a ListState of
     * values, and the first one of a key sets an event-time timer far ahead; a probe answers "probe
     * key sum mapEntries listLength listSum"; the timer answers "timer key sum".
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
                for (Map.Entry<Long, Long> ignored : buckets.entries()) {
                    entries++;
                }
                int len = 0;
                long listSum = 0;
                for (Long v : values.get()) {
                    len++;
                    listSum += v;
                }
                out.collect(
                        "probe "
                                + e.f0
                                + " "
                                + sum.value()
                                + " "
                                + entries
                                + " "
                                + len
                                + " "
                                + listSum);
                return;
            }
            if (sum.value() == null) {
                ctx.timerService().registerEventTimeTimer(TIMER_AT);
            }
            sum.update((sum.value() == null ? 0 : sum.value()) + e.f2);
            Long b = buckets.get(e.f2 % 4);
            buckets.put(e.f2 % 4, b == null ? 1 : b + 1);
            values.add(e.f2);
        }

        @Override
        public void onTimer(long timestamp, OnTimerContext ctx, Collector<String> out)
                throws Exception {
            out.collect("timer " + ctx.getCurrentKey() + " " + sum.value());
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
