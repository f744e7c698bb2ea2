package dev.mpsactors.model;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.InferenceProtocol.Embedding;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.OutputSpec;
import dev.mpsactors.protocol.StreamWork;
import java.util.List;
import java.util.Map;

/**
 * Encoders of every {@link Family} as a {@link ModelEngine}: weights uploaded once ({@link BertDeviceWeights}), one
 * {@link BertProgram} per batch shape in the PACKED layout (slot 0 the weights, slot 1 one request buffer
 * with inputs, scratch and outputs).
 */
public final class BertEngine implements ModelEngine {
    private final BertConfig config;
    private final BertDeviceWeights weights;

    private BertEngine(BertConfig config, BertDeviceWeights weights) {
        this.config = config;
        this.weights = weights;
    }

    public static BertEngine upload(NativeDevice device, BertWeights weights) {
        return upload(device, weights, TensorStorage.FP32);
    }

    /** Weights, activations and outputs stored as {@code storage} (16-bit needs the cuda backend). */
    public static BertEngine upload(NativeDevice device, BertWeights weights, TensorStorage storage) {
        return new BertEngine(weights.config(), BertDeviceWeights.upload(device, weights, storage));
    }

    @Override
    public String description() {
        return config.modelType() + (weights.hasHead() ? "+sequence-classification(" + weights.numLabels()
                + " labels)" : "") + " hidden=" + config.hiddenSize() + " layers=" + config.numHiddenLayers()
                + " heads=" + config.numAttentionHeads() + " intermediate=" + config.intermediateSize() + " vocab="
                + config.vocabSize() + " max_position_embeddings=" + config.maxPositionEmbeddings();
    }

    public BertConfig config() {
        return config;
    }

    @Override
    public int maxSequenceLength() {
        return config.maxSequenceLength();
    }

    @Override
    public List<String> requiredFunctions() {
        return BertProgram.functions(weights);
    }

    /** Whether the checkpoint has a sequence-classification head (logits are offered). */
    public boolean hasHead() {
        return weights.hasHead();
    }

    @Override
    public String validate(InferenceInputs in) {
        int[][] ids = in.inputIds();
        if (ids.length == 0) {
            return "input_ids has no sequence";
        }
        if (ids[0] == null || ids[0].length == 0) {
            return "input_ids[0] is empty: a sequence needs at least one token";
        }
        int length = ids[0].length;
        if (length > config.maxSequenceLength()) {
            return "sequence length " + length + " exceeds the model's limit of " + config.maxSequenceLength()
                    + " tokens (max_position_embeddings " + config.maxPositionEmbeddings() + ")";
        }
        String problem = checkMatrix("input_ids", ids, ids.length, length, config.vocabSize(), "vocab_size");
        if (problem == null && in.attentionMask() != null) {
            problem = checkMatrix("attention_mask", in.attentionMask(), ids.length, length, 2, "0 or 1");
        }
        // families without token types (DistilBERT, MPNet) take none: token_type_ids are ignored, as a
        // tokenizer's pair template may still emit them
        if (problem == null && in.tokenTypeIds() != null && config.family().tokenTypes()) {
            problem = checkMatrix("token_type_ids", in.tokenTypeIds(), ids.length, length, config.typeVocabSize(),
                    "type_vocab_size");
        }
        return problem;
    }

    private static String checkMatrix(String name, int[][] rows, int expectedRows, int length, int bound,
                                      String boundName) {
        if (rows.length != expectedRows) {
            return name + " has " + rows.length + " sequences, input_ids has " + expectedRows;
        }
        for (int r = 0; r < rows.length; r++) {
            if (rows[r] == null || rows[r].length != length) {
                return name + "[" + r + "] has " + (rows[r] == null ? 0 : rows[r].length) + " tokens, expected "
                        + length + " (every sequence of a request has the same length; pad with attention_mask 0)";
            }
            for (int t = 0; t < length; t++) {
                int v = rows[r][t];
                if (v < 0 || v >= bound) {
                    return name + "[" + r + "][" + t + "] is " + v + ", outside [0, " + bound + ") (" + boundName + ")";
                }
            }
        }
        return null;
    }

    @Override
    public OutputSpec defaultOutputs() {
        return weights.hasPooler() ? OutputSpec.HF_DEFAULT : new OutputSpec(true, false, null);
    }

    @Override
    public String validateOutputs(OutputSpec outputs) {
        if (outputs.poolerOutput() && !weights.hasPooler()) {
            return "pooler_output is not offered: the checkpoint has no pooler (pooler.dense.weight and "
                    + "pooler.dense.bias are absent); ask for last_hidden_state or an embedding";
        }
        if (outputs.logits() && !weights.hasHead()) {
            return "logits are not offered: the checkpoint has no sequence-classification head (no "
                    + BertWeights.storedHeadName(config.family(), BertWeights.HEAD_OUT_WEIGHT) + ")";
        }
        return null;
    }

    @Override
    public ShapeProgram compile(Map<String, Pipeline> pipelines, int batch, int seq, Embedding embedding) {
        BertProgram program = BertProgram.compile(weights, BertProgram.Pipelines.from(pipelines, weights.storage()), batch, seq,
                BertProgram.Layout.PACKED, embedding);
        return new BertShape(program);
    }

    private final class BertShape implements ShapeProgram {
        private final BertProgram program;

        BertShape(BertProgram program) {
            this.program = program;
        }

        @Override
        public int batch() {
            return program.batch();
        }

        @Override
        public int seq() {
            return program.seq();
        }

        @Override
        public long bufferBytes() {
            return program.slotBytes(1);
        }

        private DeviceBuffer[] slots(DeviceBuffer buffer) {
            return new DeviceBuffer[] {weights.buffer(), buffer};
        }

        @Override
        public void writeInputs(DeviceBuffer buffer, List<InferenceInputs> requests) {
            int rows = program.batch(), seq = program.seq();
            int[][] ids = new int[rows][seq];
            int[][] mask = new int[rows][seq];
            int[][] types = new int[rows][seq];
            int pad = config.family().paddingOffsetPositions() ? config.padTokenId() : 0;
            if (pad != 0) {
                for (int[] r : ids) {
                    java.util.Arrays.fill(r, pad);
                }
            }
            int row = 0;
            for (InferenceInputs in : requests) {
                for (int s = 0; s < in.inputIds().length; s++, row++) {
                    int length = in.inputIds()[s].length;
                    System.arraycopy(in.inputIds()[s], 0, ids[row], 0, length);
                    for (int t = 0; t < length; t++) {
                        mask[row][t] = in.attentionMask() == null ? 1 : in.attentionMask()[s][t];
                    }
                    if (in.tokenTypeIds() != null && config.family().tokenTypes()) {
                        System.arraycopy(in.tokenTypeIds()[s], 0, types[row], 0, length);
                    }
                    // Positions past the request's own length are bucket padding: the padding id, masked out.
                }
            }
            program.writeInputs(slots(buffer), ids, mask, types);
        }

        @Override
        public StreamWork work(DeviceBuffer buffer) {
            return new StreamWork.ProgramCall(program.program(), slots(buffer));
        }

        /** The OUTPUT region holds last_hidden_state [batch][seq][h], then pooler_output and the embedding [batch][h]. */
        @Override
        public Outputs readOutputs(DeviceBuffer buffer, boolean lastHiddenState, boolean poolerOutput, boolean embedding,
                                   boolean logits) {
            int h = config.hiddenSize(), seq = program.seq(), rows = program.batch();
            long base = program.offset(BertProgram.Region.OUTPUT);
            float[] hidden = lastHiddenState ? new float[Math.toIntExact((long) rows * seq * h)] : null;
            float[] pooled = poolerOutput ? new float[rows * h] : null;
            float[] embedded = embedding ? new float[rows * h] : null;
            int labels = program.numLabels();
            float[] scored = logits ? new float[rows * labels] : null;
            if (hidden != null) {
                program.storage().read(buffer, base, hidden);
            }
            if (pooled != null) {
                program.storage().read(buffer, base + program.outputOffset(BertProgram.Output.POOLER_OUTPUT), pooled);
            }
            if (embedded != null) {
                program.storage().read(buffer, base + program.outputOffset(BertProgram.Output.EMBEDDING), embedded);
            }
            if (scored != null) {
                program.storage().read(buffer, base + program.outputOffset(BertProgram.Output.LOGITS), scored);
            }
            return new Outputs() {
                @Override
                public float[][] lastHiddenState(int row, int length) {
                    float[][] out = new float[length][];
                    for (int t = 0; t < length; t++) {
                        int from = (row * seq + t) * h;
                        out[t] = java.util.Arrays.copyOfRange(hidden, from, from + h);
                    }
                    return out;
                }

                @Override
                public float[] poolerOutput(int row) {
                    return java.util.Arrays.copyOfRange(pooled, row * h, row * h + h);
                }

                @Override
                public float[] embedding(int row) {
                    return java.util.Arrays.copyOfRange(embedded, row * h, row * h + h);
                }

                @Override
                public float[] logits(int row) {
                    return java.util.Arrays.copyOfRange(scored, row * labels, row * labels + labels);
                }
            };
        }

        @Override
        public void close() {
            program.close();
        }
    }

    @Override
    public void close() {
        weights.close();
    }
}
