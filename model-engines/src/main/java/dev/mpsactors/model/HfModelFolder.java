package dev.mpsactors.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.mpsactors.model.SafetensorsFile.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Hugging Face encoder folder, loaded: {@code config.json} plus either {@code model.safetensors} or a
 * sharded {@code model.safetensors.index.json} with the shard files it names. {@link #load} reads the whole
 * encoder (and its sequence-classification head, when the checkpoint has one) into fp32 {@link BertWeights}
 * and closes every file before returning.
 *
 * <p>What is accepted, and why it is conservative:
 * <ul>
 *   <li>{@code model_type} must be one of the {@link Family families} (bert, roberta, xlm-roberta, distilbert,
 *       mpnet). Other types are refused by name even when their tensors look alike, because differences
 *       in activation, normalisation or position handling would load silently and compute wrong answers.
 *       Each family's own weight names are read into BERT's ({@link #canonicalName(Family, String)}).
 *   <li>Optional keys default as in HF's {@code BertConfig}: {@code layer_norm_eps} 1e-12,
 *       {@code type_vocab_size} 2, {@code hidden_act} "gelu". {@code position_embedding_type} other than
 *       "absolute", {@code is_decoder} and {@code add_cross_attention} are refused: the encoder implements
 *       none of them.
 *   <li>Tensor names may carry the {@code bert.} prefix that {@code BertFor*} heads add, or not; old
 *       TF-converted {@code LayerNorm.gamma/beta} names are read as {@code weight/bias}, as HF does.
 *       Tensors the encoder does not use ({@code cls.*}, {@code embeddings.position_ids}, …) are never read.
 *   <li>Tensors may be F32, F16, BF16 or F64; all are converted to fp32 at load.
 *   <li>The pooler ({@code pooler.dense.weight} and {@code .bias}) may be absent, as in encoders exported
 *       for embeddings only; such a model offers no pooler_output.
 * </ul>
 */
public final class HfModelFolder {
    public static final String CONFIG_FILE = "config.json";
    public static final String WEIGHTS_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";
    public static final Set<String> SUPPORTED_MODEL_TYPES = java.util.Arrays.stream(Family.values())
            .map(Family::modelType).collect(java.util.stream.Collectors.toUnmodifiableSet());

    static final String PREFIX = "bert.";

    private static void requireFinite(Source s, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new ModelFormatException(s.file().path() + ": tensor " + s.storedName() + " holds " + values[i]
                        + " at flat index " + i + "; weights must be finite");
            }
        }
    }

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    private final Path dir;
    private final BertWeights weights;
    private final Classifier classifier;

    private HfModelFolder(Path dir, BertWeights weights, Classifier classifier) {
        this.dir = dir;
        this.weights = weights;
        this.classifier = classifier;
    }

    /**
     * A sequence-classification head's labels ({@code id2label} in id order, else {@code LABEL_i}) and its
     * {@code problem_type} (null when the config names none).
     */
    public record Classifier(List<String> labels, String problemType) {
        public Classifier {
            labels = List.copyOf(labels);
        }

        public int numLabels() {
            return labels.size();
        }

        /** Sigmoid per label (one label, or multi_label_classification), rather than a softmax over them. */
        public boolean sigmoid() {
            return labels.size() == 1 || "multi_label_classification".equals(problemType);
        }
    }

    /**
     * Loads the folder {@code dir}.
     *
     * @throws ModelFormatException a file is missing, malformed or describes an unsupported model; the
     *                              message names the file and, where there is one, the key or tensor
     * @throws IOException          a file exists but cannot be read
     */
    public static HfModelFolder load(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new ModelFormatException(dir + ": not a directory (expected a Hugging Face model folder)");
        }
        Path configFile = dir.resolve(CONFIG_FILE);
        BertConfig config = readConfig(configFile);
        JsonNode root = readJsonObject(configFile);
        boolean sinusoidal = config.family() == Family.DISTILBERT
                && root.path("sinusoidal_pos_embds").asBoolean(false);
        Integer configLabels = configuredLabelCount(configFile, root);
        boolean headAllowed = sequenceClassification(root);
        Path single = dir.resolve(WEIGHTS_FILE);
        Path index = dir.resolve(INDEX_FILE);
        Map<String, BertWeights.Tensor> tensors;
        if (Files.isRegularFile(single)) {
            tensors = readTensors(config, dir, List.of(single), null, sinusoidal, configLabels, headAllowed);
        } else if (Files.isRegularFile(index)) {
            Map<String, Path> weightMap = readIndex(dir, index);
            tensors = readTensors(config, dir, new ArrayList<>(new TreeSet<>(weightMap.values())), weightMap,
                    sinusoidal, configLabels, headAllowed);
        } else {
            throw new ModelFormatException(dir + ": neither " + WEIGHTS_FILE + " nor " + INDEX_FILE
                    + " found (only safetensors weights are supported; convert pytorch_model.bin first)");
        }
        BertWeights weights = BertWeights.of(config, tensors);
        Classifier classifier = weights.hasHead()
                ? readClassifier(configFile, root, weights.numLabels()) : null;
        return new HfModelFolder(dir, weights, classifier);
    }

    /** The sequence-classification head's labels and problem type, or null when the checkpoint has no head. */
    public Classifier classifier() {
        return classifier;
    }

    /**
     * The head {@code dir} would load with, from {@code config.json} and the safetensors headers only (no tensor
     * is read): null when the checkpoint has no sequence-classification head.
     */
    public static Classifier probeClassifier(Path dir) throws IOException {
        Path configFile = dir.resolve(CONFIG_FILE);
        BertConfig config = readConfig(configFile);
        JsonNode root = readJsonObject(configFile);
        Set<String> names = new java.util.HashSet<>();
        Path single = dir.resolve(WEIGHTS_FILE);
        Map<String, int[]> shapes = new java.util.HashMap<>();
        if (Files.isRegularFile(single)) {
            try (SafetensorsFile f = SafetensorsFile.open(single)) {
                for (String stored : f.names()) {
                    String name = canonicalName(config.family(), stored);
                    names.add(name);
                    shapes.put(name, f.info(stored).shape());
                }
            }
        } else if (Files.isRegularFile(dir.resolve(INDEX_FILE))) {
            Map<String, Path> weightMap = readIndex(dir, dir.resolve(INDEX_FILE));
            for (Map.Entry<String, Path> e : weightMap.entrySet()) {
                String name = canonicalName(config.family(), e.getKey());
                names.add(name);
                if (name.equals(BertWeights.HEAD_OUT_WEIGHT)) {
                    try (SafetensorsFile f = SafetensorsFile.open(e.getValue())) {
                        shapes.put(name, f.info(e.getKey()).shape());
                    }
                }
            }
        } else {
            throw new ModelFormatException(dir + ": neither " + WEIGHTS_FILE + " nor " + INDEX_FILE + " found");
        }
        if (!sequenceClassification(root) || !BertWeights.requireHeadGroup(config, names, dir + ": ")) {
            return null;
        }
        int[] out = shapes.get(BertWeights.HEAD_OUT_WEIGHT);
        return readClassifier(configFile, root, out != null && out.length == 2 ? out[0] : 0);
    }

    /**
     * Whether a {@code classifier} in the checkpoint is a sequence-classification head: the config names no
     * {@code architectures}, or one of them is a {@code *ForSequenceClassification} (a token-classification or
     * question-answering head stores tensors of the same names and is not read).
     */
    private static boolean sequenceClassification(JsonNode root) {
        JsonNode architectures = root.get("architectures");
        if (architectures == null || !architectures.isArray() || architectures.isEmpty()) {
            return true;
        }
        for (JsonNode a : architectures) {
            if (a.asText("").endsWith("ForSequenceClassification")) {
                return true;
            }
        }
        return false;
    }

    /** id2label's size, else num_labels, else null (the head's shape decides). */
    private static Integer configuredLabelCount(Path file, JsonNode root) {
        JsonNode id2label = root.get("id2label");
        if (id2label != null && id2label.isObject() && id2label.size() > 0) {
            return id2label.size();
        }
        JsonNode n = root.get("num_labels");
        return n != null && n.canConvertToInt() ? n.intValue() : null;
    }

    private static Classifier readClassifier(Path file, JsonNode root, int numLabels) {
        List<String> labels = new ArrayList<>();
        JsonNode id2label = root.get("id2label");
        for (int i = 0; i < numLabels; i++) {
            JsonNode label = id2label == null ? null : id2label.get(Integer.toString(i));
            if (id2label != null && id2label.size() > 0 && (label == null || !label.isTextual())) {
                throw new ModelFormatException(file + ": id2label has no label for id " + i + " (the head has "
                        + numLabels + " labels; ids must be \"0\" .. \"" + (numLabels - 1) + "\")");
            }
            labels.add(label == null ? "LABEL_" + i : label.textValue());
        }
        String problemType = optionalString(file, root, "problem_type", null);
        if (problemType != null && !List.of("regression", "single_label_classification",
                "multi_label_classification").contains(problemType)) {
            throw new ModelFormatException(file + ": problem_type '" + problemType + "' is not one of regression, "
                    + "single_label_classification, multi_label_classification");
        }
        return new Classifier(labels, problemType);
    }

    public Path dir() {
        return dir;
    }

    public BertConfig config() {
        return weights.config();
    }

    public BertWeights weights() {
        return weights;
    }

    /** Reads and validates an encoder's {@code config.json} (any {@link Family}). */
    public static BertConfig readConfig(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": missing (every model folder needs " + CONFIG_FILE + ")");
        }
        JsonNode root = readJsonObject(file);
        String modelType = requiredString(file, root, "model_type");
        Family family = Family.of(modelType);
        if (family == null) {
            throw new ModelFormatException(file + ": model_type '" + modelType + "' is not supported (supported: "
                    + Family.supported() + ")");
        }
        if (family != Family.DISTILBERT && family != Family.MPNET) {
            String positions = optionalString(file, root, "position_embedding_type", "absolute");
            if (!"absolute".equals(positions)) {
                throw new ModelFormatException(file + ": position_embedding_type '" + positions
                        + "' is not supported (supported: absolute)");
            }
        }
        for (String key : List.of("is_decoder", "add_cross_attention")) {
            JsonNode v = root.get(key);
            if (v != null && !v.isNull() && (!v.isBoolean() || v.booleanValue())) {
                throw new ModelFormatException(file + ": " + key + " = " + v
                        + " is not supported (the runtime implements the bidirectional encoder only)");
            }
        }
        boolean distil = family == Family.DISTILBERT;
        int vocab = requiredInt(file, root, "vocab_size");
        int hidden = requiredInt(file, root, distil ? "dim" : "hidden_size");
        int layers = requiredInt(file, root, distil ? "n_layers" : "num_hidden_layers");
        int heads = requiredInt(file, root, distil ? "n_heads" : "num_attention_heads");
        int intermediate = requiredInt(file, root, distil ? "hidden_dim" : "intermediate_size");
        int maxPositions = distil ? optionalInt(file, root, "max_position_embeddings", 512)
                : requiredInt(file, root, "max_position_embeddings");
        int typeVocab = family.tokenTypes() ? optionalInt(file, root, "type_vocab_size", 2) : 0;
        // DistilBERT's LayerNorms use 1e-12 whatever the config says; MPNet's padding id is 1 in its code
        double eps = distil ? 1e-12 : optionalDouble(file, root, "layer_norm_eps", 1e-12);
        String act = optionalString(file, root, distil ? "activation" : "hidden_act", "gelu");
        int pad = family == Family.MPNET ? 1 : optionalInt(file, root, "pad_token_id", family == Family.BERT ? 0 : 1);
        int buckets = family.relativeAttentionBias()
                ? optionalInt(file, root, "relative_attention_num_buckets", BertConfig.MPNET_BUCKETS) : 0;
        try {
            return new BertConfig(modelType, vocab, hidden, layers, heads, intermediate, maxPositions, typeVocab,
                    eps, act, family, family.paddingOffsetPositions() ? pad : 0, buckets);
        } catch (ModelFormatException e) {
            // BertConfig names "config.json"; say which one
            String message = e.getMessage().startsWith(CONFIG_FILE + ": ")
                    ? e.getMessage().substring(CONFIG_FILE.length() + 2) : e.getMessage();
            throw new ModelFormatException(file + ": " + message, e);
        }
    }

    /** {@link #canonicalName(Family, String)} for BERT. */
    static String canonicalName(String stored) {
        return canonicalName(Family.BERT, stored);
    }

    /**
     * The canonical (BERT, encoder-relative) name of a tensor a {@code family} checkpoint stores as
     * {@code stored}: without the family's prefix; TF-era {@code LayerNorm.gamma/beta} read as
     * {@code LayerNorm.weight/bias}; DistilBERT's and MPNet's layer names mapped onto BERT's; the
     * sequence-classification head onto {@code head.dense} / {@code head.out} ({@link BertWeights#headTensors}).
     */
    public static String canonicalName(Family family, String stored) {
        String name = stored.startsWith(family.prefix()) ? stored.substring(family.prefix().length()) : stored;
        if (name.endsWith("LayerNorm.gamma")) {
            name = name.substring(0, name.length() - "gamma".length()) + "weight";
        } else if (name.endsWith("LayerNorm.beta")) {
            name = name.substring(0, name.length() - "beta".length()) + "bias";
        }
        switch (family.head()) {
            case POOLER_CLASSIFIER -> name = replacePrefix(name, "classifier.", "head.out.");
            case DENSE_TANH -> {
                name = replacePrefix(name, "classifier.dense.", "head.dense.");
                name = replacePrefix(name, "classifier.out_proj.", "head.out.");
            }
            case DENSE_RELU -> {
                name = replacePrefix(name, "pre_classifier.", "head.dense.");
                name = replacePrefix(name, "classifier.", "head.out.");
            }
        }
        if (family == Family.DISTILBERT && name.startsWith("transformer.layer.")) {
            name = "encoder.layer." + name.substring("transformer.layer.".length());
            name = name.replace(".attention.q_lin.", ".attention.self.query.")
                    .replace(".attention.k_lin.", ".attention.self.key.")
                    .replace(".attention.v_lin.", ".attention.self.value.")
                    .replace(".attention.out_lin.", ".attention.output.dense.")
                    .replace(".sa_layer_norm.", ".attention.output.LayerNorm.")
                    .replace(".ffn.lin1.", ".intermediate.dense.")
                    .replace(".ffn.lin2.", ".output.dense.")
                    .replace(".output_layer_norm.", ".output.LayerNorm.");
        } else if (family == Family.MPNET && name.startsWith("encoder.layer.")) {
            name = name.replace(".attention.attn.q.", ".attention.self.query.")
                    .replace(".attention.attn.k.", ".attention.self.key.")
                    .replace(".attention.attn.v.", ".attention.self.value.")
                    .replace(".attention.attn.o.", ".attention.output.dense.")
                    .replace(".attention.LayerNorm.", ".attention.output.LayerNorm.");
        }
        return name;
    }

    private static String replacePrefix(String name, String from, String to) {
        return name.startsWith(from) ? to + name.substring(from.length()) : name;
    }

    /** Where one needed tensor is stored. */
    private record Source(SafetensorsFile file, String storedName) {
    }

    /**
     * Opens {@code files}, finds every tensor the config needs (and only those), checks shapes from the
     * headers before converting anything, then converts. {@code weightMap} (stored name to shard) is null for
     * a single file; when present, a tensor must be in the shard the index names.
     */
    private static Map<String, BertWeights.Tensor> readTensors(BertConfig config, Path dir, List<Path> files,
                                                               Map<String, Path> weightMap, boolean sinusoidal,
                                                               Integer configLabels, boolean headAllowed)
            throws IOException {
        Map<String, int[]> expected = new LinkedHashMap<>(BertWeights.expectedShapes(config));
        // the head's shapes need its label count: the config's, else the stored classifier's
        for (String head : headAllowed ? BertWeights.headTensors(config.family()) : List.<String>of()) {
            expected.put(head, null);
        }
        List<SafetensorsFile> open = new ArrayList<>();
        try {
            Map<Path, SafetensorsFile> byPath = new LinkedHashMap<>();
            for (Path p : files) {
                SafetensorsFile f = SafetensorsFile.open(p);
                open.add(f);
                byPath.put(p, f);
            }
            Map<String, Source> sources = new LinkedHashMap<>();
            if (weightMap == null) {
                SafetensorsFile f = byPath.get(files.get(0));
                for (String stored : f.names()) {
                    addSource(config, sources, expected, f, stored);
                }
            } else {
                for (Map.Entry<String, Path> e : weightMap.entrySet()) {
                    if (!expected.containsKey(canonicalName(config.family(), e.getKey()))) {
                        continue;
                    }
                    SafetensorsFile f = byPath.get(e.getValue());
                    if (!f.contains(e.getKey())) {
                        throw new ModelFormatException(f.path() + ": no tensor " + e.getKey() + ", though "
                                + INDEX_FILE + " maps it to this shard");
                    }
                    addSource(config, sources, expected, f, e.getKey());
                }
            }
            String where = files.size() == 1 ? files.get(0).toString() : dir.resolve(INDEX_FILE).toString();
            if (!BertWeights.requirePoolerPair(sources.keySet(), where + ": ")) {
                BertWeights.POOLER_TENSORS.forEach(expected::remove); // exported without its pooler
            }
            if (BertWeights.requireHeadGroup(config, sources.keySet(), where + ": ")) {
                Source out = sources.get(BertWeights.HEAD_OUT_WEIGHT);
                int[] stored = out.file().info(out.storedName()).shape();
                int labels = configLabels != null ? configLabels : stored.length == 2 ? stored[0] : -1;
                expected.putAll(BertWeights.headShapes(config, labels));
            } else {
                BertWeights.headTensors(config.family()).forEach(expected::remove);
            }
            String positions = "embeddings.position_embeddings.weight";
            boolean generatePositions = sinusoidal && !sources.containsKey(positions);
            if (generatePositions) {
                expected.remove(positions); // computed below, as DistilBERT's sinusoidal_pos_embds does
            }
            for (Map.Entry<String, int[]> e : expected.entrySet()) {
                Source s = sources.get(e.getKey());
                if (s == null) {
                    throw new ModelFormatException(where + ": missing tensor " + e.getKey() + " (or "
                            + config.family().prefix() + e.getKey() + (config.family() == Family.BERT ? ""
                            : " under " + config.family().modelType() + "'s own name") + "), expected shape "
                            + Arrays.toString(e.getValue()));
                }
                TensorInfo info = s.file().info(s.storedName());
                if (!Arrays.equals(info.shape(), e.getValue())) {
                    throw new ModelFormatException(s.file().path() + ": tensor " + s.storedName() + " has shape "
                            + Arrays.toString(info.shape()) + ", expected " + Arrays.toString(e.getValue())
                            + " from " + CONFIG_FILE);
                }
            }
            Map<String, BertWeights.Tensor> tensors = new LinkedHashMap<>();
            for (String name : expected.keySet()) {
                Source s = sources.get(name);
                int[] shape = s.file().info(s.storedName()).shape();
                float[] values = s.file().readFloats(s.storedName());
                requireFinite(s, values);
                tensors.put(name, new BertWeights.Tensor(shape, values));
            }
            if (generatePositions) {
                tensors.put(positions, sinusoidalPositions(config.maxPositionEmbeddings(), config.hiddenSize()));
            }
            return tensors;
        } finally {
            for (SafetensorsFile f : open) {
                f.close();
            }
        }
    }

    /** A NaN or infinite weight would turn every output into NaN: refuse the file, naming the place. */

    /** DistilBERT's sinusoidal table: sin(pos / 10000^(2⌊j/2⌋/dim)) at even j, cos at odd j. */
    static BertWeights.Tensor sinusoidalPositions(int positions, int dim) {
        float[] v = new float[positions * dim];
        for (int pos = 0; pos < positions; pos++) {
            for (int j = 0; j < dim; j++) {
                double angle = pos / Math.pow(10000, 2.0 * (j / 2) / dim);
                v[pos * dim + j] = (float) (j % 2 == 0 ? Math.sin(angle) : Math.cos(angle));
            }
        }
        return new BertWeights.Tensor(new int[] {positions, dim}, v);
    }

    private static void addSource(BertConfig config, Map<String, Source> sources, Map<String, int[]> expected,
                                  SafetensorsFile file, String stored) {
        String name = canonicalName(config.family(), stored);
        if (!expected.containsKey(name)) {
            return; // heads, buffers and other tensors the encoder does not use
        }
        Source previous = sources.putIfAbsent(name, new Source(file, stored));
        if (previous != null) {
            throw new ModelFormatException(file.path() + ": tensor " + name + " is stored twice, as "
                    + previous.storedName() + " (in " + previous.file().path().getFileName() + ") and as " + stored);
        }
    }

    /** The index's {@code weight_map}, stored tensor name to shard path, every shard checked to exist. */
    private static Map<String, Path> readIndex(Path dir, Path index) throws IOException {
        JsonNode root = readJsonObject(index);
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelFormatException(index + ": missing weight_map object");
        }
        Map<String, Path> weightMap = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            JsonNode shard = e.getValue();
            if (!shard.isTextual()) {
                throw new ModelFormatException(index + ": weight_map entry " + e.getKey() + " is not a file name");
            }
            String name = shard.textValue();
            // shards live in the folder itself; refusing paths keeps an index from reading files elsewhere
            if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.equals(".") || name.equals("..")) {
                throw new ModelFormatException(index + ": weight_map entry " + e.getKey() + " names '" + name
                        + "', not a file name in the folder");
            }
            Path p = dir.resolve(name);
            if (!Files.isRegularFile(p)) {
                throw new ModelFormatException(index + ": shard " + name + " (holding " + e.getKey()
                        + ") is missing from " + dir);
            }
            weightMap.put(e.getKey(), p);
        }
        if (weightMap.isEmpty()) {
            throw new ModelFormatException(index + ": weight_map is empty");
        }
        return weightMap;
    }

    private static JsonNode readJsonObject(Path file) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (JacksonException e) {
            throw new ModelFormatException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new ModelFormatException(file + ": not valid UTF-8", e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + ": not a JSON object");
        }
        return root;
    }

    private static int requiredInt(Path file, JsonNode root, String key) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) {
            throw new ModelFormatException(file + ": missing required key " + key);
        }
        return asInt(file, key, v);
    }

    private static int optionalInt(Path file, JsonNode root, String key, int fallback) {
        JsonNode v = root.get(key);
        return v == null || v.isNull() ? fallback : asInt(file, key, v);
    }

    private static int asInt(Path file, String key, JsonNode v) {
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw new ModelFormatException(file + ": " + key + " must be an integer, got " + v);
        }
        return v.intValue();
    }

    private static double optionalDouble(Path file, JsonNode root, String key, double fallback) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) {
            return fallback;
        }
        if (!v.isNumber()) {
            throw new ModelFormatException(file + ": " + key + " must be a number, got " + v);
        }
        return v.doubleValue();
    }

    private static String requiredString(Path file, JsonNode root, String key) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) {
            throw new ModelFormatException(file + ": missing required key " + key);
        }
        return asString(file, key, v);
    }

    private static String optionalString(Path file, JsonNode root, String key, String fallback) {
        JsonNode v = root.get(key);
        return v == null || v.isNull() ? fallback : asString(file, key, v);
    }

    private static String asString(Path file, String key, JsonNode v) {
        if (!v.isTextual()) {
            throw new ModelFormatException(file + ": " + key + " must be a string, got " + v);
        }
        return v.textValue();
    }
}
