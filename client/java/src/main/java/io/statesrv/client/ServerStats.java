package io.statesrv.client;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The server's counters, the numbers its Prometheus endpoint serves, taken at one moment
 * (docs/protocol.md, "stats"). Sizes are bytes.
 */
public record ServerStats(
        String serverVersion,
        long uptimeSeconds,
        int connectionsCurrent,
        long connectionsTotal,
        long connectionsRejected,
        List<OpStats> ops,
        List<StateInfo> states,
        int keyGroups,
        long commits,
        long bytesIn,
        long bytesOut,
        long mapSize,
        long mapUsed,
        long mapInUse,
        long mapLimit,
        long mapFreePinned,
        Optional<CheckpointProgress> checkpointInProgress,
        long checkpointsCompleted,
        long checkpointFailures,
        long lastCheckpointId,
        long lastCheckpointBytes,
        long lastCheckpointDurationMillis,
        long lastCheckpointUnixMillis,
        long lastCheckpointAgeMillis,
        long restoresCompleted,
        long lastRestoreDurationMillis,
        List<Long> latencyBoundsMicros,
        Map<String, Long> statusErrors,
        Map<String, Long> connectionErrors) {

    public ServerStats {
        ops = List.copyOf(ops);
        states = List.copyOf(states);
        latencyBoundsMicros = List.copyOf(latencyBoundsMicros);
        statusErrors = Map.copyOf(statusErrors);
        connectionErrors = Map.copyOf(connectionErrors);
    }

    /** The figures of one op, by name ("get", "put", ...); empty if the server has no such op. */
    public Optional<OpStats> op(String name) {
        return ops.stream().filter(o -> o.op().equals(name)).findFirst();
    }

    /**
     * One op: requests received, those answered with an error (not OK or NOT_FOUND), the answered
     * ones by status, and the latency histogram ({@code latencyBuckets} per bound of {@link
     * #latencyBoundsMicros} plus one, not cumulative; empty when none was timed).
     */
    public record OpStats(
            String op,
            long count,
            long errors,
            Map<Status, Long> statuses,
            long latencyCount,
            long latencySumNanos,
            List<Long> latencyBuckets) {
        public OpStats {
            statuses = Map.copyOf(statuses);
            latencyBuckets = List.copyOf(latencyBuckets);
        }
    }

    /** A snapshot or restore that is running. */
    public record CheckpointProgress(
            String kind, long checkpointId, long entries, long bytes, long elapsedMillis) {}
}
