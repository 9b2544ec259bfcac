package io.statesrv.flink;

import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;

/**
 * The example of docs/flink.md: a windowed word count whose keyed state lives in statesrvd,
 * selected by configuration as a cluster would (flink-conf / config.yaml), with checkpoints.
 *
 * <pre>
 *   java -cp ... io.statesrv.flink.ExampleJob /path/to/statesrvd file:///tmp/checkpoints
 * </pre>
 *
 * {@code ExampleJobTest} runs it.
 */
public final class ExampleJob {
    private ExampleJob() {}

    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", "io.statesrv.flink.StatesrvStateBackendFactory");
        conf.setString("state.backend.statesrv.binary", args[0]);
        conf.setString("state.checkpoints.dir", args[1]);
        conf.setString("execution.checkpointing.interval", "500 ms");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128); // statesrvd's key_groups

        String text = "to be or not to be that is the question whether tis nobler in the mind";
        DataStream<Tuple2<String, Long>> words =
                env.fromSequence(0, 9_999)
                        .map(i -> Tuple2.of(text.split(" ")[(int) (i % 16)], i))
                        .returns(Types.TUPLE(Types.STRING, Types.LONG))
                        .assignTimestampsAndWatermarks(
                                WatermarkStrategy.<Tuple2<String, Long>>forMonotonousTimestamps()
                                        .withTimestampAssigner((w, ts) -> w.f1));
        words.map(w -> Tuple2.of(w.f0, 1L))
                .returns(Types.TUPLE(Types.STRING, Types.LONG))
                .keyBy(w -> w.f0)
                .window(TumblingEventTimeWindows.of(Duration.ofMillis(5_000)))
                .sum(1)
                .print();
        env.execute("statesrv windowed word count");
    }
}
