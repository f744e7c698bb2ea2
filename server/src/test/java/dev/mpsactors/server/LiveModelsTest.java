package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.embeddings.CreateEmbeddingResponse;
import com.openai.models.embeddings.EmbeddingCreateParams;
import dev.mpsactors.model.onnx.OnnxBertImporter;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.text.SentenceEncoderConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Models managed live while traffic runs: a reload keeps answering every request (the old version until the
 * new one is warm, then the new one), an unload drains what it took and then answers 404, and the real
 * all-MiniLM-L6-v2 loaded over HTTP answers an unmodified OpenAI client (openai-java) with the embeddings
 * the in-process Embed computes.
 */
class LiveModelsTest {
    @TempDir
    static Path dir;
    static MpsServer server;
    static TestServers.Client http;

    @BeforeAll
    static void start() throws Exception {
        server = TestServers.start("mps-actors.server.warmup-batch-sizes = [1]",
                Map.of("tiny", TestServers.tinyFolder(dir, "tiny-a", 7)));
        http = new TestServers.Client(server.url());
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            assertTrue(server.shutdown().isEmpty(), "nothing left natively");
        }
    }

    /** Clients in closed loop on one model until stopped; every status counted. */
    static final class Traffic implements AutoCloseable {
        final Map<Integer, AtomicInteger> statuses = new ConcurrentHashMap<>();
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger sent = new AtomicInteger();
        final List<Thread> threads = new ArrayList<>();
        final List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();

        Traffic(String model, int clients) {
            for (int c = 0; c < clients; c++) {
                int client = c;
                Thread t = new Thread(() -> {
                    int n = 0;
                    while (!stop.get()) {
                        try {
                            sent.incrementAndGet();
                            TestServers.Reply r = http.post("/embed", "{\"model\": \"" + model
                                    + "\", \"inputs\": [\"traffic " + client + " " + n++ + "\"]}");
                            statuses.computeIfAbsent(r.status(), k -> new AtomicInteger()).incrementAndGet();
                        } catch (Exception e) {
                            errors.add(e);
                            return;
                        }
                    }
                });
                t.start();
                threads.add(t);
            }
        }

        int count(int status) {
            AtomicInteger n = statuses.get(status);
            return n == null ? 0 : n.get();
        }

        int answered() {
            return statuses.values().stream().mapToInt(AtomicInteger::get).sum();
        }

        void awaitAnswers(int atLeast) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (answered() < atLeast && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
        }

        @Override
        public void close() throws InterruptedException {
            stop.set(true);
            for (Thread t : threads) {
                t.join(60_000);
                assertFalse(t.isAlive(), "a client finished");
            }
            assertTrue(errors.isEmpty(), "no transport error: " + errors);
            assertEquals(sent.get(), answered(), "every request answered exactly once");
        }
    }

    static JsonNode embedOne(String model, String text) throws Exception {
        TestServers.Reply r = http.post("/embed", "{\"model\": \"" + model + "\", \"inputs\": \"" + text + "\"}");
        assertEquals(200, r.status(), r.toString());
        return r.json().get(0);
    }

    @Test
    void reloadServesEveryRequestAndUnloadDrainsThen404s() throws Exception {
        Path b = TestServers.tinyFolder(dir, "tiny-b", 99);
        ActorRef<TextProtocol.Command> refB = server.runtime().models().loadTextEncoder("ref-b", b).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        float[] expectedB = server.runtime().models().embed(refB, "r", List.of("after reload"), null).toCompletableFuture()
                .get(60, TimeUnit.SECONDS).vectors()[0];
        JsonNode before = embedOne("tiny", "after reload");
        try (Traffic traffic = new Traffic("tiny", 3)) {
            traffic.awaitAnswers(10);
            TestServers.Reply reload = http.send("PUT", "/models/tiny", "{\"folder\": \"" + b + "\"}");
            assertEquals(200, reload.status(), reload.toString());
            assertTrue(reload.json().path("version").asInt() > 1, reload.toString());
            int at = traffic.answered();
            traffic.awaitAnswers(at + 10);
            traffic.close();
            assertEquals(traffic.answered(), traffic.count(200), "every request during the reload served: "
                    + traffic.statuses);
        }
        JsonNode after = embedOne("tiny", "after reload");
        for (int i = 0; i < expectedB.length; i++) {
            assertEquals(expectedB[i], after.get(i).floatValue(), 1e-6, "the new version answers");
        }
        assertTrue(Math.abs(before.get(0).floatValue() - after.get(0).floatValue()) > 1e-4, "other weights");
        awaitGone("tiny.v1");

        TestServers.Reply load = http.send("PUT", "/models/extra", "{\"folder\": \"" + dir.resolve("tiny-a") + "\"}");
        assertEquals(200, load.status(), load.toString());
        String runtimeName = "extra.v" + load.json().path("version").asInt();
        Traffic traffic = new Traffic("extra", 3);
        traffic.awaitAnswers(10);
        TestServers.Reply unload = http.send("DELETE", "/models/extra", null);
        assertEquals(200, unload.status(), unload.toString());
        int served = traffic.count(200);
        traffic.awaitAnswers(traffic.answered() + 6);
        traffic.close();
        assertEquals(traffic.answered(), traffic.count(200) + traffic.count(404), "only 200 or 404: " + traffic.statuses);
        assertTrue(traffic.count(404) >= 3, "after the unload: 404 " + traffic.statuses);
        assertTrue(served >= 10);
        awaitGone(runtimeName);
        assertEquals(404, http.send("DELETE", "/models/extra", null).status());
        TestServers.Reply models = http.get("/models");
        assertFalse(models.body().contains("\"extra\""), models.toString());

        JsonNode badFolder = http.send("PUT", "/models/other", "{\"folder\": \"" + dir.resolve("missing") + "\"}")
                .json();
        assertTrue(badFolder.path("error").asText().contains("does not exist"), badFolder.toString());
        assertEquals(400, http.send("PUT", "/models/bad%20name", "{\"folder\": \"" + dir + "\"}").status());
        assertEquals(422, http.send("PUT", "/models/other", "{}").status());
    }

    static void awaitGone(String runtimeName) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (server.runtime().models().model(runtimeName).isPresent() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertFalse(server.runtime().models().model(runtimeName).isPresent(), runtimeName + " unloaded from the runtime");
    }

    static final List<String> SENTENCES = List.of("The quick brown fox jumps over the lazy dog.",
            "Paris is the capital of France.", "東京は日本の首都です。", "I love this so much 😀🎉",
            "def embed(texts): return [model(t) for t in texts]", "a");

    @Test
    void anUnmodifiedOpenAiClientGetsTheInProcessEmbeddingsOfTheRealMiniLm() throws Exception {
        Path onnx = dir.resolve("all-minilm-l6-v2.onnx");
        Path tokenizer = dir.resolve("tokenizer-src.json");
        TestServers.copyResource("all-minilm-l6-v2.onnx", onnx);
        TestServers.copyResource("all-minilm-l6-v2-tokenizer.json", tokenizer);
        Path minilm = dir.resolve("minilm");
        OnnxBertImporter.importFolder(onnx, tokenizer, minilm);
        SentenceEncoderConfig.write(minilm, Pooling.MEAN, true, 256);
        TestServers.Reply load = http.send("PUT", "/models/minilm", "{\"folder\": \"" + minilm + "\"}");
        assertEquals(200, load.status(), load.toString());

        ActorRef<TextProtocol.Command> reference = server.runtime().models().loadTextEncoder("minilm-ref", minilm)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        TextProtocol.Embeddings expected = server.runtime().models().embed(reference, "r", SENTENCES, null)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);

        OpenAIClient client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused")
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
        try {
            CreateEmbeddingResponse response = client.embeddings().create(EmbeddingCreateParams.builder()
                    .model("minilm").inputOfArrayOfStrings(SENTENCES).build());
            assertEquals(SENTENCES.size(), response.data().size());
            long tokens = 0;
            for (int i = 0; i < SENTENCES.size(); i++) {
                List<Float> got = response.data().get(i).embedding();
                assertEquals(i, response.data().get(i).index());
                assertEquals(384, got.size());
                double dot = 0, na = 0, nb = 0, maxDiff = 0;
                for (int k = 0; k < got.size(); k++) {
                    double a = got.get(k), e = expected.vectors()[i][k];
                    dot += a * e;
                    na += a * a;
                    nb += e * e;
                    maxDiff = Math.max(maxDiff, Math.abs(a - e));
                }
                assertTrue(dot / Math.sqrt(na * nb) > 1 - 1e-9, "cosine of sentence " + i);
                assertTrue(maxDiff < 1e-6, "sentence " + i + " differs by " + maxDiff);
                tokens += expected.tokenCounts()[i];
            }
            assertEquals(tokens, response.usage().promptTokens());
            assertEquals(tokens, response.usage().totalTokens());

            CreateEmbeddingResponse single = client.embeddings().create(EmbeddingCreateParams.builder()
                    .model("minilm").input(SENTENCES.get(1)).encodingFormat(EmbeddingCreateParams.EncodingFormat.BASE64)
                    .build());
            List<Float> one = single.data().get(0).embedding();
            for (int k = 0; k < one.size(); k++) {
                assertEquals(expected.vectors()[1][k], one.get(k), 1e-6, "base64, as the client decodes it");
            }
        } finally {
            client.close();
        }
    }
}
