package dev.mpsactors.nativemps;

/** One kernel function ready to encode; immutable and shareable between streams. */
public final class Pipeline implements AutoCloseable {
    private final String function;
    private final int argCount;
    private long handle;

    Pipeline(long handle, String function, int argCount) {
        this.handle = handle;
        this.function = function;
        this.argCount = argCount;
    }

    public String function() {
        return function;
    }

    public int argCount() {
        return argCount;
    }

    long handle() {
        long h = handle;
        if (h == 0) {
            throw new IllegalStateException("pipeline " + function + " is closed");
        }
        return h;
    }

    @Override
    public void close() {
        if (handle != 0) {
            release0(handle);
            handle = 0;
        }
    }

    static native long create0(long library, String function);

    static native int argCount0(long pipeline);

    private static native void release0(long pipeline);
}
