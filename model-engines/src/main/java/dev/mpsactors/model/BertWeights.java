package dev.mpsactors.model;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The fp32 weights of an encoder of any {@link Family} under BERT's Hugging Face names, without the model prefix
 * (e.g. {@code encoder.layer.0.attention.self.query.weight}; {@link HfModelFolder} maps each family's own names
 * onto these), plus the optional head under {@code head.*}. Linear weights keep PyTorch's
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
     * The sequence-classification head under canonical names: {@code head.dense} (RoBERTa's
     * {@code classifier.dense}, DistilBERT's {@code pre_classifier}; BERT uses its pooler instead) and
     * {@code head.out} (BERT's and DistilBERT's {@code classifier}, RoBERTa's {@code classifier.out_proj}).
     */
    public static final String HEAD_DENSE_WEIGHT = "head.dense.weight";
    public static final String HEAD_DENSE_BIAS = "head.dense.bias";
    public static final String HEAD_OUT_WEIGHT = "head.out.weight";
    public static final String HEAD_OUT_BIAS = "head.out.bias";

    /** MPNet's per-head bias table over relative position buckets, [buckets, heads]. */
    public static final String RELATIVE_ATTENTION_BIAS = "encoder.relative_attention_bias.weight";

    /** The head's tensors of {@code family}: all present (logits offered) or none. */
    public static List<String> headTensors(Family family) {
        return family.head() == Family.Head.POOLER_CLASSIFIER ? List.of(HEAD_OUT_WEIGHT, HEAD_OUT_BIAS)
                : List.of(HEAD_DENSE_WEIGHT, HEAD_DENSE_BIAS, HEAD_OUT_WEIGHT, HEAD_OUT_BIAS);
    }

    /**
     * Checks every tensor the config needs is present with the expected shape; the pooler's two tensors may both
     * be absent (an encoder exported without its pooler), and so may the head's (a body without a
     * sequence-classification head).
     */
    public static BertWeights of(BertConfig config, Map<String, Tensor> tensors) {
        Map<String, Tensor> copy = new LinkedHashMap<>(tensors);
        boolean pooler = requirePoolerPair(tensors.keySet(), "");
        boolean head = requireHeadGroup(config, tensors.keySet(), "");
        Map<String, int[]> expected = expectedShapes(config);
        if (head) {
            Tensor out = copy.get(HEAD_OUT_WEIGHT);
            expected.putAll(headShapes(config, out.shape().length == 2 ? out.shape()[0] : -1));
        }
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
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
        copy.keySet().retainAll(expected.keySet());
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

    /**
     * Whether {@code names} hold the sequence-classification head; refuses part of it (naming the missing
     * tensors by the family's own names) and, for BERT, a classifier without the pooler it reads.
     */
    public static boolean requireHeadGroup(BertConfig config, java.util.Set<String> names, String where) {
        List<String> group = headTensors(config.family());
        List<String> present = group.stream().filter(names::contains).toList();
        if (present.isEmpty()) {
            return false;
        }
        if (present.size() != group.size()) {
            List<String> missing = group.stream().filter(n -> !names.contains(n))
                    .map(n -> storedHeadName(config.family(), n)).toList();
            throw new ModelFormatException(where + "incomplete sequence-classification head: missing tensor "
                    + String.join(", ", missing) + " (a " + config.family().modelType() + " head needs "
                    + String.join(", ", group.stream().map(n -> storedHeadName(config.family(), n)).toList())
                    + ", or none of them)");
        }
        if (config.family().head() == Family.Head.POOLER_CLASSIFIER && !names.contains(POOLER_WEIGHT)) {
            throw new ModelFormatException(where + "the classifier (classifier.weight) needs the pooler, but "
                    + POOLER_WEIGHT + " is absent (BertForSequenceClassification classifies the pooler output)");
        }
        return true;
    }

    /** The name a family's checkpoint stores a canonical head tensor under (without the model prefix). */
    public static String storedHeadName(Family family, String canonical) {
        String suffix = canonical.endsWith("weight") ? "weight" : "bias";
        boolean dense = canonical.startsWith("head.dense");
        return switch (family.head()) {
            case POOLER_CLASSIFIER -> "classifier." + suffix;
            case DENSE_TANH -> (dense ? "classifier.dense." : "classifier.out_proj.") + suffix;
            case DENSE_RELU -> (dense ? "pre_classifier." : "classifier.") + suffix;
        };
    }

    /** The head's tensors and shapes for {@code numLabels} labels. */
    public static Map<String, int[]> headShapes(BertConfig c, int numLabels) {
        int h = c.hiddenSize();
        Map<String, int[]> m = new LinkedHashMap<>();
        if (c.family().head() != Family.Head.POOLER_CLASSIFIER) {
            m.put(HEAD_DENSE_WEIGHT, new int[] {h, h});
            m.put(HEAD_DENSE_BIAS, new int[] {h});
        }
        m.put(HEAD_OUT_WEIGHT, new int[] {numLabels, h});
        m.put(HEAD_OUT_BIAS, new int[] {numLabels});
        return m;
    }

    public BertConfig config() {
        return config;
    }

    /** Whether the checkpoint has a sequence-classification head (logits are offered only then). */
    public boolean hasHead() {
        return tensors.containsKey(HEAD_OUT_WEIGHT);
    }

    /** The head's number of labels, 0 without a head. */
    public int numLabels() {
        return hasHead() ? tensors.get(HEAD_OUT_WEIGHT).shape()[0] : 0;
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

    /**
     * Every tensor the config's encoder needs with its shape, under BERT's names, its pooler included (where the
     * family has one: DistilBERT has none); not the head ({@link #headShapes}).
     */
    public static Map<String, int[]> expectedShapes(BertConfig c) {
        int h = c.hiddenSize(), i = c.intermediateSize();
        Map<String, int[]> m = new LinkedHashMap<>();
        m.put("embeddings.word_embeddings.weight", new int[] {c.vocabSize(), h});
        m.put("embeddings.position_embeddings.weight", new int[] {c.maxPositionEmbeddings(), h});
        if (c.family().tokenTypes()) {
            m.put("embeddings.token_type_embeddings.weight", new int[] {c.typeVocabSize(), h});
        }
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
        if (c.family().relativeAttentionBias()) {
            m.put(RELATIVE_ATTENTION_BIAS, new int[] {c.relativeAttentionBuckets(), c.numAttentionHeads()});
        }
        if (c.family() != Family.DISTILBERT) {
            m.put(POOLER_WEIGHT, new int[] {h, h});
            m.put(POOLER_BIAS, new int[] {h});
        }
        return m;
    }
}
