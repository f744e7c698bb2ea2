package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.nativemps.NativeStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The compiled BERT program computes what BERT computes: on random small models and ragged batches its
 * last_hidden_state (every position, padded ones included, as Hugging Face computes them too) and
 * pooler_output agree with an independent float64 forward pass to a relative L2 error below 1e-4.
 */
class BertProgramTest {
    private static final double TOLERANCE = 1e-4;

    private static NativeDevice device;
    private static KernelLibrary library;
    private static BertProgram.Pipelines pipelines;

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
        closeWhenIdle(device);
    }

    /** Closes {@code device} once every native object is released (at most 60 s), failing if any leaked. */
    static void closeWhenIdle(NativeDevice device) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        LiveObjects live = device.liveObjects();
        while (!live.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(2);
            live = device.liveObjects();
        }
        assertTrue(live.isEmpty(), "native objects leaked: " + live);
        device.close();
    }

    // ------------------------------------------------------------------------------------------------
    // Models and batches
    // ------------------------------------------------------------------------------------------------

    static BertConfig config(int hidden, int heads, int intermediate, double eps) {
        return new BertConfig("bert", 50, hidden, 2, heads, intermediate, 40, 2, eps, "gelu");
    }

    /**
     * Random weights, never zero. Linear weights have a spread of 0.2 and query/key 0.3, larger than a
     * trained model's init: attention scores then span a few units, so the softmax is far from uniform and
     * a wrong mask, head stride or scale shows up in the outputs.
     */
    static BertWeights randomWeights(BertConfig config, long seed) {
        Random random = new Random(seed);
        Map<String, BertWeights.Tensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : BertWeights.expectedShapes(config).entrySet()) {
            String name = e.getKey();
            int n = 1;
            for (int d : e.getValue()) {
                n *= d;
            }
            double center = 0, spread;
            if (name.endsWith("LayerNorm.weight")) {
                center = 1;
                spread = 0.1;
            } else if (name.endsWith("LayerNorm.bias") || name.endsWith(".bias")) {
                spread = 0.05;
            } else if (name.startsWith("embeddings.")) {
                spread = 0.5;
            } else if (name.contains("query.weight") || name.contains("key.weight")) {
                spread = 0.3;
            } else {
                spread = 0.2;
            }
            float[] values = new float[n];
            for (int i = 0; i < n; i++) {
                float v;
                do {
                    v = (float) (center + spread * random.nextGaussian());
                } while (v == 0f);
                values[i] = v;
            }
            tensors.put(name, new BertWeights.Tensor(e.getValue(), values));
        }
        return BertWeights.of(config, tensors);
    }

    /** A ragged batch: row r has length[r] real tokens, then padding (id 0, mask 0). */
    record Batch(int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds, int[] lengths) {}

    static Batch raggedBatch(BertConfig config, int batch, int seq, boolean withTokenTypes, long seed) {
        Random random = new Random(seed);
        int[][] ids = new int[batch][seq], mask = new int[batch][seq];
        int[][] types = withTokenTypes ? new int[batch][seq] : null;
        int[] lengths = new int[batch];
        for (int r = 0; r < batch; r++) {
            // the first row is full, the others shorter (at least one token)
            lengths[r] = r == 0 ? seq : 1 + random.nextInt(seq);
            for (int t = 0; t < seq; t++) {
                boolean real = t < lengths[r];
                ids[r][t] = real ? 1 + random.nextInt(config.vocabSize() - 1) : 0;
                mask[r][t] = real ? 1 : 0;
                if (types != null) {
                    types[r][t] = real && t >= lengths[r] / 2 ? 1 : 0; // a second segment, as in sentence pairs
                }
            }
        }
        return new Batch(ids, mask, types, lengths);
    }

    /** Runs one batch through a freshly compiled program on one stream and returns its outputs. */
    private static Result run(BertDeviceWeights weights, int batch, int seq, BertProgram.Layout layout, Batch in) {
        try (BertProgram program = BertProgram.compile(weights, pipelines, batch, seq, layout);
             BertProgram.RequestBuffers buffers = program.allocate(weights)) {
            DeviceBuffer[] slots = buffers.slots();
            program.writeInputs(slots, in.inputIds(), in.attentionMask(), in.tokenTypeIds());
            Completions completions = new Completions();
            try (NativeStream stream = device.createStream(completions)) {
                program.encode(stream, slots);
                assertEquals(program.program().kernelCount(), stream.openCommands(), "one call encodes every kernel");
                completions.awaitOk(stream.commit());
            }
            return new Result(program.readLastHiddenState(slots), program.readPoolerOutput(slots));
        }
    }

    record Result(float[][][] lastHiddenState, float[][] poolerOutput) {}

    /** Completes one future per point; the executor thread never blocks. */
    static final class Completions implements dev.mpsactors.nativemps.CompletionListener {
        private final ConcurrentHashMap<Long, CompletableFuture<String>> done = new ConcurrentHashMap<>();

        @Override
        public void onComplete(long point, NativeStatus status, String message, long started, long finished) {
            done.computeIfAbsent(point, p -> new CompletableFuture<>())
                    .complete(status == NativeStatus.OK ? "" : status + ": " + message);
        }

        void awaitOk(long point) {
            try {
                String failure = done.computeIfAbsent(point, p -> new CompletableFuture<>()).get(60, TimeUnit.SECONDS);
                assertEquals("", failure, "point " + point + " failed");
            } catch (Exception e) {
                throw new AssertionError("point " + point + " did not complete", e);
            }
        }
    }

    /** ||got - want||₂ / ||want||₂ over the selected positions (all, real, or padded). */
    private static double relativeL2(float[][][] got, double[][][] want, int[] lengths, Boolean real) {
        double diff = 0, norm = 0;
        for (int r = 0; r < want.length; r++) {
            for (int t = 0; t < want[r].length; t++) {
                if (real != null && real != (t < lengths[r])) {
                    continue;
                }
                for (int k = 0; k < want[r][t].length; k++) {
                    double d = got[r][t][k] - want[r][t][k];
                    diff += d * d;
                    norm += want[r][t][k] * want[r][t][k];
                }
            }
        }
        return norm == 0 ? 0 : Math.sqrt(diff / norm);
    }

    private static double relativeL2(float[][] got, double[][] want) {
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

    // ------------------------------------------------------------------------------------------------
    // Numerics
    // ------------------------------------------------------------------------------------------------

    static Stream<Arguments> shapes() {
        Stream.Builder<Arguments> cases = Stream.builder();
        int[][] models = {{32, 2, 64}, {48, 4, 96}};
        for (int[] m : models) {
            for (int batch : new int[] {1, 3}) {
                for (int seq : new int[] {1, 7, 16}) {
                    for (boolean types : new boolean[] {true, false}) {
                        cases.add(Arguments.of(m[0], m[1], m[2], batch, seq, types));
                    }
                }
            }
        }
        return cases.build();
    }

    @ParameterizedTest(name = "hidden={0} heads={1} inter={2} batch={3} seq={4} tokenTypes={5}")
    @MethodSource("shapes")
    void forwardPassMatchesTheFloat64ReferenceOnRaggedBatches(int hidden, int heads, int inter, int batch, int seq,
                                                              boolean tokenTypes) {
        BertConfig config = config(hidden, heads, inter, hidden == 32 ? 1e-12 : 1e-5);
        BertWeights weights = randomWeights(config, 31L * hidden + heads);
        Batch in = raggedBatch(config, batch, seq, tokenTypes, 1000L * batch + seq);
        BertReference.Output want = BertReference.forward(weights, in.inputIds(), in.attentionMask(),
                in.tokenTypeIds());
        // Odd cases run the packed layout (one request buffer), even ones a buffer per region.
        BertProgram.Layout layout = (batch + seq) % 2 == 0 ? BertProgram.Layout.SLOT_PER_REGION
                : BertProgram.Layout.PACKED;
        Result got;
        try (BertDeviceWeights onDevice = BertDeviceWeights.upload(device, weights)) {
            got = run(onDevice, batch, seq, layout, in);
        }
        double real = relativeL2(got.lastHiddenState(), want.lastHiddenState(), in.lengths(), true);
        double padded = relativeL2(got.lastHiddenState(), want.lastHiddenState(), in.lengths(), false);
        double pooler = relativeL2(got.poolerOutput(), want.poolerOutput());
        System.out.printf("hidden=%d heads=%d inter=%d batch=%d seq=%d tokenTypes=%s %s: relative L2 "
                        + "last_hidden_state real %.3g padded %.3g, pooler_output %.3g%n", hidden, heads, inter, batch,
                seq, tokenTypes, layout, real, padded, pooler);
        assertTrue(real < TOLERANCE, "last_hidden_state (real tokens) relative L2 " + real);
        assertTrue(padded < TOLERANCE, "last_hidden_state (padded positions) relative L2 " + padded);
        assertTrue(pooler < TOLERANCE, "pooler_output relative L2 " + pooler);
    }

    @Test
    void aFullyPaddedRowIsComputedAsHuggingFaceDoesWithoutNaN() {
        BertConfig config = config(32, 4, 64, 1e-12);
        BertWeights weights = randomWeights(config, 5);
        Batch in = raggedBatch(config, 2, 6, true, 9);
        java.util.Arrays.fill(in.attentionMask()[1], 0); // an empty row of a padded batch
        BertReference.Output want = BertReference.forward(weights, in.inputIds(), in.attentionMask(),
                in.tokenTypeIds());
        Result got;
        try (BertDeviceWeights onDevice = BertDeviceWeights.upload(device, weights)) {
            got = run(onDevice, 2, 6, BertProgram.Layout.PACKED, in);
        }
        double all = relativeL2(got.lastHiddenState(), want.lastHiddenState(), in.lengths(), null);
        double pooler = relativeL2(got.poolerOutput(), want.poolerOutput());
        System.out.printf("fully padded row: relative L2 last_hidden_state %.3g, pooler_output %.3g%n", all, pooler);
        assertTrue(all < TOLERANCE && pooler < TOLERANCE, all + " " + pooler);
    }

    @Test
    void aModelWithoutPoolerComputesTheEncoderAndRefusesPoolerOutputByName() {
        BertConfig config = config(48, 4, 96, 1e-12);
        BertWeights full = randomWeights(config, 91);
        Map<String, BertWeights.Tensor> tensors = new LinkedHashMap<>();
        for (String name : BertWeights.expectedShapes(config).keySet()) {
            if (!BertWeights.POOLER_TENSORS.contains(name)) {
                tensors.put(name, full.tensor(name));
            }
        }
        BertWeights weights = BertWeights.of(config, tensors);
        assertFalse(weights.hasPooler());
        Batch in = raggedBatch(config, 3, 7, true, 5);
        BertReference.Output want = BertReference.forward(full, in.inputIds(), in.attentionMask(), in.tokenTypeIds());
        try (BertDeviceWeights onDevice = BertDeviceWeights.upload(device, weights);
             BertProgram program = BertProgram.compile(onDevice, pipelines, 3, 7);
             BertProgram.RequestBuffers buffers = program.allocate(onDevice)) {
            program.writeInputs(buffers.slots(), in.inputIds(), in.attentionMask(), in.tokenTypeIds());
            Completions completions = new Completions();
            try (NativeStream stream = device.createStream(completions)) {
                program.encode(stream, buffers.slots());
                completions.awaitOk(stream.commit());
            }
            double hidden = relativeL2(program.readLastHiddenState(buffers.slots()), want.lastHiddenState(),
                    in.lengths(), null);
            assertTrue(hidden < TOLERANCE, "last_hidden_state relative L2 " + hidden);
            assertFalse(program.has(BertProgram.Output.POOLER_OUTPUT));
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> program.readPoolerOutput(buffers.slots()));
            assertTrue(e.getMessage().contains("does not compute pooler_output"), e.getMessage());
        }
        Map<String, BertWeights.Tensor> half = new LinkedHashMap<>(tensors);
        half.put("pooler.dense.weight", full.tensor("pooler.dense.weight"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> BertWeights.of(config, half));
        assertTrue(e.getMessage().contains("missing tensor pooler.dense.bias"), e.getMessage());
    }

    @Test
    void oneCompiledProgramServesTwoStreamsWithTheirOwnRequests() {
        BertConfig config = config(48, 4, 96, 1e-12);
        BertWeights weights = randomWeights(config, 77);
        Batch first = raggedBatch(config, 3, 7, true, 1);
        Batch second = raggedBatch(config, 3, 7, false, 2);
        try (BertDeviceWeights deviceWeights = BertDeviceWeights.upload(device, weights);
             BertProgram program = BertProgram.compile(deviceWeights, pipelines, 3, 7);
             BertProgram.RequestBuffers a = program.allocate(deviceWeights);
             BertProgram.RequestBuffers b = program.allocate(deviceWeights)) {
            Completions ca = new Completions(), cb = new Completions();
            try (NativeStream sa = device.createStream(ca); NativeStream sb = device.createStream(cb)) {
                program.writeInputs(a.slots(), first.inputIds(), first.attentionMask(), first.tokenTypeIds());
                program.writeInputs(b.slots(), second.inputIds(), second.attentionMask(), second.tokenTypeIds());
                program.encode(sa, a.slots());
                program.encode(sb, b.slots());
                long pa = sa.commit(), pb = sb.commit();
                ca.awaitOk(pa);
                cb.awaitOk(pb);
            }
            for (Object[] c : new Object[][] {{a, first}, {b, second}}) {
                BertProgram.RequestBuffers buffers = (BertProgram.RequestBuffers) c[0];
                Batch in = (Batch) c[1];
                BertReference.Output want = BertReference.forward(weights, in.inputIds(), in.attentionMask(),
                        in.tokenTypeIds());
                double hidden = relativeL2(program.readLastHiddenState(buffers.slots()), want.lastHiddenState(),
                        in.lengths(), null);
                double pooler = relativeL2(program.readPoolerOutput(buffers.slots()), want.poolerOutput());
                assertTrue(hidden < TOLERANCE && pooler < TOLERANCE, hidden + " " + pooler);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Input validation
    // ------------------------------------------------------------------------------------------------

    @Test
    void badInputsAreRejectedNamingTheProblem() {
        BertConfig config = config(32, 2, 64, 1e-12);
        try (BertDeviceWeights w = BertDeviceWeights.upload(device, randomWeights(config, 3));
             BertProgram program = BertProgram.compile(w, pipelines, 2, 3)) {
            int[][] ok = {{1, 2, 3}, {4, 5, 0}};
            int[][] mask = {{1, 1, 1}, {1, 1, 0}};
            assertEquals(6, program.prepareInputs(ok, mask, null).inputIds().length);
            assertRejected("input_ids[1][2] is 50, outside [0, 50)",
                    () -> program.prepareInputs(new int[][] {{1, 2, 3}, {4, 5, 50}}, mask, null));
            assertRejected("input_ids[0][0] is -1",
                    () -> program.prepareInputs(new int[][] {{-1, 2, 3}, {4, 5, 6}}, mask, null));
            assertRejected("token_type_ids[0][1] is 2, outside [0, 2)",
                    () -> program.prepareInputs(ok, mask, new int[][] {{0, 2, 0}, {0, 0, 0}}));
            assertRejected("attention_mask[1][0] is 2 but must be 0 or 1",
                    () -> program.prepareInputs(ok, new int[][] {{1, 1, 1}, {2, 1, 0}}, null));
            assertRejected("input_ids[1] has 2 tokens, every sequence must have 3",
                    () -> program.prepareInputs(new int[][] {{1, 2, 3}, {4, 5}}, mask, null));
            assertRejected("attention_mask has 1 sequences, the program runs batch 2",
                    () -> program.prepareInputs(ok, new int[][] {{1, 1, 1}}, null));
            assertRejected("input_ids is missing", () -> program.prepareInputs(null, mask, null));
            assertRejected("seq must be in [1, 40 (the longest sequence max_position_embeddings covers)], got 41",
                    () -> BertProgram.compile(w, pipelines, 1, 41));
            assertRejected("batch must be >= 1", () -> BertProgram.compile(w, pipelines, 0, 4));
        }
    }

    private static void assertRejected(String message, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(message), () -> "expected '" + message + "' in: " + e.getMessage());
    }
}
