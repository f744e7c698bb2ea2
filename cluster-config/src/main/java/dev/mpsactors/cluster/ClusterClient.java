package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * A client of an mps-actors cluster that serves nothing itself: an ActorSystem that joins the cluster through
 * its seeds with the role {@value #ROLE}, so it holds no model replica and does not count in the split-brain
 * resolver's majority, and reaches every replica through a sharding proxy. It has no device and loads no
 * native code. {@code bin/mps-actors cluster-client} drives a cluster through one.
 *
 * <p>Configuration: the same {@code mps-actors.cluster} section (seeds, client.attempt-timeout, attempts,
 * retry-backoff); its own address is {@code pekko.remote.artery.canonical.hostname} (reachable from the
 * nodes) and port (0, any free one, unless set).
 */
public final class ClusterClient implements AutoCloseable {
    public static final String ROLE = "mps-client";

    private final ActorSystem<Void> system;
    private final ClusterSettings settings;
    private final ClusterInference inference;

    private ClusterClient(ActorSystem<Void> system, ClusterSettings settings) {
        this.system = system;
        this.settings = settings;
        this.inference = new ClusterInference(system, settings);
    }

    /** Starts the client over mps-actors-cluster.conf and the reference.conf files (see {@link ClusterNode#start}). */
    public static ClusterClient start(Config config) {
        Config resolved = ClusterNode.resolve(config.withFallback(ConfigFactory.parseString(
                "pekko.cluster.roles = [\"" + ROLE + "\"]\npekko.remote.artery.canonical.port = 0")));
        ClusterSettings settings = ClusterSettings.fromConfig(resolved);
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), settings.systemName(), resolved);
        try {
            ModelEntity.initSharding(system, ctx -> {
                throw new IllegalStateException("a " + ROLE + " hosts no model entity");
            });
            return new ClusterClient(system, settings);
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    public ActorSystem<Void> system() {
        return system;
    }

    public ClusterSettings settings() {
        return settings;
    }

    public ClusterInference inference() {
        return inference;
    }

    public Cluster cluster() {
        return Cluster.get(system);
    }

    /** Leaves the cluster and stops (bounded). */
    @Override
    public void close() {
        ClusterNode.stop(system, CompletableFuture.completedFuture(null));
    }
}
