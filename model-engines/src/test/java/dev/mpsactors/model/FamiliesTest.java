package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.model.SafetensorsFile.Dtype;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.protocol.InferenceProtocol.OutputSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every supported family, loaded from a generated Hugging Face folder under its own tensor names, computes what
 * its Hugging Face model computes: last_hidden_state (every position of a ragged batch, padding included),
 * pooler_output and the sequence-classification logits agree with {@link FamilyReference} (float64, reading the
 * checkpoint by the family's names) to a relative L2 error below 1e-5 on the cpu backend in fp32.
 */
class FamiliesTest {
    private static final double TOLERANCE = 1e-5;
    /** Weights spread wider than HF's 0.02 init, so attention is far from uniform and positions matter. */
    private static final double STD = 0.25;

    private static NativeDevice device;
    private static KernelLibrary library;
    private static BertProgram.Pipelines pipelines;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        device = NativeDevice.open(DeviceOptions.cpu());
        library = device.compileLibrary("*", "");
        pipelines = BertProgram.Pipelines.from(library);
    }

    @AfterAll
    static void close() throws InterruptedException {
        pipelines.close();
        library.close();
        BertProgramTest.closeWhenIdle(device);
    }

    /** One model: its config, the head's labels (0: none), how it is stored, the batch it runs. */
    record Case(String name, BertConfig config, int labels, Dtype dtype, int shards, int seq) {
        @Override
        public String toString() {
            return name;
        }
    }

    static BertConfig config(Family family, String act, int maxPositions, int hidden, int heads) {
        int pad = family.paddingOffsetPositions() ? 1 : 0;
        return new BertConfig(family.modelType(), 61, hidden, 2, heads, 2 * hidden, maxPositions,
                family.tokenTypes() ? (family == Family.BERT ? 2 : 1) : 0, family == Family.DISTILBERT ? 1e-12 : 1e-5,
                act, family, pad, family.relativeAttentionBias() ? BertConfig.MPNET_BUCKETS : 0);
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("bert gelu, 3 labels", config(Family.BERT, "gelu", 40, 32, 4), 3, Dtype.F32, 1, 24),
                new Case("bert gelu_new", config(Family.BERT, "gelu_new", 40, 32, 4), 0, Dtype.F32, 1, 24),
                new Case("bert relu, bf16 weights, 2 labels", config(Family.BERT, "relu", 40, 32, 4), 2, Dtype.BF16, 1, 24),
                new Case("roberta, 1 label", config(Family.ROBERTA, "gelu", 42, 32, 4), 1, Dtype.F32, 1, 24),
                new Case("xlm-roberta, f16 weights, 2 shards, 2 labels", config(Family.XLM_ROBERTA, "gelu", 42, 32, 4), 2,
                        Dtype.F16, 2, 24),
                new Case("distilbert gelu, 4 labels", config(Family.DISTILBERT, "gelu", 40, 32, 4), 4, Dtype.F32, 1, 24),
                new Case("distilbert relu", config(Family.DISTILBERT, "relu", 40, 32, 4), 0, Dtype.F32, 1, 24),
                new Case("mpnet, 2 labels", config(Family.MPNET, "gelu", 42, 32, 4), 2, Dtype.F32, 1, 40),
                // distances past MPNet's 128 fall into its last bucket
                new Case("mpnet, 150 tokens", config(Family.MPNET, "gelu", 160, 16, 2), 0, Dtype.F32, 1, 150));
    }

    /** A ragged batch: full, middle, short rows, padded after their tokens (mask 0, the family's padding id). */
    static int[][][] batch(BertConfig c, int seq, long seed) {
        Random random = new Random(seed);
        int[] lengths = {seq, seq * 2 / 3, 3};
        int rows = lengths.length;
        int pad = c.family().paddingOffsetPositions() ? c.padTokenId() : 0;
        int[][] ids = new int[rows][seq], mask = new int[rows][seq], types = new int[rows][seq];
        for (int r = 0; r < rows; r++) {
            for (int t = 0; t < seq; t++) {
                boolean real = t < lengths[r];
                ids[r][t] = real ? 2 + random.nextInt(c.vocabSize() - 2) : pad;
                mask[r][t] = real ? 1 : 0;
                types[r][t] = real && t >= lengths[r] / 2 && c.typeVocabSize() > 1 ? 1 : 0;
            }
        }
        if (c.family().paddingOffsetPositions()) {
            ids[1][2] = pad; // a padding id among the tokens: its position is padding_idx, as HF makes it
        }
        return new int[][][] {ids, mask, types};
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void matchesTheFloat64Reference(Case k) throws IOException {
        Path dir = tmp.resolve(k.name().replaceAll("[^a-z0-9]+", "-"));
        BertFolderGenerator.write(dir, k.config(), 7, BertFolderGenerator.Options.defaults().withDtype(k.dtype())
                .withShards(k.shards()).withHead(k.labels(), null), STD);
        HfModelFolder folder = HfModelFolder.load(dir);
        assertEquals(k.config().family(), folder.config().family());
        assertEquals(k.labels() > 0, folder.weights().hasHead());
        assertEquals(k.labels(), folder.weights().numLabels());
        int[][][] in = batch(k.config(), k.seq(), 11);
        FamilyReference.Output want = new FamilyReference(dir).forward(in[0], in[1], in[2]);

        try (BertDeviceWeights weights = BertDeviceWeights.upload(device, folder.weights());
             BertProgram program = BertProgram.compile(weights, pipelines, in[0].length, k.seq(),
                     BertProgram.Layout.PACKED);
             BertProgram.RequestBuffers buffers = program.allocate(weights)) {
            DeviceBuffer[] slots = buffers.slots();
            program.writeInputs(slots, in[0], in[1], in[2]);
            BertProgramTest.Completions completions = new BertProgramTest.Completions();
            try (NativeStream stream = device.createStream(completions)) {
                program.encode(stream, slots);
                completions.awaitOk(stream.commit());
            }
            double hidden = relativeL2(program.readLastHiddenState(slots), want.lastHiddenState());
            String line = String.format(Locale.ROOT, "[families] %-45s last_hidden_state %.2e", k.name(), hidden);
            assertTrue(hidden < TOLERANCE, k + ": last_hidden_state relative L2 " + hidden);
            if (want.pooler() != null) {
                double pooled = relativeL2(program.readPoolerOutput(slots), want.pooler());
                line += String.format(Locale.ROOT, ", pooler_output %.2e", pooled);
                assertTrue(pooled < TOLERANCE, k + ": pooler_output relative L2 " + pooled);
            }
            if (k.labels() > 0) {
                double logits = relativeL2(program.readLogits(slots), want.logits());
                line += String.format(Locale.ROOT, ", logits %.2e", logits);
                assertTrue(logits < TOLERANCE, k + ": logits relative L2 " + logits);
            } else {
                assertFalse(program.has(BertProgram.Output.LOGITS));
            }
            System.out.println(line);
        }
    }

    @Test
    void mpnetBucketsFollowHuggingFace() {
        // small distances exact, the sign in the upper half, log-spaced beyond 8, the last bucket from 128 on
        assertEquals(0, BertConfig.relativeBucket(0));
        assertEquals(7, BertConfig.relativeBucket(-7));
        assertEquals(16 + 7, BertConfig.relativeBucket(7));
        assertEquals(8, BertConfig.relativeBucket(-8));
        assertEquals(10, BertConfig.relativeBucket(-16));
        assertEquals(14, BertConfig.relativeBucket(-64));
        assertEquals(15, BertConfig.relativeBucket(-127));
        assertEquals(16 + 15, BertConfig.relativeBucket(500));
        for (int r = -300; r <= 300; r++) {
            assertEquals(FamilyReference.mpnetBucket(r), BertConfig.relativeBucket(r), "relative position " + r);
        }
    }

    @Test
    void robertaPositionsCountPastThePaddingId() {
        BertConfig c = config(Family.ROBERTA, "gelu", 42, 32, 4);
        int[] ids = {0, 5, 1, 7, 1, 1};
        int[] positions = new int[6];
        c.positions(ids, 0, 6, positions, 0);
        assertEquals(List.of(2, 3, 1, 4, 1, 1), java.util.Arrays.stream(positions).boxed().toList());
        assertEquals(40, c.maxSequenceLength(), "514-style tables cover two positions fewer");
    }

    @Test
    void engineOffersLogitsOnlyWithAHead() throws IOException {
        BertConfig c = config(Family.ROBERTA, "gelu", 42, 32, 4);
        BertFolderGenerator.write(tmp.resolve("body"), c, 3);
        BertFolderGenerator.write(tmp.resolve("head"), c, 3, BertFolderGenerator.Options.defaults().withHead(2, null));
        try (BertEngine body = BertEngine.upload(device, HfModelFolder.load(tmp.resolve("body")).weights());
             BertEngine head = BertEngine.upload(device, HfModelFolder.load(tmp.resolve("head")).weights())) {
            String refused = body.validateOutputs(OutputSpec.LOGITS);
            assertNotNull(refused);
            assertTrue(refused.contains("no sequence-classification head") && refused.contains("classifier.out_proj"),
                    refused);
            assertEquals(null, head.validateOutputs(OutputSpec.LOGITS));
            assertTrue(head.requiredFunctions().contains("gemm"));
            assertFalse(head.requiredFunctions().contains(BertProgram.REL_BIAS), "roberta adds no relative bias");
            assertEquals(40, head.maxSequenceLength());
            assertNotNull(head.validate(new dev.mpsactors.protocol.InferenceProtocol.InferenceInputs(
                    new int[][] {new int[41]}, null, null)));
        }
    }

    @Test
    void distilbertWithoutAStoredTableGetsItsSinusoidalPositions() throws IOException {
        BertConfig c = config(Family.DISTILBERT, "gelu", 40, 32, 4);
        Path dir = tmp.resolve("sinusoidal");
        BertFolderGenerator.write(dir, c, 5, BertFolderGenerator.Options.defaults().withExtraTensors(false));
        // rewrite the folder without the position table and with sinusoidal_pos_embds on
        Path weights = dir.resolve(HfModelFolder.WEIGHTS_FILE);
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            for (String name : f.names()) {
                if (!name.endsWith("position_embeddings.weight")) {
                    w.add(name, Dtype.F32, f.info(name).shape(), f.readFloats(name));
                }
            }
        }
        w.write(weights);
        Path config = dir.resolve(HfModelFolder.CONFIG_FILE);
        Files.writeString(config, Files.readString(config).replace("\"sinusoidal_pos_embds\" : false",
                "\"sinusoidal_pos_embds\" : true"));
        float[] table = HfModelFolder.load(dir).weights().values("embeddings.position_embeddings.weight");
        assertEquals(40 * 32, table.length);
        assertEquals(0f, table[0]);                          // sin(0)
        assertEquals(1f, table[1]);                          // cos(0)
        assertEquals((float) Math.sin(3), table[3 * 32]);    // position 3, j = 0
        assertEquals((float) Math.cos(3 / Math.pow(10000, 2.0 * 5 / 32)), table[3 * 32 + 11]);

        Files.writeString(config, Files.readString(config).replace("\"sinusoidal_pos_embds\" : true",
                "\"sinusoidal_pos_embds\" : false"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfModelFolder.load(dir));
        assertTrue(e.getMessage().contains("missing tensor embeddings.position_embeddings.weight"), e.getMessage());
    }

    /** Rewrites {@code dir}'s single safetensors file without the tensors whose stored name {@code drop} matches. */
    static void dropTensors(Path dir, java.util.function.Predicate<String> drop) throws IOException {
        Path weights = dir.resolve(HfModelFolder.WEIGHTS_FILE);
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            for (String name : f.names()) {
                if (!drop.test(name)) {
                    if (f.info(name).dtype() == Dtype.I64) {
                        continue;
                    }
                    w.add(name, Dtype.F32, f.info(name).shape(), f.readFloats(name));
                }
            }
        }
        w.write(weights);
    }

    static void assertRefused(Path dir, String... parts) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfModelFolder.load(dir));
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "expected '" + part + "' in: " + e.getMessage());
        }
    }

    @Test
    void incompleteOrInconsistentHeadsAreRefusedByTheirOwnNames() throws IOException {
        BertFolderGenerator.Options head = BertFolderGenerator.Options.defaults().withExtraTensors(false).withHead(2, null);
        Path roberta = tmp.resolve("roberta-half-head");
        BertFolderGenerator.write(roberta, config(Family.ROBERTA, "gelu", 42, 32, 4), 1, head);
        dropTensors(roberta, n -> n.startsWith("classifier.out_proj."));
        assertRefused(roberta, "incomplete sequence-classification head",
                "missing tensor classifier.out_proj.weight, classifier.out_proj.bias");

        Path distil = tmp.resolve("distil-half-head");
        BertFolderGenerator.write(distil, config(Family.DISTILBERT, "gelu", 40, 32, 4), 1, head);
        dropTensors(distil, n -> n.equals("pre_classifier.bias"));
        assertRefused(distil, "missing tensor pre_classifier.bias");

        Path bert = tmp.resolve("bert-no-pooler");
        BertFolderGenerator.write(bert, config(Family.BERT, "gelu", 40, 32, 4), 1, head);
        dropTensors(bert, n -> n.contains("pooler."));
        assertRefused(bert, "the classifier (classifier.weight) needs the pooler", "pooler.dense.weight is absent");

        Path labels = tmp.resolve("bert-labels");
        BertFolderGenerator.write(labels, config(Family.BERT, "gelu", 40, 32, 4), 1, head);
        Path configFile = labels.resolve(HfModelFolder.CONFIG_FILE);
        Files.writeString(configFile, Files.readString(configFile).replace("\"1\" : \"label_b1\"",
                "\"1\" : \"label_b1\", \"2\" : \"label_c2\""));
        assertRefused(labels, "tensor classifier.weight has shape [2, 32], expected [3, 32]");

        Path mpnet = tmp.resolve("mpnet-buckets");
        BertFolderGenerator.write(mpnet, config(Family.MPNET, "gelu", 42, 32, 4), 1);
        Path mpnetConfig = mpnet.resolve(HfModelFolder.CONFIG_FILE);
        Files.writeString(mpnetConfig, Files.readString(mpnetConfig).replace("\"relative_attention_num_buckets\" : 32",
                "\"relative_attention_num_buckets\" : 64"));
        assertRefused(mpnet, "relative_attention_num_buckets 64 is not supported");
        dropTensors(mpnet, n -> n.contains("relative_attention_bias"));
        Files.writeString(mpnetConfig, Files.readString(mpnetConfig).replace("\"relative_attention_num_buckets\" : 64",
                "\"relative_attention_num_buckets\" : 32"));
        assertRefused(mpnet, "missing tensor encoder.relative_attention_bias.weight");

        // a token-classification checkpoint's classifier is not read as a sequence-classification head
        Path tokens = tmp.resolve("token-classification");
        BertFolderGenerator.write(tokens, config(Family.BERT, "gelu", 40, 32, 4), 1, head);
        Path tokensConfig = tokens.resolve(HfModelFolder.CONFIG_FILE);
        Files.writeString(tokensConfig, Files.readString(tokensConfig).replace("BertForSequenceClassification",
                "BertForTokenClassification"));
        HfModelFolder loaded = HfModelFolder.load(tokens);
        assertFalse(loaded.weights().hasHead());
        assertEquals(null, loaded.classifier());
        assertEquals(null, HfModelFolder.probeClassifier(tokens));

        Path multi = tmp.resolve("multi-label");
        BertFolderGenerator.write(multi, config(Family.XLM_ROBERTA, "gelu", 42, 32, 4), 1,
                head.withHead(3, "multi_label_classification"));
        HfModelFolder.Classifier probed = HfModelFolder.probeClassifier(multi);
        assertEquals(List.of("label_a0", "label_b1", "label_c2"), probed.labels());
        assertTrue(probed.sigmoid(), "multi_label_classification scores each label by sigmoid");
        assertEquals(probed, HfModelFolder.load(multi).classifier());
        Files.writeString(multi.resolve(HfModelFolder.CONFIG_FILE), Files.readString(multi.resolve(
                HfModelFolder.CONFIG_FILE)).replace("multi_label_classification", "ranking"));
        assertRefused(multi, "problem_type 'ranking' is not one of");
    }

    static double relativeL2(float[][][] got, double[][][] want) {
        double diff = 0, norm = 0;
        for (int r = 0; r < want.length; r++) {
            for (int t = 0; t < want[r].length; t++) {
                for (int k = 0; k < want[r][t].length; k++) {
                    double d = got[r][t][k] - want[r][t][k];
                    diff += d * d;
                    norm += want[r][t][k] * want[r][t][k];
                }
            }
        }
        return Math.sqrt(diff / norm);
    }

    static double relativeL2(float[][] got, double[][] want) {
        double diff = 0, norm = 0;
        for (int r = 0; r < want.length; r++) {
            for (int k = 0; k < want[r].length; k++) {
                double d = got[r][k] - want[r][k];
                diff += d * d;
                norm += want[r][k] * want[r][k];
            }
        }
        return Math.sqrt(diff / norm);
    }
}
