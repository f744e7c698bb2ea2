package dev.mpsactors.reliability;

import dev.mpsactors.actors.FaultInjector;
import dev.mpsactors.runtime.RuntimeSettings;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A window a test opens on purpose: once {@link #arm() armed}, the next batch a model prepares is held (after its
 * memory was leased, before its commit) until {@link #release()}; {@link #awaitHeld} sees it held.
 */
final class HeldBatch {
    private final CountDownLatch held = new CountDownLatch(1);
    private final CountDownLatch release = new CountDownLatch(1);
    private final AtomicBoolean armed;

    /** @param armed whether the first batch prepared is the one held (else call {@link #arm()} first) */
    HeldBatch(boolean armed) {
        this.armed = new AtomicBoolean(armed);
    }

    /** A fault injector with the settings' faults that holds the armed batch. */
    FaultInjector injector(RuntimeSettings settings) {
        return new FaultInjector(settings.faults()).holdingBatchPreparation(() -> {
            if (armed.compareAndSet(true, false)) {
                held.countDown();
                try {
                    release.await(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
    }

    void arm() {
        armed.set(true);
    }

    boolean awaitHeld() throws InterruptedException {
        return held.await(ServedModel.BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    void release() {
        release.countDown();
    }
}
