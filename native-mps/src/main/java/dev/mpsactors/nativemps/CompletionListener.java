package dev.mpsactors.nativemps;

/**
 * Receives a stream's completions, in point order, on the stream's native executor thread (a daemon
 * attached to the JVM). Implementations must return quickly and never block: turn the call into a message.
 */
@FunctionalInterface
public interface CompletionListener {
    /**
     * @param point          the timeline point that completed
     * @param status         OK, or the first failure in that command buffer
     * @param message        the backend's message for a failure, null when OK
     * @param startedNanos   when the executor started the buffer (System.nanoTime's clock on cpu)
     * @param finishedNanos  when it finished
     */
    void onComplete(long point, NativeStatus status, String message, long startedNanos, long finishedNanos);
}
