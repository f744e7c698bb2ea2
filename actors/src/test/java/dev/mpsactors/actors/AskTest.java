package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link Ask}: every ask is answered exactly once to the asking actor (the reply, or the timeout), and the reply
 * reaches the actor without a task on {@code CompletableFuture}'s default executor. The Java DSL's ask ran each
 * reply there: on the common pool, or on a new thread where that pool has parallelism 1 (two cores). So here the
 * common pool is kept busy while the asks run (its replies would wait for it) and the threads started are
 * counted (one per reply would be hundreds).
 */
class AskTest {
    private static ActorTestKit testKit;

    private record Echo(int n, ActorRef<Integer> replyTo) {}

    /** What the asking actor gets: the reply or the failure, and the thread the mapping ran on. */
    private record Outcome(int asked, Integer reply, Throwable failure, String mappedOn) {}

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create("ask-test");
    }

    @AfterAll
    static void stop() {
        testKit.shutdownTestKit();
    }

    private static Behavior<Echo> echo(boolean answer) {
        return Behaviors.receive(Echo.class).onMessage(Echo.class, m -> {
            if (answer) {
                m.replyTo().tell(m.n() * 2);
            }
            return Behaviors.same();
        }).build();
    }

    /** Asks {@code target} {@code count} times on start and forwards each outcome to {@code out}. */
    private static Behavior<Outcome> asker(ActorRef<Echo> target, int count, Duration timeout, ActorRef<Outcome> out) {
        return Behaviors.setup(ctx -> {
            for (int i = 0; i < count; i++) {
                int n = i;
                Ask.ask(ctx, Integer.class, target, timeout, replyTo -> new Echo(n, replyTo),
                        (reply, failure) -> new Outcome(n, reply, failure, Thread.currentThread().getName()));
            }
            return Behaviors.receive(Outcome.class).onAnyMessage(o -> {
                out.tell(o);
                return Behaviors.same();
            }).build();
        });
    }

    @Test
    void eachAskIsAnsweredOnceInTheAskingActorWithoutAThreadPerReply() throws InterruptedException {
        int asks = 400;
        ActorRef<Echo> target = testKit.spawn(echo(true));
        TestProbe<Outcome> out = testKit.createTestProbe();
        CountDownLatch release = new CountDownLatch(1);
        int parallelism = ForkJoinPool.getCommonPoolParallelism();
        CountDownLatch occupied = new CountDownLatch(parallelism);
        for (int i = 0; i < parallelism; i++) {
            ForkJoinPool.commonPool().execute(() -> {
                occupied.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        boolean[] seen = new boolean[asks];
        List<String> offDispatcher = new ArrayList<>();
        long started;
        try {
            assertTrue(occupied.await(10, TimeUnit.SECONDS), "the common pool is busy");
            long threadsBefore = ManagementFactory.getThreadMXBean().getTotalStartedThreadCount();
            testKit.spawn(asker(target, asks, Duration.ofSeconds(10), out.getRef()));
            for (int i = 0; i < asks; i++) {
                Outcome o = out.receiveMessage(Duration.ofSeconds(5));
                assertNull(o.failure(), "ask " + o.asked() + " failed");
                assertEquals(o.asked() * 2, o.reply(), "the reply to ask " + o.asked());
                assertTrue(!seen[o.asked()], "ask " + o.asked() + " answered twice");
                seen[o.asked()] = true;
                if (!o.mappedOn().startsWith("ask-test-pekko.actor.default-dispatcher")) {
                    offDispatcher.add(o.mappedOn());
                }
            }
            out.expectNoMessage(Duration.ofMillis(100));
            started = ManagementFactory.getThreadMXBean().getTotalStartedThreadCount() - threadsBefore;
        } finally {
            release.countDown();
        }
        assertTrue(offDispatcher.isEmpty(), "replies mapped off the actor's dispatcher: " + offDispatcher.subList(0,
                Math.min(5, offDispatcher.size())));
        // The dispatcher may grow by a few threads; one per reply would be hundreds.
        assertTrue(started < asks / 4, started + " threads started for " + asks + " asks");
    }

    @Test
    void anUnansweredAskFailsOnceWithATimeout() {
        ActorRef<Echo> silent = testKit.spawn(echo(false));
        TestProbe<Outcome> out = testKit.createTestProbe();
        testKit.spawn(asker(silent, 3, Duration.ofMillis(200), out.getRef()));
        ConcurrentLinkedQueue<Integer> failed = new ConcurrentLinkedQueue<>();
        for (int i = 0; i < 3; i++) {
            Outcome o = out.receiveMessage(Duration.ofSeconds(10));
            assertNull(o.reply());
            assertTrue(o.failure() instanceof TimeoutException, "a timeout: " + o.failure());
            failed.add(o.asked());
        }
        out.expectNoMessage(Duration.ofMillis(300));
        assertEquals(3, failed.stream().distinct().count(), "each ask failed once: " + failed);
    }
}
