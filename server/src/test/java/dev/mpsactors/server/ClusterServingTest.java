package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ClusterNode;
import dev.mpsactors.cluster.ClusterTestNodes;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.TextProtocol;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * HTTP on a cluster node: two nodes in this JVM (plain TCP on 127.0.0.1), one model with two replicas
 * (sharded entities), the server on the first node. Requests to it are tokenized there and computed by the
 * replicas wherever sharding placed them: the results equal the node's own in-process text encoder, the
 * counts show results computed on the other node, and when that node leaves mid-traffic every request is
 * still answered once with the same result (its replica moves to the first node).
 */
class ClusterServingTest {
    private static final String MODEL = "tiny";
    private static final Duration BOUND = Duration.ofSeconds(90);
    private static final InferenceInputs PROBE = new InferenceInputs(new int[][] {{101, 7592, 102}},
            new int[][] {{1, 1, 1}}, null);

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void aNodeAnswersOverHttpThroughTheShardedEntitiesAndKeepsAnsweringWhenAReplicaNodeLeaves() throws Exception {
        Path dir = Files.createTempDirectory("cluster-serving-");
        Path folder = TestServers.tinyFolder(dir, MODEL, 11);
        int[] ports = ClusterTestNodes.freePorts(2);
        List<ClusterNode> nodes = new ArrayList<>();
        MpsServer server = null;
        try {
            for (int port : ports) {
                nodes.add(ClusterNode.start(ClusterTestNodes.nodeConfig(port, ports[0], MODEL, folder, 2)));
            }
            ClusterTestNodes.awaitUp(nodes.get(0), 2, BOUND);
            ClusterTestNodes.awaitUp(nodes.get(1), 2, BOUND);
            Map<Integer, String> placement = ClusterTestNodes.awaitReplicas(nodes.get(0), MODEL, PROBE, "probe", BOUND);
            System.out.println("cluster serving: replicas placed " + placement);
            // HTTP on the first node when the replicas are spread; when sharding put both on one node (it may
            // when the other's region registered late), on the node without a replica: requests cross either way
            String seedAddress = nodes.get(0).system().address().toString();
            boolean spread = new java.util.HashSet<>(placement.values()).size() == 2;
            ClusterNode first = spread || !placement.containsValue(seedAddress) ? nodes.get(0) : nodes.get(1);
            ClusterNode second = first == nodes.get(0) ? nodes.get(1) : nodes.get(0);

            ClusterServing backend = ClusterServing.on(first);
            Config serverConfig = ConfigFactory.parseString("mps-actors.server { host = \"127.0.0.1\", port = 0, "
                    + "warmup-batch-sizes = [] }").withFallback(first.system().settings().config());
            server = ClusterServing.start(first, ServerSettings.fromConfig(serverConfig, Map.of()), backend);
            TestServers.Client http = new TestServers.Client(server.url());

            // the reference: the same folder as an in-process text encoder on the first node's own runtime
            ActorRef<TextProtocol.Command> reference = first.localRuntime().models()
                    .loadTextEncoder("reference", folder).toCompletableFuture().get(60, TimeUnit.SECONDS);
            List<String> texts = List.of("What is Deep Learning?", "Pekko actors on a cluster", "hello world",
                    "a somewhat longer sentence to embed, with punctuation!", "x");
            float[][] expected = first.localRuntime().models().embed(reference, "ref", texts, null)
                    .toCompletableFuture().get(60, TimeUnit.SECONDS).vectors();

            // one request, both TEI and OpenAI routes
            TestServers.Reply embed = http.post("/embed", TestServers.JSON.writeValueAsString(Map.of("inputs", texts)));
            assertEquals(200, embed.status(), embed.toString());
            for (int i = 0; i < texts.size(); i++) {
                assertClose(expected[i], embed.json().get(i), "/embed text " + i);
            }
            TestServers.Reply openai = http.post("/v1/embeddings", "{\"model\": \"tiny\", \"input\": \"hello world\"}");
            assertEquals(200, openai.status(), openai.toString());
            assertClose(expected[2], openai.json().path("data").get(0).path("embedding"), "/v1/embeddings");
            assertEquals(200, http.get("/health").status());
            assertEquals(MODEL, http.get("/v1/models").json().path("data").get(0).path("id").asText());

            // management is the cluster's configuration: refused with a JSON error naming why
            TestServers.Reply put = http.send("PUT", "/models/other", "{\"folder\": \"" + folder + "\"}");
            assertEquals(405, put.status(), put.toString());
            assertEquals("NotManaged", put.json().path("error_type").asText(), put.toString());
            assertTrue(put.json().path("error").asText().contains("mps-actors.cluster.models"), put.toString());
            assertEquals(405, http.send("DELETE", "/models/tiny", null).status());

            // concurrent traffic: each request answered once, round robin over both replicas
            Map<String, Long> before = backend.stats(MODEL).succeededByNode();
            assertEquals(24, burst(server.url(), texts, expected, 24, "a", null));
            Map<String, Long> after = backend.stats(MODEL).succeededByNode();
            System.out.println("cluster serving: results by node " + after);
            String firstAddress = first.system().address().toString();
            String secondAddress = second.system().address().toString();
            assertTrue(placement.containsValue(secondAddress), "a replica lives on the second node: " + placement);
            assertTrue(after.getOrDefault(secondAddress, 0L) > before.getOrDefault(secondAddress, 0L),
                    "requests to the first node's HTTP were computed on the second node: " + after);

            // the second node leaves while requests flow: each is still answered once, with the same result
            long onFirstBefore = after.getOrDefault(firstAddress, 0L);
            CompletableFuture<Void> left = new CompletableFuture<>();
            assertEquals(40, burst(server.url(), texts, expected, 40, "b", () ->
                    CompletableFuture.runAsync(second::close).whenComplete((v, e) -> left.complete(null))));
            left.get(BOUND.toSeconds(), TimeUnit.SECONDS);
            // and after it is gone, the first node serves both replicas
            assertEquals(16, burst(server.url(), texts, expected, 16, "c", null));
            Map<String, Long> end = backend.stats(MODEL).succeededByNode();
            System.out.println("cluster serving: results by node after the second node left " + end
                    + "; proxy requests " + backend.stats(MODEL).requests() + ", failed " + backend.stats(MODEL).failed()
                    + "; caller " + first.inference().stats());
            assertTrue(end.get(firstAddress) >= onFirstBefore + 16, end.toString());
            assertEquals(0, backend.stats(MODEL).failed(), "no request failed");
            assertEquals(0, first.inference().stats().duplicateReplies());

            LiveObjects leftover = server.shutdown();
            server = null;
            assertTrue(leftover.isEmpty(), "nothing left natively: " + leftover);
        } finally {
            if (server != null) {
                server.shutdown();
            }
            for (ClusterNode n : nodes) {
                n.close();
            }
        }
    }

    /**
     * {@code n} concurrent {@code POST /embed} of one text each; returns how many were answered 200 with the
     * expected vector (each request's answer counted, so a second answer or a lost one fails). {@code midway}
     * runs after half of them were sent.
     */
    private static int burst(String base, List<String> texts, float[][] expected, int n, String tag, Runnable midway)
            throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        Map<Integer, AtomicInteger> answers = new ConcurrentHashMap<>();
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int k = i % texts.size();
            answers.put(i, new AtomicInteger());
            int id = i;
            HttpRequest r = HttpRequest.newBuilder(URI.create(base + "/embed")).timeout(BOUND)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(TestServers.JSON.writeValueAsString(
                            Map.of("inputs", List.of(texts.get(k)))))).build();
            all.add(client.sendAsync(r, HttpResponse.BodyHandlers.ofString()).whenComplete((resp, e) ->
                    answers.get(id).incrementAndGet()));
            if (midway != null && i == n / 2) {
                midway.run();
            }
            if (midway != null && i > n / 2) {
                Thread.sleep(50); // the rest spans the node's leaving and its replica's handoff
            }
        }
        CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(BOUND.toSeconds(), TimeUnit.SECONDS);
        int ok = 0;
        for (int i = 0; i < n; i++) {
            assertEquals(1, answers.get(i).get(), tag + " request " + i + " answered once");
            HttpResponse<String> resp = all.get(i).get();
            assertEquals(200, resp.statusCode(), tag + " request " + i + ": " + resp.body());
            assertClose(expected[i % texts.size()], TestServers.JSON.readTree(resp.body()).get(0), tag + " " + i);
            ok++;
        }
        return ok;
    }

    private static void assertClose(float[] expected, JsonNode actual, String what) {
        assertEquals(expected.length, actual.size(), what + ": width");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual.get(i).floatValue(), 1e-6, what + "[" + i + "]");
        }
    }
}
