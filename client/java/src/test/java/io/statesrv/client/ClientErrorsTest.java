package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Request-level errors: the status and the server's message, and the connection stays up. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ClientErrorsTest {
    @TempDir static Path dir;
    static Statesrvd server;
    static StatesrvClient client;

    @BeforeAll
    static void start() throws Exception {
        server =
                Statesrvd.start(
                        dir,
                        "max_value_size = 1024",
                        "max_batch_ops = 10",
                        "max_frame_size = 65536");
        client = StatesrvClient.connect(Statesrvd.config(server.tcp()).build());
    }

    @AfterAll
    static void stop() throws Exception {
        client.close();
        server.close();
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static StatesrvException fails(ThrowingCallable call, Status status, String text) {
        StatesrvException[] caught = new StatesrvException[1];
        assertThatThrownBy(call)
                .isInstanceOfSatisfying(
                        StatesrvException.class,
                        e -> {
                            assertThat(e.status()).isEqualTo(status);
                            assertThat(e.detail()).contains(text);
                            assertThat(e.isConnectionError()).isFalse();
                            caught[0] = e;
                        });
        // A request-level error never closes the connection.
        client.blocking().ping();
        return caught[0];
    }

    @Test
    void aBadStateNameIsInvalidArgumentNamingTheField() {
        fails(
                () -> client.blocking().put(StateKey.of("no spaces", "k"), b("v")),
                Status.INVALID_ARGUMENT,
                "state");
        fails(
                () -> client.blocking().get(StateKey.of("x".repeat(65), "k")),
                Status.INVALID_ARGUMENT,
                "state");
        fails(() -> client.blocking().get(StateKey.of("s", "")), Status.INVALID_ARGUMENT, "key");
    }

    @Test
    void aKeyGroupOutOfRangeIsInvalidArgument() {
        fails(
                () -> client.blocking().get(StateKey.of("s", "k").withKeyGroup(128)),
                Status.INVALID_ARGUMENT,
                "key_group");
    }

    @Test
    void mergeOnTheWrongKindAndCounterOverflowAreInvalidArgument() {
        StateKey raw = StateKey.of("errs", "raw");
        client.blocking().put(raw, b("text"));
        fails(() -> client.blocking().add(raw, 1), Status.INVALID_ARGUMENT, "");
        fails(() -> client.blocking().append(raw, b("e")), Status.INVALID_ARGUMENT, "");
        StateKey ctr = StateKey.of("errs", "ctr");
        client.blocking().add(ctr, Long.MAX_VALUE);
        fails(() -> client.blocking().add(ctr, 1), Status.INVALID_ARGUMENT, "overflow");
        assertThat(client.blocking().get(ctr)).contains(Value.counter(Long.MAX_VALUE));
        fails(
                () -> client.blocking().merge(ctr, MergeOp.ADD_I64, new byte[3]),
                Status.INVALID_ARGUMENT,
                "");
        // A COUNTER put of 7 bytes, a LIST put with broken framing.
        fails(
                () -> client.blocking().put(ctr, Value.of(new byte[7], ValueKind.COUNTER)),
                Status.INVALID_ARGUMENT,
                "");
        fails(
                () -> client.blocking().put(raw, Value.of(new byte[] {5, 'a'}, ValueKind.LIST)),
                Status.INVALID_ARGUMENT,
                "");
    }

    @Test
    void overTheServersLimitsIsTooLarge() {
        fails(
                () -> client.blocking().put(StateKey.of("errs", "big"), new byte[1025]),
                Status.TOO_LARGE,
                "");
        fails(
                () -> client.blocking().get(StateKey.of("errs", "k".repeat(600))),
                Status.TOO_LARGE,
                "");
        Batch tooMany = new Batch();
        for (int i = 0; i < 11; i++) {
            tooMany.put(StateKey.of("errs", "b" + i), b("v"));
        }
        fails(() -> client.blocking().batch(tooMany), Status.TOO_LARGE, "");
        assertThat(client.blocking().get(StateKey.of("errs", "b0"))).isEmpty();
    }

    @Test
    void aRequestOverMaxFrameSizeIsRefusedLocallyAndNothingIsSent() {
        StatesrvException e =
                fails(
                        () -> client.blocking().put(StateKey.of("errs", "huge"), new byte[70_000]),
                        Status.TOO_LARGE,
                        "max_frame_size");
        assertThat(e.detail()).contains("not sent");
    }

    @Test
    void aFailingBatchOpAppliesNothingAndIsNamed() {
        StateKey raw = StateKey.of("errs", "batch-raw");
        client.blocking().put(raw, b("text"));
        Batch batch =
                new Batch()
                        .put(StateKey.of("errs", "batch-new"), b("1"))
                        .add(raw, 1); // not a counter
        fails(() -> client.blocking().batch(batch), Status.INVALID_ARGUMENT, "ops[1]");
        assertThat(client.blocking().get(StateKey.of("errs", "batch-new"))).isEmpty();
    }

    @Test
    void aBadScanCursorIsInvalidArgument() {
        fails(
                () -> client.blocking().scan(ScanSpec.wholeState("errs"), new byte[] {42, 1, 2, 3}),
                Status.INVALID_ARGUMENT,
                "cursor");
        fails(
                () -> client.blocking().scan(ScanSpec.keyGroups("errs", 5, 4), null),
                Status.INVALID_ARGUMENT,
                "");
    }

    @Test
    void pipelinedErrorsFailOnlyTheirOwnFutures() throws Exception {
        List<CompletableFuture<?>> fs = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            fs.add(
                    i % 10 == 3
                            ? client.put(StateKey.of("bad name", "k"), b("v"))
                            : client.put(StateKey.of("errs", "p" + i), b("v" + i)));
        }
        int failed = 0;
        for (int i = 0; i < fs.size(); i++) {
            try {
                fs.get(i).get(10, TimeUnit.SECONDS);
                assertThat(i % 10).isNotEqualTo(3);
            } catch (ExecutionException e) {
                assertThat(i % 10).isEqualTo(3);
                assertThat(((StatesrvException) e.getCause()).status())
                        .isEqualTo(Status.INVALID_ARGUMENT);
                failed++;
            }
        }
        assertThat(failed).isEqualTo(10);
        assertThat(client.blocking().get(StateKey.of("errs", "p99"))).contains(Value.raw("v99"));
    }
}
