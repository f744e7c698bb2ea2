package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.EventPoolProtocol.EventHandle;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Hazard 4: the fork's endKernelCoalescing() touched a stream's encoder without the stream's lock, from
 * event and hook code on other threads. Here one StreamActor owns the encoder; many clients at once encode
 * kernels into the same open command buffer (some committing, some not) and record events on the same
 * stream. Every client's result is exactly what its own sequence of operations gives.
 */
class SharedEncoderTest {
    static final int CLIENTS = 40;
    static final int STEPS = 25;
    static final int N = 2048;

    @Test
    void manyClientsEncodingAndRecordingOnOneStreamGetCorrectResults() throws Exception {
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
                mine.add(b);
                expected.add(v);
            }
            List<CompletableFuture<?>> requests = new ArrayList<>();
            List<EventHandle> events = new ArrayList<>();
            for (int s = 0; s < STEPS; s++) {
                for (int c = 0; c < CLIENTS; c++) {
                    BufferLease b = mine.get(c);
                    StreamWork work = new StreamWork.KernelCall(add,
                            BuiltinKernels.add(b.buffer(), step.buffer(), b.buffer(), N));
                    // Interleave: some submissions only encode, later ones commit whatever is open.
                    requests.add(rt.submit(stream, List.of(work), (s + c) % 3 == 0).toCompletableFuture());
                    float[] e = expected.get(c);
                    for (int i = 0; i < N; i++) {
                        e[i] = e[i] + stepValues[i]; // the same float additions, in the same order
                    }
                }
                EventHandle event = Await.result(rt.acquireEvent());
                events.add(event);
                requests.add(rt.recordEvent(event, stream).toCompletableFuture());
            }
            for (CompletableFuture<?> r : requests) {
                Await.result(r);
            }
            long last = Await.result(rt.flush(stream)).point();
            Await.result(rt.whenComplete(stream, last));
            for (int c = 0; c < CLIENTS; c++) {
                float[] actual = new float[N];
                mine.get(c).buffer().read(0, actual);
                assertArrayEquals(expected.get(c), actual, "client " + c + " result");
            }
            double total = 0;
            for (int i = 1; i < events.size(); i++) {
                assertTrue(Await.result(rt.isEventComplete(events.get(i))), "event " + i + " complete");
                double ms = Await.result(rt.elapsedMillis(events.get(i - 1), events.get(i)));
                assertTrue(ms >= 0, "events complete in stream order: " + ms);
                total += ms;
            }
            System.out.printf("shared encoder: %d clients x %d kernels on one stream, %d events, %.2f ms between "
                    + "first and last event%n", CLIENTS, STEPS, events.size(), total);
            for (EventHandle e : events) {
                Await.result(rt.releaseEvent(e));
            }
            for (BufferLease b : mine) {
                rt.free(b);
            }
            rt.free(step);
            assertEquals(CLIENTS * STEPS + STEPS, requests.size());
        }
    }
}
