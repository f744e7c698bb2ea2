package dev.mpsactors.bench;

import dev.mpsactors.cluster.ClusterNode;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code bin/mps-actors node}: a Pekko Cluster node serving models as sharded entities until it is stopped. */
@Command(name = "node", description = {
        "A Pekko Cluster node serving models as sharded entities (docs/cluster.md), until SIGTERM (it leaves the"
                + " cluster; exit 143) or the cluster downs it (exit " + ClusterNode.EXIT_DOWNED + ", for a"
                + " supervisor to start it again).",
        "The flags override the configuration (-D keys through MPS_ACTORS_JAVA_OPTS, application.conf, the"
                + " MPS_ACTORS_* variables)."})
final class NodeCommand implements Callable<Integer> {
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
        try {
            return ClusterNode.serve(tls.over(ClusterNode.configFor(
                    new ClusterNode.NodeFlags(host, port, seeds, models, replicas))), System.out);
        } catch (IllegalArgumentException e) {
            throw new Cli.UsageException(e.getMessage());
        }
    }
}
