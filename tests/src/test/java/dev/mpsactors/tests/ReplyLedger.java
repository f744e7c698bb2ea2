package dev.mpsactors.tests;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Exactly-one-reply accounting that can see a second reply. Each request gets its own receiver actor,
 * which stays alive after the first reply and counts every message it is sent (an ask's temporary
 * actor would drop a duplicate unseen); the first reply is forwarded to whoever made the request.
 */
final class ReplyLedger {
    /** The first reply to request {@code id}, forwarded to the requester. */
    record Reply(long id, String what, Object message) {}

    private final AtomicLong ids = new AtomicLong();
    private final Map<Long, AtomicInteger> counts = new ConcurrentHashMap<>();
    private final Map<Long, String> requests = new ConcurrentHashMap<>();

    /** A receiver for one request, spawned by the requester; its first reply goes to {@code requester}. */
    <T> ActorRef<T> receiver(ActorContext<?> ctx, String what, ActorRef<? super Reply> requester) {
        long id = ids.incrementAndGet();
        AtomicInteger count = new AtomicInteger();
        counts.put(id, count);
        requests.put(id, what);
        Behavior<T> counting = Behaviors.receiveMessage(message -> {
            if (count.incrementAndGet() == 1) {
                requester.tell(new Reply(id, what, message));
            }
            return Behaviors.same();
        });
        return ctx.spawnAnonymous(counting);
    }

    int requests() {
        return counts.size();
    }

    long answered() {
        return counts.values().stream().filter(c -> c.get() >= 1).count();
    }

    long duplicates() {
        return counts.values().stream().mapToLong(c -> Math.max(0, c.get() - 1)).sum();
    }

    /** Up to ten requests that were answered more than once, with how often. */
    List<String> duplicated() {
        List<String> out = new ArrayList<>();
        counts.forEach((id, c) -> {
            if (c.get() > 1 && out.size() < 10) {
                out.add(requests.get(id) + " x" + c.get());
            }
        });
        return out;
    }

    /** Leaves time for a late second reply to arrive before the counts are read (as expectNoMessage does). */
    static void settle() {
        try {
            Thread.sleep(Duration.ofMillis(300).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Override
    public String toString() {
        return requests() + " requests, " + answered() + " answered, " + duplicates() + " duplicate replies";
    }
}
