package dev.mpsactors.model;

/**
 * An independent float64 BERT forward pass, written plainly from the model's definition (Hugging Face
 * BertModel in eval mode): per token and per head, with nothing shared with the native program's layout
 * (no fused QKV, no batched GEMMs, no scratch buffer). Inputs are the fp32 weights; every intermediate is
 * a double, so its own error (about 1e-15) is negligible next to the fp32 program's.
 */
final class BertReference {
    /** torch.finfo(torch.float32).min, the additive mask HF builds from attention_mask. */
    static final double MASK_MIN = -3.4028234663852886e38;

    record Output(double[][][] lastHiddenState, double[][] poolerOutput) {}

    private BertReference() {}

    /** attentionMask and tokenTypeIds may be null (all ones, all zeros), as in HF. */
    static Output forward(BertWeights w, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds) {
        BertConfig c = w.config();
        int batch = inputIds.length, h = c.hiddenSize();
        double[][][] hidden = new double[batch][][];
        double[][] pooled = new double[batch][];
        for (int b = 0; b < batch; b++) {
            int len = inputIds[b].length;
            double[] maskAdd = new double[len];
            for (int j = 0; j < len; j++) {
                int m = attentionMask == null ? 1 : attentionMask[b][j];
                maskAdd[j] = (1.0 - m) * MASK_MIN;
            }
            double[][] x = new double[len][];
            for (int t = 0; t < len; t++) {
                int type = tokenTypeIds == null ? 0 : tokenTypeIds[b][t];
                double[] e = new double[h];
                for (int k = 0; k < h; k++) {
                    e[k] = (double) w.values("embeddings.word_embeddings.weight")[inputIds[b][t] * h + k]
                            + w.values("embeddings.position_embeddings.weight")[t * h + k]
                            + w.values("embeddings.token_type_embeddings.weight")[type * h + k];
                }
                x[t] = layerNorm(e, w.values("embeddings.LayerNorm.weight"), w.values("embeddings.LayerNorm.bias"),
                        c.layerNormEps());
            }
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                x = layer(w, l, x, maskAdd);
            }
            hidden[b] = x;
            if (w.hasPooler()) {
                double[] p = linear(x[0], w.values("pooler.dense.weight"), w.values("pooler.dense.bias"));
                for (int k = 0; k < h; k++) {
                    p[k] = Math.tanh(p[k]);
                }
                pooled[b] = p;
            }
        }
        return new Output(hidden, pooled);
    }

    /**
     * The sentence embedding of one sequence's hidden states over its tokens (mask 1; null: all), as
     * sentence-transformers pools: cls = position 0, mean, max, mean_sqrt_len = sum / sqrt(tokens); a sequence
     * without tokens gives zeros; normalized: divided by max(L2 norm, 1e-12).
     */
    static double[] pool(double[][] hidden, int[] mask, String mode, boolean normalize) {
        int h = hidden[0].length, tokens = 0;
        double[] y = new double[h];
        if (mode.equals("cls")) {
            y = hidden[0].clone();
        } else {
            java.util.Arrays.fill(y, mode.equals("max") ? Double.NEGATIVE_INFINITY : 0.0);
            for (int t = 0; t < hidden.length; t++) {
                if (mask != null && mask[t] == 0) {
                    continue;
                }
                tokens++;
                for (int k = 0; k < h; k++) {
                    y[k] = mode.equals("max") ? Math.max(y[k], hidden[t][k]) : y[k] + hidden[t][k];
                }
            }
            for (int k = 0; k < h; k++) {
                y[k] = tokens == 0 ? 0.0 : mode.equals("mean") ? y[k] / tokens
                        : mode.equals("mean_sqrt_len") ? y[k] / Math.sqrt(tokens) : y[k];
            }
        }
        if (normalize) {
            double sq = 0;
            for (double v : y) {
                sq += v * v;
            }
            double norm = Math.max(Math.sqrt(sq), 1e-12);
            for (int k = 0; k < h; k++) {
                y[k] /= norm;
            }
        }
        return y;
    }

    private static double[][] layer(BertWeights w, int l, double[][] x, double[] maskAdd) {
        BertConfig c = w.config();
        int len = x.length, h = c.hiddenSize(), heads = c.numAttentionHeads(), d = c.headDim();
        double[][] q = new double[len][], k = new double[len][], v = new double[len][];
        for (int t = 0; t < len; t++) {
            q[t] = linear(x[t], w.layer(l, "attention.self.query.weight"), w.layer(l, "attention.self.query.bias"));
            k[t] = linear(x[t], w.layer(l, "attention.self.key.weight"), w.layer(l, "attention.self.key.bias"));
            v[t] = linear(x[t], w.layer(l, "attention.self.value.weight"), w.layer(l, "attention.self.value.bias"));
        }
        double[][] context = new double[len][h];
        for (int head = 0; head < heads; head++) {
            int base = head * d;
            for (int i = 0; i < len; i++) {
                double[] s = new double[len];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < len; j++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) {
                        dot += q[i][base + e] * k[j][base + e];
                    }
                    s[j] = dot / Math.sqrt(d) + maskAdd[j];
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < len; j++) {
                    s[j] = Math.exp(s[j] - max);
                    sum += s[j];
                }
                for (int j = 0; j < len; j++) {
                    double p = s[j] / sum;
                    for (int e = 0; e < d; e++) {
                        context[i][base + e] += p * v[j][base + e];
                    }
                }
            }
        }
        double[][] out = new double[len][];
        for (int t = 0; t < len; t++) {
            double[] attn = linear(context[t], w.layer(l, "attention.output.dense.weight"),
                    w.layer(l, "attention.output.dense.bias"));
            double[] h1 = layerNorm(add(attn, x[t]), w.layer(l, "attention.output.LayerNorm.weight"),
                    w.layer(l, "attention.output.LayerNorm.bias"), c.layerNormEps());
            double[] inter = linear(h1, w.layer(l, "intermediate.dense.weight"), w.layer(l, "intermediate.dense.bias"));
            for (int e = 0; e < inter.length; e++) {
                inter[e] = gelu(inter[e]);
            }
            double[] o = linear(inter, w.layer(l, "output.dense.weight"), w.layer(l, "output.dense.bias"));
            out[t] = layerNorm(add(o, h1), w.layer(l, "output.LayerNorm.weight"), w.layer(l, "output.LayerNorm.bias"),
                    c.layerNormEps());
        }
        return out;
    }

    /** y = W x + b with W stored [out, in] (PyTorch). */
    static double[] linear(double[] x, float[] weight, float[] bias) {
        int in = x.length, out = bias.length;
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double s = bias[o];
            for (int i = 0; i < in; i++) {
                s += (double) weight[o * in + i] * x[i];
            }
            y[o] = s;
        }
        return y;
    }

    static double[] layerNorm(double[] x, float[] gamma, float[] beta, double eps) {
        int n = x.length;
        double mean = 0;
        for (double e : x) {
            mean += e;
        }
        mean /= n;
        double var = 0;
        for (double e : x) {
            var += (e - mean) * (e - mean);
        }
        var /= n;
        double inv = 1.0 / Math.sqrt(var + eps);
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
        }
        return y;
    }

    private static double[] add(double[] a, double[] b) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            y[i] = a[i] + b[i];
        }
        return y;
    }

    /** GELU, erf form (BERT's "gelu"): x/2 (1 + erf(x/√2)). */
    static double gelu(double x) {
        return 0.5 * x * (1.0 + erf(x / Math.sqrt(2.0)));
    }

    /**
     * erf to double precision: erf(x) = 2/√π e^{-x²} Σ_n 2^n x^{2n+1} / (1·3·…·(2n+1)), a series of
     * positive terms (no cancellation) that converges for every x; beyond |x| = 6, 1 - erf < 1e-17.
     */
    static double erf(double x) {
        double ax = Math.abs(x);
        if (ax > 6.0) {
            return Math.copySign(1.0, x);
        }
        double x2 = ax * ax, term = ax, sum = ax;
        for (int n = 1; n < 500; n++) {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (term < 1e-17 * sum) {
                break;
            }
        }
        double r = 2.0 / Math.sqrt(Math.PI) * Math.exp(-x2) * sum;
        return Math.copySign(Math.min(r, 1.0), x);
    }
}
