package dev.mpsactors.nativemps;

import dev.mpsactors.nativemps.BuiltinKernels.Strides;
import java.util.Arrays;

/**
 * One kernel invocation's positional arguments inside a {@link NativeProgram}: {@link KernelArgs} with
 * slots in place of buffers. A slot is an index into the buffers bound at each
 * {@link NativeStream#encodeProgram encode}, plus a byte offset from the bound buffer's start. The static
 * methods build the built-in kernels' lists by name, as {@link BuiltinKernels} does for buffers.
 */
public final class ProgramArgs {
    final int[] kinds = new int[KernelArgs.MAX_ARGS];
    final int[] slots = new int[KernelArgs.MAX_ARGS];
    /** Byte offset for a slot argument, the value for an int argument. */
    final long[] ints = new long[KernelArgs.MAX_ARGS];
    final double[] floats = new double[KernelArgs.MAX_ARGS];
    int count;

    /** Where a buffer argument points: a slot and a byte offset into the buffer bound to it. */
    public record Ref(int slot, long byteOffset) {
        public Ref {
            if (slot < 0 || byteOffset < 0) {
                throw new IllegalArgumentException("slot " + slot + " and byte offset " + byteOffset
                        + " must be >= 0");
            }
        }

        /** The same slot, {@code bytes} further on. */
        public Ref plus(long bytes) {
            return new Ref(slot, byteOffset + bytes);
        }
    }

    /** A matrix operand: where it starts, its leading dimension (elements), whether it is used transposed. */
    public record Operand(Ref at, long ld, boolean transposed) {
        public static Operand of(Ref at, long ld) {
            return new Operand(at, ld, false);
        }

        public Operand t() {
            return new Operand(at, ld, true);
        }
    }

    public ProgramArgs slot(int slot, long byteOffset) {
        if (slot < 0 || byteOffset < 0) {
            throw new IllegalArgumentException("argument " + count + ": slot " + slot + " and byte offset "
                    + byteOffset + " must be >= 0");
        }
        int i = next();
        kinds[i] = KernelArgs.BUFFER;
        slots[i] = slot;
        ints[i] = byteOffset;
        return this;
    }

    public ProgramArgs slot(Ref ref) {
        return slot(ref.slot(), ref.byteOffset());
    }

    /** An absent optional buffer (no bias, no mask, no residual). */
    public ProgramArgs none() {
        kinds[next()] = KernelArgs.NONE;
        return this;
    }

    public ProgramArgs i(long value) {
        int i = next();
        kinds[i] = KernelArgs.INT;
        ints[i] = value;
        return this;
    }

    public ProgramArgs f(double value) {
        int i = next();
        kinds[i] = KernelArgs.FLOAT;
        floats[i] = value;
        return this;
    }

    public int count() {
        return count;
    }

    private ProgramArgs optional(Ref ref) {
        return ref == null ? none() : slot(ref);
    }

    private int next() {
        if (count == KernelArgs.MAX_ARGS) {
            throw new IllegalArgumentException("a kernel takes at most " + KernelArgs.MAX_ARGS + " arguments");
        }
        return count++;
    }

    // ------------------------------------------------------------------------------------------------
    // The built-in kernels' lists (kernels.h), by name
    // ------------------------------------------------------------------------------------------------

    /** See {@link BuiltinKernels#gemm}; bias may be null. */
    public static ProgramArgs gemm(Operand a, Operand b, Operand c, Ref bias, long m, long n, long k, double alpha,
                                   double beta, int activation, long batchOuter, long batchInner, Strides sa,
                                   Strides sb, Strides sc) {
        return new ProgramArgs().slot(a.at()).slot(b.at()).slot(c.at()).optional(bias)
                .i(m).i(n).i(k).i(a.ld()).i(b.ld()).i(c.ld())
                .i(a.transposed() ? 1 : 0).i(b.transposed() ? 1 : 0)
                .f(alpha).f(beta).i(activation)
                .i(batchOuter).i(sa.outer()).i(sb.outer()).i(sc.outer())
                .i(batchInner).i(sa.inner()).i(sb.inner()).i(sc.inner());
    }

    /**
     * A PyTorch linear layer: y[rows, out] = act(x[rows, in] · wᵀ + bias) with w stored [out, in]
     * (row-major, hence trans_b); x and y have leading dimensions {@code ldx} and {@code ldy}.
     */
    public static ProgramArgs linear(Ref x, long ldx, Ref w, Ref bias, Ref y, long ldy, long rows, long in,
                                     long out, int activation) {
        return gemm(Operand.of(x, ldx), Operand.of(w, in).t(), Operand.of(y, ldy), bias, rows, out, in, 1.0, 0.0,
                activation, 1, 1, Strides.NONE, Strides.NONE, Strides.NONE);
    }

    /**
     * {@link #linear} over a weight packed once ({@link BuiltinKernels#packWeights}): the cpu backend's
     * {@code gemm_packed}; bias may be null.
     */
    public static ProgramArgs linearPacked(Ref x, long ldx, Ref packedW, Ref bias, Ref y, long ldy, long rows, long in,
                                           long out, int activation) {
        return new ProgramArgs().slot(x).slot(packedW).slot(y).optional(bias).i(rows).i(out).i(in).i(ldx).i(ldy)
                .i(activation);
    }

    /** y = layernorm(x + residual) * gamma + beta per row; residual may be null; y may be x. */
    public static ProgramArgs layerNorm(Ref x, Ref residual, Ref gamma, Ref beta, Ref y, long rows, long cols,
                                        double eps) {
        return new ProgramArgs().slot(x).optional(residual).slot(gamma).slot(beta).slot(y).i(rows).i(cols).f(eps);
    }

    /**
     * y = layernorm(x + bias + residual) * gamma + beta per row: a linear layer's bias (per column), the residual
     * connection and the normalization in one pass; residual may be null; y may be x, not the residual.
     */
    public static ProgramArgs biasLayerNorm(Ref x, Ref bias, Ref residual, Ref gamma, Ref beta, Ref y, long rows,
                                            long cols, double eps) {
        return new ProgramArgs().slot(x).slot(bias).optional(residual).slot(gamma).slot(beta).slot(y).i(rows).i(cols)
                .f(eps);
    }

    /**
     * out[b, i, h] = softmax_j(scale * q[b, i, h]·k[b, j, h] + mask[b, j]) v[b, j, h] in one kernel (16-bit storage
     * only: {@code attention16}), qkv [batch, seq, 3, heads, headDim] (a projection's rows before its bias), bias
     * [3, heads, headDim] added to every row as it is read (may be null), out [batch, seq, heads, headDim], the
     * mask fp32 additive [batch, seq] (may be null); headDim 32, 64 or 128.
     */
    public static ProgramArgs attention(Ref qkv, Ref bias, Ref mask, Ref out, long batch, long seq, long heads,
                                        long headDim, double scale) {
        return new ProgramArgs().slot(qkv).optional(bias).optional(mask).slot(out).i(batch).i(seq).i(heads).i(headDim)
                .f(scale);
    }

    /** In place over [batch, heads, rows, cols]: softmax(scale * x + mask[b, col]); mask may be null. */
    public static ProgramArgs softmax(Ref x, Ref mask, long batch, long heads, long rows, long cols, double scale) {
        return new ProgramArgs().slot(x).optional(mask).i(batch).i(heads).i(rows).i(cols).f(scale);
    }

    /**
     * y[b] = the sentence embedding of x[b] ([batch, seq, hidden]) over the positions whose additive mask is 0
     * (mask may be null: every position): {@code mode} one of {@link BuiltinKernels#POOL_CLS} ..
     * {@link BuiltinKernels#POOL_MEAN_SQRT_LEN}, L2-normalized when {@code normalize}.
     */
    public static ProgramArgs pool(Ref x, Ref mask, Ref y, long batch, long seq, long hidden, int mode,
                                   boolean normalize) {
        return new ProgramArgs().slot(x).optional(mask).slot(y).i(batch).i(seq).i(hidden).i(mode).i(normalize ? 1 : 0);
    }

    /**
     * y = f(x) elementwise over n values, y may be x: {@code activation} one of {@link BuiltinKernels#ACT_NONE},
     * {@link BuiltinKernels#ACT_GELU}, {@link BuiltinKernels#ACT_TANH}, {@link BuiltinKernels#ACT_GELU_TANH},
     * {@link BuiltinKernels#ACT_RELU} ({@code activation} / {@code activation16}).
     */
    public static ProgramArgs activation(Ref x, Ref y, long n, int activation) {
        return new ProgramArgs().slot(x).slot(y).i(n).i(activation);
    }

    /**
     * The relative position bias, in place over scores [batch, heads, seq, seq]: scores[b, h, i, j] +=
     * table[bucket, h] with bucket = buckets[j - i + seq - 1] (int32, 2·seq − 1 of them, clamped to
     * [0, numBuckets)), table [numBuckets, heads] ({@code rel_bias} / {@code rel_bias16}).
     */
    public static ProgramArgs relBias(Ref scores, Ref table, Ref buckets, long batch, long heads, long seq,
                                      long numBuckets) {
        return new ProgramArgs().slot(scores).slot(table).slot(buckets).i(batch).i(heads).i(seq).i(numBuckets);
    }

    public static ProgramArgs add(Ref a, Ref b, Ref y, long n) {
        return new ProgramArgs().slot(a).slot(b).slot(y).i(n);
    }

    /** out[i] = (accumulate ? out[i] : 0) + table[ids[i]]; ids are int32. */
    public static ProgramArgs embedding(Ref ids, Ref table, Ref out, long nIds, long dim, long vocab,
                                        boolean accumulate) {
        return new ProgramArgs().slot(ids).slot(table).slot(out).i(nIds).i(dim).i(vocab).i(accumulate ? 1 : 0);
    }

    @Override
    public String toString() {
        return "ProgramArgs" + Arrays.toString(Arrays.copyOf(kinds, count));
    }
}
