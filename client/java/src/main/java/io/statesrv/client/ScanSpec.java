package io.statesrv.client;

import java.nio.charset.StandardCharsets;

/**
 * What a scan covers: a whole state, every namespace of one key, or an inclusive range of key
 * groups; and how many entries one reply may hold. Immutable.
 */
public final class ScanSpec {
    enum Mode {
        STATE,
        KEY,
        KEY_GROUPS
    }

    final String state;
    final Mode mode;
    final byte[] key;
    final int keyGroup; // KEY: -1 none
    final int first;
    final int last;
    final int limit;

    private ScanSpec(
            String state, Mode mode, byte[] key, int keyGroup, int first, int last, int limit) {
        if (state == null) {
            throw new NullPointerException("state");
        }
        this.state = state;
        this.mode = mode;
        this.key = key;
        this.keyGroup = keyGroup;
        this.first = first;
        this.last = last;
        this.limit = limit;
    }

    /** Every entry of the state. */
    public static ScanSpec wholeState(String state) {
        return new ScanSpec(state, Mode.STATE, null, -1, 0, 0, 0);
    }

    /** Every namespace of one key (a MapState's entries, a key's windows). */
    public static ScanSpec key(String state, byte[] key) {
        return new ScanSpec(state, Mode.KEY, key.clone(), -1, 0, 0, 0);
    }

    public static ScanSpec key(String state, String key) {
        return key(state, key.getBytes(StandardCharsets.UTF_8));
    }

    /** Every namespace of {@code k}'s key, in its explicit key group if it has one. */
    public static ScanSpec key(StateKey k) {
        return new ScanSpec(k.state(), Mode.KEY, k.keyBytes(), k.rawKeyGroup(), 0, 0, 0);
    }

    /** Key groups {@code first..last}, inclusive. */
    public static ScanSpec keyGroups(String state, int first, int last) {
        return new ScanSpec(state, Mode.KEY_GROUPS, null, -1, first, last, 0);
    }

    /** At most {@code n} entries per reply; 0: the server's default (capped at max_scan_limit). */
    public ScanSpec limit(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("limit " + n + " is negative");
        }
        return new ScanSpec(state, mode, key, keyGroup, first, last, n);
    }
}
