package io.statesrv.client;

import java.util.List;

/**
 * One reply of a scan: its entries, and the cursor to pass for the next page ({@code null} when the
 * scan is complete). Cursors are opaque and stay valid across writes.
 */
public record ScanPage(List<Entry> entries, byte[] cursor) {
    public ScanPage {
        entries = List.copyOf(entries);
        cursor = cursor == null || cursor.length == 0 ? null : cursor.clone();
    }

    /** True when there are more pages. */
    public boolean hasMore() {
        return cursor != null;
    }

    @Override
    public byte[] cursor() {
        return cursor == null ? null : cursor.clone();
    }
}
