package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.List;
import java.util.Random;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * A crashed owner is restarted by its supervisor: what it held is answered with failures (never left
 * hanging), its native stream is released and recreated, timeline points keep counting up, and it serves
 * again.
 */
class SupervisionTest {

    @Test
    void crashedStreamOwnerAnswersWhatItHeldAndServesAgain() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2, fault-injection.enabled = true }")) {
            MpsRuntime rt = f.runtime;
            StreamHandle stream = rt.streams().get(1);
            long point;
            TestProbe<PointCompleted> waiter = f.kit.createTestProbe();
            try (Workloads.LongGemm job = new Workloads.LongGemm(rt, 768, 48)) {
                point = Await.result(rt.streams().submit(stream, List.of(job.work), true)).point();
                stream.owner().tell(new StreamProtocol.NotifyWhenComplete(point, waiter.getRef()));
                stream.owner().tell(new StreamProtocol.InjectCrash("test"));
                PointCompleted answer = waiter.receiveMessage(java.time.Duration.ofSeconds(Await.BOUND_SECONDS));
                assertFalse(answer.succeeded(), "a held waiter is answered with a failure");
                assertTrue(answer.failure().contains("restarted"), answer.failure());
                // The memory of the job stays valid for the old native stream's pending work: freed only by
                // the allocator once it is safe (the native layer keeps it alive until that work ran).
            }
            StreamProtocol.StreamStats stats = Await.result(rt.streams().stats(stream));
            assertEquals(2, stats.incarnation(), "the owner was restarted once");
            assertTrue(stats.committedPoint() >= point, "points keep counting up across the restart");

            Pipeline add = Workloads.pipeline(rt, "add");
            BufferLease b = Workloads.randomBuffer(rt, new Random(9), 256);
            float[] before = new float[256];
            b.buffer().read(0, before);
            PointCompleted done = Await.result(rt.streams().run(stream, List.of(new StreamWork.KernelCall(add,
                    BuiltinKernels.add(b.buffer(), b.buffer(), b.buffer(), 256)))));
            assertTrue(done.succeeded());
            assertTrue(done.point() > point, "new points follow the old ones");
            float[] after = new float[256];
            b.buffer().read(0, after);
            for (int i = 0; i < 256; i++) {
                assertEquals(2 * before[i], after[i], "restarted stream computes correctly");
            }
            // A point of the previous incarnation can no longer be confirmed: a failure, not a hang.
            boolean confirmed = Await.result(rt.streams().whenComplete(stream, point).handle((c, e) -> e == null));
            assertFalse(confirmed, "old points are answered with a failure");
            rt.memory().free(b);
        }
    }

    @Test
    void crashIsIgnoredWhenFaultInjectionIsOff() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            StreamHandle stream = f.runtime.streams().get(0);
            stream.owner().tell(new StreamProtocol.InjectCrash("should be ignored"));
            assertEquals(1, Await.result(f.runtime.streams().stats(stream)).incarnation());
        }
    }
}
