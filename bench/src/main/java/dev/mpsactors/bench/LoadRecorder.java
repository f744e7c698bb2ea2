package dev.mpsactors.bench;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;

/**
 * Counts one measurement's requests from any thread: who may send next (duration or request count),
 * the exactly-one-reply accounting over the whole run, and throughput and latency over the measured
 * window only (completions after the warm-up and, for a timed run, before its end).
 */
final class LoadRecorder {
    private final long requestLimit;
    private final AtomicLong issued = new AtomicLong();
    private final LongAdder sent = new LongAdder();
    private final LongAdder succeeded = new LongAdder();
    private final LongAdder failed = new LongAdder();
    private final LongAdder measured = new LongAdder();
    private final AtomicLong lastCompletion = new AtomicLong();
    private final ConcurrentHistogram latency = new ConcurrentHistogram(3);
    private volatile String firstFailure;
    final long start;
    final long measureStart;
    /** 0 for a run bounded by a request count. */
    final long end;

    LoadRecorder(double warmupSeconds, double seconds, long requestLimit) {
        this.start = System.nanoTime();
        this.requestLimit = requestLimit;
        this.measureStart = requestLimit > 0 ? start : start + (long) (warmupSeconds * 1e9);
        this.end = requestLimit > 0 ? 0 : measureStart + (long) (seconds * 1e9);
    }

    /** Whether a client may send another request; if so it is counted as sent. */
    boolean trySend() {
        boolean ok = requestLimit > 0 ? issued.incrementAndGet() <= requestLimit : System.nanoTime() < end;
        if (ok) {
            sent.increment();
        }
        return ok;
    }

    void completed(long sentAtNanos, boolean ok, String failure) {
        long now = System.nanoTime();
        if (ok) {
            succeeded.increment();
        } else {
            failed.increment();
            if (firstFailure == null) {
                firstFailure = failure;
            }
        }
        if (now >= measureStart && (end == 0 || now <= end)) {
            measured.increment();
            latency.recordValue(Math.max(1, (now - sentAtNanos) / 1000)); // microseconds
        }
        lastCompletion.accumulateAndGet(now, Math::max);
    }

    long sent() {
        return sent.sum();
    }

    long succeeded() {
        return succeeded.sum();
    }

    long failed() {
        return failed.sum();
    }

    long answered() {
        return succeeded.sum() + failed.sum();
    }

    long measured() {
        return measured.sum();
    }

    String firstFailure() {
        return firstFailure;
    }

    /** Seconds of the measured window: to the end for a timed run, to the last completion otherwise. */
    double windowSeconds() {
        long stop = end != 0 ? end : Math.max(lastCompletion.get(), measureStart + 1);
        return (stop - measureStart) / 1e9;
    }

    Histogram latencyMicros() {
        return latency.copy();
    }

    boolean measuring(long now) {
        return now >= measureStart;
    }
}
