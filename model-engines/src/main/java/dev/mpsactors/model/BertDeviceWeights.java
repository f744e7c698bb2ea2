package dev.mpsactors.model;

import dev.mpsactors.nativemps.BuiltinKernels;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.NativeDevice;
import java.util.Objects;

/**
 * A BERT encoder's weights in device memory, uploaded once and shared read-only by every request and
 * every stream: one buffer, bound to slot 0 of each {@link BertProgram}. Owner: the model actor, which
 * closes it after its programs' last encode (pending commands keep the buffer alive by themselves).
 *
 * <p>Layout (values in the {@link TensorStorage}, fp32 or 16-bit; each tensor starting on a 64-byte
 * boundary, in this order): word, position and
 * token-type embeddings, embedding LayerNorm gamma and beta; per layer: the fused QKV weight [3H, H]
 * (query rows, then key rows, then value rows, so one GEMM with trans_b yields the [tokens, 3H] rows
 * Q ‖ K ‖ V) and its bias [3H], attention output dense [H, H] + bias, its LayerNorm gamma + beta,
 * intermediate dense [I, H] + bias, output dense [H, I] + bias, its LayerNorm gamma + beta; then the
 * pooler dense [H, H] + bias (when the checkpoint has it); MPNet's relative attention bias [buckets, heads]
 * and its int32 bucket of every relative position −(S−1)..S−1 (S the longest sequence); the head's dense
 * [H, H] + bias and output [labels, H] + bias (when the checkpoint has a head). Families without token types
 * leave that table out. Linear weights keep PyTorch's [out, in] layout, except on the cpu backend in fp32, where
 * each layer's four Linear weights (QKV, attention output, intermediate, output) are stored once in the
 * panel layout of the {@code gemm_packed} kernel ({@link BuiltinKernels#packWeights}): that kernel then reads
 * them without packing them again on every call, as a BLAS sgemm would ({@link #packedLinears()}).
 */
public final class BertDeviceWeights implements AutoCloseable {
    /** Byte offsets of one layer's tensors in the weights buffer. */
    record LayerOffsets(long qkvWeight, long qkvBias, long attnOutWeight, long attnOutBias, long attnLnGamma,
                        long attnLnBeta, long interWeight, long interBias, long outWeight, long outBias,
                        long outLnGamma, long outLnBeta) {}

    /** Floats between tensors are rounded up to this many bytes, so every tensor starts cache-aligned. */
    private static final long ALIGN = 64;

    private final BertConfig config;
    private final TensorStorage storage;
    private final DeviceBuffer buffer;
    private final boolean packedLinears;
    final long wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings, embLnGamma, embLnBeta;
    final LayerOffsets[] layers;
    /** -1 when the checkpoint has no pooler. */
    final long poolerWeight, poolerBias;
    /** -1 unless the family has a relative attention bias (MPNet). */
    final long relativeBiasTable, relativeBuckets;
    /** -1 without a head (headDense*: also for BERT, whose head reads the pooler). */
    final long headDenseWeight, headDenseBias, headOutWeight, headOutBias;
    final int numLabels;

    private BertDeviceWeights(BertConfig config, TensorStorage storage, DeviceBuffer buffer, boolean packedLinears,
                              long[] offsets, LayerOffsets[] layers) {
        this.config = config;
        this.storage = storage;
        this.buffer = buffer;
        this.packedLinears = packedLinears;
        this.wordEmbeddings = offsets[0];
        this.positionEmbeddings = offsets[1];
        this.tokenTypeEmbeddings = offsets[2];
        this.embLnGamma = offsets[3];
        this.embLnBeta = offsets[4];
        this.poolerWeight = offsets[5];
        this.poolerBias = offsets[6];
        this.relativeBiasTable = offsets[7];
        this.relativeBuckets = offsets[8];
        this.headDenseWeight = offsets[9];
        this.headDenseBias = offsets[10];
        this.headOutWeight = offsets[11];
        this.headOutBias = offsets[12];
        this.numLabels = (int) offsets[13];
        this.layers = layers;
    }

    /** {@link #upload(NativeDevice, BertWeights, TensorStorage)} in fp32. */
    public static BertDeviceWeights upload(NativeDevice device, BertWeights weights) {
        return upload(device, weights, TensorStorage.FP32);
    }

    /** Allocates one device buffer and copies every tensor into it (QKV fused here), stored as {@code storage}. */
    public static BertDeviceWeights upload(NativeDevice device, BertWeights weights, TensorStorage storage) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(storage, "storage");
        BertConfig c = weights.config();
        long h = c.hiddenSize(), inter = c.intermediateSize();
        // The cpu backend's gemm_packed reads Linear weights packed once, here; other backends keep [out, in].
        boolean packed = storage == TensorStorage.FP32 && "cpu".equals(device.info().backend());
        Cursor at = new Cursor(storage.bytes());
        long[] offsets = new long[14];
        java.util.Arrays.fill(offsets, -1);
        offsets[0] = at.take((long) c.vocabSize() * h);
        offsets[1] = at.take((long) c.maxPositionEmbeddings() * h);
        offsets[2] = c.family().tokenTypes() ? at.take((long) c.typeVocabSize() * h) : -1;
        offsets[3] = at.take(h);
        offsets[4] = at.take(h);
        LayerOffsets[] layers = new LayerOffsets[c.numHiddenLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new LayerOffsets(at.take(linear(packed, 3 * h, h)), at.take(3 * h),
                    at.take(linear(packed, h, h)), at.take(h), at.take(h), at.take(h),
                    at.take(linear(packed, inter, h)), at.take(inter), at.take(linear(packed, h, inter)), at.take(h),
                    at.take(h), at.take(h));
        }
        boolean pooler = weights.hasPooler();
        offsets[5] = pooler ? at.take(h * h) : -1;
        offsets[6] = pooler ? at.take(h) : -1;
        int[] buckets = null;
        if (c.family().relativeAttentionBias()) {
            offsets[7] = at.take((long) c.relativeAttentionBuckets() * c.numAttentionHeads());
            int longest = c.maxSequenceLength();
            buckets = new int[2 * longest - 1];
            for (int d = 0; d < buckets.length; d++) {
                buckets[d] = BertConfig.relativeBucket(d - (longest - 1));
            }
            offsets[8] = at.takeBytes(4L * buckets.length);
        }
        int labels = weights.numLabels();
        offsets[13] = labels;
        if (weights.hasHead()) {
            if (c.family().head() != Family.Head.POOLER_CLASSIFIER) {
                offsets[9] = at.take(h * h);
                offsets[10] = at.take(h);
            }
            offsets[11] = at.take((long) labels * h);
            offsets[12] = at.take(labels);
        }

        DeviceBuffer buffer = device.allocate(at.bytes);
        try {
            storage.write(buffer, offsets[0], weights.values("embeddings.word_embeddings.weight"));
            storage.write(buffer, offsets[1], weights.values("embeddings.position_embeddings.weight"));
            if (offsets[2] >= 0) {
                storage.write(buffer, offsets[2], weights.values("embeddings.token_type_embeddings.weight"));
            }
            storage.write(buffer, offsets[3], weights.values("embeddings.LayerNorm.weight"));
            storage.write(buffer, offsets[4], weights.values("embeddings.LayerNorm.bias"));
            for (int l = 0; l < layers.length; l++) {
                LayerOffsets o = layers[l];
                storage.write(buffer, o.qkvWeight(), pack(packed, concat(weights.layer(l, "attention.self.query.weight"),
                        weights.layer(l, "attention.self.key.weight"), weights.layer(l, "attention.self.value.weight")),
                        3 * h, h));
                storage.write(buffer, o.qkvBias(), concat(weights.layer(l, "attention.self.query.bias"),
                        weights.layer(l, "attention.self.key.bias"), weights.layer(l, "attention.self.value.bias")));
                storage.write(buffer, o.attnOutWeight(), pack(packed, weights.layer(l, "attention.output.dense.weight"),
                        h, h));
                storage.write(buffer, o.attnOutBias(), weights.layer(l, "attention.output.dense.bias"));
                storage.write(buffer, o.attnLnGamma(), weights.layer(l, "attention.output.LayerNorm.weight"));
                storage.write(buffer, o.attnLnBeta(), weights.layer(l, "attention.output.LayerNorm.bias"));
                storage.write(buffer, o.interWeight(), pack(packed, weights.layer(l, "intermediate.dense.weight"), inter,
                        h));
                storage.write(buffer, o.interBias(), weights.layer(l, "intermediate.dense.bias"));
                storage.write(buffer, o.outWeight(), pack(packed, weights.layer(l, "output.dense.weight"), h, inter));
                storage.write(buffer, o.outBias(), weights.layer(l, "output.dense.bias"));
                storage.write(buffer, o.outLnGamma(), weights.layer(l, "output.LayerNorm.weight"));
                storage.write(buffer, o.outLnBeta(), weights.layer(l, "output.LayerNorm.bias"));
            }
            if (pooler) {
                storage.write(buffer, offsets[5], weights.values(BertWeights.POOLER_WEIGHT));
                storage.write(buffer, offsets[6], weights.values(BertWeights.POOLER_BIAS));
            }
            if (buckets != null) {
                storage.write(buffer, offsets[7], weights.values(BertWeights.RELATIVE_ATTENTION_BIAS));
                buffer.write(offsets[8], buckets);
            }
            if (offsets[9] >= 0) {
                storage.write(buffer, offsets[9], weights.values(BertWeights.HEAD_DENSE_WEIGHT));
                storage.write(buffer, offsets[10], weights.values(BertWeights.HEAD_DENSE_BIAS));
            }
            if (offsets[11] >= 0) {
                storage.write(buffer, offsets[11], weights.values(BertWeights.HEAD_OUT_WEIGHT));
                storage.write(buffer, offsets[12], weights.values(BertWeights.HEAD_OUT_BIAS));
            }
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
        return new BertDeviceWeights(c, storage, buffer, packed, offsets, layers);
    }

    /** Values a Linear weight [out, in] takes: packed, its gemm_packed panels (padded to 16 outputs). */
    private static long linear(boolean packed, long out, long in) {
        return packed ? BuiltinKernels.packedFloats(out, in) : out * in;
    }

    private static float[] pack(boolean packed, float[] w, long out, long in) {
        return packed ? BuiltinKernels.packWeights(w, Math.toIntExact(out), Math.toIntExact(in)) : w;
    }

    /** Hands out aligned byte ranges of a growing layout. */
    private static final class Cursor {
        private final int valueBytes;
        long bytes;

        Cursor(int valueBytes) {
            this.valueBytes = valueBytes;
        }

        long take(long values) {
            return takeBytes(valueBytes * values);
        }

        long takeBytes(long n) {
            long at = bytes;
            bytes += (n + ALIGN - 1) / ALIGN * ALIGN;
            return at;
        }
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) {
            n += p.length;
        }
        float[] out = new float[n];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    public BertConfig config() {
        return config;
    }

    /** How the weights (and so every program's activations and outputs) are stored. */
    public TensorStorage storage() {
        return storage;
    }

    /** The buffer to bind to slot 0 ({@link BertProgram.Region#WEIGHTS}) of every program compiled from these weights. */
    public DeviceBuffer buffer() {
        return buffer;
    }

    public long bytes() {
        return buffer.size();
    }

    /**
     * Whether each layer's four Linear weights are stored packed for {@code gemm_packed} (cpu backend, fp32):
     * programs over these weights then run that kernel for them.
     */
    public boolean packedLinears() {
        return packedLinears;
    }

    /** Whether the head was uploaded (the checkpoint has it): logits need it. */
    public boolean hasHead() {
        return headOutWeight >= 0;
    }

    /** The head's number of labels (0 without a head). */
    public int numLabels() {
        return numLabels;
    }

    /** Whether the pooler was uploaded (the checkpoint has it): pooler_output needs it. */
    public boolean hasPooler() {
        return poolerWeight >= 0;
    }

    public boolean isClosed() {
        return buffer.isClosed();
    }

    /** Idempotent. Work already encoded keeps the memory alive until it completes. */
    @Override
    public void close() {
        buffer.close();
    }
}
