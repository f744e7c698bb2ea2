package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.MpsRuntimeException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.Test;

/**
 * Hazard 3: the fork took its stream mutex and then dispatch_sync'ed into blocks that took it again, a
 * lock-ordering deadlock under contention. Here nothing holds anything while it waits. Many clients
 * interleave submissions, cross-stream waits in both directions (A waits on B while B waits on A),
 * flushes and completion waits on every stream at once: everything finishes within a bound and every
 * request gets exactly one reply.
 */
class NoDeadlockTest {
    static final int CLIENTS = 48;
    static final int OPS_PER_CLIENT = 60;

    @Test
    void interleavedCrossStreamWaitsFlushesAndSyncsAllCompleteWithOneReplyEach() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 4 }")) {
            MpsRuntime rt = f.runtime;
            List<StreamHandle> streams = rt.streams();
            Pipeline add = Workloads.pipeline(rt, "add");
            Random seed = new Random(23);
            int n = 4096;
            List<BufferLease> buffers = new ArrayList<>();
            for (int i = 0; i < streams.size(); i++) {
                buffers.add(Workloads.randomBuffer(rt, seed, n));
            }
            AtomicLongArray lastPoint = new AtomicLongArray(streams.size());
            List<CompletableFuture<?>> requests = new ArrayList<>();
            long started = System.nanoTime();
            for (int c = 0; c < CLIENTS; c++) {
                Random random = new Random(c);
                for (int op = 0; op < OPS_PER_CLIENT; op++) {
                    int s = random.nextInt(streams.size());
                    int o = (s + 1 + random.nextInt(streams.size() - 1)) % streams.size();
                    StreamHandle stream = streams.get(s);
                    switch (random.nextInt(4)) {
                        case 0 -> {
                            BufferLease b = buffers.get(s);
                            StreamWork work = new StreamWork.KernelCall(add,
                                    BuiltinKernels.add(b.buffer(), b.buffer(), b.buffer(), n));
                            requests.add(rt.submit(stream, List.of(work), true).toCompletableFuture()
                                    .thenApply(r -> {
                                        lastPoint.accumulateAndGet(s, r.point(), Math::max);
                                        return r;
                                    }));
                        }
                        case 1 -> {
                            long p = lastPoint.get(o);
                            if (p > 0) {
                                requests.add(rt.waitFor(stream, streams.get(o), p).toCompletableFuture());
                            } else {
                                requests.add(rt.flush(streams.get(o)).toCompletableFuture());
                            }
                        }
                        case 2 -> requests.add(rt.flush(stream).toCompletableFuture());
                        default -> {
                            long p = lastPoint.get(s);
                            requests.add(p > 0 ? rt.whenComplete(stream, p).toCompletableFuture()
                                    : rt.flush(stream).toCompletableFuture());
                        }
                    }
                }
            }
            int succeeded = 0;
            int refused = 0;
            for (CompletableFuture<?> r : requests) {
                try {
                    r.get(Await.BOUND_SECONDS, TimeUnit.SECONDS);
                    succeeded++;
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof MpsRuntimeException) {
                        refused++; // an error reply is a reply
                    } else {
                        fail("lost reply or unexpected failure: " + e.getCause());
                    }
                } catch (TimeoutException e) {
                    fail("deadlock: a request got no reply within " + Await.BOUND_SECONDS + " s");
                }
            }
            // Drain: a final commit on every stream and its completion.
            for (StreamHandle s : streams) {
                long p = Await.result(rt.flush(s)).point();
                Await.result(rt.whenComplete(s, p));
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            System.out.printf("no-deadlock: %d requests from %d clients on %d streams: %d succeeded, %d refused, "
                    + "all within %.2f s%n", requests.size(), CLIENTS, streams.size(), succeeded, refused, seconds);
            assertEquals(requests.size(), succeeded + refused, "exactly one reply per request");
            assertEquals(0, refused, "no request should have been refused");
            assertTrue(seconds < Await.BOUND_SECONDS);
            for (BufferLease b : buffers) {
                rt.free(b);
            }
        }
    }
}
