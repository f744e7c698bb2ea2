package dev.mpsactors.bench;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.KernelArgs;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.Pipeline;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The rate the same BLAS reaches alone: back-to-back sgemms through the cpu backend's gemm kernel, on 1
 * stream and on S streams at once (one thread per stream, two GEMMs committed ahead so the executor never
 * idles). The end-to-end GFLOP/s of a stress run is reported as a fraction of the best S-stream rate.
 */
final class GemmCeiling {
    /** @param m rows of A and C; @param n columns of B and C; @param k the shared dimension */
    record Shape(String label, int m, int n, int k) {}

    record Rate(String shape, int m, int n, int k, int streams, double gflops) {}

    private GemmCeiling() {}

    static List<Rate> measure(NativeDevice device, List<Shape> shapes, int maxStreams, double seconds,
                              PrintStream out) {
        List<Rate> rates = new ArrayList<>();
        try (KernelLibrary library = device.compileLibrary("*", ""); Pipeline gemm = library.pipeline("gemm")) {
            for (Shape shape : shapes) {
                for (int streams : maxStreams > 1 ? List.of(1, maxStreams) : List.of(1)) {
                    Rate r = measureOnce(device, gemm, shape, streams, seconds);
                    out.printf("  [gemm] %s (%dx%dx%d) on %d stream(s): %.1f GFLOP/s%n", shape.label(), shape.m(),
                            shape.n(), shape.k(), streams, r.gflops());
                    rates.add(r);
                }
            }
        }
        return rates;
    }

    private static Rate measureOnce(NativeDevice device, Pipeline gemm, Shape shape, int streams, double seconds) {
        List<CompletableFuture<Long>> counts = new ArrayList<>();
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        for (int s = 0; s < streams; s++) {
            counts.add(CompletableFuture.supplyAsync(() -> run(device, gemm, shape, end),
                    r -> new Thread(r, "gemm-ceiling").start()));
        }
        long done = counts.stream().mapToLong(CompletableFuture::join).sum();
        double elapsed = (System.nanoTime() - start) / 1e9;
        double flops = 2.0 * shape.m() * shape.n() * shape.k() * done;
        return new Rate(shape.label(), shape.m(), shape.n(), shape.k(), streams,
                MeasurementDriver.round(flops / elapsed / 1e9));
    }

    /** One stream's loop; returns the GEMMs completed (all of them: it drains before returning). */
    private static long run(NativeDevice device, Pipeline gemm, Shape s, long end) {
        StreamCompletions completions = new StreamCompletions();
        try (DeviceBuffer a = device.allocate(4L * s.m() * s.k()); DeviceBuffer b = device.allocate(4L * s.k() * s.n());
             DeviceBuffer c = device.allocate(4L * s.m() * s.n())) {
            a.write(0, new float[s.m() * s.k()]);
            b.write(0, new float[s.k() * s.n()]);
            KernelArgs args = BuiltinKernels.linear(a, 0, b, null, c, 0, s.m(), s.k(), s.n(), BuiltinKernels.ACT_NONE);
            NativeStream stream = device.createStream(completions);
            long count = 0;
            try {
                CompletableFuture<String> previous = null;
                do {
                    stream.encodeKernel(gemm, args);
                    CompletableFuture<String> current = completions.when(stream.commit());
                    if (previous != null) {
                        previous.join(); // keep one GEMM queued behind the running one
                        count++;
                    }
                    previous = current;
                } while (System.nanoTime() < end);
                previous.join();
                count++;
            } finally {
                stream.close();
            }
            return count;
        }
    }
}
