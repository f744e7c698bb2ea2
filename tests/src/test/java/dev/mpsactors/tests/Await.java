package dev.mpsactors.tests;

import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Bounded waits in tests: a hang is a failure after {@link #BOUND_SECONDS}, never a stuck build. */
final class Await {
    /** 60 s; a mutant run that expects a hang lowers it with -Dmps-actors.test.bound-seconds. */
    static final long BOUND_SECONDS = Long.getLong("mps-actors.test.bound-seconds", 60);

    private Await() {}

    /**
     * Prints a failure that the test's clean-up may not outlive (owners left blocked, as a hazard mutant
     * leaves them) on one line, {@code HAZARD-FAILURE <message>}, and returns it to be thrown.
     */
    static AssertionError reported(AssertionError failure) {
        System.out.println("HAZARD-FAILURE " + failure.getMessage());
        System.out.flush();
        return failure;
    }

    static <T> T result(CompletionStage<T> stage) {
        try {
            return stage.toCompletableFuture().get(BOUND_SECONDS, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new AssertionError("request failed: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("no reply within " + BOUND_SECONDS + " s (deadlock or lost reply)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }
}
