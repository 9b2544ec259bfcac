package io.statesrv.client;

import java.time.Duration;

/**
 * A state's TTL setting, with Flink's {@code StateTtlConfig} semantics by the server's clock (see
 * docs/protocol.md, "State TTL"): entries expire {@code ttl} after the write that set them (and,
 * with {@link Update#ON_READ_AND_WRITE}, after the read that refreshed them).
 *
 * @param ttl at least 1 ms, whole milliseconds (the wire's unit)
 */
public record TtlConfig(Duration ttl, Update update, Visibility visibility) {
    /** What refreshes an entry's expiry. */
    public enum Update {
        /** Writes set the entry's expiry (the default). */
        ON_CREATE_AND_WRITE,
        /** Reads (get, multi_get) refresh it too. */
        ON_READ_AND_WRITE
    }

    /** Whether an expired entry that is still stored is returned. */
    public enum Visibility {
        /** Never (the default): an expired entry is absent. */
        NEVER_RETURN_EXPIRED,
        /** Until a clean-up deletes it. */
        RETURN_EXPIRED_IF_NOT_CLEANED_UP
    }

    public TtlConfig {
        if (ttl == null || update == null || visibility == null) {
            throw new NullPointerException("ttl, update and visibility are required");
        }
        if (ttl.isNegative() || ttl.isZero() || ttl.getNano() % 1_000_000 != 0) {
            throw new IllegalArgumentException(
                    "a TTL is a positive number of whole milliseconds, not " + ttl);
        }
    }

    /** {@code ttl} with the defaults: {@link Update#ON_CREATE_AND_WRITE}, never return expired. */
    public static TtlConfig of(Duration ttl) {
        return new TtlConfig(ttl, Update.ON_CREATE_AND_WRITE, Visibility.NEVER_RETURN_EXPIRED);
    }

    public TtlConfig withUpdate(Update u) {
        return new TtlConfig(ttl, u, visibility);
    }

    public TtlConfig withVisibility(Visibility v) {
        return new TtlConfig(ttl, update, v);
    }

    public long ttlMillis() {
        return ttl.toMillis();
    }
}
