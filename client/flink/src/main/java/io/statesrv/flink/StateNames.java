package io.statesrv.flink;

import io.statesrv.client.KeyGroups;
import java.nio.charset.StandardCharsets;

/**
 * statesrvd state names for Flink state names. statesrvd takes 1..64 bytes of {@code
 * [A-Za-z0-9_.-]}; Flink takes any string. The name is the readable part of the Flink name with
 * every other character replaced, cut to 48 bytes, then '-' and 8 hex digits of a hash of the whole
 * Flink name: deterministic, so a restore finds the same state without a mapping table.
 */
final class StateNames {
    private StateNames() {}

    static String of(String flinkName) {
        byte[] utf8 = flinkName.getBytes(StandardCharsets.UTF_8);
        StringBuilder b = new StringBuilder(64);
        for (int i = 0; i < flinkName.length() && b.length() < 48; i++) {
            char c = flinkName.charAt(i);
            boolean ok =
                    (c >= 'A' && c <= 'Z')
                            || (c >= 'a' && c <= 'z')
                            || (c >= '0' && c <= '9')
                            || c == '_'
                            || c == '.'
                            || c == '-';
            b.append(ok ? c : '_');
        }
        b.append('-').append(String.format("%08x", KeyGroups.murmur3(utf8, 0x5f1e)));
        return b.toString();
    }
}
