package dev.mpsactors.nativemps;

import java.util.Objects;

/**
 * A compiled kernel library. Owner: a kernel-library shard. Immutable: its pipelines may run on every
 * stream at once. On cpu the source names built-in kernels ("gemm layernorm" or "*"); a source that does
 * not compile throws {@link NativeException} with status COMPILE_FAILED and the compiler's log.
 */
public final class KernelLibrary implements AutoCloseable {
    private final NativeHandle handle;

    KernelLibrary(long handle) {
        this.handle = new NativeHandle(this, "kernel library", handle, KernelLibrary::release0);
    }

    public Pipeline pipeline(String function) {
        Objects.requireNonNull(function, "function");
        long p = Pipeline.create0(handle(), function);
        return new Pipeline(p, function, Pipeline.argCount0(p));
    }

    long handle() {
        return handle.get();
    }

    /** Pipelines taken from the library stay valid after it closes (they keep it alive natively). */
    @Override
    public void close() {
        handle.close();
    }

    static native long compile0(long device, String source, String options);

    private static native void release0(long library);
}
