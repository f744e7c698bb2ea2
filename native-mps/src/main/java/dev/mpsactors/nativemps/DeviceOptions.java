package dev.mpsactors.nativemps;

/**
 * How to open a device.
 *
 * @param backend     "cpu", "cuda" or "metal"
 * @param ordinal     which device of that backend, 0 for the first
 * @param blasThreads threads one GEMM may use on one stream (cpu); streams provide the parallelism, so 1
 * @param gemmMath    tensor-core arithmetic of GEMMs (cuda); fp32 everywhere else
 * @param cpuDevices  cpu: how many devices the host's cores and memory are split into (1: one device); other
 *                    backends ignore it
 */
public record DeviceOptions(String backend, int ordinal, int blasThreads, GemmMath gemmMath, int cpuDevices) {
    public DeviceOptions(String backend, int ordinal, int blasThreads) {
        this(backend, ordinal, blasThreads, GemmMath.FP32, 1);
    }

    public DeviceOptions(String backend, int ordinal, int blasThreads, GemmMath gemmMath) {
        this(backend, ordinal, blasThreads, gemmMath, 1);
    }

    /** The same device options for device {@code ordinal}. */
    public DeviceOptions withOrdinal(int ordinal) {
        return new DeviceOptions(backend, ordinal, blasThreads, gemmMath, cpuDevices);
    }

    public DeviceOptions {
        java.util.Objects.requireNonNull(gemmMath, "gemmMath");
        if (backend == null || backend.isBlank()) {
            throw new IllegalArgumentException("backend must be named (cpu, cuda or metal)");
        }
        if (ordinal < 0) {
            throw new IllegalArgumentException("ordinal must be >= 0, got " + ordinal);
        }
        if (cpuDevices < 1) {
            throw new IllegalArgumentException("cpuDevices must be >= 1, got " + cpuDevices);
        }
        if (blasThreads < 1) {
            throw new IllegalArgumentException("blasThreads must be >= 1, got " + blasThreads);
        }
    }

    public static DeviceOptions cpu() {
        return new DeviceOptions("cpu", 0, 1);
    }
}
