package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Hazard 5: the fork's allocator synchronised on a device event while holding its pool mutex, so memory
 * freed after a point of a busy stream stalled every allocation until that stream got there. Here a long
 * GEMM runs on one stream; buffers are freed after that stream's still-running point, and the allocator is
 * then asked for the same sizes again, plus 400 unrelated allocations, frees and frees after a point of an
 * idle stream. Every request is answered while the GEMM still runs (an ordering: the busy stream's
 * completed point, read after the last answer, is still short of the job's), none with a buffer whose free
 * is pending, and those buffers are reused once the point has completed.
 */
class AllocatorNeverWaitsForUnrelatedWorkTest {
    static final int REQUESTS = 400;
    /** A size class of its own (3 MiB) for the buffers freed after the busy stream's point. */
    static final long PENDING_BYTES = 3L << 20;
    static final int PENDING = 8;

    @Test
    void memoryFreedAfterABusyStreamsPointNeverStallsTheAllocator() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            StreamHandle busy = rt.streams().get(0);
            StreamHandle other = rt.streams().get(1);
            AllocatorStats baseline = Await.result(rt.memory().stats());
            List<BufferLease> pendingLeases = new ArrayList<>();
            for (int i = 0; i < PENDING; i++) {
                pendingLeases.add(Await.result(rt.memory().allocate(PENDING_BYTES)));
            }
            Set<DeviceBuffer> pendingBuffers = Collections.newSetFromMap(new IdentityHashMap<>());
            pendingLeases.forEach(l -> pendingBuffers.add(l.buffer()));
            // ~2 s of GEMM on one core; everything below takes a small fraction of that, even on a loaded machine.
            List<BufferLease> fresh = new ArrayList<>();
            try (Workloads.LongGemm job = new Workloads.LongGemm(rt, 768, 256)) {
                long jobPoint = Await.result(rt.streams().submit(busy, List.of(job.work), true)).point();
                // Freed after the running job's point: reusable only once the busy stream reports it.
                for (BufferLease l : pendingLeases) {
                    rt.memory().freeAfter(l, busy, jobPoint);
                }
                // The same size again: served without those buffers, and without waiting for them.
                List<CompletableFuture<BufferLease>> again = new ArrayList<>();
                for (int i = 0; i < PENDING; i++) {
                    again.add(rt.memory().allocate(PENDING_BYTES).toCompletableFuture());
                }
                long[] latencies = new long[REQUESTS];
                List<CompletableFuture<BufferLease>> unrelated = new ArrayList<>();
                for (int i = 0; i < REQUESTS; i++) {
                    long sentAt = System.nanoTime();
                    int k = i;
                    unrelated.add(rt.memory().allocate(1024L * (1 + i % 64)).toCompletableFuture().thenApply(lease -> {
                        latencies[k] = System.nanoTime() - sentAt;
                        return lease;
                    }));
                }
                for (CompletableFuture<BufferLease> p : again) {
                    fresh.add(Await.result(p));
                }
                List<BufferLease> leases = new ArrayList<>();
                for (CompletableFuture<BufferLease> p : unrelated) {
                    leases.add(Await.result(p));
                }
                // Half go back at once, half after a point of the other (idle) stream, then the same sizes again.
                long otherPoint = Await.result(rt.streams().flush(other)).point();
                for (int i = 0; i < leases.size(); i++) {
                    if (i % 2 == 0) {
                        rt.memory().free(leases.get(i));
                    } else {
                        rt.memory().freeAfter(leases.get(i), other, otherPoint);
                    }
                }
                List<BufferLease> reused = new ArrayList<>();
                for (int i = 0; i < REQUESTS / 2; i++) {
                    reused.add(Await.result(rt.memory().allocate(1024L * (1 + (2 * i) % 64))));
                }
                AllocatorStats during = Await.result(rt.memory().stats());
                long busyCompleted = Await.result(rt.streams().stats(busy)).completedPoint();
                Arrays.sort(latencies);
                System.out.printf("allocator: %d buffers freed after the busy stream's point %d, %d of their size "
                                + "allocated again, %d unrelated allocations + %d reuses, all answered with the busy "
                                + "stream at point %d; pending-free bytes %d; unrelated latency p50 %.3f ms, max "
                                + "%.3f ms%n", PENDING, jobPoint, fresh.size(), REQUESTS, reused.size(), busyCompleted,
                        during.pendingFreeBytes(), latencies[REQUESTS / 2] / 1e6, latencies[REQUESTS - 1] / 1e6);
                assertTrue(busyCompleted < jobPoint, "every request was answered while the busy stream's job still "
                        + "ran (its completed point is " + busyCompleted + ", the job's " + jobPoint + ")");
                assertEquals(PENDING * PENDING_BYTES, during.pendingFreeBytes(),
                        "the buffers freed after the running point are still pending");
                for (BufferLease l : fresh) {
                    assertFalse(pendingBuffers.contains(l.buffer()),
                            "a buffer whose free waits for the running job was handed out again");
                }
                for (BufferLease l : reused) {
                    rt.memory().free(l);
                }
                Await.result(rt.streams().whenComplete(busy, jobPoint));
            }
            // Once the point has completed, the allocator learns it and reuses those buffers.
            long deadline = System.nanoTime() + Await.BOUND_SECONDS * 1_000_000_000L;
            while (Await.result(rt.memory().stats()).pendingFreeBytes() > 0) {
                assertTrue(System.nanoTime() < deadline, "pending frees settled after their point completed");
                Thread.sleep(5);
            }
            long hitsBefore = Await.result(rt.memory().stats()).cacheHits();
            List<BufferLease> afterJob = new ArrayList<>();
            for (int i = 0; i < PENDING; i++) {
                afterJob.add(Await.result(rt.memory().allocate(PENDING_BYTES)));
            }
            assertEquals(hitsBefore + PENDING, Await.result(rt.memory().stats()).cacheHits(),
                    "the buffers of that size class came from the cache");
            // The other buffers of that size are still held, so every one of these is a buffer freed after the point.
            for (BufferLease l : afterJob) {
                assertTrue(pendingBuffers.contains(l.buffer()),
                        "the buffers freed after the job's point are reused once the point completed");
            }
            afterJob.forEach(rt.memory()::free);
            fresh.forEach(rt.memory()::free);
            Await.result(rt.memory().trim());
            AllocatorStats end = Await.result(rt.memory().stats());
            assertEquals(baseline.allocatedBytes(), end.allocatedBytes(), "allocator back to its baseline: " + end);
        }
    }
}
