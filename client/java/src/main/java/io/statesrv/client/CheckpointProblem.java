package io.statesrv.client;

/**
 * A directory named {@code chk-<id>} in the server's checkpoint_dir that does not read as a
 * checkpoint (a corrupt or truncated MANIFEST, one copied from another id, ...).
 *
 * @param id from the directory's name
 * @param path the directory, on the server's machine
 * @param problem what is wrong, in the server's words
 */
public record CheckpointProblem(long id, String path, String problem) {}
