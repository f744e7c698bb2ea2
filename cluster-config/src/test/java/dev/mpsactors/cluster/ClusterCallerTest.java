package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferFailure;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The client's accounting, with replicas played by the test: every call gets exactly one outcome; a replica's
 * second reply to one attempt is seen and counted as a duplicate, a reply after its attempt timed out as late,
 * and neither reaches the caller; attempts go round robin and stop at the limit with the cause named; a
 * deadline and a priority travel with each attempt, an overload moves to an untried replica at once and then is
 * answered as an overload, and a cancelled call is answered at once while its replica is asked to drop it.
 */
class ClusterCallerTest {
    static final ActorTestKit KIT = ActorTestKit.create();
    static final ClusterSettings SETTINGS = new ClusterSettings("mps-actors", "", Map.of(), 2, Duration.ofSeconds(5),
            10, Duration.ofMillis(300), 3, Duration.ofMillis(10));
    static final InferenceInputs INPUTS = InferenceInputs.of(new int[][] {{1, 2}});

    record Sent(String entityId, ClusterInfer message) {}

    @AfterAll
    static void stop() {
        KIT.shutdownTestKit();
    }

    record Cancelled(String entityId, ModelEntity.ClusterCancel message) {}

    private final BlockingQueue<Sent> sent = new LinkedBlockingQueue<>();
    private final BlockingQueue<Cancelled> cancels = new LinkedBlockingQueue<>();
    private final ClusterCaller.Counters counters = new ClusterCaller.Counters();
    private final ActorRef<ClusterCaller.Command> caller = KIT.spawn(ClusterCaller.create(SETTINGS, counters,
            (entity, m) -> {
                if (m instanceof ClusterInfer infer) {
                    sent.add(new Sent(entity, infer));
                } else {
                    cancels.add(new Cancelled(entity, (ModelEntity.ClusterCancel) m));
                }
            }));
    private final TestProbe<ClusterCaller.Outcome> client = KIT.createTestProbe();

    private Sent nextSent() throws InterruptedException {
        Sent s = sent.poll(5, TimeUnit.SECONDS);
        if (s == null) {
            throw new AssertionError("no attempt was sent");
        }
        return s;
    }

    private static ClusterInferResult result(ClusterInfer m, String entity) {
        return new ClusterInferResult(m.requestId(), new float[][][] {{{1f}}}, new float[][] {{1f}}, entity, "node");
    }

    @Test
    void aSecondReplyToOneAttemptIsCountedAndNotDelivered() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r1", INPUTS, client.getRef()));
        Sent s = nextSent();
        s.message().replyTo().tell(result(s.message(), s.entityId()));
        s.message().replyTo().tell(result(s.message(), s.entityId()));
        ClusterCaller.Succeeded ok = client.expectMessageClass(ClusterCaller.Succeeded.class);
        assertEquals("r1", ok.requestId());
        assertEquals("r1", ok.result().requestId(), "the caller's id, not the wire id");
        assertEquals(1, ok.attempts());
        client.expectNoMessage(Duration.ofMillis(500));
        ClusterCaller.Stats stats = counters.snapshot();
        assertEquals(new ClusterCaller.Stats(1, 1, 0, 0, 2, 0, 1, 0), stats);
    }

    @Test
    void aReplyAfterItsAttemptTimedOutIsLateAndAThirdIsADuplicate() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r2", INPUTS, client.getRef()));
        Sent first = nextSent();
        Sent second = nextSent(); // after the first attempt's 300 ms, on the next replica
        assertEquals(List.of("tiny#0", "tiny#1"), List.of(first.entityId(), second.entityId()));
        second.message().replyTo().tell(result(second.message(), second.entityId()));
        assertEquals(2, client.expectMessageClass(ClusterCaller.Succeeded.class).attempts());
        first.message().replyTo().tell(result(first.message(), first.entityId()));
        first.message().replyTo().tell(result(first.message(), first.entityId()));
        client.expectNoMessage(Duration.ofMillis(500));
        assertEquals(new ClusterCaller.Stats(1, 1, 0, 1, 3, 1, 1, 0), counters.snapshot());
    }

    @Test
    void attemptsStopAtTheLimitWithTheCauseNamed() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r3", INPUTS, client.getRef()));
        ClusterCaller.Failed f = client.expectMessageClass(ClusterCaller.Failed.class, Duration.ofSeconds(5));
        assertEquals(3, f.attempts());
        assertEquals("no reply from replica tiny#0 within PT0.3S", f.reason());
        assertEquals(List.of("tiny#0", "tiny#1", "tiny#0"),
                List.of(nextSent().entityId(), nextSent().entityId(), nextSent().entityId()));
        assertEquals(new ClusterCaller.Stats(1, 0, 1, 2, 0, 0, 0, 0), counters.snapshot());
    }

    @Test
    void retryableFailuresAreRetriedAndOthersAreNot() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r4", INPUTS, client.getRef()));
        Sent s = nextSent();
        s.message().replyTo().tell(new ClusterInferFailure(s.message().requestId(), FailureKind.UNAVAILABLE, "moving",
                true, s.entityId()));
        Sent retry = nextSent();
        retry.message().replyTo().tell(new ClusterInferFailure(retry.message().requestId(),
                FailureKind.INVALID_REQUEST, "token 99 >= vocab_size", false, retry.entityId()));
        ClusterCaller.Failed f = assertInstanceOf(ClusterCaller.Failed.class, client.receiveMessage());
        assertEquals(2, f.attempts());
        assertEquals("token 99 >= vocab_size", f.reason());
        assertEquals(FailureKind.INVALID_REQUEST, f.kind(), "the replica's kind is passed on");
        client.expectNoMessage(Duration.ofMillis(400));
        assertEquals(new ClusterCaller.Stats(1, 0, 1, 1, 2, 0, 0, 0), counters.snapshot());
    }

    @Test
    void theDeadlineAndPriorityTravelWithEachAttemptAndNoAttemptIsSentAfterTheDeadline() throws Exception {
        Instant deadline = Instant.now().plusMillis(250);
        caller.tell(new ClusterCaller.Call("tiny", "r5", INPUTS, null, deadline, 7, client.getRef()));
        Sent s = nextSent();
        assertEquals(7, s.message().priority());
        assertTrue(s.message().timeoutMillis() != null && s.message().timeoutMillis() > 0
                && s.message().timeoutMillis() <= 250, "the time left, " + s.message().timeoutMillis());
        // the attempt times out (300 ms) after the deadline: answered, nothing more sent
        ClusterCaller.Failed f = client.expectMessageClass(ClusterCaller.Failed.class, Duration.ofSeconds(5));
        assertEquals(FailureKind.DEADLINE_EXCEEDED, f.kind(), f.reason());
        assertEquals(1, f.attempts());
        assertEquals(null, sent.poll(300, TimeUnit.MILLISECONDS), "no attempt after the deadline");
        Cancelled c = cancels.poll(5, TimeUnit.SECONDS);
        assertEquals(new Cancelled(s.entityId(), new ModelEntity.ClusterCancel(s.message().requestId(),
                s.message().replyTo())), c, "the timed-out attempt is asked to be dropped");
    }

    @Test
    void anOverloadMovesToAnUntriedReplicaAtOnceThenIsAnsweredAsAnOverload() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r6", INPUTS, client.getRef()));
        Sent first = nextSent();
        first.message().replyTo().tell(new ClusterInferFailure(first.message().requestId(), FailureKind.OVERLOADED,
                "queue full", true, first.entityId()));
        Sent second = nextSent();
        assertTrue(!first.entityId().equals(second.entityId()), "the other replica");
        second.message().replyTo().tell(new ClusterInferFailure(second.message().requestId(), FailureKind.OVERLOADED,
                "queue full too", true, second.entityId()));
        ClusterCaller.Failed f = client.expectMessageClass(ClusterCaller.Failed.class, Duration.ofSeconds(5));
        assertEquals(FailureKind.OVERLOADED, f.kind());
        assertEquals(2, f.attempts(), "each of the 2 replicas once, though 3 attempts are allowed");
        assertEquals("queue full too", f.reason());
        assertEquals(null, sent.poll(200, TimeUnit.MILLISECONDS));
    }

    @Test
    void aCancelledCallIsAnsweredAtOnceAndItsReplicaAskedToDropIt() throws Exception {
        caller.tell(new ClusterCaller.Call("tiny", "r7", INPUTS, client.getRef()));
        Sent s = nextSent();
        caller.tell(new ClusterCaller.Cancel("r7"));
        caller.tell(new ClusterCaller.Cancel("unknown"));
        ClusterCaller.Failed f = client.expectMessageClass(ClusterCaller.Failed.class, Duration.ofSeconds(5));
        assertEquals(FailureKind.CANCELLED, f.kind());
        Cancelled c = cancels.poll(5, TimeUnit.SECONDS);
        assertEquals(new Cancelled(s.entityId(), new ModelEntity.ClusterCancel(s.message().requestId(),
                s.message().replyTo())), c);
        // the replica's answer to the dropped attempt is late, never a second outcome
        s.message().replyTo().tell(new ClusterInferFailure(s.message().requestId(), FailureKind.CANCELLED, "dropped",
                false, s.entityId()));
        client.expectNoMessage(Duration.ofMillis(400));
        assertEquals(new ClusterCaller.Stats(1, 0, 1, 0, 1, 1, 0, 0), counters.snapshot());
        assertEquals(null, cancels.poll(100, TimeUnit.MILLISECONDS), "the unknown id is ignored");
    }
}
