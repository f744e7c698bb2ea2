package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every route of the server over real HTTP on 127.0.0.1, and every error status a request can earn, each
 * as JSON in the route's style: a small random BERT with the real all-MiniLM-L6-v2 tokenizer, served next
 * to an encoder of the same folder loaded in-process, whose Embed the HTTP answers must equal.
 */
class ServerRoutesTest {
    static final String CONFIG = "mps-actors { text.max-texts = 64, server { max-texts = 8,"
            + " max-tokens-per-request = 200, max-body-bytes = 16KiB, warmup-batch-sizes = [1, 0] } }";

    @TempDir
    static Path dir;
    static Path folder;
    static MpsServer server;
    static TestServers.Client http;
    static ActorRef<TextProtocol.Command> reference;

    @BeforeAll
    static void start() throws Exception {
        folder = TestServers.tinyFolder(dir, "tiny", 7);
        server = TestServers.start(CONFIG, Map.of("tiny", folder));
        http = new TestServers.Client(server.url());
        reference = server.runtime().models().loadTextEncoder("reference", folder).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            assertTrue(server.shutdown().isEmpty(), "nothing left natively");
        }
    }

    static float[][] inProcess(List<String> texts, Boolean normalize) throws Exception {
        MpsRuntime rt = server.runtime();
        return rt.models().embed(reference, "ref", texts, new TextProtocol.EmbedOptions(null, normalize, false))
                .toCompletableFuture().get(60, TimeUnit.SECONDS).vectors();
    }

    static void assertClose(float[] expected, JsonNode actual, String what) {
        assertEquals(expected.length, actual.size(), what + ": width");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual.get(i).floatValue(), 1e-6, what + "[" + i + "]");
        }
    }

    static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": width");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-6, what + "[" + i + "]");
        }
    }

    /** An error: the status, JSON with a message (TEI style unless openAi), no stack trace. */
    static JsonNode assertError(TestServers.Reply r, int status, String messagePart, boolean openAi) {
        assertEquals(status, r.status(), r.toString());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), r.toString());
        JsonNode j = r.json();
        String message = openAi ? j.path("error").path("message").asText() : j.path("error").asText();
        assertFalse(message.isEmpty(), r.toString());
        assertTrue(message.contains(messagePart), "'" + messagePart + "' in " + r);
        assertFalse(r.body().contains("\tat ") || r.body().contains("Exception"), "no stack trace: " + r);
        return j;
    }

    @Test
    void embedAnswersWhatTheInProcessEncoderComputes() throws Exception {
        List<String> texts = List.of("Hello world.", "A longer sentence, with commas, to pad the others.", "東京 😀");
        TestServers.Reply r = http.post("/embed", TestServers.JSON.writeValueAsString(Map.of("inputs", texts)));
        assertEquals(200, r.status(), r.toString());
        float[][] expected = inProcess(texts, true);
        for (int i = 0; i < texts.size(); i++) {
            assertClose(expected[i], r.json().get(i), "text " + i);
        }
        TestServers.Reply one = http.post("/embed", "{\"inputs\": \"Hello world.\", \"normalize\": false}");
        assertEquals(200, one.status(), one.toString());
        assertEquals(1, one.json().size());
        assertClose(inProcess(List.of("Hello world."), false)[0], one.json().get(0), "unnormalized");
        // priority and deadline headers are accepted
        assertEquals(200, http.post("/embed", "{\"inputs\": \"x y\"}", "X-Request-Priority", "7",
                "X-Request-Timeout", "20s").status());
    }

    @Test
    void openAiEmbeddingsTakeStringsAndTokenArraysFloatOrBase64WithUsage() throws Exception {
        float[] hello = inProcess(List.of("hello world"), null)[0];
        TestServers.Reply s = http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": \"hello world\"}");
        assertEquals(200, s.status(), s.toString());
        JsonNode j = s.json();
        assertEquals("list", j.path("object").asText());
        assertEquals("tiny", j.path("model").asText());
        assertEquals("embedding", j.path("data").get(0).path("object").asText());
        assertClose(hello, j.path("data").get(0).path("embedding"), "string");
        assertEquals(4, j.path("usage").path("prompt_tokens").asInt(), "[CLS] hello world [SEP]");
        assertEquals(4, j.path("usage").path("total_tokens").asInt());

        // the same text as the tokenizer's ids: one sequence, and a list of sequences
        TestServers.Reply ids = http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": [101, 7592, 2088, 102]}");
        assertEquals(200, ids.status(), ids.toString());
        assertClose(hello, ids.json().path("data").get(0).path("embedding"), "token ids");
        TestServers.Reply lists = http.post("/v1/embeddings",
                "{\"model\": \"tiny\", \"input\": [[101, 7592, 2088, 102], [101, 7592, 102]]}");
        assertEquals(200, lists.status(), lists.toString());
        assertEquals(2, lists.json().path("data").size());
        assertEquals(1, lists.json().path("data").get(1).path("index").asInt());
        assertClose(hello, lists.json().path("data").get(0).path("embedding"), "list of token ids");
        assertEquals(7, lists.json().path("usage").path("prompt_tokens").asInt());

        TestServers.Reply b64 = http.post("/v1/embeddings",
                "{\"model\": \"tiny\", \"input\": [\"hello world\"], \"encoding_format\": \"base64\"}");
        assertEquals(200, b64.status(), b64.toString());
        ByteBuffer bytes = ByteBuffer.wrap(Base64.getDecoder().decode(b64.json().path("data").get(0).path("embedding")
                .asText())).order(ByteOrder.LITTLE_ENDIAN);
        float[] decoded = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(decoded);
        assertClose(hello, decoded, "base64");

        assertError(http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": [101, 99999999]}"), 400,
                "is not a token id", true);
        assertError(http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": []}"), 400, "input", true);
        assertError(http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": \"x\", \"encoding_format\": \"hex\"}"),
                400, "encoding_format", true);
        assertError(http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": \"x\", \"dimensions\": 8}"),
                400, "dimensions", true);
        JsonNode missing = assertError(http.post("/v1/embeddings", "{\"model\": \"nope\", \"input\": \"x\"}"), 404,
                "not loaded", true);
        assertEquals("not_found_error", missing.path("error").path("type").asText());
        assertError(http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": [[101, -5, 102]]}"), 400,
                "input[0][1] = -5 is not a token id", true);
    }

    @Test
    void infoHealthModelsAndV1Models() throws Exception {
        TestServers.Reply info = http.get("/info");
        assertEquals(200, info.status(), info.toString());
        assertEquals("tiny", info.json().path("model_id").asText());
        assertEquals(64, info.json().path("max_input_length").asInt());
        assertEquals("mean", info.json().path("model_type").path("embedding").path("pooling").asText());
        assertEquals(8, info.json().path("max_client_batch_size").asInt());
        assertError(http.get("/info?model=nope"), 404, "not loaded", false);

        TestServers.Reply health = http.get("/health");
        assertEquals(200, health.status(), health.toString());
        assertEquals("ok", health.json().path("status").asText());

        TestServers.Reply v1 = http.get("/v1/models");
        assertEquals(200, v1.status());
        List<String> ids = new ArrayList<>();
        v1.json().path("data").forEach(m -> ids.add(m.path("id").asText()));
        assertTrue(ids.contains("tiny"), v1.toString());
        assertEquals("model", v1.json().path("data").get(0).path("object").asText());

        TestServers.Reply models = http.get("/models");
        assertEquals(200, models.status());
        JsonNode tiny = null;
        for (JsonNode m : models.json()) {
            if (m.path("name").asText().equals("tiny")) {
                tiny = m;
            }
        }
        assertTrue(tiny != null, models.toString());
        // warmed: 4 bucketed lengths (16, 32, 48, 64) at batch 1 and at max-batch
        assertEquals(8, tiny.path("warmed_shapes").asInt(), models.toString());
    }

    @Test
    void rerankAndPredictOnAnEncoderBodyAre400NamingTheMissingHead() throws Exception {
        JsonNode r = assertError(http.post("/rerank", "{\"query\": \"q\", \"texts\": [\"a\", \"b\"], \"return_text\": true,"
                + " \"raw_scores\": false}"), 400, "sequence-classification head", false);
        assertEquals("Unsupported", r.path("error_type").asText());
        assertError(http.post("/predict", "{\"inputs\": \"some text\"}"), 400, "sequence-classification head", false);
        assertError(http.post("/predict", "{\"inputs\": [[\"a\", \"b\"]]}"), 422, "pairs", false);
        assertError(http.post("/rerank", "{\"texts\": [\"a\"]}"), 422, "\"query\" is missing", false);
    }

    @Test
    void everyErrorStatusIsJsonNamingTheProblem() throws Exception {
        assertError(http.get("/nothing-here"), 404, "", false);
        assertError(http.get("/embed"), 405, "", false);
        assertError(http.post("/embed", "{\"inputs\": \"x\", \"model\": \"nope\"}"), 404, "not loaded", false);
        assertError(http.post("/embed", "{\"inputs\": "), 400, "not valid JSON", false);
        assertError(http.post("/embed", "[1, 2]"), 422, "must be a JSON object", false);
        assertError(http.post("/embed", "{\"inputs\": 5}"), 422, "\"inputs\" must be a string or a list", false);
        assertError(http.post("/embed", "{\"inputs\": [\"a\", 3]}"), 422, "\"inputs\"[1]", false);
        assertError(http.post("/embed", "{\"inputs\": \"a\", \"normalize\": \"yes\"}"), 422, "boolean", false);
        JsonNode empty = assertError(http.post("/embed", "{\"inputs\": []}"), 400, "no inputs", false);
        assertEquals("Empty", empty.path("error_type").asText());
        assertError(http.post("/embed", "{\"inputs\": \"\"}"), 422, "text 0: empty", false);
        JsonNode surrogate = assertError(http.post("/embed", "{\"inputs\": [\"fine\", \"\\ud800 lone\"]}"), 422,
                "unpaired high surrogate", false);
        assertEquals("text 1: unpaired high surrogate U+D800 at char 0 (not valid UTF-16)",
                surrogate.path("problems").get(0).asText());
        assertError(http.post("/embed", "{\"inputs\": \"x\"}", "X-Request-Timeout", "soon"), 400, "X-Request-Timeout",
                false);
        assertError(http.post("/embed", "{\"inputs\": \"x\"}", "X-Request-Timeout", "1h"), 400, "max-request-timeout",
                false);
        assertError(http.post("/embed", "{\"inputs\": \"x\"}", "X-Request-Priority", "1000"), 400, "max-priority", false);
        assertError(http.post("/embed", "{\"inputs\": \"x\"}", "X-Request-Priority", "high"), 400, "X-Request-Priority",
                false);
    }

    @Test
    void eachLimitIsAnsweredNamingIt() throws Exception {
        List<String> nine = java.util.Collections.nCopies(9, "a text");
        assertError(http.post("/embed", TestServers.JSON.writeValueAsString(Map.of("inputs", nine))), 413,
                "mps-actors.server.max-texts", false);
        assertError(http.post("/v1/embeddings", TestServers.JSON.writeValueAsString(Map.of("model", "tiny",
                "input", java.util.Collections.nCopies(9, List.of(101, 102))))), 413, "mps-actors.server.max-texts", true);
        String big = "x".repeat(17 * 1024);
        assertError(http.post("/embed", TestServers.JSON.writeValueAsString(Map.of("inputs", big))), 413,
                "mps-actors.server.max-body-bytes", false);
        String longText = "word ".repeat(100);
        JsonNode tooLong = assertError(http.post("/embed", TestServers.JSON.writeValueAsString(
                Map.of("inputs", longText, "truncate", false))), 413, "limit of 64 tokens", false);
        assertEquals("Validation", tooLong.path("error_type").asText());
        TestServers.Reply cut = http.post("/embed", TestServers.JSON.writeValueAsString(
                Map.of("inputs", longText, "truncate", true)));
        assertEquals(200, cut.status(), cut.toString());
        List<String> four = java.util.Collections.nCopies(4, longText);
        assertError(http.post("/embed", TestServers.JSON.writeValueAsString(Map.of("inputs", four, "truncate", true))),
                413, "mps-actors.server.max-tokens-per-request", false);
        assertError(http.post("/v1/embeddings", TestServers.JSON.writeValueAsString(Map.of("model", "tiny",
                "input", java.util.Collections.nCopies(70, 1000)))), 413, "over the model's limit", true);
    }

    /** One Prometheus text-format sample line: name, optional labels, a value. */
    static final Pattern SAMPLE = Pattern.compile(
            "([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{((?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\]|\\\\.)*\",?)*)\\})? "
                    + "(-?[0-9.eE+-]+|NaN|[+-]Inf)( [0-9]+)?");
    static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"");

    /** Every sample of a scrape, by name and labels; fails on any line that is not Prometheus text. */
    static Map<String, Double> parsePrometheus(String text) {
        Map<String, Double> samples = new HashMap<>();
        for (String line : text.split("\n")) {
            if (line.isBlank() || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
                continue;
            }
            Matcher m = SAMPLE.matcher(line);
            assertTrue(m.matches(), "a Prometheus sample line: " + line);
            Map<String, String> labels = new java.util.TreeMap<>();
            if (m.group(3) != null) {
                Matcher l = LABEL.matcher(m.group(3));
                while (l.find()) {
                    labels.put(l.group(1), l.group(2));
                }
            }
            samples.put(m.group(1) + labels, Double.parseDouble(m.group(4).replace("Inf", "Infinity")));
        }
        return samples;
    }

    static double sample(Map<String, Double> samples, String name, String... labels) {
        Map<String, String> want = new java.util.TreeMap<>();
        for (int i = 0; i + 1 < labels.length; i += 2) {
            want.put(labels[i], labels[i + 1]);
        }
        double sum = 0;
        boolean found = false;
        for (Map.Entry<String, Double> e : samples.entrySet()) {
            if (e.getKey().startsWith(name + "{") || e.getKey().equals(name + "{}")) {
                String ls = e.getKey().substring(name.length());
                boolean all = want.entrySet().stream().allMatch(w -> ls.contains(w.getKey() + "=" + w.getValue()));
                if (all) {
                    sum += e.getValue();
                    found = true;
                }
            }
        }
        assertTrue(found, name + " " + want + " in the scrape");
        return sum;
    }

    @Test
    void metricsAreScrapedAndParsedAsPrometheusText() throws Exception {
        for (int i = 0; i < 5; i++) {
            assertEquals(200, http.post("/embed", "{\"inputs\": [\"metric text " + i + "\"]}").status());
        }
        assertEquals(404, http.post("/embed", "{\"inputs\": \"x\", \"model\": \"nope\"}").status());
        TestServers.Reply r = http.get("/metrics");
        assertEquals(200, r.status());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"), r.toString());
        Map<String, Double> s = parsePrometheus(r.body());
        assertTrue(sample(s, "mps_server_requests_seconds_count", "model", "tiny", "route", "embed", "status", "200") >= 5);
        assertTrue(sample(s, "mps_server_requests_seconds_count", "model", "nope", "status", "404") >= 1);
        assertTrue(sample(s, "mps_server_requests_seconds_bucket", "model", "tiny", "route", "embed") > 0,
                "latency histogram");
        assertTrue(sample(s, "mps_model_batches_total", "model", "tiny") >= 5);
        assertTrue(sample(s, "mps_model_sequences_total", "model", "tiny") >= 5);
        assertTrue(sample(s, "mps_model_batch_size_mean", "model", "tiny") >= 1);
        sample(s, "mps_model_queue_depth", "model", "tiny");
        sample(s, "mps_model_overloaded_total", "model", "tiny");
        assertTrue(sample(s, "mps_server_tokens_total", "model", "tiny") >= 5 * 5);
        sample(s, "mps_server_tokens_per_second", "model", "tiny");
        assertTrue(sample(s, "mps_device_memory_reserved_bytes") > 0, "the allocator holds memory after batches");
        sample(s, "mps_device_memory_allocated_bytes");
        assertTrue(sample(s, "mps_device_memory_limit_bytes") > 0);
        assertTrue(sample(s, "mps_stream_busy_seconds_total", "stream", "0") > 0);
        double u = sample(s, "mps_stream_utilisation", "stream", "0");
        assertTrue(u >= 0 && u <= 1, "utilisation " + u);
    }

    @Test
    void fuzzedBodiesAre4xxJsonNeverA500OrAHang() throws Exception {
        Random random = new Random(2026);
        List<String> seeds = List.of(
                "{\"inputs\": [\"a\", \"b\"], \"normalize\": true, \"truncate\": false}",
                "{\"model\": \"tiny\", \"input\": [[101, 102], [101, 7592, 102]], \"encoding_format\": \"float\"}",
                "{\"query\": \"q\", \"texts\": [\"a\"], \"return_text\": true, \"raw_scores\": false}",
                "{\"folder\": \"/nonexistent\"}");
        List<String> paths = List.of("/embed", "/v1/embeddings", "/rerank", "/predict", "/models/fuzz");
        List<String> values = List.of("1e400", "-1e400", "99999999999999999999999999", "-0", "1.5", "null", "true",
                "\"\"", "[]", "{}", "[[[]]]", "\"\\u0000\"", "\"\\ud800\"", "[1e308, -1e308]", "[" + "1,".repeat(50) + "1]",
                "9".repeat(70), "[\"" + "z".repeat(3000) + "\"]");
        int n = 0;
        for (int i = 0; i < 240; i++) {
            String seed = seeds.get(random.nextInt(seeds.size()));
            String body = switch (random.nextInt(6)) {
                case 0 -> seed.substring(0, random.nextInt(seed.length())); // truncated
                case 1 -> { // random bytes as text
                    byte[] b = new byte[random.nextInt(64)];
                    random.nextBytes(b);
                    yield new String(b, java.nio.charset.StandardCharsets.ISO_8859_1);
                }
                case 2 -> "[".repeat(10 + random.nextInt(3000)) + "]".repeat(random.nextInt(3)); // deep nesting
                case 3 -> "{\"inputs\": " + "{\"a\": ".repeat(20 + random.nextInt(200)) + "1" + "}".repeat(5) + "}";
                default -> { // every field of a seed replaced by a random value
                    JsonNode tree = TestServers.JSON.readTree(seed);
                    StringBuilder sb = new StringBuilder("{");
                    var it = tree.fieldNames();
                    while (it.hasNext()) {
                        String f = it.next();
                        sb.append(sb.length() > 1 ? "," : "").append('"').append(f).append("\": ")
                                .append(random.nextInt(3) == 0 ? tree.get(f).toString()
                                        : values.get(random.nextInt(values.size())));
                    }
                    yield sb.append('}').toString();
                }
            };
            String path = paths.get(random.nextInt(paths.size()));
            TestServers.Reply r = http.send(path.startsWith("/models") ? "PUT" : "POST", path, body);
            n++;
            assertTrue(r.status() == 200 || (r.status() >= 400 && r.status() < 500), body + " -> " + r);
            JsonNode j = r.json();
            if (r.status() != 200) {
                assertTrue(j.has("error"), r.toString());
                assertFalse(r.body().contains("\tat ") || r.body().contains("Exception"), r.toString());
            }
        }
        assertEquals(240, n);
        assertEquals(200, http.get("/health").status(), "still serving");
    }
}
