package io.statesrv.flink;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.SavepointRestoreSettings;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.DiscardingSink;
import org.apache.flink.streaming.api.functions.source.RichParallelSourceFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;

/**
 * The Flink benchmark of docs/benchmarks.md: one keyed job on HashMapStateBackend,
 * EmbeddedRocksDBStateBackend (incremental checkpoints) and statesrv (with write-behind, the
 * default, and without; with statesrvd's incremental checkpoints, the default, and with full ones),
 * side by side in one JVM. Not part of {@code make test}: run it with {@code make bench-flink}
 * (this class is excluded from the normal Surefire run). Every record touches state twice: a
 * tumbling event-time window count (AggregatingState, a timer per key and window) and a per-key
 * MapState update (get and put of bucket {@code value % 16}).
 *
 * <p>Per run, on a MiniCluster with parallelism {@code bench.parallelism} (default 4):
 *
 * <ol>
 *   <li><b>throughput</b>: {@code bench.records} records over {@code bench.keys} keys, as fast as
 *       the source can go; records/s from the first record emitted until both keyed operators have
 *       seen every record;
 *   <li><b>checkpoint</b> 1 of the whole state, then 10 % more records and checkpoint 2: each one's
 *       end-to-end duration, full state size and checkpointed (uploaded) size from Flink's
 *       checkpoint statistics;
 *   <li><b>recovery</b>: the source fails its task; the time until every subtask of both keyed
 *       operators has processed a marker after the restore from checkpoint 2 (restart delay 0);
 *   <li><b>rescale 4 → 2</b>: a third checkpoint, cancel, a new job at parallelism 2 from it; the
 *       time from submission until every keyed subtask has processed a marker.
 * </ol>
 *
 * Runs alternate between the backends ({@code bench.runs} rounds); the table gives medians.
 */
class FlinkBench {
    enum Backend {
        HASHMAP("HashMap"),
        ROCKSDB("RocksDB (incremental)"),
        ROCKSDB_HEAP_TIMERS("RocksDB, heap timers"),
        STATESRV("statesrv"),
        STATESRV_FULL("statesrv, full checkpoints"),
        STATESRV_SYNC("statesrv, write-behind off"),
        STATESRV_NOCACHE("statesrv, read cache off");

        final String title;

        Backend(String title) {
            this.title = title;
        }
    }

    static final int MAX_PARALLELISM = 128;

    /** windows: the window count and the MapState update; counter: ValueState read twice. */
    static volatile String job = "windows";

    static volatile int operators = 2;

    // Driver <-> job (the MiniCluster runs in this JVM).
    static volatile long target;
    static volatile int markParallelism;
    static final AtomicBoolean fail = new AtomicBoolean();
    static volatile long failedAt;
    static volatile long firstEmit;
    static final LongAdder windowSeen = new LongAdder();
    static final LongAdder mapSeen = new LongAdder();
    static final Map<String, Long> markerAt = new ConcurrentHashMap<>();

    record Result(
            double recordsPerSecond,
            long ckpt1Ms,
            long ckpt1StateBytes,
            long ckpt1UploadedBytes,
            long ckpt2Ms,
            long ckpt2StateBytes,
            long ckpt2UploadedBytes,
            long recoveryMs,
            long rescaleMs) {}

    @Test
    void run() throws Exception {
        int runs = Integer.getInteger("bench.runs", 3);
        long records = Long.getLong("bench.records", 300_000L);
        int keys = Integer.getInteger("bench.keys", 10_000);
        int parallelism = Integer.getInteger("bench.parallelism", 4);
        job = System.getProperty("bench.job", "windows");
        operators = job.equals("counter") ? 1 : 2;
        List<Backend> backends = new ArrayList<>();
        for (String b :
                System.getProperty("bench.backends", "HASHMAP,ROCKSDB,STATESRV,STATESRV_SYNC")
                        .split(",")) {
            backends.add(Backend.valueOf(b.trim()));
        }
        Map<Backend, List<Result>> all = new EnumMap<>(Backend.class);
        for (int r = 0; r < runs; r++) {
            for (Backend b : backends) {
                Result res = runOnce(b, records, keys, parallelism);
                System.out.printf(Locale.ROOT, "run %d %s: %s%n", r + 1, b, res);
                all.computeIfAbsent(b, x -> new ArrayList<>()).add(res);
            }
        }
        System.out.printf(
                Locale.ROOT,
                "%nFlink benchmark (job %s): %d records, %d keys, parallelism %d (rescale to %d),"
                        + " %d runs each, medians%n%n",
                job,
                records,
                keys,
                parallelism,
                parallelism / 2,
                runs);
        StringBuilder head = new StringBuilder("| |");
        StringBuilder rule = new StringBuilder("| --- |");
        for (Backend b : all.keySet()) {
            head.append(' ').append(b.title).append(" |");
            rule.append(" ---: |");
        }
        System.out.println(head + "\n" + rule);
        row(all, "records/s", r -> r.recordsPerSecond, "%,.0f");
        row(all, "checkpoint 1 (whole state): duration ms", r -> (double) r.ckpt1Ms, "%.0f");
        row(all, "checkpoint 1: state size MB", r -> r.ckpt1StateBytes / 1e6, "%.1f");
        row(all, "checkpoint 1: uploaded MB", r -> r.ckpt1UploadedBytes / 1e6, "%.1f");
        row(all, "checkpoint 2 (+10 % records): duration ms", r -> (double) r.ckpt2Ms, "%.0f");
        row(all, "checkpoint 2: uploaded MB", r -> r.ckpt2UploadedBytes / 1e6, "%.1f");
        row(all, "recovery after a task failure ms", r -> (double) r.recoveryMs, "%.0f");
        row(
                all,
                "rescale " + parallelism + " → " + parallelism / 2 + " ms",
                r -> (double) r.rescaleMs,
                "%.0f");
    }

    private static void row(
            Map<Backend, List<Result>> all, String name, Function<Result, Double> f, String fmt) {
        StringBuilder sb = new StringBuilder("| " + name + " |");
        for (Backend b : all.keySet()) {
            List<Double> v = new ArrayList<>();
            for (Result r : all.get(b)) {
                v.add(f.apply(r));
            }
            Collections.sort(v);
            double median =
                    v.size() % 2 == 1
                            ? v.get(v.size() / 2)
                            : (v.get(v.size() / 2 - 1) + v.get(v.size() / 2)) / 2;
            sb.append(' ').append(String.format(Locale.ROOT, fmt, median)).append(" |");
        }
        System.out.println(sb);
    }

    private static Result runOnce(Backend backend, long records, int keys, int parallelism)
            throws Exception {
        Path dir = Files.createTempDirectory("flink-bench-" + backend.name().toLowerCase());
        try {
            Configuration c = conf(backend, dir);
            MiniClusterConfiguration mcc =
                    new MiniClusterConfiguration.Builder()
                            .setConfiguration(c)
                            .setNumTaskManagers(1)
                            .setNumSlotsPerTaskManager(parallelism)
                            .build();
            MiniCluster mc = new MiniCluster(mcc);
            try {
                mc.start();
                return measure(mc, c, records, keys, parallelism);
            } finally {
                mc.close();
            }
        } finally {
            StatesrvProcess.deleteQuietly(dir);
        }
    }

    private static Result measure(
            MiniCluster mc, Configuration c, long records, int keys, int parallelism)
            throws Exception {
        target = 0;
        fail.set(false);
        firstEmit = 0;
        windowSeen.reset();
        mapSeen.reset();
        markerAt.clear();
        markParallelism = parallelism;

        JobGraph g = jobGraph(c, parallelism, keys, null);
        JobID id = mc.submitJob(g).get().getJobID();

        // 1. throughput
        target = records;
        waitFor(() -> seenAll(records), 600);
        double rps = records / ((System.nanoTime() - firstEmit) / 1e9);

        // 2. checkpoints
        CompletedCheckpointStats c1 = checkpoint(mc, id);
        long more = records / 10;
        target = records + more;
        waitFor(() -> seenAll(records + more), 600);
        CompletedCheckpointStats c2 = checkpoint(mc, id);

        // 3. recovery after a task failure (the source throws; the region restarts)
        fail.set(true);
        waitFor(() -> markerAt.size() >= operators * parallelism, 300);
        long recovery = (Collections.max(markerAt.values()) - failedAt) / 1_000_000;

        // 4. rescale to half the parallelism from a retained checkpoint
        CompletedCheckpointStats c3 = checkpoint(mc, id);
        mc.cancelJob(id).get(60, TimeUnit.SECONDS);
        waitFor(() -> mc.getJobStatus(id).get().isGloballyTerminalState(), 60);
        markerAt.clear();
        markParallelism = parallelism / 2;
        JobGraph g2 = jobGraph(c, parallelism / 2, keys, c3.getExternalPath());
        long submit = System.nanoTime();
        JobID id2 = mc.submitJob(g2).get().getJobID();
        waitFor(() -> markerAt.size() >= operators * (parallelism / 2), 300);
        long rescale = (Collections.max(markerAt.values()) - submit) / 1_000_000;
        mc.cancelJob(id2).get(60, TimeUnit.SECONDS);
        waitFor(() -> mc.getJobStatus(id2).get().isGloballyTerminalState(), 60);
        return new Result(
                rps,
                c1.getEndToEndDuration(),
                c1.getStateSize(),
                c1.getCheckpointedSize(),
                c2.getEndToEndDuration(),
                c2.getStateSize(),
                c2.getCheckpointedSize(),
                recovery,
                rescale);
    }

    private static boolean seenAll(long n) {
        return mapSeen.sum() >= n && (operators == 1 || windowSeen.sum() >= n);
    }

    private static CompletedCheckpointStats checkpoint(MiniCluster mc, JobID id) throws Exception {
        String path = mc.triggerCheckpoint(id).get(600, TimeUnit.SECONDS);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            CompletedCheckpointStats s =
                    mc.getExecutionGraph(id)
                            .get()
                            .getCheckpointStatsSnapshot()
                            .getHistory()
                            .getLatestCompletedCheckpoint();
            if (s != null && path.equals(s.getExternalPath())) {
                return s;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no statistics for checkpoint " + path);
            }
            Thread.sleep(20);
        }
    }

    interface Condition {
        boolean holds() throws Exception;
    }

    private static void waitFor(Condition c, int seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!c.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + seconds + " s");
            }
            Thread.sleep(1);
        }
    }

    private static Configuration conf(Backend b, Path dir) {
        Configuration c = new Configuration();
        switch (b) {
            case STATESRV, STATESRV_FULL, STATESRV_SYNC, STATESRV_NOCACHE -> {
                c.setString("state.backend.type", StatesrvStateBackendFactory.class.getName());
                c.setString("state.backend.statesrv.binary", StatesrvStateBackendTest.statesrvd());
                c.setString(
                        "state.backend.statesrv.write-behind",
                        Boolean.toString(b != Backend.STATESRV_SYNC));
                c.setString(
                        "state.backend.statesrv.read-cache-entries",
                        b == Backend.STATESRV_NOCACHE ? "0" : "64");
                if (b == Backend.STATESRV_FULL) {
                    // Every statesrvd checkpoint full (as before incremental checkpoints).
                    c.setString(
                            "state.backend.statesrv.server-config", "checkpoint_incremental = no");
                }
            }
            case ROCKSDB, ROCKSDB_HEAP_TIMERS -> {
                c.setString("state.backend.type", "rocksdb");
                c.setString("state.backend.incremental", "true");
                c.setString(
                        "state.backend.rocksdb.timer-service.factory",
                        b == Backend.ROCKSDB ? "ROCKSDB" : "HEAP");
            }
            case HASHMAP -> c.setString("state.backend.type", "hashmap");
        }
        c.setString("io.tmp.dirs", dir.resolve("tm").toString());
        c.setString("state.checkpoints.dir", dir.resolve("chk").toUri().toString());
        // Checkpoints only when the driver asks (a long interval keeps the coordinator on).
        c.setString("execution.checkpointing.interval", "1 h");
        c.setString(
                "execution.checkpointing.externalized-checkpoint-retention",
                "RETAIN_ON_CANCELLATION");
        c.setString("restart-strategy.type", "fixed-delay");
        c.setString("restart-strategy.fixed-delay.attempts", "2");
        c.setString("restart-strategy.fixed-delay.delay", "0 ms");
        c.setString("taskmanager.memory.managed.size", "256m");
        return c;
    }

    private static JobGraph jobGraph(Configuration c, int parallelism, int keys, String restoreFrom)
            throws Exception {
        Files.createDirectories(Path.of(c.getString("io.tmp.dirs", "/tmp")));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
        env.setParallelism(parallelism);
        env.setMaxParallelism(MAX_PARALLELISM);
        DataStream<Tuple2<Integer, Long>> input =
                env.addSource(new Src(keys))
                        .uid("source")
                        .setParallelism(1)
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy.<Tuple2<Integer, Long>>forGenerator(
                                                ctx -> new EveryThousand())
                                        .withTimestampAssigner((e, ts) -> Src.eventTime(e.f1)))
                        .uid("watermarks")
                        .setParallelism(1);
        if (job.equals("counter")) {
            input.keyBy(e -> e.f0)
                    .process(new SumTwice())
                    .uid("sum")
                    .returns(Types.VOID)
                    .addSink(new DiscardingSink<>())
                    .uid("sum-sink");
            return graph(env, restoreFrom);
        }
        input.keyBy(e -> e.f0)
                .window(TumblingEventTimeWindows.of(Duration.ofSeconds(10)))
                .aggregate(new Count())
                .uid("window")
                .addSink(new DiscardingSink<>())
                .uid("window-sink");
        input.keyBy(e -> e.f0)
                .process(new Buckets(keys))
                .uid("buckets")
                .returns(Types.VOID)
                .addSink(new DiscardingSink<>())
                .uid("buckets-sink");
        return graph(env, restoreFrom);
    }

    private static JobGraph graph(StreamExecutionEnvironment env, String restoreFrom) {
        JobGraph g = env.getStreamGraph().getJobGraph();
        if (restoreFrom != null) {
            g.setSavepointRestoreSettings(SavepointRestoreSettings.forPath(restoreFrom, false));
        }
        return g;
    }

    /**
     * Record i: key i % keys, value i (event time i / 10 ms). Emits up to {@link #target}, fails
     * once when told, and after a (re)start with markers wanted, one marker (value -1) per keyed
     * subtask.
     */
    static final class Src extends RichParallelSourceFunction<Tuple2<Integer, Long>>
            implements CheckpointedFunction {
        private final int keys;
        private volatile boolean running = true;
        private long offset;
        private transient ListState<Long> offsetState;
        private transient boolean restored;

        Src(int keys) {
            this.keys = keys;
        }

        /** A marker's value is -(offset + 1): its event time is the current one, never late. */
        static long eventTime(long value) {
            return (value >= 0 ? value : -value - 1) / 10;
        }

        @Override
        public void run(SourceContext<Tuple2<Integer, Long>> ctx) throws Exception {
            if (restored) {
                int p = markParallelism;
                synchronized (ctx.getCheckpointLock()) {
                    for (int sub = 0; sub < p; sub++) {
                        ctx.collect(Tuple2.of(keyFor(sub, p), -offset - 1));
                    }
                }
            }
            while (running) {
                long t = target;
                if (offset < t) {
                    if (firstEmit == 0) {
                        firstEmit = System.nanoTime();
                    }
                    // Batches under the lock, so that a checkpoint barrier can come between.
                    synchronized (ctx.getCheckpointLock()) {
                        long end = Math.min(t, offset + 1000);
                        for (; offset < end; offset++) {
                            ctx.collect(Tuple2.of((int) (offset % keys), offset));
                        }
                    }
                    continue;
                }
                if (fail.compareAndSet(true, false)) {
                    failedAt = System.nanoTime();
                    throw new RuntimeException("injected failure (benchmark)");
                }
                Thread.sleep(1);
            }
        }

        private int keyFor(int subtask, int p) {
            for (int k = 0; ; k++) {
                if (KeyGroupRangeAssignment.assignKeyToParallelOperator(k, MAX_PARALLELISM, p)
                        == subtask) {
                    return k;
                }
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
            restored = ctx.isRestored();
            for (Long o : offsetState.get()) {
                offset = o;
            }
        }
    }

    /**
     * A watermark every 1000 records, none on a clock: which windows are still open at a checkpoint
     * then depends on the input only, not on how fast a backend went.
     */
    static final class EveryThousand implements WatermarkGenerator<Tuple2<Integer, Long>> {
        @Override
        public void onEvent(Tuple2<Integer, Long> e, long ts, WatermarkOutput out) {
            if (e.f1 >= 0 && e.f1 % 1000 == 0) {
                out.emitWatermark(new Watermark(ts - 1));
            }
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput out) {}
    }

    /**
     * A running sum in ValueState, written the way jobs often are: {@code (s.value() == null ? 0 :
     * s.value()) + x}, two reads and a write per record.
     */
    static final class SumTwice extends KeyedProcessFunction<Integer, Tuple2<Integer, Long>, Void> {
        private transient ValueState<Long> sum;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Long.class));
        }

        @Override
        public void processElement(Tuple2<Integer, Long> e, Context ctx, Collector<Void> out)
                throws Exception {
            if (e.f1 < 0) {
                markerAt.putIfAbsent("sum " + e.f0, System.nanoTime());
                return;
            }
            sum.update((sum.value() == null ? 0 : sum.value()) + e.f1);
            mapSeen.increment();
        }
    }

    /** The window's count (AggregatingState: a get and a put per record). */
    static final class Count implements AggregateFunction<Tuple2<Integer, Long>, Long, Long> {
        @Override
        public Long createAccumulator() {
            return 0L;
        }

        @Override
        public Long add(Tuple2<Integer, Long> value, Long acc) {
            if (value.f1 < 0) {
                markerAt.putIfAbsent("window " + value.f0, System.nanoTime());
            } else {
                windowSeen.increment();
            }
            return acc + 1;
        }

        @Override
        public Long getResult(Long acc) {
            return acc;
        }

        @Override
        public Long merge(Long a, Long b) {
            return a + b;
        }
    }

    /**
     * Per key, MapState bucket -> count, a get and a put per record; a key's records go to its
     * buckets in turn (16 of them).
     */
    static final class Buckets extends KeyedProcessFunction<Integer, Tuple2<Integer, Long>, Void> {
        private final int keys;
        private transient MapState<Integer, Long> buckets;

        Buckets(int keys) {
            this.keys = keys;
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            buckets =
                    getRuntimeContext()
                            .getMapState(
                                    new MapStateDescriptor<>("buckets", Integer.class, Long.class));
        }

        @Override
        public void processElement(Tuple2<Integer, Long> e, Context ctx, Collector<Void> out)
                throws Exception {
            if (e.f1 < 0) {
                markerAt.putIfAbsent("buckets " + e.f0, System.nanoTime());
                return;
            }
            int b = (int) ((e.f1 / keys) % 16);
            Long n = buckets.get(b);
            buckets.put(b, n == null ? 1 : n + 1);
            mapSeen.increment();
        }
    }
}
