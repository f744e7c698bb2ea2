package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Three nodes on 127.0.0.1, each an ActorSystem with its own DeviceRuntime, speaking Artery over TLS with
 * mutual authentication, serve one model as three sharded replicas. While a client spreads requests over the
 * replicas, a node that is not the seed leaves (or crashes): every request still gets exactly one reply and succeeds (retried on another replica;
 * after a crash, retries are asserted), every replica serves again within a bound, the stopped node's
 * replica answers requests from another node (each request sent straight to its replica, with a receiver
 * that would see a second reply), and the results are those of a single node's model actor.
 */
class ThreeNodeClusterTest {
    static final BertConfig CONFIG = new BertConfig("bert", 50, 32, 2, 4, 64, 40, 2, 1e-12, "gelu");
    static final String MODEL = "tiny";
    static final int REQUESTS = 120;
    static final Duration BOUND = Duration.ofSeconds(60);

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aNodeLeavingMidRunLosesNoRequestAndChangesNoResult() throws Exception {
        stopANodeMidRun(false);
    }

    /**
     * The victim's ActorSystem stops without leaving the cluster (no coordinated shutdown), as a crashed
     * JVM would: the others see it unreachable, the split-brain resolver downs it after stable-after, its
     * replicas start elsewhere, and requests caught on it time out and are retried there.
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aNodeCrashingMidRunLosesNoRequestAndChangesNoResult() throws Exception {
        stopANodeMidRun(true);
    }

    private void stopANodeMidRun(boolean crash) throws Exception {
        Path folder = Files.createTempDirectory("cluster-model-");
        BertFolderGenerator.write(folder, CONFIG, 7);
        int[] ports = ClusterTestNodes.freePorts(3);
        List<ClusterNode> nodes = new ArrayList<>();
        try {
            for (int i = 0; i < ports.length; i++) {
                Config config = nodeConfig(ports[i], ports[0], folder);
                if (crash && i > 0) {
                    // Terminating such a system skips coordinated shutdown: it vanishes instead of leaving.
                    config = ConfigFactory.parseString("pekko.coordinated-shutdown.run-by-actor-system-terminate = off")
                            .withFallback(config);
                }
                nodes.add(ClusterNode.start(config));
                assertEquals("tls-tcp", nodes.get(i).system().settings().config()
                        .getString("pekko.remote.artery.transport"), "members speak TLS");
            }
            ClusterNode client = nodes.get(0);
            ClusterTestNodes.awaitUp(client, 3, BOUND);

            // Every replica answers once (sharding places them as they are first asked).
            Map<Integer, String> placement = awaitAllReplicasServe(client, "warm-up");
            System.out.println("three-node cluster: replicas placed " + placement);

            // The node to stop: one that is not the seed, holding a replica where there is such a node.
            int victimIndex = 2;
            for (int i = 1; i < 3; i++) {
                if (placement.containsValue(nodes.get(i).system().address().toString())) {
                    victimIndex = i;
                    break;
                }
            }
            ClusterNode victim = nodes.get(victimIndex);

            Random random = new Random(21);
            List<InferenceInputs> inputs = new ArrayList<>();
            for (int i = 0; i < REQUESTS; i++) {
                inputs.add(randomRequest(random));
            }
            Map<String, AtomicInteger> replies = new ConcurrentHashMap<>();
            Set<String> servedBy = Collections.newSetFromMap(new ConcurrentHashMap<>());
            List<CompletableFuture<ClusterInferResult>> results = new ArrayList<>();
            long start = System.nanoTime();
            long stoppedAt = 0;
            CompletableFuture<Void> victimClosed = CompletableFuture.completedFuture(null);
            for (int i = 0; i < REQUESTS; i++) {
                String id = "req-" + i;
                replies.put(id, new AtomicInteger());
                CompletableFuture<ClusterInferResult> f = client.inference().infer(MODEL, id, inputs.get(i))
                        .toCompletableFuture();
                f.whenComplete((r, e) -> {
                    replies.get(id).incrementAndGet();
                    if (r != null) {
                        servedBy.add(r.node());
                    }
                });
                results.add(f);
                if (i == REQUESTS / 3) {
                    // Let the first third finish on all three nodes, then stop the victim while the rest is sent.
                    CompletableFuture.allOf(results.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
                    stoppedAt = System.nanoTime();
                    victimClosed = CompletableFuture.runAsync(victim::close); // a crash config: no leave
                }
                if (i > REQUESTS / 3) {
                    Thread.sleep(40); // the rest spans the victim's leaving and its replicas' handoff
                }
            }
            CompletableFuture.allOf(results.toArray(CompletableFuture[]::new)).exceptionally(e -> null)
                    .get(BOUND.toSeconds(), TimeUnit.SECONDS);
            double seconds = (System.nanoTime() - start) / 1e9;

            int failed = 0;
            for (CompletableFuture<ClusterInferResult> f : results) {
                if (f.isCompletedExceptionally()) {
                    failed++;
                    f.exceptionally(e -> {
                        System.out.println("failed: " + e);
                        return null;
                    });
                }
            }
            assertEquals(0, failed, "requests that failed after all retries");
            Thread.sleep(200);
            for (Map.Entry<String, AtomicInteger> e : replies.entrySet()) {
                assertEquals(1, e.getValue().get(), "replies to " + e.getKey());
            }

            victimClosed.get(BOUND.toSeconds(), TimeUnit.SECONDS);
            Map<Integer, String> after = awaitAllReplicasServe(client, "after");
            double servedAgain = (System.nanoTime() - stoppedAt) / 1e9;
            String victimAddress = victim.system().address().toString();
            assertTrue(!after.containsValue(victimAddress), "no replica left on the victim");
            assertTrue(servedAgain < BOUND.toSeconds(), "served again after " + servedAgain + " s");

            // Failover, counted: every replica, the victim's included, is asked directly by a receiver that sees
            // every reply; each request is answered once, and the victim's replica answers from another node.
            Integer victimReplica = null;
            for (Map.Entry<Integer, String> e : placement.entrySet()) {
                if (e.getValue().equals(victimAddress)) {
                    victimReplica = e.getKey();
                }
            }
            Map<String, List<ClusterInferReply>> direct = new ConcurrentHashMap<>();
            ActorRef<ClusterInferReply> receiver = client.system().systemActorOf(
                    org.apache.pekko.actor.typed.javadsl.Behaviors.receiveMessage(reply -> {
                        direct.computeIfAbsent(reply.requestId(), k -> Collections.synchronizedList(new ArrayList<>()))
                                .add(reply);
                        return org.apache.pekko.actor.typed.javadsl.Behaviors.same();
                    }), "failover-replies-" + crash, org.apache.pekko.actor.typed.Props.empty());
            org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding sharding =
                    org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding.get(client.system());
            int perReplica = 4;
            for (int r = 0; r < 3; r++) {
                for (int k = 0; k < perReplica; k++) {
                    sharding.entityRefFor(ModelEntity.TYPE_KEY, ModelEntity.entityId(MODEL, r)).tell(
                            ModelEntity.ClusterInfer.of("direct-" + r + "-" + k, inputs.get(k), receiver));
                }
            }
            long directDeadline = System.nanoTime() + BOUND.toNanos();
            while (direct.size() < 3 * perReplica && System.nanoTime() < directDeadline) {
                Thread.sleep(20);
            }
            Thread.sleep(300); // a second reply would arrive in this time (as with expectNoMessage)
            assertEquals(3 * perReplica, direct.size(), "every direct request answered: " + direct.keySet());
            int fromVictimReplica = 0;
            for (Map.Entry<String, List<ClusterInferReply>> e : direct.entrySet()) {
                assertEquals(1, e.getValue().size(), "replies to " + e.getKey());
                ClusterInferResult ok = assertInstanceOf(ClusterInferResult.class, e.getValue().get(0), e.getKey());
                assertTrue(!ok.node().equals(victimAddress), e.getKey() + " served by the stopped node");
                if (victimReplica != null && ok.entityId().equals(ModelEntity.entityId(MODEL, victimReplica))) {
                    fromVictimReplica++;
                }
            }
            if (victimReplica != null) {
                assertEquals(perReplica, fromVictimReplica, "the stopped node's replica " + victimReplica
                        + " served its requests from another node");
            }
            if (crash) {
                // Requests caught on the crashed node got no reply within the attempt timeout: they were retried.
                assertTrue(client.inference().retries() > 0, "requests caught on the crashed node were retried");
            }

            // The same inputs through a model actor of one node, without the cluster.
            MpsRuntime local = MpsRuntime.attach(client.system(), client.runtime(), BOUND).toCompletableFuture()
                    .get(BOUND.toSeconds(), TimeUnit.SECONDS);
            ActorRef<InferenceProtocol.Command> model = local.models().loadModel("single-node-reference", folder)
                    .toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
            List<CompletableFuture<InferenceProtocol.InferReply>> expected = new ArrayList<>();
            for (int i = 0; i < REQUESTS; i++) {
                InferenceInputs in = inputs.get(i);
                String id = "ref-" + i;
                expected.add(AskPattern.<InferenceProtocol.Command, InferenceProtocol.InferReply>ask(model,
                        replyTo -> new InferenceProtocol.Infer(id, in, replyTo), BOUND,
                        client.system().scheduler()).toCompletableFuture());
            }
            double worst = 0;
            for (int i = 0; i < REQUESTS; i++) {
                InferResult ref = assertInstanceOf(InferResult.class,
                        expected.get(i).get(BOUND.toSeconds(), TimeUnit.SECONDS));
                ClusterInferResult got = results.get(i).get();
                worst = Math.max(worst, relativeL2(ref.lastHiddenState(), got.lastHiddenState()));
                worst = Math.max(worst, relativeL2(new float[][][] {ref.poolerOutput()},
                        new float[][][] {got.poolerOutput()}));
            }
            System.out.printf("three-node cluster (" + (crash ? "crash" : "graceful leave") + "): %d requests in %.2f s "
                            + "(%.1f req/s), served by %s; node %s stopped "
                            + "mid-run, %d retries, all replicas served again after %.2f s %s, the stopped node's "
                            + "replica %s answered %d direct requests from another node; worst relative L2 vs one node "
                            + "%.2e%n",
                    REQUESTS, seconds, REQUESTS / seconds, new TreeSet<>(servedBy), victim.system().address(),
                    client.inference().retries(),
                    servedAgain, after, victimReplica, fromVictimReplica, worst);
            assertTrue(worst <= 1e-6, "relative L2 vs a single node " + worst);
            assertTrue(servedBy.size() >= 2, "requests were served by several nodes: " + servedBy);
        } finally {
            for (ClusterNode node : nodes) {
                node.close();
            }
        }
    }

    /** A member on 127.0.0.1: Artery over TLS with mutual authentication, the members' shared key pair. */
    static Config nodeConfig(int port, int seedPort, Path folder) {
        return ClusterCertificates.shared().tls("member").withFallback(plainNodeConfig(port, seedPort, folder));
    }

    static Config plainNodeConfig(int port, int seedPort, Path folder) {
        return ConfigFactory.parseString(String.join("\n",
                "pekko.cluster.split-brain-resolver.stable-after = 2s",
                "pekko.cluster.down-removal-margin = 1s"))
                .withFallback(ClusterTestNodes.nodeConfig(port, seedPort, MODEL, folder, 3));
    }

    /** Asks every replica once (single attempts, bounded) until each has answered; its node by replica. */
    static Map<Integer, String> awaitAllReplicasServe(ClusterNode client, String tag) throws Exception {
        return ClusterTestNodes.awaitReplicas(client, MODEL, InferenceInputs.of(new int[][] {{1, 2, 3}}), tag, BOUND);
    }

    static InferenceInputs randomRequest(Random random) {
        int sequences = 1 + random.nextInt(2);
        int length = 1 + random.nextInt(12);
        int[][] ids = new int[sequences][length];
        int[][] mask = new int[sequences][length];
        for (int s = 0; s < sequences; s++) {
            int real = 1 + random.nextInt(length);
            for (int t = 0; t < length; t++) {
                ids[s][t] = random.nextInt(CONFIG.vocabSize());
                mask[s][t] = t < real ? 1 : 0;
            }
        }
        return new InferenceInputs(ids, mask, null);
    }

    static double relativeL2(float[][][] expected, float[][][] actual) {
        double num = 0, den = 0;
        assertEquals(expected.length, actual.length, "sequences");
        for (int s = 0; s < expected.length; s++) {
            assertEquals(expected[s].length, actual[s].length, "rows of sequence " + s);
            for (int t = 0; t < expected[s].length; t++) {
                for (int k = 0; k < expected[s][t].length; k++) {
                    double d = actual[s][t][k] - expected[s][t][k];
                    num += d * d;
                    den += (double) expected[s][t][k] * expected[s][t][k];
                }
            }
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }
}
