package dev.mpsactors.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.ModelStats;
import dev.mpsactors.protocol.InferenceProtocol.Overloaded;
import dev.mpsactors.runtime.InferenceFlow;
import dev.mpsactors.runtime.InferenceRequest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.junit.jupiter.api.Test;

/**
 * Admission control, backpressure and deadlines on a model that serves one batch of two sequences at a
 * time and holds at most 8 requests.
 */
class OverloadAndDeadlineTest {
    private static final String SMALL_MODEL = "mps-actors { streams = 1, allocator.memory-limit = 256MiB,"
            + " model { max-batch = 2, max-in-flight = 1, max-queued = 8 } }";

    /** 400 requests at once, far beyond what the model finishes meanwhile: the excess is refused at once. */
    @Test
    void aFloodIsRefusedWithOverloadedAtOnceAndMemoryStaysBounded() throws Exception {
        try (ServedModel served = new ServedModel(SMALL_MODEL)) {
            Random random = new Random(8);
            List<CompletableFuture<InferReply>> asks = new ArrayList<>();
            for (int i = 0; i < 400; i++) {
                String id = "flood-" + i;
                InferenceInputs in = ServedModel.randomRequest(random);
                asks.add(AskPattern.<InferenceProtocol.Command, InferReply>ask(served.model,
                        r -> new InferenceProtocol.Infer(id, in, r), ServedModel.BOUND,
                        served.runtime.system().scheduler()).toCompletableFuture());
            }
            ServedModel.Replies replies = new ServedModel.Replies();
            for (CompletableFuture<InferReply> ask : asks) {
                replies.record(ask.get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS));
            }
            ModelStats stats = served.settledStats(400);
            AllocatorStats memory = served.allocator();
            long overloaded = replies.count(Overloaded.class);
            System.out.printf("flood: 400 requests, %d served, %d overloaded, %d failed; model %s; peak device memory "
                    + "%d of %d bytes%n", replies.count(InferResult.class), overloaded,
                    replies.count(InferFailure.class), stats, memory.peakReservedBytes(), memory.limitBytes());
            assertEquals(400, replies.byId.size());
            assertEquals(0, replies.duplicates.get());
            assertTrue(overloaded > 0, "the excess was refused");
            assertTrue(replies.count(InferResult.class) >= 8, "what was admitted was served");
            assertEquals(0, replies.count(InferFailure.class), "nothing failed: refused or served");
            assertEquals(overloaded, stats.overloaded());
            for (InferReply r : replies.byId.values()) {
                if (r instanceof Overloaded o) {
                    assertTrue(o.reason().contains("max-queued"), o.reason());
                }
            }
            // One batch of two sequences at a time: device memory never grew with the flood.
            assertTrue(memory.peakReservedBytes() <= memory.limitBytes(), memory.toString());
            assertTrue(memory.peakAllocatedBytes() <= 2L * 1024 * 1024, "one small batch's memory at most: " + memory);
        }
    }

    /** A Streams flow with parallelism 8 never exceeds the model's 8 admitted requests: no Overloaded. */
    @Test
    void theStreamsFlowIsBackpressuredInsteadOfRefused() throws Exception {
        try (ServedModel served = new ServedModel(SMALL_MODEL)) {
            Random random = new Random(9);
            List<InferenceRequest> requests = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                requests.add(new InferenceRequest("flow-" + i, ServedModel.randomRequest(random)));
            }
            List<InferReply> out = Source.from(requests)
                    .via(InferenceFlow.create(served.model, 8, ServedModel.BOUND, served.runtime.system().scheduler()))
                    .runWith(Sink.seq(), served.runtime.system())
                    .toCompletableFuture().get(ServedModel.BOUND.toSeconds() * 2, TimeUnit.SECONDS);
            assertEquals(300, out.size());
            for (int i = 0; i < out.size(); i++) {
                assertEquals("flow-" + i, out.get(i).requestId(), "in order");
                assertInstanceOf(InferResult.class, out.get(i), out.get(i).toString());
            }
            assertEquals(0, served.stats().overloaded());
        }
    }

    @Test
    void requestsWhoseDeadlinePassedNeverReachTheDevice() throws Exception {
        try (ServedModel served = new ServedModel("mps-actors { streams = 1, model { max-batch = 1,"
                + " max-in-flight = 1, max-queued = 10000 } }")) {
            // Already past on arrival.
            InferReply late = AskPattern.<InferenceProtocol.Command, InferReply>ask(served.model,
                    r -> new InferenceProtocol.Infer("late", ServedModel.randomRequest(new Random(1)), r,
                            Instant.now().minusMillis(1)), ServedModel.BOUND, served.runtime.system().scheduler())
                    .toCompletableFuture().get(60, TimeUnit.SECONDS);
            InferFailure failure = assertInstanceOf(InferFailure.class, late);
            assertTrue(failure.reason().contains("deadline exceeded on arrival"), failure.reason());
            // 300 single-sequence requests at once with a 40 ms deadline behind one batch of one at a time:
            // the model cannot run them all in time; those still queued at their deadline are answered
            // without running.
            ServedModel.Replies replies = new ServedModel.Replies();
            Random random = new Random(10);
            List<CompletableFuture<InferReply>> asks = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                String id = "d-" + i;
                int[][] ids = ServedModel.randomRequest(random).inputIds();
                InferenceInputs one = InferenceInputs.of(new int[][] {ids[0]});
                asks.add(AskPattern.<InferenceProtocol.Command, InferReply>ask(served.model,
                        r -> InferenceProtocol.Infer.within(id, one, r, Duration.ofMillis(40)), ServedModel.BOUND,
                        served.runtime.system().scheduler()).toCompletableFuture());
            }
            for (CompletableFuture<InferReply> ask : asks) {
                replies.record(ask.get(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS));
            }
            ModelStats stats = served.settledStats(301);
            long ok = replies.count(InferResult.class);
            long expired = replies.count(InferFailure.class);
            System.out.printf("deadlines: 300 requests, %d ran, %d expired; model %s%n", ok, expired, stats);
            assertEquals(300, replies.byId.size());
            assertEquals(0, replies.duplicates.get());
            assertTrue(expired > 0, "some requests expired while queued");
            for (String reason : replies.failureReasons()) {
                assertTrue(reason.contains("deadline exceeded"), reason);
            }
            assertEquals(expired + 1, stats.expired(), "the arrival-expired one counts too");
            // One batch per request that ran: the expired ones never reached the device.
            assertEquals(ok, stats.batches(), "batches run == requests that ran");
            AllocatorStats memory = served.allocator();
            assertEquals(0, memory.liveLeases(), memory.toString());
        }
    }
}
