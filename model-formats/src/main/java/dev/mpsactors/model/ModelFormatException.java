package dev.mpsactors.model;

/** A model folder or file is malformed or unsupported; the message names the file and what is wrong. */
public final class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
