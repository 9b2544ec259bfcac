package io.statesrv.client;

import java.util.List;
import java.util.Optional;

/**
 * A checkpoint's manifest. {@code path} is its directory on the server's machine, set in the answer
 * to a snapshot only.
 *
 * <p>An incremental checkpoint holds only the changes since the checkpoint before it: it is the
 * last link of a chain that starts with the full checkpoint {@code baseId} (a full one is its own
 * base). {@code addedBytes} is its own data file, {@code totalBytes} every file of its chain (what
 * a restore reads). {@code remote} is its copy in the server's object store: from {@code
 * list_checkpoints} when the server has {@code checkpoint_remote}, from a snapshot with {@link
 * SnapshotOptions#waitRemote}; else empty.
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
        List<State> states,
        boolean incremental,
        long baseId,
        long addedBytes,
        long totalBytes,
        Optional<RemoteCopy> remote) {

    public CheckpointInfo {
        states = List.copyOf(states);
    }

    /** One state in a checkpoint; {@code kgMin..kgMax} are meaningful when entries > 0. */
    public record State(
            String name, long entries, long rawBytes, int kgMin, int kgMax, long blocks) {}

    /**
     * A checkpoint's copy in the object store.
     *
     * @param state "local" (not uploaded yet, or retrying), "uploading" or "remote"
     * @param url where it is (or goes): {@code s3://BUCKET/PREFIX/NODE/chk-<id>}, a restore source
     * @param error the last failed attempt's reason while it is not remote; else empty
     */
    public record RemoteCopy(String state, String url, String error) {
        public boolean isRemote() {
            return "remote".equals(state);
        }
    }

    /** The URL of its remote copy, once it is remote. */
    public Optional<String> remoteUrl() {
        return remote.filter(RemoteCopy::isRemote).map(RemoteCopy::url);
    }
}
