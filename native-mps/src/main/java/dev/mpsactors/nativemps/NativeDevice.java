package dev.mpsactors.nativemps;

import java.util.Objects;

/**
 * An open device of one backend. Owner: the runtime guardian; it creates streams, buffers, events and
 * libraries that other owners then hold. Closing fails with {@link NativeStatus#BUSY} while any of them
 * is alive, so a leak is an error, never a dangling pointer.
 */
public final class NativeDevice implements AutoCloseable {
    private long handle;
    private final DeviceInfo info;

    private NativeDevice(long handle) {
        this.handle = handle;
        this.info = info0(handle);
    }

    public static NativeDevice open(DeviceOptions options) {
        Objects.requireNonNull(options, "options");
        load(options);
        return new NativeDevice(open0(options.backend(), options.ordinal(), options.blasThreads(),
                options.gemmMath().code(), options.cpuDevices()));
    }

    /**
     * How many devices of {@code options.backend()} this host offers (ordinals 0 to count - 1): the GPUs the
     * cuda driver or Metal reports, or the cpu backend's split ({@code options.cpuDevices()}). Fails with the
     * backend's message (no driver, library not built for this backend).
     */
    public static int count(DeviceOptions options) {
        Objects.requireNonNull(options, "options");
        load(options);
        return count0(options.backend(), options.cpuDevices());
    }

    private static void load(DeviceOptions options) {
        try {
            NativeLibraryLoader.ensureLoaded(options.backend());
        } catch (UnsatisfiedLinkError e) {
            // A missing backend library is a configuration problem of this device, not a broken JVM: an Error
            // here would make Pekko (and most containers) stop the whole JVM.
            throw new NativeException(NativeStatus.NOT_FOUND, e.getMessage());
        }
    }

    public DeviceInfo info() {
        return info;
    }

    public LiveObjects liveObjects() {
        long[] c = liveObjects0(handle());
        return new LiveObjects(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    }

    public DeviceBuffer allocate(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("buffer size must be > 0 bytes, got " + bytes);
        }
        if (bytes > info.maxBufferBytes()) {
            throw new IllegalArgumentException("buffer of " + bytes + " bytes exceeds the device's limit of "
                    + info.maxBufferBytes() + " bytes for one buffer");
        }
        return new DeviceBuffer(this, DeviceBuffer.alloc0(handle(), bytes), bytes);
    }

    public NativeStream createStream(CompletionListener listener) {
        return new NativeStream(this, listener);
    }

    public KernelLibrary compileLibrary(String source, String options) {
        Objects.requireNonNull(source, "source");
        return new KernelLibrary(KernelLibrary.compile0(handle(), source, options == null ? "" : options));
    }

    public DeviceEvent createEvent() {
        return new DeviceEvent(DeviceEvent.create0(handle()));
    }

    long handle() {
        long h = handle;
        if (h == 0) {
            throw new IllegalStateException("device is closed");
        }
        return h;
    }

    public boolean isClosed() {
        return handle == 0;
    }

    /** Idempotent. Throws {@link NativeException} (BUSY) and stays open while objects are alive. */
    @Override
    public void close() {
        if (handle != 0) {
            close0(handle);
            handle = 0;
        }
    }

    private static native long open0(String backend, int ordinal, int blasThreads, int gemmMath, int cpuDevices);

    private static native int count0(String backend, int cpuDevices);

    private static native DeviceInfo info0(long device);

    private static native long[] liveObjects0(long device);

    private static native void close0(long device);
}
