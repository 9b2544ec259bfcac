package io.statesrv.client;

/**
 * What a merge left: {@code counter}, the counter's new value (ADD_I64), and {@code valueSize}, the
 * value's size in bytes after the merge.
 */
public record MergeResult(long counter, long valueSize) {}
