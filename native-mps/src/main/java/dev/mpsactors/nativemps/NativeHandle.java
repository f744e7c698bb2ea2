package dev.mpsactors.nativemps;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.Cleaner;
import java.util.function.LongConsumer;

/**
 * The native handle a Java wrapper holds: 0 once closed. Every use checks it, so a closed object throws
 * {@link IllegalStateException} instead of passing a freed pointer to native code; closing takes it with
 * a compare-and-set, so two threads closing at once (a stopping runtime and a late client) release it once.
 * A wrapper that becomes unreachable unclosed (say a retained reference in a reply that went to dead
 * letters) is released by a {@link Cleaner}, so it cannot keep the device from closing.
 */
final class NativeHandle {
    private static final VarHandle VALUE;

    static {
        try {
            VALUE = MethodHandles.lookup().findVarHandle(NativeHandle.class, "value", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** One daemon thread for all wrappers; its actions only drop native references (atomic, never blocking). */
    private static final Cleaner CLEANER = Cleaner.create();

    private final String what;
    @SuppressWarnings("unused") // accessed through VALUE
    private volatile long value;
    private final LongConsumer release;
    private final Cleaner.Cleanable cleanable;

    /** {@code owner} is the wrapper; the cleaning action holds this handle, never the owner. */
    NativeHandle(Object owner, String what, long value, LongConsumer release) {
        this.what = what;
        this.value = value;
        this.release = release;
        this.cleanable = CLEANER.register(owner, this::releaseOnce);
    }

    private void releaseOnce() {
        long h = take();
        if (h != 0) {
            release.accept(h);
        }
    }

    /** Releases the native reference now (idempotent). */
    void close() {
        cleanable.clean();
    }

    /** The handle, or IllegalStateException naming what is closed. */
    long get() {
        long h = value;
        if (h == 0) {
            throw new IllegalStateException(what + " is closed");
        }
        return h;
    }

    boolean isClosed() {
        return value == 0;
    }

    /** The handle for its one release: the first caller gets it, everyone after gets 0. */
    private long take() {
        long h = value;
        return h != 0 && VALUE.compareAndSet(this, h, 0L) ? h : 0;
    }
}
