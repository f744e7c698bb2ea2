package dev.mpsactors.model;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The fp32 weights of a BERT encoder under their canonical Hugging Face names, without the {@code bert.}
 * prefix (e.g. {@code encoder.layer.0.attention.self.query.weight}). Linear weights keep PyTorch's
 * layout: {@code [out_features, in_features]}, row-major. Built by {@link HfModelFolder} from safetensors
 * (fp16/bf16 converted at load) or directly from arrays in tests.
 */
public final class BertWeights {
    /** A tensor: its shape and its values, row-major. */
    public record Tensor(int[] shape, float[] values) {
        public Tensor {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            if (n != values.length) {
                throw new ModelFormatException("tensor of shape " + Arrays.toString(shape) + " needs " + n
                        + " values, has " + values.length);
            }
        }
    }

    private final BertConfig config;
    private final Map<String, Tensor> tensors;

    private BertWeights(BertConfig config, Map<String, Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    /** The pooler's tensors: a checkpoint has both (pooler_output offered) or neither. */
    static final String POOLER_WEIGHT = "pooler.dense.weight";
    static final String POOLER_BIAS = "pooler.dense.bias";
    public static final List<String> POOLER_TENSORS = List.of(POOLER_WEIGHT, POOLER_BIAS);

    /**
     * Checks that every tensor the config needs is present with the expected shape; the pooler's two tensors
     * may both be absent (an encoder exported without its pooler).
     */
    public static BertWeights of(BertConfig config, Map<String, Tensor> tensors) {
        Map<String, Tensor> copy = new LinkedHashMap<>(tensors);
        boolean pooler = requirePoolerPair(tensors.keySet(), "");
        for (Map.Entry<String, int[]> e : expectedShapes(config).entrySet()) {
            Tensor t = copy.get(e.getKey());
            if (t == null && !pooler && POOLER_TENSORS.contains(e.getKey())) {
                continue;
            }
            if (t == null) {
                throw new ModelFormatException("missing tensor " + e.getKey() + " (expected shape "
                        + Arrays.toString(e.getValue()) + ")");
            }
            if (!Arrays.equals(t.shape(), e.getValue())) {
                throw new ModelFormatException("tensor " + e.getKey() + " has shape " + Arrays.toString(t.shape())
                        + ", expected " + Arrays.toString(e.getValue()) + " from config.json");
            }
        }
        return new BertWeights(config, copy);
    }

    /**
     * Whether {@code names} hold the pooler; refuses one pooler tensor without the other, naming
     * {@code where} (a file, or "" for tensors given in memory).
     */
    public static boolean requirePoolerPair(java.util.Set<String> names, String where) {
        boolean weight = names.contains(POOLER_TENSORS.get(0)), bias = names.contains(POOLER_TENSORS.get(1));
        if (weight != bias) {
            throw new ModelFormatException(where + "missing tensor " + (weight ? POOLER_TENSORS.get(1)
                    : POOLER_TENSORS.get(0)) + " (the pooler needs both " + POOLER_TENSORS + ", or neither)");
        }
        return weight;
    }

    public BertConfig config() {
        return config;
    }

    /** Whether the checkpoint has the pooler (pooler_output is offered only then). */
    public boolean hasPooler() {
        return tensors.containsKey(POOLER_TENSORS.get(0));
    }

    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException("missing tensor " + name);
        }
        return t;
    }

    public float[] values(String name) {
        return tensor(name).values();
    }

    /** Layer {@code i}'s tensor, e.g. {@code layer(3, "attention.self.query.weight")}. */
    public float[] layer(int i, String suffix) {
        return values("encoder.layer." + i + "." + suffix);
    }

    /** Every tensor a BERT encoder with pooler needs, with its shape. */
    public static Map<String, int[]> expectedShapes(BertConfig c) {
        int h = c.hiddenSize(), i = c.intermediateSize();
        Map<String, int[]> m = new LinkedHashMap<>();
        m.put("embeddings.word_embeddings.weight", new int[] {c.vocabSize(), h});
        m.put("embeddings.position_embeddings.weight", new int[] {c.maxPositionEmbeddings(), h});
        m.put("embeddings.token_type_embeddings.weight", new int[] {c.typeVocabSize(), h});
        m.put("embeddings.LayerNorm.weight", new int[] {h});
        m.put("embeddings.LayerNorm.bias", new int[] {h});
        for (int l = 0; l < c.numHiddenLayers(); l++) {
            String p = "encoder.layer." + l + ".";
            for (String proj : List.of("query", "key", "value")) {
                m.put(p + "attention.self." + proj + ".weight", new int[] {h, h});
                m.put(p + "attention.self." + proj + ".bias", new int[] {h});
            }
            m.put(p + "attention.output.dense.weight", new int[] {h, h});
            m.put(p + "attention.output.dense.bias", new int[] {h});
            m.put(p + "attention.output.LayerNorm.weight", new int[] {h});
            m.put(p + "attention.output.LayerNorm.bias", new int[] {h});
            m.put(p + "intermediate.dense.weight", new int[] {i, h});
            m.put(p + "intermediate.dense.bias", new int[] {i});
            m.put(p + "output.dense.weight", new int[] {h, i});
            m.put(p + "output.dense.bias", new int[] {h});
            m.put(p + "output.LayerNorm.weight", new int[] {h});
            m.put(p + "output.LayerNorm.bias", new int[] {h});
        }
        m.put(POOLER_WEIGHT, new int[] {h, h});
        m.put(POOLER_BIAS, new int[] {h});
        return m;
    }
}
