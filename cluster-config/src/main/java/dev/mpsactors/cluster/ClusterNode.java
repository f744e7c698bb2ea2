package dev.mpsactors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigOrigin;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.actors.HostRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * One node of an mps-actors cluster: an ActorSystem in cluster mode whose guardian is this node's own
 * HostRuntime (one DeviceRuntime per device), with the model entities' sharding started on it. {@link #start} returns once the device is
 * open; joining the cluster proceeds in the background (seed nodes). {@link #close} leaves the cluster
 * gracefully (entities hand off to the other nodes), stops the runtime and closes the device.
 *
 * <p>From the command line: {@code bin/mps-actors node [--host H] [--port P] [--seeds h:p,h:p]
 * [--model NAME=DIR]... [--replicas N]}; the flags override the config (and the MPS_ACTORS_* variables).
 */
public final class ClusterNode implements AutoCloseable {
    private static final Duration BOUND = Duration.ofSeconds(60);
    /** Exit status of {@code bin/mps-actors node} when the cluster downed the node. */
    public static final int EXIT_DOWNED = 3;
    static final String CLUSTER_CONF = "mps-actors-cluster.conf";

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
     * Blocks until every device of {@code mps-actors.devices} is open (at most a minute); each model an entity
     * loads is replicated on all of them.
     */
    public static ClusterNode start(Config config) {
        Config resolved = resolve(config);
        ClusterSettings settings = ClusterSettings.fromConfig(resolved);
        RuntimeSettings runtimeSettings = RuntimeSettings.fromConfig(resolved);
        CompletableFuture<LiveObjects> closed = new CompletableFuture<>();
        ActorSystem<RuntimeProtocol.Command> system = ActorSystem.create(
                HostRuntime.create(runtimeSettings, closed), settings.systemName(), resolved);
        try {
            CompletableFuture<MpsRuntime> up = MpsRuntime.attach(system, system, BOUND).toCompletableFuture();
            CompletableFuture.anyOf(up, closed).get(BOUND.toSeconds(), TimeUnit.SECONDS);
            up.getNow(null);
            LocalModels localModels = new LocalModels(system, system, settings.loadTimeout());
            ModelEntity.initSharding(system, ctx -> ModelEntity.create(ctx.getEntityId(), settings, localModels));
            return new ClusterNode(system, settings, closed);
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("cluster node did not start: " + e, e);
        }
    }

    /**
     * The user's config over mps-actors-cluster.conf over the reference.conf files, with the seed list applied.
     * {@code config} may be {@link ConfigFactory#load()}: that already merges the reference.conf files (Pekko's
     * {@code provider = local} among them) under the application's settings, so a value there that came from a
     * reference.conf does not hide mps-actors-cluster.conf; one set by application.conf, a -D key or the
     * caller does.
     */
    static Config resolve(Config config) {
        Config clusterConf = ConfigFactory.parseResources(ClusterNode.class.getClassLoader(), CLUSTER_CONF);
        Config user = config;
        for (Map.Entry<String, ConfigValue> e : clusterConf.resolve().entrySet()) {
            String path = e.getKey();
            if (user.hasPath(path) && fromReference(user.getValue(path).origin())) {
                user = user.withoutPath(path);
            }
        }
        Config resolved = user.withFallback(clusterConf).withFallback(ConfigFactory.defaultReference()).resolve();
        String seeds = resolved.getString(ClusterSettings.PREFIX + ".seeds").trim();
        if (!seeds.isEmpty()) {
            String systemName = resolved.getString(ClusterSettings.PREFIX + ".system-name");
            List<String> addresses = new ArrayList<>();
            for (String seed : seeds.split(",")) {
                String s = seed.trim();
                if (!s.isEmpty()) {
                    addresses.add(seedAddress(s, systemName));
                }
            }
            resolved = resolved.withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(addresses));
        }
        return resolved;
    }

    /** {@code host:port} (or a full pekko:// address) as a seed address; anything else is refused by name. */
    private static String seedAddress(String seed, String systemName) {
        String address = seed.contains("://") ? seed : "pekko://" + systemName + "@" + seed;
        try {
            org.apache.pekko.actor.Address a = org.apache.pekko.actor.AddressFromURIString.parse(address);
            if (a.host().isEmpty() || a.port().isEmpty()) {
                throw new IllegalArgumentException("no host or port");
            }
        } catch (Exception e) { // Scala's parser also throws MalformedURLException, undeclared
            throw new IllegalArgumentException("seed '" + seed + "' (" + ClusterSettings.PREFIX + ".seeds) is not "
                    + "host:port or pekko://" + systemName + "@host:port");
        }
        return address;
    }

    private static boolean fromReference(ConfigOrigin origin) {
        String resource = origin.resource();
        if (resource == null && origin.url() != null) {
            resource = origin.url().getPath();
        }
        return resource != null && (resource.equals("reference.conf") || resource.endsWith("/reference.conf"));
    }

    public ActorSystem<RuntimeProtocol.Command> system() {
        return system;
    }

    /** This node's HostRuntime (the system's guardian). */
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
        stop(system, deviceClosed);
    }

    /** Stops {@code system} (leaving the cluster) and waits, bounded, for it and then {@code alsoDone}. */
    static void stop(ActorSystem<?> system, CompletableFuture<?> alsoDone) {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
            alsoDone.get(BOUND.toSeconds(), TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            // Termination is best effort here: the system was told to stop, and a stuck device is logged
            // by the runtime itself.
        }
    }

    /**
     * {@code bin/mps-actors node}: runs a node until it is stopped. SIGTERM leaves the cluster gracefully (the
     * JVM then exits with its status for SIGTERM, 143); a node the cluster downs (the split-brain resolver on
     * the minority side, or an operator) exits {@value #EXIT_DOWNED}, so a supervisor can start it again. Each
     * prints one line when it is up and one when it stops, with the reason.
     */
    public static void main(String[] args) throws Exception {
        ClusterNode node;
        try {
            node = start(configFor(args));
        } catch (IllegalArgumentException e) {
            System.err.println("mps-actors node: " + e.getMessage());
            System.exit(2);
            return;
        }
        Config c = node.system().settings().config();
        String self = node.cluster().selfMember().address().toString();
        System.out.println("mps-actors node " + self + " serving "
                + node.settings().models().keySet() + " x" + node.settings().replicas() + " (seeds "
                + c.getStringList("pekko.cluster.seed-nodes") + ", split-brain resolver "
                + c.getString("pekko.cluster.split-brain-resolver.active-strategy") + " stable-after "
                + c.getString("pekko.cluster.split-brain-resolver.stable-after") + ")");
        System.out.flush();
        // Said before the system stops, also when a signal stops it (the JVM then exits 143 when done).
        CoordinatedShutdown shutdown = CoordinatedShutdown.get(node.system());
        shutdown.addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(), "mps-actors-node-stopping", () -> {
            System.out.println("mps-actors node " + self + " stopping: " + describe(shutdown.getShutdownReason()));
            System.out.flush();
            return CompletableFuture.completedFuture(org.apache.pekko.Done.getInstance());
        });
        node.system().getWhenTerminated().toCompletableFuture().get();
        node.deviceClosed.get(BOUND.toSeconds(), TimeUnit.SECONDS);
        boolean downed = shutdown.getShutdownReason().filter(r -> r == CoordinatedShutdown.clusterDowningReason())
                .isPresent();
        System.exit(downed ? EXIT_DOWNED : 0);
    }

    private static String describe(Optional<CoordinatedShutdown.Reason> reason) {
        if (reason.isEmpty()) {
            return "terminated";
        } else if (reason.get() == CoordinatedShutdown.clusterDowningReason()) {
            return "downed by the cluster";
        } else if (reason.get() == CoordinatedShutdown.jvmExitReason()) {
            return "the JVM is exiting (SIGTERM): left the cluster";
        } else if (reason.get() == CoordinatedShutdown.clusterLeavingReason()) {
            return "left the cluster";
        }
        return String.valueOf(reason.get());
    }

    /**
     * The configuration {@code bin/mps-actors node ARGS} starts with: its flags over -D system properties over
     * application.conf (or {@code -Dconfig.file}/{@code -Dconfig.resource}); {@link #start} adds
     * mps-actors-cluster.conf and the reference.conf files underneath.
     */
    public static Config configFor(String[] args) {
        StringBuilder overrides = new StringBuilder();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String value = args[++i];
            switch (flag) {
                case "--host" -> overrides.append("pekko.remote.artery.canonical.hostname = ").append(quote(value));
                case "--port" -> overrides.append("pekko.remote.artery.canonical.port = ").append(integer(flag, value));
                case "--seeds" -> overrides.append("mps-actors.cluster.seeds = ").append(quote(value));
                case "--replicas" -> overrides.append("mps-actors.cluster.replicas = ").append(integer(flag, value));
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
        return ConfigFactory.parseString(overrides.toString())
                .withFallback(ConfigFactory.defaultOverrides())
                .withFallback(ConfigFactory.defaultApplication());
    }

    private static int integer(String flag, String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + " takes a number, got " + value);
        }
    }

    private static String quote(String s) {
        return ConfigValueFactory.fromAnyRef(s).render();
    }
}
