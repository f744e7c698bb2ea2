package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol.StreamStats;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Hazard 5: the fork's allocator synchronised on a device event while holding its pool mutex, so one
 * stream's long kernel stalled every allocation. Here a long GEMM runs on one stream while clients
 * allocate, free and free-after-a-point on another: every allocation is answered while the long job is
 * still running. (Latencies are printed, not asserted.)
 */
class AllocatorNeverWaitsForUnrelatedWorkTest {
    static final int REQUESTS = 400;

    @Test
    void allocationsAreAnsweredWhileALongKernelRunsOnAnotherStream() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            StreamHandle busy = rt.streams().get(0);
            StreamHandle other = rt.streams().get(1);
            AllocatorStats baseline = Await.result(rt.allocatorStats());
            // ~2 s of GEMM on one core: the allocations below normally take well under half a second, even on
            // a loaded 2-core machine; the assertion is that none of them waited for this job.
            try (Workloads.LongGemm job = new Workloads.LongGemm(rt, 768, 256)) {
                long jobPoint = Await.result(rt.submit(busy, List.of(job.work), true)).point();
                long[] latencies = new long[REQUESTS];
                List<CompletableFuture<BufferLease>> pending = new ArrayList<>();
                long[] sentAt = new long[REQUESTS];
                for (int i = 0; i < REQUESTS; i++) {
                    sentAt[i] = System.nanoTime();
                    int k = i;
                    pending.add(rt.allocate(1024L * (1 + i % 64)).toCompletableFuture().thenApply(lease -> {
                        latencies[k] = System.nanoTime() - sentAt[k];
                        return lease;
                    }));
                }
                List<BufferLease> leases = new ArrayList<>();
                for (CompletableFuture<BufferLease> p : pending) {
                    leases.add(Await.result(p));
                }
                // Half go back at once, half after a point of the other (idle) stream.
                long otherPoint = Await.result(rt.flush(other)).point();
                for (int i = 0; i < leases.size(); i++) {
                    if (i % 2 == 0) {
                        rt.free(leases.get(i));
                    } else {
                        rt.freeAfter(leases.get(i), other, otherPoint);
                    }
                }
                // Reuse: the same sizes again, served from the cache.
                List<BufferLease> again = new ArrayList<>();
                for (int i = 0; i < REQUESTS / 2; i++) {
                    again.add(Await.result(rt.allocate(1024L * (1 + (2 * i) % 64))));
                }
                StreamStats busyStats = Await.result(rt.streamStats(busy));
                Arrays.sort(latencies);
                System.out.printf("allocator: %d allocations + %d reuses while a %d-point GEMM job ran; latency p50 "
                                + "%.3f ms, max %.3f ms; busy stream completed %d of %d%n", REQUESTS, again.size(),
                        jobPoint, latencies[REQUESTS / 2] / 1e6, latencies[REQUESTS - 1] / 1e6,
                        busyStats.completedPoint(), jobPoint);
                assertTrue(busyStats.completedPoint() < jobPoint,
                        "every allocation was answered before the unrelated long job finished");
                for (BufferLease l : again) {
                    rt.free(l);
                }
                Await.result(rt.whenComplete(busy, jobPoint));
            }
            Await.result(rt.trim());
            AllocatorStats end = Await.result(rt.allocatorStats());
            assertEquals(baseline.allocatedBytes(), end.allocatedBytes(), "allocator back to its baseline: " + end);
            assertTrue(end.cacheHits() > 0, "freed memory was reused");
        }
    }
}
