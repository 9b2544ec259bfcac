package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ops libstatesrv gained with state TTL, incremental and remote checkpoints, against a real
 * statesrvd: a state's TTL setting, per-write TTLs on put and merge, get with the TTL left,
 * snapshot options (full, wait_remote), the chain of an incremental checkpoint, and the checkpoint
 * directories that are not checkpoints.
 *
 * <p>Timing: the server's sweep is off ({@code ttl_sweep_budget = 0}), so an expired entry stays
 * until a read meets it. TTLs that must not expire during a test are an hour; those that must are 1
 * ms, read back only after a sleep of 50 ms (the clock only moves forward), so a slow machine can
 * only make the test slower, never make it fail.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TtlAndCheckpointOpsTest {
    private static final Duration HOUR = Duration.ofHours(1);
    private static final Duration MS = Duration.ofMillis(1);

    @TempDir static Path dir;
    static Statesrvd server;

    @BeforeAll
    static void start() throws Exception {
        server = Statesrvd.start(dir, "ttl_sweep_budget = 0");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    private static StatesrvClient connect(Statesrvd s) {
        return StatesrvClient.connect(Statesrvd.config(s.unix()).build());
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Long enough for a 1 ms TTL to have passed, on any machine. */
    private static void letExpire() throws InterruptedException {
        Thread.sleep(50);
    }

    /** An hour's TTL, read back within the minute a slow machine may take. */
    private static void assertAboutAnHourLeft(Optional<ValueWithTtl> v) {
        assertThat(v).isPresent();
        assertThat(v.get().expires()).isTrue();
        assertThat(v.get().ttlRemainingMillis())
                .isLessThanOrEqualTo(HOUR.toMillis())
                .isGreaterThan(HOUR.toMillis() - 60_000);
    }

    @Test
    void aStatesTtlIsSetReadListedAndRemoved() {
        try (StatesrvClient c = connect(server)) {
            BlockingClient s = c.blocking();
            assertThat(s.stateTtl("ttl-setting")).isEmpty();
            TtlConfig want =
                    TtlConfig.of(Duration.ofMinutes(90))
                            .withUpdate(TtlConfig.Update.ON_READ_AND_WRITE)
                            .withVisibility(TtlConfig.Visibility.RETURN_EXPIRED_IF_NOT_CLEANED_UP);
            assertThat(s.setStateTtl("ttl-setting", want)).contains(want);
            assertThat(s.stateTtl("ttl-setting")).contains(want);
            // Setting it created the state, and list_states shows the setting.
            assertThat(s.listStates())
                    .filteredOn(i -> i.name().equals("ttl-setting"))
                    .singleElement()
                    .satisfies(i -> assertThat(i.ttl()).contains(want));
            // Another setting replaces it.
            TtlConfig other = TtlConfig.of(Duration.ofSeconds(30));
            assertThat(s.setStateTtl("ttl-setting", other)).contains(other);
            assertThat(s.removeStateTtl("ttl-setting")).isEmpty();
            assertThat(s.stateTtl("ttl-setting")).isEmpty();
            assertThat(s.listStates())
                    .filteredOn(i -> i.name().equals("ttl-setting"))
                    .singleElement()
                    .satisfies(i -> assertThat(i.ttl()).isEmpty());
            // A bad state name is the server's INVALID_ARGUMENT, and the connection stays usable.
            assertThatThrownBy(() -> s.stateTtl("no spaces"))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> assertThat(e.status()).isEqualTo(Status.INVALID_ARGUMENT));
            s.ping();
        }
    }

    @Test
    void ttlConfigRefusesWhatTheWireCannotSay() {
        assertThatThrownBy(() -> TtlConfig.of(Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TtlConfig.of(Duration.ofMillis(-5)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TtlConfig.of(Duration.ofNanos(1_500_000)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(TtlConfig.of(Duration.ofSeconds(2)).ttlMillis()).isEqualTo(2000);
    }

    @Test
    void perWriteTtlsAndTheTtlLeft() throws Exception {
        try (StatesrvClient c = connect(server)) {
            BlockingClient s = c.blocking();
            StateKey plain = StateKey.of("ttl-writes", "plain");
            s.put(plain, b("v"));
            Optional<ValueWithTtl> p = s.getWithTtl(plain);
            assertThat(p).isPresent();
            assertThat(p.get().value()).isEqualTo(Value.raw("v"));
            assertThat(p.get().ttlRemainingMillis()).isEqualTo(-1);
            assertThat(p.get().expires()).isFalse();
            assertThat(p.get().remaining()).isEmpty();
            assertThat(s.getWithTtl(StateKey.of("ttl-writes", "absent"))).isEmpty();

            StateKey put = StateKey.of("ttl-writes", "put");
            s.put(put, Value.raw("w"), HOUR);
            assertAboutAnHourLeft(s.getWithTtl(put));
            StateKey list = StateKey.of("ttl-writes", "list");
            s.append(list, b("a"), HOUR);
            assertAboutAnHourLeft(s.getWithTtl(list));
            StateKey counter = StateKey.of("ttl-writes", "counter");
            assertThat(s.add(counter, 5, HOUR)).isEqualTo(5);
            assertAboutAnHourLeft(s.getWithTtl(counter));
            // Every write sets the expiry anew: one without a TTL leaves the entry without one.
            s.put(put, b("w2"));
            assertThat(s.getWithTtl(put).orElseThrow().ttlRemainingMillis()).isEqualTo(-1);
            // Through a batch, and through the asynchronous API.
            StateKey inBatch = StateKey.of("ttl-writes", "batch");
            s.batch(new Batch().put(inBatch, Value.raw("x"), HOUR).add(counter, 1, HOUR));
            assertAboutAnHourLeft(s.getWithTtl(inBatch));
            assertAboutAnHourLeft(c.getWithTtl(counter).get(10, TimeUnit.SECONDS));

            // A 1 ms TTL has passed 50 ms later: the entry is gone (never return expired), and a
            // merge onto it starts from empty.
            StateKey brief = StateKey.of("ttl-writes", "brief");
            s.put(brief, Value.raw("gone"), MS);
            StateKey briefCounter = StateKey.of("ttl-writes", "brief-counter");
            s.add(briefCounter, 100, MS);
            StateKey briefList = StateKey.of("ttl-writes", "brief-list");
            s.batch(new Batch().append(briefList, b("old"), MS));
            letExpire();
            assertThat(s.getWithTtl(brief)).isEmpty();
            assertThat(s.get(brief)).isEmpty();
            assertThat(s.add(briefCounter, 3)).isEqualTo(3);
            s.append(briefList, b("new"));
            assertThat(s.get(briefList).orElseThrow().asList()).containsExactly(b("new"));
            // A part of a ms counts as a whole one (never "no TTL"); negative TTLs are refused.
            StateKey tiny = StateKey.of("ttl-writes", "tiny");
            s.put(tiny, Value.raw("t"), Duration.ofNanos(1));
            letExpire();
            assertThat(s.get(tiny)).isEmpty();
            assertThatThrownBy(() -> s.put(tiny, Value.raw("t"), Duration.ofMillis(-1)))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void theStatesTtlAppliesToWritesAndItsVisibilityToReads() throws Exception {
        try (StatesrvClient c = connect(server)) {
            BlockingClient s = c.blocking();
            String st = "ttl-state";
            s.setStateTtl(st, TtlConfig.of(HOUR));
            StateKey k = StateKey.of(st, "k");
            s.put(k, b("v"));
            assertAboutAnHourLeft(s.getWithTtl(k));
            // A per-write TTL overrides the state's; under RETURN_EXPIRED_IF_NOT_CLEANED_UP the
            // expired entry is still returned (no sweep runs here), with 0 left.
            s.setStateTtl(
                    st,
                    TtlConfig.of(HOUR)
                            .withVisibility(TtlConfig.Visibility.RETURN_EXPIRED_IF_NOT_CLEANED_UP));
            StateKey e = StateKey.of(st, "expired");
            s.put(e, Value.raw("stale"), MS);
            letExpire();
            ValueWithTtl stale = s.getWithTtl(e).orElseThrow();
            assertThat(stale.value()).isEqualTo(Value.raw("stale"));
            assertThat(stale.expired()).isTrue();
            assertThat(stale.remaining()).contains(Duration.ZERO);
            // Back to never returning expired entries: the same entry is gone.
            s.setStateTtl(st, TtlConfig.of(HOUR));
            assertThat(s.getWithTtl(e)).isEmpty();
        }
    }

    @Test
    void snapshotOptionsAndIncrementalChains() {
        try (StatesrvClient c = connect(server)) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of("chain", "a"), b("1"));
            CheckpointInfo base = s.snapshot(SnapshotOptions.defaults().id(100).full(true));
            assertThat(base.id()).isEqualTo(100);
            assertThat(base.incremental()).isFalse();
            assertThat(base.baseId()).isEqualTo(100);
            assertThat(base.totalBytes()).isEqualTo(base.addedBytes());
            assertThat(base.remote()).isEmpty();
            s.put(StateKey.of("chain", "b"), b("2"));
            CheckpointInfo inc = s.snapshot(SnapshotOptions.defaults().id(101));
            assertThat(inc.id()).isEqualTo(101);
            assertThat(inc.incremental()).isTrue();
            assertThat(inc.baseId()).isEqualTo(100);
            assertThat(inc.totalBytes()).isEqualTo(base.addedBytes() + inc.addedBytes());
            // A full one on request, even where an incremental one could be made.
            CheckpointInfo full = s.snapshot(SnapshotOptions.defaults().id(102).full(true));
            assertThat(full.incremental()).isFalse();
            assertThat(full.baseId()).isEqualTo(102);
            // The listing says the same, and nothing about remote copies (no checkpoint_remote).
            assertThat(s.listCheckpoints())
                    .filteredOn(i -> i.id() == 101)
                    .singleElement()
                    .satisfies(
                            i -> {
                                assertThat(i.incremental()).isTrue();
                                assertThat(i.baseId()).isEqualTo(100);
                                assertThat(i.remote()).isEmpty();
                            });
            // wait_remote without checkpoint_remote is the server's INVALID_ARGUMENT.
            assertThatThrownBy(() -> s.snapshot(SnapshotOptions.defaults().waitRemote(true)))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(Status.INVALID_ARGUMENT);
                                assertThat(e.isConnectionError()).isFalse();
                            });
            assertThatThrownBy(() -> SnapshotOptions.defaults().id(0))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void directoriesThatAreNotCheckpointsAreListedAsProblems() throws Exception {
        try (StatesrvClient c = connect(server)) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of("problems", "a"), b("1"));
            CheckpointInfo good = s.snapshot(SnapshotOptions.defaults().id(500));
            Path bad = dir.resolve("checkpoints").resolve("chk-900");
            Files.createDirectories(bad);
            Files.write(bad.resolve("MANIFEST"), b("not a manifest at all"));
            CheckpointListing l = s.checkpointListing();
            assertThat(l.checkpoints()).extracting(CheckpointInfo::id).contains(good.id());
            assertThat(l.checkpoints()).extracting(CheckpointInfo::id).doesNotContain(900L);
            assertThat(l.problems())
                    .filteredOn(p -> p.id() == 900)
                    .singleElement()
                    .satisfies(
                            p -> {
                                assertThat(Path.of(p.path()).getFileName().toString())
                                        .isEqualTo("chk-900");
                                assertThat(p.problem()).isNotBlank();
                            });
            assertThat(s.listCheckpointProblems()).isEqualTo(l.problems());
            deleteTree(bad);
            assertThat(s.listCheckpointProblems())
                    .extracting(CheckpointProblem::id)
                    .doesNotContain(900L);
        }
    }

    /**
     * A server with checkpoint_remote whose object store cannot be reached (nothing listens on port
     * 1 of loopback): a snapshot that waits for the remote copy fails with UNAVAILABLE while the
     * checkpoint itself is durable locally, and the listing shows it as not remote, with the URL it
     * goes to. (The successful upload, with remote_url, needs a real object store: the C suite's
     * test-s3 covers it; this Java test covers the client's side of both answers.)
     */
    @Test
    void waitRemoteWithTheStoreUnreachable(@TempDir Path own) throws Exception {
        Path creds = own.resolve("creds");
        Files.write(
                creds,
                List.of("[default]", "aws_access_key_id = test", "aws_secret_access_key = test"));
        Files.setPosixFilePermissions(creds, PosixFilePermissions.fromString("rw-------"));
        try (Statesrvd r =
                        Statesrvd.start(
                                own,
                                "checkpoint_remote = s3://bucket/job",
                                "checkpoint_remote_node = node-1",
                                "s3_endpoint = http://127.0.0.1:1",
                                "s3_credentials_file = " + creds);
                StatesrvClient c = connect(r)) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of("st", "a"), b("1"));
            assertThatThrownBy(() -> s.snapshot(SnapshotOptions.defaults().id(3).waitRemote(true)))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(Status.UNAVAILABLE);
                                assertThat(e.isConnectionError()).isFalse();
                                assertThat(e.detail()).contains("durable locally");
                            });
            CheckpointInfo local =
                    s.listCheckpoints().stream().filter(i -> i.id() == 3).findFirst().orElseThrow();
            assertThat(local.remote()).isPresent();
            assertThat(local.remote().get().state()).isIn("local", "uploading");
            assertThat(local.remote().get().url()).startsWith("s3://bucket/job/node-1/chk-3");
            assertThat(local.remoteUrl()).isEmpty();
            // Without the wait the snapshot completes locally as ever.
            CheckpointInfo next = s.snapshot(SnapshotOptions.defaults().id(4));
            assertThat(next.remote()).isEmpty();
            assertThat(s.stats().lastCheckpointId()).isEqualTo(4);
        }
    }

    private static void deleteTree(Path p) throws Exception {
        try (var w = Files.walk(p)) {
            for (Path q : w.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }
}
