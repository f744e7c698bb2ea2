package dev.mpsactors.model;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.StreamWork;
import java.util.List;

/**
 * What a model actor needs from a model family: input validation, and per batch shape a compiled program
 * that runs over one device buffer. Implementations hold device weights (uploaded once) and are used by
 * their model actor only.
 */
public interface ModelEngine extends AutoCloseable {
    /** A short description for logs and the command line, e.g. "bert hidden=384 layers=6 heads=12". */
    String description();

    /** The longest sequence the model accepts (max_position_embeddings). */
    int maxSequenceLength();

    /** Null when the inputs are acceptable, else what is wrong with them (named, with the offending value). */
    String validate(InferenceInputs inputs);

    /** The pipelines (kernel-cache keys on the "*" library) the engine needs before it can compile. */
    List<String> requiredFunctions();

    /** A compiled program for {@code batch} sequences of {@code seq} tokens, given the pipelines by function name. */
    ShapeProgram compile(java.util.Map<String, Pipeline> pipelines, int batch, int seq);

    /** One batch shape's program: one device buffer holds its inputs, scratch and outputs. */
    /** A finished batch's outputs on the host, split per row. */
    interface Outputs {
        /** Row {@code row}'s last hidden state, cut back to {@code length} tokens. */
        float[][] lastHiddenState(int row, int length);

        /** Whether the model computes pooler_output; {@link #poolerOutput} is refused when it does not. */
        boolean hasPoolerOutput();

        /** Row {@code row}'s pooler_output; throws {@link UnsupportedOperationException} without a pooler. */
        float[] poolerOutput(int row);
    }

    interface ShapeProgram extends AutoCloseable {
        int batch();

        int seq();

        long bufferBytes();

        /**
         * Writes the requests' sequences, one after another, padded to {@link #seq()} tokens (padding masked
         * out) and to {@link #batch()} rows (empty rows fully masked).
         */
        void writeInputs(DeviceBuffer buffer, List<InferenceInputs> requests);

        /** The stream work that runs the whole forward pass over {@code buffer}: one native call. */
        StreamWork work(DeviceBuffer buffer);

        /** Reads every row's outputs at once (one native read per batch), after the work's point completed. */
        Outputs readOutputs(DeviceBuffer buffer);

        @Override
        void close();
    }

    @Override
    void close();
}
