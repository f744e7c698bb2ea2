package dev.mpsactors.cluster;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoadFailed;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoaded;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The models one node's runtime has loaded (each replicated over the node's devices) for model entities, by local model name. The runtime
 * has no unload, so a model actor is kept once loaded: an entity that comes back to this node (after a
 * rebalance moved it away and back) reuses it instead of loading a second copy onto the device. A failed
 * load is forgotten, so the next incarnation of the entity tries again.
 *
 * <p>Shared by the entities of one node (each runs on its own actor thread), hence the concurrent map;
 * the futures it holds are completed by the runtime's replies.
 */
final class LocalModels {
    private final ActorSystem<?> system;
    private final ActorRef<RuntimeProtocol.Command> runtime;
    private final Duration loadTimeout;
    private final ConcurrentMap<String, CompletableFuture<ActorRef<InferenceProtocol.Command>>> loaded =
            new ConcurrentHashMap<>();

    LocalModels(ActorSystem<?> system, ActorRef<RuntimeProtocol.Command> runtime, Duration loadTimeout) {
        this.system = system;
        this.runtime = runtime;
        this.loadTimeout = loadTimeout;
    }

    /** The model actor loaded under {@code name} on this node, if its load has completed. */
    java.util.Optional<ActorRef<InferenceProtocol.Command>> loaded(String name) {
        CompletableFuture<ActorRef<InferenceProtocol.Command>> f = loaded.get(name);
        return f == null || !f.isDone() || f.isCompletedExceptionally() ? java.util.Optional.empty()
                : java.util.Optional.of(f.join());
    }

    /** The model actor serving {@code folder} under {@code name} on this node, loading it once. */
    CompletionStage<ActorRef<InferenceProtocol.Command>> get(String name, Path folder) {
        CompletableFuture<ActorRef<InferenceProtocol.Command>> f = loaded.computeIfAbsent(name, n -> {
            CompletableFuture<ActorRef<InferenceProtocol.Command>> result = new CompletableFuture<>();
            AskPattern.<RuntimeProtocol.Command, RuntimeProtocol.ModelLoadReply>ask(runtime,
                    replyTo -> new RuntimeProtocol.LoadModel(n, folder, replyTo), loadTimeout, system.scheduler())
                    .whenComplete((reply, failure) -> {
                        if (reply instanceof ModelLoaded ok) {
                            result.complete(ok.model());
                        } else if (reply instanceof ModelLoadFailed no) {
                            result.completeExceptionally(new IllegalStateException(no.reason()));
                        } else {
                            result.completeExceptionally(new IllegalStateException("loading model '" + n
                                    + "' did not finish within " + loadTimeout + ": " + failure));
                        }
                    });
            return result;
        });
        f.whenComplete((ref, failure) -> {
            if (failure != null) {
                loaded.remove(name, f);
            }
        });
        return f;
    }
}
