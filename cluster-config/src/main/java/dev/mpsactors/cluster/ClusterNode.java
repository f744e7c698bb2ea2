package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.sharding.typed.ClusterShardingSettings;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * One node of an mps-actors cluster: an ActorSystem in cluster mode whose guardian is this node's own
 * DeviceRuntime, with the model entities' sharding started on it. {@link #start} returns once the device is
 * open; joining the cluster proceeds in the background (seed nodes). {@link #close} leaves the cluster
 * gracefully (entities hand off to the other nodes), stops the runtime and closes the device.
 *
 * <p>From the command line: {@code bin/mps-actors node [--host H] [--port P] [--seeds h:p,h:p]
 * [--model NAME=DIR]... [--replicas N]}; the flags override the config (and the MPS_ACTORS_* variables).
 */
public final class ClusterNode implements AutoCloseable {
    private static final Duration BOUND = Duration.ofSeconds(60);

    private final ActorSystem<RuntimeProtocol.Command> system;
    private final ClusterSettings settings;
    private final ClusterInference inference;
    private final CompletableFuture<LiveObjects> deviceClosed;

    private ClusterNode(ActorSystem<RuntimeProtocol.Command> system, ClusterSettings settings,
                        CompletableFuture<LiveObjects> deviceClosed) {
        this.system = system;
        this.settings = settings;
        this.deviceClosed = deviceClosed;
        this.inference = new ClusterInference(system, settings);
    }

    /**
     * Starts a node configured by {@code config} over mps-actors-cluster.conf and the reference.conf files.
     * Blocks until the device is open (at most a minute).
     */
    public static ClusterNode start(Config config) {
        Config resolved = resolve(config);
        ClusterSettings settings = ClusterSettings.fromConfig(resolved);
        RuntimeSettings runtimeSettings = RuntimeSettings.fromConfig(resolved);
        CompletableFuture<LiveObjects> closed = new CompletableFuture<>();
        ActorSystem<RuntimeProtocol.Command> system = ActorSystem.create(
                DeviceRuntime.create(runtimeSettings, closed), settings.systemName(), resolved);
        try {
            CompletableFuture<MpsRuntime> up = MpsRuntime.attach(system, system, BOUND).toCompletableFuture();
            CompletableFuture.anyOf(up, closed).get(BOUND.toSeconds(), TimeUnit.SECONDS);
            up.getNow(null);
            LocalModels localModels = new LocalModels(system, system, settings.loadTimeout());
            ClusterSharding.get(system).init(Entity.of(ModelEntity.TYPE_KEY,
                            ctx -> ModelEntity.create(ctx.getEntityId(), settings, localModels))
                    .withSettings(ClusterShardingSettings.create(system).withNoPassivationStrategy()));
            return new ClusterNode(system, settings, closed);
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("cluster node did not start: " + e, e);
        }
    }

    /** The user's config over mps-actors-cluster.conf over reference.conf, with the seed list applied. */
    static Config resolve(Config config) {
        Config resolved = config.withFallback(ConfigFactory.parseResources(ClusterNode.class.getClassLoader(),
                "mps-actors-cluster.conf")).withFallback(ConfigFactory.defaultReference()).resolve();
        String seeds = resolved.getString(ClusterSettings.PREFIX + ".seeds").trim();
        if (!seeds.isEmpty()) {
            String systemName = resolved.getString(ClusterSettings.PREFIX + ".system-name");
            List<String> addresses = new ArrayList<>();
            for (String seed : seeds.split(",")) {
                String s = seed.trim();
                if (!s.isEmpty()) {
                    addresses.add(s.contains("://") ? s : "pekko://" + systemName + "@" + s);
                }
            }
            resolved = resolved.withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(addresses));
        }
        return resolved;
    }

    public ActorSystem<RuntimeProtocol.Command> system() {
        return system;
    }

    /** This node's DeviceRuntime (the system's guardian). */
    public ActorSystem<RuntimeProtocol.Command> runtime() {
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

    /** Leaves the cluster, stops the runtime and waits (bounded) for the device to close. */
    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
            deviceClosed.get(BOUND.toSeconds(), TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            // Termination is best effort here: the system was told to stop, and a stuck device is logged
            // by the runtime itself.
        }
    }

    /** {@code bin/mps-actors node}: runs a node until the JVM is stopped (SIGTERM leaves gracefully). */
    public static void main(String[] args) throws Exception {
        StringBuilder overrides = new StringBuilder();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String value = args[++i];
            switch (flag) {
                case "--host" -> overrides.append("pekko.remote.artery.canonical.hostname = ").append(quote(value));
                case "--port" -> overrides.append("pekko.remote.artery.canonical.port = ").append(Integer.parseInt(value));
                case "--seeds" -> overrides.append("mps-actors.cluster.seeds = ").append(quote(value));
                case "--replicas" -> overrides.append("mps-actors.cluster.replicas = ").append(Integer.parseInt(value));
                case "--model" -> {
                    int eq = value.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--model takes NAME=DIR, got " + value);
                    }
                    overrides.append("mps-actors.cluster.models.").append(quote(value.substring(0, eq)))
                            .append(" = ").append(quote(value.substring(eq + 1)));
                }
                default -> throw new IllegalArgumentException("unknown flag " + flag
                        + " (node flags: --host, --port, --seeds, --model NAME=DIR, --replicas)");
            }
            overrides.append('\n');
        }
        ClusterNode node = start(ConfigFactory.parseString(overrides.toString()).withFallback(ConfigFactory.load()));
        System.out.println("mps-actors node " + node.cluster().selfMember().address() + " serving "
                + node.settings().models().keySet() + " x" + node.settings().replicas());
        node.system().getWhenTerminated().toCompletableFuture().get();
    }

    private static String quote(String s) {
        return ConfigValueFactory.fromAnyRef(s).render();
    }
}
