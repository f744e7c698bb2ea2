package dev.mpsactors.model;

import dev.mpsactors.nativemps.BuiltinKernels;

/**
 * The parts of a Hugging Face encoder's {@code config.json} the runtime uses, for every {@link Family} (named
 * as BERT names them: DistilBERT's {@code dim}, {@code n_layers}, … are read into these). Sizes are counts of
 * elements; {@code layerNormEps} is the epsilon added to the variance.
 *
 * @param modelType                the {@code model_type}, e.g. "bert" (MiniLM and other BERT layouts say bert)
 * @param typeVocabSize            0 for families without token types (DistilBERT, MPNet)
 * @param hiddenAct                gelu (erf form), gelu_new or gelu_pytorch_tanh (tanh form), relu
 * @param padTokenId               the padding id; RoBERTa-style positions count past it
 * @param relativeAttentionBuckets MPNet's relative position buckets (32), 0 for the other families
 */
public record BertConfig(String modelType, int vocabSize, int hiddenSize, int numHiddenLayers,
                         int numAttentionHeads, int intermediateSize, int maxPositionEmbeddings,
                         int typeVocabSize, double layerNormEps, String hiddenAct, Family family, int padTokenId,
                         int relativeAttentionBuckets) {
    /** MPNet's bucketing: 32 buckets (16 per direction, 8 exact), log-spaced up to this distance. */
    public static final int MPNET_BUCKETS = 32;
    public static final int MPNET_MAX_DISTANCE = 128;

    public BertConfig {
        if (family == null) {
            throw new ModelFormatException("config.json: model_type '" + modelType + "' is not supported (supported: "
                    + Family.supported() + ")");
        }
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("num_hidden_layers", numHiddenLayers);
        requirePositive("num_attention_heads", numAttentionHeads);
        requirePositive("intermediate_size", intermediateSize);
        requirePositive("max_position_embeddings", maxPositionEmbeddings);
        if (family.tokenTypes()) {
            requirePositive("type_vocab_size", typeVocabSize);
        } else if (typeVocabSize != 0) {
            throw new ModelFormatException("config.json: " + family.modelType() + " has no token types, but "
                    + "type_vocab_size is " + typeVocabSize);
        }
        if (hiddenSize % numAttentionHeads != 0) {
            throw new ModelFormatException("config.json: hidden_size " + hiddenSize
                    + " is not divisible by num_attention_heads " + numAttentionHeads);
        }
        if (!(layerNormEps > 0) || !Double.isFinite(layerNormEps)) {
            throw new ModelFormatException("config.json: layer_norm_eps must be a positive number, got " + layerNormEps);
        }
        if (!Family.ACTIVATIONS.contains(hiddenAct)) {
            throw new ModelFormatException("config.json: hidden_act '" + hiddenAct + "' is not supported (supported: "
                    + String.join(", ", Family.ACTIVATIONS) + ")");
        }
        if (family.paddingOffsetPositions() && (padTokenId < 0 || padTokenId >= vocabSize)) {
            throw new ModelFormatException("config.json: pad_token_id " + padTokenId + " is outside [0, vocab_size "
                    + vocabSize + ")");
        }
        if (family.relativeAttentionBias() && relativeAttentionBuckets != MPNET_BUCKETS) {
            throw new ModelFormatException("config.json: relative_attention_num_buckets " + relativeAttentionBuckets
                    + " is not supported (MPNet buckets relative positions into " + MPNET_BUCKETS + ")");
        }
        if (!family.relativeAttentionBias() && relativeAttentionBuckets != 0) {
            throw new ModelFormatException("config.json: " + family.modelType() + " has no relative attention bias");
        }
        if (maxSequenceLengthOf(family, maxPositionEmbeddings, padTokenId) < 1) {
            throw new ModelFormatException("config.json: max_position_embeddings " + maxPositionEmbeddings
                    + " leaves no position past pad_token_id " + padTokenId);
        }
    }

    /** A BERT config (the family {@code modelType} names: bert unless it is another supported family's). */
    public BertConfig(String modelType, int vocabSize, int hiddenSize, int numHiddenLayers, int numAttentionHeads,
                      int intermediateSize, int maxPositionEmbeddings, int typeVocabSize, double layerNormEps,
                      String hiddenAct) {
        this(modelType, vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize,
                maxPositionEmbeddings, typeVocabSize, layerNormEps, hiddenAct, Family.of(modelType), 0, 0);
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /**
     * The longest sequence the position table covers: max_position_embeddings, less padding_idx + 1 for
     * RoBERTa-style positions (514 → 512).
     */
    public int maxSequenceLength() {
        return maxSequenceLengthOf(family, maxPositionEmbeddings, padTokenId);
    }

    private static int maxSequenceLengthOf(Family family, int maxPositions, int padTokenId) {
        return family.paddingOffsetPositions() ? maxPositions - padTokenId - 1 : maxPositions;
    }

    /** The intermediate activation as a kernel code ({@link BuiltinKernels#ACT_GELU}, ACT_GELU_TANH, ACT_RELU). */
    public int activationCode() {
        return switch (hiddenAct) {
            case "gelu" -> BuiltinKernels.ACT_GELU;
            case "relu" -> BuiltinKernels.ACT_RELU;
            default -> BuiltinKernels.ACT_GELU_TANH;
        };
    }

    /**
     * Position ids of one sequence as the family's Hugging Face model makes them from {@code ids}: 0..L−1, or
     * past the padding id (padding_idx + the running count of non-padding tokens; padding tokens get padding_idx).
     */
    public void positions(int[] ids, int from, int length, int[] out, int outFrom) {
        int count = 0;
        for (int t = 0; t < length; t++) {
            if (!family.paddingOffsetPositions()) {
                out[outFrom + t] = t;
            } else if (ids[from + t] == padTokenId) {
                out[outFrom + t] = padTokenId;
            } else {
                out[outFrom + t] = padTokenId + ++count;
            }
        }
    }

    /**
     * MPNet's bucket of the relative position {@code j - i} (key minus query), as Hugging Face computes it: 16
     * buckets per direction, distances below 8 exact, the rest log-spaced up to 128, in float32 arithmetic (the
     * bucket edges depend on its rounding).
     */
    public static int relativeBucket(int relativePosition) {
        int n = -relativePosition;
        int half = MPNET_BUCKETS / 2;
        int bucket = n < 0 ? half : 0;
        n = Math.abs(n);
        int maxExact = half / 2;
        if (n < maxExact) {
            return bucket + n;
        }
        float ratio = (float) n / (float) maxExact;
        float log = (float) Math.log(ratio);
        float scaled = log / (float) Math.log((double) MPNET_MAX_DISTANCE / maxExact) * (float) (half - maxExact);
        return bucket + Math.min(maxExact + (int) scaled, half - 1);
    }

    private static void requirePositive(String key, int value) {
        if (value < 1) {
            throw new ModelFormatException("config.json: " + key + " must be >= 1, got " + value);
        }
    }
}
