package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.StreamPoolProtocol.StreamLease;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The README's plain-Java example, run: a runtime in an ActorSystem of its own, used through CompletionStages. */
class OwnActorSystemEmbeddingTest {

    @Test
    void runtimeWithItsOwnSystemRunsAKernelAndShutsDownLeavingNothingAlive() throws Exception {
        MpsRuntime rt = MpsRuntime.start(ConfigFactory.parseString("mps-actors.streams = 2"));
        int n = 1024;
        float[] data = new float[n];
        Random random = new Random(2);
        for (int i = 0; i < n; i++) {
            data[i] = (float) random.nextGaussian();
        }
        StreamLease lease = rt.streams().lease().toCompletableFuture().get();
        Pipeline add = rt.kernels().pipeline(KernelKey.of("*", "add")).toCompletableFuture().get();
        BufferLease x = rt.memory().allocate(4L * n).toCompletableFuture().get();
        x.buffer().write(0, data);
        rt.streams().run(lease.stream(), List.of(new StreamWork.KernelCall(add,
                BuiltinKernels.add(x.buffer(), x.buffer(), x.buffer(), n)))).toCompletableFuture().get();
        float[] out = new float[n];
        x.buffer().read(0, out);
        for (int i = 0; i < n; i++) {
            assertEquals(2.0 * data[i], out[i], 0.0, "element " + i);
        }
        rt.memory().free(x);
        rt.streams().release(lease);
        LiveObjects left = rt.shutdown(Duration.ofSeconds(60));
        assertTrue(left.isEmpty(), "nothing alive after shutdown: " + left);
    }
}
