package dev.mpsactors.nativemps;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * An immutable list of kernel invocations whose buffer arguments name slots ({@link ProgramArgs}), so that
 * a whole request (e.g. a model's forward pass) is encoded by one {@link NativeStream#encodeProgram} call,
 * one JNI crossing, instead of one per kernel. Each encode binds its own buffers to the slots.
 *
 * <p>Owner: whoever built it (the model actor); once built it is read-only, and any number of stream owners
 * may encode it at once. Close it after the last encode call has returned: commands already encoded keep
 * their pipelines and buffers alive by themselves, so pending work never depends on the program.
 */
public final class NativeProgram implements AutoCloseable {
    private final int slotCount;
    private final int kernelCount;
    private final NativeHandle handle;

    private NativeProgram(long handle, int slotCount, int kernelCount) {
        this.handle = new NativeHandle(this, "program", handle, NativeProgram::release0);
        this.slotCount = slotCount;
        this.kernelCount = kernelCount;
    }

    /** A builder of a program over {@code slotCount} slots on {@code device}. */
    public static Builder builder(NativeDevice device, int slotCount) {
        return new Builder(device, slotCount);
    }

    /**
     * Collects invocations in Java and creates the native program only in {@link #build()}, so an abandoned
     * builder leaves nothing native behind. Owner-only, not thread-safe.
     */
    public static final class Builder {
        private record Invocation(Pipeline pipeline, ProgramArgs args) {}

        private final NativeDevice device;
        private final int slotCount;
        private final List<Invocation> invocations = new ArrayList<>();

        private Builder(NativeDevice device, int slotCount) {
            this.device = Objects.requireNonNull(device, "device");
            if (slotCount < 0) {
                throw new IllegalArgumentException("slot count must be >= 0, got " + slotCount);
            }
            this.slotCount = slotCount;
        }

        /** Appends an invocation; the kinds and slots are checked by {@link #build()}, sizes at each encode. */
        public Builder kernel(Pipeline pipeline, ProgramArgs args) {
            Objects.requireNonNull(pipeline, "pipeline");
            Objects.requireNonNull(args, "args");
            if (args.count() != pipeline.argCount()) {
                throw new IllegalArgumentException("program kernel " + invocations.size() + " ("
                        + pipeline.function() + ") takes " + pipeline.argCount() + " arguments, got " + args.count());
            }
            invocations.add(new Invocation(pipeline, args));
            return this;
        }

        public int kernelCount() {
            return invocations.size();
        }

        /**
         * Creates and seals the native program (it retains the pipelines: they may be closed afterwards).
         * Throws {@link NativeException} naming the invocation, kernel and argument of a wrong kind or slot.
         */
        public NativeProgram build() {
            long h = create0(device.handle(), slotCount);
            try {
                for (Invocation inv : invocations) {
                    ProgramArgs a = inv.args();
                    addKernel0(h, inv.pipeline().handle(), a.count(), a.kinds, a.slots, a.ints, a.floats);
                }
                seal0(h);
            } catch (RuntimeException | Error e) {
                release0(h);
                throw e;
            }
            return new NativeProgram(h, slotCount, invocations.size());
        }
    }

    public int slotCount() {
        return slotCount;
    }

    public int kernelCount() {
        return kernelCount;
    }

    long handle() {
        return handle.get();
    }

    public boolean isClosed() {
        return handle.isClosed();
    }

    /** Idempotent; exactly one caller drops the native program. */
    @Override
    public void close() {
        handle.close();
    }

    static {
        NativeLibraryLoader.ensureLoaded();
    }

    private static native long create0(long device, int slotCount);

    private static native void addKernel0(long program, long pipeline, int count, int[] kinds, int[] slots,
                                          long[] ints, double[] floats);

    private static native void seal0(long program);

    private static native void release0(long program);

    /** mps_stream_encode_program: called by {@link NativeStream#encodeProgram} (jni/native_program.c). */
    static native void encode0(long stream, long program, long[] slotBuffers);
}
