package dev.mpsactors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.DoubleAccumulator;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * Three cluster nodes as separate JVMs, each started as {@code bin/mps-actors node} (the command line's entry
 * point with the test's class path) in its own network namespace with its own address on a bridge
 * ({@link NetnsCluster}); a client in this JVM joins from the bridge's address as a {@link ClusterClient} and
 * keeps a steady stream of requests going while, in turn, a node is killed with SIGKILL, a node is added, a
 * node is cut off the network for longer than the split-brain resolver's stable-after and healed, and a node
 * leaves gracefully. After each: every request has exactly one outcome (a result, or a failure naming its
 * cause), no replica answered twice (the client's actor sees every reply; an ask would hide a second one),
 * every result equals this machine's single-node run of the same input, and every replica is served again
 * within a bound (the measured time is printed). The cut-off node must down itself and exit.
 *
 * <p>Settings for a quick run, passed to the nodes as -D keys (so the command line's layering is exercised):
 * stable-after 3s, rebalance-interval 2s; the client: attempt-timeout 2s, 12 attempts, backoff 300ms.
 * Skipped, with a message, where network namespaces cannot be made (not root, no iproute2).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MultiHostClusterTest {
    static final BertConfig CONFIG = new BertConfig("bert", 50, 32, 2, 4, 64, 40, 2, 1e-12, "gelu");
    static final String MODEL = "tiny";
    static final int NODES = 3;
    static final int CONCURRENCY = 6;
    static final double SAME_RESULT = 1e-6;
    static final Duration BOUND = Duration.ofSeconds(90);
    static final String STABLE_AFTER = "3s";
    /** A JVM stopped by SIGTERM exits 128 + 15 once its shutdown hooks (the graceful leave) are done. */
    static final int SIGTERM_STATUS = 143;
    static final List<String> NODE_JVM = List.of("-Xmx256m", "-Xss512k", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Dpekko.cluster.split-brain-resolver.stable-after=" + STABLE_AFTER,
            "-Dpekko.cluster.sharding.rebalance-interval=2s", "-Dpekko.loglevel=INFO",
            "-Dmps-actors.streams=1", "-Dmps-actors.kernel-cache.shards=2");

    private NetnsCluster net;
    private ClusterClient client;
    private Path folder;
    private final List<InferenceInputs> inputs = new ArrayList<>();
    private final List<InferResult> references = new ArrayList<>();
    private final Map<String, String> figures = new TreeMap<>();

    @BeforeAll
    void startCluster() throws Exception {
        String why = NetnsCluster.unavailable();
        if (why != null) {
            System.out.println("MultiHostClusterTest SKIPPED: " + why);
        }
        Assumptions.assumeTrue(why == null, why);
        folder = Files.createTempDirectory("netns-cluster-model-");
        BertFolderGenerator.write(folder, CONFIG, 11);
        Random random = new Random(5);
        for (int i = 0; i < 24; i++) {
            inputs.add(ThreeNodeClusterTest.randomRequest(random));
        }
        singleNodeReferences();

        net = new NetnsCluster(Path.of("target"));
        long t0 = System.nanoTime();
        startNode(0);
        net.awaitLine(0, "mps-actors node", BOUND.toSeconds());
        for (int i = 1; i < NODES; i++) {
            startNode(i);
        }
        for (int i = 1; i < NODES; i++) {
            String line = net.awaitLine(i, "mps-actors node", BOUND.toSeconds());
            assertTrue(line.contains("stable-after " + STABLE_AFTER), "the -D key reached the node: " + line);
        }
        client = ClusterClient.start(ConfigFactory.parseString(String.join("\n",
                "pekko.loglevel = WARNING",
                "pekko.remote.artery.canonical.hostname = \"" + net.hostAddress() + "\"",
                "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off",
                // Every member, the client too, needs the nodes' split-brain settings: any member can be the
                // leader that takes the resolver's decision.
                "pekko.cluster.split-brain-resolver.stable-after = " + STABLE_AFTER,
                "pekko.cluster.sharding.rebalance-interval = 2s",
                "mps-actors.cluster.seeds = \"" + net.address(0) + ":25520\"",
                "mps-actors.cluster.replicas = " + NODES,
                "mps-actors.cluster.client.attempt-timeout = 2s",
                "mps-actors.cluster.client.attempts = 12",
                "mps-actors.cluster.client.retry-backoff = 300ms")));
        await("3 nodes and the client up", () -> nodesUp().size() == NODES
                && client.cluster().selfMember().status() == MemberStatus.up());
        Map<Integer, String> placement = awaitAllReplicasServe("warm-up", null);
        figures.put("0 start", String.format("3 nodes up, every replica served %.1f s after the first JVM started; "
                + "placement %s", seconds(t0), placement));
    }

    @AfterAll
    void stopCluster() {
        if (client != null) {
            client.close();
        }
        if (net != null) {
            net.close();
        }
        figures.forEach((k, v) -> System.out.println("multi-host cluster: " + k.substring(2) + ": " + v));
    }

    @Test
    @Order(1)
    @Timeout(value = 150, unit = TimeUnit.SECONDS)
    void aNodeKilledWithSigkill() throws Exception {
        Phase phase = startPhase("kill-9", 2);
        String victim = address(2);
        long t0 = System.nanoTime();
        net.kill9(2);
        assertTrue(net.process(2).waitFor(10, TimeUnit.SECONDS), "the killed JVM is gone");
        Recovery r = recovery(t0, victim, "after-kill");
        TimeUnit.SECONDS.sleep(1);
        phase.finish(String.format("node %s killed (SIGKILL): removed by the others after %.1f s, every replica "
                + "served again after %.1f s %s", victim, r.removed(), r.served(), r.placement()));
    }

    @Test
    @Order(2)
    @Timeout(value = 150, unit = TimeUnit.SECONDS)
    void aNodeAddedUnderLoad() throws Exception {
        Phase phase = startPhase("join", 1);
        long t0 = System.nanoTime();
        startNode(2);
        net.awaitLine(2, "mps-actors node", BOUND.toSeconds());
        String joined = address(2);
        await("the new node up", () -> nodesUp().contains(joined));
        double up = seconds(t0);
        // Rebalancing moves a replica to the new node (least-shard allocation), handing it off under load.
        Map<Integer, String> placement = awaitAllReplicasServe("after-join", null);
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (!placement.containsValue(joined)) {
            assertTrue(System.nanoTime() < deadline, "a replica moved to the new node within " + BOUND + ": " + placement);
            TimeUnit.MILLISECONDS.sleep(500);
            placement = awaitAllReplicasServe("after-join", null);
        }
        double serving = seconds(t0);
        TimeUnit.SECONDS.sleep(1);
        phase.finish(String.format("node %s started under load: up after %.1f s, serving a replica after %.1f s %s",
                joined, up, serving, placement));
    }

    @Test
    @Order(3)
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aNodeCutOffTheNetworkDownsItselfAndComesBack() throws Exception {
        Phase phase = startPhase("partition", 2);
        String victim = address(1);
        Process cutOff = net.process(1);
        long t0 = System.nanoTime();
        net.cut(1);
        Recovery r = recovery(t0, victim, "after-cut");
        // The minority side (the node alone) downs itself: its JVM exits with the downed status.
        assertTrue(cutOff.waitFor(BOUND.toSeconds(), TimeUnit.SECONDS), "the cut-off node exits:\n" + net.tail(1));
        double exited = seconds(t0);
        assertEquals(ClusterNode.EXIT_DOWNED, cutOff.exitValue(), "exit status of a downed node:\n" + net.tail(1));
        net.awaitLine(1, "stopping: downed by the cluster", 1);
        net.heal(1);
        long t1 = System.nanoTime();
        startNode(1);
        await("the healed node back up", () -> nodesUp().contains(victim));
        double back = seconds(t1);
        TimeUnit.SECONDS.sleep(1);
        phase.finish(String.format("node %s cut off (link down, stable-after %s): removed by the majority after "
                        + "%.1f s, every replica served again after %.1f s %s, the cut-off JVM downed itself and "
                        + "exited (status %d) after %.1f s; healed and restarted: up again %.1f s later",
                victim, STABLE_AFTER, r.removed(), r.served(), r.placement(), ClusterNode.EXIT_DOWNED, exited, back));
    }

    @Test
    @Order(4)
    @Timeout(value = 150, unit = TimeUnit.SECONDS)
    void aNodeLeavingGracefully() throws Exception {
        Phase phase = startPhase("leave", 2);
        String leaver = address(2);
        long t0 = System.nanoTime();
        net.terminate(2);
        Recovery recovered = recovery(t0, leaver, "after-leave");
        assertTrue(net.process(2).waitFor(BOUND.toSeconds(), TimeUnit.SECONDS), "the leaving JVM exits");
        assertEquals(SIGTERM_STATUS, net.process(2).exitValue(), "a node stopped by SIGTERM:\n" + net.tail(2));
        net.awaitLine(2, "stopping: the JVM is exiting (SIGTERM): left the cluster", 1);
        assertFalse(Files.readString(net.log(2)).contains("downed"), "the leaver was not downed:\n" + net.tail(2));
        TimeUnit.SECONDS.sleep(1);
        Phase.Result r = phase.finish(String.format("node %s left (SIGTERM): removed after %.1f s, every replica "
                + "served again after %.1f s %s", leaver, recovered.removed(), recovered.served(),
                recovered.placement()));
        assertEquals(0, r.tally.failed(), "a graceful leave hands its replicas off without failing requests: "
                + r.tally.failures());
    }

    /** Seconds from a fault until the failed node was removed and until every replica served again elsewhere. */
    private record Recovery(double removed, double served, Map<Integer, String> placement) {}

    private Recovery recovery(long faultAt, String failed, String tag) throws Exception {
        await("node " + failed + " removed from the membership", () -> !members().contains(failed));
        double removed = seconds(faultAt);
        Map<Integer, String> placement = awaitAllReplicasServe(tag, failed);
        return new Recovery(removed, seconds(faultAt), placement);
    }

    /** A new share of the stream, running for {@code seconds} before the fault. */
    private Phase startPhase(String name, int seconds) throws InterruptedException {
        Phase phase = new Phase(name);
        phase.load.start();
        TimeUnit.SECONDS.sleep(seconds);
        return phase;
    }

    /** One fault's share of the stream: its own request ids, counters and checks. */
    private final class Phase {
        record Result(ClusterLoad.Tally tally, ClusterCaller.Stats caller) {}

        final String name;
        final ClusterLoad load;
        final ClusterCaller.Stats before;
        final DoubleAccumulator worst = new DoubleAccumulator(Math::max, 0);
        final AtomicLong different = new AtomicLong();
        final long t0 = System.nanoTime();

        Phase(String name) {
            this.name = name;
            this.before = client.inference().stats();
            this.load = new ClusterLoad(client.inference(), MODEL, inputs, CONCURRENCY, name + "-", (i, r) -> {
                double err = Outputs.relativeL2(r, references.get(i));
                worst.accumulate(err);
                if (!(err <= SAME_RESULT)) {
                    different.incrementAndGet();
                }
            });
        }

        Result finish(String what) throws InterruptedException {
            load.stop();
            double seconds = seconds(t0);
            assertTrue(load.awaitDrained(BOUND), name + ": every request has its outcome within " + BOUND);
            // Let late replies to attempts that timed out arrive, so a second reply would be seen.
            TimeUnit.SECONDS.sleep(2);
            ClusterLoad.Tally t = load.tally();
            ClusterCaller.Stats now = client.inference().stats();
            long duplicates = now.duplicateReplies() - before.duplicateReplies();
            long retries = now.retries() - before.retries();
            long late = now.lateReplies() - before.lateReplies();
            String summary = String.format("%s; %d requests in %.1f s: %d succeeded, %d failed %s, %d lost, "
                            + "%d duplicate outcomes, %d duplicate replies, %d retries, %d late replies; worst "
                            + "relative L2 vs one node %.2e",
                    what, t.sent(), seconds, t.succeeded(), t.failed(), t.failures(), t.lost(), t.duplicates(),
                    duplicates, retries, late, worst.get());
            figures.put(ordinal() + " " + name, summary);
            System.out.println("multi-host cluster: " + name + ": " + summary);
            assertTrue(t.sent() > 0, name + ": requests were sent");
            assertEquals(0, t.lost(), name + ": lost");
            assertEquals(0, t.duplicates(), name + ": requests with two outcomes");
            assertEquals(0, duplicates, name + ": replies a replica sent twice");
            assertEquals(t.sent(), t.succeeded() + t.failed(), name + ": one outcome each");
            t.failures().keySet().forEach(reason -> assertFalse(reason == null || reason.isBlank(),
                    name + ": a failure names its cause"));
            assertTrue(t.succeeded() > 0, name + ": requests succeeded");
            assertEquals(0, different.get(), name + ": results that differ from one node's (worst " + worst.get() + ")");
            return new Result(t, now);
        }

        private int ordinal() {
            return figures.size();
        }
    }

    private void startNode(int i) throws Exception {
        net.start(i, NODE_JVM, "dev.mpsactors.bench.Cli", List.of("node", "--host", net.address(i), "--port", "25520",
                "--seeds", net.address(0) + ":25520," + net.address(1) + ":25520", "--model", MODEL + "=" + folder,
                "--replicas", Integer.toString(NODES)));
    }

    private String address(int i) {
        return "pekko://mps-actors@" + net.address(i) + ":25520";
    }

    /** The model's result for each input on a single node of this machine, no cluster involved. */
    private void singleNodeReferences() throws Exception {
        try (MpsRuntime rt = MpsRuntime.start(ConfigFactory.parseString("mps-actors.streams = 1")
                .withFallback(ConfigFactory.load()))) {
            ActorRef<InferenceProtocol.Command> m = rt.models().loadModel("reference", folder).toCompletableFuture()
                    .get(BOUND.toSeconds(), TimeUnit.SECONDS);
            for (int i = 0; i < inputs.size(); i++) {
                references.add(rt.models().infer(m, "reference-" + i, inputs.get(i)).toCompletableFuture()
                        .get(BOUND.toSeconds(), TimeUnit.SECONDS));
            }
        }
    }

    /** Addresses of serving nodes (role mps-node) that are up, as the client sees them. */
    private List<String> nodesUp() {
        List<String> up = new ArrayList<>();
        for (Member m : client.cluster().state().getMembers()) {
            if (m.status() == MemberStatus.up() && m.hasRole("mps-node")) {
                up.add(m.address().toString());
            }
        }
        return up;
    }

    private List<String> members() {
        List<String> all = new ArrayList<>();
        for (Member m : client.cluster().state().getMembers()) {
            all.add(m.address().toString());
        }
        return all;
    }

    /**
     * Asks every replica, one attempt each (bounded), until each has answered in one round with a result
     * from a node other than {@code notOn}; the node of each replica.
     */
    private Map<Integer, String> awaitAllReplicasServe(String tag, String notOn) throws Exception {
        InferenceInputs probe = inputs.get(0);
        long deadline = System.nanoTime() + BOUND.toNanos();
        int round = 0;
        while (true) {
            Map<Integer, String> placement = new TreeMap<>();
            for (int r = 0; r < NODES; r++) {
                try {
                    ClusterInferReply reply = client.inference().ask(MODEL, r, tag + "-probe-" + r + "-" + round,
                            probe, Duration.ofSeconds(2)).toCompletableFuture().get(3, TimeUnit.SECONDS);
                    if (reply instanceof ClusterInferResult ok && !ok.node().equals(notOn)) {
                        placement.put(r, ok.node());
                    }
                } catch (Exception e) {
                    // not served yet
                }
            }
            if (placement.size() == NODES) {
                return placement;
            }
            assertTrue(System.nanoTime() < deadline, tag + ": replicas " + placement.keySet() + " of " + NODES
                    + " served within " + BOUND);
            round++;
            TimeUnit.MILLISECONDS.sleep(200);
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what + " within " + BOUND);
            TimeUnit.MILLISECONDS.sleep(100);
        }
    }

    private static double seconds(long since) {
        return (System.nanoTime() - since) / 1e9;
    }
}
