package dev.mpsactors.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

/**
 * Stopping the runtime (spawned in the user's ActorSystem, which lives on) while 300 requests are queued
 * and running: each gets exactly one reply (a result, or a failure saying the model stopped), and the
 * device closes with every native object freed.
 */
class ShutdownTest {
    @Test
    void stoppingTheRuntimeMidLoadAnswersEveryRequestAndFreesEverything() throws Exception {
        Path folder = Files.createTempDirectory("shutdown-");
        BertFolderGenerator.write(folder, ServedModel.CONFIG, 12);
        Config config = ConfigFactory.parseString("mps-actors { streams = 2, model { max-batch = 4,"
                + " max-queued = 10000 } }").withFallback(ConfigFactory.load()).resolve();
        ActorTestKit kit = ActorTestKit.create("shutdown", config);
        try {
            CompletableFuture<LiveObjects> deviceClosed = new CompletableFuture<>();
            ActorRef<RuntimeProtocol.Command> guardian = kit.spawn(
                    DeviceRuntime.create(RuntimeSettings.fromConfig(config), deviceClosed), "runtime");
            MpsRuntime runtime = MpsRuntime.attach(kit.system(), guardian, ServedModel.BOUND).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            ActorRef<InferenceProtocol.Command> model = runtime.loadModel("tiny", folder).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            TestProbe<InferReply> probe = kit.createTestProbe();
            Random random = new Random(13);
            int requests = 300;
            for (int i = 0; i < requests; i++) {
                model.tell(new InferenceProtocol.Infer("s-" + i, ServedModel.randomRequest(random), probe.getRef()));
            }
            Thread.sleep(30); // some batches are running, most requests queued
            kit.stop(guardian, ServedModel.BOUND);
            ServedModel.Replies replies = new ServedModel.Replies();
            for (int i = 0; i < requests; i++) {
                replies.record(probe.receiveMessage(ServedModel.BOUND));
            }
            probe.expectNoMessage(java.time.Duration.ofMillis(200));
            LiveObjects left = deviceClosed.get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
            long ok = replies.count(InferResult.class);
            System.out.printf("shutdown mid-load: %d requests, %d finished, %d failed; native objects left %s%n",
                    requests, ok, replies.count(InferFailure.class), left);
            assertEquals(requests, replies.byId.size(), "every request answered");
            assertEquals(0, replies.duplicates.get(), "none twice");
            for (String reason : replies.failureReasons()) {
                assertTrue(reason.contains("stopped"), reason);
            }
            assertTrue(left.isEmpty(), "every native object freed: " + left);
        } finally {
            kit.shutdownTestKit();
        }
    }
}
