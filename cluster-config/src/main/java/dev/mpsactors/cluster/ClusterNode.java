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
 * [--model NAME=DIR]... [--replicas N] [--tls --key-store FILE --trust-store FILE]} ({@link #serve}); the flags
 * override the config (and the MPS_ACTORS_* variables). With {@code mps-actors.cluster.tls.enabled} the nodes
 * speak Artery over TLS with mutual authentication ({@link ClusterTls}).
 */
public final class ClusterNode implements AutoCloseable {
    private static final Duration BOUND = Duration.ofSeconds(60);
    /** How long past its actor-system-terminate phase a stopping node waits for its system before it exits. */
    private static final Duration STOP_GRACE = Duration.ofSeconds(5);
    /** Exit status of {@code bin/mps-actors node} when the cluster downed the node. */
    public static final int EXIT_DOWNED = 3;
    static final String CLUSTER_CONF = "mps-actors-cluster.conf";

    private final ActorSystem<RuntimeProtocol.Command> system;
    private final ClusterSettings settings;
    private final ClusterInference inference;
    private final CompletableFuture<LiveObjects> deviceClosed;
    private final MpsRuntime local;
    private final LocalModels localModels;

    private ClusterNode(ActorSystem<RuntimeProtocol.Command> system, ClusterSettings settings,
                        CompletableFuture<LiveObjects> deviceClosed, MpsRuntime local, LocalModels localModels) {
        this.system = system;
        this.local = local;
        this.localModels = localModels;
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
            MpsRuntime local = up.getNow(null);
            LocalModels localModels = new LocalModels(system, system, settings.loadTimeout());
            ModelEntity.initSharding(system, ctx -> ModelEntity.create(ctx.getEntityId(), settings, localModels));
            return new ClusterNode(system, settings, closed, local, localModels);
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
        return ClusterTls.apply(resolved);
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

    /** The facade of this node's own runtime (its devices, memory and streams; the entities' models load on it). */
    public MpsRuntime localRuntime() {
        return local;
    }

    /**
     * The model actor (the router over this node's devices) that replica {@code replica} of {@code model} computes
     * on here; empty when that replica has not loaded on this node. Its counters ({@code GetModelStats}) are the
     * replica's.
     */
    public java.util.Optional<org.apache.pekko.actor.typed.ActorRef<dev.mpsactors.protocol.InferenceProtocol.Command>>
            localReplica(String model, int replica) {
        return localModels.loaded(ModelEntity.localName(ModelEntity.entityId(model, replica)));
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

    /**
     * {@link #close()}, then what was still alive natively on this node's devices (nothing after a clean run;
     * null when the devices did not report within the bound).
     */
    public LiveObjects shutdown() {
        close();
        return deviceClosed.getNow(null);
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
     * {@code bin/mps-actors node}: starts a node with {@code config} and serves until it is stopped; returns the
     * exit status for the command line to exit with. SIGTERM leaves the cluster gracefully (the JVM then exits
     * with its status for SIGTERM, 143); a node the cluster downs (the split-brain resolver on the minority side,
     * or an operator) returns {@value #EXIT_DOWNED}, so a supervisor can start it again; otherwise 0. Prints one
     * line to {@code out} when it is up and one when it stops, with the reason. A bad setting (a seed that is not
     * host:port, TLS stores that cannot be read) throws {@link IllegalArgumentException} naming it.
     */
    public static int serve(Config config, java.io.PrintStream out) throws Exception {
        return serve(config, out, node -> { });
    }

    /**
     * {@link #serve(Config, java.io.PrintStream)}, running {@code started} on the node once it is up (before
     * its first line), e.g. to serve HTTP on it; a failure there stops the node and is thrown.
     */
    public static int serve(Config config, java.io.PrintStream out,
                            java.util.function.Consumer<ClusterNode> started) throws Exception {
        ClusterNode node = start(config);
        try {
            started.accept(node);
        } catch (RuntimeException e) {
            node.close();
            throw e;
        }
        Config c = node.system().settings().config();
        String self = node.cluster().selfMember().address().toString();
        out.println("mps-actors node " + self + " serving "
                + node.settings().models().keySet() + " x" + node.settings().replicas() + " (seeds "
                + c.getStringList("pekko.cluster.seed-nodes") + ", transport "
                + c.getString("pekko.remote.artery.transport") + ", split-brain resolver "
                + c.getString("pekko.cluster.split-brain-resolver.active-strategy") + " stable-after "
                + c.getString("pekko.cluster.split-brain-resolver.stable-after") + ")");
        out.flush();
        // Said before the system stops, also when a signal stops it (the JVM then exits 143 when done).
        CoordinatedShutdown shutdown = CoordinatedShutdown.get(node.system());
        CompletableFuture<Void> stopping = new CompletableFuture<>();
        shutdown.addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(), "mps-actors-node-stopping", () -> {
            out.println("mps-actors node " + self + " stopping: " + describe(shutdown.getShutdownReason()));
            out.flush();
            stopping.complete(null);
            return CompletableFuture.completedFuture(org.apache.pekko.Done.getInstance());
        });
        CompletableFuture<?> terminated = node.system().getWhenTerminated().toCompletableFuture();
        CompletableFuture.anyOf(terminated, stopping).get();
        // Once stopping, the node exits within a bound even when the system cannot finish terminating (a node
        // cut off the network can leave Artery's outbound streams hanging): a supervisor restarts what exits.
        Duration grace = c.getDuration("pekko.coordinated-shutdown.phases.actor-system-terminate.timeout")
                .plus(STOP_GRACE);
        boolean stopped = true;
        try {
            terminated.get(grace.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            stopped = false;
            out.println("mps-actors node " + self + ": the actor system did not finish stopping within "
                    + grace.toSeconds() + " s; exiting without waiting further (its threads on stderr)");
            out.flush();
            printThreads(System.err);
        }
        if (stopped) {
            node.deviceClosed.get(BOUND.toSeconds(), TimeUnit.SECONDS);
        }
        boolean downed = shutdown.getShutdownReason().filter(r -> r == CoordinatedShutdown.clusterDowningReason())
                .isPresent();
        return downed ? EXIT_DOWNED : 0;
    }

    /** Every live thread's stack, for the operator of a node that could not stop: what it was stuck in. */
    private static void printThreads(java.io.PrintStream err) {
        for (Map.Entry<Thread, StackTraceElement[]> t : Thread.getAllStackTraces().entrySet()) {
            err.println("\"" + t.getKey().getName() + "\" " + t.getKey().getState());
            for (StackTraceElement frame : t.getValue()) {
                err.println("    at " + frame);
            }
        }
        err.flush();
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
     * What the flags of {@code bin/mps-actors node} set; null (or empty) leaves the configuration's value.
     *
     * @param models model name to folder, added to {@code mps-actors.cluster.models}
     */
    public record NodeFlags(String host, Integer port, String seeds, Map<String, String> models, Integer replicas) {
        public NodeFlags {
            models = models == null ? Map.of() : Map.copyOf(models);
        }

        /** The flags as configuration keys. */
        public Config toConfig() {
            Map<String, Object> keys = new java.util.LinkedHashMap<>();
            if (host != null) {
                keys.put("pekko.remote.artery.canonical.hostname", host);
            }
            if (port != null) {
                keys.put("pekko.remote.artery.canonical.port", port);
            }
            if (seeds != null) {
                keys.put(ClusterSettings.PREFIX + ".seeds", seeds);
            }
            if (replicas != null) {
                keys.put(ClusterSettings.PREFIX + ".replicas", replicas);
            }
            StringBuilder modelKeys = new StringBuilder();
            models.forEach((name, dir) -> modelKeys.append(ClusterSettings.PREFIX).append(".models.")
                    .append(quote(name)).append(" = ").append(quote(dir)).append('\n'));
            return ConfigFactory.parseString(modelKeys.toString()).withFallback(ConfigFactory.parseMap(keys));
        }
    }

    /**
     * The configuration {@code bin/mps-actors node} starts with: its flags over -D system properties over
     * application.conf (or {@code -Dconfig.file}/{@code -Dconfig.resource}); {@link #start} adds
     * mps-actors-cluster.conf and the reference.conf files underneath.
     */
    public static Config configFor(NodeFlags flags) {
        return flags.toConfig()
                .withFallback(ConfigFactory.defaultOverrides())
                .withFallback(ConfigFactory.defaultApplication());
    }

    private static String quote(String s) {
        return ConfigValueFactory.fromAnyRef(s).render();
    }
}
