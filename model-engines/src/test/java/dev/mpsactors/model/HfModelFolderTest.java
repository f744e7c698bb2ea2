package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.model.BertFolderGenerator.Options;
import dev.mpsactors.model.SafetensorsFile.Dtype;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A generated Hugging Face BERT folder loads back exactly; every malformed folder is refused by name. */
class HfModelFolderTest {
    private static final BertConfig SMALL = new BertConfig("bert", 50, 16, 2, 4, 32, 20, 2, 1e-12, "gelu");
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void aGeneratedFolderLoadsBackExactlyThroughTheBertPrefix() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 42);
        try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            assertTrue(file.contains("bert.encoder.layer.1.output.LayerNorm.bias"), "names carry the prefix");
            assertTrue(file.contains("bert.embeddings.position_ids") && file.contains("cls.predictions.bias"));
            assertEquals(Map.of("format", "pt"), file.metadata());
        }
        HfModelFolder folder = HfModelFolder.load(dir);
        assertEquals(SMALL, folder.config());
        assertSameWeights(generated, folder.weights());
    }

    @Test
    void generatedWeightsAreSeededAndNeverTrivial() throws IOException {
        BertWeights a = BertFolderGenerator.write(dir.resolve("a"), SMALL, 7);
        BertWeights b = BertFolderGenerator.write(dir.resolve("b"), SMALL, 7);
        BertWeights c = BertFolderGenerator.write(dir.resolve("c"), SMALL, 8);
        assertSameWeights(a, b);
        assertFalse(java.util.Arrays.equals(a.values("pooler.dense.weight"), c.values("pooler.dense.weight")));
        for (String name : BertWeights.expectedShapes(SMALL).keySet()) {
            float[] v = a.values(name);
            double sum = 0;
            int zeros = 0;
            for (float x : v) {
                sum += x;
                zeros += x == 0 ? 1 : 0;
            }
            assertTrue(zeros < v.length / 4, name + " is mostly zeros");
            if (name.endsWith("LayerNorm.weight")) {
                assertEquals(1.0, sum / v.length, 0.05, name + " centres on 1");
                assertFalse(allEqual(v), name + " carries noise");
            }
        }
    }

    @Test
    void namesWithoutTheBertPrefixLoadToo() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 3, Options.defaults().withBertPrefix(false));
        try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            assertTrue(file.contains("encoder.layer.0.attention.self.query.weight"));
        }
        assertSameWeights(generated, HfModelFolder.load(dir).weights());
    }

    @Test
    void aShardedFolderLoadsThroughItsIndex() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 5, Options.defaults().withShards(3));
        assertFalse(Files.exists(dir.resolve("model.safetensors")));
        assertTrue(Files.exists(dir.resolve("model.safetensors.index.json")));
        for (int s = 1; s <= 3; s++) {
            assertTrue(Files.size(dir.resolve("model-0000" + s + "-of-00003.safetensors")) > 64);
        }
        assertSameWeights(generated, HfModelFolder.load(dir).weights());
    }

    @Test
    void f16AndBf16FoldersAreConvertedToTheStoredValues() throws IOException {
        for (Dtype dtype : new Dtype[] {Dtype.F16, Dtype.BF16}) {
            Path d = dir.resolve(dtype.name());
            BertWeights generated = BertFolderGenerator.write(d, SMALL, 9, Options.defaults().withDtype(dtype));
            try (SafetensorsFile file = SafetensorsFile.open(d.resolve("model.safetensors"))) {
                assertEquals(dtype, file.info("bert.pooler.dense.weight").dtype());
            }
            BertWeights loaded = HfModelFolder.load(d).weights();
            assertSameWeights(generated, loaded);
            float[] f32 = BertFolderGenerator.write(dir.resolve("f32"), SMALL, 9).values("pooler.dense.weight");
            float[] narrow = loaded.values("pooler.dense.weight");
            for (int i = 0; i < f32.length; i++) {
                assertEquals(f32[i], narrow[i], Math.abs(f32[i]) * 0x1p-8f, dtype + " within half an ulp");
            }
        }
    }

    /**
     * F16 and BF16 checked against references that share no code with the loader: hand-written bit
     * patterns with their values worked out by hand, and every tensor's raw bytes (read from the file
     * directly) decoded by a second, formula-based implementation here.
     */
    @Test
    void f16AndBf16FoldersLoadToTheValuesTheirBitsEncode() throws IOException {
        int[] f16Bits = {0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x3e00, 0x4248, 0xbc01, 0x5640,
            0x2e66, 0x7800, 0x1400, 0xfbff};
        float[] f16Values = {1f, -2f, 0.333251953125f, 65504f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, -0f, 1.5f,
            3.140625f, -1.0009765625f, 100f, 0.0999755859375f, 32768f, 0.0009765625f, -65504f};
        int[] bf16Bits = {0x3f80, 0xc000, 0x3eab, 0x4049, 0x7f7f, 0x0001, 0x0080, 0x8000, 0x3fc0, 0xbf81, 0x42c8, 0x3dcd,
            0x4700, 0x3a80, 0xff7f, 0x4780};
        float[] bf16Values = {1f, -2f, 0.333984375f, 3.140625f, (2 - 0x1p-7f) * 0x1p127f, 0x1p-133f, 0x1p-126f, -0f,
            1.5f, -1.0078125f, 100f, 0.10009765625f, 32768f, 0.0009765625f, -(2 - 0x1p-7f) * 0x1p127f, 65536f};
        for (Dtype dtype : new Dtype[] {Dtype.F16, Dtype.BF16}) {
            int[] bits = dtype == Dtype.F16 ? f16Bits : bf16Bits;
            float[] values = dtype == Dtype.F16 ? f16Values : bf16Values;
            Path d = dir.resolve("bits-" + dtype.name());
            BertFolderGenerator.write(d, SMALL, 13, Options.defaults().withDtype(dtype));
            java.nio.ByteBuffer raw = java.nio.ByteBuffer.allocate(2 * bits.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int b : bits) {
                raw.putShort((short) b);
            }
            rewriteWeights(d, name -> name.equals("bert.pooler.dense.bias") ? null : name,
                    w -> w.addRaw("bert.pooler.dense.bias", dtype, new int[] {SMALL.hiddenSize()}, raw.array()));
            BertWeights loaded = HfModelFolder.load(d).weights();
            float[] bias = loaded.values("pooler.dense.bias");
            for (int i = 0; i < bits.length; i++) {
                assertEquals(Float.floatToRawIntBits(values[i]), Float.floatToRawIntBits(bias[i]),
                        dtype + " bits 0x" + Integer.toHexString(bits[i]) + " load as " + values[i] + ", got " + bias[i]);
            }
            // Every tensor of the folder against its own bytes, decoded independently.
            byte[] file = Files.readAllBytes(d.resolve("model.safetensors"));
            long headerLength = java.nio.ByteBuffer.wrap(file, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
            int checked = 0;
            try (SafetensorsFile in = SafetensorsFile.open(d.resolve("model.safetensors"))) {
                for (String name : BertWeights.expectedShapes(SMALL).keySet()) {
                    SafetensorsFile.TensorInfo info = in.info("bert." + name);
                    assertEquals(dtype, info.dtype(), name);
                    float[] got = loaded.values(name);
                    int at = (int) (8 + headerLength + info.begin());
                    for (int i = 0; i < got.length; i++) {
                        int h = (file[at + 2 * i] & 0xff) | (file[at + 2 * i + 1] & 0xff) << 8;
                        float want = dtype == Dtype.F16 ? halfByFormula(h) : Float.intBitsToFloat(h << 16);
                        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[i])) {
                            throw new AssertionError(dtype + " " + name + "[" + i + "]: bits 0x" + Integer.toHexString(h)
                                    + " encode " + want + ", loaded " + got[i]);
                        }
                        checked++;
                    }
                }
            }
            assertTrue(checked > 1000, "every value of every tensor checked: " + checked);
        }
    }

    /** IEEE binary16 by its definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024. */
    private static float halfByFormula(int h) {
        int sign = h >>> 15 & 1;
        int exponent = h >>> 10 & 0x1f;
        int mantissa = h & 0x3ff;
        assertTrue(exponent != 0x1f, "a finite weight");
        double magnitude = exponent == 0 ? Math.scalb(mantissa / 1024.0, -14)
                : Math.scalb(1 + mantissa / 1024.0, exponent - 15);
        return (float) (sign == 1 ? -magnitude : magnitude);
    }

    @Test
    void theTwoLayoutsTogetherInShardsAndBf16AlsoLoad() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 11,
                new Options(Dtype.BF16, 2, false, true));
        assertSameWeights(generated, HfModelFolder.load(dir).weights());
    }

    @Test
    void tfEraGammaAndBetaNamesAreReadAsWeightAndBias() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 1);
        rewriteWeights(name -> name.replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta"), null);
        assertSameWeights(generated, HfModelFolder.load(dir).weights());
    }

    @Test
    void aMissingTensorIsNamed() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        rewriteWeights(name -> name.equals("bert.encoder.layer.1.output.dense.bias") ? null : name, null);
        assertRefused("missing tensor encoder.layer.1.output.dense.bias", "expected shape [16]", "model.safetensors");
    }

    @Test
    void nonFiniteWeightsAreRefusedNamingTensorAndIndex() throws IOException {
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            BertFolderGenerator.write(dir, SMALL, 1);
            float[] bias = new float[16];
            java.util.Arrays.fill(bias, 0.5f);
            bias[7] = bad;
            rewriteWeights(name -> name.equals("bert.pooler.dense.bias") ? null : name,
                    w -> w.add("bert.pooler.dense.bias", Dtype.F32, new int[] {16}, bias));
            assertRefused("tensor bert.pooler.dense.bias holds " + bad + " at flat index 7", "must be finite");
        }
    }

    @Test
    void aTensorOfTheWrongShapeIsNamed() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        rewriteWeights(name -> name.equals("bert.pooler.dense.weight") ? null : name,
                w -> w.add("bert.pooler.dense.weight", Dtype.F32,
                new int[] {16, 8}, new float[128]));
        assertRefused("tensor bert.pooler.dense.weight has shape [16, 8], expected [16, 16]");
    }

    @Test
    void aCheckpointWithoutPoolerLoadsButHalfAPoolerIsRefused() throws IOException {
        BertWeights generated = BertFolderGenerator.write(dir, SMALL, 3);
        rewriteWeights(name -> name.startsWith("bert.pooler.") ? null : name, null);
        HfModelFolder folder = HfModelFolder.load(dir);
        assertFalse(folder.weights().hasPooler());
        assertArrayEquals(generated.values("encoder.layer.1.output.dense.weight"),
                folder.weights().values("encoder.layer.1.output.dense.weight"));
        assertTrue(generated.hasPooler());

        rewriteWeights(UnaryOperator.identity(), w -> w.add("bert.pooler.dense.weight", Dtype.F32,
                new int[] {16, 16}, new float[256]));
        assertRefused("missing tensor pooler.dense.bias", "or neither");
    }

    @Test
    void aTensorStoredBothWithAndWithoutThePrefixIsAmbiguous() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        rewriteWeights(UnaryOperator.identity(), w -> w.add("pooler.dense.bias", Dtype.F32, new int[] {16},
                new float[16]));
        assertRefused("pooler.dense.bias is stored twice");
    }

    @Test
    void aMissingShardIsNamed() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1, Options.defaults().withShards(2));
        Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
        assertRefused("model.safetensors.index.json", "shard model-00002-of-00002.safetensors", "missing");
    }

    @Test
    void anIndexThatPointsOutsideTheFolderIsRefused() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1, Options.defaults().withShards(2));
        Path index = dir.resolve("model.safetensors.index.json");
        ObjectNode root = (ObjectNode) JSON.readTree(index.toFile());
        ((ObjectNode) root.get("weight_map")).put("bert.pooler.dense.bias", "../elsewhere.safetensors");
        JSON.writeValue(index.toFile(), root);
        assertRefused("not a file name in the folder");
    }

    @Test
    void aFolderWithoutWeightsOrConfigIsRefusedByName() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        Files.delete(dir.resolve("model.safetensors"));
        assertRefused("neither model.safetensors nor model.safetensors.index.json");
        Files.delete(dir.resolve("config.json"));
        assertRefused("config.json: missing");
        assertThrows(ModelFormatException.class, () -> HfModelFolder.load(dir.resolve("nope")));
    }

    @Test
    void aMissingRequiredConfigKeyIsNamed() throws IOException {
        for (String key : new String[] {"hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "model_type"}) {
            BertFolderGenerator.write(dir, SMALL, 1);
            editConfig(c -> c.remove(key));
            assertRefused("config.json: missing required key " + key);
        }
    }

    @Test
    void missingOptionalConfigKeysTakeHuggingFaceDefaults() throws IOException {
        BertConfig config = new BertConfig("bert", 50, 16, 1, 2, 32, 20, 2, 1e-12, "gelu");
        BertFolderGenerator.write(dir, config, 1);
        editConfig(c -> c.remove(java.util.List.of("layer_norm_eps", "type_vocab_size", "hidden_act",
                "position_embedding_type")));
        assertEquals(config, HfModelFolder.load(dir).config());
    }

    @Test
    void badConfigValuesAreNamed() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("num_attention_heads", 5));
        assertRefused("config.json: hidden_size 16 is not divisible by num_attention_heads 5");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("hidden_act", "silu"));
        assertRefused("hidden_act 'silu' is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("model_type", "albert"));
        assertRefused("model_type 'albert' is not supported (supported: bert, distilbert, mpnet, roberta, xlm-roberta)");

        // a BERT checkpoint declared as RoBERTa: its tensors are under bert., not roberta., and are named missing
        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("model_type", "roberta"));
        assertRefused("missing tensor embeddings.word_embeddings.weight (or roberta.embeddings.word_embeddings.weight");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("hidden_size", "16"));
        assertRefused("hidden_size must be an integer");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("vocab_size", 0));
        assertRefused("vocab_size must be >= 1");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("position_embedding_type", "relative_key"));
        assertRefused("position_embedding_type 'relative_key' is not supported");

        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("is_decoder", true));
        assertRefused("is_decoder = true is not supported");

        BertFolderGenerator.write(dir, SMALL, 1);
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"bert\",");
        assertRefused("config.json: not valid JSON");
    }

    @Test
    void aConfigThatDisagreesWithTheWeightsNamesTheTensor() throws IOException {
        BertFolderGenerator.write(dir, SMALL, 1);
        editConfig(c -> c.put("intermediate_size", 64));
        assertRefused("tensor bert.encoder.layer.0.intermediate.dense.weight has shape [32, 16], expected [64, 16]");
    }

    // ---- helpers -----------------------------------------------------------------------------------------

    private static void assertSameWeights(BertWeights expected, BertWeights actual) {
        assertEquals(expected.config(), actual.config());
        for (Map.Entry<String, int[]> e : BertWeights.expectedShapes(expected.config()).entrySet()) {
            assertArrayEquals(e.getValue(), actual.tensor(e.getKey()).shape(), e.getKey());
            assertArrayEquals(expected.values(e.getKey()), actual.values(e.getKey()), e.getKey());
        }
    }

    private static boolean allEqual(float[] v) {
        for (float x : v) {
            if (x != v[0]) {
                return false;
            }
        }
        return true;
    }

    private void assertRefused(String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfModelFolder.load(dir));
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' in: " + e.getMessage());
        }
        assertTrue(e.getMessage().contains(dir.toString()), "names the folder's file: " + e.getMessage());
    }

    private void editConfig(Consumer<ObjectNode> edit) throws IOException {
        Path file = dir.resolve("config.json");
        ObjectNode root = (ObjectNode) JSON.readTree(file.toFile());
        edit.accept(root);
        JSON.writeValue(file.toFile(), root);
    }

    /**
     * Rewrites model.safetensors: every tensor under {@code rename}'s name (dropped where it returns null), then
     * whatever {@code extra} adds. Non-float tensors are dropped.
     */
    private void rewriteWeights(UnaryOperator<String> rename, Consumer<SafetensorsWriter> extra) throws IOException {
        rewriteWeights(dir, rename, extra);
    }

    private static void rewriteWeights(Path folder, UnaryOperator<String> rename, Consumer<SafetensorsWriter> extra)
            throws IOException {
        Path file = folder.resolve("model.safetensors");
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile in = SafetensorsFile.open(file)) {
            for (String name : in.names()) {
                String to = rename.apply(name);
                SafetensorsFile.TensorInfo info = in.info(name);
                if (to != null && info.dtype().isReadableAsFloat()) {
                    w.add(to, info.dtype(), info.shape(), in.readFloats(name));
                }
            }
        }
        if (extra != null) {
            extra.accept(w);
        }
        w.write(file);
    }
}
