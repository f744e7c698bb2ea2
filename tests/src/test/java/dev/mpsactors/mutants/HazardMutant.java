package dev.mpsactors.mutants;

import static net.bytebuddy.matcher.ElementMatchers.named;

import java.util.List;
import net.bytebuddy.asm.AsmVisitorWrapper;
import net.bytebuddy.asm.Advice;

/**
 * The seven hazards of the audited fork, each put back by a mutant, and the hazard test that must kill it.
 * A mutant is advice woven into the owners of a child JVM ({@link MutantMain}), native code that exists only
 * in the test-only {@code libmpsnative_mutants.so} (selected with {@code MPS_MUTANT}), or both.
 */
enum HazardMutant {
    KERNEL_CACHE(1, "kernel cache whose concurrent misses compile twice", "dev.mpsactors.tests.KernelCacheStormTest",
            false, 0, List.of(new Weave("dev.mpsactors.actors.KernelCacheShard",
                    Advice.to(MutantAdvice.CompileTwice.class).on(named("onGetPipeline"))))),
    EVENT_POOL(2, "event pool handing out raw references that a release frees", "dev.mpsactors.tests.EventStormTest",
            false, 8, List.of(new Weave("dev.mpsactors.nativemps.DeviceEvent",
                    Advice.to(MutantAdvice.RawEventReference.class).on(named("share"))))),
    STREAM_LOCK(3, "stream lock held across a device wait", "dev.mpsactors.tests.NoDeadlockTest", false, 6,
            List.of(new Weave("dev.mpsactors.actors.StreamActor",
                    Advice.to(MutantAdvice.LockAcrossDeviceWait.class).on(named("onWaitFor"))))),
    SHARED_ENCODER(4, "command encoder mutated without its owner", "dev.mpsactors.tests.SharedEncoderTest", true, 0,
            List.of(new Weave("dev.mpsactors.actors.StreamActor",
                    Advice.to(MutantAdvice.EncodeWithoutOwner.class).on(named("onSubmit"))))),
    BLOCKING_ALLOCATOR(5, "allocator blocking on a pending free's completion",
            "dev.mpsactors.tests.AllocatorNeverWaitsForUnrelatedWorkTest", false, 0,
            List.of(new Weave("dev.mpsactors.actors.AllocatorActor",
                    Advice.to(MutantAdvice.AllocatorBlocksOnFree.class).on(named("onFreeAfter"))))),
    LAYER_NORM_MUTEX(6, "global LayerNorm mutex", "dev.mpsactors.tests.ParallelLayerNormTest", true, 0, List.of()),
    SYNCHRONOUS_RELEASE(7, "release that waits for the stream", "dev.mpsactors.tests.NonBlockingReleaseTest", false,
            0, List.of(new Weave("dev.mpsactors.runtime.DeviceStreams",
                    Advice.to(MutantAdvice.ReleaseSynchronizes.class).on(named("release")))));

    /** One class and the advice woven into it. */
    record Weave(String type, AsmVisitorWrapper advice) {}

    final int number;
    final String description;
    final String testClass;
    /** Whether it needs libmpsnative_mutants.so (native code of the mutant). */
    final boolean nativeMutant;
    /** For a mutant that makes the test wait for what never comes (a deadlock, a lost reply): the test's
     * bound on each wait, in seconds; 0 = the default bound. */
    final int boundSeconds;
    final List<Weave> weaves;

    HazardMutant(int number, String description, String testClass, boolean nativeMutant, int boundSeconds,
                 List<Weave> weaves) {
        this.number = number;
        this.description = description;
        this.testClass = testClass;
        this.nativeMutant = nativeMutant;
        this.boundSeconds = boundSeconds;
        this.weaves = weaves;
    }

    String testName() {
        return testClass.substring(testClass.lastIndexOf('.') + 1);
    }

    static HazardMutant number(int n) {
        for (HazardMutant m : values()) {
            if (m.number == n) {
                return m;
            }
        }
        throw new IllegalArgumentException("no mutant " + n + " (1..7)");
    }
}
