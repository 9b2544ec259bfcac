package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real statesrvd for a test: build/statesrvd (the system property {@code statesrvd}) on
 * 127.0.0.1, an ephemeral port, and a Unix socket, with its data, checkpoints, config and log in a
 * directory of the test's. Every wait is bounded.
 */
final class Statesrvd implements AutoCloseable {
    private static final Pattern LISTENING = Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)");

    final Path dir;
    final Path log;
    private Process process;
    private int port;

    private Statesrvd(Path dir) {
        this.dir = dir;
        this.log = dir.resolve("statesrvd.log");
    }

    /** Starts a server in {@code dir} with these extra config lines ("name = value"). */
    static Statesrvd start(Path dir, String... configLines) throws IOException {
        Statesrvd s = new Statesrvd(dir);
        Files.write(dir.resolve("test.conf"), List.of(configLines), StandardCharsets.UTF_8);
        s.spawn();
        return s;
    }

    static Path binary() {
        String p = System.getProperty("statesrvd");
        assertThat(p).as("system property statesrvd (make test-java passes it)").isNotNull();
        Path b = Path.of(p);
        assertThat(Files.isExecutable(b)).as("%s is an executable (run make first)", b).isTrue();
        return b;
    }

    private void spawn() throws IOException {
        List<String> argv = new ArrayList<>();
        argv.add(binary().toString());
        argv.addAll(
                List.of(
                        "--config", dir.resolve("test.conf").toString(),
                        "--listen", "127.0.0.1:0",
                        "--unix", socket().toString(),
                        "--data-dir", dir.resolve("data").toString(),
                        "--checkpoint-dir", dir.resolve("checkpoints").toString()));
        Files.deleteIfExists(log);
        process =
                new ProcessBuilder(argv)
                        .redirectErrorStream(true)
                        .redirectOutput(log.toFile())
                        .start();
        waitReady();
    }

    private void waitReady() throws IOException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            String text = Files.exists(log) ? Files.readString(log) : "";
            Matcher m = LISTENING.matcher(text);
            if (m.find() && text.contains(" ready (pid")) {
                port = Integer.parseInt(m.group(1));
                return;
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("statesrvd exited during start-up:\n" + text);
            }
            sleep(10);
        }
        process.destroyForcibly();
        throw new IllegalStateException("statesrvd not ready in 10 s:\n" + Files.readString(log));
    }

    Path socket() {
        return dir.resolve("sock");
    }

    StatesrvAddress tcp() {
        return StatesrvAddress.tcp("127.0.0.1", port);
    }

    StatesrvAddress unix() {
        return StatesrvAddress.unix(socket());
    }

    StatesrvAddress address(Transport t) {
        return t == Transport.TCP ? tcp() : unix();
    }

    long pid() {
        return process.pid();
    }

    /** SIGKILL, and wait for the process to be gone. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        assertThat(process.waitFor(10, TimeUnit.SECONDS)).isTrue();
    }

    /** SIGSTOP: the server keeps its sockets but answers nothing. */
    void pause() throws IOException, InterruptedException {
        signal("-STOP");
    }

    /** SIGCONT. */
    void resume() throws IOException, InterruptedException {
        signal("-CONT");
    }

    private void signal(String sig) throws IOException, InterruptedException {
        Process k = new ProcessBuilder("kill", sig, Long.toString(pid())).inheritIO().start();
        assertThat(k.waitFor(5, TimeUnit.SECONDS)).isTrue();
        assertThat(k.exitValue()).isZero();
    }

    String logText() throws IOException {
        return Files.readString(log);
    }

    /** SIGTERM (SIGCONT first, in case it was paused), SIGKILL after 15 s. */
    @Override
    public void close() throws IOException {
        if (process == null || !process.isAlive()) {
            return;
        }
        try {
            resume();
            process.destroy();
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    static StatesrvConfig.Builder config(StatesrvAddress a) {
        return StatesrvConfig.builder()
                .address(a)
                .clientName("java-test")
                .connectTimeout(Duration.ofSeconds(5))
                .ioTimeout(Duration.ofSeconds(20))
                .jobTimeout(Duration.ofSeconds(60));
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    enum Transport {
        TCP,
        UNIX
    }
}
