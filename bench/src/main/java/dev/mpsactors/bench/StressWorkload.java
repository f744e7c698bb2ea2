package dev.mpsactors.bench;

import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import java.util.List;

/**
 * What the thread-based baselines run: per client, a request both as one whole encode (what {@code raw}
 * commits) and as individual kernels (what {@code locked} submits one by one, LayerNorms marked).
 */
interface StressWorkload extends AutoCloseable {
    /** One client's request state: its own buffers, never shared with another client. */
    interface Client extends AutoCloseable {
        /** The whole request in as few native calls as the workload allows (one program for BERT). */
        void encodeWhole(NativeStream stream);

        /** The request as individual kernels in order. */
        List<KernelStep> steps();

        @Override
        void close();
    }

    Client client(NativeDevice device, int id);

    @Override
    void close();
}
