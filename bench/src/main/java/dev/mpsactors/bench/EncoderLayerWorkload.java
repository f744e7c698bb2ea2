package dev.mpsactors.bench;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.BuiltinKernels.Operand;
import dev.mpsactors.nativemps.BuiltinKernels.Strides;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.KernelArgs;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.Pipeline;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A BERT-style encoder on random weights, expressed as the built-in kernels: fused QKV projection,
 * two-level batched attention GEMMs, masked softmax, output projection, residual LayerNorm, GELU
 * feed-forward. Weights are shared read-only by every stream; each stream has its own activations.
 */
final class EncoderLayerWorkload implements AutoCloseable {
    private final EncoderShape shape;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    private final KernelLibrary library;
    private final Pipeline gemm;
    private final Pipeline layerNorm;
    private final Pipeline softmax;
    private final DeviceBuffer wqkv, bqkv, wo, bo, ln1g, ln1b, w1, b1, w2, b2, ln2g, ln2b;

    EncoderLayerWorkload(NativeDevice device, EncoderShape shape, long seed) {
        this.shape = shape;
        this.library = device.compileLibrary("gemm layernorm softmax", "");
        this.gemm = library.pipeline("gemm");
        this.layerNorm = library.pipeline("layernorm");
        this.softmax = library.pipeline("softmax");
        Random random = new Random(seed);
        int h = shape.hidden(), i = shape.intermediate();
        double scale = 1.0 / Math.sqrt(h);
        wqkv = random(device, random, (long) h * 3 * h, scale, 0);
        bqkv = random(device, random, 3L * h, 0.02, 0);
        wo = random(device, random, (long) h * h, scale, 0);
        bo = random(device, random, h, 0.02, 0);
        ln1g = random(device, random, h, 0.05, 1);
        ln1b = random(device, random, h, 0.02, 0);
        w1 = random(device, random, (long) h * i, scale, 0);
        b1 = random(device, random, i, 0.02, 0);
        w2 = random(device, random, (long) i * h, 1.0 / Math.sqrt(i), 0);
        b2 = random(device, random, h, 0.02, 0);
        ln2g = random(device, random, h, 0.05, 1);
        ln2b = random(device, random, h, 0.02, 0);
    }

    private DeviceBuffer random(NativeDevice device, Random random, long n, double spread, double center) {
        float[] values = new float[Math.toIntExact(n)];
        for (int k = 0; k < values.length; k++) {
            values[k] = (float) (center + spread * random.nextGaussian());
        }
        DeviceBuffer b = device.allocate(4L * n);
        b.write(0, values);
        owned.add(b);
        return b;
    }

    /** Per-stream activations: one set per stream, never shared. */
    final class Activations implements AutoCloseable {
        final DeviceBuffer x, qkv, scores, ctx, tmp, ffn, mask;

        Activations(NativeDevice device, long seed) {
            int l = shape.seq(), h = shape.hidden();
            x = device.allocate(4L * l * h);
            qkv = device.allocate(4L * l * 3 * h);
            scores = device.allocate(4L * shape.heads() * l * l);
            ctx = device.allocate(4L * l * h);
            tmp = device.allocate(4L * l * h);
            ffn = device.allocate(4L * l * shape.intermediate());
            mask = device.allocate(4L * l);
            Random random = new Random(seed);
            float[] input = new float[l * h];
            for (int k = 0; k < input.length; k++) {
                input[k] = (float) random.nextGaussian();
            }
            x.write(0, input);
            float[] m = new float[l];
            for (int k = l - l / 8; k < l; k++) {
                m[k] = -10000f; // the last eighth is padding, as in a real batch
            }
            mask.write(0, m);
        }

        @Override
        public void close() {
            for (DeviceBuffer b : List.of(x, qkv, scores, ctx, tmp, ffn, mask)) {
                b.close();
            }
        }
    }

    Activations activations(NativeDevice device, long seed) {
        return new Activations(device, seed);
    }

    /** Receives the encoder's kernels one by one; the lock-based baseline needs to know which are LayerNorms. */
    interface KernelSink {
        void kernel(Pipeline pipeline, KernelArgs args, boolean layerNorm);
    }

    /** Encodes one request (all layers) into the stream's open command buffer. */
    void encode(NativeStream stream, Activations a) {
        forEachKernel(a, (pipeline, args, layerNorm) -> stream.encodeKernel(pipeline, args));
    }

    /** The kernels of one request (all layers) in order, over {@code a}. */
    void forEachKernel(Activations a, KernelSink sink) {
        int l = shape.seq(), h = shape.hidden(), heads = shape.heads(), d = shape.headDim(), inter = shape.intermediate();
        for (int layer = 0; layer < shape.layers(); layer++) {
            sink.kernel(gemm, BuiltinKernels.linear(a.x, 0, wqkv, bqkv, a.qkv, 0, l, h, 3L * h,
                    BuiltinKernels.ACT_NONE), false);
            // scores[head] = Q_head K_head^T / sqrt(d): heads are the inner batch, strided inside qkv rows.
            sink.kernel(gemm, BuiltinKernels.gemm(
                    Operand.of(a.qkv, 0, 3L * h), Operand.of(a.qkv, 4L * h, 3L * h).t(), Operand.of(a.scores, 0, l),
                    null, 0, l, l, d, 1.0 / Math.sqrt(d), 0.0, BuiltinKernels.ACT_NONE, 1, heads,
                    new Strides(0, d), new Strides(0, d), new Strides(0, (long) l * l)), false);
            sink.kernel(softmax, BuiltinKernels.softmax(a.scores, a.mask, 1, heads, l, l, 1.0), false);
            sink.kernel(gemm, BuiltinKernels.gemm(
                    Operand.of(a.scores, 0, l), Operand.of(a.qkv, 8L * h, 3L * h), Operand.of(a.ctx, 0, h),
                    null, 0, l, d, l, 1.0, 0.0, BuiltinKernels.ACT_NONE, 1, heads,
                    new Strides(0, (long) l * l), new Strides(0, d), new Strides(0, d)), false);
            sink.kernel(gemm, BuiltinKernels.linear(a.ctx, 0, wo, bo, a.tmp, 0, l, h, h,
                    BuiltinKernels.ACT_NONE), false);
            sink.kernel(layerNorm, BuiltinKernels.layerNorm(a.tmp, a.x, ln1g, ln1b, a.tmp, l, h, 1e-12), true);
            sink.kernel(gemm, BuiltinKernels.linear(a.tmp, 0, w1, b1, a.ffn, 0, l, h, inter,
                    BuiltinKernels.ACT_GELU), false);
            sink.kernel(gemm, BuiltinKernels.linear(a.ffn, 0, w2, b2, a.x, 0, l, inter, h,
                    BuiltinKernels.ACT_NONE), false);
            sink.kernel(layerNorm, BuiltinKernels.layerNorm(a.x, a.tmp, ln2g, ln2b, a.x, l, h, 1e-12), true);
        }
    }

    @Override
    public void close() {
        for (DeviceBuffer b : owned) {
            b.close();
        }
        gemm.close();
        layerNorm.close();
        softmax.close();
        library.close();
    }
}
