package dev.mpsactors.text;

/** A model folder's text files (tokenizer, sentence-transformers modules) are missing, malformed or unsupported. */
public final class TextFormatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public TextFormatException(String message) {
        super(message);
    }

    public TextFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
