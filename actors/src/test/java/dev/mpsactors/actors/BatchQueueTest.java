package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.actors.BatchQueue.Pending;
import dev.mpsactors.actors.BatchQueue.Taken;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Embedding;
import dev.mpsactors.protocol.InferenceProtocol.Infer;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.OutputSpec;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import java.lang.reflect.Proxy;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

/** The model's request queue on its own: order, admission, expiry, cancel and batch taking, without actors. */
class BatchQueueTest {
    private static final Instant NOW = Instant.parse("2026-01-01T00:00:00Z");

    /** A reply target the queue must never use (it sends nothing). */
    @SuppressWarnings("unchecked")
    private static final ActorRef<InferenceProtocol.InferReply> NOBODY = (ActorRef<InferenceProtocol.InferReply>)
            Proxy.newProxyInstance(BatchQueueTest.class.getClassLoader(), new Class<?>[] {ActorRef.class},
                    (proxy, method, args) -> {
                        throw new AssertionError("the queue called " + method.getName() + " on a reply target");
                    });

    private static Infer request(String id, int sequences, int length, int priority, Instant deadline,
                                 OutputSpec outputs) {
        int[][] ids = new int[sequences][length];
        for (int[] row : ids) {
            java.util.Arrays.fill(row, 7);
        }
        return new Infer(id, InferenceInputs.of(ids), NOBODY, deadline, outputs, priority);
    }

    private static Infer request(String id, int sequences, int length, int priority) {
        return request(id, sequences, length, priority, null, OutputSpec.HF_DEFAULT);
    }

    private static List<String> ids(List<Pending> pending) {
        List<String> ids = new ArrayList<>();
        for (Pending p : pending) {
            ids.add(p.request().requestId());
        }
        return ids;
    }

    @Test
    void aHigherPriorityIsTakenFirstThenArrivalOrder() {
        BatchQueue queue = new BatchQueue(1, 100, 8, 64);
        long t = 0;
        for (String[] r : new String[][] {{"a", "0"}, {"b", "5"}, {"c", "0"}, {"d", "5"}, {"e", "-1"}}) {
            assertTrue(queue.offer(request(r[0], 1, 8, Integer.parseInt(r[1])), t++));
        }
        List<String> order = new ArrayList<>();
        for (Integer bucket = queue.nextBucket(false); bucket != null; bucket = queue.nextBucket(false)) {
            Taken taken = queue.take(bucket, NOW);
            assertEquals(1, taken.rows());
            order.addAll(ids(taken.members()));
        }
        assertEquals(List.of("b", "d", "a", "c", "e"), order);
        assertEquals(5, queue.held()); // taken into batches, still held until they leave
    }

    @Test
    void theNextBucketIsTheOneWhoseHeadComesFirstAcrossBuckets() {
        BatchQueue queue = new BatchQueue(4, 100, 8, 64);
        queue.offer(request("short-old", 1, 5, 0), 0);
        queue.offer(request("long-new-urgent", 1, 20, 3), 1);
        queue.offer(request("long-old", 1, 17, 0), 2);
        Integer first = queue.nextBucket(false);
        Taken urgent = queue.take(first, NOW);
        assertEquals(List.of("long-new-urgent", "long-old"), ids(urgent.members())); // 20 and 17 both pad to 24
        assertEquals(24, urgent.seq());
        assertNull(urgent.embedding());
        Taken rest = queue.take(queue.nextBucket(false), NOW);
        assertEquals(List.of("short-old"), ids(rest.members()));
        assertEquals(8, rest.seq());
        assertNull(queue.nextBucket(false));
    }

    @Test
    void lengthsPadToTheBucketAndAtMostTheModelsLongestSequence() {
        BatchQueue queue = new BatchQueue(8, 100, 16, 40);
        queue.offer(request("a", 1, 39, 0), 0);
        assertEquals(40, queue.take(queue.nextBucket(false), NOW).seq());
    }

    @Test
    void eachKindOfPooledEmbeddingHasItsOwnBucket() {
        BatchQueue queue = new BatchQueue(8, 100, 8, 64);
        Embedding meanNormalized = new Embedding(Pooling.MEAN, true);
        queue.offer(request("plain", 1, 8, 0), 0);
        queue.offer(request("mean", 1, 8, 0, null, new OutputSpec(false, false, meanNormalized)), 1);
        queue.offer(request("cls", 1, 8, 0, null, new OutputSpec(false, false, new Embedding(Pooling.CLS, false))), 2);
        Taken plain = queue.take(queue.nextBucket(false), NOW);
        Taken mean = queue.take(queue.nextBucket(false), NOW);
        Taken cls = queue.take(queue.nextBucket(false), NOW);
        assertEquals(List.of("plain"), ids(plain.members()));
        assertNull(plain.embedding());
        assertEquals(List.of("mean"), ids(mean.members()));
        assertEquals(meanNormalized, mean.embedding());
        assertEquals(new Embedding(Pooling.CLS, false), cls.embedding());
        assertEquals(8, cls.seq());
    }

    @Test
    void aBatchTakesWholeRequestsUpToMaxBatchSequences() {
        BatchQueue queue = new BatchQueue(4, 100, 8, 64);
        queue.offer(request("three", 3, 8, 0), 0);
        queue.offer(request("two", 2, 8, 0), 1);
        queue.offer(request("one", 1, 8, 0), 2);
        int bucket = queue.nextBucket(false);
        assertTrue(queue.isFull(bucket)); // 6 sequences
        Taken first = queue.take(bucket, NOW);
        assertEquals(List.of("three"), ids(first.members())); // "two" would make 5
        assertEquals(3, first.rows());
        assertFalse(queue.isFull(bucket)); // 3 left
        Taken second = queue.take(bucket, NOW);
        assertEquals(List.of("two", "one"), ids(second.members()));
        assertEquals(3, second.rows());
        assertNull(queue.nextBucket(false));
    }

    @Test
    void aRequestWiderThanMaxBatchStillMakesABatchAlone() {
        BatchQueue queue = new BatchQueue(2, 100, 8, 64);
        queue.offer(request("wide", 5, 8, 0), 0);
        queue.offer(request("next", 1, 8, 0), 1);
        Taken taken = queue.take(queue.nextBucket(false), NOW);
        assertEquals(List.of("wide"), ids(taken.members()));
        assertEquals(5, taken.rows());
    }

    @Test
    void onlyFullPicksTheFirstFullBucketOverAnOlderPartialOne() {
        BatchQueue queue = new BatchQueue(2, 100, 8, 64);
        queue.offer(request("partial", 1, 8, 0), 0);
        queue.offer(request("full-1", 1, 16, 0), 1);
        queue.offer(request("full-2", 1, 16, 0), 2);
        int partial = queue.nextBucket(false);
        int full = queue.nextBucket(true);
        assertFalse(queue.isFull(partial));
        assertTrue(queue.isFull(full));
        assertEquals(List.of("full-1", "full-2"), ids(queue.take(full, NOW).members()));
        assertNull(queue.nextBucket(true));
        assertEquals(List.of("partial"), ids(queue.take(queue.nextBucket(false), NOW).members()));
    }

    @Test
    void theHeadsArrivalIsKeptForTheDelayRule() {
        BatchQueue queue = new BatchQueue(4, 100, 8, 64);
        queue.offer(request("low", 1, 8, 0), 100);
        queue.offer(request("high", 1, 8, 9), 250);
        assertEquals(250, queue.headArrivedNanos(queue.nextBucket(false))); // the head in queue order
    }

    @Test
    void admissionRefusesAtMaxQueuedAndCountsBatchedRequestsUntilTheyLeave() {
        BatchQueue queue = new BatchQueue(8, 2, 8, 64);
        assertTrue(queue.offer(request("a", 1, 8, 0), 0));
        assertTrue(queue.offer(request("b", 1, 8, 0), 1));
        assertFalse(queue.offer(request("c", 1, 8, 0), 2));
        assertEquals(2, queue.held());
        Taken taken = queue.take(queue.nextBucket(false), NOW);
        assertEquals(List.of("a", "b"), ids(taken.members())); // the refused one was not kept
        assertFalse(queue.offer(request("d", 1, 8, 0), 3)); // still held while their batch runs
        queue.leave(taken.members().size());
        assertEquals(0, queue.held());
        assertTrue(queue.offer(request("e", 1, 8, 0), 4));
        assertEquals(1, queue.held());
    }

    @Test
    void expiryRemovesOnlyRequestsWhoseDeadlinePassed() {
        BatchQueue queue = new BatchQueue(8, 10, 8, 64);
        queue.offer(request("gone", 1, 8, 0, NOW.minusSeconds(1), OutputSpec.HF_DEFAULT), 0);
        queue.offer(request("exactly-now", 1, 16, 0, NOW, OutputSpec.HF_DEFAULT), 1);
        queue.offer(request("later", 1, 8, 0, NOW.plusSeconds(5), OutputSpec.HF_DEFAULT), 2);
        queue.offer(request("none", 1, 8, 0), 3);
        assertEquals(NOW.minusSeconds(1), queue.earliestDeadline());
        List<Pending> expired = queue.expire(NOW);
        assertEquals(List.of("gone", "exactly-now"), ids(expired));
        assertEquals(2, queue.held());
        assertEquals(NOW.plusSeconds(5), queue.earliestDeadline());
        assertEquals(List.of("later", "none"), ids(queue.take(queue.nextBucket(false), NOW).members()));
        assertNull(queue.nextBucket(false)); // the emptied 16-token bucket is gone
        assertNull(queue.earliestDeadline());
    }

    @Test
    void takingABatchSetsExpiredRequestsApart() {
        BatchQueue queue = new BatchQueue(2, 10, 8, 64);
        queue.offer(request("a", 1, 8, 0), 0);
        queue.offer(request("expired", 1, 8, 0, NOW.minusMillis(1), OutputSpec.HF_DEFAULT), 1);
        queue.offer(request("b", 1, 8, 0), 2);
        queue.offer(request("c", 1, 8, 0), 3);
        Taken taken = queue.take(queue.nextBucket(false), NOW);
        assertEquals(List.of("a", "b"), ids(taken.members()));
        assertEquals(List.of("expired"), ids(taken.expired()));
        assertEquals(2, taken.rows());
        assertEquals(3, queue.held()); // a, b in the batch, c queued; the expired one left
        assertEquals(List.of("c"), ids(queue.take(queue.nextBucket(false), NOW).members()));
    }

    @Test
    void cancelRemovesTheQueuedRequestOnce() {
        BatchQueue queue = new BatchQueue(2, 10, 8, 64);
        queue.offer(request("keep", 1, 8, 0), 0);
        queue.offer(request("drop", 1, 16, 0), 1);
        queue.offer(request("drop-too", 1, 16, 0), 2);
        assertTrue(queue.isFull(queue.nextBucket(true)));
        assertEquals("drop", queue.cancel("drop").request().requestId());
        assertNull(queue.cancel("drop"));
        assertNull(queue.cancel("unknown"));
        assertEquals(2, queue.held());
        assertNull(queue.nextBucket(true)); // its bucket's count went down with it
        assertEquals("drop-too", queue.cancel("drop-too").request().requestId());
        assertEquals(List.of("keep"), ids(queue.take(queue.nextBucket(false), NOW).members()));
        assertNull(queue.nextBucket(false));
        assertNull(queue.cancel("keep")); // in a batch already: not the queue's to cancel
    }

    @Test
    void drainEmptiesTheQueueAndClearForgetsBatchedRequestsToo() {
        BatchQueue queue = new BatchQueue(1, 10, 8, 64);
        queue.offer(request("batched", 1, 8, 0), 0);
        queue.offer(request("q1", 1, 8, 1), 1);
        queue.offer(request("q2", 1, 16, 0), 2);
        queue.take(queue.nextBucket(false), NOW); // q1 (priority 1)
        assertEquals(List.of("batched", "q2"), ids(queue.drain()));
        assertEquals(1, queue.held());
        assertNull(queue.nextBucket(false));
        queue.offer(request("q3", 1, 8, 0), 3);
        assertEquals(List.of("q3"), ids(queue.clear()));
        assertEquals(0, queue.held());
    }
}
