package dev.mpsactors.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.Embed;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.EmbedOptions;
import dev.mpsactors.protocol.TextProtocol.EmbedReply;
import dev.mpsactors.protocol.TextProtocol.Embeddings;
import dev.mpsactors.runtime.TextRequestFailedException;
import dev.mpsactors.runtime.TextFlows;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Embed from text on the cpu backend: a small random BERT with the real all-MiniLM-L6-v2 tokenizer (its
 * vocabulary), sentence-transformers files saying mean pooling, Normalize and 64 tokens. Device-pooled
 * vectors are checked against last_hidden_state pooled on the host in float64; bad texts, oversize requests,
 * broken folders and random bytes each get exactly one reply naming the problem while their neighbours
 * succeed.
 */
class EmbedTest {
    static final BertConfig CONFIG = new BertConfig("bert", 30522, 32, 2, 4, 64, 64, 2, 1e-12, "gelu");
    static final int MAX_TEXTS = 8;
    static final int LIMIT = 64;

    @TempDir
    static Path dir;
    static Path folder;
    static MpsRuntime rt;
    static ActorRef<TextProtocol.Command> encoder;
    static ActorRef<InferenceProtocol.Command> model;

    @BeforeAll
    static void start() throws Exception {
        folder = modelFolder("model");
        SentenceEncoderConfig.write(folder, Pooling.MEAN, true, LIMIT);
        rt = MpsRuntime.start(ConfigFactory.parseString("mps-actors.text.max-texts = " + MAX_TEXTS)
                .withFallback(ConfigFactory.load()));
        encoder = rt.models().loadTextEncoder("text", folder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        model = rt.models().loadModel("tokens", folder).toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    @AfterAll
    static void stop() throws Exception {
        if (rt != null) {
            assertTrue(rt.shutdown(Duration.ofSeconds(60)).isEmpty(), "nothing left alive natively");
        }
    }

    static Path modelFolder(String name) throws Exception {
        Path f = dir.resolve(name);
        Files.createDirectories(f);
        BertFolderGenerator.write(f, CONFIG, 21);
        try (InputStream in = EmbedTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            assertTrue(in != null, "the all-MiniLM-L6-v2 tokenizer on the test class path");
            Files.copy(in, f.resolve(TextTokenizer.TOKENIZER_FILE));
        }
        return f;
    }

    static final List<String> TEXTS = List.of("Hello world.", "A somewhat longer sentence, with commas, to pad the others.",
            "東京タワー 😀", "x");

    @Test
    void devicePoolingMatchesHostPoolingOfTheSameTokensForEveryOverride() throws Exception {
        int[][] ids;
        try (TextTokenizer t = TextTokenizer.load(folder, LIMIT)) {
            List<TextTokenizer.Tokens> tokens = t.encode(TEXTS, true).tokens();
            ids = tokens.stream().map(TextTokenizer.Tokens::ids).toArray(int[][]::new);
        }
        // last_hidden_state of each text alone (no padding), pooled on the host in float64
        List<float[][]> states = new ArrayList<>();
        for (int[] seq : ids) {
            states.add(rt.models().infer(model, "h", InferenceProtocol.InferenceInputs.of(new int[][] {seq}))
                    .toCompletableFuture().get(60, TimeUnit.SECONDS).lastHiddenState()[0]);
        }
        for (Pooling pooling : Pooling.values()) {
            for (boolean normalize : new boolean[] {false, true}) {
                Embeddings e = rt.models().embed(encoder, "p", TEXTS, new EmbedOptions(pooling, normalize, true))
                        .toCompletableFuture().get(60, TimeUnit.SECONDS);
                for (int i = 0; i < TEXTS.size(); i++) {
                    assertEquals(ids[i].length, e.tokenCounts()[i]);
                    assertClose(pool(states.get(i), pooling, normalize), e.vectors()[i], pooling + "/" + normalize + " text " + i);
                }
            }
        }
        // no options: the folder's mean pooling and Normalize
        Embeddings byFolder = rt.models().embed(encoder, "f", TEXTS, null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        for (int i = 0; i < TEXTS.size(); i++) {
            assertClose(pool(states.get(i), Pooling.MEAN, true), byFolder.vectors()[i], "folder default, text " + i);
        }
    }

    @Test
    void longTextsAreCutToTheModelsLimitOrRefused() throws Exception {
        String longText = String.join(" ", Collections.nCopies(300, "token"));
        Embeddings cut = rt.models().embed(encoder, "t", List.of("short", longText), null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(LIMIT, cut.tokenCounts()[1]);
        assertArrayEquals(new boolean[] {false, true}, cut.truncated());
        ExecutionException refused = assertFailsWith(rt.models().embed(encoder, "r", List.of("short", longText),
                EmbedOptions.DEFAULT.withTruncate(false)));
        TextRequestFailedException e = assertInstanceOf(TextRequestFailedException.class, refused.getCause());
        assertEquals(List.of(new TextProtocol.TextProblem(1,
                "longer than the model's limit of " + LIMIT + " tokens and truncation is off")), e.problems());
    }

    @Test
    void badRequestsFailAloneEachAnsweredOnceWhileConcurrentNeighboursSucceed() throws Exception {
        Embeddings alone = rt.models().embed(encoder, "alone", TEXTS, null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        TestProbe<EmbedReply> probe = TestProbe.create(rt.system());
        Map<String, List<String>> bad = new HashMap<>();
        bad.put("empty", Arrays.asList("fine", ""));
        bad.put("blank", Arrays.asList(" \t\n", "fine"));
        bad.put("surrogate", Arrays.asList("fine", "broken \ud83d here"));
        bad.put("null", Arrays.asList("fine", null));
        bad.put("too-many", Collections.nCopies(MAX_TEXTS + 1, "fine"));
        bad.put("none", List.of());
        Map<String, String> expected = Map.of(
                "empty", "1 of 2 texts cannot be embedded: text 1: empty",
                "blank", "1 of 2 texts cannot be embedded: text 0: whitespace only",
                "surrogate", "1 of 2 texts cannot be embedded: text 1: unpaired high surrogate U+D83D at char 7 (not valid UTF-16)",
                "null", "1 of 2 texts cannot be embedded: text 1: null",
                "too-many", (MAX_TEXTS + 1) + " texts in one request; at most " + MAX_TEXTS + " (mps-actors.text.max-texts)",
                "none", "no texts to embed");
        int good = 12;
        for (int i = 0; i < good; i++) {
            encoder.tell(new Embed("good-" + i, TEXTS, null, probe.getRef()));
            String name = List.copyOf(new java.util.TreeSet<>(bad.keySet())).get(i % bad.size());
            if (i < bad.size()) {
                encoder.tell(new Embed(name, bad.get(name), null, probe.getRef()));
            }
        }
        Map<String, Integer> count = new HashMap<>();
        for (int i = 0; i < good + bad.size(); i++) {
            EmbedReply r = probe.receiveMessage(Duration.ofSeconds(60));
            count.merge(r.requestId(), 1, Integer::sum);
            if (r.requestId().startsWith("good-")) {
                Embeddings e = assertInstanceOf(Embeddings.class, r, r.toString());
                for (int t = 0; t < TEXTS.size(); t++) {
                    assertClose(toDouble(alone.vectors()[t]), e.vectors()[t], r.requestId() + " text " + t);
                }
            } else {
                TextFailure f = assertInstanceOf(TextFailure.class, r);
                assertEquals(expected.get(r.requestId()), f.reason());
            }
        }
        assertEquals(good + bad.size(), count.size(), "every request answered: " + count);
        assertTrue(count.values().stream().allMatch(c -> c == 1), "each exactly once: " + count);
        probe.expectNoMessage(Duration.ofMillis(300));
    }

    @Test
    void randomBytesAsTextNeverCrashAndAreAnsweredOnceEach() throws Exception {
        Random random = new Random(42);
        List<CompletableFuture<Object>> replies = new ArrayList<>();
        int requests = 60;
        for (int r = 0; r < requests; r++) {
            List<String> texts = new ArrayList<>();
            int n = 1 + random.nextInt(MAX_TEXTS);
            for (int t = 0; t < n; t++) {
                byte[] bytes = new byte[random.nextInt(200)];
                random.nextBytes(bytes);
                // half as UTF-8 (malformed bytes become U+FFFD), half as raw UTF-16 units (lone surrogates, controls)
                texts.add(random.nextBoolean() ? new String(bytes, StandardCharsets.UTF_8)
                        : new String(bytes, StandardCharsets.UTF_16LE));
            }
            replies.add(rt.models().embed(encoder, "fuzz-" + r, texts, null).toCompletableFuture()
                    .<Object>thenApply(e -> e).exceptionally(e -> e));
        }
        int ok = 0, refused = 0;
        for (CompletableFuture<Object> f : replies) {
            Object o = f.get(120, TimeUnit.SECONDS);
            if (o instanceof Embeddings e) {
                ok++;
                for (float[] v : e.vectors()) {
                    double norm = 0;
                    for (float x : v) {
                        assertTrue(Float.isFinite(x), "finite");
                        norm += (double) x * x;
                    }
                    assertEquals(1, Math.sqrt(norm), 1e-4, "normalized");
                }
            } else {
                Throwable t = o instanceof java.util.concurrent.CompletionException c ? c.getCause() : (Throwable) o;
                TextRequestFailedException e = assertInstanceOf(TextRequestFailedException.class, t, String.valueOf(t));
                assertFalse(e.problems().isEmpty(), "a refused fuzz request names its bad texts: " + e.getMessage());
                refused++;
            }
        }
        System.out.printf("fuzz: %d requests of random bytes, %d embedded, %d refused naming their texts%n",
                requests, ok, refused);
        assertEquals(requests, ok + refused);
        assertTrue(ok > 0 && refused > 0, "both outcomes exercised: " + ok + " ok, " + refused + " refused");
        // still serving
        assertEquals(TEXTS.size(), rt.models().embed(encoder, "after", TEXTS, null).toCompletableFuture()
                .get(60, TimeUnit.SECONDS).vectors().length);
    }

    @Test
    void aStreamOfRequestsGetsOneReplyEachInOrder() throws Exception {
        List<TextFlows.EmbedRequest> in = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            in.add(new TextFlows.EmbedRequest("s" + i, i % 5 == 4 ? List.of("") : TEXTS, null));
        }
        List<EmbedReply> out = Source.from(in)
                .via(TextFlows.embed(encoder, 4, Duration.ofSeconds(60), rt.system().scheduler()))
                .runWith(Sink.seq(), rt.system()).toCompletableFuture().get(120, TimeUnit.SECONDS);
        assertEquals(20, out.size());
        for (int i = 0; i < 20; i++) {
            assertEquals("s" + i, out.get(i).requestId());
            Class<?> want = i % 5 == 4 ? TextFailure.class : Embeddings.class;
            assertTrue(want.isInstance(out.get(i)), "element " + i + ": " + out.get(i));
        }
    }

    @Test
    void brokenFoldersAreRefusedNamingTheFile() throws Exception {
        Path noTokenizer = modelFolder("no-tokenizer");
        Files.delete(noTokenizer.resolve(TextTokenizer.TOKENIZER_FILE));
        assertLoadFails(noTokenizer, "tokenizer.json: no such file");

        Path corruptTokenizer = modelFolder("corrupt-tokenizer");
        Files.writeString(corruptTokenizer.resolve(TextTokenizer.TOKENIZER_FILE), "{\"model\": {\"vocab\": [");
        assertLoadFails(corruptTokenizer, "tokenizer.json: not valid JSON");

        Path corruptPooling = modelFolder("corrupt-pooling");
        SentenceEncoderConfig.write(corruptPooling, Pooling.MEAN, false, LIMIT);
        Files.writeString(corruptPooling.resolve("1_Pooling/config.json"), "not json");
        assertLoadFails(corruptPooling, "1_Pooling/config.json: not valid JSON");

        Path noPooling = modelFolder("no-pooling-config");
        SentenceEncoderConfig.write(noPooling, Pooling.MEAN, false, LIMIT);
        Files.delete(noPooling.resolve("1_Pooling/config.json"));
        assertLoadFails(noPooling, "1_Pooling/config.json: no such file");
    }

    private static void assertLoadFails(Path f, String part) throws Exception {
        ExecutionException e = assertFailsWith(rt.models().loadTextEncoder("broken", f));
        assertTrue(e.getCause().getMessage().contains(part), "'" + e.getCause().getMessage() + "' names " + part);
    }

    private static ExecutionException assertFailsWith(java.util.concurrent.CompletionStage<?> stage) throws Exception {
        try {
            stage.toCompletableFuture().get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            return e;
        }
        throw new AssertionError("expected a failure");
    }

    static double[] pool(float[][] state, Pooling pooling, boolean normalize) {
        int n = state.length, h = state[0].length;
        double[] out = new double[h];
        for (int k = 0; k < h; k++) {
            double acc = pooling == Pooling.MAX ? Double.NEGATIVE_INFINITY : 0;
            for (int t = 0; t < n; t++) {
                acc = pooling == Pooling.MAX ? Math.max(acc, state[t][k]) : acc + state[t][k];
            }
            out[k] = switch (pooling) {
                case CLS -> state[0][k];
                case MEAN -> acc / n;
                case MAX -> acc;
                case MEAN_SQRT_LEN -> acc / Math.sqrt(n);
            };
        }
        if (normalize) {
            double norm = Math.sqrt(Arrays.stream(out).map(x -> x * x).sum());
            for (int k = 0; k < h; k++) {
                out[k] /= norm;
            }
        }
        return out;
    }

    static double[] toDouble(float[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i];
        }
        return out;
    }

    static void assertClose(double[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": dimension");
        double num = 0, den = 0;
        for (int k = 0; k < want.length; k++) {
            num += (got[k] - want[k]) * (got[k] - want[k]);
            den += want[k] * want[k];
        }
        double rel = Math.sqrt(num / den);
        assertTrue(rel < 1e-5, what + ": relative L2 " + rel);
    }
}
