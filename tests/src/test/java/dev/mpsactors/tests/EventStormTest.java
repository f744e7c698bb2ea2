package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mpsactors.protocol.EventPoolProtocol.EventHandle;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.MpsRuntimeException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Hazard 2: the fork's event pool handed out raw pointers that a concurrent release could free under
 * record/wait/query (use-after-free). Here clients hold generation-checked handles; the pool alone owns
 * the native events. Records, waits, queries and elapsed-time requests race releases of the same
 * handles: every request gets exactly one reply, stale handles get an error naming the release, and
 * the JVM and the native layer stay intact (the native race of release against a pending record runs
 * under ASan in test_runtime.cpp).
 */
class EventStormTest {
    static final int EVENTS = 64;
    static final int ROUNDS = 6;

    @Test
    void recordWaitQueryElapsedRacingReleaseGetOneReplyEachAndStaleHandlesAreRefused() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 4 }")) {
            MpsRuntime rt = f.runtime;
            List<StreamHandle> streams = rt.streams();
            Random random = new Random(17);
            AtomicInteger sent = new AtomicInteger();
            AtomicInteger succeeded = new AtomicInteger();
            AtomicInteger refusedStale = new AtomicInteger();
            AtomicInteger refusedOther = new AtomicInteger();
            List<String> unexpected = new ArrayList<>();
            ConcurrentHashMap<String, Boolean> reasons = new ConcurrentHashMap<>();
            for (int round = 0; round < ROUNDS; round++) {
                List<EventHandle> handles = new ArrayList<>();
                List<CompletableFuture<EventHandle>> acquiring = new ArrayList<>();
                for (int e = 0; e < EVENTS; e++) {
                    acquiring.add(rt.acquireEvent().toCompletableFuture());
                }
                for (CompletableFuture<EventHandle> a : acquiring) {
                    handles.add(Await.result(a));
                }
                List<CompletableFuture<?>> storm = new ArrayList<>();
                for (EventHandle h : handles) {
                    StreamHandle s = streams.get(random.nextInt(streams.size()));
                    StreamHandle other = streams.get(random.nextInt(streams.size()));
                    EventHandle peer = handles.get(random.nextInt(handles.size()));
                    // Fire everything at once, releases included, so they race the other requests.
                    storm.add(track(rt.recordEvent(h, s), sent));
                    storm.add(track(rt.flush(s), sent));
                    storm.add(track(rt.waitForEvent(h, other), sent));
                    storm.add(track(rt.isEventComplete(h), sent));
                    storm.add(track(rt.elapsedMillis(peer, h), sent));
                    if (random.nextBoolean()) {
                        storm.add(track(rt.releaseEvent(h), sent));
                    }
                    storm.add(track(rt.isEventComplete(peer), sent));
                }
                for (StreamHandle s : streams) {
                    storm.add(track(rt.flush(s), sent));
                }
                for (CompletableFuture<?> request : storm) {
                    try {
                        request.get(Await.BOUND_SECONDS, TimeUnit.SECONDS);
                        succeeded.incrementAndGet();
                    } catch (java.util.concurrent.ExecutionException e) {
                        Throwable cause = e.getCause() instanceof CompletionException ce ? ce.getCause() : e.getCause();
                        if (cause instanceof MpsRuntimeException m) {
                            String msg = m.getMessage();
                            reasons.put(msg.replaceAll("[0-9]+", "N"), true);
                            if (msg.contains("released")) {
                                refusedStale.incrementAndGet();
                            } else {
                                refusedOther.incrementAndGet();
                            }
                        } else {
                            unexpected.add(String.valueOf(cause));
                        }
                    } catch (java.util.concurrent.TimeoutException e) {
                        fail("a request got no reply within " + Await.BOUND_SECONDS + " s");
                    }
                }
                // Release whatever is still held; a second release of a released handle is refused, not a crash.
                for (EventHandle h : handles) {
                    try {
                        Await.result(rt.releaseEvent(h));
                    } catch (AssertionError expectedForReleased) {
                        assertTrue(expectedForReleased.getMessage().contains("released"),
                                expectedForReleased.getMessage());
                    }
                }
            }
            System.out.printf("event storm: %d requests: %d succeeded, %d refused as stale, %d refused otherwise; "
                    + "reasons %s%n", sent.get(), succeeded.get(), refusedStale.get(), refusedOther.get(), reasons.keySet());
            assertTrue(unexpected.isEmpty(), "unexpected failures: " + unexpected);
            assertEquals(sent.get(), succeeded.get() + refusedStale.get() + refusedOther.get(),
                    "exactly one reply per request");
            assertTrue(refusedStale.get() > 0, "the storm did race releases against uses");
            // The storm must exercise the success path too; how many queries find their record complete depends
            // on the device's speed (55 % on cpu, 47 % on an H100), so only a floor is asserted.
            assertTrue(succeeded.get() > sent.get() / 5, "a fifth of the requests or more succeeded");
        }
    }

    private static CompletableFuture<?> track(CompletionStage<?> stage, AtomicInteger sent) {
        sent.incrementAndGet();
        return stage.toCompletableFuture();
    }
}
