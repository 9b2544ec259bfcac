package io.statesrv.client;

/**
 * How {@link StatesrvClient#snapshot(SnapshotOptions)} writes a checkpoint. Immutable; start from
 * {@link #defaults()}.
 */
public final class SnapshotOptions {
    private static final SnapshotOptions DEFAULTS = new SnapshotOptions(-1, false, false);

    private final long id;
    private final boolean full;
    private final boolean waitRemote;

    private SnapshotOptions(long id, boolean full, boolean waitRemote) {
        this.id = id;
        this.full = full;
        this.waitRemote = waitRemote;
    }

    /** The next id, an incremental checkpoint where the server makes one, no wait for the store. */
    public static SnapshotOptions defaults() {
        return DEFAULTS;
    }

    /** This id (at least 1, not yet present) instead of one more than the highest. */
    public SnapshotOptions id(long id) {
        if (id < 1) {
            throw new IllegalArgumentException("checkpoint id " + id + " is not positive");
        }
        return new SnapshotOptions(id, full, waitRemote);
    }

    /** A full checkpoint even where the server would write an incremental one. */
    public SnapshotOptions full(boolean full) {
        return new SnapshotOptions(id, full, waitRemote);
    }

    /**
     * Completes only once the checkpoint is also in the server's object store (its MANIFEST
     * uploaded: {@code checkpoint_remote}); {@link CheckpointInfo#remote()} then holds its {@code
     * s3://} URL. A failed upload attempt fails the future with {@link Status#UNAVAILABLE} (the
     * checkpoint stays, durable locally, and its upload is retried); a server without {@code
     * checkpoint_remote} answers {@link Status#INVALID_ARGUMENT}.
     */
    public SnapshotOptions waitRemote(boolean waitRemote) {
        return new SnapshotOptions(id, full, waitRemote);
    }

    /** -1: the server picks it. */
    public long id() {
        return id;
    }

    public boolean full() {
        return full;
    }

    public boolean waitRemote() {
        return waitRemote;
    }

    @Override
    public String toString() {
        return "SnapshotOptions[id=" + id + ", full=" + full + ", waitRemote=" + waitRemote + "]";
    }
}
