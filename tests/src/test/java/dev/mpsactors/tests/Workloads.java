package dev.mpsactors.tests;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.BuiltinKernels.Operand;
import dev.mpsactors.nativemps.BuiltinKernels.Strides;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Buffers and kernel calls shared by the hazard tests. */
final class Workloads {
    private Workloads() {}

    static Pipeline pipeline(MpsRuntime runtime, String function) {
        return Await.result(runtime.kernels().pipeline(KernelKey.of("*", function)));
    }

    static BufferLease randomBuffer(MpsRuntime runtime, Random random, int floats) {
        BufferLease lease = Await.result(runtime.memory().allocate(4L * floats));
        float[] values = new float[floats];
        for (int i = 0; i < floats; i++) {
            values[i] = 0.25f + random.nextFloat();
        }
        lease.buffer().write(0, values);
        return lease;
    }

    /**
     * A long-running job (about a second on one core): {@code repeats} GEMMs of n x n x n over the same
     * operands, expressed as one batched kernel call.
     */
    static final class LongGemm implements AutoCloseable {
        final BufferLease a;
        final BufferLease b;
        final BufferLease c;
        final StreamWork work;
        private final MpsRuntime runtime;

        LongGemm(MpsRuntime runtime, int n, int repeats) {
            this.runtime = runtime;
            Random random = new Random(5);
            a = randomBuffer(runtime, random, n * n);
            b = randomBuffer(runtime, random, n * n);
            c = randomBuffer(runtime, random, n * n);
            work = new StreamWork.KernelCall(pipeline(runtime, "gemm"), BuiltinKernels.gemm(
                    Operand.of(a.buffer(), 0, n), Operand.of(b.buffer(), 0, n), Operand.of(c.buffer(), 0, n), null, 0,
                    n, n, n, 1.0, 0.0, BuiltinKernels.ACT_NONE, repeats, 1, Strides.NONE, Strides.NONE, Strides.NONE));
        }

        @Override
        public void close() {
            for (BufferLease lease : List.of(a, b, c)) {
                runtime.memory().free(lease);
            }
        }
    }

    static List<StreamWork> layerNorms(Pipeline layerNorm, BufferLease x, BufferLease gamma, BufferLease beta,
                                       int rows, int cols, int repeats) {
        List<StreamWork> work = new ArrayList<>();
        for (int i = 0; i < repeats; i++) {
            work.add(new StreamWork.KernelCall(layerNorm, BuiltinKernels.layerNorm(x.buffer(), null, gamma.buffer(),
                    beta.buffer(), x.buffer(), rows, cols, 1e-5)));
        }
        return work;
    }
}
