package dev.mpsactors.runtime;

/** The model refused the request at admission (it already held mps-actors.model.max-queued); retry later. */
public final class OverloadedException extends MpsRuntimeException {
    public OverloadedException(String message) {
        super(message);
    }
}
