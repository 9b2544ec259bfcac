package io.statesrv.client;

import java.util.Optional;

/**
 * One state: its entries, the bytes of the store pages it occupies, and its TTL setting (empty:
 * none).
 */
public record StateInfo(String name, long entries, long bytes, Optional<TtlConfig> ttl) {
    public StateInfo(String name, long entries, long bytes) {
        this(name, entries, bytes, Optional.empty());
    }
}
