package io.statesrv.client;

import com.google.protobuf.InvalidProtocolBufferException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import statesrv.v1.Statesrv;

/**
 * One connection to statesrvd, shared by any number of threads.
 *
 * <p>A request is encoded on the caller's thread; then, under {@link #lock}, it takes the next id
 * and goes at the end of both {@link #pending} (awaiting its reply) and {@link #outbox} (awaiting
 * the writer), so ids, wire order and reply order are one order. The server answers in request
 * order, so the reader only ever matches a reply against the head of {@code pending}; anything else
 * is a protocol error. Threads: a writer that drains the outbox into gathering writes, a reader
 * that decodes replies and completes futures (callbacks run there unless the caller chains an
 * *Async stage), and one timer shared by all connections for the I/O and job timeouts.
 *
 * <p>States: OPEN until the first failure or close; then {@link #failure} is set (sticky), the
 * socket is closed, every pending future fails with it, and later requests fail at once.
 */
final class Connection {
    /** Replies up to this size are read before the handshake names the server's limit. */
    static final int HELLO_MAX_FRAME = 1 << 20;

    /** Replies may pass max_frame_size a little (the C client allows the same slack). */
    static final int FRAME_SLACK = 64 * 1024;

    private static final int WRITE_GATHER_BYTES = 256 * 1024;
    private static final long WRITE_FAILURE_GRACE_MS = 500;
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final ScheduledExecutorService TIMER = newTimer();

    /** One request awaiting its reply. */
    private static final class Pending {
        final long id;
        final CompletableFuture<Object> future;
        final Function<Statesrv.Response, Object> decode;
        final String op;
        final boolean job;
        final long enqueuedNanos;
        final boolean holdsPermit;

        Pending(
                long id,
                CompletableFuture<Object> future,
                Function<Statesrv.Response, Object> decode,
                String op,
                boolean job,
                boolean holdsPermit) {
            this.id = id;
            this.future = future;
            this.decode = decode;
            this.op = op;
            this.job = job;
            this.enqueuedNanos = System.nanoTime();
            this.holdsPermit = holdsPermit;
        }
    }

    private final SocketChannel channel;
    private final StatesrvConfig config;
    private final String peer;
    private final Semaphore permits;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition outboxReady = lock.newCondition();
    private final Condition drained = lock.newCondition();
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private final ArrayDeque<byte[]> outbox = new ArrayDeque<>();
    private final Thread reader;
    private final Thread writer;
    private final ScheduledFuture<?> watchdog;

    // Guarded by lock.
    private long nextId = 1;
    private StatesrvException failure;
    private boolean failureSeen; // some future has failed with it
    private boolean closing;

    private volatile long lastReadNanos = System.nanoTime();
    private volatile long maxSend = HELLO_MAX_FRAME;
    private final Frames.Decoder decoder = new Frames.Decoder(HELLO_MAX_FRAME + FRAME_SLACK);

    private Connection(SocketChannel channel, StatesrvConfig config) {
        this.channel = channel;
        this.config = config;
        this.peer = config.address.toString();
        this.permits = new Semaphore(config.maxInFlight);
        int n = SEQ.incrementAndGet();
        this.reader = new Thread(this::readLoop, "statesrv-reader-" + n);
        this.writer = new Thread(this::writeLoop, "statesrv-writer-" + n);
        reader.setDaemon(true);
        writer.setDaemon(true);
        long tick = tickMillis(config);
        this.watchdog =
                TIMER.scheduleWithFixedDelay(
                        this::checkTimeouts, tick, tick, TimeUnit.MILLISECONDS);
        reader.start();
        writer.start();
    }

    /** Opens the socket within the connect timeout. The handshake is the caller's. */
    static Connection open(StatesrvConfig config) {
        SocketChannel ch;
        try {
            ch =
                    config.address.isUnix()
                            ? SocketChannel.open(StandardProtocolFamily.UNIX)
                            : SocketChannel.open();
        } catch (IOException e) {
            throw new StatesrvException(
                    Status.CONNECT_FAILED, "socket: " + e.getMessage(), true, e);
        }
        try {
            ch.configureBlocking(false);
            if (!ch.connect(config.address.socketAddress())) {
                try (Selector sel = Selector.open()) {
                    ch.register(sel, SelectionKey.OP_CONNECT);
                    long deadline = System.nanoTime() + config.connectTimeout.toNanos();
                    while (!ch.finishConnect()) {
                        long left = deadline - System.nanoTime();
                        if (left <= 0) {
                            throw new StatesrvException(
                                    Status.TIMEOUT,
                                    "connect to "
                                            + config.address
                                            + ": no answer in "
                                            + config.connectTimeout.toMillis()
                                            + " ms",
                                    true,
                                    null);
                        }
                        sel.select(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                    }
                }
            }
            ch.configureBlocking(true);
            if (!config.address.isUnix()) {
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            return new Connection(ch, config);
        } catch (IOException | RuntimeException e) {
            closeQuietly(ch);
            if (e instanceof StatesrvException se) {
                throw se;
            }
            throw new StatesrvException(
                    Status.CONNECT_FAILED,
                    "connect to " + config.address + ": " + e.getMessage(),
                    true,
                    e);
        }
    }

    /** After the handshake: the server's limits. */
    void setLimits(int maxFrameSize) {
        long max = Integer.toUnsignedLong(maxFrameSize);
        maxSend = max;
        decoder.setMaxFrame(max + FRAME_SLACK);
    }

    int inFlight() {
        lock.lock();
        try {
            return pending.size();
        } finally {
            lock.unlock();
        }
    }

    boolean isOpen() {
        lock.lock();
        try {
            return failure == null && !closing;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Sends one request. Never throws: every outcome, including a refusal before sending, is the
     * future's.
     *
     * @param request a Request with its op set and id 0
     * @param job a snapshot or restore: the job timeout applies, not the I/O timeout
     */
    @SuppressWarnings("unchecked")
    <T> CompletableFuture<T> submit(
            Statesrv.Request request, boolean job, Function<Statesrv.Response, T> decode) {
        CompletableFuture<Object> f = new CompletableFuture<>();
        String op = request.getOpCase().name().toLowerCase(java.util.Locale.ROOT);
        StatesrvException early = refusal();
        if (early != null) {
            f.completeExceptionally(early);
            return (CompletableFuture<T>) (CompletableFuture<?>) f;
        }
        byte[] opBytes = request.toByteArray();
        if (Frames.maxRequestFrameSize(opBytes.length) - Frames.HEADER > maxSend) {
            f.completeExceptionally(
                    new StatesrvException(
                            Status.TOO_LARGE,
                            op
                                    + " request of "
                                    + opBytes.length
                                    + " bytes would pass the server's max_frame_size of "
                                    + maxSend
                                    + " (not sent)"));
            return (CompletableFuture<T>) (CompletableFuture<?>) f;
        }
        boolean permit;
        try {
            permit = acquirePermit();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.completeExceptionally(
                    new StatesrvException(
                            Status.INTERRUPTED, "interrupted while waiting for an in-flight slot"));
            return (CompletableFuture<T>) (CompletableFuture<?>) f;
        }
        if (!permit) {
            f.completeExceptionally(
                    new StatesrvException(
                            Status.TIMEOUT,
                            config.maxInFlight
                                    + " requests stayed in flight for "
                                    + config.inFlightWait.toMillis()
                                    + " ms (maxInFlight); "
                                    + op
                                    + " not sent"));
            return (CompletableFuture<T>) (CompletableFuture<?>) f;
        }
        lock.lock();
        try {
            StatesrvException late = refusalLocked();
            if (late != null) {
                releasePermit(true);
                f.completeExceptionally(late);
                return (CompletableFuture<T>) (CompletableFuture<?>) f;
            }
            long id = nextId++;
            pending.addLast(
                    new Pending(
                            id, f, (Function<Statesrv.Response, Object>) decode, op, job, true));
            outbox.addLast(Frames.requestFrame(id, opBytes));
            outboxReady.signal();
        } finally {
            lock.unlock();
        }
        return (CompletableFuture<T>) (CompletableFuture<?>) f;
    }

    /**
     * Takes an in-flight slot. The reader thread (a callback that sends) never waits, since only it
     * can free slots: it takes one beyond the bound instead.
     */
    private boolean acquirePermit() throws InterruptedException {
        if (Thread.currentThread() == reader) {
            if (!permits.tryAcquire()) {
                overdraft.incrementAndGet();
            }
            return true;
        }
        // A free slot is taken at once, even by an interrupted thread: only a wait for one is
        // interruptible (Semaphore's timed tryAcquire throws on a set interrupt flag first).
        if (permits.tryAcquire()) {
            return true;
        }
        long wait = config.inFlightWait.toNanos();
        return wait != 0 && permits.tryAcquire(wait, TimeUnit.NANOSECONDS);
    }

    /** Slots the reader took beyond the bound; their replies give nothing back. */
    private final AtomicInteger overdraft = new AtomicInteger();

    private void releasePermit(boolean held) {
        if (!held) {
            return;
        }
        int o;
        while ((o = overdraft.get()) > 0) {
            if (overdraft.compareAndSet(o, o - 1)) {
                return;
            }
        }
        permits.release();
    }

    private StatesrvException refusal() {
        lock.lock();
        try {
            return refusalLocked();
        } finally {
            lock.unlock();
        }
    }

    private StatesrvException refusalLocked() {
        if (failure != null && !failureSeen) {
            // The server's reason arrived while nothing was pending (e.g. it refused the
            // connection at once): the first request to come gets it, as a pending one would.
            failureSeen = true;
            return new StatesrvException(
                    failure.status(), failure.detail(), true, failure.getCause());
        }
        if (failure != null) {
            Status s = failure.status().isServerStatus() ? Status.IO_ERROR : failure.status();
            return new StatesrvException(
                    s,
                    "connection to " + peer + " failed earlier: " + failure.getMessage(),
                    true,
                    failure);
        }
        if (closing) {
            return new StatesrvException(Status.CLOSED, "the client is closing", true, null);
        }
        return null;
    }

    // --- the writer ---------------------------------------------------------------------

    private void writeLoop() {
        List<ByteBuffer> batch = new ArrayList<>();
        try {
            while (true) {
                lock.lock();
                try {
                    while (outbox.isEmpty() && failure == null) {
                        outboxReady.await();
                    }
                    if (failure != null) {
                        return;
                    }
                    int bytes = 0;
                    while (!outbox.isEmpty() && (bytes < WRITE_GATHER_BYTES || batch.isEmpty())) {
                        byte[] f = outbox.pollFirst();
                        bytes += f.length;
                        batch.add(ByteBuffer.wrap(f));
                    }
                } finally {
                    lock.unlock();
                }
                ByteBuffer[] bufs = batch.toArray(new ByteBuffer[0]);
                long left = 0;
                for (ByteBuffer b : bufs) {
                    left += b.remaining();
                }
                while (left > 0) {
                    left -= channel.write(bufs);
                }
                batch.clear();
            }
        } catch (InterruptedException e) {
            fail(new StatesrvException(Status.IO_ERROR, "writer interrupted", true, e));
        } catch (IOException e) {
            // A server that ends the connection sends its reason first (an id-0 frame, e.g.
            // UNAVAILABLE when it is full) and may close before our write: let the reader take
            // that frame, or the end of the stream, before this failure stands.
            StatesrvException f = ioFailure("write", e);
            TIMER.schedule(() -> fail(f), WRITE_FAILURE_GRACE_MS, TimeUnit.MILLISECONDS);
        }
    }

    // --- the reader ---------------------------------------------------------------------

    private void readLoop() {
        ByteBuffer rb = ByteBuffer.allocate(64 * 1024);
        try {
            while (true) {
                rb.clear();
                int n = channel.read(rb);
                if (n < 0) {
                    fail(
                            new StatesrvException(
                                    Status.IO_ERROR, "connection closed by " + peer, true, null));
                    return;
                }
                lastReadNanos = System.nanoTime();
                decoder.feed(rb.array(), 0, n);
                byte[] frame;
                while ((frame = decoder.next()) != null) {
                    if (!deliver(Statesrv.Response.parseFrom(frame))) {
                        return;
                    }
                }
            }
        } catch (Frames.FrameTooLargeException e) {
            fail(new StatesrvException(Status.PROTOCOL_ERROR, e.getMessage(), true, e));
        } catch (InvalidProtocolBufferException e) {
            fail(
                    new StatesrvException(
                            Status.PROTOCOL_ERROR,
                            "reply is not a Response: " + e.getMessage(),
                            true,
                            e));
        } catch (IOException e) {
            fail(ioFailure("read", e));
        }
    }

    /** Completes the head request with r. False when the connection is now failed. */
    private boolean deliver(Statesrv.Response r) {
        if (r.getId() == 0) {
            // A connection-level error: the server closes after it (docs/protocol.md).
            fail(
                    new StatesrvException(
                            Status.fromWire(r.getStatusValue()),
                            r.getMessage().isEmpty()
                                    ? "the server ended the connection"
                                    : r.getMessage(),
                            true,
                            null));
            return false;
        }
        Pending p;
        lock.lock();
        try {
            p = pending.peekFirst();
            if (p == null || p.id != r.getId()) {
                p = null;
            } else {
                pending.pollFirst();
                if (pending.isEmpty()) {
                    drained.signalAll();
                }
            }
        } finally {
            lock.unlock();
        }
        if (p == null) {
            fail(
                    new StatesrvException(
                            Status.PROTOCOL_ERROR,
                            "reply with id " + r.getId() + " does not match the oldest request",
                            true,
                            null));
            return false;
        }
        releasePermit(p.holdsPermit);
        Object result;
        try {
            result = p.decode.apply(r);
        } catch (StatesrvException e) {
            p.future.completeExceptionally(e);
            if (e.isConnectionError()) {
                fail(e);
                return false;
            }
            return true;
        } catch (RuntimeException e) {
            StatesrvException pe =
                    new StatesrvException(
                            Status.PROTOCOL_ERROR,
                            p.op + " reply could not be decoded: " + e,
                            true,
                            e);
            p.future.completeExceptionally(pe);
            fail(pe);
            return false;
        }
        p.future.complete(result);
        return true;
    }

    // --- timeouts, failure and close ----------------------------------------------------

    private static long tickMillis(StatesrvConfig c) {
        long shortest = Long.MAX_VALUE;
        for (java.time.Duration d : new java.time.Duration[] {c.ioTimeout, c.jobTimeout}) {
            if (!d.isZero()) {
                shortest = Math.min(shortest, d.toMillis());
            }
        }
        return Math.max(10, Math.min(1000, shortest == Long.MAX_VALUE ? 1000 : shortest / 4));
    }

    /** Fails the connection when its oldest request has waited too long (see StatesrvConfig). */
    private void checkTimeouts() {
        Pending head;
        lock.lock();
        try {
            head = pending.peekFirst();
        } finally {
            lock.unlock();
        }
        if (head == null) {
            return;
        }
        long now = System.nanoTime();
        if (head.job) {
            long limit = config.jobTimeout.toNanos();
            if (limit > 0 && now - head.enqueuedNanos > limit) {
                fail(
                        new StatesrvException(
                                Status.TIMEOUT,
                                head.op
                                        + ": no reply in "
                                        + config.jobTimeout.toMillis()
                                        + " ms (jobTimeout); the job goes on in the server",
                                true,
                                null));
            }
            return;
        }
        long limit = config.ioTimeout.toNanos();
        long since = Math.max(head.enqueuedNanos, lastReadNanos);
        if (limit > 0 && now - since > limit) {
            fail(
                    new StatesrvException(
                            Status.TIMEOUT,
                            head.op
                                    + ": no reply from "
                                    + peer
                                    + " in "
                                    + config.ioTimeout.toMillis()
                                    + " ms (ioTimeout)",
                            true,
                            null));
        }
    }

    private StatesrvException ioFailure(String what, IOException e) {
        return new StatesrvException(
                Status.IO_ERROR,
                what + " " + peer + ": " + (e.getMessage() == null ? e.toString() : e.getMessage()),
                true,
                e);
    }

    /** The first failure wins: it is kept, the socket closed, every pending future failed. */
    void fail(StatesrvException e) {
        List<Pending> failed;
        lock.lock();
        try {
            if (failure != null) {
                return;
            }
            failure = e;
            failureSeen = !pending.isEmpty() || e.status() == Status.CLOSED;
            failed = new ArrayList<>(pending);
            pending.clear();
            outbox.clear();
            outboxReady.signalAll();
            drained.signalAll();
        } finally {
            lock.unlock();
        }
        watchdog.cancel(false);
        closeQuietly(channel);
        for (Pending p : failed) {
            releasePermit(p.holdsPermit);
            p.future.completeExceptionally(e);
        }
    }

    /**
     * Refuses new requests, waits up to the close timeout for the outstanding replies (not when
     * called from a callback on the reader thread), then fails what is left with CLOSED.
     */
    void close() {
        lock.lock();
        try {
            closing = true;
            if (Thread.currentThread() != reader) {
                long left = config.closeTimeout.toNanos();
                while (!pending.isEmpty() && failure == null && left > 0) {
                    left = drained.awaitNanos(left);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            lock.unlock();
        }
        fail(new StatesrvException(Status.CLOSED, "the client was closed", true, null));
        if (Thread.currentThread() != reader) {
            join(reader);
        }
        if (Thread.currentThread() != writer) {
            join(writer);
        }
    }

    private static void join(Thread t) {
        try {
            t.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(SocketChannel ch) {
        if (ch == null) {
            return;
        }
        try {
            ch.close();
        } catch (IOException ignored) {
            // Closing is all we wanted.
        }
    }

    private static ScheduledExecutorService newTimer() {
        ScheduledThreadPoolExecutor t =
                new ScheduledThreadPoolExecutor(
                        1,
                        r -> {
                            Thread th = new Thread(r, "statesrv-timer");
                            th.setDaemon(true);
                            return th;
                        });
        t.setRemoveOnCancelPolicy(true);
        return t;
    }
}
