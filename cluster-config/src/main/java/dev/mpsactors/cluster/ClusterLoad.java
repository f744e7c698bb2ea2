package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A steady stream of requests to one model of a cluster: {@code concurrency} closed loops, each sending its next
 * request when the previous one has its outcome, cycling over a fixed list of inputs, until {@link #stop}.
 * Every request id is used once; the load counts the outcomes each id gets (exactly one, or it is a
 * duplicate; none after the drain, and it is lost), successes and failures with their causes, latencies, and
 * hands every result to {@code onResult} with the index of its input, for checking.
 */
public final class ClusterLoad {
    /** Receives each result with the index (into the inputs) of the input it was computed from. */
    @FunctionalInterface
    public interface ResultCheck {
        void accept(int input, ClusterInferResult result);
    }

    /**
     * @param sent       requests sent
     * @param succeeded  requests whose outcome was a result
     * @param failed     requests whose outcome was a failure (each with its cause in {@code failures})
     * @param lost       requests with no outcome (after {@link #awaitDrained}: none may be left)
     * @param duplicates outcomes beyond the first for one request id
     * @param failures   failure causes, with how many requests failed with each
     */
    public record Tally(long sent, long succeeded, long failed, long lost, long duplicates,
                        Map<String, Long> failures) {}

    private final ClusterInference inference;
    private final String model;
    private final List<InferenceInputs> inputs;
    private final int concurrency;
    private final String idPrefix;
    private final ResultCheck onResult;
    private final AtomicBoolean running = new AtomicBoolean();
    // Request ids handed out: requests sent.
    private final AtomicLong nextId = new AtomicLong();
    private final AtomicLong succeeded = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong duplicates = new AtomicLong();
    private final ConcurrentMap<String, AtomicLong> failures = new ConcurrentHashMap<>();
    // Latency of every outcome, in nanoseconds (guarded by itself).
    private final LongList latencies = new LongList();

    public ClusterLoad(ClusterInference inference, String model, List<InferenceInputs> inputs, int concurrency,
                       String idPrefix, ResultCheck onResult) {
        if (inputs.isEmpty() || concurrency < 1) {
            throw new IllegalArgumentException("a load needs inputs and a concurrency of at least 1");
        }
        this.inference = inference;
        this.model = model;
        this.inputs = List.copyOf(inputs);
        this.concurrency = concurrency;
        this.idPrefix = idPrefix;
        this.onResult = onResult;
    }

    /** Starts the loops; the first requests go out from the calling thread. */
    public void start() {
        if (!running.compareAndSet(false, true)) {
            throw new IllegalStateException("the load is already running");
        }
        for (int i = 0; i < concurrency; i++) {
            sendNext();
        }
    }

    /** No request is sent after this returns; the ones in flight still get their outcomes. */
    public void stop() {
        running.set(false);
    }

    /** Waits, at most {@code bound}, until every request sent has its outcome; true if so. */
    public boolean awaitDrained(Duration bound) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        while (System.nanoTime() < deadline) {
            if (inFlight() == 0) {
                return true;
            }
            TimeUnit.MILLISECONDS.sleep(20);
        }
        return inFlight() == 0;
    }

    /** Requests sent that have no outcome yet. */
    public long inFlight() {
        return nextId.get() - succeeded.get() - failed.get();
    }

    public Tally tally() {
        Map<String, Long> f = new TreeMap<>();
        failures.forEach((k, v) -> f.put(k, v.get()));
        long ok = succeeded.get();
        long bad = failed.get();
        long sent = nextId.get();
        return new Tally(sent, ok, bad, sent - ok - bad, duplicates.get(), f);
    }

    /** Outcomes so far: pass it to {@link #latenciesNanosFrom} later to leave out what came before. */
    public int outcomes() {
        return latencies.size();
    }

    /** Latencies of the outcomes after the first {@code first} ones, in nanoseconds, sorted. */
    public long[] latenciesNanosFrom(int first) {
        long[] copy = latencies.from(first);
        Arrays.sort(copy);
        return copy;
    }

    private void sendNext() {
        if (!running.get()) {
            return;
        }
        long id = nextId.getAndIncrement();
        int input = (int) (id % inputs.size());
        // Outcomes of this request id: exactly one, or the extra ones are duplicates.
        AtomicInteger count = new AtomicInteger();
        long start = System.nanoTime();
        inference.infer(model, idPrefix + id, inputs.get(input)).whenComplete((r, e) -> {
            if (count.incrementAndGet() > 1) {
                duplicates.incrementAndGet();
                return;
            }
            latencies.add(System.nanoTime() - start);
            if (r != null) {
                succeeded.incrementAndGet();
                onResult.accept(input, r);
            } else {
                failed.incrementAndGet();
                Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
                failures.computeIfAbsent(reasonOf(cause), k -> new AtomicLong()).incrementAndGet();
            }
            sendNext();
        });
    }

    /** A growable array of longs, 8 bytes an entry however long the load runs. */
    private static final class LongList {
        private long[] values = new long[1024];
        private int size;

        synchronized void add(long v) {
            if (size == values.length) {
                values = Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        synchronized int size() {
            return size;
        }

        synchronized long[] from(int first) {
            return Arrays.copyOfRange(values, Math.min(first, size), size);
        }
    }

    /** A failure's cause with the request id taken out, so equal causes count together. */
    private static String reasonOf(Throwable cause) {
        if (cause instanceof ClusterInferenceException c) {
            return c.reason();
        }
        return String.valueOf(cause);
    }
}
