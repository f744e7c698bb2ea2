package dev.mpsactors.nativemps;

/**
 * Argument lists of the cpu backend's built-in kernels (kernels.h), built by name so that callers cannot
 * put an argument in the wrong slot. Buffers are given with byte offsets; sizes, strides and leading
 * dimensions in elements; matrices are row-major.
 */
public final class BuiltinKernels {
    /** Activation codes of the gemm epilogue. */
    public static final int ACT_NONE = 0;
    public static final int ACT_GELU = 1;
    public static final int ACT_TANH = 2;
    /** GELU in its tanh form (Hugging Face's gelu_new): the {@code activation} kernel only, not a gemm epilogue. */
    public static final int ACT_GELU_TANH = 3;
    /** ReLU: the {@code activation} kernel only, not a gemm epilogue. */
    public static final int ACT_RELU = 4;

    /** Pooling modes of the {@code pool} kernel: the first position, mean, max, sum / sqrt(tokens). */
    public static final int POOL_CLS = 0;
    public static final int POOL_MEAN = 1;
    public static final int POOL_MAX = 2;
    public static final int POOL_MEAN_SQRT_LEN = 3;

    private BuiltinKernels() {}

    /** A matrix operand: buffer, byte offset, leading dimension, and whether it is used transposed. */
    public record Operand(DeviceBuffer buffer, long byteOffset, long ld, boolean transposed) {
        public static Operand of(DeviceBuffer buffer, long byteOffset, long ld) {
            return new Operand(buffer, byteOffset, ld, false);
        }

        public Operand t() {
            return new Operand(buffer, byteOffset, ld, true);
        }
    }

    /** Element strides between the matrices of a two-level batch (outer, inner) for one operand. */
    public record Strides(long outer, long inner) {
        public static final Strides NONE = new Strides(0, 0);
    }

    /**
     * C = act(alpha * op(A) op(B) + beta * C + bias) over batchOuter x batchInner matrices of M x N.
     * bias may be null (no bias).
     */
    public static KernelArgs gemm(Operand a, Operand b, Operand c, DeviceBuffer bias, long biasOffset, long m, long n,
                                  long k, double alpha, double beta, int activation, long batchOuter,
                                  long batchInner, Strides sa, Strides sb, Strides sc) {
        KernelArgs args = new KernelArgs()
                .buffer(a.buffer(), a.byteOffset())
                .buffer(b.buffer(), b.byteOffset())
                .buffer(c.buffer(), c.byteOffset());
        if (bias == null) {
            args.none();
        } else {
            args.buffer(bias, biasOffset);
        }
        return args.i(m).i(n).i(k).i(a.ld()).i(b.ld()).i(c.ld())
                .i(a.transposed() ? 1 : 0).i(b.transposed() ? 1 : 0)
                .f(alpha).f(beta).i(activation)
                .i(batchOuter).i(sa.outer()).i(sb.outer()).i(sc.outer())
                .i(batchInner).i(sa.inner()).i(sb.inner()).i(sc.inner());
    }

    /** Plain C = act(A B + bias) with row-major, untransposed operands. */
    public static KernelArgs linear(DeviceBuffer x, long xOffset, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y,
                                    long yOffset, long rows, long in, long out, int activation) {
        return gemm(Operand.of(x, xOffset, in), Operand.of(w, 0, out), Operand.of(y, yOffset, out), bias, 0, rows, out,
                in, 1.0, 0.0, activation, 1, 1, Strides.NONE, Strides.NONE, Strides.NONE);
    }

    /** Columns of one panel of a {@code gemm_packed} weight operand. */
    public static final int PACKED_PANEL = 16;

    /** Floats the {@code gemm_packed} form of an [n, k] Linear weight takes: ceil(n / 16) * 16 * k. */
    public static long packedFloats(long n, long k) {
        return Math.multiplyExact(Math.multiplyExact((n + PACKED_PANEL - 1) / PACKED_PANEL, (long) PACKED_PANEL), k);
    }

    /**
     * A PyTorch Linear weight w [n, k] (row-major) in the layout {@code gemm_packed} reads (kernels.h): panels of
     * 16 output columns, panel j holding for p = 0..k-1 the 16 values w[16 j .. 16 j + 15][p] one after another,
     * the columns past n zero. Written once, when the weights are uploaded.
     */
    public static float[] packWeights(float[] w, int n, int k) {
        if (n < 1 || k < 1 || (long) n * k != w.length) {
            throw new IllegalArgumentException("packWeights: a [" + n + ", " + k + "] weight needs " + (long) n * k
                    + " values, got " + w.length);
        }
        long total = packedFloats(n, k);
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("packWeights: a [" + n + ", " + k + "] weight packs to " + total
                    + " floats, more than one Java array holds");
        }
        float[] packed = new float[(int) total];
        for (int j0 = 0; j0 < n; j0 += PACKED_PANEL) {
            int cols = Math.min(PACKED_PANEL, n - j0);
            int base = j0 * k; // panel j0 / 16 starts at (j0 / 16) * 16 * k
            for (int q = 0; q < cols; q++) {
                int row = (j0 + q) * k;
                for (int p = 0; p < k; p++) {
                    packed[base + p * PACKED_PANEL + q] = w[row + p];
                }
            }
        }
        return packed;
    }

    /**
     * {@code gemm_packed} (cpu only): y[rows, out] = act(x[rows, in] · wᵀ + bias) with w packed by
     * {@link #packWeights}; x and y row-major with leading dimensions {@code ldx} and {@code ldy}; bias may be null.
     */
    public static KernelArgs gemmPacked(DeviceBuffer x, long xOffset, long ldx, DeviceBuffer packed, long packedOffset,
                                        DeviceBuffer bias, long biasOffset, DeviceBuffer y, long yOffset, long ldy,
                                        long rows, long in, long out, int activation) {
        KernelArgs args = new KernelArgs().buffer(x, xOffset).buffer(packed, packedOffset).buffer(y, yOffset);
        if (bias == null) {
            args.none();
        } else {
            args.buffer(bias, biasOffset);
        }
        return args.i(rows).i(out).i(in).i(ldx).i(ldy).i(activation);
    }

    /** y = layernorm(x + residual) * gamma + beta per row; residual may be null; y may be x. */
    public static KernelArgs layerNorm(DeviceBuffer x, DeviceBuffer residual, DeviceBuffer gamma, DeviceBuffer beta,
                                       DeviceBuffer y, long rows, long cols, double eps) {
        KernelArgs args = new KernelArgs().buffer(x);
        if (residual == null) {
            args.none();
        } else {
            args.buffer(residual);
        }
        return args.buffer(gamma).buffer(beta).buffer(y).i(rows).i(cols).f(eps);
    }

    /** In place over [batch, heads, rows, cols]: softmax(scale * x + mask[b, col]); mask may be null. */
    public static KernelArgs softmax(DeviceBuffer x, DeviceBuffer mask, long batch, long heads, long rows, long cols,
                                     double scale) {
        KernelArgs args = new KernelArgs().buffer(x);
        if (mask == null) {
            args.none();
        } else {
            args.buffer(mask);
        }
        return args.i(batch).i(heads).i(rows).i(cols).f(scale);
    }

    public static KernelArgs gelu(DeviceBuffer x, DeviceBuffer y, long n) {
        return new KernelArgs().buffer(x).buffer(y).i(n);
    }

    public static KernelArgs tanh(DeviceBuffer x, DeviceBuffer y, long n) {
        return new KernelArgs().buffer(x).buffer(y).i(n);
    }

    public static KernelArgs biasAdd(DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y, long rows, long cols) {
        return new KernelArgs().buffer(x).buffer(bias).buffer(y).i(rows).i(cols);
    }

    public static KernelArgs add(DeviceBuffer a, DeviceBuffer b, DeviceBuffer y, long n) {
        return new KernelArgs().buffer(a).buffer(b).buffer(y).i(n);
    }

    /** out[i] = (accumulate ? out[i] : 0) + table[ids[i]]; ids are int32. */
    public static KernelArgs embedding(DeviceBuffer ids, DeviceBuffer table, DeviceBuffer out, long nIds, long dim,
                                       long vocab, boolean accumulate) {
        return new KernelArgs().buffer(ids).buffer(table).buffer(out).i(nIds).i(dim).i(vocab).i(accumulate ? 1 : 0);
    }
}
