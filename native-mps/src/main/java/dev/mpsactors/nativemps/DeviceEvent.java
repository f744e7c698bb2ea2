package dev.mpsactors.nativemps;

import java.util.Objects;

/**
 * An event recorded on a stream's timeline. Owner: the event pool. Queries never wait: they read what the
 * stream's executor has published.
 */
public final class DeviceEvent implements AutoCloseable {
    private final NativeHandle handle;

    DeviceEvent(long handle) {
        this.handle = new NativeHandle(this, "event", handle, DeviceEvent::release0);
    }

    /** Whether the latest record has executed; throws (STATE) if the event was never recorded. */
    public boolean isComplete() {
        return query0(handle());
    }

    /** Milliseconds from {@code start}'s record to this one's; both must be complete. */
    public double elapsedMillisSince(DeviceEvent start) {
        Objects.requireNonNull(start, "start");
        return elapsed0(start.handle(), handle());
    }

    /**
     * A second reference to the same native event for another holder (e.g. the stream owner that encodes
     * one record); closing either leaves the other valid.
     */
    public DeviceEvent share() {
        long h = handle();
        retain0(h);
        return new DeviceEvent(h);
    }

    long handle() {
        return handle.get();
    }

    public boolean isClosed() {
        return handle.isClosed();
    }

    @Override
    public void close() {
        handle.close();
    }

    static native long create0(long device);

    private static native boolean query0(long event);

    private static native double elapsed0(long start, long end);

    private static native void release0(long event);

    private static native void retain0(long event);
}
