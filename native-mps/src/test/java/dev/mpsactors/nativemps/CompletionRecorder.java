package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Predicate;

/**
 * A completion listener that records every call (in arrival order, with the calling thread) and completes
 * one future per point, so a test waits for a point with a bounded get instead of sleeping.
 */
final class CompletionRecorder implements CompletionListener {
    /** Generous bound for any completion: a healthy run finishes in milliseconds. */
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    record Completion(long point, NativeStatus status, String message, long startedNanos, long finishedNanos,
                      String threadName, boolean daemon) {}

    private final ConcurrentHashMap<Long, CompletableFuture<Completion>> futures = new ConcurrentHashMap<>();
    private final List<Completion> arrivals = new ArrayList<>();

    @Override
    public void onComplete(long point, NativeStatus status, String message, long startedNanos, long finishedNanos) {
        Thread t = Thread.currentThread();
        Completion c = new Completion(point, status, message, startedNanos, finishedNanos, t.getName(), t.isDaemon());
        synchronized (arrivals) {
            arrivals.add(c);
        }
        futures.computeIfAbsent(point, p -> new CompletableFuture<>()).complete(c);
    }

    CompletableFuture<Completion> future(long point) {
        return futures.computeIfAbsent(point, p -> new CompletableFuture<>());
    }

    /** The completion of {@code point}, waiting at most {@link #TIMEOUT}. */
    Completion await(long point) {
        try {
            return future(point).get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            return fail("point " + point + " did not complete within " + TIMEOUT + "; arrivals so far: "
                    + arrivals().size());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for point " + point, e);
        } catch (ExecutionException e) {
            throw new AssertionError(e.getCause());
        }
    }

    /** Waits for {@code point} and asserts it completed OK. */
    Completion awaitOk(long point) {
        Completion c = await(point);
        assertEquals(NativeStatus.OK, c.status(), () -> "point " + point + " failed: " + c.message());
        return c;
    }

    List<Completion> arrivals() {
        synchronized (arrivals) {
            return List.copyOf(arrivals);
        }
    }

    /** Every point 1..last was reported exactly once, in point order, and nothing else was. */
    void assertEachPointOnceInOrder(long last) {
        List<Completion> seen = arrivals();
        List<Long> points = new ArrayList<>(seen.size());
        for (Completion c : seen) {
            points.add(c.point());
        }
        List<Long> expected = new ArrayList<>();
        for (long p = 1; p <= last; p++) {
            expected.add(p);
        }
        if (!points.equals(expected)) {
            fail("completions must be exactly 1.." + last + " in order (no duplicates, no gaps), got "
                    + describe(points));
        }
    }

    private static String describe(List<Long> points) {
        if (points.size() <= 40) {
            return points.toString();
        }
        for (int i = 0; i < points.size(); i++) {
            if (points.get(i) != i + 1) {
                return points.size() + " points, first deviation at index " + i + ": "
                        + points.subList(Math.max(0, i - 3), Math.min(points.size(), i + 4));
            }
        }
        return points.size() + " points 1.." + points.size();
    }

    /** Polls (bounded) until every native object of the device is gone: stream executors free themselves asynchronously. */
    static void awaitNoLiveObjects(NativeDevice device) {
        awaitLiveObjects(device, LiveObjects::isEmpty, "no live objects");
    }

    /** Polls (bounded by {@link #TIMEOUT}) until the device's live objects satisfy {@code condition}. */
    static void awaitLiveObjects(NativeDevice device, Predicate<LiveObjects> condition, String what) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        LiveObjects live = device.liveObjects();
        while (!condition.test(live)) {
            if (System.nanoTime() - deadline > 0) {
                fail("not reached within " + TIMEOUT + ": " + what + "; live objects: " + live);
            }
            try {
                Thread.sleep(2);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
            live = device.liveObjects();
        }
        assertTrue(condition.test(live));
    }
}
