package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.statesrv.client.Statesrvd.Transport;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Every op against one real statesrvd, over TCP and over the Unix socket. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ClientOpsTest {
    @TempDir static Path dir;
    static Statesrvd server;

    @BeforeAll
    static void start() throws Exception {
        server = Statesrvd.start(dir, "max_value_size = 65536");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    private static StatesrvClient connect(Transport t) {
        return StatesrvClient.connect(Statesrvd.config(server.address(t)).build());
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** A state name of its own per test and transport, so tests do not see each other. */
    private static String state(String what, Transport t) {
        return what + "-" + t.name().toLowerCase();
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void helloReportsTheServersLimits(Transport t) {
        try (StatesrvClient c = connect(t)) {
            ServerInfo i = c.info();
            assertThat(i.protocolVersion()).isEqualTo(1);
            assertThat(i.keyGroups()).isEqualTo(128);
            assertThat(i.maxValueSize()).isEqualTo(65536);
            assertThat(i.maxFrameSize()).isEqualTo(16 << 20);
            assertThat(i.maxKeySize()).isEqualTo(509);
            assertThat(i.serverVersion()).isNotEmpty();
            c.blocking().ping();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void putGetDeleteRoundTrip(Transport t) throws Exception {
        String st = state("users", t);
        try (StatesrvClient c = connect(t)) {
            StateKey k = StateKey.of(st, "alice");
            assertThat(c.get(k).get(10, TimeUnit.SECONDS)).isEmpty();
            c.put(k, b("{\"plan\":\"pro\"}")).get(10, TimeUnit.SECONDS);
            Optional<Value> v = c.get(k).get(10, TimeUnit.SECONDS);
            assertThat(v).contains(Value.raw("{\"plan\":\"pro\"}"));
            // Another namespace of the same key is another entry.
            StateKey w = k.withNamespace("window-12:00");
            assertThat(c.blocking().get(w)).isEmpty();
            c.blocking().put(w, Value.raw(new byte[0]));
            assertThat(c.blocking().get(w)).contains(Value.raw(new byte[0]));
            assertThat(c.blocking().delete(k)).isTrue();
            assertThat(c.blocking().delete(k)).isFalse();
            assertThat(c.blocking().get(k)).isEmpty();
            assertThat(c.blocking().get(w)).isPresent();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void anExplicitKeyGroupIsPartOfTheAddress(Transport t) {
        String st = state("kg", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            byte[] key = b("alice");
            int natural = KeyGroups.of(key, c.info().keyGroups());
            assertThat(natural).isEqualTo(93);
            s.put(StateKey.of(st, key), b("natural"));
            // The same key given its natural group explicitly is the same entry ...
            assertThat(s.get(StateKey.of(st, key).withKeyGroup(natural)))
                    .contains(Value.raw("natural"));
            // ... and in group 0 a different one.
            StateKey zero = StateKey.of(st, key).withKeyGroup(0);
            assertThat(s.get(zero)).isEmpty();
            s.put(zero, b("zero"));
            List<Entry> all = s.scanAll(ScanSpec.wholeState(st));
            assertThat(all).extracting(Entry::keyGroup).containsExactly(0, natural);
            assertThat(all.get(0).value()).isEqualTo(Value.raw("zero"));
            // A scan and a clear by key honour the explicit group.
            assertThat(s.scanAll(ScanSpec.key(zero))).hasSize(1);
            assertThat(s.clear(zero)).isEqualTo(1);
            assertThat(s.get(StateKey.of(st, key))).contains(Value.raw("natural"));
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void multiGetAnswersEachKeyInOrder(Transport t) {
        String st = state("multi", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of(st, "a"), b("1"));
            s.put(StateKey.of(st, "c"), Value.counter(3));
            List<Optional<Value>> r =
                    s.multiGet(
                            List.of(
                                    StateKey.of(st, "a"),
                                    StateKey.of(st, "b"),
                                    StateKey.of(st, "c")));
            assertThat(r).hasSize(3);
            assertThat(r.get(0)).contains(Value.raw("1"));
            assertThat(r.get(1)).isEmpty();
            assertThat(r.get(2).orElseThrow().kind()).isEqualTo(ValueKind.COUNTER);
            assertThat(r.get(2).orElseThrow().asCounter()).isEqualTo(3);
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void mergeAppendBuildsAListAndAddCounts(Transport t) {
        String st = state("merge", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            StateKey events = StateKey.of(st, "alice").withNamespace("events");
            assertThat(s.append(events, b("login"))).isEqualTo(6);
            s.append(events, b("click"));
            s.append(events, new byte[0]);
            Value list = s.get(events).orElseThrow();
            assertThat(list.kind()).isEqualTo(ValueKind.LIST);
            assertThat(list.asList())
                    .extracting(e -> new String(e, StandardCharsets.UTF_8))
                    .containsExactly("login", "click", "");

            StateKey clicks = StateKey.of(st, "alice").withNamespace("clicks");
            assertThat(s.add(clicks, 1)).isEqualTo(1);
            assertThat(s.add(clicks, 41)).isEqualTo(42);
            assertThat(s.add(clicks, -50)).isEqualTo(-8);
            MergeResult m = s.merge(clicks, MergeOp.ADD_I64, Values.encodeCounter(8));
            assertThat(m.counter()).isZero();
            assertThat(m.valueSize()).isEqualTo(8);
            assertThat(s.get(clicks)).contains(Value.counter(0));

            // ListState.update: a put of a whole LIST value.
            s.put(events, Value.list(List.of(b("x"), b("yz"))));
            assertThat(s.get(events).orElseThrow().asList()).hasSize(2);
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void aBatchAppliesEveryKindOfOp(Transport t) {
        String st = state("batch", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of(st, "gone"), b("x"));
            Batch batch =
                    new Batch()
                            .put(StateKey.of(st, "seen"), b("1"))
                            .add(StateKey.of(st, "hits"), 5)
                            .append(StateKey.of(st, "log"), b("visit"))
                            .delete(StateKey.of(st, "gone"));
            assertThat(batch.size()).isEqualTo(4);
            assertThat(s.batch(batch)).isEqualTo(4);
            assertThat(s.get(StateKey.of(st, "seen"))).contains(Value.raw("1"));
            assertThat(s.get(StateKey.of(st, "hits"))).contains(Value.counter(5));
            assertThat(s.get(StateKey.of(st, "log"))).contains(Value.list(List.of(b("visit"))));
            assertThat(s.get(StateKey.of(st, "gone"))).isEmpty();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void scanPagesWithCursorsCoverEveryEntryOnce(Transport t) {
        String st = state("scan", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            Batch batch = new Batch();
            for (int i = 0; i < 250; i++) {
                batch.put(StateKey.of(st, "k" + i).withNamespace("n" + (i % 3)), b("v" + i));
            }
            s.batch(batch);
            ScanSpec spec = ScanSpec.wholeState(st).limit(40);
            List<Entry> seen = new ArrayList<>();
            byte[] cursor = null;
            int pages = 0;
            do {
                ScanPage p = s.scan(spec, cursor);
                assertThat(p.entries()).hasSizeLessThanOrEqualTo(40);
                seen.addAll(p.entries());
                cursor = p.cursor();
                pages++;
            } while (cursor != null);
            assertThat(pages).isGreaterThanOrEqualTo(7);
            assertThat(seen).hasSize(250).doesNotHaveDuplicates();
            // Stored order: key group first.
            assertThat(seen).extracting(Entry::keyGroup).isSorted();
            for (Entry e : seen) {
                assertThat(e.keyGroup()).isEqualTo(KeyGroups.of(e.key(), 128));
            }
            assertThat(s.scanAll(ScanSpec.wholeState(st))).containsExactlyElementsOf(seen);

            // A key-group range holds exactly the entries of those groups.
            List<Entry> low = s.scanAll(ScanSpec.keyGroups(st, 0, 63).limit(7));
            assertThat(low)
                    .containsExactlyElementsOf(
                            seen.stream().filter(e -> e.keyGroup() <= 63).toList());
            // By key: every namespace of one key.
            assertThat(s.scanAll(ScanSpec.key(st, "k4")))
                    .singleElement()
                    .satisfies(e -> assertThat(e.namespace()).isEqualTo(b("n1")));
            assertThat(s.scanAll(ScanSpec.wholeState(state("no-such-state", t)))).isEmpty();
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void clearListStatesAndDropState(Transport t) {
        String st = state("profile", t);
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            StateKey alice = StateKey.of(st, "alice");
            s.put(alice.withNamespace("plan"), b("pro"));
            s.put(alice.withNamespace("tz"), b("UTC"));
            s.put(StateKey.of(st, "bob"), b("x"));
            assertThat(s.listStates())
                    .filteredOn(i -> i.name().equals(st))
                    .singleElement()
                    .satisfies(i -> assertThat(i.entries()).isEqualTo(3));
            assertThat(s.clear(alice)).isEqualTo(2);
            assertThat(s.clear(alice)).isZero();
            assertThat(s.dropState(st)).isEqualTo(1);
            assertThat(s.listStates()).noneMatch(i -> i.name().equals(st));
        }
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void statsCountTheRequestsOfEachOp(Transport t) {
        try (StatesrvClient c = connect(t)) {
            BlockingClient s = c.blocking();
            long before = s.stats().op("ping").orElseThrow().count();
            for (int i = 0; i < 5; i++) {
                s.ping();
            }
            ServerStats st = s.stats();
            assertThat(st.op("ping").orElseThrow().count()).isEqualTo(before + 5);
            assertThat(st.op("ping").orElseThrow().statuses()).containsKey(Status.OK);
            assertThat(st.keyGroups()).isEqualTo(128);
            assertThat(st.connectionsCurrent()).isGreaterThanOrEqualTo(1);
            assertThat(st.latencyBoundsMicros()).isNotEmpty().isSorted();
            assertThat(st.statusErrors()).containsKey("invalid_argument");
            assertThat(st.connectionErrors()).containsKey("protocol");
            assertThat(st.mapSize()).isPositive();
        }
    }

    /** On a server of its own: a ranged restore limits what the store serves. */
    @Test
    void snapshotListDeleteAndRestoreCheckpoints(@TempDir Path own) throws Exception {
        String st = "ckpt";
        try (Statesrvd srv = Statesrvd.start(own);
                StatesrvClient c = StatesrvClient.connect(Statesrvd.config(srv.unix()).build())) {
            BlockingClient s = c.blocking();
            s.put(StateKey.of(st, "a"), b("before"));
            s.put(StateKey.of(st, "z"), b("before"));
            CheckpointInfo snap = s.snapshot(7);
            assertThat(snap.id()).isEqualTo(7);
            assertThat(snap.path()).hasValueSatisfying(p -> assertThat(p).endsWith("chk-7"));
            assertThat(snap.keyGroups()).isEqualTo(128);
            assertThat(snap.states()).anySatisfy(x -> assertThat(x.name()).isEqualTo(st));
            assertThatThrownBy(() -> s.snapshot(7))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> assertThat(e.status()).isEqualTo(Status.INVALID_ARGUMENT));
            CheckpointInfo next = s.snapshot();
            assertThat(next.id()).isEqualTo(8);
            assertThat(s.listCheckpoints()).extracting(CheckpointInfo::id).contains(7L, 8L);

            s.put(StateKey.of(st, "a"), b("after"));
            RestoreResult r = s.restore(List.of("7"));
            assertThat(r.kgFirst()).isZero();
            assertThat(r.kgLast()).isEqualTo(127);
            assertThat(r.entries()).isGreaterThanOrEqualTo(2);
            assertThat(s.get(StateKey.of(st, "a"))).contains(Value.raw("before"));

            // A ranged restore keeps only the entries of those key groups.
            int kgA = KeyGroups.of(b("a"), 128);
            int kgZ = KeyGroups.of(b("z"), 128);
            assertThat(kgA).isNotEqualTo(kgZ);
            s.restore(List.of("7"), kgA, kgA);
            assertThat(s.get(StateKey.of(st, "a"))).isPresent();
            // A key of another key group is misrouted: reads and writes are refused alike.
            assertThatThrownBy(() -> s.get(StateKey.of(st, "z")))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(Status.INVALID_ARGUMENT);
                                assertThat(e.detail()).contains("not served here");
                            });
            assertThatThrownBy(() -> s.put(StateKey.of(st, "z"), b("x")))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(Status.INVALID_ARGUMENT);
                                assertThat(e.detail()).contains("not served here");
                            });
            s.restore(List.of("7"));
            assertThat(s.get(StateKey.of(st, "z"))).contains(Value.raw("before"));

            s.deleteCheckpoint(8);
            assertThat(s.listCheckpoints()).extracting(CheckpointInfo::id).doesNotContain(8L);
            assertThatThrownBy(() -> s.deleteCheckpoint(8))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> assertThat(e.status()).isEqualTo(Status.NOT_FOUND));
            assertThatThrownBy(() -> s.restore(List.of("999")))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> assertThat(e.status()).isEqualTo(Status.NOT_FOUND));
            assertThat(c.isOpen()).isTrue();
        }
    }
}
