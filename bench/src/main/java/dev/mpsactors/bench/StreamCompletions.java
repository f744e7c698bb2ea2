package dev.mpsactors.bench;

import dev.mpsactors.nativemps.CompletionListener;
import dev.mpsactors.nativemps.NativeStatus;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * A native stream's completion listener for the thread baselines: one future per committed point (the
 * committer may ask after the point already completed, hence get-or-create on both sides), and the
 * executor's busy time for the utilisation column.
 */
final class StreamCompletions implements CompletionListener {
    private final ConcurrentHashMap<Long, CompletableFuture<String>> points = new ConcurrentHashMap<>();
    private final LongAdder busyNanos = new LongAdder();

    @Override
    public void onComplete(long point, NativeStatus status, String message, long startedNanos, long finishedNanos) {
        busyNanos.add(Math.max(0, finishedNanos - startedNanos));
        // Never blocks: completing a future only runs the waiter's (non-existent) dependent stages.
        points.computeIfAbsent(point, p -> new CompletableFuture<>())
                .complete(status == NativeStatus.OK ? null : status + ": " + message);
    }

    /** Completes with null when {@code point} ran, or with the failure's text. */
    CompletableFuture<String> when(long point) {
        return points.computeIfAbsent(point, p -> new CompletableFuture<>())
                .whenComplete((r, e) -> points.remove(point));
    }

    long busyNanos() {
        return busyNanos.sum();
    }
}
