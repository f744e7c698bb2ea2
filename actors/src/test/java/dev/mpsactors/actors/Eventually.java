package dev.mpsactors.actors;

import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** Bounded polling for effects that arrive asynchronously (native frees, adapted replies). */
final class Eventually {
    private Eventually() {}

    static void awaitTrue(String what, Duration bound, BooleanSupplier condition, Supplier<Object> context) {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + bound + ": " + what + " (" + context.get() + ")");
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }
}
