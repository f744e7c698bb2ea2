package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * Hazard 3: the fork took its stream mutex and then dispatch_sync'ed into blocks that took it again, a
 * lock-ordering deadlock under contention. Here nothing holds anything while it waits. While a long job
 * runs on each of 4 streams, every stream is asked at once to wait for the running job of each neighbour
 * (a ring of cross-stream waits in both directions: any owner that held itself while waiting for another
 * stream would close the cycle), and 48 client actors, running concurrently, each send 60 random
 * operations one after another (submit, cross-stream wait, flush, wait-for-completion). Everything
 * completes within the bound, every request gets exactly one reply (counted by receivers that would see a
 * second), none is refused, and every cross-stream wait asked for was encoded.
 */
class NoDeadlockTest {
    static final int CLIENTS = 48;
    static final int OPS_PER_CLIENT = 60;
    static final int N = 4096;

    /** Sent by a client when its operations are done. */
    record Done(int client) {}

    /** What the clients share: the runtime's streams, the latest point of each, and the counts. */
    record Shared(MpsRuntime rt, List<StreamHandle> streams, List<BufferLease> buffers, Pipeline add,
                  AtomicLongArray lastPoint, AtomicIntegerArray waitsAsked, AtomicIntegerArray waitsEncoded,
                  Queue<String> refused, ReplyLedger ledger) {
        int pair(int s, int o) {
            return s * streams.size() + o;
        }
    }

    @Test
    void crossStreamWaitsInBothDirectionsFlushesAndSyncsFromConcurrentClientsAllCompleteWithOneReplyEach()
            throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 4 }")) {
            MpsRuntime rt = f.runtime;
            List<StreamHandle> streams = rt.streams().handles();
            int k = streams.size();
            Random seed = new Random(23);
            List<BufferLease> buffers = new ArrayList<>();
            for (int i = 0; i < k; i++) {
                buffers.add(Workloads.randomBuffer(rt, seed, N));
            }
            Shared shared = new Shared(rt, streams, buffers, Workloads.pipeline(rt, "add"), new AtomicLongArray(k),
                    new AtomicIntegerArray(k * k), new AtomicIntegerArray(k * k), new ConcurrentLinkedQueue<>(),
                    new ReplyLedger());
            List<Workloads.LongGemm> jobs = new ArrayList<>();
            long[] jobPoints = new long[k];
            for (int s = 0; s < k; s++) {
                Workloads.LongGemm job = new Workloads.LongGemm(rt, 512, 48);
                jobs.add(job);
                jobPoints[s] = Await.result(rt.streams().submit(streams.get(s), List.of(job.work), true)).point();
                shared.lastPoint().set(s, jobPoints[s]);
            }

            TestProbe<Done> done = f.kit.createTestProbe();
            int clients = 0;
            // The ring: stream s waits for the running jobs of s+1 and of s-1, all asked at the same moment.
            for (int s = 0; s < k; s++) {
                for (int o : new int[] {(s + 1) % k, (s + k - 1) % k}) {
                    List<Op> ops = List.of(new Op.Wait(s, o, jobPoints[o]));
                    f.kit.spawn(client(clients++, ops, null, shared, done.getRef()), "ring-" + s + "-" + o);
                }
            }
            for (int c = 0; c < CLIENTS; c++) {
                f.kit.spawn(client(clients++, List.of(), new Random(c), shared, done.getRef()), "client-" + c);
            }
            for (int c = 0; c < clients; c++) {
                try {
                    done.receiveMessage(Duration.ofSeconds(Await.BOUND_SECONDS));
                } catch (AssertionError timeout) {
                    throw Await.reported(new AssertionError("deadlock: " + c + " of " + clients + " clients finished, no reply within "
                            + Await.BOUND_SECONDS + " s (" + shared.ledger() + ")", timeout));
                }
            }
            // Drain: a final commit on every stream and its completion.
            for (StreamHandle s : streams) {
                long p = Await.result(rt.streams().flush(s)).point();
                Await.result(rt.streams().whenComplete(s, p));
            }
            ReplyLedger.settle();

            ReplyLedger ledger = shared.ledger();
            int asked = 0;
            int encoded = 0;
            int bothWays = 0;
            for (int s = 0; s < k; s++) {
                for (int o = 0; o < k; o++) {
                    asked += shared.waitsAsked().get(shared.pair(s, o));
                    encoded += shared.waitsEncoded().get(shared.pair(s, o));
                    if (s < o && shared.waitsEncoded().get(shared.pair(s, o)) > 0
                            && shared.waitsEncoded().get(shared.pair(o, s)) > 0) {
                        bothWays++;
                    }
                }
            }
            System.out.printf("no-deadlock: %d clients on %d streams: %s; %d cross-stream waits asked, %d encoded, "
                    + "%d of %d stream pairs waited on each other in both directions; %d refused%n", clients, k,
                    ledger, asked, encoded, bothWays, k * (k - 1) / 2, shared.refused().size());
            assertEquals(ledger.requests(), ledger.answered(), "every request was answered");
            assertEquals(0, ledger.duplicates(), "no request was answered twice: " + ledger.duplicated());
            assertTrue(shared.refused().isEmpty(), "no request should have been refused: " + shared.refused());
            assertEquals(asked, encoded, "every cross-stream wait asked for was encoded");
            assertTrue(asked >= 2 * k, "the ring alone asks " + 2 * k + " waits");
            assertEquals(k * (k - 1) / 2, bothWays, "every pair of streams waited on each other in both directions");
            for (Workloads.LongGemm job : jobs) {
                job.close();
            }
            for (BufferLease b : buffers) {
                rt.memory().free(b);
            }
        }
    }

    /** One operation of a client. */
    sealed interface Op {
        record Submit(int stream) implements Op {}

        record Wait(int stream, int other, long point) implements Op {}

        record Flush(int stream) implements Op {}

        record Sync(int stream) implements Op {}
    }

    /** Runs {@code fixed} operations, or OPS_PER_CLIENT random ones, each after the previous one's reply. */
    private static Behavior<Object> client(int id, List<Op> fixed, Random random, Shared shared, ActorRef<Done> done) {
        return Behaviors.setup(ctx -> {
            AtomicInteger issued = new AtomicInteger();
            int total = random == null ? fixed.size() : OPS_PER_CLIENT;
            Runnable next = () -> {
                int i = issued.getAndIncrement();
                Op op = random == null ? fixed.get(i) : randomOp(random, shared);
                issue(op, ctx, shared);
            };
            next.run();
            return Behaviors.receiveMessage(message -> {
                if (message instanceof ReplyLedger.Reply reply) {
                    record(reply, shared);
                    if (issued.get() < total) {
                        next.run();
                    } else {
                        done.tell(new Done(id));
                    }
                }
                return Behaviors.same(); // stays alive: its receivers would see a late second reply
            });
        });
    }

    private static Op randomOp(Random random, Shared shared) {
        int k = shared.streams().size();
        int s = random.nextInt(k);
        int o = (s + 1 + random.nextInt(k - 1)) % k;
        return switch (random.nextInt(4)) {
            case 0 -> new Op.Submit(s);
            case 1 -> new Op.Wait(s, o, shared.lastPoint().get(o));
            case 2 -> new Op.Flush(s);
            default -> new Op.Sync(s);
        };
    }

    private static void issue(Op op, org.apache.pekko.actor.typed.javadsl.ActorContext<Object> ctx, Shared shared) {
        ReplyLedger ledger = shared.ledger();
        if (op instanceof Op.Submit s) {
            BufferLease b = shared.buffers().get(s.stream());
            StreamWork work = new StreamWork.KernelCall(shared.add(),
                    BuiltinKernels.add(b.buffer(), b.buffer(), b.buffer(), N));
            owner(shared, s.stream()).tell(new StreamProtocol.Submit(List.of(work), true,
                    ledger.receiver(ctx, "submit to stream " + s.stream(), ctx.getSelf())));
        } else if (op instanceof Op.Wait w) {
            shared.waitsAsked().incrementAndGet(shared.pair(w.stream(), w.other()));
            owner(shared, w.stream()).tell(new StreamProtocol.WaitFor(shared.streams().get(w.other()), w.point(),
                    ledger.receiver(ctx, "stream " + w.stream() + " waits for " + w.other() + "@" + w.point(),
                            ctx.getSelf())));
        } else if (op instanceof Op.Flush fl) {
            owner(shared, fl.stream()).tell(new StreamProtocol.Flush(
                    ledger.receiver(ctx, "flush stream " + fl.stream(), ctx.getSelf())));
        } else if (op instanceof Op.Sync sy) {
            long p = shared.lastPoint().get(sy.stream());
            owner(shared, sy.stream()).tell(new StreamProtocol.NotifyWhenComplete(p,
                    ledger.receiver(ctx, "completion of " + sy.stream() + "@" + p, ctx.getSelf())));
        }
    }

    private static void record(ReplyLedger.Reply reply, Shared shared) {
        Object m = reply.message();
        if (m instanceof StreamProtocol.Submitted s) {
            shared.lastPoint().accumulateAndGet(s.stream().id(), s.point(), Math::max);
        } else if (m instanceof StreamProtocol.WaitEncoded w) {
            shared.waitsEncoded().incrementAndGet(shared.pair(w.stream().id(), w.other().id()));
        } else if (m instanceof StreamProtocol.SubmitFailed fail) {
            shared.refused().add(reply.what() + ": " + fail.reason());
        } else if (m instanceof StreamProtocol.WaitFailed fail) {
            shared.refused().add(reply.what() + ": " + fail.reason());
        } else if (m instanceof StreamProtocol.PointCompleted p && !p.succeeded()) {
            shared.refused().add(reply.what() + ": " + p.failure());
        }
    }

    private static ActorRef<StreamProtocol.Command> owner(Shared shared, int stream) {
        return shared.streams().get(stream).owner();
    }
}
