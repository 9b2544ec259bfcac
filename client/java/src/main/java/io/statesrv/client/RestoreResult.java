package io.statesrv.client;

/** What a restore did: entries and states restored, the key-group range, how long it took. */
public record RestoreResult(
        long entries, int states, int kgFirst, int kgLast, long durationMillis) {}
