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
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * A submission is encoded whole or not at all: when its third kernel is refused, the first two are taken
 * back out of the open command buffer, the client hears SubmitFailed naming the problem, and its
 * onComplete hears a failure too (so waiting on onComplete alone never hangs).
 */
class SubmissionAtomicityTest {

    @Test
    void aRefusedSubmissionLeavesTheOpenCommandBufferAsItWas() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            StreamHandle stream = rt.streams().get(0);
            Pipeline add = Workloads.pipeline(rt, "add");
            int n = 512;
            BufferLease x = Workloads.randomBuffer(rt, new Random(1), n);
            BufferLease small = Workloads.randomBuffer(rt, new Random(2), 16);
            float[] before = new float[n];
            x.buffer().read(0, before);
            StreamWork doubleX = new StreamWork.KernelCall(add, BuiltinKernels.add(x.buffer(), x.buffer(), x.buffer(), n));
            StreamWork tooBig = new StreamWork.KernelCall(add,
                    BuiltinKernels.add(small.buffer(), small.buffer(), small.buffer(), n)); // 16 floats, asked for 512

            TestProbe<StreamProtocol.SubmitReply> replies = f.kit.createTestProbe();
            TestProbe<PointCompleted> completions = f.kit.createTestProbe();
            stream.owner().tell(new StreamProtocol.Submit(List.of(doubleX, doubleX, tooBig), true, replies.getRef(),
                    completions.getRef()));
            StreamProtocol.SubmitReply reply = replies.receiveMessage(Duration.ofSeconds(Await.BOUND_SECONDS));
            assertTrue(reply instanceof StreamProtocol.SubmitFailed, "refused: " + reply);
            String reason = ((StreamProtocol.SubmitFailed) reply).reason();
            assertTrue(reason.contains("add") && reason.contains("bytes"), reason);
            PointCompleted refused = completions.receiveMessage(Duration.ofSeconds(Await.BOUND_SECONDS));
            assertFalse(refused.succeeded(), "onComplete hears the refusal");

            // One valid doubling now: if the two refused-with kernels had stayed, x would be 8x, not 2x.
            PointCompleted done = Await.result(rt.streams().run(stream, List.of(doubleX)));
            assertTrue(done.succeeded());
            float[] after = new float[n];
            x.buffer().read(0, after);
            for (int i = 0; i < n; i++) {
                assertEquals(2 * before[i], after[i], "element " + i + ": only the accepted kernel ran");
            }
            rt.memory().free(x);
            rt.memory().free(small);
        }
    }
}
