package dev.mpsactors.nativemps;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * A stream: an ordered queue of command buffers run by the device, with a timeline of points.
 * Owner: one StreamActor, the only caller of the encode/commit/close methods (the fork's encoder race,
 * hazard 4, came from two threads sharing one encoder). Commit returns at once; completion arrives on the
 * {@link CompletionListener} from the native executor thread.
 */
public final class NativeStream implements AutoCloseable {
    private final NativeDevice device;
    private final CompletionListener listener;
    private final NativeHandle handle;

    /** Owner-only: host buffers referenced by the open command buffer, pinned until it completes. */
    private List<ByteBuffer> openPins = new ArrayList<>();
    /** Owner adds at commit, executor thread removes at completion: hence a concurrent queue. */
    private final ConcurrentLinkedQueue<PinnedUntil> pinned = new ConcurrentLinkedQueue<>();

    private record PinnedUntil(long point, List<ByteBuffer> buffers) {}

    NativeStream(NativeDevice device, CompletionListener listener) {
        this.device = device;
        this.listener = Objects.requireNonNull(listener, "listener");
        this.handle = new NativeHandle(this, "stream", create0(device.handle(), this), NativeStream::release0);
    }

    public NativeDevice device() {
        return device;
    }

    public void encodeKernel(Pipeline pipeline, KernelArgs args) {
        Objects.requireNonNull(pipeline, "pipeline");
        Objects.requireNonNull(args, "args");
        if (args.count() != pipeline.argCount()) {
            throw new IllegalArgumentException(pipeline.function() + " takes " + pipeline.argCount()
                    + " arguments, got " + args.count());
        }
        encodeKernel0(handle(), pipeline.handle(), args.count(), args.kinds, args.bufferHandles(), args.ints,
                args.floats);
    }

    /**
     * Appends every kernel of {@code program} with {@code slots[s]} bound to slot s, in one native call.
     * All or nothing: if any invocation does not validate against the bound buffers, this throws
     * {@link NativeException} naming the invocation, kernel, argument and slot, and the open command
     * buffer keeps exactly the commands it had.
     */
    public void encodeProgram(NativeProgram program, DeviceBuffer[] slots) {
        Objects.requireNonNull(program, "program");
        Objects.requireNonNull(slots, "slots");
        if (slots.length != program.slotCount()) {
            throw new IllegalArgumentException("the program has " + program.slotCount() + " slots, "
                    + slots.length + " buffers were bound");
        }
        long[] handles = new long[slots.length];
        for (int s = 0; s < slots.length; s++) {
            if (slots[s] == null) {
                throw new NullPointerException("slot " + s + " is not bound");
            }
            handles[s] = slots[s].handle();
        }
        NativeProgram.encode0(handle(), program.handle(), handles);
    }

    /** This stream's executor waits until {@code other} reaches {@code point} (already committed there). */
    public void encodeWait(NativeStream other, long point) {
        Objects.requireNonNull(other, "other");
        encodeWait0(handle(), other.handle(), point);
    }

    /** Waits on another owner's stream through the timeline view that owner shared. */
    public void encodeWait(StreamTimeline other, long point) {
        Objects.requireNonNull(other, "other");
        encodeWait0(handle(), other.handle(), point);
    }

    /** A new read-only view of this stream's timeline for another holder, who closes it. */
    public StreamTimeline timeline() {
        return new StreamTimeline(handle());
    }

    public void encodeEventRecord(DeviceEvent event) {
        Objects.requireNonNull(event, "event");
        encodeEventRecord0(handle(), event.handle());
    }

    public void encodeCopy(DeviceBuffer src, long srcOffset, DeviceBuffer dst, long dstOffset, long bytes) {
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        src.checkRange(srcOffset, bytes);
        dst.checkRange(dstOffset, bytes);
        encodeCopy0(handle(), src.handle(), srcOffset, dst.handle(), dstOffset, bytes);
    }

    /** Copies {@code src.remaining()} bytes when the command executes; src stays pinned until then. */
    public void encodeUpload(ByteBuffer src, DeviceBuffer dst, long dstOffset) {
        DeviceBuffer.requireDirect(src, "src");
        Objects.requireNonNull(dst, "dst");
        dst.checkRange(dstOffset, src.remaining());
        encodeUpload0(handle(), src, src.position(), src.remaining(), dst.handle(), dstOffset);
        openPins.add(src);
    }

    /** Fills {@code dst.remaining()} bytes when the command executes; dst stays pinned until then. */
    public void encodeDownload(DeviceBuffer src, long srcOffset, ByteBuffer dst) {
        DeviceBuffer.requireDirect(dst, "dst");
        Objects.requireNonNull(src, "src");
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("dst is read-only");
        }
        src.checkRange(srcOffset, dst.remaining());
        encodeDownload0(handle(), src.handle(), srcOffset, dst, dst.position(), dst.remaining());
        openPins.add(dst);
    }

    /** Closes the open command buffer and returns its timeline point; never waits for the device. */
    public long commit() {
        long h = handle();
        List<ByteBuffer> pins = openPins;
        if (!pins.isEmpty()) {
            openPins = new ArrayList<>();
        }
        // The pins are published before the native commit so the executor cannot complete the point first.
        PinnedUntil entry = null;
        if (!pins.isEmpty()) {
            entry = new PinnedUntil(committedPoint() + 1, pins);
            pinned.add(entry);
        }
        return commit0(h);
    }

    public long committedPoint() {
        return committedPoint0(handle());
    }

    public long completedPoint() {
        return completedPoint0(handle());
    }

    public int openCommands() {
        return openCommands0(handle());
    }

    /**
     * Drops the open command buffer's commands after the first {@code keep}: an owner undoes a submission
     * that failed half-way, so each request is encoded whole or not at all.
     */
    public void truncateOpen(int keep) {
        truncateOpen0(handle(), keep);
    }

    /** Called by the native executor thread (jni/native_stream.c). */
    @SuppressWarnings("unused")
    private void onNativeCompletion(long point, int status, String message, long startedNanos, long finishedNanos) {
        PinnedUntil head;
        while ((head = pinned.peek()) != null && head.point() <= point) {
            pinned.poll();
        }
        try {
            listener.onComplete(point, NativeStatus.fromCode(status), message, startedNanos, finishedNanos);
        } catch (Throwable t) {
            // A listener bug must not kill the executor thread: later points would never be reported.
            Thread current = Thread.currentThread();
            current.getUncaughtExceptionHandler().uncaughtException(current, t);
        }
    }

    long handle() {
        return handle.get();
    }

    public boolean isClosed() {
        return handle.isClosed();
    }

    /**
     * Releases the stream without waiting: uncommitted commands are discarded, committed ones still run and
     * are reported to the listener; then the executor thread ends.
     */
    @Override
    public void close() {
        openPins = new ArrayList<>();
        handle.close();
    }

    private static native long create0(long device, NativeStream sink);

    private static native void encodeKernel0(long stream, long pipeline, int count, int[] kinds, long[] buffers,
                                             long[] ints, double[] floats);

    private static native void encodeWait0(long stream, long other, long point);

    private static native void encodeEventRecord0(long stream, long event);

    private static native void encodeCopy0(long stream, long src, long srcOffset, long dst, long dstOffset,
                                           long bytes);

    private static native void encodeUpload0(long stream, ByteBuffer src, int position, int length, long dst,
                                             long dstOffset);

    private static native void encodeDownload0(long stream, long src, long srcOffset, ByteBuffer dst, int position,
                                               int length);

    private static native long commit0(long stream);

    private static native long committedPoint0(long stream);

    private static native long completedPoint0(long stream);

    private static native int openCommands0(long stream);

    private static native void release0(long stream);

    private static native void truncateOpen0(long stream, int keep);
}
