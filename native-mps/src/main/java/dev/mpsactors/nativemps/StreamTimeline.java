package dev.mpsactors.nativemps;

/**
 * A shared, read-only view of one stream's timeline, for parties other than the stream's owner: the
 * scheduler reads load from it, other streams encode waits on it, the allocator checks whether a point
 * has completed. It holds its own native reference, so the owner releasing (or a supervisor replacing)
 * the stream never leaves it dangling; each holder closes its own view.
 */
public final class StreamTimeline implements AutoCloseable {
    private final NativeHandle handle;

    StreamTimeline(long handle) {
        retain0(handle);
        this.handle = new NativeHandle(this, "stream timeline", handle, StreamTimeline::release0);
    }

    /** The last point committed by the owner. */
    public long committedPoint() {
        return committedPoint0(handle());
    }

    /** The last point whose work has executed. */
    public long completedPoint() {
        return completedPoint0(handle());
    }

    /** Command buffers committed and not yet executed: the stream's queue depth. */
    public long pendingPoints() {
        long h = handle();
        return Math.max(0, committedPoint0(h) - completedPoint0(h));
    }

    long handle() {
        return handle.get();
    }

    @Override
    public void close() {
        handle.close();
    }

    private static native void retain0(long stream);

    private static native void release0(long stream);

    private static native long committedPoint0(long stream);

    private static native long completedPoint0(long stream);
}
