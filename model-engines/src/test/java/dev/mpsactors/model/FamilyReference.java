package dev.mpsactors.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * A straightforward float64 forward pass of each supported family, written from Hugging Face's modeling code
 * (BertModel, RobertaModel, XLMRobertaModel, DistilBertModel, MPNetModel and their *ForSequenceClassification)
 * and reading the checkpoint under the family's own tensor names, independently of the runtime's loader and its
 * name mapping: a token at a time, a head at a time, in double precision.
 */
final class FamilyReference {
    private final String type;
    private final Map<String, double[]> t = new HashMap<>();
    private final int hidden, layers, heads, intermediate, labels;
    private final double eps;
    private final String act;
    private final int pad;
    private final boolean head;

    record Output(double[][][] lastHiddenState, double[][] pooler, double[][] logits) {}

    FamilyReference(Path dir) throws IOException {
        JsonNode c = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        type = c.get("model_type").asText();
        boolean distil = type.equals("distilbert");
        hidden = c.get(distil ? "dim" : "hidden_size").asInt();
        layers = c.get(distil ? "n_layers" : "num_hidden_layers").asInt();
        heads = c.get(distil ? "n_heads" : "num_attention_heads").asInt();
        intermediate = c.get(distil ? "hidden_dim" : "intermediate_size").asInt();
        eps = distil ? 1e-12 : c.path("layer_norm_eps").asDouble(1e-12);
        act = c.path(distil ? "activation" : "hidden_act").asText("gelu");
        pad = type.equals("mpnet") ? 1 : c.path("pad_token_id").asInt(0);
        java.util.List<Path> files = new java.util.ArrayList<>();
        if (Files.isRegularFile(dir.resolve("model.safetensors"))) {
            files.add(dir.resolve("model.safetensors"));
        } else {
            JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
            new java.util.TreeSet<String>(index.get("weight_map").properties().stream()
                    .map(e -> e.getValue().asText()).toList()).forEach(f -> files.add(dir.resolve(f)));
        }
        for (Path file : files) {
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                for (String name : f.names()) {
                    if (f.info(name).dtype() != SafetensorsFile.Dtype.I64) {
                        float[] v = f.readFloats(name);
                        double[] d = new double[v.length];
                        for (int i = 0; i < v.length; i++) {
                            d[i] = v[i];
                        }
                        t.put(name, d);
                    }
                }
            }
        }
        head = t.containsKey("classifier.weight") || t.containsKey("classifier.out_proj.weight");
        String out = t.containsKey("classifier.out_proj.weight") ? "classifier.out_proj.bias" : "classifier.bias";
        labels = head ? t.get(out).length : 0;
    }

    private double[] w(String name) {
        String prefix = switch (type) {
            case "xlm-roberta" -> "roberta.";
            default -> type + ".";
        };
        double[] v = t.get(prefix + name);
        if (v == null) {
            v = t.get(name);
        }
        if (v == null) {
            throw new AssertionError("no tensor " + name + " (or " + prefix + name + ")");
        }
        return v;
    }

    private boolean has(String name) {
        return t.containsKey(type + "." + name) || t.containsKey("roberta." + name) || t.containsKey(name);
    }

    /** y[o] = b[o] + Σ_i W[o, i] x[i], W stored [out, in]. */
    private static double[] linear(double[] x, double[] weight, double[] bias, int out) {
        int in = x.length;
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double s = bias[o];
            for (int i = 0; i < in; i++) {
                s += weight[o * in + i] * x[i];
            }
            y[o] = s;
        }
        return y;
    }

    private double[] layerNorm(double[] x, String prefix) {
        double[] g = w(prefix + ".weight"), b = w(prefix + ".bias");
        double mean = 0, var = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= x.length;
        for (double v : x) {
            var += (v - mean) * (v - mean);
        }
        var /= x.length;
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = (x[i] - mean) / Math.sqrt(var + eps) * g[i] + b[i];
        }
        return y;
    }

    private double activate(double x) {
        return switch (act) {
            case "gelu" -> BertReference.gelu(x);
            case "relu" -> Math.max(0, x);
            default -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
        };
    }

    /** MPNet's relative_position_bucket, in the float32 arithmetic of its torch code. */
    static int mpnetBucket(int relative) {
        int n = -relative, ret = 0, half = 16;
        if (n < 0) {
            ret += half;
        }
        n = Math.abs(n);
        int maxExact = 8;
        if (n < maxExact) {
            return ret + n;
        }
        float v = (float) Math.log((float) n / 8f) / (float) Math.log(16.0) * 8f;
        return ret + Math.min(maxExact + (int) v, half - 1);
    }

    Output forward(int[][] ids, int[][] mask, int[][] types) {
        int b = ids.length, l = ids[0].length, d = hidden / heads;
        boolean distil = type.equals("distilbert"), mpnet = type.equals("mpnet");
        boolean robertaPositions = type.equals("roberta") || type.equals("xlm-roberta") || mpnet;
        double[][][] out = new double[b][][];
        double[][] pooled = has("pooler.dense.weight") ? new double[b][] : null;
        double[][] logits = head ? new double[b][] : null;
        for (int s = 0; s < b; s++) {
            double[][] x = new double[l][];
            int count = 0;
            for (int i = 0; i < l; i++) {
                int position;
                if (robertaPositions) {
                    position = ids[s][i] == pad ? pad : pad + ++count;
                } else {
                    position = i;
                }
                double[] e = new double[hidden];
                double[] word = w("embeddings.word_embeddings.weight"), pos = w("embeddings.position_embeddings.weight");
                for (int k = 0; k < hidden; k++) {
                    e[k] = word[ids[s][i] * hidden + k] + pos[position * hidden + k];
                }
                if (!distil && !mpnet) {
                    double[] tt = w("embeddings.token_type_embeddings.weight");
                    int type = types == null ? 0 : types[s][i];
                    for (int k = 0; k < hidden; k++) {
                        e[k] += tt[type * hidden + k];
                    }
                }
                x[i] = layerNorm(e, "embeddings.LayerNorm");
            }
            for (int layer = 0; layer < layers; layer++) {
                String p = (distil ? "transformer.layer." : "encoder.layer.") + layer + ".";
                String q = distil ? "attention.q_lin" : mpnet ? "attention.attn.q" : "attention.self.query";
                String k = distil ? "attention.k_lin" : mpnet ? "attention.attn.k" : "attention.self.key";
                String v = distil ? "attention.v_lin" : mpnet ? "attention.attn.v" : "attention.self.value";
                String o = distil ? "attention.out_lin" : mpnet ? "attention.attn.o" : "attention.output.dense";
                String ln1 = distil ? "sa_layer_norm" : mpnet ? "attention.LayerNorm" : "attention.output.LayerNorm";
                String f1 = distil ? "ffn.lin1" : "intermediate.dense";
                String f2 = distil ? "ffn.lin2" : "output.dense";
                String ln2 = distil ? "output_layer_norm" : "output.LayerNorm";
                double[][] qs = new double[l][], ks = new double[l][], vs = new double[l][];
                for (int i = 0; i < l; i++) {
                    qs[i] = linear(x[i], w(p + q + ".weight"), w(p + q + ".bias"), hidden);
                    ks[i] = linear(x[i], w(p + k + ".weight"), w(p + k + ".bias"), hidden);
                    vs[i] = linear(x[i], w(p + v + ".weight"), w(p + v + ".bias"), hidden);
                }
                double[][] ctx = new double[l][hidden];
                for (int h = 0; h < heads; h++) {
                    for (int i = 0; i < l; i++) {
                        double[] score = new double[l];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j < l; j++) {
                            double dot = 0;
                            for (int c = 0; c < d; c++) {
                                dot += qs[i][h * d + c] * ks[j][h * d + c];
                            }
                            score[j] = dot / Math.sqrt(d);
                            if (mpnet) {
                                score[j] += w("encoder.relative_attention_bias.weight")[mpnetBucket(j - i) * heads + h];
                            }
                            if (mask != null && mask[s][j] == 0) {
                                score[j] = Double.NEGATIVE_INFINITY;
                            }
                            max = Math.max(max, score[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j < l; j++) {
                            score[j] = Math.exp(score[j] - max);
                            sum += score[j];
                        }
                        for (int j = 0; j < l; j++) {
                            for (int c = 0; c < d; c++) {
                                ctx[i][h * d + c] += score[j] / sum * vs[j][h * d + c];
                            }
                        }
                    }
                }
                for (int i = 0; i < l; i++) {
                    double[] a = linear(ctx[i], w(p + o + ".weight"), w(p + o + ".bias"), hidden);
                    for (int c = 0; c < hidden; c++) {
                        a[c] += x[i][c];
                    }
                    double[] attn = layerNorm(a, p + ln1);
                    double[] f = linear(attn, w(p + f1 + ".weight"), w(p + f1 + ".bias"), intermediate);
                    for (int c = 0; c < intermediate; c++) {
                        f[c] = activate(f[c]);
                    }
                    double[] y = linear(f, w(p + f2 + ".weight"), w(p + f2 + ".bias"), hidden);
                    for (int c = 0; c < hidden; c++) {
                        y[c] += attn[c];
                    }
                    x[i] = layerNorm(y, p + ln2);
                }
            }
            out[s] = x;
            if (pooled != null) {
                pooled[s] = linear(x[0], w("pooler.dense.weight"), w("pooler.dense.bias"), hidden);
                for (int c = 0; c < hidden; c++) {
                    pooled[s][c] = Math.tanh(pooled[s][c]);
                }
            }
            if (head) {
                double[] features;
                if (type.equals("bert")) {
                    features = pooled[s];
                    logits[s] = linear(features, t.get("classifier.weight"), t.get("classifier.bias"), labels);
                } else if (distil) {
                    features = linear(x[0], t.get("pre_classifier.weight"), t.get("pre_classifier.bias"), hidden);
                    for (int c = 0; c < hidden; c++) {
                        features[c] = Math.max(0, features[c]);
                    }
                    logits[s] = linear(features, t.get("classifier.weight"), t.get("classifier.bias"), labels);
                } else {
                    features = linear(x[0], t.get("classifier.dense.weight"), t.get("classifier.dense.bias"), hidden);
                    for (int c = 0; c < hidden; c++) {
                        features[c] = Math.tanh(features[c]);
                    }
                    logits[s] = linear(features, t.get("classifier.out_proj.weight"), t.get("classifier.out_proj.bias"),
                            labels);
                }
            }
        }
        return new Output(out, pooled, logits);
    }

    int labels() {
        return labels;
    }
}
