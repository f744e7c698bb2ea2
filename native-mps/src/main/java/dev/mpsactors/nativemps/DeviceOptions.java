package dev.mpsactors.nativemps;

/**
 * How to open a device.
 *
 * @param backend     "cpu", "cuda" or "metal"
 * @param ordinal     which device of that backend, 0 for the first
 * @param blasThreads threads one GEMM may use on one stream (cpu); streams provide the parallelism, so 1
 * @param gemmMath    tensor-core arithmetic of GEMMs (cuda); fp32 everywhere else
 */
public record DeviceOptions(String backend, int ordinal, int blasThreads, GemmMath gemmMath) {
    public DeviceOptions(String backend, int ordinal, int blasThreads) {
        this(backend, ordinal, blasThreads, GemmMath.FP32);
    }

    public DeviceOptions {
        java.util.Objects.requireNonNull(gemmMath, "gemmMath");
        if (backend == null || backend.isBlank()) {
            throw new IllegalArgumentException("backend must be named (cpu, cuda or metal)");
        }
        if (ordinal < 0) {
            throw new IllegalArgumentException("ordinal must be >= 0, got " + ordinal);
        }
        if (blasThreads < 1) {
            throw new IllegalArgumentException("blasThreads must be >= 1, got " + blasThreads);
        }
    }

    public static DeviceOptions cpu() {
        return new DeviceOptions("cpu", 0, 1);
    }
}
