package dev.mpsactors.cluster;

/** A cluster request that failed for good: the model's answer, or the last attempt's failure. */
public final class ClusterInferenceException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String requestId;
    private final int attempts;
    private final String reason;

    public ClusterInferenceException(String requestId, int attempts, String reason) {
        super("request " + requestId + " failed after " + attempts + " attempt(s): " + reason);
        this.requestId = requestId;
        this.attempts = attempts;
        this.reason = reason;
    }

    public String requestId() {
        return requestId;
    }

    public int attempts() {
        return attempts;
    }

    /** The cause, without the request id: the model's answer or the last attempt's failure. */
    public String reason() {
        return reason;
    }
}
