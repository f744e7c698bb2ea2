package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.KernelArgs;
import dev.mpsactors.nativemps.NativeProgram;
import dev.mpsactors.nativemps.Pipeline;
import java.nio.ByteBuffer;
import java.util.Objects;

/** One unit of work a stream's owner encodes into its open command buffer. */
public sealed interface StreamWork {

    /** Runs a kernel: a pipeline from the kernel library and its positional arguments. */
    record KernelCall(Pipeline pipeline, KernelArgs args) implements StreamWork {
        public KernelCall {
            Objects.requireNonNull(pipeline, "pipeline");
            Objects.requireNonNull(args, "args");
        }
    }

    /**
     * Runs a compiled program (e.g. a whole model's forward pass) over buffers bound to its slots: all its
     * kernels are encoded in one native call, all or none.
     */
    record ProgramCall(NativeProgram program, DeviceBuffer[] slots) implements StreamWork {
        public ProgramCall {
            Objects.requireNonNull(program, "program");
            Objects.requireNonNull(slots, "slots");
            slots = slots.clone();
        }
    }

    /** Copies {@code source.remaining()} bytes of a direct buffer into device memory when it executes. */
    record Upload(ByteBuffer source, DeviceBuffer target, long targetOffset) implements StreamWork {
        public Upload {
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(target, "target");
        }
    }

    /** Copies device memory into {@code target.remaining()} bytes of a direct buffer when it executes. */
    record Download(DeviceBuffer source, long sourceOffset, ByteBuffer target) implements StreamWork {
        public Download {
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(target, "target");
        }
    }

    /** A device-to-device copy. */
    record Copy(DeviceBuffer source, long sourceOffset, DeviceBuffer target, long targetOffset, long bytes)
            implements StreamWork {
        public Copy {
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(target, "target");
        }
    }
}
