package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statesrv.client.Statesrvd.Transport;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Pipelining, ordering, the in-flight bound, timeouts, a server that dies or is paused, close. A
 * paused server (SIGSTOP) keeps its sockets open but answers nothing: requests sent to it are
 * certainly in flight.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ConnectionTest {
    @TempDir Path dir;

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static StatesrvException failure(CompletableFuture<?> f) {
        try {
            f.get(20, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(StatesrvException.class);
            return (StatesrvException) e.getCause();
        } catch (InterruptedException | TimeoutException e) {
            throw new AssertionError("future did not complete in 20 s", e);
        }
        throw new AssertionError("the future succeeded");
    }

    @Test
    void manyRequestsInFlightCompleteInRequestOrder() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c =
                        StatesrvClient.connect(
                                Statesrvd.config(server.unix()).maxInFlight(4096).build())) {
            int n = 20_000;
            ConcurrentLinkedQueue<Integer> completed = new ConcurrentLinkedQueue<>();
            List<CompletableFuture<Long>> adds = new ArrayList<>(n);
            StateKey ctr = StateKey.of("pipe", "ctr");
            int maxSeen = 0;
            for (int i = 0; i < n; i++) {
                int seq = i;
                adds.add(c.add(ctr, 1).whenComplete((v, e) -> completed.add(seq)));
                maxSeen = Math.max(maxSeen, c.inFlight());
            }
            CompletableFuture.allOf(adds.toArray(new CompletableFuture<?>[0]))
                    .get(60, TimeUnit.SECONDS);
            // Each add saw every earlier one: the server applied them in request order.
            for (int i = 0; i < n; i++) {
                assertThat(adds.get(i).get()).isEqualTo(i + 1L);
            }
            assertThat(new ArrayList<>(completed)).isSorted().hasSize(n);
            assertThat(maxSeen).as("requests were pipelined").isGreaterThan(1);
            assertThat(c.inFlight()).isZero();
        }
    }

    /**
     * A thread with its interrupt flag set still sends while a slot is free (only a wait for a slot
     * is interruptible): Flink interrupts task and query threads, and their state reads must not
     * fail for it when nothing would block.
     */
    @Test
    void anInterruptedThreadSendsWhileASlotIsFree() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c = StatesrvClient.connect(Statesrvd.config(server.tcp()).build())) {
            StateKey k = StateKey.of("interrupted", "k");
            Thread.currentThread().interrupt();
            CompletableFuture<Void> put = c.put(k, b("v"));
            CompletableFuture<Optional<Value>> get = c.get(k);
            assertThat(Thread.interrupted()).as("the flag stays set").isTrue();
            put.get(20, TimeUnit.SECONDS);
            assertThat(get.get(20, TimeUnit.SECONDS)).contains(Value.raw("v"));
        }
    }

    @Test
    void aReadSeesTheWritesPipelinedBeforeIt() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c = StatesrvClient.connect(Statesrvd.config(server.tcp()).build())) {
            StateKey k = StateKey.of("pipe", "k");
            List<CompletableFuture<Optional<Value>>> reads = new ArrayList<>();
            for (int i = 0; i < 500; i++) {
                c.put(k, b("v" + i));
                reads.add(c.get(k));
                if (i % 7 == 0) {
                    c.delete(k);
                    reads.add(c.get(k));
                }
            }
            int r = 0;
            for (int i = 0; i < 500; i++) {
                assertThat(reads.get(r++).get(20, TimeUnit.SECONDS)).contains(Value.raw("v" + i));
                if (i % 7 == 0) {
                    assertThat(reads.get(r++).get(20, TimeUnit.SECONDS)).isEmpty();
                }
            }
        }
    }

    @Test
    void manyThreadsShareOneClient() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c =
                        StatesrvClient.connect(
                                Statesrvd.config(server.unix()).maxInFlight(64).build())) {
            int threads = 8;
            int each = 2_000;
            AtomicInteger errors = new AtomicInteger();
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                Thread th =
                        new Thread(
                                () -> {
                                    try {
                                        List<CompletableFuture<Long>> fs = new ArrayList<>();
                                        for (int i = 0; i < each; i++) {
                                            fs.add(c.add(StateKey.of("mt", "t" + id), 1));
                                        }
                                        for (CompletableFuture<Long> f : fs) {
                                            f.get(30, TimeUnit.SECONDS);
                                        }
                                    } catch (Exception e) {
                                        errors.incrementAndGet();
                                    }
                                });
                ts.add(th);
                th.start();
            }
            for (Thread th : ts) {
                th.join(60_000);
                assertThat(th.isAlive()).isFalse();
            }
            assertThat(errors).hasValue(0);
            for (int t = 0; t < threads; t++) {
                assertThat(c.blocking().get(StateKey.of("mt", "t" + t)))
                        .contains(Value.counter(each));
            }
        }
    }

    @Test
    void theInFlightBoundHoldsCallersBackAndReleasesThem() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c =
                        StatesrvClient.connect(
                                Statesrvd.config(server.unix())
                                        .maxInFlight(4)
                                        .inFlightWait(Duration.ofMillis(300))
                                        .build())) {
            server.pause();
            List<CompletableFuture<Void>> held = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                held.add(c.ping());
            }
            assertThat(c.inFlight()).isEqualTo(4);
            // The fifth waits for a slot, in vain: it fails, nothing was sent.
            long t0 = System.nanoTime();
            StatesrvException e = failure(c.ping());
            long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertThat(e.status()).isEqualTo(Status.TIMEOUT);
            assertThat(e.isConnectionError()).isFalse();
            assertThat(e.detail()).contains("maxInFlight");
            assertThat(waited).isBetween(250L, 10_000L);
            assertThat(c.inFlight()).isEqualTo(4);

            // A caller blocked on the bound goes ahead once the server answers.
            CompletableFuture<CompletableFuture<Void>> blocked =
                    CompletableFuture.supplyAsync(
                            () -> {
                                CompletableFuture<Void> f;
                                do { // retries while the server is still paused
                                    f = c.ping();
                                } while (f.isCompletedExceptionally());
                                return f;
                            });
            Thread.sleep(100);
            assertThat(blocked).isNotDone();
            server.resume();
            for (CompletableFuture<Void> f : held) {
                f.get(20, TimeUnit.SECONDS);
            }
            blocked.get(20, TimeUnit.SECONDS).get(20, TimeUnit.SECONDS);
            assertThat(c.isOpen()).isTrue();
            assertThat(c.inFlight()).isZero();
        }
    }

    @Test
    void aServerKilledMidFlightFailsEveryPendingFuture() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c = StatesrvClient.connect(Statesrvd.config(server.tcp()).build())) {
            c.blocking().put(StateKey.of("kill", "k"), b("v"));
            server.pause();
            List<CompletableFuture<?>> pending = new ArrayList<>();
            for (int i = 0; i < 200; i++) {
                pending.add(
                        i % 2 == 0
                                ? c.get(StateKey.of("kill", "k"))
                                : c.add(StateKey.of("kill", "c"), 1));
            }
            assertThat(c.inFlight()).isEqualTo(200);
            server.kill();
            for (CompletableFuture<?> f : pending) {
                StatesrvException e = failure(f);
                assertThat(e.status()).isEqualTo(Status.IO_ERROR);
                assertThat(e.isConnectionError()).isTrue();
            }
            assertThat(c.isOpen()).isFalse();
            assertThat(c.inFlight()).isZero();
            // Sticky: a later call fails at once, without waiting for anything.
            StatesrvException later = failure(c.ping());
            assertThat(later.status()).isEqualTo(Status.IO_ERROR);
            assertThat(later.detail()).contains("failed earlier");
            assertThatThrownBy(() -> c.blocking().ping()).isInstanceOf(StatesrvException.class);
        }
    }

    @Test
    void aServerThatStopsAnsweringTimesOutAndTheConnectionFails() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c =
                        StatesrvClient.connect(
                                Statesrvd.config(server.unix())
                                        .ioTimeout(Duration.ofMillis(400))
                                        .build())) {
            c.blocking().ping();
            server.pause();
            long t0 = System.nanoTime();
            CompletableFuture<Void> a = c.ping();
            CompletableFuture<Void> b2 = c.ping();
            StatesrvException e = failure(a);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertThat(e.status()).isEqualTo(Status.TIMEOUT);
            assertThat(e.isConnectionError()).isTrue();
            assertThat(ms).isBetween(350L, 10_000L);
            assertThat(failure(b2).status()).isEqualTo(Status.TIMEOUT);
            assertThat(failure(c.ping()).status()).isEqualTo(Status.TIMEOUT);
            server.resume();
        }
    }

    @Test
    void anIdleConnectionDoesNotTimeOut() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir);
                StatesrvClient c =
                        StatesrvClient.connect(
                                Statesrvd.config(server.unix())
                                        .ioTimeout(Duration.ofMillis(200))
                                        .build())) {
            Thread.sleep(700);
            c.blocking().ping();
            assertThat(c.isOpen()).isTrue();
        }
    }

    @Test
    void closeWaitsForRepliesThenRefusesNewRequests() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir)) {
            StatesrvClient c = StatesrvClient.connect(Statesrvd.config(server.tcp()).build());
            List<CompletableFuture<Void>> puts = new ArrayList<>();
            for (int i = 0; i < 1000; i++) {
                puts.add(c.put(StateKey.of("close", "k" + i), b("v")));
            }
            c.close();
            for (CompletableFuture<Void> f : puts) {
                assertThat(f).isCompletedWithValue(null);
            }
            StatesrvException e = failure(c.ping());
            assertThat(e.status()).isEqualTo(Status.CLOSED);
            c.close(); // idempotent
            try (StatesrvClient d =
                    StatesrvClient.connect(Statesrvd.config(server.tcp()).build())) {
                assertThat(d.blocking().get(StateKey.of("close", "k999"))).isPresent();
            }
        }
    }

    @Test
    void closeFailsWhatThePausedServerNeverAnswered() throws Exception {
        try (Statesrvd server = Statesrvd.start(dir)) {
            StatesrvClient c =
                    StatesrvClient.connect(
                            Statesrvd.config(server.unix())
                                    .closeTimeout(Duration.ofMillis(200))
                                    .build());
            server.pause();
            CompletableFuture<Void> f = c.ping();
            c.close();
            assertThat(failure(f).status()).isEqualTo(Status.CLOSED);
            server.resume();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void aFullServerRefusesTheConnectionWithItsOwnStatus(Transport t) throws Exception {
        try (Statesrvd server = Statesrvd.start(dir, "max_connections = 1");
                StatesrvClient first =
                        StatesrvClient.connect(Statesrvd.config(server.tcp()).build())) {
            assertThatThrownBy(
                            () ->
                                    StatesrvClient.connect(
                                            Statesrvd.config(server.address(t)).build()))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status())
                                        .as(e.getMessage())
                                        .isEqualTo(Status.UNAVAILABLE);
                                assertThat(e.detail()).contains("max_connections");
                                assertThat(e.isConnectionError()).isTrue();
                            });
            first.blocking().ping();
        }
    }

    @Test
    void nothingListeningIsConnectFailed() throws Exception {
        StatesrvAddress nowhere = StatesrvAddress.unix(dir.resolve("no-such-socket"));
        assertThatThrownBy(() -> StatesrvClient.connect(Statesrvd.config(nowhere).build()))
                .isInstanceOfSatisfying(
                        StatesrvException.class,
                        e -> assertThat(e.status()).isEqualTo(Status.CONNECT_FAILED));
    }

    @Test
    void addressesParseLikeTheCClients() {
        assertThat(StatesrvAddress.parse("127.0.0.1:7420")).hasToString("127.0.0.1:7420");
        assertThat(StatesrvAddress.parse("[::1]:80")).hasToString("[::1]:80");
        assertThat(StatesrvAddress.parse("unix:/run/s.sock").isUnix()).isTrue();
        for (String bad : new String[] {"nohost", "::1:80", "h:", "h:x", "unix:", "h:70000"}) {
            assertThatThrownBy(() -> StatesrvAddress.parse(bad))
                    .as(bad)
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }
}
