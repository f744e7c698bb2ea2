package dev.mpsactors.model;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.InferenceProtocol.Embedding;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.OutputSpec;
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

    /** The longest sequence the model accepts (what max_position_embeddings covers). */
    int maxSequenceLength();

    /** Null when the inputs are acceptable, else what is wrong with them (named, with the offending value). */
    String validate(InferenceInputs inputs);

    /** The pipelines (kernel-cache keys on the "*" library) the engine needs before it can compile. */
    List<String> requiredFunctions();

    /** Null when the model can produce {@code outputs}, else why not (e.g. a checkpoint without a pooler or head). */
    String validateOutputs(OutputSpec outputs);

    /**
     * What a request that names no outputs gets: Hugging Face's default, last_hidden_state and, where the model
     * has a pooler, pooler_output.
     */
    OutputSpec defaultOutputs();

    /**
     * A compiled program for {@code batch} sequences of {@code seq} tokens, given the pipelines by function
     * name, that also pools {@code embedding} on the device (null: no embedding).
     */
    ShapeProgram compile(java.util.Map<String, Pipeline> pipelines, int batch, int seq, Embedding embedding);

    /** A finished batch's outputs on the host, split per row; only the parts that were read. */
    interface Outputs {
        /** Row {@code row}'s last hidden state, cut back to {@code length} tokens. */
        float[][] lastHiddenState(int row, int length);

        float[] poolerOutput(int row);

        float[] embedding(int row);

        /** Row {@code row}'s sequence-classification logits. */
        float[] logits(int row);
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

        /**
         * Reads the asked parts of every row's outputs (one native read per part and batch), after the work's
         * point completed; nothing else crosses from the device.
         */
        Outputs readOutputs(DeviceBuffer buffer, boolean lastHiddenState, boolean poolerOutput, boolean embedding,
                            boolean logits);

        @Override
        void close();
    }

    @Override
    void close();
}
