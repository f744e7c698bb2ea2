package dev.mpsactors.server;

import dev.mpsactors.actors.TextEncoderActor;
import dev.mpsactors.cluster.ClusterModelProxy;
import dev.mpsactors.cluster.ClusterNode;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.runtime.MpsRuntimeException;
import dev.mpsactors.runtime.TextSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;

/**
 * HTTP on a Pekko Cluster node ({@code bin/mps-actors node --http-port P}): the same routes as {@code serve},
 * for the models of {@code mps-actors.cluster.models}, where each model's requests are tokenized on this node
 * (a {@link TextEncoderActor} with the folder's tokenizer) and computed by the model's sharded entities,
 * wherever they live, through a {@link ClusterModelProxy} (round robin over the replicas, retried on another
 * replica when one stops). Any node answers for every model, also when no replica lives on it. Models are
 * the cluster's configuration: {@code PUT} and {@code DELETE /models/{name}} are refused (405).
 */
public final class ClusterServing implements ModelBackend {
    private final ClusterNode node;
    private final Executor tokenize;
    private final TextSettings textSettings;
    private final Map<String, ActorRef<InferenceProtocol.Command>> proxies = new ConcurrentHashMap<>();
    private final Map<String, ClusterModelProxy.Stats> stats = new ConcurrentHashMap<>();

    private ClusterServing(ClusterNode node) {
        this.node = node;
        this.tokenize = node.system().dispatchers().lookup(DispatcherSelector.fromConfig(TextSettings.TOKENIZE_DISPATCHER));
        this.textSettings = TextSettings.fromConfig(node.system().settings().config());
    }

    /**
     * Serves HTTP on {@code node} for every model of its {@code mps-actors.cluster.models}, with
     * {@code settings}; the server owns the node from now on ({@link MpsServer#shutdown()} leaves the cluster
     * and closes its devices).
     */
    public static MpsServer start(ClusterNode node, ServerSettings settings) {
        return start(node, settings, new ClusterServing(node));
    }

    static MpsServer start(ClusterNode node, ServerSettings settings, ClusterServing backend) {
        if (node.settings().models().isEmpty()) {
            throw new IllegalArgumentException("no model to serve over HTTP: mps-actors.cluster.models is empty");
        }
        return MpsServer.start(node.localRuntime(), backend, settings, node.settings().models());
    }

    /** A backend for {@code node}, whose {@link #stats} a caller keeps (tests count where requests computed). */
    static ClusterServing on(ClusterNode node) {
        return new ClusterServing(node);
    }

    /** What the proxy of model {@code name} saw (results by the node that computed them), if it serves. */
    ClusterModelProxy.Stats stats(String name) {
        return stats.get(name);
    }

    @Override
    public CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, String runtimeName,
                                                                          Path folder) {
        if (!node.settings().models().containsKey(name)) {
            return CompletableFuture.failedFuture(new MpsRuntimeException("model '" + name
                    + "' is not configured in this cluster (mps-actors.cluster.models)"));
        }
        return CompletableFuture.supplyAsync(() -> TextEncoderActor.Text.load(folder), tokenize).thenApply(text -> {
            ClusterModelProxy.Stats s = stats.computeIfAbsent(name, n -> new ClusterModelProxy.Stats());
            ActorRef<InferenceProtocol.Command> proxy = node.system().systemActorOf(
                    ClusterModelProxy.create(name, node.inference().caller(), s), "cluster-model-" + runtimeName,
                    Props.empty());
            proxies.put(runtimeName, proxy);
            // the encoder watches its model: it stops (answering what it holds) when the proxy stops
            return node.system().systemActorOf(TextEncoderActor.create(proxy, text, textSettings, tokenize),
                    "text-encoder-" + runtimeName, Props.empty());
        });
    }

    @Override
    public CompletionStage<Boolean> unload(String runtimeName) {
        ActorRef<InferenceProtocol.Command> proxy = proxies.remove(runtimeName);
        if (proxy != null) {
            proxy.tell(new ClusterModelProxy.Stop());
        }
        return CompletableFuture.completedFuture(proxy != null);
    }

    @Override
    public String managementRefused() {
        return "this is a cluster node; its models are the cluster's configuration (mps-actors.cluster.models), "
                + "the same on every node";
    }

    @Override
    public LiveObjects shutdown(Duration timeout) {
        LiveObjects left = node.shutdown();
        return left != null ? left : LiveObjects.NONE;
    }
}
