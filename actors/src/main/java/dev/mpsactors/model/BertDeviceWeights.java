package dev.mpsactors.model;

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
 * pooler dense [H, H] + bias when the checkpoint has a pooler. Linear weights keep PyTorch's [out, in] layout.
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
    final long wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings, embLnGamma, embLnBeta;
    final LayerOffsets[] layers;
    /** -1 when the checkpoint has no pooler. */
    final long poolerWeight, poolerBias;

    private BertDeviceWeights(BertConfig config, TensorStorage storage, DeviceBuffer buffer, long[] offsets,
                              LayerOffsets[] layers) {
        this.config = config;
        this.storage = storage;
        this.buffer = buffer;
        this.wordEmbeddings = offsets[0];
        this.positionEmbeddings = offsets[1];
        this.tokenTypeEmbeddings = offsets[2];
        this.embLnGamma = offsets[3];
        this.embLnBeta = offsets[4];
        this.poolerWeight = offsets[5];
        this.poolerBias = offsets[6];
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
        Cursor at = new Cursor(storage.bytes());
        long[] offsets = new long[7];
        offsets[0] = at.take((long) c.vocabSize() * h);
        offsets[1] = at.take((long) c.maxPositionEmbeddings() * h);
        offsets[2] = at.take((long) c.typeVocabSize() * h);
        offsets[3] = at.take(h);
        offsets[4] = at.take(h);
        LayerOffsets[] layers = new LayerOffsets[c.numHiddenLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new LayerOffsets(at.take(3 * h * h), at.take(3 * h), at.take(h * h), at.take(h), at.take(h),
                    at.take(h), at.take(inter * h), at.take(inter), at.take(h * inter), at.take(h), at.take(h),
                    at.take(h));
        }
        boolean pooler = weights.hasPooler();
        offsets[5] = pooler ? at.take(h * h) : -1;
        offsets[6] = pooler ? at.take(h) : -1;

        DeviceBuffer buffer = device.allocate(at.bytes);
        try {
            storage.write(buffer, offsets[0], weights.values("embeddings.word_embeddings.weight"));
            storage.write(buffer, offsets[1], weights.values("embeddings.position_embeddings.weight"));
            storage.write(buffer, offsets[2], weights.values("embeddings.token_type_embeddings.weight"));
            storage.write(buffer, offsets[3], weights.values("embeddings.LayerNorm.weight"));
            storage.write(buffer, offsets[4], weights.values("embeddings.LayerNorm.bias"));
            for (int l = 0; l < layers.length; l++) {
                LayerOffsets o = layers[l];
                storage.write(buffer, o.qkvWeight(), concat(weights.layer(l, "attention.self.query.weight"),
                        weights.layer(l, "attention.self.key.weight"), weights.layer(l, "attention.self.value.weight")));
                storage.write(buffer, o.qkvBias(), concat(weights.layer(l, "attention.self.query.bias"),
                        weights.layer(l, "attention.self.key.bias"), weights.layer(l, "attention.self.value.bias")));
                storage.write(buffer, o.attnOutWeight(), weights.layer(l, "attention.output.dense.weight"));
                storage.write(buffer, o.attnOutBias(), weights.layer(l, "attention.output.dense.bias"));
                storage.write(buffer, o.attnLnGamma(), weights.layer(l, "attention.output.LayerNorm.weight"));
                storage.write(buffer, o.attnLnBeta(), weights.layer(l, "attention.output.LayerNorm.bias"));
                storage.write(buffer, o.interWeight(), weights.layer(l, "intermediate.dense.weight"));
                storage.write(buffer, o.interBias(), weights.layer(l, "intermediate.dense.bias"));
                storage.write(buffer, o.outWeight(), weights.layer(l, "output.dense.weight"));
                storage.write(buffer, o.outBias(), weights.layer(l, "output.dense.bias"));
                storage.write(buffer, o.outLnGamma(), weights.layer(l, "output.LayerNorm.weight"));
                storage.write(buffer, o.outLnBeta(), weights.layer(l, "output.LayerNorm.bias"));
            }
            if (pooler) {
                storage.write(buffer, offsets[5], weights.values("pooler.dense.weight"));
                storage.write(buffer, offsets[6], weights.values("pooler.dense.bias"));
            }
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
        return new BertDeviceWeights(c, storage, buffer, offsets, layers);
    }

    /** Hands out aligned byte ranges of a growing layout. */
    private static final class Cursor {
        private final int valueBytes;
        long bytes;

        Cursor(int valueBytes) {
            this.valueBytes = valueBytes;
        }

        long take(long values) {
            long at = bytes;
            bytes += (valueBytes * values + ALIGN - 1) / ALIGN * ALIGN;
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

    /** Whether the weights hold the pooler, so programs compute pooler_output. */
    public boolean hasPooler() {
        return poolerWeight >= 0;
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

    public boolean isClosed() {
        return buffer.isClosed();
    }

    /** Idempotent. Work already encoded keeps the memory alive until it completes. */
    @Override
    public void close() {
        buffer.close();
    }
}
