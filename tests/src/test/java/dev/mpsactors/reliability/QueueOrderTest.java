package dev.mpsactors.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.actors.FaultInjector;
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
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

/**
 * The model's queue: a higher priority is batched first (equal priorities in arrival order), a queued
 * request cancelled by its caller is answered at once and never computed, and an unloaded model frees its
 * name and its memory. Orders are made deterministic by holding the device's only batch slot on purpose
 * (a fault-injection point) while the later requests queue, or by a max-delay no test waits out.
 */
class QueueOrderTest {
    @Test
    void aHigherPriorityOvertakesQueuedRequestsAndEqualOnesKeepArrivalOrder() throws Exception {
        Path folder = Files.createTempDirectory("priority-");
        BertFolderGenerator.write(folder, ServedModel.CONFIG, 14);
        Config config = ConfigFactory.parseString("mps-actors { streams = 1, model { max-batch = 1,"
                + " max-in-flight = 1 } }").withFallback(ConfigFactory.load()).resolve();
        ActorTestKit kit = ActorTestKit.create("priority", config);
        HeldBatch batch = new HeldBatch(true);
        try {
            RuntimeSettings settings = RuntimeSettings.fromConfig(config);
            FaultInjector faults = batch.injector(settings);
            CompletableFuture<LiveObjects> deviceClosed = new CompletableFuture<>();
            ActorRef<RuntimeProtocol.Command> guardian = kit.spawn(DeviceRuntime.create(settings, deviceClosed, faults),
                    "runtime");
            MpsRuntime runtime = MpsRuntime.attach(kit.system(), guardian, ServedModel.BOUND).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            ActorRef<InferenceProtocol.Command> model = runtime.models().loadModel("tiny", folder).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            TestProbe<InferReply> probe = kit.createTestProbe();
            Random random = new Random(3);
            model.tell(new InferenceProtocol.Infer("first", ServedModel.randomRequest(random), probe.getRef()));
            assertTrue(batch.awaitHeld(), "the first batch is being prepared (and held)");
            // the model actor is held: these wait in its mailbox, then queue behind the held batch in this order
            for (int i = 0; i < 5; i++) {
                model.tell(new InferenceProtocol.Infer("low-" + i, ServedModel.randomRequest(random), probe.getRef(),
                        null, null, 0));
            }
            model.tell(new InferenceProtocol.Infer("high", ServedModel.randomRequest(random), probe.getRef(), null,
                    null, 5));
            model.tell(new InferenceProtocol.Infer("lowest", ServedModel.randomRequest(random), probe.getRef(), null,
                    null, -1));
            batch.release();
            List<String> order = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                InferReply reply = probe.receiveMessage(Duration.ofSeconds(60));
                assertInstanceOf(InferResult.class, reply, reply.toString());
                order.add(reply.requestId());
            }
            // one batch slot: a batch starts only after the previous one was answered, so replies are in queue order
            assertEquals(List.of("first", "high", "low-0", "low-1", "low-2", "low-3", "low-4", "lowest"), order);
            probe.expectNoMessage(Duration.ofMillis(100));
            kit.stop(guardian);
            assertTrue(deviceClosed.get(60, TimeUnit.SECONDS).isEmpty(), "nothing left natively");
        } finally {
            batch.release();
            kit.shutdownTestKit();
        }
    }

    @Test
    void aCancelledQueuedRequestIsAnsweredOnceAndNeverComputedAndUnloadFreesTheName() throws Exception {
        // max-delay far beyond the test: a lone request waits in the queue for company
        try (ServedModel served = new ServedModel("mps-actors { model { max-batch = 64, max-delay = 10m } }")) {
            TestProbe<InferReply> probe = TestProbe.create(served.runtime.system());
            Random random = new Random(5);
            served.model.tell(new InferenceProtocol.Infer("queued", ServedModel.randomRequest(random), probe.getRef()));
            served.model.tell(new InferenceProtocol.Cancel("not-there"));
            served.model.tell(new InferenceProtocol.Cancel("queued"));
            InferFailure f = assertInstanceOf(InferFailure.class, probe.receiveMessage(Duration.ofSeconds(60)));
            assertEquals("queued", f.requestId());
            assertTrue(f.reason().contains("cancelled by the caller"), f.reason());
            assertEquals(dev.mpsactors.protocol.TextProtocol.FailureKind.CANCELLED, f.kind());
            probe.expectNoMessage(Duration.ofMillis(200));
            InferenceProtocol.ModelStats stats = served.runtime.models().modelStats(served.model).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS);
            assertEquals(0, stats.sequences(), "nothing computed");
            assertEquals(1, stats.failed());

            // a request still queued when its model is unloaded is answered with the stop; the name is free again
            served.model.tell(new InferenceProtocol.Infer("left", ServedModel.randomRequest(random), probe.getRef()));
            assertTrue(served.runtime.models().unloadModel("tiny").toCompletableFuture().get(60, TimeUnit.SECONDS));
            InferFailure stopped = assertInstanceOf(InferFailure.class, probe.receiveMessage(Duration.ofSeconds(60)));
            assertEquals("left", stopped.requestId());
            assertFalse(served.runtime.models().unloadModel("tiny").toCompletableFuture().get(60, TimeUnit.SECONDS),
                    "a second unload finds nothing");
            assertEquals(0, served.allocator().allocatedBytes(), "no memory leased after the unload");
            assertEquals("tiny", served.runtime.models().loadModel("tiny", served.folder()).toCompletableFuture()
                    .get(60, TimeUnit.SECONDS).path().name().replace("model-", ""), "the name loads again");
            assertTrue(served.shutdown().isEmpty(), "nothing left natively");
        }
    }
}
