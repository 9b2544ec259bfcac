package io.statesrv.client;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * How {@link StatesrvClient#connect} connects. Immutable; build with {@link #builder}. A zero
 * duration means "no limit" where that is allowed.
 */
public final class StatesrvConfig {
    final StatesrvAddress address;
    final String clientName;
    final byte[] authToken; // null: none
    final Path authTokenFile; // null: none
    final Duration connectTimeout;
    final Duration ioTimeout;
    final Duration jobTimeout;
    final Duration inFlightWait;
    final Duration closeTimeout;
    final int maxInFlight;

    private StatesrvConfig(Builder b) {
        this.address = b.address;
        this.clientName = b.clientName;
        this.authToken = b.authToken;
        this.authTokenFile = b.authTokenFile;
        this.connectTimeout = b.connectTimeout;
        this.ioTimeout = b.ioTimeout;
        this.jobTimeout = b.jobTimeout;
        this.inFlightWait = b.inFlightWait;
        this.closeTimeout = b.closeTimeout;
        this.maxInFlight = b.maxInFlight;
    }

    public static Builder builder() {
        return new Builder();
    }

    public StatesrvAddress address() {
        return address;
    }

    public int maxInFlight() {
        return maxInFlight;
    }

    /** Builds a {@link StatesrvConfig}; every setting has a default. Not thread-safe. */
    public static final class Builder {
        private StatesrvAddress address = StatesrvAddress.parse(StatesrvAddress.DEFAULT);
        private String clientName = "statesrv-java";
        private byte[] authToken;
        private Path authTokenFile;
        private Duration connectTimeout = Duration.ofSeconds(5);
        private Duration ioTimeout = Duration.ofSeconds(30);
        private Duration jobTimeout = Duration.ZERO;
        private Duration inFlightWait = Duration.ofSeconds(30);
        private Duration closeTimeout = Duration.ofSeconds(5);
        private int maxInFlight = 1024;

        private Builder() {}

        /** Default 127.0.0.1:7420. */
        public Builder address(StatesrvAddress a) {
            this.address = a;
            return this;
        }

        /** {@code "host:port"}, {@code "[v6addr]:port"} or {@code "unix:/path"}. */
        public Builder address(String a) {
            return address(StatesrvAddress.parse(a));
        }

        /** Shown in the server's logs (at most 128 bytes); default "statesrv-java". */
        public Builder clientName(String name) {
            this.clientName = name;
            return this;
        }

        /** The server's auth token, sent in the handshake. */
        public Builder authToken(String token) {
            this.authToken = token.getBytes(StandardCharsets.UTF_8);
            this.authTokenFile = null;
            return this;
        }

        /**
         * A file holding the token on its first line (the format of the server's auth_token_file),
         * read at each connect.
         */
        public Builder authTokenFile(Path file) {
            this.authTokenFile = file;
            this.authToken = null;
            return this;
        }

        /** For the socket connect, and again for the handshake; default 5 s. */
        public Builder connectTimeout(Duration d) {
            this.connectTimeout = positive(d, "connectTimeout");
            return this;
        }

        /**
         * How long the oldest outstanding request may go without any reply arriving before the
         * connection is failed with {@link Status#TIMEOUT}; default 30 s, zero: no limit. Snapshot
         * and restore have {@link #jobTimeout} instead.
         */
        public Builder ioTimeout(Duration d) {
            this.ioTimeout = nonNegative(d, "ioTimeout");
            return this;
        }

        /**
         * How long a snapshot or restore may take before the connection is failed with {@link
         * Status#TIMEOUT} (the job goes on in the server); default zero, no limit.
         */
        public Builder jobTimeout(Duration d) {
            this.jobTimeout = nonNegative(d, "jobTimeout");
            return this;
        }

        /**
         * Requests sent and not yet answered, at most; default 1024. A request beyond it waits up
         * to {@link #inFlightWait} for a slot.
         */
        public Builder maxInFlight(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("maxInFlight must be at least 1, not " + n);
            }
            this.maxInFlight = n;
            return this;
        }

        /**
         * How long a call waits for an in-flight slot before its future fails with {@link
         * Status#TIMEOUT} (nothing sent; the connection stays up); default 30 s, zero: fail at
         * once.
         */
        public Builder inFlightWait(Duration d) {
            this.inFlightWait = nonNegative(d, "inFlightWait");
            return this;
        }

        /** How long {@link StatesrvClient#close} waits for outstanding replies; default 5 s. */
        public Builder closeTimeout(Duration d) {
            this.closeTimeout = nonNegative(d, "closeTimeout");
            return this;
        }

        public StatesrvConfig build() {
            return new StatesrvConfig(this);
        }

        private static Duration nonNegative(Duration d, String what) {
            if (d.isNegative()) {
                throw new IllegalArgumentException(what + " is negative");
            }
            return d;
        }

        private static Duration positive(Duration d, String what) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(what + " must be positive");
            }
            return d;
        }
    }
}
