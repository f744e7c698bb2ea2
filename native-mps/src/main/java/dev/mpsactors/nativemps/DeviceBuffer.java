package dev.mpsactors.nativemps;

import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * Device memory. Owner: the allocator (or a stream's arena). Host reads and writes copy immediately on
 * host-visible devices; the owner orders them against kernels with timeline points. Closing while
 * commands that use the buffer are pending is safe: the memory goes after the last of them completes.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final NativeDevice device;
    private final long size;
    private final NativeHandle handle;

    DeviceBuffer(NativeDevice device, long handle, long size) {
        this.device = device;
        this.handle = new NativeHandle(this, "buffer", handle, DeviceBuffer::release0);
        this.size = size;
    }

    public long size() {
        return size;
    }

    public NativeDevice device() {
        return device;
    }

    public void write(long byteOffset, float[] src) {
        Objects.requireNonNull(src, "src");
        checkRange(byteOffset, 4L * src.length);
        writeFloats0(handle(), byteOffset, src);
    }

    public void read(long byteOffset, float[] dst) {
        Objects.requireNonNull(dst, "dst");
        checkRange(byteOffset, 4L * dst.length);
        readFloats0(handle(), byteOffset, dst);
    }

    public void write(long byteOffset, int[] src) {
        Objects.requireNonNull(src, "src");
        checkRange(byteOffset, 4L * src.length);
        writeInts0(handle(), byteOffset, src);
    }

    public void read(long byteOffset, int[] dst) {
        Objects.requireNonNull(dst, "dst");
        checkRange(byteOffset, 4L * dst.length);
        readInts0(handle(), byteOffset, dst);
    }

    /** Copies {@code src.remaining()} bytes from a direct buffer (position unchanged). */
    public void write(long byteOffset, ByteBuffer src) {
        requireDirect(src, "src");
        checkRange(byteOffset, src.remaining());
        writeBytes0(handle(), byteOffset, src, src.position(), src.remaining());
    }

    /** Fills {@code dst.remaining()} bytes of a direct buffer (position unchanged). */
    public void read(long byteOffset, ByteBuffer dst) {
        requireDirect(dst, "dst");
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst is read-only");
        }
        checkRange(byteOffset, dst.remaining());
        readBytes0(handle(), byteOffset, dst, dst.position(), dst.remaining());
    }

    static void requireDirect(ByteBuffer b, String name) {
        Objects.requireNonNull(b, name);
        if (!b.isDirect()) {
            throw new IllegalArgumentException(name + " must be a direct ByteBuffer (heap buffers move under GC)");
        }
    }

    void checkRange(long byteOffset, long bytes) {
        if (byteOffset < 0 || bytes < 0 || byteOffset > size || bytes > size - byteOffset) {
            throw new IndexOutOfBoundsException("range [" + byteOffset + ", " + byteOffset + " + " + bytes
                    + ") is outside the buffer's " + size + " bytes");
        }
    }

    long handle() {
        return handle.get();
    }

    public boolean isClosed() {
        return handle.isClosed();
    }

    /** Idempotent and safe from two threads at once: exactly one of them drops the native reference. */
    @Override
    public void close() {
        handle.close();
    }

    static native long alloc0(long device, long bytes);

    private static native void release0(long buffer);

    private static native void writeFloats0(long buffer, long offset, float[] src);

    private static native void readFloats0(long buffer, long offset, float[] dst);

    private static native void writeInts0(long buffer, long offset, int[] src);

    private static native void readInts0(long buffer, long offset, int[] dst);

    private static native void writeBytes0(long buffer, long offset, ByteBuffer src, int position, int length);

    private static native void readBytes0(long buffer, long offset, ByteBuffer dst, int position, int length);
}
