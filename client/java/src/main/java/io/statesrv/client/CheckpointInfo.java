package io.statesrv.client;

import java.util.List;
import java.util.Optional;

/**
 * A checkpoint's manifest. {@code path} is its directory on the server's machine, set in the answer
 * to a snapshot only.
 */
public record CheckpointInfo(
        long id,
        long createdUnixMillis,
        String serverVersion,
        int formatVersion,
        int keyGroups,
        int kgFirst,
        int kgLast,
        long entries,
        long rawBytes,
        long dataBytes,
        long dataXxh3,
        String compression,
        int compressionLevel,
        long blocks,
        long durationMillis,
        Optional<String> path,
        List<State> states) {

    public CheckpointInfo {
        states = List.copyOf(states);
    }

    /** One state in a checkpoint; {@code kgMin..kgMax} are meaningful when entries > 0. */
    public record State(
            String name, long entries, long rawBytes, int kgMin, int kgMax, long blocks) {}
}
