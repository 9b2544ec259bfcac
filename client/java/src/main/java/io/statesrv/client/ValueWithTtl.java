package io.statesrv.client;

import java.time.Duration;
import java.util.Optional;

/**
 * A value and what is left of its entry's TTL ({@link StatesrvClient#getWithTtl}).
 *
 * @param ttlRemainingMillis the ms left; -1 when the entry has no expiry; 0 when it has expired
 *     (returned only under {@link TtlConfig.Visibility#RETURN_EXPIRED_IF_NOT_CLEANED_UP})
 */
public record ValueWithTtl(Value value, long ttlRemainingMillis) {
    public ValueWithTtl {
        if (value == null) {
            throw new NullPointerException("value");
        }
    }

    /** Whether the entry expires at all. */
    public boolean expires() {
        return ttlRemainingMillis >= 0;
    }

    /** Whether it has expired (and is still visible). */
    public boolean expired() {
        return ttlRemainingMillis == 0;
    }

    /** What is left, or empty when the entry has no expiry. */
    public Optional<Duration> remaining() {
        return ttlRemainingMillis < 0
                ? Optional.empty()
                : Optional.of(Duration.ofMillis(ttlRemainingMillis));
    }
}
