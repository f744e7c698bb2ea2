package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ClusterClient;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.server.VocabularyTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Leave;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bin/mps-actors node --http-port 0} through the command line's entry point, in this JVM: the node prints
 * the URL it bound, answers an embedding over HTTP, and, when the cluster tells it to leave (as an operator's
 * {@code Leave} would), stops serving HTTP, leaves and returns 0 with its stopping line.
 */
class NodeHttpCommandTest {
    static final BertConfig CONFIG = new BertConfig("bert", 80, 32, 2, 4, 64, 64, 2, 1e-12, "gelu");
    static final Pattern URL = Pattern.compile("mps-actors node: HTTP on (http://127\\.0\\.0\\.1:\\d+) \\(models: tiny\\)");

    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aNodeStartedWithHttpPortZeroPrintsItsUrlAndAnswersAnEmbedding(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("tiny");
        Files.createDirectories(model);
        BertFolderGenerator.write(model, CONFIG, 6);
        VocabularyTokenizer.write(model, CONFIG.vocabSize());
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        ByteArrayOutputStream errors = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(printed, true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(errors, true, StandardCharsets.UTF_8);
        CompletableFuture<Integer> status = CompletableFuture.supplyAsync(() -> Cli.execute(out, err, "node",
                "--host", "127.0.0.1", "--port", Integer.toString(port), "--seeds", "127.0.0.1:" + port,
                "--model", "tiny=" + model, "--replicas", "1", "--http-port", "0", "--http-host", "127.0.0.1"));
        String self = "pekko://mps-actors@127.0.0.1:" + port;
        ClusterClient client = null;
        try {
            String up = awaitLine(printed, status, "mps-actors node " + self + " serving [tiny] x1");
            Matcher m = URL.matcher(up);
            assertTrue(m.find(), "the HTTP line with the bound URL:\n" + up);
            String url = m.group(1);

            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + "/embed"))
                    .timeout(Duration.ofSeconds(90)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"inputs\": \"w5 w6 w79\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode vectors = new ObjectMapper().readTree(r.body());
            assertEquals(1, vectors.size(), r.body());
            assertEquals(CONFIG.hiddenSize(), vectors.get(0).size(), r.body());
            double norm = 0;
            for (JsonNode v : vectors.get(0)) {
                assertTrue(Double.isFinite(v.asDouble()), r.body());
                norm += v.asDouble() * v.asDouble();
            }
            assertTrue(norm > 0, "a non-zero embedding: " + r.body());

            // the cluster tells the node to leave: it stops HTTP, leaves, and the command returns 0
            client = leave(port, self);
            assertEquals(0, status.get(120, TimeUnit.SECONDS), printed + "\n" + errors);
            assertTrue(printed.toString(StandardCharsets.UTF_8).contains("mps-actors node " + self
                    + " stopping: left the cluster"), printed.toString(StandardCharsets.UTF_8));
            assertEquals("", errors.toString(StandardCharsets.UTF_8));
            assertThrows(java.io.IOException.class, () -> http.send(HttpRequest.newBuilder(URI.create(url + "/health"))
                    .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()),
                    "HTTP no longer accepting");
        } finally {
            if (!status.isDone()) { // a failed assertion: the node still runs in this JVM
                if (client == null) {
                    client = leave(port, self);
                }
                status.exceptionally(e -> -1).get(120, TimeUnit.SECONDS);
            }
            if (client != null) {
                client.close();
            }
        }
    }

    /** A client member joins through the node and tells the cluster that the node leaves. */
    private static ClusterClient leave(int port, String node) throws InterruptedException {
        ClusterClient client = ClusterClient.start(ConfigFactory.parseString(String.join("\n",
                "pekko.loglevel = WARNING",
                "pekko.remote.artery.canonical.hostname = 127.0.0.1",
                "pekko.remote.artery.canonical.port = 0",
                "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on",
                "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off",
                "mps-actors.cluster.seeds = \"127.0.0.1:" + port + "\"")));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (client.cluster().selfMember().status() != MemberStatus.up() && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        assertEquals(MemberStatus.up(), client.cluster().selfMember().status(), "the client joined");
        client.cluster().manager().tell(new Leave(AddressFromURIString.parse(node)));
        return client;
    }

    /** Everything printed once {@code line} was (bounded); fails at once if the command returned first. */
    private static String awaitLine(ByteArrayOutputStream printed, CompletableFuture<Integer> status, String line)
            throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            String text = printed.toString(StandardCharsets.UTF_8);
            if (text.contains(line)) {
                return text;
            }
            assertTrue(!status.isDone(), "the command returned " + status.getNow(null) + " early:\n" + text);
            Thread.sleep(50);
        }
        throw new AssertionError("no '" + line + "' within 120 s:\n" + printed.toString(StandardCharsets.UTF_8));
    }
}
