package dev.mpsactors.bench;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.Pipeline;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.LongFunction;

/**
 * The LayerNorm-heavy mix ({@code --mix layernorm}): a request is {@code layerNorms} residual LayerNorms
 * on [seq, hidden] and one [seq, hidden] x [hidden, hidden] GEMM. It isolates hazard 6 of the audit (the
 * fork's process-wide LayerNorm mutex): on that mix the lock serialises every stream.
 *
 * <p>Buffers come from a factory so the actor run can take them from the allocator actor and the
 * baselines straight from the device; whoever supplies them frees them.
 */
final class LayerNormMix {
    static final int DEFAULT_LAYER_NORMS = 24;

    private final Pipeline layerNorm;
    private final Pipeline gemm;
    private final int seq;
    private final int hidden;
    private final int layerNorms;
    private final DeviceBuffer gamma, beta, weight, bias;

    LayerNormMix(Pipeline layerNorm, Pipeline gemm, LongFunction<DeviceBuffer> allocate, int seq, int hidden,
                 int layerNorms) {
        this.layerNorm = layerNorm;
        this.gemm = gemm;
        this.seq = seq;
        this.hidden = hidden;
        this.layerNorms = layerNorms;
        Random random = new Random(7);
        gamma = filled(allocate.apply(4L * hidden), hidden, random, 1, 0.05);
        beta = filled(allocate.apply(4L * hidden), hidden, random, 0, 0.02);
        weight = filled(allocate.apply(4L * hidden * hidden), hidden * hidden, random, 0, 1 / Math.sqrt(hidden));
        bias = filled(allocate.apply(4L * hidden), hidden, random, 0, 0.02);
    }

    private static DeviceBuffer filled(DeviceBuffer b, int n, Random random, double center, double spread) {
        float[] v = new float[n];
        for (int k = 0; k < n; k++) {
            v[k] = (float) (center + spread * random.nextGaussian());
        }
        b.write(0, v);
        return b;
    }

    /** Shared read-only buffers (the caller frees them after the run). */
    List<DeviceBuffer> sharedBuffers() {
        return List.of(gamma, beta, weight, bias);
    }

    /** GEMM FLOPs only, as for the encoder: LayerNorm is memory-bound and not counted. */
    double flopsPerRequest() {
        return 2.0 * seq * hidden * hidden;
    }

    /** One client's buffers x, residual, y, and its request as kernels over them. */
    List<KernelStep> steps(List<DeviceBuffer> clientBuffers) {
        DeviceBuffer x = clientBuffers.get(0), residual = clientBuffers.get(1), y = clientBuffers.get(2);
        List<KernelStep> steps = new ArrayList<>();
        for (int k = 0; k < layerNorms; k++) {
            DeviceBuffer in = k % 2 == 0 ? x : y, out = k % 2 == 0 ? y : x;
            steps.add(new KernelStep(layerNorm, BuiltinKernels.layerNorm(in, residual, gamma, beta, out, seq, hidden,
                    1e-5), true));
        }
        DeviceBuffer last = layerNorms % 2 == 0 ? x : y;
        steps.add(new KernelStep(gemm, BuiltinKernels.linear(last, 0, weight, bias, residual, 0, seq, hidden, hidden,
                BuiltinKernels.ACT_NONE), false));
        return steps;
    }

    /** Allocates one client's three [seq, hidden] buffers with random contents. */
    List<DeviceBuffer> clientBuffers(LongFunction<DeviceBuffer> allocate, long seed) {
        Random random = new Random(seed);
        List<DeviceBuffer> buffers = new ArrayList<>();
        for (int k = 0; k < 3; k++) {
            buffers.add(filled(allocate.apply(4L * seq * hidden), seq * hidden, random, 0, 1));
        }
        return buffers;
    }

    /** The mix as a {@link StressWorkload} on device buffers the workload owns. */
    static StressWorkload onDevice(dev.mpsactors.nativemps.NativeDevice device, int seq, int hidden, int layerNorms) {
        dev.mpsactors.nativemps.KernelLibrary library = device.compileLibrary("*", "");
        Pipeline ln = library.pipeline("layernorm");
        Pipeline gemm = library.pipeline("gemm");
        LayerNormMix mix = new LayerNormMix(ln, gemm, device::allocate, seq, hidden, layerNorms);
        return new StressWorkload() {
            @Override
            public Client client(dev.mpsactors.nativemps.NativeDevice d, int id) {
                List<DeviceBuffer> buffers = mix.clientBuffers(d::allocate, 1000L + id);
                List<KernelStep> steps = mix.steps(buffers);
                return new Client() {
                    @Override
                    public void encodeWhole(NativeStream stream) {
                        for (KernelStep s : steps) {
                            stream.encodeKernel(s.pipeline(), s.args());
                        }
                    }

                    @Override
                    public List<KernelStep> steps() {
                        return steps;
                    }

                    @Override
                    public void close() {
                        buffers.forEach(DeviceBuffer::close);
                    }
                };
            }

            @Override
            public void close() {
                mix.sharedBuffers().forEach(DeviceBuffer::close);
                ln.close();
                gemm.close();
                library.close();
            }
        };
    }
}
