package dev.mpsactors.model;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.BuiltinKernels.Strides;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeException;
import dev.mpsactors.nativemps.NativeProgram;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.nativemps.ProgramArgs;
import dev.mpsactors.nativemps.ProgramArgs.Operand;
import dev.mpsactors.nativemps.ProgramArgs.Ref;
import dev.mpsactors.protocol.InferenceProtocol;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A BERT forward pass (embeddings, encoder layers, pooler) for one batch shape, compiled once into a
 * {@link NativeProgram}: encoding a request is one {@link NativeStream#encodeProgram} call. Immutable
 * after compile; any number of streams may encode it at once, each binding its own request buffers.
 *
 * <p><b>Regions.</b> A request's memory is divided into regions (B = batch, L = seq, H = hidden,
 * I = intermediate, nh = heads, BL = B·L; fp32 unless noted):
 * <ul>
 *   <li>{@code WEIGHTS}: the {@link BertDeviceWeights} buffer, shared by every request;
 *   <li>{@code INPUT_IDS}, {@code TOKEN_TYPE_IDS}, {@code POSITION_IDS}: int32 [BL] (positions 0..L-1 per row);
 *   <li>{@code ATTENTION_MASK}: additive [B, L]: 0 for a token, -3.4028234663852886e38
 *       (finfo(float32).min, as Hugging Face uses) for padding;
 *   <li>{@code SCRATCH}: activations, by float offset: tmp [BL, H] at 0; qkv [BL, 3H] at BL·H;
 *       scores [B, nh, L, L] at 4·BL·H; ctx [BL, H] after the scores; ffn [BL, I] at BL·H, overlapping
 *       qkv/scores/ctx, which are dead once the attention output is computed;
 *   <li>{@code OUTPUT}: last_hidden_state [B, L, H] at 0 (it is also the running hidden state, updated
 *       in place layer by layer, so no final copy), then pooler_output [B, H] when the checkpoint has a
 *       pooler, then the pooled sentence embedding [B, H] when the program computes one
 *       ({@link #outputOffset(Output)}).
 * </ul>
 * <b>Layouts.</b> {@link Layout#SLOT_PER_REGION}: slot i holds region i (ordinal order) at offset 0, one
 * buffer each. {@link Layout#PACKED}: slot 0 = weights, slot 1 = one request buffer holding the other
 * regions one after another (64-byte aligned) at {@link #offset(Region)}. Slot 0 is always the weights.
 *
 * <p><b>Per layer</b> (each Linear layer a {@code gemm}, or on the cpu backend a {@link #GEMM_PACKED} over the
 * weights packed at upload): qkv = x·Wqkvᵀ + b (one GEMM); scores = Q·Kᵀ/√d as a two-level batched GEMM (outer =
 * sequence, inner = head, strided inside the qkv rows); masked softmax; ctx = P·V written head by head into
 * [BL, H] (with 16-bit storage and head sizes 32, 64, 128 one {@link #ATTENTION16} kernel computes ctx from the
 * qkv rows instead, adding their bias as it reads them (the qkv GEMM then runs without one), the scores never
 * written); tmp = LayerNorm(ctx·Woᵀ + bo + x) (the GEMM without bias, then bias_layernorm: bias, residual
 * and LayerNorm in one pass); ffn = GELU(tmp·W1ᵀ + b1) (GEMM epilogue); x = LayerNorm(ffn·W2ᵀ + b2 + tmp)
 * (likewise). Pooler: tanh(x[b, 0, :]·Wpᵀ + bp), reading each sequence's first
 * token with lda = L·H. Embedding: the {@code pool} kernel over last_hidden_state, masked by the attention mask.
 */
public final class BertProgram implements AutoCloseable {
    /** HF's additive mask value: torch.finfo(torch.float32).min. */
    public static final float MASKED = -3.4028234663852886e38f;

    /** The built-in kernels the program uses (cache keys on the "*" library). */
    public static final List<String> FUNCTIONS = List.of("gemm", "layernorm", "softmax", "embedding", "pool",
            "bias_layernorm");

    /** An activation in its own pass: gelu_new and relu intermediates, DistilBERT's head. */
    public static final String ACTIVATION = "activation";

    /** MPNet's relative position bias, added to the attention scores. */
    public static final String REL_BIAS = "rel_bias";

    /**
     * The cpu backend's Linear layer over weights packed once at upload ({@link BertDeviceWeights#packedLinears()}):
     * the four Linear layers of each encoder layer run it instead of {@code gemm}.
     */
    public static final String GEMM_PACKED = "gemm_packed";

    /** The fused attention kernel (16-bit storage only): the attention scores never leave the chip. */
    public static final String ATTENTION16 = "attention16";

    /** Head sizes {@link #ATTENTION16} runs; other sizes take the GEMM, softmax, GEMM path. */
    private static final java.util.Set<Long> FUSED_HEAD_DIMS = java.util.Set.of(32L, 64L, 128L);

    /**
     * The kernels a BERT program of this storage runs ({@link #FUNCTIONS}, or their 16-bit variants, and
     * {@link #ATTENTION16} with 16-bit storage).
     */
    public static List<String> functions(TensorStorage storage) {
        List<String> names = new java.util.ArrayList<>(FUNCTIONS.stream().map(storage::kernel).toList());
        if (storage != TensorStorage.FP32) {
            names.add(ATTENTION16);
        }
        return List.copyOf(names);
    }

    /**
     * The kernels a program over {@code weights} runs: {@link #functions(TensorStorage)}, plus
     * {@link #ACTIVATION} where the intermediate activation is not the erf GELU or the head is DistilBERT's,
     * and {@link #REL_BIAS} for MPNet.
     */
    public static List<String> functions(BertDeviceWeights weights) {
        List<String> names = new java.util.ArrayList<>(functions(weights.storage()));
        if (needsActivation(weights)) {
            names.add(weights.storage().kernel(ACTIVATION));
        }
        if (weights.config().family().relativeAttentionBias()) {
            names.add(weights.storage().kernel(REL_BIAS));
        }
        if (weights.packedLinears()) {
            names.add(GEMM_PACKED);
        }
        return List.copyOf(names);
    }

    private static boolean needsActivation(BertDeviceWeights w) {
        return w.config().activationCode() != BuiltinKernels.ACT_GELU
                || (w.hasHead() && w.config().family().head() == Family.Head.DENSE_RELU);
    }

    public enum Region { WEIGHTS, INPUT_IDS, TOKEN_TYPE_IDS, POSITION_IDS, ATTENTION_MASK, SCRATCH, OUTPUT }

    public enum Layout { SLOT_PER_REGION, PACKED }

    /** The parts of the OUTPUT region. */
    public enum Output { LAST_HIDDEN_STATE, POOLER_OUTPUT, EMBEDDING, LOGITS }

    /**
     * The pipelines a program runs; the program retains them natively, so callers may close theirs.
     * {@code attention} (null: none) is {@link #ATTENTION16}, which replaces the attention's two GEMMs and softmax.
     */
    public record Pipelines(Pipeline gemm, Pipeline layerNorm, Pipeline softmax, Pipeline embedding, Pipeline pool,
                            Pipeline biasLayerNorm, Pipeline attention, Pipeline activation, Pipeline relBias,
                            Pipeline gemmPacked) {
        public Pipelines(Pipeline gemm, Pipeline layerNorm, Pipeline softmax, Pipeline embedding, Pipeline pool,
                         Pipeline biasLayerNorm) {
            this(gemm, layerNorm, softmax, embedding, pool, biasLayerNorm, null, null, null, null);
        }

        public Pipelines(Pipeline gemm, Pipeline layerNorm, Pipeline softmax, Pipeline embedding, Pipeline pool,
                         Pipeline biasLayerNorm, Pipeline attention) {
            this(gemm, layerNorm, softmax, embedding, pool, biasLayerNorm, attention, null, null, null);
        }

        public Pipelines {
            Objects.requireNonNull(biasLayerNorm, "biasLayerNorm");
            Objects.requireNonNull(gemm, "gemm");
            Objects.requireNonNull(layerNorm, "layerNorm");
            Objects.requireNonNull(softmax, "softmax");
            Objects.requireNonNull(embedding, "embedding");
            Objects.requireNonNull(pool, "pool");
        }

        /** Closes the caller's handles (a compiled program keeps its own). */
        public void close() {
            for (Pipeline p : List.of(gemm, layerNorm, softmax, embedding, pool, biasLayerNorm)) {
                p.close();
            }
            for (Pipeline p : java.util.Arrays.asList(attention, activation, relBias, gemmPacked)) {
                if (p != null) {
                    p.close();
                }
            }
        }

        /** From pipelines keyed by function name ({@link #FUNCTIONS}). */
        public static Pipelines from(Map<String, Pipeline> byFunction) {
            return from(byFunction, TensorStorage.FP32);
        }

        /** From pipelines keyed by function name ({@link #functions(TensorStorage)} of {@code storage}). */
        public static Pipelines from(Map<String, Pipeline> byFunction, TensorStorage storage) {
            for (String f : functions(storage)) {
                if (!byFunction.containsKey(f)) {
                    throw new IllegalArgumentException("BERT needs the pipeline '" + f + "', got " + byFunction.keySet());
                }
            }
            return new Pipelines(byFunction.get(storage.kernel("gemm")), byFunction.get(storage.kernel("layernorm")),
                    byFunction.get(storage.kernel("softmax")), byFunction.get(storage.kernel("embedding")),
                    byFunction.get(storage.kernel("pool")), byFunction.get(storage.kernel("bias_layernorm")),
                    storage == TensorStorage.FP32 ? null : byFunction.get(ATTENTION16),
                    byFunction.get(storage.kernel(ACTIVATION)), byFunction.get(storage.kernel(REL_BIAS)),
                    byFunction.get(GEMM_PACKED));
        }

        /**
         * New pipelines from a library; the caller closes them (after compiling, if it likes). {@link #GEMM_PACKED}
         * is taken where the library has it (a cpu library of "*"), else left null.
         */
        public static Pipelines from(KernelLibrary library) {
            Pipeline packed;
            try {
                packed = library.pipeline(GEMM_PACKED);
            } catch (NativeException e) {
                packed = null; // a backend without it (cuda, metal): programs there never ask for it
            }
            return new Pipelines(library.pipeline("gemm"), library.pipeline("layernorm"), library.pipeline("softmax"),
                    library.pipeline("embedding"), library.pipeline("pool"), library.pipeline("bias_layernorm"), null,
                    library.pipeline(ACTIVATION), library.pipeline(REL_BIAS), packed);
        }
    }

    /** Adds one Linear layer y[rows, n] = act(x[rows, k] · wᵀ + bias) to the program being built. */
    @FunctionalInterface
    private interface LinearKernel {
        void add(Ref x, long ldx, Ref w, Ref bias, Ref y, long ldy, long rows, long k, long n, int activation);
    }

    /** Validated host-side inputs in device layout: int32 ids, positions, and the additive float mask. */
    public record Inputs(int[] inputIds, int[] tokenTypeIds, int[] positionIds, float[] additiveMask) {}

    private static final long ALIGN = 64;

    private final BertConfig config;
    private final TensorStorage storage;
    private final int batch;
    private final int seq;
    private final Layout layout;
    private final Map<Region, Integer> slotOf = new EnumMap<>(Region.class);
    private final Map<Region, Long> offsetOf = new EnumMap<>(Region.class);
    private final Map<Region, Long> bytesOf = new EnumMap<>(Region.class);
    private final long[] slotBytes;
    private final InferenceProtocol.Embedding embedding;
    private final Map<Output, Long> outputOffsets = new EnumMap<>(Output.class);
    private final int numLabels;
    private final NativeProgram program;

    private BertProgram(BertDeviceWeights weights, Pipelines pipelines, int batch, int seq, Layout layout,
                        InferenceProtocol.Embedding embedding) {
        this.config = weights.config();
        this.storage = weights.storage();
        this.batch = batch;
        this.seq = seq;
        this.layout = layout;
        this.embedding = embedding;
        this.numLabels = weights.numLabels();
        long bl = (long) batch * seq, h = config.hiddenSize(), inter = config.intermediateSize();
        long heads = config.numAttentionHeads();
        long scratchFloats = bl * h + Math.max(3 * bl * h + (long) batch * heads * seq * seq + bl * h, bl * inter);
        bytesOf.put(Region.WEIGHTS, weights.bytes());
        bytesOf.put(Region.INPUT_IDS, 4 * bl);
        bytesOf.put(Region.TOKEN_TYPE_IDS, 4 * bl);
        bytesOf.put(Region.POSITION_IDS, 4 * bl);
        bytesOf.put(Region.ATTENTION_MASK, 4 * bl);
        int vb = storage.bytes();
        bytesOf.put(Region.SCRATCH, vb * scratchFloats);
        long outputValues = bl * h;
        outputOffsets.put(Output.LAST_HIDDEN_STATE, 0L);
        if (weights.hasPooler()) {
            outputOffsets.put(Output.POOLER_OUTPUT, vb * outputValues);
            outputValues += batch * h;
        }
        if (embedding != null) {
            outputOffsets.put(Output.EMBEDDING, vb * outputValues);
            outputValues += batch * h;
        }
        if (weights.hasHead()) {
            outputOffsets.put(Output.LOGITS, vb * outputValues);
            outputValues += (long) batch * weights.numLabels();
        }
        bytesOf.put(Region.OUTPUT, vb * outputValues);
        if (layout == Layout.SLOT_PER_REGION) {
            slotBytes = new long[Region.values().length];
            for (Region r : Region.values()) {
                slotOf.put(r, r.ordinal());
                offsetOf.put(r, 0L);
                slotBytes[r.ordinal()] = bytesOf.get(r);
            }
        } else {
            slotOf.put(Region.WEIGHTS, 0);
            offsetOf.put(Region.WEIGHTS, 0L);
            long at = 0;
            for (Region r : Region.values()) {
                if (r != Region.WEIGHTS) {
                    slotOf.put(r, 1);
                    offsetOf.put(r, at);
                    at += (bytesOf.get(r) + ALIGN - 1) / ALIGN * ALIGN;
                }
            }
            slotBytes = new long[] {weights.bytes(), at};
        }
        this.program = build(weights, pipelines);
    }

    /** The forward pass for {@code batch} sequences of {@code seq} tokens, one buffer per region. */
    public static BertProgram compile(BertDeviceWeights weights, Pipelines pipelines, int batch, int seq) {
        return compile(weights, pipelines, batch, seq, Layout.SLOT_PER_REGION);
    }

    public static BertProgram compile(BertDeviceWeights weights, Pipelines pipelines, int batch, int seq,
                                      Layout layout) {
        return compile(weights, pipelines, batch, seq, layout, null);
    }

    /** A program that also pools the sentence embedding {@code embedding} (null: none) on the device. */
    public static BertProgram compile(BertDeviceWeights weights, Pipelines pipelines, int batch, int seq,
                                      Layout layout, InferenceProtocol.Embedding embedding) {
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(pipelines, "pipelines");
        Objects.requireNonNull(layout, "layout");
        if (weights.isClosed()) {
            throw new IllegalStateException("the device weights are closed");
        }
        BertConfig c = weights.config();
        if (batch < 1) {
            throw new IllegalArgumentException("batch must be >= 1, got " + batch);
        }
        if (seq < 1 || seq > c.maxSequenceLength()) {
            throw new IllegalArgumentException("seq must be in [1, " + c.maxSequenceLength()
                    + " (the longest sequence max_position_embeddings covers)], got " + seq);
        }
        return new BertProgram(weights, pipelines, batch, seq, layout, embedding);
    }

    /** Element {@code index} of a region: ids and the mask are 32-bit, activations and outputs in the storage. */
    private Ref at(Region r, long index) {
        long elementBytes = r == Region.SCRATCH || r == Region.OUTPUT ? storage.bytes() : 4;
        return new Ref(slotOf.get(r), offsetOf.get(r) + elementBytes * index);
    }

    private Ref weight(long byteOffset) {
        return new Ref(slotOf.get(Region.WEIGHTS), offsetOf.get(Region.WEIGHTS) + byteOffset);
    }

    private NativeProgram build(BertDeviceWeights w, Pipelines p) {
        BertConfig c = config;
        long b = batch, l = seq, bl = b * l, h = c.hiddenSize(), inter = c.intermediateSize();
        long heads = c.numAttentionHeads(), d = c.headDim();
        double eps = c.layerNormEps();
        Ref x = at(Region.OUTPUT, 0);
        Ref tmp = at(Region.SCRATCH, 0);
        Ref qkv = at(Region.SCRATCH, bl * h);
        Ref scores = at(Region.SCRATCH, 4 * bl * h);
        Ref ctx = at(Region.SCRATCH, 4 * bl * h + b * heads * l * l);
        Ref ffn = at(Region.SCRATCH, bl * h);
        Ref mask = at(Region.ATTENTION_MASK, 0);

        NativeProgram.Builder program = NativeProgram.builder(w.buffer().device(), slotBytes.length);
        // Embeddings: word + position + token type, then LayerNorm in place.
        program.kernel(p.embedding(), ProgramArgs.embedding(at(Region.INPUT_IDS, 0), weight(w.wordEmbeddings), x, bl,
                h, c.vocabSize(), false));
        program.kernel(p.embedding(), ProgramArgs.embedding(at(Region.POSITION_IDS, 0), weight(w.positionEmbeddings),
                x, bl, h, c.maxPositionEmbeddings(), true));
        if (c.family().tokenTypes()) {
            program.kernel(p.embedding(), ProgramArgs.embedding(at(Region.TOKEN_TYPE_IDS, 0),
                    weight(w.tokenTypeEmbeddings), x, bl, h, c.typeVocabSize(), true));
        }
        boolean relBias = c.family().relativeAttentionBias();
        if (relBias && p.relBias() == null) {
            throw new IllegalArgumentException(c.family().modelType() + " needs the pipeline '" + REL_BIAS + "'");
        }
        int act = c.activationCode();
        if (needsActivation(w) && p.activation() == null) {
            throw new IllegalArgumentException(c.family().modelType() + " with hidden_act " + c.hiddenAct()
                    + " needs the pipeline '" + ACTIVATION + "'");
        }
        program.kernel(p.layerNorm(), ProgramArgs.layerNorm(x, null, weight(w.embLnGamma), weight(w.embLnBeta), x, bl,
                h, eps));
        if (w.packedLinears() && p.gemmPacked() == null) {
            throw new IllegalArgumentException("weights packed for the cpu backend need the pipeline '" + GEMM_PACKED
                    + "'");
        }
        // A Linear layer over the layer weights: gemm_packed where they were packed at upload, else gemm.
        LinearKernel linear = (in, ldIn, wt, bias, out, ldOut, rows, k, n, activation) -> program.kernel(
                w.packedLinears() ? p.gemmPacked() : p.gemm(),
                w.packedLinears() ? ProgramArgs.linearPacked(in, ldIn, wt, bias, out, ldOut, rows, k, n, activation)
                        : ProgramArgs.linear(in, ldIn, wt, bias, out, ldOut, rows, k, n, activation));

        for (BertDeviceWeights.LayerOffsets o : w.layers) {
            // The fused kernel has no additive bias: MPNet takes the GEMM, bias, softmax, GEMM path.
            boolean fused = p.attention() != null && FUSED_HEAD_DIMS.contains(d) && !relBias;
            // The fused attention adds the qkv bias as it reads the rows: the GEMM then needs no epilogue pass.
            linear.add(x, h, weight(o.qkvWeight()), fused ? null : weight(o.qkvBias()), qkv, 3 * h, bl, h, 3 * h,
                    BuiltinKernels.ACT_NONE);
            if (fused) {
                // ctx = softmax(Q K^T / sqrt(d) + mask) V in one kernel, straight from the qkv rows and their bias.
                program.kernel(p.attention(), ProgramArgs.attention(qkv, weight(o.qkvBias()), mask, ctx, b, l, heads, d,
                        1.0 / Math.sqrt(d)));
            } else {
                // scores[s, head] = Q K^T / sqrt(d): sequences outer, heads inner, both strided inside qkv rows.
                program.kernel(p.gemm(), ProgramArgs.gemm(Operand.of(qkv, 3 * h), Operand.of(qkv.plus(storage.bytes() * h), 3 * h).t(),
                        Operand.of(scores, l), null, l, l, d, 1.0 / Math.sqrt(d), 0.0, BuiltinKernels.ACT_NONE, b, heads,
                        new Strides(l * 3 * h, d), new Strides(l * 3 * h, d), new Strides(heads * l * l, l * l)));
                if (relBias) {
                    // buckets[k] is the bucket of relative position k - (S - 1); this program reads from -(L - 1)
                    Ref buckets = weight(w.relativeBuckets + 4L * (c.maxSequenceLength() - l));
                    program.kernel(p.relBias(), ProgramArgs.relBias(scores, weight(w.relativeBiasTable), buckets, b,
                            heads, l, c.relativeAttentionBuckets()));
                }
                program.kernel(p.softmax(), ProgramArgs.softmax(scores, mask, b, heads, l, l, 1.0));
                // ctx[s, :, head] = P V: each head's [L, d] block lands in its columns of the [BL, H] rows.
                program.kernel(p.gemm(), ProgramArgs.gemm(Operand.of(scores, l), Operand.of(qkv.plus(2L * storage.bytes() * h), 3 * h),
                        Operand.of(ctx, h), null, l, d, l, 1.0, 0.0, BuiltinKernels.ACT_NONE, b, heads,
                        new Strides(heads * l * l, l * l), new Strides(l * 3 * h, d), new Strides(l * h, d)));
            }
            // The output projection's bias joins the residual and LayerNorm in one pass (bias_layernorm).
            linear.add(ctx, h, weight(o.attnOutWeight()), null, tmp, h, bl, h, h, BuiltinKernels.ACT_NONE);
            program.kernel(p.biasLayerNorm(), ProgramArgs.biasLayerNorm(tmp, weight(o.attnOutBias()), x,
                    weight(o.attnLnGamma()), weight(o.attnLnBeta()), tmp, bl, h, eps));
            boolean fusedAct = act == BuiltinKernels.ACT_GELU;
            linear.add(tmp, h, weight(o.interWeight()), weight(o.interBias()), ffn, inter, bl, h, inter,
                    fusedAct ? BuiltinKernels.ACT_GELU : BuiltinKernels.ACT_NONE);
            if (!fusedAct) {
                program.kernel(p.activation(), ProgramArgs.activation(ffn, ffn, bl * inter, act));
            }
            linear.add(ffn, inter, weight(o.outWeight()), null, x, h, bl, inter, h, BuiltinKernels.ACT_NONE);
            program.kernel(p.biasLayerNorm(), ProgramArgs.biasLayerNorm(x, weight(o.outBias()), tmp,
                    weight(o.outLnGamma()), weight(o.outLnBeta()), x, bl, h, eps));
        }
        if (w.hasPooler()) {
            // Pooler: row s of A is token 0 of sequence s, hence lda = L·H.
            Ref pooled = outputRef(Output.POOLER_OUTPUT);
            program.kernel(p.gemm(), ProgramArgs.gemm(Operand.of(x, l * h), Operand.of(weight(w.poolerWeight), h).t(),
                    Operand.of(pooled, h), weight(w.poolerBias), b, h, h, 1.0, 0.0, BuiltinKernels.ACT_TANH, 1, 1,
                    Strides.NONE, Strides.NONE, Strides.NONE));
        }
        if (w.hasHead()) {
            // The sequence-classification head on each sequence's first token; only the logits leave the device.
            long labels = w.numLabels();
            Ref logits = outputRef(Output.LOGITS);
            Ref features = tmp; // the first token's features, [B, H]
            if (c.family().head() == Family.Head.POOLER_CLASSIFIER) {
                features = outputRef(Output.POOLER_OUTPUT); // BERT classifies the pooler's output
            } else {
                boolean tanh = c.family().head() == Family.Head.DENSE_TANH;
                program.kernel(p.gemm(), ProgramArgs.gemm(Operand.of(x, l * h), Operand.of(weight(w.headDenseWeight), h).t(),
                        Operand.of(tmp, h), weight(w.headDenseBias), b, h, h, 1.0, 0.0,
                        tanh ? BuiltinKernels.ACT_TANH : BuiltinKernels.ACT_NONE, 1, 1, Strides.NONE, Strides.NONE,
                        Strides.NONE));
                if (!tanh) {
                    program.kernel(p.activation(), ProgramArgs.activation(tmp, tmp, b * h, BuiltinKernels.ACT_RELU));
                }
            }
            program.kernel(p.gemm(), ProgramArgs.linear(features, h, weight(w.headOutWeight), weight(w.headOutBias),
                    logits, labels, b, h, labels, BuiltinKernels.ACT_NONE));
        }
        if (embedding != null) {
            program.kernel(p.pool(), ProgramArgs.pool(x, mask, outputRef(Output.EMBEDDING), b, l, h,
                    embedding.pooling().ordinal(), embedding.normalize()));
        }
        return program.build();
    }

    private Ref outputRef(Output part) {
        return new Ref(slotOf.get(Region.OUTPUT), offsetOf.get(Region.OUTPUT) + outputOffsets.get(part));
    }

    /** Whether the program computes {@code part} (the pooler needs the checkpoint's, the embedding a pooling). */
    public boolean has(Output part) {
        return outputOffsets.containsKey(part);
    }

    /** Byte offset of {@code part} inside the OUTPUT region. */
    public long outputOffset(Output part) {
        Long at = outputOffsets.get(part);
        if (at == null) {
            throw new IllegalStateException("this program does not compute " + part.name().toLowerCase(java.util.Locale.ROOT));
        }
        return at;
    }

    /** The head's logits [batch][labels] (a checkpoint with a sequence-classification head). */
    public float[][] readLogits(DeviceBuffer[] slots) {
        requireBinding(slots);
        DeviceBuffer out = slots[slot(Region.OUTPUT)];
        long base = offset(Region.OUTPUT) + outputOffset(Output.LOGITS);
        int labels = numLabels;
        float[][] result = new float[batch][labels];
        for (int r = 0; r < batch; r++) {
            storage.read(out, base + (long) storage.bytes() * r * labels, result[r]);
        }
        return result;
    }

    /** The head's number of labels (0 without a head). */
    public int numLabels() {
        return numLabels;
    }

    /** The sentence embedding the program pools, or null. */
    public InferenceProtocol.Embedding embedding() {
        return embedding;
    }

    // ------------------------------------------------------------------------------------------------
    // Shape and binding
    // ------------------------------------------------------------------------------------------------

    public BertConfig config() {
        return config;
    }

    public int batch() {
        return batch;
    }

    public int seq() {
        return seq;
    }

    public Layout layout() {
        return layout;
    }

    public TensorStorage storage() {
        return storage;
    }

    public NativeProgram program() {
        return program;
    }

    public int slotCount() {
        return slotBytes.length;
    }

    /** Bytes the buffer bound to {@code slot} must hold at least. */
    public long slotBytes(int slot) {
        return slotBytes[slot];
    }

    public int slot(Region region) {
        return slotOf.get(region);
    }

    /** Byte offset of {@code region} in the buffer bound to its slot. */
    public long offset(Region region) {
        return offsetOf.get(region);
    }

    public long regionBytes(Region region) {
        return bytesOf.get(region);
    }

    /** The four input regions together (ids, token types, positions, mask). */
    public long inputBytes() {
        return regionBytes(Region.INPUT_IDS) + regionBytes(Region.TOKEN_TYPE_IDS) + regionBytes(Region.POSITION_IDS)
                + regionBytes(Region.ATTENTION_MASK);
    }

    public long scratchBytes() {
        return regionBytes(Region.SCRATCH);
    }

    public long outputBytes() {
        return regionBytes(Region.OUTPUT);
    }

    /** A request's own buffers (every slot but the weights), and the full binding for encodeProgram. */
    public final class RequestBuffers implements AutoCloseable {
        private final DeviceBuffer[] slots;

        private RequestBuffers(DeviceBuffer weights, NativeDevice device) {
            slots = new DeviceBuffer[slotBytes.length];
            slots[0] = weights;
            try {
                for (int s = 1; s < slots.length; s++) {
                    slots[s] = device.allocate(slotBytes[s]);
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        /** slot → buffer, slot 0 being the shared weights: pass to {@link NativeStream#encodeProgram}. */
        public DeviceBuffer[] slots() {
            return slots.clone();
        }

        /** Closes the request's buffers (not the weights). */
        @Override
        public void close() {
            for (int s = 1; s < slots.length; s++) {
                if (slots[s] != null) {
                    slots[s].close();
                }
            }
        }
    }

    /** Allocates one request's buffers on the weights' device, bound together with the weights. */
    public RequestBuffers allocate(BertDeviceWeights weights) {
        if (!weights.config().equals(config)) {
            throw new IllegalArgumentException("weights of another model config");
        }
        return new RequestBuffers(weights.buffer(), weights.buffer().device());
    }

    /** Encodes the forward pass over {@code slots} (slot 0 = the weights) in one native call. */
    public void encode(NativeStream stream, DeviceBuffer[] slots) {
        stream.encodeProgram(program, slots);
    }

    // ------------------------------------------------------------------------------------------------
    // Inputs and outputs
    // ------------------------------------------------------------------------------------------------

    /**
     * Checks and converts one batch: {@code inputIds} has {@link #batch()} rows of {@link #seq()} ids in
     * [0, vocab_size); {@code attentionMask} (null: all ones) the same shape with 0/1 values;
     * {@code tokenTypeIds} (null: all zeros) the same shape with ids in [0, type_vocab_size).
     *
     * @throws IllegalArgumentException naming the first problem (which input, row, position and value)
     */
    public Inputs prepareInputs(int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds) {
        requireShape("input_ids", inputIds);
        if (attentionMask != null) {
            requireShape("attention_mask", attentionMask);
        }
        if (tokenTypeIds != null) {
            requireShape("token_type_ids", tokenTypeIds);
        }
        int n = batch * seq;
        int[] ids = new int[n], types = new int[n], positions = new int[n];
        float[] mask = new float[n];
        for (int r = 0; r < batch; r++) {
            for (int t = 0; t < seq; t++) {
                int i = r * seq + t;
                ids[i] = inRange("input_ids", inputIds, r, t, config.vocabSize(), "vocab_size");
                if (tokenTypeIds != null && config.family().tokenTypes()) {
                    types[i] = inRange("token_type_ids", tokenTypeIds, r, t, config.typeVocabSize(),
                            "type_vocab_size");
                }
                if (attentionMask != null) {
                    int m = attentionMask[r][t];
                    if (m != 0 && m != 1) {
                        throw new IllegalArgumentException("attention_mask[" + r + "][" + t + "] is " + m
                                + " but must be 0 or 1");
                    }
                    mask[i] = m == 1 ? 0f : MASKED;
                }
            }
            config.positions(ids, r * seq, seq, positions, r * seq);
        }
        return new Inputs(ids, types, positions, mask);
    }

    private void requireShape(String name, int[][] rows) {
        if (rows == null) {
            throw new IllegalArgumentException(name + " is missing");
        }
        if (rows.length != batch) {
            throw new IllegalArgumentException(name + " has " + rows.length + " sequences, the program runs batch "
                    + batch);
        }
        for (int r = 0; r < rows.length; r++) {
            if (rows[r] == null) {
                throw new IllegalArgumentException(name + "[" + r + "] is missing");
            }
            if (rows[r].length != seq) {
                throw new IllegalArgumentException(name + "[" + r + "] has " + rows[r].length
                        + " tokens, every sequence must have " + seq + " (pad with attention_mask 0)");
            }
        }
    }

    private static int inRange(String name, int[][] rows, int r, int t, int bound, String boundName) {
        int v = rows[r][t];
        if (v < 0 || v >= bound) {
            throw new IllegalArgumentException(name + "[" + r + "][" + t + "] is " + v + ", outside [0, " + bound
                    + ") (" + boundName + ")");
        }
        return v;
    }

    /** Writes validated inputs into the bound buffers (host-visible devices; call before encoding). */
    public void writeInputs(DeviceBuffer[] slots, Inputs inputs) {
        requireBinding(slots);
        slots[slot(Region.INPUT_IDS)].write(offset(Region.INPUT_IDS), inputs.inputIds());
        slots[slot(Region.TOKEN_TYPE_IDS)].write(offset(Region.TOKEN_TYPE_IDS), inputs.tokenTypeIds());
        slots[slot(Region.POSITION_IDS)].write(offset(Region.POSITION_IDS), inputs.positionIds());
        slots[slot(Region.ATTENTION_MASK)].write(offset(Region.ATTENTION_MASK), inputs.additiveMask());
    }

    /** {@link #prepareInputs} then {@link #writeInputs}. */
    public void writeInputs(DeviceBuffer[] slots, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds) {
        writeInputs(slots, prepareInputs(inputIds, attentionMask, tokenTypeIds));
    }

    /** last_hidden_state [batch][seq][hidden], read after the encode's point completed. */
    public float[][][] readLastHiddenState(DeviceBuffer[] slots) {
        requireBinding(slots);
        int h = config.hiddenSize();
        DeviceBuffer out = slots[slot(Region.OUTPUT)];
        long base = offset(Region.OUTPUT);
        float[][][] result = new float[batch][seq][h];
        for (int r = 0; r < batch; r++) {
            for (int t = 0; t < seq; t++) {
                storage.read(out, base + (long) storage.bytes() * ((long) (r * seq + t) * h), result[r][t]);
            }
        }
        return result;
    }

    /** pooler_output [batch][hidden]. */
    public float[][] readPoolerOutput(DeviceBuffer[] slots) {
        return readRows(slots, Output.POOLER_OUTPUT);
    }

    /** The pooled sentence embedding [batch][hidden] (a program compiled with one). */
    public float[][] readEmbedding(DeviceBuffer[] slots) {
        return readRows(slots, Output.EMBEDDING);
    }

    private float[][] readRows(DeviceBuffer[] slots, Output part) {
        requireBinding(slots);
        int h = config.hiddenSize();
        DeviceBuffer out = slots[slot(Region.OUTPUT)];
        long base = offset(Region.OUTPUT) + outputOffset(part);
        float[][] result = new float[batch][h];
        for (int r = 0; r < batch; r++) {
            storage.read(out, base + (long) storage.bytes() * r * h, result[r]);
        }
        return result;
    }

    private void requireBinding(DeviceBuffer[] slots) {
        Objects.requireNonNull(slots, "slots");
        if (slots.length != slotBytes.length) {
            throw new IllegalArgumentException("the program has " + slotBytes.length + " slots, " + slots.length
                    + " buffers were given");
        }
    }

    @Override
    public void close() {
        program.close();
    }
}
