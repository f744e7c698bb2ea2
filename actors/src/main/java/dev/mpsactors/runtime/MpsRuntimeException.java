package dev.mpsactors.runtime;

/** An owner answered a request with a failure; the message is the owner's (and the backend's) reason. */
public class MpsRuntimeException extends RuntimeException {
    public MpsRuntimeException(String message) {
        super(message);
    }
}
