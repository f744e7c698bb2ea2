package dev.mpsactors.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.DeadLetter;
import org.apache.pekko.actor.WrappedMessage;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * Stopping the runtime (spawned in the user's ActorSystem, which lives on) under load, with the window a
 * shutdown must get right held open on purpose: once the model has taken in all 300 requests, the next
 * batch to be prepared is held (by a fault-injection point) after its memory was leased and before its
 * inputs are written, with the rest of the requests still queued behind it. The runtime is stopped, the allocator is seen to terminate, and
 * only then does the held batch go on. Every request gets exactly one reply, each failure says the
 * runtime stopped (never that a buffer was closed under the batch), some requests were still queued, and
 * the device closes with every native object freed. Nothing the stop leaves behind reaches dead letters as
 * a null (Pekko's dead-letter listener throws unwrapping one).
 */
class ShutdownTest {
    @Test
    void stoppingTheRuntimeWhileABatchIsPreparedAndRequestsAreQueuedAnswersEachWithTheStop() throws Exception {
        Path folder = Files.createTempDirectory("shutdown-");
        BertFolderGenerator.write(folder, ServedModel.CONFIG, 12);
        Config config = ConfigFactory.parseString("mps-actors { streams = 2, model { max-batch = 4,"
                + " max-queued = 10000 } }").withFallback(ConfigFactory.load()).resolve();
        ActorTestKit kit = ActorTestKit.create("shutdown", config);
        HeldBatch batch = new HeldBatch(false);
        List<Object> nullDeadLetters = Collections.synchronizedList(new ArrayList<>());
        ActorRef<DeadLetter> deadLetters = kit.spawn(Behaviors.receiveMessage(d -> {
            if (WrappedMessage.unwrap(d.message()) == null) {
                nullDeadLetters.add(d.message() + " to " + d.recipient());
            }
            return Behaviors.same();
        }), "dead-letters");
        kit.system().eventStream().tell(new EventStream.Subscribe<>(DeadLetter.class, deadLetters));
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
            Random random = new Random(13);
            int requests = 300;
            for (int i = 0; i < requests; i++) {
                model.tell(new InferenceProtocol.Infer("s-" + i, ServedModel.randomRequest(random), probe.getRef()));
            }
            // Every request must be in the model's hands first: a stopping actor's unread mailbox is dropped.
            long deadline = System.nanoTime() + ServedModel.BOUND.toNanos();
            while (runtime.models().modelStats(model).toCompletableFuture().get(60, TimeUnit.SECONDS).requests() < requests) {
                assertTrue(System.nanoTime() < deadline, "the model took in every request");
                Thread.sleep(2);
            }
            batch.arm(); // the next batch to be prepared is held
            assertTrue(batch.awaitHeld(), "a batch reached preparation");
            // Stop the runtime while that batch is being prepared; the allocator stops meanwhile.
            CompletableFuture<Void> stopped = CompletableFuture.runAsync(() -> kit.stop(guardian, ServedModel.BOUND));
            kit.createTestProbe().expectTerminated(runtime.refs().allocator(), ServedModel.BOUND);
            batch.release();
            stopped.get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);

            ServedModel.Replies replies = new ServedModel.Replies();
            for (int i = 0; i < requests; i++) {
                replies.record(probe.receiveMessage(ServedModel.BOUND));
            }
            probe.expectNoMessage(java.time.Duration.ofMillis(200));
            LiveObjects left = deviceClosed.get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
            long ok = replies.count(InferResult.class);
            long queued = replies.failureReasons().stream().filter(r -> !r.contains("while its batch ran")).count();
            long running = replies.failureReasons().stream().filter(r -> r.contains("while its batch ran")).count();
            System.out.printf("shutdown while a batch is prepared: %d requests, %d finished, %d failed (%d in "
                            + "running batches, %d still queued); native objects left %s%n", requests, ok,
                    replies.count(InferFailure.class), running, queued, left);
            assertEquals(requests, replies.byId.size(), "every request answered");
            assertEquals(0, replies.duplicates.get(), "none twice");
            for (String reason : replies.failureReasons()) {
                assertTrue(reason.contains("stopped"), reason);
                assertFalse(reason.contains("closed"), "a batch found its memory closed under it: " + reason);
            }
            for (Object reply : replies.byId.values()) {
                if (reply instanceof InferFailure f) {
                    // Nothing of these reached the device and the runtime stopped: another replica may serve them.
                    assertTrue(f.retryable(), "a request the stop kept off the device is retryable: " + f);
                }
            }
            assertTrue(running > 0, "the held batch was answered with the stop");
            assertTrue(queued > 0, "requests were still queued when the runtime stopped");
            assertTrue(left.isEmpty(), "every native object freed: " + left);
            assertEquals(List.of(), nullDeadLetters, "null messages sent to stopped actors");
        } finally {
            batch.release();
            kit.shutdownTestKit();
        }
    }
}
