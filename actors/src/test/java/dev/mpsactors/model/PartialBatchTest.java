package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

/**
 * {@code model.partial-in-flight = 1}: while a batch of the model runs, a batch smaller than max-batch never
 * starts on another free stream (the queue fills it instead), full batches still do, and every request is
 * answered once with the float64 reference's result.
 */
class PartialBatchTest {
    static final Duration BOUND = Duration.ofSeconds(60);
    static final BertConfig CONFIG = new BertConfig("bert", 60, 48, 2, 4, 96, 40, 2, 1e-12, "gelu");

    @Test
    void aShortBatchWaitsWhileTheDeviceIsBusyAndEveryRequestIsAnsweredOnce() throws Exception {
        Path dir = Files.createTempDirectory("partial-batch-");
        BertWeights weights = BertFolderGenerator.write(dir, CONFIG, 5);
        Config config = ConfigFactory.parseString("mps-actors { streams = 4, model { max-batch = 8, max-delay = 0ms,"
                + " seq-bucket = 8, partial-in-flight = 1 } }").withFallback(ConfigFactory.load()).resolve();
        ActorTestKit kit = ActorTestKit.create("partial-batch", config);
        CompletableFuture<LiveObjects> closed = new CompletableFuture<>();
        ActorRef<RuntimeProtocol.Command> guardian =
                kit.spawn(DeviceRuntime.create(RuntimeSettings.fromConfig(config), closed), "runtime");
        try {
            MpsRuntime runtime = MpsRuntime.attach(kit.system(), guardian, BOUND).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            ActorRef<InferenceProtocol.Command> model =
                    runtime.models().loadModel("tiny", dir).toCompletableFuture().get(60, TimeUnit.SECONDS);
            Random random = new Random(3);
            // One request first, answered before the burst: the model's kernels are ready and a batch of one
            // length bucket has run, so the burst meets a model that dispatches at once.
            TestProbe<InferReply> warm = kit.createTestProbe();
            model.tell(new InferenceProtocol.Infer("warm", new InferenceInputs(new int[][] {{1, 2, 3, 4, 5, 6}}, null,
                    null), warm.getRef()));
            assertInstanceOf(InferResult.class, warm.receiveMessage(BOUND), "the warm-up request succeeds");
            InferenceProtocol.ModelStats before =
                    runtime.models().modelStats(model).toCompletableFuture().get(60, TimeUnit.SECONDS);
            int n = 64;
            InferenceInputs[] inputs = new InferenceInputs[n];
            TestProbe<InferReply> probe = kit.createTestProbe();
            // A burst of one-sequence requests of one length bucket: without the limit, each free stream would
            // take whatever is queued the moment it arrives (batches of one while the first one runs).
            for (int i = 0; i < n; i++) {
                int[][] ids = new int[1][6 + random.nextInt(3)];
                for (int t = 0; t < ids[0].length; t++) {
                    ids[0][t] = random.nextInt(CONFIG.vocabSize());
                }
                inputs[i] = new InferenceInputs(ids, null, null);
                model.tell(new InferenceProtocol.Infer("r" + i, inputs[i], probe.getRef()));
            }
            Map<String, InferReply> replies = new HashMap<>();
            for (int i = 0; i < n; i++) {
                InferReply r = probe.receiveMessage(BOUND);
                assertTrue(replies.put(r.requestId(), r) == null, "one reply per request: " + r.requestId());
            }
            probe.expectNoMessage(Duration.ofMillis(200));
            for (int i = 0; i < n; i++) {
                InferResult result = assertInstanceOf(InferResult.class, replies.get("r" + i), "reply to r" + i);
                BertReference.Output ref = BertReference.forward(weights, inputs[i].inputIds(), null, null);
                double num = 0, den = 0;
                for (int t = 0; t < inputs[i].inputIds()[0].length; t++) {
                    for (int k = 0; k < CONFIG.hiddenSize(); k++) {
                        double d = result.lastHiddenState()[0][t][k] - ref.lastHiddenState()[0][t][k];
                        num += d * d;
                        den += ref.lastHiddenState()[0][t][k] * ref.lastHiddenState()[0][t][k];
                    }
                }
                assertTrue(Math.sqrt(num / den) < 1e-4, "r" + i + " relative L2 " + Math.sqrt(num / den));
            }
            InferenceProtocol.ModelStats stats = runtime.models().modelStats(model).toCompletableFuture().get(60, TimeUnit.SECONDS);
            System.out.printf("partial-in-flight %d: %d requests in %d batches (largest %d), short batches started "
                    + "while another ran: %d%n", RuntimeSettings.fromConfig(config).model().partialInFlight(), n,
                    stats.batches() - before.batches(), stats.largestBatch(), stats.partialWhileBusy());
            assertEquals(n + 1, stats.succeeded(), "every request succeeded: " + stats);
            // the totals: a replica may count the warm-up's sequence only after its reply went out
            assertEquals(n + 1, stats.sequences(), "each sequence computed once: " + stats);
            assertEquals(0, stats.partialWhileBusy(), "no short batch started while another ran: " + stats);
        } finally {
            kit.stop(guardian, BOUND);
            LiveObjects left = closed.get(60, TimeUnit.SECONDS);
            kit.shutdownTestKit();
            assertTrue(left.isEmpty(), "nothing alive after the runtime stopped: " + left);
        }
    }
}
