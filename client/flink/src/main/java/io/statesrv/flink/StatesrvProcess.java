package io.statesrv.flink;

import io.statesrv.client.StatesrvAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One statesrvd child process and its working directory: a Unix socket (no TCP listener), the LMDB
 * data directory, the local checkpoint directory, the restore area (its only restore root) and its
 * log. Started by a keyed backend and stopped (SIGTERM, then SIGKILL) when the backend is disposed;
 * the working directory is removed then.
 *
 * <pre>
 * workdir/
 *   statesrvd.conf  sock  statesrvd.log
 *   data/           the LMDB store
 *   checkpoints/    chk-N: local checkpoints, uploaded to Flink's checkpoint storage
 *   restore/        checkpoint files downloaded from Flink's storage for a restore
 * </pre>
 */
final class StatesrvProcess implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(StatesrvProcess.class);

    /**
     * statesrvd runs under a small shell that holds the read end of a pipe from this JVM: when the
     * pipe closes — {@link #close()}, or the JVM dying, even by SIGKILL — it sends statesrvd
     * SIGTERM (a clean stop). So a TaskManager that crashes never leaves a statesrvd behind. The
     * shell exits with statesrvd's status when statesrvd exits by itself.
     */
    private static final String WATCHDOG =
            "exec 3<&0; \"$@\" </dev/null & pid=$!;"
                    + " (cat <&3 >/dev/null; kill -TERM $pid 2>/dev/null) </dev/null &"
                    + " wait $pid; rc=$?; exit $rc";

    /** sun_path is 108 bytes on Linux; leave room for the terminating NUL. */
    private static final int MAX_SOCKET_PATH = 100;

    private final Path workDir;
    private final Path socket;
    private final Path socketDir; // a separate short directory, or null
    private final Path log;
    private final Process process;

    private StatesrvProcess(Path workDir, Path socket, Path socketDir, Process process) {
        this.workDir = workDir;
        this.socket = socket;
        this.socketDir = socketDir;
        this.log = workDir.resolve("statesrvd.log");
        this.process = process;
    }

    /**
     * Creates {@code workDir} and starts statesrvd in it with {@code keyGroups} key groups; returns
     * when it is ready to serve.
     *
     * @throws IOException if it cannot be started or is not ready within the start timeout (its log
     *     is in the message)
     */
    static StatesrvProcess start(
            String binary,
            Path workDir,
            int keyGroups,
            StatesrvConfigValues cfg,
            Duration startTimeout)
            throws IOException {
        Files.createDirectories(workDir.resolve("restore"));
        Path socket = workDir.resolve("sock");
        Path socketDir = null;
        if (socket.toAbsolutePath().toString().getBytes(StandardCharsets.UTF_8).length
                > MAX_SOCKET_PATH) {
            socketDir = Files.createTempDirectory(Path.of("/tmp"), "statesrv-");
            socket = socketDir.resolve("sock");
        }
        // statesrvd's config parser takes lines of at most 199 bytes (server bug, see
        // docs/flink.md): the directories go on the command line, and a long restore root is
        // reached through a short symlink.
        String restoreRoot = workDir.resolve("restore").toAbsolutePath().toString();
        if (restoreRoot.length() > 150) {
            if (socketDir == null) {
                socketDir = Files.createTempDirectory(Path.of("/tmp"), "statesrv-");
            }
            Path link = socketDir.resolve("restore");
            Files.createSymbolicLink(link, workDir.resolve("restore").toAbsolutePath());
            restoreRoot = link.toString();
        }
        List<String> conf = new ArrayList<>(cfg.extraConfig);
        conf.add("restore_roots = " + restoreRoot);
        conf.add("key_groups = " + keyGroups);
        conf.add("checkpoint_retain = " + cfg.localCheckpointsRetained);
        conf.add("map_size = " + cfg.mapSize);
        conf.add("map_size_max = " + cfg.mapSizeMax);
        conf.add("max_value_size = " + cfg.maxValueSize);
        conf.add("max_frame_size = " + (cfg.maxValueSize + (1 << 20)));
        conf.add("max_states = " + cfg.maxStates);
        // A stream job's durability point is the checkpoint; the map stays sparse on disk.
        conf.add("sync = none");
        conf.add("writemap = no");
        // statesrvd's incremental checkpoints (its default, checkpoint_incremental = yes): each
        // data file of a chain becomes shared state in Flink's checkpoint storage, uploaded once
        // (StatesrvSnapshotStrategy). "checkpoint_incremental = no" in server-config makes every
        // checkpoint full.
        Path confFile = workDir.resolve("statesrvd.conf");
        Files.write(confFile, conf, StandardCharsets.UTF_8);

        Path log = workDir.resolve("statesrvd.log");
        Process p =
                new ProcessBuilder(
                                "/bin/sh",
                                "-c",
                                WATCHDOG,
                                "statesrvd-watchdog",
                                binary,
                                "--config",
                                confFile.toAbsolutePath().toString(),
                                "--listen",
                                "",
                                "--unix",
                                socket.toAbsolutePath().toString(),
                                "--data-dir",
                                workDir.resolve("data").toAbsolutePath().toString(),
                                "--checkpoint-dir",
                                workDir.resolve("checkpoints").toAbsolutePath().toString())
                        .directory(workDir.toFile())
                        .redirectInput(ProcessBuilder.Redirect.PIPE)
                        .redirectErrorStream(true)
                        .redirectOutput(log.toFile())
                        .start();
        StatesrvProcess s = new StatesrvProcess(workDir, socket, socketDir, p);
        try {
            s.waitReady(startTimeout);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        LOG.info("statesrvd (pid {}) serves {} in {}", p.pid(), socket, workDir);
        return s;
    }

    private void waitReady(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            String text = Files.exists(log) ? Files.readString(log) : "";
            if (text.contains(" ready (pid") && Files.exists(socket)) {
                return;
            }
            if (!process.isAlive()) {
                throw new IOException(
                        "statesrvd exited with status "
                                + process.exitValue()
                                + " during start-up:\n"
                                + text);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while statesrvd was starting", e);
            }
        }
        throw new IOException(
                "statesrvd not ready in " + timeout.toMillis() + " ms:\n" + Files.readString(log));
    }

    StatesrvAddress address() {
        return StatesrvAddress.unix(socket);
    }

    Path workDir() {
        return workDir;
    }

    /** Where downloaded checkpoints go: the server's restore root. */
    Path restoreDir() {
        return workDir.resolve("restore");
    }

    long pid() {
        return process.pid();
    }

    /** The tail of the server's log, for error messages. */
    String logTail() {
        try {
            String t = Files.readString(log);
            return t.length() > 4000 ? t.substring(t.length() - 4000) : t;
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** SIGTERM, SIGKILL after 10 s; then the working directory is removed. Idempotent. */
    @Override
    public void close() {
        if (process.isAlive()) {
            try {
                process.getOutputStream().close(); // the watchdog's cue: SIGTERM to statesrvd
            } catch (IOException e) {
                LOG.debug("closing the watchdog's pipe: {}", e.toString());
            }
            boolean interrupted = false;
            try {
                if (!process.waitFor(15, TimeUnit.SECONDS)) {
                    LOG.warn("statesrvd under pid {} did not stop in 15 s; killing it", pid());
                    killAll();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                killAll();
                interrupted = true;
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        deleteQuietly(workDir);
        if (socketDir != null) {
            deleteQuietly(socketDir);
        }
    }

    private void killAll() {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
    }

    static void deleteQuietly(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            LOG.warn("could not remove {}: {}", dir, e.toString());
        }
    }

    /** The statesrvd settings a backend derives from its options. */
    static final class StatesrvConfigValues {
        final int localCheckpointsRetained;
        final long mapSize;
        final long mapSizeMax;
        final long maxValueSize;
        final int maxStates;
        final List<String> extraConfig;

        StatesrvConfigValues(
                int localCheckpointsRetained,
                long mapSize,
                long mapSizeMax,
                long maxValueSize,
                int maxStates,
                List<String> extraConfig) {
            this.localCheckpointsRetained = localCheckpointsRetained;
            this.mapSize = mapSize;
            this.mapSizeMax = mapSizeMax;
            this.maxValueSize = maxValueSize;
            this.maxStates = maxStates;
            this.extraConfig = List.copyOf(extraConfig);
        }
    }
}
