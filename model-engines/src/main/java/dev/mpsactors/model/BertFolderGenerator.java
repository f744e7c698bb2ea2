package dev.mpsactors.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.model.SafetensorsFile.Dtype;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Writes a Hugging Face encoder folder of any {@link Family} with seeded random weights, laid out like a real
 * checkpoint so that loading it exercises the same paths: {@code config.json} with the keys HF writes for the
 * family (DistilBERT's {@code dim}, {@code n_layers}, …), tensors under the family's own names with the prefix
 * of its {@code *For…} checkpoints ({@code bert.}, {@code roberta.}, {@code distilbert.}, {@code mpnet.}), unused
 * extras ({@code cls.predictions.bias}, the I64 {@code embeddings.position_ids} buffer), optionally a
 * sequence-classification head with its {@code id2label}, F16/BF16 storage and sharding.
 *
 * <p>Initialisation follows HF: matrices and embeddings normal(0, 0.02). LayerNorm weights are 1 plus
 * normal(0, 0.02) noise and biases normal(0, 0.02) rather than HF's exact ones and zeros, so that a test on
 * generated weights cannot pass by accident on a dropped bias or a skipped scale.
 */
public final class BertFolderGenerator {
    private static final double INIT_STD = 0.02;

    /**
     * @param dtype         storage dtype of the float tensors: F32, F16 or BF16
     * @param shards        1 writes {@code model.safetensors}; K >= 2 writes an index and K shards
     * @param bertPrefix    whether tensor names carry the {@code bert.} prefix
     * @param extraTensors  whether to add tensors a checkpoint carries but the encoder ignores
     * @param pooler        whether to write the pooler (sentence-embedding checkpoints often have none)
     * @param labels        0: no head; else a sequence-classification head with this many labels
     * @param problemType   the head's {@code problem_type} (null: none written)
     */
    public record Options(Dtype dtype, int shards, boolean bertPrefix, boolean extraTensors, boolean pooler,
                          int labels, String problemType) {
        public Options {
            if (dtype != Dtype.F32 && dtype != Dtype.F16 && dtype != Dtype.BF16) {
                throw new IllegalArgumentException("dtype must be F32, F16 or BF16, got " + dtype);
            }
            if (shards < 1) {
                throw new IllegalArgumentException("shards must be >= 1, got " + shards);
            }
            if (labels < 0) {
                throw new IllegalArgumentException("labels must be >= 0, got " + labels);
            }
        }

        public Options(Dtype dtype, int shards, boolean bertPrefix, boolean extraTensors, boolean pooler) {
            this(dtype, shards, bertPrefix, extraTensors, pooler, 0, null);
        }

        public Options(Dtype dtype, int shards, boolean bertPrefix, boolean extraTensors) {
            this(dtype, shards, bertPrefix, extraTensors, true);
        }

        public static Options defaults() {
            return new Options(Dtype.F32, 1, true, true, true);
        }

        public Options withPooler(boolean p) {
            return new Options(dtype, shards, bertPrefix, extraTensors, p, labels, problemType);
        }

        public Options withDtype(Dtype d) {
            return new Options(d, shards, bertPrefix, extraTensors, pooler, labels, problemType);
        }

        public Options withShards(int k) {
            return new Options(dtype, k, bertPrefix, extraTensors, pooler, labels, problemType);
        }

        public Options withBertPrefix(boolean p) {
            return new Options(dtype, shards, p, extraTensors, pooler, labels, problemType);
        }

        public Options withExtraTensors(boolean e) {
            return new Options(dtype, shards, bertPrefix, e, pooler, labels, problemType);
        }

        /** A sequence-classification head of {@code n} labels (0: none) and its problem type (null: none). */
        public Options withHead(int n, String problem) {
            return new Options(dtype, shards, bertPrefix, extraTensors, pooler, n, problem);
        }
    }

    private BertFolderGenerator() {
    }

    /** {@link #write(Path, BertConfig, long, Options)} with {@link Options#defaults()}. */
    public static BertWeights write(Path dir, BertConfig config, long seed) throws IOException {
        return write(dir, config, seed, Options.defaults());
    }

    /**
     * Writes the folder {@code dir} (created if needed; a {@code model.safetensors} or index left there by an
     * earlier run in the other layout is deleted, since the loader would prefer it).
     *
     * @return the weights exactly as stored, i.e. already rounded to {@code options.dtype()}, so a loader's
     *         result can be compared for equality
     */
    public static BertWeights write(Path dir, BertConfig config, long seed, Options options) throws IOException {
        return write(dir, config, seed, options, INIT_STD);
    }

    /**
     * {@link #write(Path, BertConfig, long, Options)} with matrices and embeddings normal(0, {@code std}) and
     * LayerNorm noise of the same spread: a test picks a spread larger than HF's 0.02 so that attention is far
     * from uniform and a wrong position, mask or bias shows in the outputs.
     */
    public static BertWeights write(Path dir, BertConfig config, long seed, Options options, double std)
            throws IOException {
        Files.createDirectories(dir);
        Random random = new Random(seed);
        Map<String, BertWeights.Tensor> weights = new LinkedHashMap<>();
        Map<String, int[]> shapes = new LinkedHashMap<>(BertWeights.expectedShapes(config));
        if (options.labels() > 0) {
            shapes.putAll(BertWeights.headShapes(config, options.labels()));
        }
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            if (!options.pooler() && e.getKey().startsWith("pooler.")) {
                continue;
            }
            weights.put(e.getKey(), new BertWeights.Tensor(e.getValue(),
                    init(e.getKey(), e.getValue(), random, options.dtype(), std)));
        }

        String prefix = options.bertPrefix() ? config.family().prefix() : "";
        List<Entry> entries = new ArrayList<>();
        for (Map.Entry<String, BertWeights.Tensor> e : weights.entrySet()) {
            String stored = e.getKey().startsWith("head.") ? BertWeights.storedHeadName(config.family(), e.getKey())
                    : prefix + storedName(config.family(), e.getKey());
            entries.add(new Entry(stored, options.dtype(), e.getValue().shape(), e.getValue().values(), null));
        }
        if (options.extraTensors()) {
            int positions = config.maxPositionEmbeddings();
            ByteBuffer ids = ByteBuffer.allocate(8 * positions).order(ByteOrder.LITTLE_ENDIAN);
            for (int p = 0; p < positions; p++) {
                ids.putLong(p);
            }
            entries.add(new Entry(prefix + "embeddings.position_ids", Dtype.I64, new int[] {1, positions}, null,
                    ids.array()));
            int[] vocab = {config.vocabSize()};
            entries.add(new Entry("cls.predictions.bias", options.dtype(), vocab,
                    init("cls.predictions.bias", vocab, random, options.dtype(), std), null));
        }

        writeConfig(dir.resolve(HfModelFolder.CONFIG_FILE), config, options);
        if (options.shards() == 1) {
            Files.deleteIfExists(dir.resolve(HfModelFolder.INDEX_FILE));
            writeShard(dir.resolve(HfModelFolder.WEIGHTS_FILE), entries);
        } else {
            Files.deleteIfExists(dir.resolve(HfModelFolder.WEIGHTS_FILE));
            writeSharded(dir, entries, options.shards());
        }
        return BertWeights.of(config, weights);
    }

    /** The name a {@code family} checkpoint stores the canonical (BERT) tensor {@code name} under, without prefix. */
    static String storedName(Family family, String name) {
        if (family == Family.DISTILBERT && name.startsWith("encoder.layer.")) {
            return "transformer.layer." + name.substring("encoder.layer.".length())
                    .replace(".attention.self.query.", ".attention.q_lin.")
                    .replace(".attention.self.key.", ".attention.k_lin.")
                    .replace(".attention.self.value.", ".attention.v_lin.")
                    .replace(".attention.output.dense.", ".attention.out_lin.")
                    .replace(".attention.output.LayerNorm.", ".sa_layer_norm.")
                    .replace(".intermediate.dense.", ".ffn.lin1.")
                    .replace(".output.dense.", ".ffn.lin2.")
                    .replace(".output.LayerNorm.", ".output_layer_norm.");
        }
        if (family == Family.MPNET && name.startsWith("encoder.layer.")) {
            return name.replace(".attention.self.query.", ".attention.attn.q.")
                    .replace(".attention.self.key.", ".attention.attn.k.")
                    .replace(".attention.self.value.", ".attention.attn.v.")
                    .replace(".attention.output.dense.", ".attention.attn.o.")
                    .replace(".attention.output.LayerNorm.", ".attention.LayerNorm.");
        }
        return name;
    }

    /** One tensor to store: float values in {@code dtype}, or raw little-endian bytes. */
    private record Entry(String name, Dtype dtype, int[] shape, float[] values, byte[] raw) {
        long byteSize() {
            return raw != null ? raw.length : (long) values.length * dtype.bytes();
        }
    }

    private static float[] init(String name, int[] shape, Random random, Dtype dtype, double std) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        float[] v = new float[Math.toIntExact(n)];
        double mean = name.endsWith("LayerNorm.weight") ? 1.0 : 0.0;
        for (int i = 0; i < v.length; i++) {
            float x = (float) (mean + std * random.nextGaussian());
            v[i] = switch (dtype) {
                case F16 -> SafetensorsFile.f16ToFloat(SafetensorsWriter.floatToF16(x));
                case BF16 -> SafetensorsFile.bf16ToFloat(SafetensorsWriter.floatToBf16(x));
                default -> x;
            };
        }
        return v;
    }

    private static void writeShard(Path file, List<Entry> entries) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        for (Entry e : entries) {
            if (e.raw() != null) {
                w.addRaw(e.name(), e.dtype(), e.shape(), e.raw());
            } else {
                w.add(e.name(), e.dtype(), e.shape(), e.values());
            }
        }
        w.write(file);
    }

    /** Splits {@code entries}, in order, into {@code k} non-empty shards of roughly equal bytes. */
    private static void writeSharded(Path dir, List<Entry> entries, int k) throws IOException {
        int n = entries.size();
        if (k > n) {
            throw new IllegalArgumentException("cannot split " + n + " tensors into " + k + " shards");
        }
        long total = 0;
        for (Entry e : entries) {
            total += e.byteSize();
        }
        List<List<Entry>> shards = new ArrayList<>();
        shards.add(new ArrayList<>());
        long before = 0;
        for (int i = 0; i < n; i++) {
            int current = shards.size() - 1;
            int shardsLeftAfter = k - 1 - current;
            boolean mustAdvance = n - i == shardsLeftAfter; // one tensor left for each remaining shard
            boolean wantAdvance = shardsLeftAfter > 0 && before * k >= total * (current + 1);
            if (!shards.get(current).isEmpty() && (mustAdvance || wantAdvance)) {
                shards.add(new ArrayList<>());
            }
            shards.get(shards.size() - 1).add(entries.get(i));
            before += entries.get(i).byteSize();
        }
        Map<String, String> weightMap = new TreeMap<>();
        for (int s = 0; s < k; s++) {
            String file = String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", s + 1, k);
            writeShard(dir.resolve(file), shards.get(s));
            for (Entry e : shards.get(s)) {
                weightMap.put(e.name(), file);
            }
        }
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode index = json.createObjectNode();
        index.putObject("metadata").put("total_size", total);
        ObjectNode map = index.putObject("weight_map");
        weightMap.forEach(map::put);
        json.writeValue(dir.resolve(HfModelFolder.INDEX_FILE).toFile(), index);
    }

    private static void writeConfig(Path file, BertConfig c, Options options) throws IOException {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode o = json.createObjectNode();
        String model = switch (c.family()) {
            case BERT -> "Bert";
            case ROBERTA -> "Roberta";
            case XLM_ROBERTA -> "XLMRoberta";
            case DISTILBERT -> "DistilBert";
            case MPNET -> "MPNet";
        };
        o.putArray("architectures").add(model + (options.labels() > 0 ? "ForSequenceClassification" : "Model"));
        o.put("model_type", c.modelType());
        o.put("vocab_size", c.vocabSize());
        o.put("max_position_embeddings", c.maxPositionEmbeddings());
        o.put("initializer_range", INIT_STD);
        if (c.family() == Family.DISTILBERT) {
            o.put("activation", c.hiddenAct());
            o.put("attention_dropout", 0.1);
            o.put("dim", c.hiddenSize());
            o.put("dropout", 0.1);
            o.put("hidden_dim", c.intermediateSize());
            o.put("n_heads", c.numAttentionHeads());
            o.put("n_layers", c.numHiddenLayers());
            o.put("pad_token_id", 0);
            o.put("seq_classif_dropout", 0.2);
            o.put("sinusoidal_pos_embds", false);
        } else {
            o.put("attention_probs_dropout_prob", 0.1);
            o.put("hidden_act", c.hiddenAct());
            o.put("hidden_dropout_prob", 0.1);
            o.put("hidden_size", c.hiddenSize());
            o.put("intermediate_size", c.intermediateSize());
            o.put("layer_norm_eps", c.layerNormEps());
            o.put("num_attention_heads", c.numAttentionHeads());
            o.put("num_hidden_layers", c.numHiddenLayers());
            o.put("pad_token_id", c.family().paddingOffsetPositions() ? c.padTokenId() : 0);
            if (c.family() == Family.MPNET) {
                o.put("relative_attention_num_buckets", c.relativeAttentionBuckets());
            } else {
                o.putNull("classifier_dropout");
                o.put("position_embedding_type", "absolute");
                o.put("type_vocab_size", c.typeVocabSize());
            }
        }
        if (options.labels() > 0) {
            ObjectNode id2label = o.putObject("id2label");
            ObjectNode label2id = o.putObject("label2id");
            for (int i = 0; i < options.labels(); i++) {
                id2label.put(Integer.toString(i), "label_" + (char) ('a' + i % 26) + i);
                label2id.put("label_" + (char) ('a' + i % 26) + i, i);
            }
            if (options.problemType() != null) {
                o.put("problem_type", options.problemType());
            }
        }
        o.put("torch_dtype", switch (options.dtype()) {
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> "float32";
        });
        o.put("use_cache", true);
        json.writeValue(file.toFile(), o);
    }
}
