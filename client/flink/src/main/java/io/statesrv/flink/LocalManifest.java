package io.statesrv.flink;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import statesrv.v1.Checkpoint;

/**
 * The chain of a local statesrvd checkpoint, read from its MANIFEST (docs/checkpoint-format.md:
 * magic {@code SVCKMAN1}, a big-endian u32 length, a packed {@code CheckpointManifest}, its
 * XXH3-64). The server wrote and fsynced the file just before; this reads only what the upload
 * needs, the data files' checkpoint ids, and checks what it relies on. The checksum is statesrvd's
 * to check, at restore.
 */
final class LocalManifest {
    private static final byte[] MAGIC = "SVCKMAN1".getBytes(StandardCharsets.US_ASCII);
    private static final long MAX_SIZE = 64L << 20;

    private LocalManifest() {}

    /** The local path, beside the checkpoint directories, of checkpoint {@code id}'s data file. */
    static String dataPath(long id) {
        return "chk-" + id + "/data";
    }

    /**
     * The checkpoint ids of the chain's data files, oldest (the full one) first, the checkpoint's
     * own ({@code id}) last.
     */
    static List<Long> chain(Path manifest, long id) throws IOException {
        long size = Files.size(manifest);
        if (size < 20 || size > MAX_SIZE) {
            throw new IOException(manifest + ": " + size + " bytes is no MANIFEST");
        }
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(manifest));
        byte[] magic = new byte[MAGIC.length];
        b.get(magic);
        long len = Integer.toUnsignedLong(b.getInt());
        if (!java.util.Arrays.equals(magic, MAGIC) || len + 20 != b.capacity()) {
            throw new IOException(manifest + ": not a statesrvd MANIFEST");
        }
        Checkpoint.CheckpointManifest m =
                Checkpoint.CheckpointManifest.parseFrom(ByteBuffer.wrap(b.array(), 12, (int) len));
        if (m.getCheckpointId() != id) {
            throw new IOException(
                    manifest + " is checkpoint " + m.getCheckpointId() + ", not " + id);
        }
        List<Long> chain = new ArrayList<>(Math.max(1, m.getChainCount()));
        for (Checkpoint.CheckpointLink l : m.getChainList()) {
            if (!l.getFile().equals(dataPath(l.getCheckpointId()))
                    || (!chain.isEmpty() && l.getCheckpointId() <= chain.get(chain.size() - 1))) {
                throw new IOException(manifest + ": a chain link names " + l.getFile());
            }
            chain.add(l.getCheckpointId());
        }
        if (chain.isEmpty()) {
            chain.add(id); // format version 1: one full file, its own
        }
        if (chain.get(chain.size() - 1) != id) {
            throw new IOException(manifest + ": the chain does not end with its own file");
        }
        return chain;
    }
}
