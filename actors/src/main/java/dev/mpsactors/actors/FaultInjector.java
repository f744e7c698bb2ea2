package dev.mpsactors.actors;

import dev.mpsactors.runtime.RuntimeSettings.FaultSettings;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Faults the runtime injects when {@code mps-actors.fault-injection.enabled} is on (tests, the soak run):
 * kernel failures and hung command buffers on streams, device out-of-memory on the allocator. Each owner
 * draws from its own {@link Owner} (a seeded generator it alone uses, so runs repeat and no generator is
 * shared between threads); the counters are statistics shared by all owners, hence atomic.
 */
public final class FaultInjector {
    private final FaultSettings settings;
    private final AtomicLong kernelFailures = new AtomicLong();
    private final AtomicLong allocationFailures = new AtomicLong();
    private final AtomicLong hangs = new AtomicLong();
    private final AtomicLong crashes = new AtomicLong();
    /** Run by a model actor, on its own thread, after a batch's memory arrived and before its inputs are written. */
    private final Runnable batchPreparationHold;

    public FaultInjector(FaultSettings settings) {
        this(settings, () -> {});
    }

    private FaultInjector(FaultSettings settings, Runnable batchPreparationHold) {
        this.settings = settings;
        this.batchPreparationHold = batchPreparationHold;
    }

    /**
     * The same faults, plus {@code hold} run by a model actor while it prepares a batch (its memory leased,
     * its inputs not yet written), blocking that actor for as long as {@code hold} runs: a test opens the
     * window in which the runtime stops under a batch being prepared, on purpose.
     */
    public FaultInjector holdingBatchPreparation(Runnable hold) {
        return new FaultInjector(settings, hold);
    }

    void holdBatchPreparation() {
        batchPreparationHold.run();
    }

    /** An injector that never fires (fault injection off). */
    public static FaultInjector off() {
        return new FaultInjector(FaultSettings.OFF);
    }

    /** InjectCrash honoured, no rate-driven faults (tests that crash owners by message). */
    public static FaultInjector crashesOnly() {
        return new FaultInjector(new FaultSettings(true, 0, 0, 0, 1));
    }

    public boolean enabled() {
        return settings.enabled();
    }

    /** The generator of one owner, seeded from the configured seed and the owner's name. */
    public Owner owner(String name) {
        return new Owner(new SplittableRandom(settings.seed() * 31 + name.hashCode()));
    }

    /** Faults injected so far, for reports. */
    public record Counts(long kernelFailures, long allocationFailures, long hangs, long crashes) {
        public long total() {
            return kernelFailures + allocationFailures + hangs + crashes;
        }
    }

    public Counts counts() {
        return new Counts(kernelFailures.get(), allocationFailures.get(), hangs.get(), crashes.get());
    }

    void countCrash() {
        crashes.incrementAndGet();
    }

    /** Draws for one owner; use only from that owner. */
    public final class Owner {
        private final SplittableRandom random;

        private Owner(SplittableRandom random) {
            this.random = random;
        }

        /** Whether a point that succeeded on the device is reported failed instead. */
        boolean failKernel() {
            return draw(settings.kernelFailureRate(), kernelFailures);
        }

        /** Whether an allocation is refused as if the device were out of memory. */
        boolean failAllocation() {
            return draw(settings.allocationFailureRate(), allocationFailures);
        }

        /** Whether a committed point never reports completion (a hung command buffer). */
        boolean hang() {
            return draw(settings.hangRate(), hangs);
        }

        private boolean draw(double rate, AtomicLong counter) {
            if (!settings.enabled() || rate <= 0 || random.nextDouble() >= rate) {
                return false;
            }
            counter.incrementAndGet();
            return true;
        }
    }
}
