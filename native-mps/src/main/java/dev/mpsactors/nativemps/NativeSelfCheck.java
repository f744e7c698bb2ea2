package dev.mpsactors.nativemps;

import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * {@code java -cp mps-actors-native.jar:openblas-<platform>.jar dev.mpsactors.nativemps.NativeSelfCheck}:
 * loads the packaged native library, prints the device, runs one GEMM with bias and GELU on a stream and
 * compares it with a float64 computation. Exit status 0 when it matches (a mismatch ends with an exception,
 * status 1); the check users run first when the library does not load on their machine.
 */
public final class NativeSelfCheck {
    private NativeSelfCheck() {}

    public static void main(String[] args) throws Exception {
        String backend = args.length > 0 ? args[0] : "cpu";
        System.out.println("platform: " + NativeLibraryLoader.platform());
        try (NativeDevice device = NativeDevice.open(new DeviceOptions(backend, 0, 1))) {
            System.out.println("device: " + device.info());
            double error = gemmRelativeError(device, 33, 47, 29);
            System.out.printf("gemm+bias+gelu 33x47x29 relative L2 error vs float64: %.3g%n", error);
            if (!(error < 1e-5)) {
                throw new IllegalStateException("native self-check FAILED: relative L2 error " + error
                        + " above 1e-5");
            }
            System.out.println("native self-check passed");
        }
    }

    static double gemmRelativeError(NativeDevice device, int m, int n, int k) throws Exception {
        Random random = new Random(1);
        float[] a = gaussian(random, m * k);
        float[] b = gaussian(random, k * n);
        float[] bias = gaussian(random, n);
        float[] c = new float[m * n];
        CompletableFuture<NativeStatus> done = new CompletableFuture<>();
        try (KernelLibrary library = device.compileLibrary("gemm", "");
             Pipeline gemm = library.pipeline("gemm");
             DeviceBuffer da = device.allocate(4L * a.length);
             DeviceBuffer db = device.allocate(4L * b.length);
             DeviceBuffer dbias = device.allocate(4L * bias.length);
             DeviceBuffer dc = device.allocate(4L * c.length);
             NativeStream stream = device.createStream((point, status, message, s, f) -> done.complete(status))) {
            da.write(0, a);
            db.write(0, b);
            dbias.write(0, bias);
            stream.encodeKernel(gemm, BuiltinKernels.linear(da, 0, db, dbias, dc, 0, m, k, n, BuiltinKernels.ACT_GELU));
            stream.commit();
            NativeStatus status = done.get(30, TimeUnit.SECONDS);
            if (status != NativeStatus.OK) {
                throw new IllegalStateException("gemm failed: " + status);
            }
            dc.read(0, c);
        }
        double num = 0, den = 0;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = bias[j];
                for (int p = 0; p < k; p++) {
                    acc += (double) a[i * k + p] * b[p * n + j];
                }
                double ref = acc * 0.5 * (1 + erf(acc / Math.sqrt(2)));
                num += (c[i * n + j] - ref) * (c[i * n + j] - ref);
                den += ref * ref;
            }
        }
        return Math.sqrt(num / den);
    }

    private static float[] gaussian(Random random, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    /** erf in float64 (Abramowitz-Stegun 7.1.26 is too coarse here; this series/continued fraction is not). */
    static double erf(double x) {
        double t = Math.abs(x);
        double result;
        if (t < 2.5) {
            // Maclaurin series: converges fast for |x| < 2.5 at double precision.
            double sum = t, term = t, x2 = t * t;
            for (int i = 1; i < 200; i++) {
                term *= -x2 / i;
                double add = term / (2 * i + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
                    break;
                }
            }
            result = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            // erfc continued fraction (Lentz), accurate for large |x|.
            double f = t, c = t, d = 0;
            for (int i = 1; i < 200; i++) {
                double an = i / 2.0;
                d = t + an * d;
                d = 1 / d;
                c = t + an / c;
                double delta = c * d;
                f *= delta;
                if (Math.abs(delta - 1) < 1e-16) {
                    break;
                }
            }
            result = 1 - Math.exp(-t * t) / (f * Math.sqrt(Math.PI));
        }
        return x < 0 ? -result : result;
    }
}
