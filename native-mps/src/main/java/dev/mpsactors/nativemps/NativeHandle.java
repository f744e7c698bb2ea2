package dev.mpsactors.nativemps;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The native handle a Java wrapper holds: 0 once closed. Every use checks it, so a closed object throws
 * {@link IllegalStateException} instead of passing a freed pointer to native code; closing takes it with
 * a compare-and-set, so two threads closing at once (a stopping runtime and a late client) release it once.
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

    private final String what;
    @SuppressWarnings("unused") // accessed through VALUE
    private volatile long value;

    NativeHandle(String what, long value) {
        this.what = what;
        this.value = value;
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
    long take() {
        long h = value;
        return h != 0 && VALUE.compareAndSet(this, h, 0L) ? h : 0;
    }
}
