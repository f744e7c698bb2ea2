package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Several streams, each owned by its own Java thread, chained by cross-stream waits: every committed
 * point is reported exactly once and in order on a daemon thread, within a bound; results match float64;
 * uploads and downloads round-trip; closing with work pending loses nothing; nothing leaks.
 */
class StreamConcurrencyTest {
    private static final int STREAMS = 4;
    private static final int ROUNDS = 200;
    private static final int LEN = 64;

    private NativeDevice device;
    private KernelLibrary library;
    private Pipeline add;
    private Pipeline gemm;

    @BeforeEach
    void open() {
        device = NativeDevice.open(DeviceOptions.cpu());
        library = device.compileLibrary("add gemm", null);
        add = library.pipeline("add");
        gemm = library.pipeline("gemm");
    }

    @AfterEach
    void closeAndCheckNothingLeaked() {
        try {
            add.close();
            gemm.close();
            library.close();
            CompletionRecorder.awaitNoLiveObjects(device);
        } finally {
            device.close();
        }
    }

    /** Owned by one thread: the stream, its recorder, its events, and the host buffers it downloads into. */
    private static final class Owner {
        final NativeStream stream;
        final CompletionRecorder recorder = new CompletionRecorder();
        final DeviceEvent start;
        final DeviceEvent end;
        final ByteBuffer[] downloads = new ByteBuffer[ROUNDS];
        long lastPoint;

        Owner(NativeDevice device) {
            stream = device.createStream(recorder);
            start = device.createEvent();
            end = device.createEvent();
        }
    }

    private static long sliceBytes(int k, int round) {
        return 4L * LEN * ((long) k * ROUNDS + round);
    }

    @Test
    void chainedStreamsOnOwnThreadsReportEveryPointOnceInOrderAndComputeExactResults() throws Exception {
        long t0 = System.nanoTime();
        Random rnd = new Random(42);
        float[][] seeds = new float[ROUNDS][];
        ByteBuffer[] uploads = new ByteBuffer[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            seeds[r] = KernelNumericsTest.uniform(rnd, LEN);
            uploads[r] = ByteBuffer.allocateDirect(4 * LEN).order(ByteOrder.LITTLE_ENDIAN);
            uploads[r].asFloatBuffer().put(seeds[r]);
        }
        // handoff[k]: points committed by stream k - 1, in round order, for stream k to wait on
        List<BlockingQueue<Long>> handoff = new ArrayList<>();
        for (int k = 0; k < STREAMS; k++) {
            handoff.add(new ArrayBlockingQueue<>(ROUNDS));
        }
        Owner[] owners = new Owner[STREAMS];
        ExecutorService threads = Executors.newFixedThreadPool(STREAMS);
        try (DeviceBuffer seedBuf = device.allocate(4L * LEN * ROUNDS);
             DeviceBuffer data = device.allocate(4L * LEN * ROUNDS * STREAMS)) {
            for (int k = 0; k < STREAMS; k++) {
                owners[k] = new Owner(device);
            }
            List<CompletableFuture<Void>> work = new ArrayList<>();
            for (int k = 0; k < STREAMS; k++) {
                final int kk = k;
                work.add(CompletableFuture.runAsync(() -> ownStream(kk, owners, handoff, uploads, seedBuf, data),
                        threads));
            }
            CompletableFuture.allOf(work.toArray(CompletableFuture[]::new))
                    .get(CompletionRecorder.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            for (Owner o : owners) {
                o.recorder.await(o.lastPoint); // completion within the bound
            }
            long t1 = System.nanoTime();

            for (int k = 0; k < STREAMS; k++) {
                Owner o = owners[k];
                assertEquals((long) ROUNDS, o.lastPoint, "one point per round");
                o.recorder.assertEachPointOnceInOrder(o.lastPoint);
                long previousFinish = Long.MIN_VALUE;
                for (CompletionRecorder.Completion c : o.recorder.arrivals()) {
                    assertEquals(NativeStatus.OK, c.status(), c.message());
                    assertTrue(c.daemon(), "listener ran on non-daemon thread " + c.threadName());
                    assertTrue(c.startedNanos() <= c.finishedNanos(), "started <= finished");
                    assertTrue(c.startedNanos() >= previousFinish, "a stream executes its buffers one after another");
                    assertTrue(c.startedNanos() >= t0 && c.finishedNanos() <= t1,
                            "timestamps are on System.nanoTime's clock, inside the test's window");
                    previousFinish = c.finishedNanos();
                }
                assertEquals(o.lastPoint, o.stream.completedPoint());
                assertTrue(o.start.isComplete() && o.end.isComplete());
                double ms = o.end.elapsedMillisSince(o.start);
                assertTrue(ms >= 0, "elapsed " + ms + " ms must be >= 0");
                System.out.printf("[concurrency] stream %d: %d points, %.3f ms between its events%n", k,
                        o.lastPoint, ms);
            }
            // stream k, round r holds 2^(k+1) * seed[r]: exact in float, checked against float64
            float[] all = new float[LEN * ROUNDS * STREAMS];
            data.read(0, all);
            for (int k = 0; k < STREAMS; k++) {
                double factor = Math.pow(2, k + 1);
                for (int r = 0; r < ROUNDS; r++) {
                    ByteBuffer down = owners[k].downloads[r];
                    assertEquals(ByteOrder.LITTLE_ENDIAN, down.order());
                    for (int i = 0; i < LEN; i++) {
                        double expected = factor * seeds[r][i];
                        int at = (int) (sliceBytes(k, r) / 4) + i;
                        if (all[at] != expected || down.getFloat(4 * i) != expected) {
                            fail("stream " + k + " round " + r + " element " + i + ": expected " + expected
                                    + ", device " + all[at] + ", download " + down.getFloat(4 * i));
                        }
                    }
                }
            }
            float[] seedBack = new float[LEN * ROUNDS];
            seedBuf.read(0, seedBack);
            for (int r = 0; r < ROUNDS; r++) {
                for (int i = 0; i < LEN; i++) {
                    assertEquals(seeds[r][i], seedBack[r * LEN + i], "upload round-trips bit-exactly");
                }
            }
        } finally {
            threads.shutdownNow();
            assertTrue(threads.awaitTermination(60, TimeUnit.SECONDS));
            for (Owner o : owners) {
                if (o != null) {
                    o.stream.close();
                    o.start.close();
                    o.end.close();
                }
            }
        }
    }

    /** The body of owner thread k: the only thread that touches stream k. */
    private void ownStream(int k, Owner[] owners, List<BlockingQueue<Long>> handoff, ByteBuffer[] uploads,
                           DeviceBuffer seedBuf, DeviceBuffer data) {
        Owner o = owners[k];
        NativeStream s = o.stream;
        NativeStream prev = k > 0 ? owners[k - 1].stream : null;
        try {
            for (int r = 0; r < ROUNDS; r++) {
                long in;
                if (k == 0) {
                    long seedOff = 4L * LEN * r;
                    s.encodeUpload(uploads[r], seedBuf, seedOff);
                    in = seedOff;
                } else {
                    Long point = handoff.get(k).poll(CompletionRecorder.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
                    if (point == null) {
                        throw new AssertionError("stream " + k + " got no point from stream " + (k - 1));
                    }
                    s.encodeWait(prev, point);
                    in = sliceBytes(k - 1, r);
                }
                if (r == 0) {
                    s.encodeEventRecord(o.start);
                }
                DeviceBuffer src = k == 0 ? seedBuf : data;
                s.encodeKernel(add, new KernelArgs().buffer(src, in).buffer(src, in).buffer(data, sliceBytes(k, r))
                        .i(LEN));
                o.downloads[r] = ByteBuffer.allocateDirect(4 * LEN).order(ByteOrder.LITTLE_ENDIAN);
                s.encodeDownload(data, sliceBytes(k, r), o.downloads[r]);
                if (r == ROUNDS - 1) {
                    s.encodeEventRecord(o.end);
                }
                long point = s.commit();
                if (k + 1 < STREAMS) {
                    handoff.get(k + 1).add(point);
                }
                o.lastPoint = point;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Test
    void closingStreamsWithWorkPendingStillReportsEveryCommittedPointOnceAndDiscardsUncommittedWork()
            throws Exception {
        final int n = 96;
        final int commits = 40;
        Random rnd = new Random(7);
        float[] a = KernelNumericsTest.uniform(rnd, n * n);
        List<CompletionRecorder> recorders = new ArrayList<>();
        List<Long> lastPoints = new ArrayList<>();
        ByteBuffer result = ByteBuffer.allocateDirect(4 * n * n).order(ByteOrder.LITTLE_ENDIAN);
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try {
            List<CompletableFuture<Long>> owners = new ArrayList<>();
            for (int k = 0; k < 2; k++) {
                CompletionRecorder rec = new CompletionRecorder();
                recorders.add(rec);
                final int kk = k;
                owners.add(CompletableFuture.supplyAsync(() -> {
                    NativeStream s = device.createStream(rec);
                    try (DeviceBuffer x = device.allocate(4L * n * n); DeviceBuffer y = device.allocate(4L * n * n)) {
                        x.write(0, a);
                        long last = 0;
                        for (int i = 0; i < commits; i++) {
                            // y = x x^T / n: heavy enough that work is still queued when we close
                            s.encodeKernel(gemm, KernelNumericsTest.gemmArgs(x, 0, x, 0, y, 0, null, n, n, n, n, n,
                                    n, false, true, 1.0 / n, 0.0, 0, 1, 0, 0, 0, 1, 0, 0, 0));
                            if (kk == 0 && i == commits - 1) {
                                s.encodeDownload(y, 0, result);
                            }
                            last = s.commit();
                        }
                        // uncommitted work: discarded by close, never reported
                        s.encodeKernel(add, new KernelArgs().buffer(x).buffer(x).buffer(y).i(n * n));
                        assertEquals(1, s.openCommands());
                        return last;
                    } finally {
                        s.close(); // buffers were closed first: pending commands keep their memory alive
                    }
                }, threads));
            }
            for (CompletableFuture<Long> f : owners) {
                lastPoints.add(f.get(CompletionRecorder.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS));
            }
            // executors free themselves (and the buffers they kept alive) after their last callback
            CompletionRecorder.awaitLiveObjects(device,
                    live -> live.streams() == 0 && live.buffers() == 0 && live.commandBuffers() == 0,
                    "streams, buffers and command buffers freed after close");
            for (int k = 0; k < 2; k++) {
                CompletionRecorder rec = recorders.get(k);
                long last = lastPoints.get(k);
                assertEquals(commits, last);
                rec.awaitOk(last);
                rec.assertEachPointOnceInOrder(last);
                for (CompletionRecorder.Completion c : rec.arrivals()) {
                    assertEquals(NativeStatus.OK, c.status(), c.message());
                    assertTrue(c.daemon(), "listener ran on non-daemon thread " + c.threadName());
                }
            }
        } catch (ExecutionException | TimeoutException e) {
            throw new AssertionError(e);
        } finally {
            threads.shutdownNow();
            assertTrue(threads.awaitTermination(60, TimeUnit.SECONDS));
        }
        // the download encoded before close ran after the stream and its buffers were closed
        float[] got = new float[n * n];
        result.asFloatBuffer().get(got);
        double[] ref = Float64Reference.gemm(a, a, new float[n * n], null, n, n, n, n, n, n, false, true, 1.0 / n, 0.0,
                0, 1, 0, 0, 0, 1, 0, 0, 0, null);
        double err = Float64Reference.relativeL2(got, ref);
        System.out.printf("[concurrency] download after close: rel L2 = %.3e%n", err);
        assertTrue(err < 1e-5, "relative L2 error " + err);
    }
}
