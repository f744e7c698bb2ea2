package dev.mpsactors.runtime;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import dev.mpsactors.nativemps.GemmMath;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.function.Function;

/**
 * The runtime's configuration, read once from {@code mps-actors.*} (reference.conf documents every
 * key) and validated: an invalid value is an {@link InvalidConfigException} naming the key.
 */
public record RuntimeSettings(String backend, int deviceOrdinal, int blasThreads, int streams,
                              int streamStashCapacity, Duration askTimeout, Duration shutdownTimeout,
                              int kernelShards, int maxEvents, AllocatorSettings allocator,
                              ModelSettings model, FaultSettings faults, GemmMath gemmMath, Duration streamWatchdog,
                              DeviceSelection devices, int cpuDevices, RestartSettings deviceRestart) {
    public static final String PREFIX = "mps-actors";
    public static final String STREAM_DISPATCHER = PREFIX + ".dispatchers.stream";
    public static final String OWNER_DISPATCHER = PREFIX + ".dispatchers.owners";
    public static final String COMPILE_DISPATCHER = PREFIX + ".dispatchers.compile";
    public static final String OUTPUTS_DISPATCHER = PREFIX + ".dispatchers.outputs";
    private static final Set<String> BACKENDS = Set.of("cpu", "cuda", "metal");

    /** The same settings for the DeviceRuntime of device {@code ordinal}. */
    public RuntimeSettings forDevice(int ordinal) {
        return new RuntimeSettings(backend, ordinal, blasThreads, streams, streamStashCapacity, askTimeout,
                shutdownTimeout, kernelShards, maxEvents, allocator, model, faults, gemmMath, streamWatchdog, devices,
                cpuDevices, deviceRestart);
    }

    /** How device {@code ordinal} of this backend is opened. */
    public dev.mpsactors.nativemps.DeviceOptions deviceOptions(int ordinal) {
        return new dev.mpsactors.nativemps.DeviceOptions(backend, ordinal, blasThreads, gemmMath, cpuDevices);
    }

    /**
     * How a device whose runtime stopped is started again: after {@code minBackoff}, doubling up to
     * {@code maxBackoff}, at most {@code maxRestarts} times in a row without coming up.
     */
    public record RestartSettings(Duration minBackoff, Duration maxBackoff, int maxRestarts) {
        /** The wait before restart number {@code attempt} (1 for the first). */
        public Duration backoff(int attempt) {
            long factor = 1L << Math.min(20, Math.max(0, attempt - 1));
            Duration d = minBackoff.multipliedBy(factor);
            return d.compareTo(maxBackoff) > 0 ? maxBackoff : d;
        }
    }

    /**
     * Which devices of the backend the runtime uses ({@code mps-actors.devices}): every one it reports, the
     * first {@code count}, or the listed ordinals. Resolved against the backend's count when the runtime starts.
     */
    public record DeviceSelection(boolean all, int count, java.util.List<Integer> ordinals) {
        public static final DeviceSelection ALL = new DeviceSelection(true, 0, java.util.List.of());

        public DeviceSelection {
            ordinals = java.util.List.copyOf(ordinals);
        }

        public static DeviceSelection first(int count) {
            return new DeviceSelection(false, count, java.util.List.of());
        }

        public static DeviceSelection of(java.util.List<Integer> ordinals) {
            return new DeviceSelection(false, 0, ordinals);
        }

        /**
         * The ordinals to open on a backend that reports {@code available} devices; a selection the backend
         * cannot satisfy is an {@link InvalidConfigException} naming {@code mps-actors.devices}.
         */
        public java.util.List<Integer> resolve(int available, String backend) {
            if (available < 1) {
                throw invalid("devices", "the " + backend + " backend reports no device");
            }
            if (all) {
                return java.util.stream.IntStream.range(0, available).boxed().toList();
            }
            if (ordinals.isEmpty()) {
                if (count > available) {
                    throw invalid("devices", "asks for " + count + " devices but the " + backend + " backend reports "
                            + available);
                }
                return java.util.stream.IntStream.range(0, count).boxed().toList();
            }
            for (int o : ordinals) {
                if (o >= available) {
                    throw invalid("devices", "names device " + o + " but the " + backend + " backend reports "
                            + available + " (ordinals 0 to " + (available - 1) + ")");
                }
            }
            return ordinals;
        }

        @Override
        public String toString() {
            return all ? "all" : ordinals.isEmpty() ? String.valueOf(count) : ordinals.toString();
        }
    }

    /** Whether InjectCrash messages and the fault rates below take effect. */
    public boolean faultInjection() {
        return faults.enabled();
    }

    /**
     * Faults injected when {@code enabled} (tests, soak runs); rates are probabilities per event.
     *
     * @param kernelFailureRate     a point that succeeded is reported failed ("injected kernel failure")
     * @param allocationFailureRate an allocation is refused as device out of memory
     * @param hangRate              a point never reports completion (caught by the stream watchdog)
     */
    public record FaultSettings(boolean enabled, double kernelFailureRate, double allocationFailureRate,
                                double hangRate, long seed) {
        public static final FaultSettings OFF = new FaultSettings(false, 0, 0, 0, 0);
    }

    /**
     * @param memoryLimitBytes 0 means {@code memoryFraction} of the device's memory
     * @param lowWatermarkRatio fraction of the limit above which cached buffers go back before new ones are made
     */
    public record AllocatorSettings(long memoryLimitBytes, double memoryFraction, double lowWatermarkRatio,
                                    Duration waitTimeout, int maxWaiting) {
        /** The limit in bytes for a device with {@code deviceMemoryBytes}. */
        public long limitFor(long deviceMemoryBytes) {
            return memoryLimitBytes > 0 ? memoryLimitBytes : (long) (deviceMemoryBytes * memoryFraction);
        }
    }

    /**
     * @param maxDelay    how long the first request of a batch waits for company
     * @param maxInFlight device batches per model at once; 0 = one per stream
     * @param storage "auto", "fp32", "fp16" or "bf16": how model tensors are stored on the device
     * @param partialInFlight batches running at once from which a batch smaller than maxBatch waits to fill
     *                        (full batches still start); 0 = no limit
     */
    public record ModelSettings(int maxBatch, Duration maxDelay, int seqBucket, int programCache, int maxInFlight,
                                int maxQueued, String storage, int partialInFlight) {}

    /** Reads and validates {@code mps-actors.*} of a resolved config (with reference.conf as fallback). */
    public static RuntimeSettings fromConfig(Config root) {
        Config c = root.withFallback(com.typesafe.config.ConfigFactory.defaultReference()).resolve();
        String backend = read(c, "backend", c::getString).toLowerCase(Locale.ROOT);
        if (!BACKENDS.contains(backend)) {
            throw invalid("backend", "must be one of cpu, cuda, metal; got '" + backend + "'");
        }
        int ordinal = intIn(c, "device-ordinal", 0, 1024);
        int blas = intIn(c, "blas-threads", 1, 1024);
        String mathName = read(c, "gemm-math", c::getString);
        GemmMath math;
        try {
            math = GemmMath.parse(mathName);
        } catch (IllegalArgumentException e) {
            throw invalid("gemm-math", "must be one of fp32, tf32, fp16, bf16; got '" + mathName + "'");
        }
        if (math != GemmMath.FP32 && !backend.equals("cuda")) {
            throw invalid("gemm-math", "'" + mathName + "' needs tensor cores (backend cuda); the " + backend
                    + " backend computes in fp32");
        }
        int cpuDevices = intIn(c, "cpu.devices", 1, 1024);
        DeviceSelection devices = devices(c);
        int streams = intIn(c, "streams", 0, 256);
        if (streams == 0) {
            int split = backend.equals("cpu") ? cpuDevices : 1;
            streams = Math.max(2, Runtime.getRuntime().availableProcessors() / split);
        }
        Duration minBackoff = positiveDuration(c, "device-restart.min-backoff");
        Duration maxBackoff = positiveDuration(c, "device-restart.max-backoff");
        if (maxBackoff.compareTo(minBackoff) < 0) {
            throw invalid("device-restart.max-backoff", "must be >= min-backoff (" + minBackoff + "), got " + maxBackoff);
        }
        RestartSettings restart = new RestartSettings(minBackoff, maxBackoff,
                intIn(c, "device-restart.max-restarts", 0, 1_000_000));
        int stash = intIn(c, "stream-stash-capacity", 1, 10_000_000);
        Duration ask = positiveDuration(c, "ask-timeout");
        Duration shutdown = positiveDuration(c, "shutdown-timeout");
        int shards = intIn(c, "kernel-cache.shards", 1, 1024);
        int maxEvents = intIn(c, "event-pool.max-events", 1, 1_000_000);
        long limit = read(c, "allocator.memory-limit", p -> c.getBytes(p));
        if (limit < 0) {
            throw invalid("allocator.memory-limit", "must be >= 0 bytes (0: a fraction of the device), got " + limit);
        }
        double fraction = fractionIn(c, "allocator.memory-fraction");
        double low = fractionIn(c, "allocator.low-watermark-ratio");
        Duration wait = read(c, "allocator.wait-timeout", c::getDuration);
        if (wait.isNegative()) {
            throw invalid("allocator.wait-timeout", "must be >= 0, got " + wait);
        }
        int maxWaiting = intIn(c, "allocator.max-waiting", 0, 10_000_000);
        boolean faultsOn = read(c, "fault-injection.enabled", c::getBoolean);
        FaultSettings faults = new FaultSettings(faultsOn, rate(c, "fault-injection.kernel-failure-rate", faultsOn),
                rate(c, "fault-injection.allocation-failure-rate", faultsOn), rate(c, "fault-injection.hang-rate", faultsOn),
                read(c, "fault-injection.seed", c::getLong));
        Duration watchdog = read(c, "stream-watchdog", c::getDuration);
        if (watchdog.isNegative()) {
            throw invalid("stream-watchdog", "must be >= 0 (0: off), got " + watchdog);
        }
        if (faults.hangRate() > 0 && watchdog.isZero()) {
            throw invalid("fault-injection.hang-rate", "hung points are only caught by the stream watchdog; set "
                    + PREFIX + ".stream-watchdog > 0");
        }
        int maxBatch = intIn(c, "model.max-batch", 1, 4096);
        Duration maxDelay = read(c, "model.max-delay", c::getDuration);
        if (maxDelay.isNegative()) {
            throw invalid("model.max-delay", "must be >= 0, got " + maxDelay);
        }
        ModelSettings model = new ModelSettings(maxBatch, maxDelay, intIn(c, "model.seq-bucket", 1, 4096),
                intIn(c, "model.program-cache", 1, 100_000), intIn(c, "model.max-in-flight", 0, 4096),
                intIn(c, "model.max-queued", 1, 100_000_000), storage(c, backend, math),
                intIn(c, "model.partial-in-flight", 0, 4096));
        return new RuntimeSettings(backend, ordinal, blas, streams, stash, ask, shutdown, shards, maxEvents,
                new AllocatorSettings(limit, fraction, low, wait, maxWaiting), model, faults, math, watchdog, devices,
                cpuDevices, restart);
    }

    /** {@code devices}: "all", a count, a list of ordinals, or (from the environment) "0,2". */
    private static DeviceSelection devices(Config c) {
        String path = PREFIX + ".devices";
        if (!c.hasPath(path)) {
            throw invalid("devices", "is missing");
        }
        com.typesafe.config.ConfigValue v = c.getValue(path);
        switch (v.valueType()) {
            case NUMBER -> {
                return count(v.unwrapped().toString());
            }
            case LIST -> {
                java.util.List<Integer> ordinals = new java.util.ArrayList<>();
                for (Object o : (java.util.List<?>) v.unwrapped()) {
                    ordinals.add(ordinal(String.valueOf(o)));
                }
                return list(ordinals);
            }
            case STRING -> {
                String text = ((String) v.unwrapped()).strip();
                if (text.equalsIgnoreCase("all")) {
                    return DeviceSelection.ALL;
                }
                if (text.contains(",")) {
                    java.util.List<Integer> ordinals = new java.util.ArrayList<>();
                    for (String part : text.split(",")) {
                        ordinals.add(ordinal(part.strip()));
                    }
                    return list(ordinals);
                }
                return count(text);
            }
            default -> throw invalid("devices", "must be \"all\", a count or a list of device ordinals; got "
                    + v.render());
        }
    }

    private static DeviceSelection count(String text) {
        int n;
        try {
            n = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw invalid("devices", "must be \"all\", a count or a list of device ordinals; got '" + text + "'");
        }
        if (n < 1 || n > 1024) {
            throw invalid("devices", "a count must be between 1 and 1024, got " + n);
        }
        return DeviceSelection.first(n);
    }

    private static int ordinal(String text) {
        int n;
        try {
            n = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw invalid("devices", "a device ordinal must be a whole number, got '" + text + "'");
        }
        if (n < 0 || n > 1023) {
            throw invalid("devices", "a device ordinal must be between 0 and 1023, got " + n);
        }
        return n;
    }

    private static DeviceSelection list(java.util.List<Integer> ordinals) {
        if (ordinals.isEmpty()) {
            throw invalid("devices", "the list of device ordinals is empty");
        }
        if (new java.util.HashSet<>(ordinals).size() != ordinals.size()) {
            throw invalid("devices", "lists a device twice: " + ordinals);
        }
        return DeviceSelection.of(ordinals);
    }

    private static <T> T read(Config c, String key, Function<String, T> getter) {
        String path = PREFIX + "." + key;
        try {
            return getter.apply(path);
        } catch (ConfigException.Missing e) {
            throw invalid(key, "is missing");
        } catch (ConfigException e) {
            throw invalid(key, e.getMessage());
        }
    }

    private static String storage(Config c, String backend, GemmMath math) {
        String v = read(c, "model.storage", c::getString).strip().toLowerCase(Locale.ROOT);
        if (!Set.of("auto", "fp32", "fp16", "bf16").contains(v)) {
            throw invalid("model.storage", "must be auto, fp32, fp16 or bf16; got '" + v + "'");
        }
        boolean sixteen = v.equals("fp16") || v.equals("bf16");
        if (sixteen && !(backend.equals("cuda") && math.name().equalsIgnoreCase(v))) {
            throw invalid("model.storage", "'" + v + "' needs backend cuda with gemm-math " + v + " (backend is "
                    + backend + ", gemm-math " + math.name().toLowerCase(Locale.ROOT) + ")");
        }
        return v;
    }

    private static double rate(Config c, String key, boolean enabled) {
        double v = read(c, key, c::getDouble);
        if (!(v >= 0 && v <= 1)) {
            throw invalid(key, "must be a probability in [0, 1], got " + v);
        }
        if (v > 0 && !enabled) {
            throw invalid(key, "is " + v + " but fault injection is off; set " + PREFIX + ".fault-injection.enabled = true");
        }
        return v;
    }

    private static int intIn(Config c, String key, int min, int max) {
        int v = read(c, key, c::getInt);
        if (v < min || v > max) {
            throw invalid(key, "must be between " + min + " and " + max + ", got " + v);
        }
        return v;
    }

    private static double fractionIn(Config c, String key) {
        double v = read(c, key, c::getDouble);
        if (!(v > 0 && v <= 1)) {
            throw invalid(key, "must be in (0, 1], got " + v);
        }
        return v;
    }

    private static Duration positiveDuration(Config c, String key) {
        Duration d = read(c, key, c::getDuration);
        if (d.isNegative() || d.isZero()) {
            throw invalid(key, "must be > 0, got " + d);
        }
        return d;
    }

    private static InvalidConfigException invalid(String key, String problem) {
        return new InvalidConfigException(PREFIX + "." + key, problem);
    }
}
