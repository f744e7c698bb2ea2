package dev.mpsactors.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * How a model folder turns token states into one sentence embedding, read the way sentence-transformers
 * reads it: {@code modules.json} lists the modules (a Transformer, a Pooling module whose folder holds
 * {@code config.json}, optionally a Normalize module); {@code sentence_bert_config.json} gives
 * {@code max_seq_length}. A folder without {@code modules.json} is a plain transformers folder, which
 * sentence-transformers serves with mean pooling and no normalization; so does this.
 *
 * <p>The sequence limit is {@code max_seq_length} when the folder has one, else the tokenizer's own
 * ({@code model_max_length} of {@code tokenizer_config.json}); either way never more than the positions the
 * model has ({@code max_position_embeddings}, less padding_idx + 1 for RoBERTa, XLM-RoBERTa and MPNet, whose
 * positions start past the padding id).
 *
 * @param source where each setting came from, for messages and {@code info}
 */
public record SentenceEncoderConfig(String family, int hiddenSize, Pooling pooling, boolean normalize, int maxTokens,
                                    String source) {
    public static final String MODULES_FILE = "modules.json";
    public static final String SENTENCE_BERT_CONFIG_FILE = "sentence_bert_config.json";
    public static final String POOLING_TYPE = "sentence_transformers.models.Pooling";
    public static final String NORMALIZE_TYPE = "sentence_transformers.models.Normalize";
    public static final String TRANSFORMER_TYPE = "sentence_transformers.models.Transformer";

    /** The pooling config.json keys of sentence-transformers, in {@link Pooling} order. */
    private static final Map<String, Pooling> POOLING_KEYS = Map.of(
            "pooling_mode_cls_token", Pooling.CLS,
            "pooling_mode_mean_tokens", Pooling.MEAN,
            "pooling_mode_max_tokens", Pooling.MAX,
            "pooling_mode_mean_sqrt_len_tokens", Pooling.MEAN_SQRT_LEN);
    /** Pooling modes sentence-transformers has that the device kernel does not compute. */
    private static final List<String> UNSUPPORTED_POOLING_KEYS = List.of(
            "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken");

    private static final ObjectMapper JSON = new ObjectMapper();

    public SentenceEncoderConfig {
        if (pooling == null) {
            throw new IllegalArgumentException("pooling is required");
        }
        if (maxTokens < 2) {
            throw new IllegalArgumentException("maxTokens must be >= 2, got " + maxTokens);
        }
    }

    /** Reads {@code folder}; throws {@link TextFormatException} naming the file and what is wrong with it. */
    public static SentenceEncoderConfig read(Path folder) {
        JsonNode config = readJson(folder.resolve("config.json"), true);
        JsonNode positions = config.get("max_position_embeddings");
        if (positions == null || !positions.canConvertToInt() || positions.intValue() < 2) {
            throw new TextFormatException(folder.resolve("config.json")
                    + ": max_position_embeddings is missing or not a positive integer");
        }
        int modelLimit = positions.intValue();
        String family = config.path("model_type").asText("bert");
        // RoBERTa-style positions start past the padding id: a 514-entry table holds 512 tokens
        if (family.equals("roberta") || family.equals("xlm-roberta")) {
            modelLimit -= config.path("pad_token_id").asInt(1) + 1;
        } else if (family.equals("mpnet")) {
            modelLimit -= 2;
        }
        if (modelLimit < 2) {
            throw new TextFormatException(folder.resolve("config.json") + ": max_position_embeddings "
                    + positions.intValue() + " leaves fewer than 2 positions for tokens");
        }
        JsonNode width = config.has("hidden_size") ? config.get("hidden_size") : config.get("dim");
        if (width == null || !width.canConvertToInt() || width.intValue() < 1) {
            throw new TextFormatException(folder.resolve("config.json")
                    + ": hidden_size (or dim) is missing or not a positive integer");
        }

        Pooling pooling = Pooling.MEAN;
        boolean normalize = false;
        List<String> source = new ArrayList<>();
        Path modulesFile = folder.resolve(MODULES_FILE);
        if (Files.exists(modulesFile)) {
            JsonNode modules = readJson(modulesFile, true);
            if (!modules.isArray()) {
                throw new TextFormatException(modulesFile + ": expected a JSON array of modules");
            }
            boolean pooled = false;
            for (JsonNode module : modules) {
                String type = module.path("type").asText("");
                String path = module.path("path").asText("");
                switch (type) {
                    case TRANSFORMER_TYPE -> { }
                    case POOLING_TYPE -> {
                        pooling = readPooling(folder.resolve(path).resolve("config.json"));
                        pooled = true;
                        source.add("pooling " + pooling.name().toLowerCase(java.util.Locale.ROOT) + " from "
                                + (path.isEmpty() ? "" : path + "/") + "config.json");
                    }
                    case NORMALIZE_TYPE -> {
                        normalize = true;
                        source.add("normalize from " + MODULES_FILE);
                    }
                    default -> throw new TextFormatException(modulesFile + ": module '" + module.path("name").asText("?")
                            + "' of type '" + type + "' is not supported (supported: " + TRANSFORMER_TYPE + ", "
                            + POOLING_TYPE + ", " + NORMALIZE_TYPE + ")");
                }
            }
            if (!pooled) {
                throw new TextFormatException(modulesFile + ": no " + POOLING_TYPE + " module: the folder does not say "
                        + "how to pool a sentence embedding");
            }
        } else {
            source.add("pooling mean (no " + MODULES_FILE + ")");
        }

        int maxTokens = modelLimit;
        String limitSource = "max_position_embeddings " + modelLimit;
        JsonNode sbert = readJson(folder.resolve(SENTENCE_BERT_CONFIG_FILE), false);
        JsonNode tokenizerConfig = readJson(folder.resolve("tokenizer_config.json"), false);
        if (sbert != null && sbert.has("max_seq_length")) {
            JsonNode v = sbert.get("max_seq_length");
            if (!v.canConvertToInt() || v.intValue() < 2) {
                throw new TextFormatException(folder.resolve(SENTENCE_BERT_CONFIG_FILE)
                        + ": max_seq_length must be an integer >= 2, got " + v);
            }
            if (v.intValue() < maxTokens) {
                maxTokens = v.intValue();
                limitSource = "max_seq_length " + maxTokens + " of " + SENTENCE_BERT_CONFIG_FILE;
            }
        } else if (tokenizerConfig != null && tokenizerConfig.path("model_max_length").canConvertToInt()) {
            // tokenizers without a limit write a huge sentinel (1e30): min() keeps the model's limit then
            int tokenizerLimit = tokenizerConfig.get("model_max_length").intValue();
            if (tokenizerLimit >= 2 && tokenizerLimit < maxTokens) {
                maxTokens = tokenizerLimit;
                limitSource = "model_max_length " + maxTokens + " of tokenizer_config.json";
            }
        }
        source.add("limit " + limitSource);
        return new SentenceEncoderConfig(family, width.intValue(), pooling, normalize, maxTokens, String.join(", ", source));
    }

    private static Pooling readPooling(Path file) {
        JsonNode config = readJson(file, true);
        for (String key : UNSUPPORTED_POOLING_KEYS) {
            if (config.path(key).asBoolean(false)) {
                throw new TextFormatException(file + ": " + key + " is not supported (cls, mean, max or mean_sqrt_len)");
            }
        }
        Pooling found = null;
        for (Map.Entry<String, Pooling> e : POOLING_KEYS.entrySet()) {
            JsonNode v = config.get(e.getKey());
            if (v != null && !v.isBoolean()) {
                throw new TextFormatException(file + ": " + e.getKey() + " must be true or false, got " + v);
            }
            if (v != null && v.booleanValue()) {
                if (found != null) {
                    throw new TextFormatException(file + ": more than one pooling mode is on (" + found.name()
                            .toLowerCase(java.util.Locale.ROOT) + " and " + e.getValue().name().toLowerCase(java.util.Locale.ROOT)
                            + "); only one is supported");
                }
                found = e.getValue();
            }
        }
        if (found == null) {
            throw new TextFormatException(file + ": no pooling mode is on (set one of " + POOLING_KEYS.keySet().stream()
                    .sorted().toList() + ")");
        }
        return found;
    }

    /** Writes the sentence-transformers files describing {@code pooling}, {@code normalize} and {@code maxTokens}. */
    public static void write(Path folder, Pooling pooling, boolean normalize, int maxTokens) throws IOException {
        Files.createDirectories(folder.resolve("1_Pooling"));
        var modules = JSON.createArrayNode();
        modules.addObject().put("idx", 0).put("name", "0").put("path", "").put("type", TRANSFORMER_TYPE);
        modules.addObject().put("idx", 1).put("name", "1").put("path", "1_Pooling").put("type", POOLING_TYPE);
        if (normalize) {
            modules.addObject().put("idx", 2).put("name", "2").put("path", "2_Normalize").put("type", NORMALIZE_TYPE);
            Files.createDirectories(folder.resolve("2_Normalize"));
        }
        JSON.writerWithDefaultPrettyPrinter().writeValue(folder.resolve(MODULES_FILE).toFile(), modules);
        var poolingConfig = JSON.createObjectNode();
        JsonNode model = readJson(folder.resolve("config.json"), false);
        if (model != null && model.has("hidden_size")) {
            poolingConfig.put("word_embedding_dimension", model.get("hidden_size").intValue());
        }
        for (Map.Entry<String, Pooling> e : new java.util.TreeMap<>(POOLING_KEYS).entrySet()) {
            poolingConfig.put(e.getKey(), e.getValue() == pooling);
        }
        JSON.writerWithDefaultPrettyPrinter().writeValue(folder.resolve("1_Pooling").resolve("config.json").toFile(),
                poolingConfig);
        JSON.writerWithDefaultPrettyPrinter().writeValue(folder.resolve(SENTENCE_BERT_CONFIG_FILE).toFile(),
                JSON.createObjectNode().put("max_seq_length", maxTokens).put("do_lower_case", false));
    }

    private static JsonNode readJson(Path file, boolean required) {
        if (!Files.exists(file)) {
            if (required) {
                throw new TextFormatException(file + ": no such file");
            }
            return null;
        }
        try {
            JsonNode node = JSON.readTree(file.toFile());
            if (node == null || node.isMissingNode()) {
                throw new TextFormatException(file + ": empty, expected JSON");
            }
            return node;
        } catch (IOException e) {
            throw new TextFormatException(file + ": not valid JSON: "
                    + String.valueOf(e.getMessage()).lines().findFirst().orElse(""), e);
        }
    }
}
