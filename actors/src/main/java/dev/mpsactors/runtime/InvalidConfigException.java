package dev.mpsactors.runtime;

/** A configuration value is missing, of the wrong type or out of range; the message names the key. */
public final class InvalidConfigException extends IllegalArgumentException {
    private final String path;

    public InvalidConfigException(String path, String problem) {
        super(path + ": " + problem);
        this.path = path;
    }

    public String path() {
        return path;
    }
}
