package dev.mpsactors.nativemps;

/** One kernel function ready to encode; immutable and shareable between streams. */
public final class Pipeline implements AutoCloseable {
    private final String function;
    private final int argCount;
    private final NativeHandle handle;

    Pipeline(long handle, String function, int argCount) {
        this.handle = new NativeHandle(this, "pipeline " + function, handle, Pipeline::release0);
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
        return handle.get();
    }

    @Override
    public void close() {
        handle.close();
    }

    static native long create0(long library, String function);

    static native int argCount0(long pipeline);

    private static native void release0(long pipeline);
}
