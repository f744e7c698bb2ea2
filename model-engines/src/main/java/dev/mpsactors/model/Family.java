package dev.mpsactors.model;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The encoder families the runtime loads, by their {@code config.json} {@code model_type}. All are the same
 * post-LayerNorm transformer encoder; they differ in weight names, position ids, token types, the relative
 * position bias and the sequence-classification head:
 * <ul>
 *   <li>{@link #BERT}: positions 0..L−1, token types;
 *   <li>{@link #ROBERTA}, {@link #XLM_ROBERTA}: positions counted past the padding id
 *       (padding_idx + 1 + the number of non-padding tokens before and at each position; padding tokens get
 *       padding_idx), one token type;
 *   <li>{@link #DISTILBERT}: positions 0..L−1, no token types, its own weight names;
 *   <li>{@link #MPNET}: positions as RoBERTa, no token types, and a per-head bias over bucketed relative
 *       positions added to every layer's attention scores.
 * </ul>
 */
public enum Family {
    BERT("bert", "bert.", false, true, false, Head.POOLER_CLASSIFIER),
    ROBERTA("roberta", "roberta.", true, true, false, Head.DENSE_TANH),
    XLM_ROBERTA("xlm-roberta", "roberta.", true, true, false, Head.DENSE_TANH),
    DISTILBERT("distilbert", "distilbert.", false, false, false, Head.DENSE_RELU),
    MPNET("mpnet", "mpnet.", true, false, true, Head.DENSE_TANH);

    /** How a family's {@code *ForSequenceClassification} turns the first token's state into the classifier's input. */
    public enum Head {
        /** BERT: the pooler (tanh(dense)) then {@code classifier}. */
        POOLER_CLASSIFIER,
        /** RoBERTa, XLM-RoBERTa, MPNet: {@code classifier.dense}, tanh, {@code classifier.out_proj}. */
        DENSE_TANH,
        /** DistilBERT: {@code pre_classifier}, ReLU, {@code classifier}. */
        DENSE_RELU
    }

    private final String modelType;
    private final String prefix;
    private final boolean paddingOffsetPositions;
    private final boolean tokenTypes;
    private final boolean relativeAttentionBias;
    private final Head head;

    Family(String modelType, String prefix, boolean paddingOffsetPositions, boolean tokenTypes,
           boolean relativeAttentionBias, Head head) {
        this.modelType = modelType;
        this.prefix = prefix;
        this.paddingOffsetPositions = paddingOffsetPositions;
        this.tokenTypes = tokenTypes;
        this.relativeAttentionBias = relativeAttentionBias;
        this.head = head;
    }

    /** The {@code model_type} of {@code config.json}. */
    public String modelType() {
        return modelType;
    }

    /** The prefix the family's {@code *For…} heads put before the encoder's tensor names (e.g. {@code roberta.}). */
    public String prefix() {
        return prefix;
    }

    /** Position ids counted past the padding id (RoBERTa style) rather than 0..L−1. */
    public boolean paddingOffsetPositions() {
        return paddingOffsetPositions;
    }

    /** Whether the family has a token-type embedding (DistilBERT and MPNet have none). */
    public boolean tokenTypes() {
        return tokenTypes;
    }

    /** Whether attention scores get MPNet's relative position bias. */
    public boolean relativeAttentionBias() {
        return relativeAttentionBias;
    }

    public Head head() {
        return head;
    }

    /** The family of {@code modelType}, or null. */
    public static Family of(String modelType) {
        for (Family f : values()) {
            if (f.modelType.equals(modelType)) {
                return f;
            }
        }
        return null;
    }

    /** The supported {@code model_type}s, for messages: "bert, distilbert, mpnet, roberta, xlm-roberta". */
    public static String supported() {
        return String.join(", ", Arrays.stream(values()).map(Family::modelType).sorted().toList());
    }

    /** The supported activations ({@code hidden_act}, DistilBERT's {@code activation}). */
    public static final List<String> ACTIVATIONS = List.of("gelu", "gelu_new", "gelu_pytorch_tanh", "relu");

    @Override
    public String toString() {
        return modelType.toLowerCase(Locale.ROOT);
    }
}
