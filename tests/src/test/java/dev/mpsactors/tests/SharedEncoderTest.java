package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.EventPoolProtocol.EventHandle;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * Hazard 4: the fork's endKernelCoalescing() touched a stream's encoder without the stream's lock, from
 * event and hook code on other threads. Here one StreamActor owns the encoder. 40 client actors, running
 * concurrently, each submit 25 kernels into the same stream's open command buffer (some committing, some
 * only encoding), while event records land on the same stream through the event pool. Every client's
 * buffer ends up exactly what its own sequence of additions gives, bit for bit; every submission gets
 * exactly one reply; the events complete in stream order.
 */
class SharedEncoderTest {
    static final int CLIENTS = 40;
    static final int STEPS = 25;
    static final int N = 2048;

    record Done(int client) {}

    @Test
    void concurrentClientsEncodingAndRecordingOnOneStreamGetExactResults() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            StreamHandle stream = rt.streams().get(0);
            Pipeline add = Workloads.pipeline(rt, "add");
            Random random = new Random(31);
            BufferLease step = Workloads.randomBuffer(rt, random, N);
            float[] stepValues = new float[N];
            step.buffer().read(0, stepValues);
            List<BufferLease> mine = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            for (int c = 0; c < CLIENTS; c++) {
                BufferLease b = Workloads.randomBuffer(rt, random, N);
                float[] v = new float[N];
                b.buffer().read(0, v);
                for (int s = 0; s < STEPS; s++) {
                    for (int i = 0; i < N; i++) {
                        v[i] = v[i] + stepValues[i]; // the same float additions, in the same order
                    }
                }
                mine.add(b);
                expected.add(v);
            }
            ReplyLedger ledger = new ReplyLedger();
            Queue<String> refused = new ConcurrentLinkedQueue<>();
            TestProbe<Done> done = f.kit.createTestProbe();
            for (int c = 0; c < CLIENTS; c++) {
                f.kit.spawn(client(c, stream, add, mine.get(c), step, ledger, refused, done.getRef()), "encoder-" + c);
            }
            // Event records through the pool, racing the clients' submissions on the same stream.
            List<EventHandle> events = new ArrayList<>();
            List<CompletableFuture<?>> records = new ArrayList<>();
            for (int s = 0; s < STEPS; s++) {
                EventHandle event = Await.result(rt.events().acquire());
                events.add(event);
                records.add(rt.events().record(event, stream).toCompletableFuture());
            }
            for (int c = 0; c < CLIENTS; c++) {
                done.receiveMessage(Duration.ofSeconds(Await.BOUND_SECONDS));
            }
            for (CompletableFuture<?> r : records) {
                Await.result(r);
            }
            long last = Await.result(rt.streams().flush(stream)).point();
            Await.result(rt.streams().whenComplete(stream, last));
            ReplyLedger.settle();
            assertTrue(refused.isEmpty(), "no submission refused: " + refused);
            assertEquals(CLIENTS * STEPS, ledger.requests());
            assertEquals(ledger.requests(), ledger.answered(), "every submission was answered");
            assertEquals(0, ledger.duplicates(), "no submission was answered twice: " + ledger.duplicated());
            for (int c = 0; c < CLIENTS; c++) {
                float[] actual = new float[N];
                mine.get(c).buffer().read(0, actual);
                assertArrayEquals(expected.get(c), actual, "client " + c + " result");
            }
            double total = 0;
            for (int i = 1; i < events.size(); i++) {
                assertTrue(Await.result(rt.events().isComplete(events.get(i))), "event " + i + " complete");
                double ms = Await.result(rt.events().elapsedMillis(events.get(i - 1), events.get(i)));
                assertTrue(ms >= 0, "events complete in stream order: " + ms);
                total += ms;
            }
            System.out.printf("shared encoder: %d client actors x %d kernels on one stream (%s), %d events, %.2f ms "
                    + "between first and last event%n", CLIENTS, STEPS, ledger, events.size(), total);
            for (EventHandle e : events) {
                Await.result(rt.events().release(e));
            }
            for (BufferLease b : mine) {
                rt.memory().free(b);
            }
            rt.memory().free(step);
        }
    }

    /** STEPS submissions of "mine += step", each sent after the previous one's reply; every third commits. */
    private static Behavior<Object> client(int id, StreamHandle stream, Pipeline add, BufferLease mine,
                                           BufferLease step, ReplyLedger ledger, Queue<String> refused,
                                           ActorRef<Done> done) {
        return Behaviors.setup(ctx -> {
            int[] sent = {0};
            StreamWork work = new StreamWork.KernelCall(add,
                    BuiltinKernels.add(mine.buffer(), step.buffer(), mine.buffer(), N));
            Runnable next = () -> {
                int s = sent[0]++;
                stream.owner().tell(new StreamProtocol.Submit(List.of(work), (s + id) % 3 == 0,
                        ledger.receiver(ctx, "client " + id + " step " + s, ctx.getSelf())));
            };
            next.run();
            return Behaviors.receiveMessage(message -> {
                if (message instanceof ReplyLedger.Reply reply) {
                    if (reply.message() instanceof StreamProtocol.SubmitFailed failed) {
                        refused.add(reply.what() + ": " + failed.reason());
                    }
                    if (sent[0] < STEPS) {
                        next.run();
                    } else {
                        done.tell(new Done(id));
                    }
                }
                return Behaviors.same();
            });
        });
    }
}
