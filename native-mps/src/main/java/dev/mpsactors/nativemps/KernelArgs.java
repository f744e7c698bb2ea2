package dev.mpsactors.nativemps;

import java.util.Arrays;
import java.util.Objects;

/**
 * A kernel's positional arguments (buffers with byte offsets, absent optional buffers, ints, floats), in
 * the order its documentation gives (kernels.h for cpu). Built by one owner, then encoded.
 */
public final class KernelArgs {
    static final int NONE = 0;
    static final int BUFFER = 1;
    static final int INT = 2;
    static final int FLOAT = 3;
    /** MPS_MAX_KERNEL_ARGS in mps.h. */
    public static final int MAX_ARGS = 32;

    final int[] kinds = new int[MAX_ARGS];
    final DeviceBuffer[] buffers = new DeviceBuffer[MAX_ARGS];
    final long[] ints = new long[MAX_ARGS];
    final double[] floats = new double[MAX_ARGS];
    int count;

    public KernelArgs buffer(DeviceBuffer buffer) {
        return buffer(buffer, 0);
    }

    public KernelArgs buffer(DeviceBuffer buffer, long byteOffset) {
        Objects.requireNonNull(buffer, "buffer (use none() for an absent optional buffer)");
        if (byteOffset < 0 || byteOffset > buffer.size()) {
            throw new IndexOutOfBoundsException("argument " + count + ": offset " + byteOffset
                    + " outside the buffer's " + buffer.size() + " bytes");
        }
        int i = next();
        kinds[i] = BUFFER;
        buffers[i] = buffer;
        ints[i] = byteOffset;
        return this;
    }

    /** An absent optional buffer (e.g. no bias, no mask, no residual). */
    public KernelArgs none() {
        kinds[next()] = NONE;
        return this;
    }

    public KernelArgs i(long value) {
        int i = next();
        kinds[i] = INT;
        ints[i] = value;
        return this;
    }

    public KernelArgs f(double value) {
        int i = next();
        kinds[i] = FLOAT;
        floats[i] = value;
        return this;
    }

    public int count() {
        return count;
    }

    /** Native handles of the buffer arguments (0 elsewhere); throws if one was closed. */
    long[] bufferHandles() {
        long[] handles = new long[count];
        for (int i = 0; i < count; i++) {
            if (kinds[i] == BUFFER) {
                handles[i] = buffers[i].handle();
            }
        }
        return handles;
    }

    private int next() {
        if (count == MAX_ARGS) {
            throw new IllegalArgumentException("a kernel takes at most " + MAX_ARGS + " arguments");
        }
        return count++;
    }

    @Override
    public String toString() {
        return "KernelArgs" + Arrays.toString(Arrays.copyOf(kinds, count));
    }
}
