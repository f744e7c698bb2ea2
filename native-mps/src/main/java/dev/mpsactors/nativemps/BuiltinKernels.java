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
