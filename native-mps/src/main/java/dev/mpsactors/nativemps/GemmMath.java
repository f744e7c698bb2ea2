package dev.mpsactors.nativemps;

import java.util.Locale;

/**
 * How GEMMs use tensor cores (mps_device_options.math_mode). Storage stays fp32 in every mode; the reduced
 * modes round GEMM inputs to that format inside the GEMM and accumulate in fp32. The cpu backend computes
 * in fp32 only and refuses the others.
 */
public enum GemmMath {
    FP32(0), TF32(1), FP16(2), BF16(3);

    private final int code;

    GemmMath(int code) {
        this.code = code;
    }

    int code() {
        return code;
    }

    /** "fp32", "tf32", "fp16" or "bf16", any case. */
    public static GemmMath parse(String name) {
        try {
            return valueOf(name.strip().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException | NullPointerException e) {
            throw new IllegalArgumentException("GEMM math must be one of fp32, tf32, fp16, bf16; got '" + name + "'");
        }
    }
}
