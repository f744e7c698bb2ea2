package dev.mpsactors.nativemps;

/**
 * Independent float64 reference implementations of the cpu backend's built-in kernels, written from the
 * contract in kernels.h only (no shared code with the native side). Inputs are the float32 values the
 * kernel saw; every intermediate is a double, so the reference error is negligible next to the float32
 * kernel's (about 1e-16 vs 1e-7 relative).
 *
 * Element offsets, strides and leading dimensions are in elements, matrices row-major, as in kernels.h.
 */
final class Float64Reference {
    private Float64Reference() {}

    // ------------------------------------------------------------------------------------------------
    // Kernels
    // ------------------------------------------------------------------------------------------------

    /**
     * C = act(alpha * op(A) op(B) + beta * C + bias[n]) over batchOuter x batchInner matrices, returning
     * the whole C array (elements the kernel must not touch keep their input value) and marking the
     * elements it writes in {@code written} (may be null).
     */
    static double[] gemm(float[] a, float[] b, float[] c, float[] bias, int m, int n, int k, int lda, int ldb,
                         int ldc, boolean transA, boolean transB, double alpha, double beta, int activation,
                         int batchOuter, int saOuter, int sbOuter, int scOuter,
                         int batchInner, int saInner, int sbInner, int scInner, boolean[] written) {
        double[] out = toDouble(c);
        for (int o = 0; o < batchOuter; o++) {
            for (int in = 0; in < batchInner; in++) {
                int a0 = o * saOuter + in * saInner;
                int b0 = o * sbOuter + in * sbInner;
                int c0 = o * scOuter + in * scInner;
                for (int r = 0; r < m; r++) {
                    for (int col = 0; col < n; col++) {
                        double dot = 0;
                        for (int p = 0; p < k; p++) {
                            double av = transA ? a[a0 + p * lda + r] : a[a0 + r * lda + p];
                            double bv = transB ? b[b0 + col * ldb + p] : b[b0 + p * ldb + col];
                            dot += av * bv;
                        }
                        int ci = c0 + r * ldc + col;
                        double v = alpha * dot + beta * (double) c[ci];
                        if (bias != null) {
                            v += bias[col];
                        }
                        out[ci] = activate(v, activation);
                        if (written != null) {
                            written[ci] = true;
                        }
                    }
                }
            }
        }
        return out;
    }

    static double activate(double v, int activation) {
        switch (activation) {
            case 0:
                return v;
            case 1:
                return gelu(v);
            case 2:
                return Math.tanh(v);
            default:
                throw new IllegalArgumentException("activation " + activation);
        }
    }

    /** y = (h - mean) / sqrt(var + eps) * gamma + beta per row, h = x + residual (residual may be null). */
    static double[] layerNorm(float[] x, float[] residual, float[] gamma, float[] beta, int rows, int cols,
                              float eps) {
        double[] y = new double[rows * cols];
        double[] h = new double[cols];
        for (int r = 0; r < rows; r++) {
            double mean = 0;
            for (int c = 0; c < cols; c++) {
                h[c] = (double) x[r * cols + c] + (residual == null ? 0.0 : residual[r * cols + c]);
                mean += h[c];
            }
            mean /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) {
                double d = h[c] - mean;
                var += d * d;
            }
            var /= cols;
            double rstd = 1.0 / Math.sqrt(var + eps);
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = (h[c] - mean) * rstd * gamma[c] + beta[c];
            }
        }
        return y;
    }

    /** x is [batch, heads, rows, cols]: softmax over cols of scale * x + mask[b, col] (mask may be null). */
    static double[] softmax(float[] x, float[] mask, int batch, int heads, int rows, int cols, float scale) {
        double[] y = new double[batch * heads * rows * cols];
        double[] v = new double[cols];
        for (int b = 0; b < batch; b++) {
            for (int hr = 0; hr < heads * rows; hr++) {
                int base = (b * heads * rows + hr) * cols;
                double max = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < cols; c++) {
                    v[c] = (double) scale * x[base + c] + (mask == null ? 0.0 : mask[b * cols + c]);
                    max = Math.max(max, v[c]);
                }
                double sum = 0;
                for (int c = 0; c < cols; c++) {
                    v[c] = Math.exp(v[c] - max);
                    sum += v[c];
                }
                for (int c = 0; c < cols; c++) {
                    y[base + c] = v[c] / sum;
                }
            }
        }
        return y;
    }

    static double[] gelu(float[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = gelu(x[i]);
        }
        return y;
    }

    static double[] tanh(float[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = Math.tanh(x[i]);
        }
        return y;
    }

    static double[] biasAdd(float[] x, float[] bias, int rows, int cols) {
        double[] y = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = (double) x[r * cols + c] + bias[c];
            }
        }
        return y;
    }

    static double[] add(float[] a, float[] b) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            y[i] = (double) a[i] + b[i];
        }
        return y;
    }

    /** out[i, :] = (accumulate ? out[i, :] : 0) + table[ids[i], :]. */
    static double[] embedding(int[] ids, float[] table, float[] out, int dim, boolean accumulate) {
        double[] y = new double[ids.length * dim];
        for (int i = 0; i < ids.length; i++) {
            for (int d = 0; d < dim; d++) {
                y[i * dim + d] = (accumulate ? (double) out[i * dim + d] : 0.0) + table[ids[i] * dim + d];
            }
        }
        return y;
    }

    // ------------------------------------------------------------------------------------------------
    // GELU in double: x * Phi(x), Phi(x) = 0.5 * erfc(-x / sqrt 2)
    // ------------------------------------------------------------------------------------------------

    static double gelu(double x) {
        return x * 0.5 * erfc(-x / Math.sqrt(2.0));
    }

    /** erfc to ~1e-15 relative: 1 - erf (series) for |z| < 2, the Laplace continued fraction beyond. */
    static double erfc(double z) {
        if (z < 0) {
            return 2.0 - erfc(-z);
        }
        if (z < 2.0) {
            return 1.0 - erf(z);
        }
        // erfc(z) = exp(-z^2) / sqrt(pi) * 1 / (z + (1/2) / (z + 1 / (z + (3/2) / (z + ...)))), evaluated backwards.
        double f = z;
        for (int n = 120; n >= 1; n--) {
            f = z + (n / 2.0) / f;
        }
        return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
    }

    /** erf(z) = 2/sqrt(pi) * exp(-z^2) * sum_n 2^n z^(2n+1) / (1*3*...*(2n+1)); all terms positive. */
    static double erf(double z) {
        if (z < 0) {
            return -erf(-z);
        }
        double term = z;
        double sum = z;
        for (int n = 1; n < 500 && term > 1e-17 * sum; n++) {
            term *= 2.0 * z * z / (2 * n + 1);
            sum += term;
        }
        return 2.0 / Math.sqrt(Math.PI) * Math.exp(-z * z) * sum;
    }

    // ------------------------------------------------------------------------------------------------
    // Comparison helpers
    // ------------------------------------------------------------------------------------------------

    static double[] toDouble(float[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i];
        }
        return y;
    }

    /** ||y - ref|| / ||ref|| over all elements. */
    static double relativeL2(float[] y, double[] ref) {
        return relativeL2(y, ref, null);
    }

    /** ||y - ref|| / ||ref|| over the elements selected by {@code mask} (all when null); NaN anywhere gives NaN. */
    static double relativeL2(float[] y, double[] ref, boolean[] mask) {
        if (y.length != ref.length) {
            throw new IllegalArgumentException("lengths differ: " + y.length + " vs " + ref.length);
        }
        double num = 0;
        double den = 0;
        for (int i = 0; i < y.length; i++) {
            if (mask != null && !mask[i]) {
                continue;
            }
            double d = y[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
        if (den == 0) {
            throw new IllegalArgumentException("reference is all zeros: the comparison would prove nothing");
        }
        return Math.sqrt(num / den);
    }
}
