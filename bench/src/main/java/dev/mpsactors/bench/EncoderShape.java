package dev.mpsactors.bench;

/**
 * Shape of a BERT-style encoder layer run on one sequence.
 *
 * @param seq          tokens in the sequence
 * @param hidden       hidden size
 * @param heads        attention heads (hidden must be divisible by heads)
 * @param intermediate feed-forward width
 * @param layers       layers per request
 */
public record EncoderShape(int seq, int hidden, int heads, int intermediate, int layers) {
    public EncoderShape {
        if (seq < 1 || hidden < 1 || heads < 1 || intermediate < 1 || layers < 1) {
            throw new IllegalArgumentException("all encoder sizes must be >= 1: " + this);
        }
        if (hidden % heads != 0) {
            throw new IllegalArgumentException("hidden " + hidden + " is not divisible by heads " + heads);
        }
    }

    /** MiniLM-L6 sized: the shape the project's targets are stated for. */
    public static EncoderShape miniLm() {
        return new EncoderShape(128, 384, 12, 1536, 6);
    }

    public int headDim() {
        return hidden / heads;
    }

    /** Floating-point operations of one request (multiply-add = 2), GEMMs only: they dominate. */
    public double flopsPerRequest() {
        double l = seq, h = hidden, i = intermediate;
        double perLayer = 2 * l * h * 3 * h   // fused QKV projection
                + 2 * l * l * h                // scores, all heads
                + 2 * l * l * h                // context, all heads
                + 2 * l * h * h                // attention output projection
                + 2 * 2 * l * h * i;           // feed-forward in and out
        return perLayer * layers;
    }
}
