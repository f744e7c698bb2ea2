package dev.mpsactors.bench;

import dev.mpsactors.cluster.ClusterNode;
import dev.mpsactors.server.ClusterServing;
import dev.mpsactors.server.MpsServer;
import dev.mpsactors.server.ServerSettings;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code bin/mps-actors node}: a Pekko Cluster node serving models as sharded entities until it is stopped. */
@Command(name = "node", description = {
        "A Pekko Cluster node serving models as sharded entities (docs/cluster.md), until SIGTERM (it leaves the"
                + " cluster; exit 143) or the cluster downs it (exit " + ClusterNode.EXIT_DOWNED + ", for a"
                + " supervisor to start it again).",
        "The flags override the configuration (-D keys through MPS_ACTORS_JAVA_OPTS, application.conf, the"
                + " MPS_ACTORS_* variables)."})
final class NodeCommand implements Callable<Integer> {
    @ParentCommand
    Cli cli;

    @Option(names = "--host", paramLabel = "H", description = "the address other members reach this node at")
    String host;

    @Option(names = "--port", paramLabel = "P", description = "this node's port (0: a free one)")
    Integer port;

    @Option(names = "--seeds", paramLabel = "H:P,..", description = "the seed nodes")
    String seeds;

    @Option(names = "--model", paramLabel = "NAME=DIR", description = "a model to serve (repeatable)")
    Map<String, String> models = new LinkedHashMap<>();

    @Option(names = "--replicas", paramLabel = "R", description = "entities per model")
    Integer replicas;

    @Option(names = "--http-port", paramLabel = "P", description = "also serve HTTP on this port (0: a free one):"
            + " the routes of serve, every model through its sharded entities (docs/cluster.md)")
    Integer httpPort;

    @Option(names = "--http-host", paramLabel = "H", description = "the interface HTTP listens on (default:"
            + " mps-actors.server.host); only with --http-port")
    String httpHost;

    @Mixin
    ClusterTlsOptions tls;

    @Override
    public Integer call() throws Exception {
        if (port != null && (port < 0 || port > 65535)) {
            throw new Cli.UsageException("--port must be 0..65535, got " + port);
        }
        if (replicas != null) {
            Cli.positive("--replicas", replicas);
        }
        models.forEach((name, dir) -> {
            if (name.isEmpty() || dir.isEmpty()) {
                throw new Cli.UsageException("--model takes NAME=DIR, got '" + name + "=" + dir + "'");
            }
        });
        if (httpPort != null && (httpPort < 0 || httpPort > 65535)) {
            throw new Cli.UsageException("--http-port must be 0..65535, got " + httpPort);
        }
        if (httpHost != null && httpPort == null) {
            throw new Cli.UsageException("--http-host needs --http-port");
        }
        try {
            return ClusterNode.serve(tls.over(ClusterNode.configFor(
                    new ClusterNode.NodeFlags(host, port, seeds, models, replicas))), cli.out(), this::serveHttp);
        } catch (IllegalArgumentException e) {
            throw new Cli.UsageException(e.getMessage());
        }
    }

    /** With --http-port: HTTP on the node, answered before the node leaves the cluster on its way down. */
    private void serveHttp(ClusterNode node) {
        if (httpPort == null) {
            return;
        }
        com.typesafe.config.Config c = node.system().settings().config()
                .withValue("mps-actors.server.port", com.typesafe.config.ConfigValueFactory.fromAnyRef(httpPort));
        if (httpHost != null) {
            c = c.withValue("mps-actors.server.host", com.typesafe.config.ConfigValueFactory.fromAnyRef(httpHost));
        }
        MpsServer server = ClusterServing.start(node, ServerSettings.fromConfig(c));
        cli.out().println("mps-actors node: HTTP on " + server.url() + " (models: "
                + String.join(", ", node.settings().models().keySet()) + ")");
        cli.out().flush();
        org.apache.pekko.actor.CoordinatedShutdown.get(node.system()).addTask(
                org.apache.pekko.actor.CoordinatedShutdown.PhaseServiceUnbind(), "mps-actors-http-stop", () ->
                        java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                            try {
                                server.stopServing();
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                            return org.apache.pekko.Done.getInstance();
                        }));
    }
}
