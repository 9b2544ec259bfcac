package io.statesrv.client;

/** What the server said in the handshake: its version, key groups and limits. */
public record ServerInfo(
        int protocolVersion,
        String serverVersion,
        int keyGroups,
        int maxFrameSize,
        int maxValueSize,
        int maxKeySize,
        int maxBatchOps,
        int maxScanLimit,
        int maxStates) {}
