package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.sharding.ShardRegion;
import org.apache.pekko.cluster.sharding.typed.ClusterShardingQuery;
import org.apache.pekko.cluster.sharding.typed.GetClusterShardingStats;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;

/**
 * Cluster nodes in one test JVM (separate ActorSystems on 127.0.0.1, plain TCP): their configuration, free
 * ports, and bounded waits for the members and the model's replicas. Shared by the cluster tests of several
 * modules (this module's test jar).
 */
public final class ClusterTestNodes {
    private ClusterTestNodes() {}

    /** {@code n} ports free on this host a moment ago (the sockets are closed again). */
    public static int[] freePorts(int n) throws IOException {
        int[] ports = new int[n];
        List<ServerSocket> open = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0);
                open.add(s);
                ports[i] = s.getLocalPort();
            }
        } finally {
            for (ServerSocket s : open) {
                s.close();
            }
        }
        return ports;
    }

    /**
     * A node on 127.0.0.1:{@code port} joining through the seed at {@code seedPort}, serving {@code model} from
     * {@code folder} as {@code replicas} entities; one stream, a quick rebalance, client attempts of 3 s (6 of
     * them, 100 ms apart), no JVM shutdown hook (the test stops it).
     */
    public static Config nodeConfig(int port, int seedPort, String model, Path folder, int replicas) {
        return ConfigFactory.parseString(String.join("\n",
                "pekko.loglevel = WARNING",
                "pekko.log-dead-letters-during-shutdown = off",
                "pekko.remote.artery.canonical.hostname = 127.0.0.1",
                "pekko.remote.artery.canonical.port = " + port,
                "pekko.cluster.jmx.multi-mbeans-in-same-jvm = on",
                "pekko.cluster.sharding.rebalance-interval = 1s",
                "pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off",
                "mps-actors.streams = 1",
                "mps-actors.kernel-cache.shards = 2",
                "mps-actors.cluster.seeds = \"127.0.0.1:" + seedPort + "\"",
                "mps-actors.cluster.replicas = " + replicas,
                "mps-actors.cluster.client.attempt-timeout = 3s",
                "mps-actors.cluster.client.attempts = 6",
                "mps-actors.cluster.client.retry-backoff = 100ms"))
                .withValue("mps-actors.cluster.models." + model, ConfigValueFactory.fromAnyRef(folder.toString()));
    }

    /**
     * Waits until {@code node} sees {@code members} members up, each with its shard region registered (members
     * can be up before their regions are; replicas asked for in that window would all land on the first node).
     */
    public static void awaitUp(ClusterNode node, int members, Duration bound) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        while (System.nanoTime() < deadline) {
            long up = 0;
            for (var m : node.cluster().state().getMembers()) {
                if (m.status() == MemberStatus.up()) {
                    up++;
                }
            }
            if (up == members && shardRegions(node) == members) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError(members + " members not up with their shard regions within " + bound + ": "
                + node.cluster().state());
    }

    private static int shardRegions(ClusterNode node) {
        try {
            ShardRegion.ClusterShardingStats stats = AskPattern.<ClusterShardingQuery, ShardRegion.ClusterShardingStats>ask(
                            ClusterSharding.get(node.system()).shardState(),
                            replyTo -> new GetClusterShardingStats(ModelEntity.TYPE_KEY, Duration.ofSeconds(2), replyTo),
                            Duration.ofSeconds(5), node.system().scheduler())
                    .toCompletableFuture().get(6, TimeUnit.SECONDS);
            return stats.getRegions().size();
        } catch (Exception e) {
            return 0;
        }
    }

    /**
     * Asks every replica of {@code model} once (single attempts of 3 s, again until each has answered with a
     * result, within {@code bound}; sharding places a replica when it is first asked); the node that computed
     * each, by replica.
     */
    public static Map<Integer, String> awaitReplicas(ClusterNode node, String model, InferenceInputs probe,
                                                     String tag, Duration bound) throws InterruptedException {
        int replicas = node.settings().replicas();
        Map<Integer, String> placement = new TreeMap<>();
        long deadline = System.nanoTime() + bound.toNanos();
        int round = 0;
        while (placement.size() < replicas) {
            if (System.nanoTime() >= deadline) {
                throw new AssertionError("replicas " + placement.keySet() + " of " + replicas + " served within "
                        + bound);
            }
            for (int r = 0; r < replicas; r++) {
                if (placement.containsKey(r)) {
                    continue;
                }
                try {
                    ModelEntity.ClusterInferReply reply = node.inference().ask(model, r, tag + "-" + r + "-" + round++,
                            probe, Duration.ofSeconds(3)).toCompletableFuture().get(5, TimeUnit.SECONDS);
                    if (reply instanceof ModelEntity.ClusterInferResult ok) {
                        placement.put(r, ok.node());
                    }
                } catch (Exception e) {
                    Thread.sleep(100); // not there yet: ask again
                }
            }
        }
        return placement;
    }
}
