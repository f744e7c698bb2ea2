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
 * A Hugging Face BERT model folder, loaded: {@code config.json} plus either {@code model.safetensors} or a
 * sharded {@code model.safetensors.index.json} with the shard files it names. {@link #load} reads the whole
 * encoder into fp32 {@link BertWeights} and closes every file before returning.
 *
 * <p>What is accepted, and why it is conservative:
 * <ul>
 *   <li>{@code model_type} must be {@code bert} (MiniLM and other BERT-layout checkpoints say so in their
 *       config). Other families are refused by name even when their tensors look alike, because differences
 *       in activation, normalisation or position handling would load silently and compute wrong answers.
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
    public static final Set<String> SUPPORTED_MODEL_TYPES = Set.of("bert");

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

    private HfModelFolder(Path dir, BertWeights weights) {
        this.dir = dir;
        this.weights = weights;
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
        BertConfig config = readConfig(dir.resolve(CONFIG_FILE));
        Path single = dir.resolve(WEIGHTS_FILE);
        Path index = dir.resolve(INDEX_FILE);
        Map<String, BertWeights.Tensor> tensors;
        if (Files.isRegularFile(single)) {
            tensors = readTensors(config, dir, List.of(single), null);
        } else if (Files.isRegularFile(index)) {
            Map<String, Path> weightMap = readIndex(dir, index);
            tensors = readTensors(config, dir, new ArrayList<>(new TreeSet<>(weightMap.values())), weightMap);
        } else {
            throw new ModelFormatException(dir + ": neither " + WEIGHTS_FILE + " nor " + INDEX_FILE
                    + " found (only safetensors weights are supported; convert pytorch_model.bin first)");
        }
        return new HfModelFolder(dir, BertWeights.of(config, tensors));
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

    /** Reads and validates a BERT {@code config.json}. */
    public static BertConfig readConfig(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": missing (every model folder needs " + CONFIG_FILE + ")");
        }
        JsonNode root = readJsonObject(file);
        String modelType = requiredString(file, root, "model_type");
        if (!SUPPORTED_MODEL_TYPES.contains(modelType)) {
            throw new ModelFormatException(file + ": model_type '" + modelType + "' is not supported (supported: "
                    + String.join(", ", new TreeSet<>(SUPPORTED_MODEL_TYPES)) + ")");
        }
        String positions = optionalString(file, root, "position_embedding_type", "absolute");
        if (!"absolute".equals(positions)) {
            throw new ModelFormatException(file + ": position_embedding_type '" + positions
                    + "' is not supported (supported: absolute)");
        }
        for (String key : List.of("is_decoder", "add_cross_attention")) {
            JsonNode v = root.get(key);
            if (v != null && !v.isNull() && (!v.isBoolean() || v.booleanValue())) {
                throw new ModelFormatException(file + ": " + key + " = " + v
                        + " is not supported (the runtime implements the bidirectional encoder only)");
            }
        }
        int vocab = requiredInt(file, root, "vocab_size");
        int hidden = requiredInt(file, root, "hidden_size");
        int layers = requiredInt(file, root, "num_hidden_layers");
        int heads = requiredInt(file, root, "num_attention_heads");
        int intermediate = requiredInt(file, root, "intermediate_size");
        int maxPositions = requiredInt(file, root, "max_position_embeddings");
        int typeVocab = optionalInt(file, root, "type_vocab_size", 2);
        double eps = optionalDouble(file, root, "layer_norm_eps", 1e-12);
        String act = optionalString(file, root, "hidden_act", "gelu");
        try {
            return new BertConfig(modelType, vocab, hidden, layers, heads, intermediate, maxPositions, typeVocab,
                    eps, act);
        } catch (ModelFormatException e) {
            // BertConfig names "config.json"; say which one
            String message = e.getMessage().startsWith(CONFIG_FILE + ": ")
                    ? e.getMessage().substring(CONFIG_FILE.length() + 2) : e.getMessage();
            throw new ModelFormatException(file + ": " + message, e);
        }
    }

    /**
     * The canonical (encoder-relative) name of a stored tensor name: without the {@code bert.} prefix, and
     * with TF-era {@code LayerNorm.gamma/beta} read as {@code LayerNorm.weight/bias}.
     */
    static String canonicalName(String stored) {
        String name = stored.startsWith(PREFIX) ? stored.substring(PREFIX.length()) : stored;
        if (name.endsWith("LayerNorm.gamma")) {
            name = name.substring(0, name.length() - "gamma".length()) + "weight";
        } else if (name.endsWith("LayerNorm.beta")) {
            name = name.substring(0, name.length() - "beta".length()) + "bias";
        }
        return name;
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
                                                               Map<String, Path> weightMap) throws IOException {
        Map<String, int[]> expected = new LinkedHashMap<>(BertWeights.expectedShapes(config));
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
                    addSource(sources, expected, f, stored);
                }
            } else {
                for (Map.Entry<String, Path> e : weightMap.entrySet()) {
                    if (!expected.containsKey(canonicalName(e.getKey()))) {
                        continue;
                    }
                    SafetensorsFile f = byPath.get(e.getValue());
                    if (!f.contains(e.getKey())) {
                        throw new ModelFormatException(f.path() + ": no tensor " + e.getKey() + ", though "
                                + INDEX_FILE + " maps it to this shard");
                    }
                    addSource(sources, expected, f, e.getKey());
                }
            }
            String where = files.size() == 1 ? files.get(0).toString() : dir.resolve(INDEX_FILE).toString();
            if (!BertWeights.requirePoolerPair(sources.keySet(), where + ": ")) {
                BertWeights.POOLER_TENSORS.forEach(expected::remove); // exported without its pooler
            }
            for (Map.Entry<String, int[]> e : expected.entrySet()) {
                Source s = sources.get(e.getKey());
                if (s == null) {
                    throw new ModelFormatException(where + ": missing tensor " + e.getKey() + " (or " + PREFIX
                            + e.getKey() + "), expected shape " + Arrays.toString(e.getValue()));
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
            return tensors;
        } finally {
            for (SafetensorsFile f : open) {
                f.close();
            }
        }
    }

    /** A NaN or infinite weight would turn every output into NaN: refuse the file, naming the place. */

    private static void addSource(Map<String, Source> sources, Map<String, int[]> expected, SafetensorsFile file,
                                  String stored) {
        String name = canonicalName(stored);
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
