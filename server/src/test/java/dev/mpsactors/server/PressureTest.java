package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * Behaviour under pressure, made deterministic: the model's max-delay (10 minutes) is longer than any test,
 * so a request that is not part of a full batch stays in the model's queue until its deadline passes, its
 * client goes away or the server stops. With max-queued 4, a flood gets exactly 4 requests queued and the
 * rest refused with 429; the queued ones expire with 504 and none reaches the device; a disconnected
 * client's request is dropped from the queue; a shutdown answers everything in flight once.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PressureTest {
    @TempDir
    static Path dir;
    static MpsServer server;
    static TestServers.Client http;
    static ActorRef<InferenceProtocol.Command> model;

    @BeforeAll
    static void start() throws Exception {
        server = TestServers.start("mps-actors { streams = 1, model { max-batch = 64, max-delay = 10m, max-queued = 4 },"
                + " server { warmup-batch-sizes = [], shutdown-timeout = 2s, retry-after = 3s } }",
                Map.of("tiny", TestServers.tinyFolder(dir, "tiny", 3)));
        http = new TestServers.Client(server.url());
        model = server.runtime().models().model("tiny.v1").orElseThrow();
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.shutdown();
        }
    }

    static InferenceProtocol.ModelStats stats() throws Exception {
        return TestServers.stats(server.runtime(), model);
    }

    static InferenceProtocol.ModelStats awaitStats(Predicate<InferenceProtocol.ModelStats> until) throws Exception {
        return TestServers.awaitStats(server.runtime(), model, until);
    }

    static CompletableFuture<HttpResponse<String>> sendAsync(String body, String timeout) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.url() + "/embed"))
                .timeout(java.time.Duration.ofSeconds(120)).POST(HttpRequest.BodyPublishers.ofString(body));
        if (timeout != null) {
            b.header("X-Request-Timeout", timeout);
        }
        return http.http.sendAsync(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    @Order(1)
    void aRequestWhoseDeadlinePassesInTheQueueIs504AndNeverComputed() throws Exception {
        TestServers.Reply r = http.post("/embed", "{\"inputs\": \"waits for company\"}", "X-Request-Timeout", "300ms");
        ServerRoutesTest.assertError(r, 504, "deadline", false);
        assertEquals("DeadlineExceeded", r.json().path("error_type").asText());
        InferenceProtocol.ModelStats s = awaitStats(x -> x.expired() == 1);
        assertEquals(0, s.sequences(), "nothing reached the device");
        assertEquals(0, s.batches());
    }

    @Test
    @Order(2)
    void aFloodGets429WithRetryAfterBeyondTheQueueAndEveryRequestOneAnswer() throws Exception {
        int n = 20;
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            all.add(sendAsync("{\"inputs\": \"flood " + i + "\"}", "3s"));
        }
        Map<Integer, Integer> statuses = new TreeMap<>();
        for (CompletableFuture<HttpResponse<String>> f : all) {
            HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
            statuses.merge(r.statusCode(), 1, Integer::sum);
            if (r.statusCode() == 429) {
                assertEquals("3", r.headers().firstValue("Retry-After").orElse(""), "Retry-After on 429");
                assertTrue(r.body().contains("\"error_type\":\"Overloaded\""), r.body());
            }
        }
        assertEquals(Map.of(429, n - 4, 504, 4), statuses, "max-queued 4 held, the rest refused; each answered once");
        InferenceProtocol.ModelStats s = awaitStats(x -> x.expired() == 5);
        assertEquals(n - 4, s.overloaded());
        assertEquals(0, s.sequences(), "nothing reached the device");
        java.util.Map<String, Double> metrics = ServerRoutesTest.parsePrometheus(http.get("/metrics").body());
        assertEquals(n - 4, ServerRoutesTest.sample(metrics, "mps_server_overloaded_total", "model", "tiny"), 0);
        assertEquals(n - 4, ServerRoutesTest.sample(metrics, "mps_model_overloaded_total", "model", "tiny"), 0);
    }

    @Test
    @Order(3)
    void aClientThatDisconnectsHasItsQueuedRequestDroppedBeforeTheDevice() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        byte[] body = "{\"inputs\": \"the client leaves\"}".getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            awaitStats(x -> x.requests() == before.requests() + 1); // queued at the model
            assertEquals(1, server.inFlight());
        }
        InferenceProtocol.ModelStats after = awaitStats(x -> x.failed() == before.failed() + 1);
        assertEquals(0, after.sequences(), "dropped before the device");
        assertEquals(before.expired(), after.expired(), "cancelled, not expired");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (server.inFlight() != 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, server.inFlight(), "nothing left in flight");
        java.util.Map<String, Double> metrics = ServerRoutesTest.parsePrometheus(http.get("/metrics").body());
        assertEquals(1, ServerRoutesTest.sample(metrics, "mps_server_cancelled_total", "model", "tiny"), 0);
    }

    @Test
    @Order(4)
    void shutdownStopsAcceptingAnswersWhatIsInFlightOnceThenFreesTheDevice() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        List<CompletableFuture<HttpResponse<String>>> held = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            held.add(sendAsync("{\"inputs\": \"in flight " + i + "\"}", "60s"));
        }
        awaitStats(x -> x.requests() == before.requests() + 3);
        String url = server.url();
        LiveObjects left = server.shutdown();
        assertTrue(left.isEmpty(), "nothing left natively: " + left);
        for (CompletableFuture<HttpResponse<String>> f : held) {
            HttpResponse<String> r = f.get(60, TimeUnit.SECONDS);
            assertEquals(503, r.statusCode(), r.body());
            assertTrue(r.body().contains("stopped"), r.body());
        }
        assertThrows(java.io.IOException.class, () -> new TestServers.Client(url).get("/health"),
                "no longer accepting");
    }
}
