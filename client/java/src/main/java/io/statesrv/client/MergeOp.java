package io.statesrv.client;

/** A server-side read-modify-write; see {@link StatesrvClient#merge}. */
public enum MergeOp {
    /** Appends the operand, one element, to a LIST value (created if absent). */
    APPEND,
    /** Adds the operand, an 8-byte big-endian int64, to a COUNTER value (absent = 0). */
    ADD_I64
}
