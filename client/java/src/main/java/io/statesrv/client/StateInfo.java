package io.statesrv.client;

/** One state: its entries and the bytes of the store pages it occupies. */
public record StateInfo(String name, long entries, long bytes) {}
