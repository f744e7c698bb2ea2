package dev.mpsactors.actors;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Infer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.TreeMap;

/**
 * A model's request queue, owned by its {@link ModelActor} and used only on that actor's thread (no locking).
 * Requests wait in buckets: one bucket per padded sequence length and kind of pooled embedding (asking for none
 * is a kind too), each ordered by priority (higher first), then arrival. The queue also keeps the admission
 * count: requests held by the model, queued or in a batch that has not yet completed, bounded by
 * {@code max-queued}. It sends nothing: the actor answers what the queue hands back.
 */
final class BatchQueue {
    /** A request checked on arrival: its sequences, their real length, when it arrived, its arrival number. */
    record Pending(Infer request, int sequences, int length, long arrivedNanos, long order) {}

    /**
     * A batch taken from one bucket: its members (up to max-batch sequences, {@code rows} in all) and the
     * requests found expired while taking it (removed, no longer held; the caller answers them).
     */
    record Taken(int bucket, List<Pending> members, int rows, List<Pending> expired) {
        /** The padded sequence length of the bucket. */
        int seq() {
            return seqOf(bucket);
        }

        /** The pooled embedding of the bucket (null: none). */
        InferenceProtocol.Embedding embedding() {
            return embeddingOf(bucket);
        }
    }

    /** The queue order: a higher priority first, then arrival. */
    static final Comparator<Pending> QUEUE_ORDER = Comparator
            .comparingInt((Pending p) -> -p.request().priority()).thenComparingLong(Pending::order);

    /** Embedding variants: none, then each pooling plain and normalized. */
    private static final int EMBEDDING_KINDS = 1 + 2 * InferenceProtocol.Pooling.values().length;

    private final int maxBatch;
    private final int maxQueued;
    private final int seqBucket;
    private final int maxSequenceLength;

    private final TreeMap<Integer, PriorityQueue<Pending>> buckets = new TreeMap<>();
    private final Map<Integer, Integer> bucketSequences = new HashMap<>();
    private long arrivals;
    private int held;

    /**
     * @param maxBatch          the most sequences one batch takes
     * @param maxQueued         the most requests held at once (queued or in a running batch)
     * @param seqBucket         sequence lengths are padded up to a multiple of this
     * @param maxSequenceLength ... and to at most this
     */
    BatchQueue(int maxBatch, int maxQueued, int seqBucket, int maxSequenceLength) {
        this.maxBatch = maxBatch;
        this.maxQueued = maxQueued;
        this.seqBucket = seqBucket;
        this.maxSequenceLength = maxSequenceLength;
    }

    /** Requests held: queued, or taken into a batch whose requests have not {@link #leave left} yet. */
    int held() {
        return held;
    }

    /**
     * Queues a checked request (at least one sequence) in its bucket, or refuses it, keeping nothing, when
     * {@code max-queued} requests are held already.
     *
     * @return false: refused (admission control)
     */
    boolean offer(Infer request, long nowNanos) {
        if (held >= maxQueued) {
            return false;
        }
        int[][] ids = request.inputs().inputIds();
        int length = ids[0].length;
        int bucket = bucketKey(Math.min(roundUp(length, seqBucket), maxSequenceLength), request.outputs().embedding());
        held++;
        buckets.computeIfAbsent(bucket, b -> new PriorityQueue<>(QUEUE_ORDER))
                .add(new Pending(request, ids.length, length, nowNanos, arrivals++));
        bucketSequences.merge(bucket, ids.length, Integer::sum);
        return true;
    }

    /** {@code requests} taken into batches are answered or failed: they no longer count against max-queued. */
    void leave(int requests) {
        held -= requests;
    }

    /** Removes the queued request with this id (null: none is queued; it may be in a batch already). */
    Pending cancel(String requestId) {
        for (Iterator<Map.Entry<Integer, PriorityQueue<Pending>>> it = buckets.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Integer, PriorityQueue<Pending>> e = it.next();
            for (Iterator<Pending> q = e.getValue().iterator(); q.hasNext(); ) {
                Pending p = q.next();
                if (p.request().requestId().equals(requestId)) {
                    q.remove();
                    held--;
                    bucketSequences.merge(e.getKey(), -p.sequences(), Integer::sum);
                    if (e.getValue().isEmpty()) {
                        bucketSequences.remove(e.getKey());
                        it.remove();
                    }
                    return p;
                }
            }
        }
        return null;
    }

    /** Removes and returns the queued requests whose deadline is not after {@code now}. */
    List<Pending> expire(Instant now) {
        List<Pending> expired = new ArrayList<>();
        for (Iterator<Map.Entry<Integer, PriorityQueue<Pending>>> it = buckets.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Integer, PriorityQueue<Pending>> e = it.next();
            for (Iterator<Pending> q = e.getValue().iterator(); q.hasNext(); ) {
                Pending p = q.next();
                if (expired(p, now)) {
                    q.remove();
                    held--;
                    bucketSequences.merge(e.getKey(), -p.sequences(), Integer::sum);
                    expired.add(p);
                }
            }
            if (e.getValue().isEmpty()) {
                bucketSequences.remove(e.getKey());
                it.remove();
            }
        }
        return expired;
    }

    /** The earliest deadline among queued requests (null: none has one). */
    Instant earliestDeadline() {
        Instant earliest = null;
        for (PriorityQueue<Pending> queue : buckets.values()) {
            for (Pending p : queue) {
                Instant d = p.request().deadline();
                if (d != null && (earliest == null || d.isBefore(earliest))) {
                    earliest = d;
                }
            }
        }
        return earliest;
    }

    /**
     * The bucket whose head comes first in queue order (the highest priority, then the oldest); with
     * {@code fullOnly}, the first of the buckets holding at least max-batch sequences. Null: no such bucket.
     */
    Integer nextBucket(boolean fullOnly) {
        Integer best = null;
        Pending bestHead = null;
        for (Map.Entry<Integer, PriorityQueue<Pending>> e : buckets.entrySet()) {
            Pending head = e.getValue().peek();
            if (head != null && (!fullOnly || isFull(e.getKey()))
                    && (bestHead == null || QUEUE_ORDER.compare(head, bestHead) < 0)) {
                bestHead = head;
                best = e.getKey();
            }
        }
        return best;
    }

    /** Whether the bucket holds at least max-batch sequences. */
    boolean isFull(int bucket) {
        return bucketSequences.getOrDefault(bucket, 0) >= maxBatch;
    }

    /** When the head of a non-empty bucket arrived ({@link System#nanoTime()}). */
    long headArrivedNanos(int bucket) {
        return buckets.get(bucket).peek().arrivedNanos();
    }

    /**
     * Takes the bucket's requests in queue order while they fit in max-batch sequences (the first always
     * does); requests whose deadline passed are taken out too, but into {@link Taken#expired()}.
     */
    Taken take(int bucket, Instant now) {
        PriorityQueue<Pending> queue = buckets.get(bucket);
        List<Pending> members = new ArrayList<>();
        List<Pending> expired = new ArrayList<>();
        int rows = 0;
        int taken = 0;
        while (queue != null && !queue.isEmpty()
                && (members.isEmpty() || rows + queue.peek().sequences() <= maxBatch)) {
            Pending p = queue.poll();
            taken += p.sequences();
            if (expired(p, now)) {
                held--;
                expired.add(p);
                continue;
            }
            members.add(p);
            rows += p.sequences();
        }
        if (queue != null) {
            bucketSequences.merge(bucket, -taken, Integer::sum);
            if (queue.isEmpty()) {
                buckets.remove(bucket);
                bucketSequences.remove(bucket);
            }
        }
        return new Taken(bucket, members, rows, expired);
    }

    /** Removes and returns every queued request; they no longer count against max-queued. */
    List<Pending> drain() {
        List<Pending> drained = new ArrayList<>();
        for (PriorityQueue<Pending> queue : buckets.values()) {
            drained.addAll(queue);
        }
        held -= drained.size();
        buckets.clear();
        bucketSequences.clear();
        return drained;
    }

    /** Like {@link #drain()}, and forgets the requests in batches too (the model stops: nothing is held). */
    List<Pending> clear() {
        List<Pending> drained = drain();
        held = 0;
        return drained;
    }

    private static boolean expired(Pending p, Instant now) {
        Instant deadline = p.request().deadline();
        return deadline != null && !deadline.isAfter(now);
    }

    /** A bucket's key: its padded sequence length and its kind of pooled embedding together. */
    static int bucketKey(int seq, InferenceProtocol.Embedding embedding) {
        int kind = embedding == null ? 0 : 1 + 2 * embedding.pooling().ordinal() + (embedding.normalize() ? 1 : 0);
        return seq * EMBEDDING_KINDS + kind;
    }

    static int seqOf(int bucket) {
        return bucket / EMBEDDING_KINDS;
    }

    static InferenceProtocol.Embedding embeddingOf(int bucket) {
        int kind = bucket % EMBEDDING_KINDS;
        return kind == 0 ? null : new InferenceProtocol.Embedding(InferenceProtocol.Pooling.values()[(kind - 1) / 2],
                (kind - 1) % 2 == 1);
    }

    private static int roundUp(int value, int multiple) {
        return (value + multiple - 1) / multiple * multiple;
    }
}
