package dev.mpsactors.nativemps;

/** A native call failed; the message is the backend's own. */
public final class NativeException extends RuntimeException {
    private final NativeStatus status;

    /** Called from JNI (jni_util.c) with the raw status code. */
    NativeException(int statusCode, String message) {
        this(NativeStatus.fromCode(statusCode), message);
    }

    public NativeException(NativeStatus status, String message) {
        super(status + ": " + message);
        this.status = status;
    }

    public NativeStatus status() {
        return status;
    }
}
