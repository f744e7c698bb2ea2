package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Hazard 6: the fork serialised every LayerNorm behind one process-wide mutex. Here kernels are pure
 * functions that nobody owns. Each LayerNorm is its own command buffer, so its completion carries the
 * kernel's own execution interval (kernel-level timestamps from the executor, not the time a stream
 * started). A single-stream baseline shows what serial execution looks like through this measurement:
 * consecutive, never overlapping intervals. On two streams, LayerNorms of one stream must be executing
 * while LayerNorms of the other are: a count of overlapping kernel pairs, which any process-wide mutex
 * around the kernel call makes exactly zero. (The speed-up itself belongs to the benchmark.)
 */
class ParallelLayerNormTest {
    static final int ROWS = 1024;
    static final int COLS = 768;
    static final int KERNELS_PER_STREAM = 150;

    record Interval(long start, long end) {
        boolean overlaps(Interval o) {
            return start < o.end && o.start < end;
        }

        long nanos() {
            return end - start;
        }
    }

    @Test
    void layerNormsOnTwoStreamsExecuteAtTheSameTimeUnlikeOnOneStream() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2 }")) {
            MpsRuntime rt = f.runtime;
            Pipeline layerNorm = Workloads.pipeline(rt, "layernorm");
            Random random = new Random(3);
            List<StreamHandle> streams = rt.streams().handles();
            List<BufferLease> owned = new ArrayList<>();
            List<StreamWork> work = new ArrayList<>();
            for (int s = 0; s < streams.size(); s++) {
                BufferLease x = Workloads.randomBuffer(rt, random, ROWS * COLS);
                BufferLease gamma = Workloads.randomBuffer(rt, random, COLS);
                BufferLease beta = Workloads.randomBuffer(rt, random, COLS);
                owned.addAll(List.of(x, gamma, beta));
                work.add(Workloads.layerNorms(layerNorm, x, gamma, beta, ROWS, COLS, 1).get(0));
            }

            // Baseline: one stream alone. Its kernels run one after another: the measurement must say so.
            List<Interval> alone = run(rt, List.of(streams.get(0)), List.of(work.get(0))).get(0);
            assertEquals(0, overlapsWithin(alone), "kernels of one stream never overlap");
            for (int i = 1; i < alone.size(); i++) {
                assertTrue(alone.get(i).start() >= alone.get(i - 1).end(),
                        "one stream executes kernel " + i + " after kernel " + (i - 1) + " ended");
            }

            // Two streams at once, submissions interleaved.
            List<List<Interval>> both = run(rt, streams, work);
            List<Interval> a = both.get(0);
            List<Interval> b = both.get(1);
            long pairs = crossOverlaps(a, b);
            int kernelsOverlapping = 0;
            for (Interval i : a) {
                if (b.stream().anyMatch(i::overlaps)) {
                    kernelsOverlapping++;
                }
            }
            double meanAlone = mean(alone);
            double meanTogether = (mean(a) + mean(b)) / 2;
            double concurrency = (total(a) + total(b)) / (double) union(a, b);
            System.out.printf("parallel LayerNorm (%dx%d): one stream alone %.3f ms/kernel, two streams %.3f ms/kernel; "
                            + "%d of stream 0's %d kernels overlap a kernel of stream 1 (%d overlapping pairs); "
                            + "kernel time / busy time = %.2f%n", ROWS, COLS, meanAlone / 1e6, meanTogether / 1e6,
                    kernelsOverlapping, a.size(), pairs, concurrency);
            assertTrue(pairs > 0, "LayerNorms on two streams never executed at the same time: " + a.size() + " + "
                    + b.size() + " kernels, 0 overlapping pairs (they were serialised)");
            for (BufferLease l : owned) {
                rt.memory().free(l);
            }
        }
    }

    /** Runs KERNELS_PER_STREAM copies of work[s] on streams[s], each its own command buffer, all at once. */
    private static List<List<Interval>> run(MpsRuntime rt, List<StreamHandle> streams, List<StreamWork> work) {
        List<List<CompletableFuture<PointCompleted>>> pending = new ArrayList<>();
        for (int s = 0; s < streams.size(); s++) {
            pending.add(new ArrayList<>());
        }
        for (int k = 0; k < KERNELS_PER_STREAM; k++) {
            for (int s = 0; s < streams.size(); s++) {
                pending.get(s).add(rt.streams().run(streams.get(s), List.of(work.get(s))).toCompletableFuture());
            }
        }
        List<List<Interval>> intervals = new ArrayList<>();
        for (List<CompletableFuture<PointCompleted>> stream : pending) {
            List<Interval> list = new ArrayList<>();
            for (CompletableFuture<PointCompleted> p : stream) {
                PointCompleted done = Await.result(p);
                assertTrue(done.succeeded() && done.timed(), "each kernel reports its execution times: " + done);
                list.add(new Interval(done.startedNanos(), done.finishedNanos()));
            }
            intervals.add(list);
        }
        return intervals;
    }

    private static long crossOverlaps(List<Interval> a, List<Interval> b) {
        long pairs = 0;
        for (Interval x : a) {
            for (Interval y : b) {
                if (x.overlaps(y)) {
                    pairs++;
                }
            }
        }
        return pairs;
    }

    /** Pairs of distinct kernels of one stream that overlap. */
    private static long overlapsWithin(List<Interval> l) {
        long pairs = 0;
        for (int i = 0; i < l.size(); i++) {
            for (int j = i + 1; j < l.size(); j++) {
                if (l.get(i).overlaps(l.get(j))) {
                    pairs++;
                }
            }
        }
        return pairs;
    }

    private static double mean(List<Interval> l) {
        return total(l) / (double) l.size();
    }

    private static long total(List<Interval> l) {
        return l.stream().mapToLong(Interval::nanos).sum();
    }

    /** Length of the union of both streams' intervals. */
    private static long union(List<Interval> a, List<Interval> b) {
        List<Interval> all = new ArrayList<>(a);
        all.addAll(b);
        all.sort((x, y) -> Long.compare(x.start(), y.start()));
        long covered = 0;
        long start = Long.MIN_VALUE;
        long end = Long.MIN_VALUE;
        for (Interval i : all) {
            if (i.start() > end) {
                covered += end - start;
                start = i.start();
                end = i.end();
            } else {
                end = Math.max(end, i.end());
            }
        }
        return covered + (end - start);
    }
}
