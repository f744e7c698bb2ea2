package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

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
 * Hazard 6: the fork serialised every LayerNorm behind one process-wide mutex. Here kernels are pure
 * functions: LayerNorm-only work on two streams runs at the same time. Each stream brackets its work
 * with events; the two execution intervals must overlap (the speed-up itself is measured in the
 * benchmark, not here).
 */
class ParallelLayerNormTest {

    @Test
    void layerNormOnTwoStreamsExecutesConcurrently() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            Pipeline layerNorm = Workloads.pipeline(rt, "layernorm");
            Random random = new Random(3);
            int rows = 1024, cols = 768, repeats = 500;
            List<StreamHandle> streams = rt.streams();
            List<BufferLease> owned = new ArrayList<>();
            List<EventHandle[]> brackets = new ArrayList<>();
            List<CompletableFuture<?>> done = new ArrayList<>();
            for (StreamHandle s : streams) {
                BufferLease x = Workloads.randomBuffer(rt, random, rows * cols);
                BufferLease gamma = Workloads.randomBuffer(rt, random, cols);
                BufferLease beta = Workloads.randomBuffer(rt, random, cols);
                owned.addAll(List.of(x, gamma, beta));
                EventHandle start = Await.result(rt.acquireEvent());
                EventHandle end = Await.result(rt.acquireEvent());
                brackets.add(new EventHandle[] {start, end});
                List<StreamWork> work = Workloads.layerNorms(layerNorm, x, gamma, beta, rows, cols, repeats);
                // start record, the LayerNorms, end record: one command buffer on each stream.
                Await.result(rt.recordEvent(start, s));
                Await.result(rt.submit(s, work, false));
                Await.result(rt.recordEvent(end, s));
            }
            for (StreamHandle s : streams) {
                long p = Await.result(rt.flush(s)).point();
                done.add(rt.whenComplete(s, p).toCompletableFuture());
            }
            for (CompletableFuture<?> d : done) {
                Await.result(d);
            }
            EventHandle[] a = brackets.get(0);
            EventHandle[] b = brackets.get(1);
            double aMs = Await.result(rt.elapsedMillis(a[0], a[1]));
            double bMs = Await.result(rt.elapsedMillis(b[0], b[1]));
            // Intervals [a0, a1] and [b0, b1] overlap iff b0 < a1 and a0 < b1 (signed elapsed times).
            double b0ToA1 = Await.result(rt.elapsedMillis(b[0], a[1]));
            double a0ToB1 = Await.result(rt.elapsedMillis(a[0], b[1]));
            System.out.printf("parallel LayerNorm: stream 0 ran %.1f ms, stream 1 ran %.1f ms, overlap %.1f ms%n",
                    aMs, bMs, Math.min(b0ToA1, a0ToB1));
            assertTrue(b0ToA1 > 0 && a0ToB1 > 0,
                    "LayerNorm intervals on two streams must overlap (b0->a1 " + b0ToA1 + " ms, a0->b1 " + a0ToB1 + " ms)");
            for (EventHandle[] pair : brackets) {
                Await.result(rt.releaseEvent(pair[0]));
                Await.result(rt.releaseEvent(pair[1]));
            }
            for (BufferLease l : owned) {
                rt.free(l);
            }
        }
    }
}
