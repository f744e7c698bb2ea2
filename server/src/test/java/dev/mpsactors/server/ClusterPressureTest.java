package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ClusterNode;
import dev.mpsactors.cluster.ClusterTestNodes;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
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
 * Behaviour under pressure through a cluster, over real HTTP: two nodes in this JVM, one replica of the model
 * (a sharded entity), and the HTTP server on the node that does not hold it, so every request crosses nodes as
 * CBOR. The replica's model batches two sequences (max-batch 2) and lets a smaller batch wait ten minutes
 * for company (max-delay), so what is queued stays queued until the test moves it; it holds at most four
 * requests (max-queued). The outcomes are then exact: a request whose deadline passes in the replica's queue is
 * 504 and never computed; a higher priority overtakes an earlier request in the replica's batcher; a flood
 * beyond the queue is 429 with Retry-After, each request answered once; a client that disconnects has its
 * request dropped from the replica's queue. The HTTP node's /metrics counts the model's requests though it
 * holds no replica of it.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterPressureTest {
    private static final String MODEL = "tiny";
    private static final Duration BOUND = Duration.ofSeconds(90);
    /** One sequence of 3 tokens (length bucket 16); alone it waits for company. */
    private static final String ONE = "[[101, 7592, 102]]";
    /** Two sequences: a full batch on its own. */
    private static final String TWO = "[[101, 7592, 102], [101, 2088, 102]]";

    @TempDir
    static Path dir;
    static List<ClusterNode> nodes = new ArrayList<>();
    static ClusterNode replicaNode;
    static MpsServer server;
    static TestServers.Client http;
    static ActorRef<InferenceProtocol.Command> replica;

    @BeforeAll
    static void start() throws Exception {
        Path folder = TestServers.tinyFolder(dir, MODEL, 5);
        int[] ports = ClusterTestNodes.freePorts(2);
        // attempts outlast every deadline here: what expires, expires in the replica's queue
        Config pressure = ConfigFactory.parseString("mps-actors { model { max-batch = 2, max-delay = 10m,"
                + " max-queued = 4 }, cluster.client { attempt-timeout = 60s, attempts = 2 } }");
        for (int port : ports) {
            nodes.add(ClusterNode.start(pressure.withFallback(
                    ClusterTestNodes.nodeConfig(port, ports[0], MODEL, folder, 1))));
        }
        ClusterTestNodes.awaitUp(nodes.get(0), 2, BOUND);
        ClusterTestNodes.awaitUp(nodes.get(1), 2, BOUND);
        // a full batch (two sequences), so the probe does not wait for company
        InferenceInputs probe = InferenceInputs.of(new int[][] {{101, 7592, 102}, {101, 2088, 102}});
        String at = ClusterTestNodes.awaitReplicas(nodes.get(0), MODEL, probe, "probe", BOUND).get(0);
        replicaNode = nodes.get(0).system().address().toString().equals(at) ? nodes.get(0) : nodes.get(1);
        ClusterNode httpNode = replicaNode == nodes.get(0) ? nodes.get(1) : nodes.get(0);
        replica = replicaNode.localReplica(MODEL, 0).orElseThrow();
        Config serverConfig = ConfigFactory.parseString("mps-actors.server { host = \"127.0.0.1\", port = 0, "
                + "warmup-batch-sizes = [], retry-after = 3s }").withFallback(httpNode.system().settings().config());
        server = ClusterServing.start(httpNode, ServerSettings.fromConfig(serverConfig, Map.of()));
        http = new TestServers.Client(server.url());
        assertTrue(httpNode.localReplica(MODEL, 0).isEmpty(), "no replica on the HTTP node");
    }

    @AfterAll
    static void stop() throws Exception {
        try {
            if (server != null) {
                assertTrue(server.shutdown().isEmpty(), "nothing left natively on the HTTP node");
            }
        } finally {
            for (ClusterNode n : nodes) {
                n.close();
            }
        }
    }

    static InferenceProtocol.ModelStats stats() throws Exception {
        return TestServers.stats(replicaNode.localRuntime(), replica);
    }

    /** The replica's counters once {@code until} holds (bounded). */
    static InferenceProtocol.ModelStats awaitStats(Predicate<InferenceProtocol.ModelStats> until) throws Exception {
        return TestServers.awaitStats(replicaNode.localRuntime(), replica, until);
    }

    /** Requests the replica holds, queued or running. */
    static long held(InferenceProtocol.ModelStats s) {
        return s.requests() - s.succeeded() - s.failed() - s.overloaded();
    }

    static CompletableFuture<HttpResponse<String>> embed(String input, String timeout, Integer priority) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.url() + "/v1/embeddings"))
                .timeout(BOUND).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\": \"" + MODEL + "\", \"input\": " + input + "}"));
        if (timeout != null) {
            b.header("X-Request-Timeout", timeout);
        }
        if (priority != null) {
            b.header("X-Request-Priority", priority.toString());
        }
        return http.http.sendAsync(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> await(CompletableFuture<HttpResponse<String>> f) throws Exception {
        return f.get(BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    static Map<String, Double> metrics() throws Exception {
        TestServers.Reply r = http.get("/metrics");
        assertEquals(200, r.status(), r.toString());
        return ServerRoutesTest.parsePrometheus(r.body());
    }

    /** A sample of a scrape by name and labels; 0 when the series is not there (yet). */
    static double value(Map<String, Double> m, String name, String... labels) {
        Map<String, String> want = new TreeMap<>();
        for (int i = 0; i + 1 < labels.length; i += 2) {
            want.put(labels[i], labels[i + 1]);
        }
        return m.getOrDefault(name + want, 0.0);
    }

    static double requests(Map<String, Double> m, int status) {
        return value(m, "mps_server_requests_seconds_count", "model", MODEL, "route", "v1/embeddings", "status",
                Integer.toString(status));
    }

    @Test
    @Order(1)
    void aDeadlinePassingInTheReplicasQueueIs504AndNothingIsComputed() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        HttpResponse<String> r = await(embed(ONE, "2s", null));
        assertEquals(504, r.statusCode(), r.body());
        assertTrue(r.body().contains("DeadlineExceeded"), r.body());
        // the replica's model actor expired it: its own words, not the HTTP side giving up
        assertTrue(r.body().contains("passed before the request reached the device; it was not run"), r.body());
        InferenceProtocol.ModelStats after = awaitStats(s -> s.expired() == before.expired() + 1);
        assertEquals(before.sequences(), after.sequences(), "nothing reached the device");
        assertEquals(0, held(after));
    }

    @Test
    @Order(2)
    void aHigherPriorityOvertakesAnEarlierRequestInTheReplicasBatcher() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        // one sequence at priority 0: queued, waiting for company
        CompletableFuture<HttpResponse<String>> early = embed(ONE, "60s", 0);
        awaitStats(s -> s.requests() == before.requests() + 1);
        // two sequences at priority 5: the batcher takes the highest priority first, and the earlier request no
        // longer fits the batch of two; in arrival order the earlier one would run first and this one after it
        HttpResponse<String> high = await(embed(TWO, "60s", 5));
        assertEquals(200, high.statusCode(), high.body());
        InferenceProtocol.ModelStats after = awaitStats(s -> s.succeeded() == before.succeeded() + 1);
        assertEquals(before.sequences() + 2, after.sequences(), "only the high-priority request's two sequences ran");
        assertEquals(before.batches() + 1, after.batches());
        assertEquals(1, held(after), "the earlier request still waits in the replica's queue");
        assertFalse(early.isDone(), "the earlier request is not answered yet");
        // company for it: the two run together
        HttpResponse<String> company = await(embed(ONE, "60s", 0));
        assertEquals(200, company.statusCode(), company.body());
        assertEquals(200, await(early).statusCode());
        InferenceProtocol.ModelStats end = awaitStats(s -> held(s) == 0);
        assertEquals(before.sequences() + 4, end.sequences());
    }

    @Test
    @Order(3)
    void aFloodBeyondTheReplicasQueueIs429WithRetryAfterAndEveryRequestIsAnsweredOnce() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        Map<String, Double> metricsBefore = metrics();
        // four requests that never batch together (one sequence each, of lengths in four different buckets) fill
        // the replica's queue (max-queued 4) until their deadline
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int length : new int[] {3, 20, 40, 60}) {
            StringBuilder ids = new StringBuilder("[[101");
            for (int t = 2; t < length; t++) {
                ids.append(", 7592");
            }
            all.add(embed(ids.append(", 102]]").toString(), "4s", 0));
        }
        awaitStats(s -> s.requests() == before.requests() + 4);
        int flood = 20;
        for (int i = 0; i < flood; i++) {
            all.add(embed(i % 2 == 0 ? ONE : TWO, "30s", i % 3));
        }
        // each answer counted as it arrives; the futures waited for complete after their count
        List<AtomicInteger> answers = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            AtomicInteger n = new AtomicInteger();
            answers.add(n);
            all.set(i, all.get(i).whenComplete((r, e) -> n.incrementAndGet()));
        }
        CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(BOUND.toSeconds(), TimeUnit.SECONDS);
        Map<Integer, Integer> statuses = new TreeMap<>();
        for (int i = 0; i < all.size(); i++) {
            HttpResponse<String> r = all.get(i).get();
            assertEquals(1, answers.get(i).get(), "request " + i + " answered once");
            statuses.merge(r.statusCode(), 1, Integer::sum);
            if (i < 4) {
                assertEquals(504, r.statusCode(), "queued request " + i + ": " + r.body());
            } else {
                assertEquals(429, r.statusCode(), "flood request " + i + ": " + r.body());
                assertEquals("3", r.headers().firstValue("Retry-After").orElse(""), "Retry-After on 429");
                assertTrue(r.body().contains("\"rate_limit_error\""), r.body());
                assertTrue(r.body().contains("mps-actors.model.max-queued"), "the replica's limit named: " + r.body());
            }
        }
        assertEquals(Map.of(429, flood, 504, 4), statuses);
        InferenceProtocol.ModelStats after = awaitStats(s -> s.expired() == before.expired() + 4);
        assertEquals(before.overloaded() + flood, after.overloaded(), "each refused by the replica once (no retry)");
        assertEquals(before.sequences(), after.sequences(), "nothing reached the device");
        assertEquals(0, held(after));

        // the HTTP node holds no replica of the model, yet its /metrics counts the model's requests it answered
        Map<String, Double> m = metrics();
        String[] labels = {"model", MODEL, "route", "v1/embeddings"};
        assertEquals(flood, value(m, "mps_server_overloaded_total", labels)
                - value(metricsBefore, "mps_server_overloaded_total", labels), 0);
        assertEquals(flood, requests(m, 429) - requests(metricsBefore, 429), 0);
        assertEquals(4, requests(m, 504) - requests(metricsBefore, 504), 0);
        assertTrue(requests(m, 200) >= 3, "the earlier tests' results: " + requests(m, 200));
        assertTrue(m.keySet().stream().noneMatch(k -> k.startsWith("mps_model_")),
                "the model actor's own counters live on the replica's node");
    }

    @Test
    @Order(4)
    void aClientThatDisconnectsHasItsRequestDroppedFromTheReplicasQueue() throws Exception {
        InferenceProtocol.ModelStats before = stats();
        double cancelledBefore = value(metrics(), "mps_server_cancelled_total", "model", MODEL);
        byte[] body = ("{\"model\": \"" + MODEL + "\", \"input\": " + ONE + "}").getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            awaitStats(s -> s.requests() == before.requests() + 1); // queued at the replica, on the other node
        }
        InferenceProtocol.ModelStats after = awaitStats(s -> s.failed() == before.failed() + 1);
        assertEquals(before.sequences(), after.sequences(), "dropped before the device");
        assertEquals(before.expired(), after.expired(), "cancelled, not expired");
        assertEquals(0, held(after), "nothing left in the replica's queue");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (server.inFlight() != 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, server.inFlight(), "nothing left in flight");
        assertEquals(cancelledBefore + 1, value(metrics(), "mps_server_cancelled_total", "model", MODEL), 0);
    }
}
