package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;

/** Comparing a cluster's result with a single node's, in float64. */
public final class Outputs {
    private Outputs() {}

    /**
     * The larger of the relative L2 errors of the last hidden state and of the pooler output of {@code got}
     * against {@code reference}; infinite if the shapes differ.
     */
    public static double relativeL2(ClusterInferResult got, InferResult reference) {
        return Math.max(relativeL2(flatten(got.lastHiddenState()), flatten(reference.lastHiddenState())),
                relativeL2(flatten(got.poolerOutput()), flatten(reference.poolerOutput())));
    }

    static double relativeL2(float[] got, float[] reference) {
        if (got.length != reference.length) {
            return Double.POSITIVE_INFINITY;
        }
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < got.length; i++) {
            double d = (double) got[i] - reference[i];
            diff += d * d;
            norm += (double) reference[i] * reference[i];
        }
        return norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
    }

    private static float[] flatten(float[][][] a) {
        int n = 0;
        for (float[][] b : a) {
            for (float[] r : b) {
                n += r.length;
            }
        }
        float[] out = new float[n];
        int i = 0;
        for (float[][] b : a) {
            for (float[] r : b) {
                System.arraycopy(r, 0, out, i, r.length);
                i += r.length;
            }
        }
        return out;
    }

    private static float[] flatten(float[][] a) {
        return flatten(new float[][][] {a});
    }
}
