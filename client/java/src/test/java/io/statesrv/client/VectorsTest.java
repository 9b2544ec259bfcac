package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import statesrv.v1.Statesrv;

/**
 * The Java client against the shared vectors (tests/vectors/client.txt), which the C suite
 * tests/unit/check_vectors.c checks against common/: the two agree byte for byte or one fails.
 * Requests are built with the same code the client sends with (Wire, Frames).
 */
class VectorsTest {
    private static final HexFormat HEX = HexFormat.of();

    private static byte[] unhex(String s) {
        return s.equals("-") ? new byte[0] : HEX.parseHex(s);
    }

    private static String hex(byte[] b) {
        return b.length == 0 ? "-" : HEX.formatHex(b);
    }

    private static List<String> lines() throws IOException {
        String p = System.getProperty("statesrv.vectors", "../../tests/vectors/client.txt");
        return Files.readAllLines(Path.of(p), StandardCharsets.UTF_8);
    }

    @Test
    void everyVectorLineMatchesTheJavaClient() throws IOException {
        Map<String, Integer> counts = new HashMap<>();
        int n = 0;
        for (String raw : lines()) {
            n++;
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] t = line.split("\\s+");
            assertThat(t.length).as("line %d", n).isGreaterThanOrEqualTo(3);
            assertThat(t[t.length - 2]).as("line %d", n).isEqualTo("=");
            String want = t[t.length - 1];
            String got = compute(t, t.length - 2);
            assertThat(got).as("line %d: %s", n, line).isEqualTo(want);
            counts.merge(t[0], 1, Integer::sum);
        }
        // The same minimums as the C suite: an emptied file must not pass.
        assertThat(counts)
                .hasEntrySatisfying("murmur3", c -> assertThat(c).isGreaterThanOrEqualTo(8))
                .hasEntrySatisfying("key_group", c -> assertThat(c).isGreaterThanOrEqualTo(8))
                .hasEntrySatisfying("stored_key", c -> assertThat(c).isGreaterThanOrEqualTo(5))
                .hasEntrySatisfying("list", c -> assertThat(c).isGreaterThanOrEqualTo(3))
                .hasEntrySatisfying("counter", c -> assertThat(c).isGreaterThanOrEqualTo(4))
                .hasEntrySatisfying("request", c -> assertThat(c).isGreaterThanOrEqualTo(15));
    }

    private static String compute(String[] t, int n) {
        switch (t[0]) {
            case "murmur3":
                return String.format(
                        "%08x", KeyGroups.murmur3(unhex(t[1]), Integer.parseUnsignedInt(t[2], 16)));
            case "key_group":
                return Integer.toString(KeyGroups.of(unhex(t[1]), Integer.parseInt(t[2])));
            case "stored_key":
                return hex(KeyGroups.storedKey(Integer.parseInt(t[1]), unhex(t[2]), unhex(t[3])));
            case "list":
                {
                    List<byte[]> elems = new ArrayList<>();
                    for (int i = 2; i < n; i++) {
                        elems.add(unhex(t[i]));
                    }
                    assertThat(elems).hasSize(Integer.parseInt(t[1]));
                    byte[] enc = Values.encodeList(elems);
                    assertThat(Values.decodeList(enc))
                            .zipSatisfy(elems, (a, b) -> assertThat(a).isEqualTo(b));
                    return hex(enc);
                }
            case "counter":
                {
                    long v = Long.parseLong(t[1]);
                    byte[] enc = Values.encodeCounter(v);
                    assertThat(Values.decodeCounter(enc)).isEqualTo(v);
                    return hex(enc);
                }
            case "request":
                return hex(request(t, n));
            default:
                throw new AssertionError("unknown vector kind " + t[0]);
        }
    }

    /** Builds the request of a vector line through the client's own encoders. */
    private static byte[] request(String[] t, int n) {
        Map<String, String> f = new HashMap<>();
        List<String> sources = new ArrayList<>();
        for (int i = 2; i < n; i++) {
            int eq = t[i].indexOf('=');
            String k = t[i].substring(0, eq);
            String v = t[i].substring(eq + 1);
            if (k.equals("source")) {
                sources.add(new String(unhex(v), StandardCharsets.UTF_8));
            } else {
                f.put(k, v);
            }
        }
        long id = Long.parseUnsignedLong(f.remove("id"));
        String state =
                f.containsKey("state")
                        ? new String(unhex(f.remove("state")), StandardCharsets.UTF_8)
                        : "";
        byte[] key = unhex(f.getOrDefault("key", "-"));
        f.remove("key");
        StateKey k = StateKey.of(state, key, unhex(f.getOrDefault("ns", "-")));
        f.remove("ns");
        if (f.containsKey("kg")) {
            k = k.withKeyGroup(Integer.parseInt(f.remove("kg")));
        }
        Statesrv.Request.Builder r = Statesrv.Request.newBuilder();
        switch (t[1]) {
            case "hello" -> {
                assertThat(f.remove("version")).isEqualTo("1");
                String name = new String(unhex(f.remove("name")), StandardCharsets.UTF_8);
                String token = f.remove("token");
                r.setHello(Wire.hello(name, token == null ? null : unhex(token)));
            }
            case "ping" -> r.setPing(Statesrv.Ping.getDefaultInstance());
            case "get" -> r.setGet(Wire.get(k));
            case "put" -> {
                byte[] v = unhex(f.getOrDefault("value", "-"));
                f.remove("value");
                String kind = f.remove("kind");
                ValueKind vk =
                        kind == null ? ValueKind.RAW : ValueKind.values()[Integer.parseInt(kind)];
                r.setPut(Wire.put(k, Value.of(v, vk)));
            }
            case "delete" -> r.setDelete(Wire.delete(k));
            case "merge" -> {
                MergeOp op = f.remove("merge").equals("1") ? MergeOp.APPEND : MergeOp.ADD_I64;
                r.setMerge(Wire.merge(k, op, unhex(f.remove("operand"))));
            }
            case "scan" -> {
                ScanSpec s;
                if (key.length > 0) {
                    s = ScanSpec.key(k);
                } else if (f.containsKey("first")) {
                    s =
                            ScanSpec.keyGroups(
                                    state,
                                    Integer.parseInt(f.remove("first")),
                                    Integer.parseInt(f.remove("last")));
                } else {
                    s = ScanSpec.wholeState(state);
                }
                if (f.containsKey("limit")) {
                    s = s.limit(Integer.parseInt(f.remove("limit")));
                }
                String cursor = f.remove("cursor");
                r.setScan(Wire.scan(s, cursor == null ? null : unhex(cursor)));
            }
            case "clear" -> {
                if ("1".equals(f.remove("whole"))) {
                    r.setClear(Wire.dropState(state));
                } else {
                    r.setClear(Wire.clearKey(k));
                }
            }
            case "snapshot" -> {
                String sid = f.remove("snap_id");
                r.setSnapshot(Wire.snapshot(sid == null ? -1 : Long.parseLong(sid)));
            }
            case "delete_checkpoint" ->
                    r.setDeleteCheckpoint(
                            Statesrv.DeleteCheckpoint.newBuilder()
                                    .setId(Long.parseLong(f.remove("ckpt"))));
            case "restore" -> {
                if (f.containsKey("first")) {
                    r.setRestore(
                            Wire.restore(
                                    sources,
                                    Integer.parseInt(f.remove("first")),
                                    Integer.parseInt(f.remove("last"))));
                } else {
                    r.setRestore(Wire.restore(sources, -1, -1));
                }
            }
            default -> throw new AssertionError("unknown op " + t[1]);
        }
        assertThat(f).as("fields this test did not use").isEmpty();
        byte[] frame = Frames.requestFrame(id, r.build().toByteArray());
        // The id-prepending shortcut equals protobuf-java's own encoding of the whole Request.
        assertThat(frame).isEqualTo(Frames.frame(r.setId(id).build().toByteArray()));
        return frame;
    }

    @Test
    void theKeyGroupOfTheDocsExampleIs93() {
        // docs/client.md: alice in key group 93 of 128.
        assertThat(KeyGroups.of("alice".getBytes(StandardCharsets.UTF_8), 128)).isEqualTo(93);
    }
}
