package dev.mpsactors.bench.jmh;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.runtime.MpsRuntime;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Starting and stopping what the benchmarks measure; every teardown checks that nothing was left alive. */
final class BenchRuntime {
    /** How long one reply may take before a benchmark fails instead of hanging. */
    static final Duration TIMEOUT = Duration.ofSeconds(30);

    private BenchRuntime() {}

    /** A runtime of 2 streams (the benchmark machine has 2 cores) with quiet logging. */
    static MpsRuntime start() {
        Config config = ConfigFactory.parseString("""
                mps-actors.streams = 2
                pekko.loglevel = WARNING
                """).withFallback(ConfigFactory.load());
        return MpsRuntime.start(config);
    }

    /** Shuts the runtime down and fails if the device was not closed empty. */
    static void shutdown(MpsRuntime rt) throws TimeoutException, InterruptedException {
        LiveObjects left = rt.shutdown(Duration.ofSeconds(60));
        if (!left.isEmpty()) {
            throw new IllegalStateException("the runtime shut down with native objects alive: " + left);
        }
    }

    /**
     * Closes a device opened directly. Closed streams free themselves on their executor thread after their
     * last callback, so wait (bounded) for every count to reach zero first; a leak fails the trial.
     */
    static void closeDevice(NativeDevice device) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        LiveObjects live = device.liveObjects();
        while (!live.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(5);
            live = device.liveObjects();
        }
        if (!live.isEmpty()) {
            throw new IllegalStateException("native objects still alive before closing the device: " + live);
        }
        device.close();
    }

    /** For a setup that fails after the runtime started: JMH calls no teardown then, so stop it here. */
    static RuntimeException abandon(MpsRuntime rt, Exception cause) {
        try {
            rt.shutdown(Duration.ofSeconds(60));
        } catch (Exception e) {
            cause.addSuppressed(e);
        }
        return cause instanceof RuntimeException r ? r : new IllegalStateException("setup failed", cause);
    }

    static <T> T await(CompletionStage<T> stage) throws Exception {
        try {
            return stage.toCompletableFuture().get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception c ? c : e;
        }
    }
}
