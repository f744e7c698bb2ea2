package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every built-in cpu kernel, run through the real JNI path (device, library, pipeline, stream encode,
 * commit, completion callback, host read-back), matches an independent float64 reference within a
 * relative L2 error of 1e-5 on seeded random inputs. Each case prints its measured error.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KernelNumericsTest {
    static final double TOLERANCE = 1e-5;

    private NativeDevice device;
    private KernelLibrary library;
    private NativeStream stream;
    private CompletionRecorder recorder;
    private final Map<String, Pipeline> pipelines = new TreeMap<>();
    /** Worst relative L2 error per kernel, printed at the end. */
    private final Map<String, Double> worst = new TreeMap<>();

    @BeforeAll
    void openDevice() {
        device = NativeDevice.open(DeviceOptions.cpu());
        library = device.compileLibrary("*", null);
        for (String name : List.of("gemm", "layernorm", "softmax", "gelu", "tanh", "bias_add", "add", "embedding",
                "gemm_packed")) {
            pipelines.put(name, library.pipeline(name));
        }
        recorder = new CompletionRecorder();
        stream = device.createStream(recorder);
    }

    @AfterAll
    void closeDevice() {
        try {
            long last = stream.committedPoint();
            stream.close();
            pipelines.values().forEach(Pipeline::close);
            library.close();
            recorder.assertEachPointOnceInOrder(last);
            CompletionRecorder.awaitNoLiveObjects(device);
        } finally {
            device.close();
        }
        StringBuilder summary = new StringBuilder("[numerics] worst relative L2 error per kernel:");
        worst.forEach((k, v) -> summary.append(String.format("%n[numerics]   %-10s %.3e", k, v)));
        System.out.println(summary);
    }

    // ------------------------------------------------------------------------------------------------
    // gemm
    // ------------------------------------------------------------------------------------------------

    static Stream<Arguments> gemmCases() {
        double[][] alphaBeta = {{1.0, 0.0}, {0.75, -0.5}, {-1.25, 1.0}};
        List<Arguments> cases = new ArrayList<>();
        int i = 0;
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                for (int act = 0; act <= 2; act++) {
                    for (boolean bias : new boolean[] {false, true}) {
                        double[] ab = alphaBeta[i++ % alphaBeta.length];
                        cases.add(Arguments.of(ta, tb, act, bias, ab[0], ab[1]));
                    }
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "transA={0} transB={1} act={2} bias={3} alpha={4} beta={5}")
    @MethodSource("gemmCases")
    void gemmMatchesFloat64ForEveryTransposeActivationAndBiasCombination(boolean ta, boolean tb, int act,
                                                                         boolean bias, double alpha, double beta) {
        gemmCase(String.format("7x9x13 tA=%d tB=%d act=%d bias=%s a=%.2f b=%.2f", ta ? 1 : 0, tb ? 1 : 0, act,
                bias, alpha, beta), 7, 9, 13, ta, tb, alpha, beta, act, bias, 3, 0, 0, 100 + (ta ? 8 : 0) + (tb ? 4 : 0)
                + act * 2 + (bias ? 1 : 0));
    }

    @ParameterizedTest(name = "alpha={0} beta={1}")
    @CsvSource({"1.0, 0.0", "0.5, 0.0", "1.0, 1.0", "-2.0, 0.25", "0.0, 1.5"})
    void gemmScalesProductByAlphaAndAccumulatesBetaTimesC(double alpha, double beta) {
        gemmCase(String.format("alpha/beta a=%.2f b=%.2f", alpha, beta), 5, 6, 8, false, false, alpha, beta, 0,
                false, 0, 0, 0, 200);
    }

    @Test
    void gemmOnLargerBlockedShapesWithByteOffsetsAndPaddedLeadingDimensions() {
        gemmCase("64x48x96 offsets+pad tA=1 bias gelu", 64, 48, 96, true, false, 1.0, 0.5, 1, true, 5, 17, 33, 300);
        gemmCase("33x65x127 tB=1 tanh", 33, 65, 127, false, true, 0.5, 0.0, 2, true, 1, 4, 8, 301);
    }

    /**
     * One gemm: op(A) is m x k, op(B) k x n, C m x n; every operand padded by {@code pad} columns (padding
     * must stay untouched) and placed at an element offset inside its buffer.
     */
    private void gemmCase(String label, int m, int n, int k, boolean ta, boolean tb, double alpha, double beta,
                          int act, boolean withBias, int pad, int aOff, int cOff, long seed) {
        Random rnd = new Random(seed);
        int aRows = ta ? k : m;
        int aCols = ta ? m : k;
        int bRows = tb ? n : k;
        int bCols = tb ? k : n;
        int lda = aCols + pad;
        int ldb = bCols + pad;
        int ldc = n + pad;
        float[] a = uniform(rnd, aOff + aRows * lda);
        float[] b = uniform(rnd, bRows * ldb);
        float[] c = uniform(rnd, cOff + m * ldc);
        float[] bias = withBias ? uniform(rnd, n) : null;
        float[] y = new float[c.length];
        try (Scope s = new Scope()) {
            DeviceBuffer da = s.upload(a);
            DeviceBuffer db = s.upload(b);
            DeviceBuffer dc = s.upload(c);
            DeviceBuffer dbias = withBias ? s.upload(bias) : null;
            run("gemm", gemmArgs(da, 4L * aOff, db, 0, dc, 4L * cOff, dbias, m, n, k, lda, ldb, ldc, ta, tb, alpha,
                    beta, act, 1, 0, 0, 0, 1, 0, 0, 0));
            dc.read(0, y);
        }
        float[] aSlice = Arrays.copyOfRange(a, aOff, a.length);
        float[] cSlice = Arrays.copyOfRange(c, cOff, c.length);
        boolean[] written = new boolean[cSlice.length];
        double[] ref = Float64Reference.gemm(aSlice, b, cSlice, bias, m, n, k, lda, ldb, ldc, ta, tb, (float) alpha,
                (float) beta, act, 1, 0, 0, 0, 1, 0, 0, 0, written);
        float[] ySlice = Arrays.copyOfRange(y, cOff, y.length);
        check("gemm", label, ySlice, ref, written);
        assertUntouched(c, y, cOff, written);
    }

    // ------------------------------------------------------------------------------------------------
    // gemm_packed: a Linear layer over a weight packed on the host (BuiltinKernels.packWeights)
    // ------------------------------------------------------------------------------------------------

    /** Ragged against the 6 x 16 tile, the 384-deep K block and the 48-panel column block; every activation. */
    @ParameterizedTest(name = "{0}x{1}x{2} act={3} bias={4} pad={5}")
    @CsvSource({"1, 1, 1, 0, false, 0", "7, 17, 13, 1, true, 3", "6, 16, 384, 2, true, 0", "13, 33, 385, 0, true, 1",
            "121, 40, 9, 1, false, 2", "9, 770, 20, 1, true, 0", "50, 31, 800, 2, false, 1", "16, 48, 32, 1, true, 0"})
    void gemmPackedMatchesFloat64OnRaggedShapes(int m, int n, int k, int act, boolean withBias, int pad) {
        Random rnd = new Random(600 + m + n + k);
        int lda = k + pad, ldc = n + pad, aOff = 3, cOff = 5;
        float[] a = uniform(rnd, aOff + m * lda);
        float[] w = uniform(rnd, n * k); // a PyTorch Linear weight [n, k]
        float[] c = uniform(rnd, cOff + m * ldc);
        float[] bias = withBias ? uniform(rnd, n) : null;
        float[] packed = BuiltinKernels.packWeights(w, n, k);
        assertEquals(BuiltinKernels.packedFloats(n, k), packed.length);
        float[] y = new float[c.length];
        try (Scope s = new Scope()) {
            DeviceBuffer da = s.upload(a);
            DeviceBuffer dw = s.upload(packed);
            DeviceBuffer dc = s.upload(c);
            DeviceBuffer dbias = withBias ? s.upload(bias) : null;
            run("gemm_packed", BuiltinKernels.gemmPacked(da, 4L * aOff, lda, dw, 0, dbias, 0, dc, 4L * cOff, ldc, m, k,
                    n, act));
            dc.read(0, y);
        }
        float[] aSlice = Arrays.copyOfRange(a, aOff, a.length);
        float[] cSlice = Arrays.copyOfRange(c, cOff, c.length);
        boolean[] written = new boolean[cSlice.length];
        double[] ref = Float64Reference.gemm(aSlice, w, cSlice, bias, m, n, k, lda, k, ldc, false, true, 1.0f, 0.0f,
                act, 1, 0, 0, 0, 1, 0, 0, 0, written);
        float[] ySlice = Arrays.copyOfRange(y, cOff, y.length);
        check("gemm_packed", String.format("%dx%dx%d act=%d bias=%s pad=%d", m, n, k, act, withBias, pad), ySlice, ref,
                written);
        assertUntouched(c, y, cOff, written);
    }

    @Test
    void gemmPackedRejectsAnUnpackedWeightAtEncodeNamingTheKernelAndArgument() {
        try (Scope s = new Scope()) {
            DeviceBuffer a = s.upload(new float[10 * 10]);
            DeviceBuffer w = s.upload(new float[10 * 10]); // packed, 10 outputs take 16 * 10 floats
            DeviceBuffer c = s.upload(new float[10 * 10]);
            NativeException e = assertThrows(NativeException.class, () -> stream.encodeKernel(
                    pipelines.get("gemm_packed"), BuiltinKernels.gemmPacked(a, 0, 10, w, 0, null, 0, c, 0, 10, 10, 10,
                            10, 0)));
            assertTrue(e.getMessage().contains("gemm_packed: buffer W holds 400 bytes but needs 640"), e.getMessage());
        }
    }

    @Test
    void gemmTwoLevelBatchExpressesAttentionOverBatchSeqHeadsHeadDimWithoutCopies() {
        final int bsz = 2, seq = 5, heads = 3, hd = 4;
        Random rnd = new Random(400);
        float[] q = uniform(rnd, bsz * seq * heads * hd);
        float[] kk = uniform(rnd, bsz * seq * heads * hd);
        float[] v = uniform(rnd, bsz * seq * heads * hd);
        float[] mask = new float[bsz * seq];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = -rnd.nextFloat();
        }
        mask[seq - 1] = -1e4f; // batch 0 drops its last key
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] scores = new float[bsz * heads * seq * seq];
        float[] probs = new float[scores.length];
        float[] ctx = new float[bsz * seq * heads * hd];
        try (Scope s = new Scope()) {
            DeviceBuffer dq = s.upload(q);
            DeviceBuffer dk = s.upload(kk);
            DeviceBuffer dv = s.upload(v);
            DeviceBuffer dmask = s.upload(mask);
            DeviceBuffer dscores = s.upload(uniform(rnd, scores.length));
            DeviceBuffer draw = s.upload(uniform(rnd, scores.length));
            DeviceBuffer dctx = s.upload(uniform(rnd, ctx.length));
            // One command buffer: scores = scale * Q K^T per (batch, head); keep a copy; softmax; context = P V.
            stream.encodeKernel(pipelines.get("gemm"), gemmArgs(dq, 0, dk, 0, dscores, 0, null, seq, seq, hd,
                    heads * hd, heads * hd, seq, false, true, scale, 0.0, 0,
                    bsz, seq * heads * hd, seq * heads * hd, heads * seq * seq,
                    heads, hd, hd, seq * seq));
            stream.encodeCopy(dscores, 0, draw, 0, 4L * scores.length);
            stream.encodeKernel(pipelines.get("softmax"), new KernelArgs().buffer(dscores).buffer(dmask)
                    .i(bsz).i(heads).i(seq).i(seq).f(1.0));
            stream.encodeKernel(pipelines.get("gemm"), gemmArgs(dscores, 0, dv, 0, dctx, 0, null, seq, hd, seq,
                    seq, heads * hd, heads * hd, false, false, 1.0, 0.0, 0,
                    bsz, heads * seq * seq, seq * heads * hd, seq * heads * hd,
                    heads, seq * seq, hd, hd));
            recorder.awaitOk(stream.commit());
            draw.read(0, scores);
            dscores.read(0, probs);
            dctx.read(0, ctx);
        }
        double[] refScores = Float64Reference.gemm(q, kk, new float[scores.length], null, seq, seq, hd, heads * hd,
                heads * hd, seq, false, true, scale, 0.0, 0, bsz, seq * heads * hd, seq * heads * hd,
                heads * seq * seq, heads, hd, hd, seq * seq, null);
        check("gemm", "attention scores [2,5,3,4] Q K^T batched", scores, refScores, null);
        double[] refProbs = Float64Reference.softmax(scores, mask, bsz, heads, seq, seq, 1.0f);
        check("softmax", "attention probs [2,3,5,5] masked", probs, refProbs, null);
        double[] refCtx = Float64Reference.gemm(probs, v, new float[ctx.length], null, seq, hd, seq, seq, heads * hd,
                heads * hd, false, false, 1.0, 0.0, 0, bsz, heads * seq * seq, seq * heads * hd, seq * heads * hd,
                heads, seq * seq, hd, hd, null);
        check("gemm", "attention context [2,5,3,4] P V batched", ctx, refCtx, null);
        // End to end, the whole chain against float64 from the inputs alone.
        double[] chain = Float64Reference.softmax(toFloat(refScores), mask, bsz, heads, seq, seq, 1.0f);
        double[] refChain = Float64Reference.gemm(toFloat(chain), v, new float[ctx.length], null, seq, hd, seq, seq,
                heads * hd, heads * hd, false, false, 1.0, 0.0, 0, bsz, heads * seq * seq, seq * heads * hd,
                seq * heads * hd, heads, seq * seq, hd, hd, null);
        check("gemm", "attention end-to-end", ctx, refChain, null);
    }

    @Test
    void gemmBatchWithZeroStrideSharesOneWeightMatrixAcrossTheBatch() {
        final int batch = 3, m = 4, n = 6, k = 5;
        Random rnd = new Random(500);
        float[] a = uniform(rnd, batch * m * k);
        float[] w = uniform(rnd, k * n);
        float[] bias = uniform(rnd, n);
        float[] c = uniform(rnd, batch * m * n);
        float[] y = new float[c.length];
        try (Scope s = new Scope()) {
            DeviceBuffer da = s.upload(a);
            DeviceBuffer dw = s.upload(w);
            DeviceBuffer dc = s.upload(c);
            DeviceBuffer db = s.upload(bias);
            run("gemm", gemmArgs(da, 0, dw, 0, dc, 0, db, m, n, k, k, n, n, false, false, 1.0, 0.0, 2,
                    batch, m * k, 0, m * n, 1, 0, 0, 0));
            dc.read(0, y);
        }
        double[] ref = Float64Reference.gemm(a, w, c, bias, m, n, k, k, n, n, false, false, 1.0, 0.0, 2,
                batch, m * k, 0, m * n, 1, 0, 0, 0, null);
        check("gemm", "batch=3 shared weight (stride 0) bias tanh", y, ref, null);
    }

    static KernelArgs gemmArgs(DeviceBuffer a, long aByteOff, DeviceBuffer b, long bByteOff, DeviceBuffer c,
                               long cByteOff, DeviceBuffer bias, long m, long n, long k, long lda, long ldb, long ldc,
                               boolean ta, boolean tb, double alpha, double beta, int act,
                               long batchOuter, long saO, long sbO, long scO, long batchInner, long saI, long sbI,
                               long scI) {
        KernelArgs args = new KernelArgs().buffer(a, aByteOff).buffer(b, bByteOff).buffer(c, cByteOff);
        if (bias == null) {
            args.none();
        } else {
            args.buffer(bias);
        }
        return args.i(m).i(n).i(k).i(lda).i(ldb).i(ldc).i(ta ? 1 : 0).i(tb ? 1 : 0).f(alpha).f(beta).i(act)
                .i(batchOuter).i(saO).i(sbO).i(scO).i(batchInner).i(saI).i(sbI).i(scI);
    }

    // ------------------------------------------------------------------------------------------------
    // layernorm
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "residual={0} inPlace={1} cols={2}")
    @CsvSource({
        "false, false, 37", "true, false, 37", "false, true, 37", "true, true, 37",
        "false, false, 256", "true, false, 256", "false, true, 256", "true, true, 256"})
    void layerNormNormalizesEachRowOfXPlusResidualThenScalesAndShifts(boolean withResidual, boolean inPlace,
                                                                      int cols) {
        final int rows = 6;
        final float eps = 1e-5f;
        Random rnd = new Random(600 + cols + (withResidual ? 1 : 0) + (inPlace ? 2 : 0));
        float[] x = gaussian(rnd, rows * cols, 2.0, 3.0); // non-zero mean: centering matters
        float[] res = withResidual ? gaussian(rnd, rows * cols, 1.0, -1.0) : null;
        float[] gamma = uniform(rnd, cols);
        float[] beta = uniform(rnd, cols);
        float[] y = new float[rows * cols];
        try (Scope s = new Scope()) {
            DeviceBuffer dx = s.upload(x);
            DeviceBuffer dy = inPlace ? dx : s.upload(uniform(rnd, rows * cols));
            KernelArgs args = new KernelArgs().buffer(dx);
            if (withResidual) {
                args.buffer(s.upload(res));
            } else {
                args.none();
            }
            args.buffer(s.upload(gamma)).buffer(s.upload(beta)).buffer(dy).i(rows).i(cols).f(eps);
            run("layernorm", args);
            dy.read(0, y);
        }
        double[] ref = Float64Reference.layerNorm(x, res, gamma, beta, rows, cols, eps);
        check("layernorm", String.format("%dx%d residual=%s inPlace=%s", rows, cols, withResidual, inPlace), y, ref,
                null);
    }

    // ------------------------------------------------------------------------------------------------
    // softmax
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "mask={0} scale={1} cols={2}")
    @CsvSource({
        "false, 1.0, 5", "true, 1.0, 5", "false, 0.125, 37", "true, 0.125, 37", "true, 2.5, 64", "false, 2.5, 64"})
    void softmaxNormalizesScaledRowsPlusAdditiveMaskInPlace(boolean withMask, float scale, int cols) {
        final int batch = 2, heads = 3, rows = 4;
        Random rnd = new Random(700 + cols + (withMask ? 1 : 0));
        float[] x = gaussian(rnd, batch * heads * rows * cols, 3.0, 0.0);
        float[] mask = null;
        if (withMask) {
            mask = new float[batch * cols];
            for (int i = 0; i < mask.length; i++) {
                mask[i] = i % 4 == 3 ? -1e4f : -2f * rnd.nextFloat(); // some keys dropped, others biased
            }
        }
        float[] y = new float[x.length];
        try (Scope s = new Scope()) {
            DeviceBuffer dx = s.upload(x);
            KernelArgs args = new KernelArgs().buffer(dx);
            if (withMask) {
                args.buffer(s.upload(mask));
            } else {
                args.none();
            }
            run("softmax", args.i(batch).i(heads).i(rows).i(cols).f(scale));
            dx.read(0, y);
        }
        double[] ref = Float64Reference.softmax(x, mask, batch, heads, rows, cols, scale);
        check("softmax", String.format("[%d,%d,%d,%d] mask=%s scale=%s", batch, heads, rows, cols, withMask, scale),
                y, ref, null);
    }

    // ------------------------------------------------------------------------------------------------
    // gelu, tanh
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} n={1} inPlace={2}")
    @CsvSource({
        "gelu, 1, false", "gelu, 15, false", "gelu, 1000, false", "gelu, 1000, true",
        "tanh, 1, false", "tanh, 15, false", "tanh, 1000, false", "tanh, 1000, true"})
    void pointwiseActivationsMatchFloat64(String kernel, int n, boolean inPlace) {
        Random rnd = new Random(800 + n + (inPlace ? 1 : 0) + kernel.hashCode());
        float[] x = gaussian(rnd, n, 2.5, 0.0);
        float[] y = new float[n];
        try (Scope s = new Scope()) {
            DeviceBuffer dx = s.upload(x);
            DeviceBuffer dy = inPlace ? dx : s.upload(uniform(rnd, n));
            run(kernel, new KernelArgs().buffer(dx).buffer(dy).i(n));
            dy.read(0, y);
        }
        double[] ref = kernel.equals("gelu") ? Float64Reference.gelu(x) : Float64Reference.tanh(x);
        check(kernel, String.format("n=%d inPlace=%s", n, inPlace), y, ref, null);
    }

    // ------------------------------------------------------------------------------------------------
    // bias_add, add
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "inPlace={0}")
    @ValueSource(booleans = {false, true})
    void biasAddBroadcastsBiasOverRows(boolean inPlace) {
        final int rows = 5, cols = 33;
        Random rnd = new Random(900 + (inPlace ? 1 : 0));
        float[] x = uniform(rnd, rows * cols);
        float[] bias = uniform(rnd, cols);
        float[] y = new float[x.length];
        try (Scope s = new Scope()) {
            DeviceBuffer dx = s.upload(x);
            DeviceBuffer dy = inPlace ? dx : s.upload(uniform(rnd, x.length));
            run("bias_add", new KernelArgs().buffer(dx).buffer(s.upload(bias)).buffer(dy).i(rows).i(cols));
            dy.read(0, y);
        }
        check("bias_add", String.format("%dx%d inPlace=%s", rows, cols, inPlace), y,
                Float64Reference.biasAdd(x, bias, rows, cols), null);
    }

    @ParameterizedTest(name = "y aliases {0}")
    @ValueSource(strings = {"none", "a", "b"})
    void addSumsElementwiseAlsoWhenTheOutputAliasesAnInput(String alias) {
        final int n = 1001;
        Random rnd = new Random(1000 + alias.hashCode());
        float[] a = uniform(rnd, n);
        float[] b = uniform(rnd, n);
        float[] y = new float[n];
        try (Scope s = new Scope()) {
            DeviceBuffer da = s.upload(a);
            DeviceBuffer db = s.upload(b);
            DeviceBuffer dy = alias.equals("a") ? da : alias.equals("b") ? db : s.upload(uniform(rnd, n));
            run("add", new KernelArgs().buffer(da).buffer(db).buffer(dy).i(n));
            dy.read(0, y);
        }
        check("add", "n=1001 alias=" + alias, y, Float64Reference.add(a, b), null);
    }

    @Test
    void addReadsAndWritesAtTheGivenByteOffsetsOfOneSharedBuffer() {
        final int n = 100;
        Random rnd = new Random(1100);
        float[] all = uniform(rnd, 3 * n + 8);
        float[] after = new float[all.length];
        try (Scope s = new Scope()) {
            DeviceBuffer d = s.upload(all);
            // a at element 2, b at element 2 + n + 3, y at element 2 * n + 8
            run("add", new KernelArgs().buffer(d, 4L * 2).buffer(d, 4L * (n + 5)).buffer(d, 4L * (2 * n + 8)).i(n));
            d.read(0, after);
        }
        float[] a = Arrays.copyOfRange(all, 2, 2 + n);
        float[] b = Arrays.copyOfRange(all, n + 5, 2 * n + 5);
        check("add", "byte offsets in one buffer", Arrays.copyOfRange(after, 2 * n + 8, 3 * n + 8),
                Float64Reference.add(a, b), null);
        assertArrayEquals(Arrays.copyOfRange(all, 0, 2 * n + 8), Arrays.copyOfRange(after, 0, 2 * n + 8),
                "only y's range may change");
    }

    // ------------------------------------------------------------------------------------------------
    // embedding
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "accumulate={0}")
    @ValueSource(booleans = {false, true})
    void embeddingGathersTableRowsAndOptionallyAccumulatesIntoOut(boolean accumulate) {
        final int nIds = 11, dim = 19, vocab = 23;
        Random rnd = new Random(1200 + (accumulate ? 1 : 0));
        int[] ids = new int[nIds];
        for (int i = 0; i < nIds; i++) {
            ids[i] = rnd.nextInt(vocab);
        }
        ids[0] = 0;
        ids[1] = vocab - 1;
        ids[2] = ids[5]; // a repeated id
        float[] table = uniform(rnd, vocab * dim);
        float[] out = uniform(rnd, nIds * dim); // garbage to overwrite, or the sum to accumulate into
        float[] y = new float[out.length];
        try (Scope s = new Scope()) {
            DeviceBuffer dids = s.track(device.allocate(4L * nIds));
            dids.write(0, ids);
            DeviceBuffer dout = s.upload(out);
            run("embedding", new KernelArgs().buffer(dids).buffer(s.upload(table)).buffer(dout)
                    .i(nIds).i(dim).i(vocab).i(accumulate ? 1 : 0));
            dout.read(0, y);
        }
        check("embedding", String.format("n_ids=%d dim=%d vocab=%d accumulate=%s", nIds, dim, vocab, accumulate), y,
                Float64Reference.embedding(ids, table, out, dim, accumulate), null);
    }

    // ------------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------------

    /** Encodes one kernel, commits, waits (bounded) for its completion and asserts it is OK. */
    private void run(String kernel, KernelArgs args) {
        stream.encodeKernel(pipelines.get(kernel), args);
        long point = stream.commit();
        CompletionRecorder.Completion c = recorder.awaitOk(point);
        assertTrue(c.startedNanos() <= c.finishedNanos(), "started <= finished");
        assertEquals(point, stream.completedPoint(), "completedPoint has reached the reported point");
    }

    private void check(String kernel, String label, float[] y, double[] ref, boolean[] mask) {
        double err = Float64Reference.relativeL2(y, ref, mask);
        System.out.printf("[numerics] %-10s %-55s rel L2 = %.3e%n", kernel, label, err);
        synchronized (worst) {
            worst.merge(kernel, Double.isNaN(err) ? Double.POSITIVE_INFINITY : err, Math::max);
        }
        assertTrue(err < TOLERANCE, () -> kernel + " " + label + ": relative L2 error " + err + " >= " + TOLERANCE);
    }

    /** Elements of C the kernel must not write (before the offset, padding columns) are bit-identical. */
    private static void assertUntouched(float[] before, float[] after, int off, boolean[] written) {
        for (int i = 0; i < before.length; i++) {
            boolean isWritten = i >= off && written[i - off];
            if (!isWritten) {
                assertEquals(Float.floatToRawIntBits(before[i]), Float.floatToRawIntBits(after[i]),
                        "element " + i + " of C lies outside the product and must be untouched");
            }
        }
    }

    static float[] uniform(Random rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            float v;
            do {
                v = rnd.nextFloat() * 4f - 2f;
            } while (v == 0f);
            x[i] = v;
        }
        return x;
    }

    static float[] gaussian(Random rnd, int n, double sigma, double mean) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (mean + sigma * rnd.nextGaussian());
        }
        return x;
    }

    private static float[] toFloat(double[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = (float) x[i];
        }
        return y;
    }

    /** Buffers of one case, all closed on exit (aliases are tracked once). */
    private final class Scope implements AutoCloseable {
        private final List<DeviceBuffer> buffers = new ArrayList<>();

        DeviceBuffer upload(float[] data) {
            DeviceBuffer b = track(device.allocate(4L * data.length));
            b.write(0, data);
            return b;
        }

        DeviceBuffer track(DeviceBuffer b) {
            buffers.add(b);
            return b;
        }

        @Override
        public void close() {
            buffers.forEach(DeviceBuffer::close);
        }
    }
}
