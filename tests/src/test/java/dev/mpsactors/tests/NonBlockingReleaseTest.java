package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.protocol.StreamPoolProtocol.StreamLease;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Hazard 7: the fork's release_current_thread_slot() synchronised the stream (COMMIT_AND_WAIT) on the
 * caller's thread. Here releasing a lease is a one-way message: it returns while the leased stream's
 * long job is still running, and that job still completes.
 */
class NonBlockingReleaseTest {

    @Test
    void releasingALeaseReturnsAtOnceAndItsPendingWorkStillCompletes() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            StreamLease lease = Await.result(rt.streams().lease());
            try (Workloads.LongGemm job = new Workloads.LongGemm(rt, 768, 48)) {
                long point = Await.result(rt.streams().submit(lease.stream(), List.of(job.work), true)).point();
                long before = System.nanoTime();
                rt.streams().release(lease);
                long releaseNanos = System.nanoTime() - before;
                long completedAfterRelease = Await.result(rt.streams().stats(lease.stream())).completedPoint();
                System.out.printf("release: returned in %.3f ms while the leased stream had completed %d of %d%n",
                        releaseNanos / 1e6, completedAfterRelease, point);
                assertTrue(completedAfterRelease < point, "release returned before the stream's work finished");
                PointCompleted done = Await.result(rt.streams().whenComplete(lease.stream(), point));
                assertTrue(done.succeeded(), "pending work of a released lease still completes");
            }
            var load = Await.result(rt.streams().poolLoad());
            assertEquals(1, load.leasesReleased(), "the release was applied");
            assertEquals(0, load.activeLeases().stream().mapToInt(Integer::intValue).sum());
        }
    }
}
