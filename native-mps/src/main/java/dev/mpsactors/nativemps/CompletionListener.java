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
     * @param startedNanos   when the buffer's first kernel or copy started executing (System.nanoTime's
     *                       clock; on cpu a kernel-level timestamp, waits on other streams excluded)
     * @param finishedNanos  when its last kernel or copy finished
     */
    void onComplete(long point, NativeStatus status, String message, long startedNanos, long finishedNanos);
}
