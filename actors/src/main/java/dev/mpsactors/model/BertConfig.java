package dev.mpsactors.model;

/**
 * The parts of a Hugging Face BERT-family {@code config.json} the runtime uses. Sizes are counts of
 * elements; {@code layerNormEps} is the epsilon added to the variance.
 *
 * @param modelType           e.g. "bert" (MiniLM and other BERT layouts carry their own names)
 * @param hiddenAct           only "gelu" (the erf form) is supported
 */
public record BertConfig(String modelType, int vocabSize, int hiddenSize, int numHiddenLayers,
                         int numAttentionHeads, int intermediateSize, int maxPositionEmbeddings,
                         int typeVocabSize, double layerNormEps, String hiddenAct) {
    public BertConfig {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("num_hidden_layers", numHiddenLayers);
        requirePositive("num_attention_heads", numAttentionHeads);
        requirePositive("intermediate_size", intermediateSize);
        requirePositive("max_position_embeddings", maxPositionEmbeddings);
        requirePositive("type_vocab_size", typeVocabSize);
        if (hiddenSize % numAttentionHeads != 0) {
            throw new ModelFormatException("config.json: hidden_size " + hiddenSize
                    + " is not divisible by num_attention_heads " + numAttentionHeads);
        }
        if (!(layerNormEps > 0) || !Double.isFinite(layerNormEps)) {
            throw new ModelFormatException("config.json: layer_norm_eps must be a positive number, got " + layerNormEps);
        }
        if (!"gelu".equals(hiddenAct)) {
            throw new ModelFormatException("config.json: hidden_act '" + hiddenAct
                    + "' is not supported (supported: gelu, the erf form BERT uses)");
        }
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    private static void requirePositive(String key, int value) {
        if (value < 1) {
            throw new ModelFormatException("config.json: " + key + " must be >= 1, got " + value);
        }
    }
}
