package io.statesrv.client;

import java.util.List;

/**
 * What {@code list_checkpoints} answers in one round trip: the readable checkpoints by id (with
 * their remote copy's status when the server has {@code checkpoint_remote}) and the {@code
 * chk-<id>} directories that are not readable checkpoints.
 */
public record CheckpointListing(
        List<CheckpointInfo> checkpoints, List<CheckpointProblem> problems) {
    public CheckpointListing {
        checkpoints = List.copyOf(checkpoints);
        problems = List.copyOf(problems);
    }
}
