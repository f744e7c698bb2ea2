package dev.mpsactors.runtime;

import dev.mpsactors.actors.TextEncoderActor;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.ReplicaProtocol;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.TextProtocol;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;

/**
 * Models and text encoders. A model is replicated on the devices it is assigned (every device of the runtime by
 * default); the ref {@link #loadModel} returns routes each request to the least-loaded replica and speaks the
 * model protocol, so callers do not see the devices. Requests complete exceptionally with an
 * {@link MpsRuntimeException} carrying the model's reason.
 */
public final class Models {
    private final ActorRef<RuntimeProtocol.Command> runtime;
    private final Asker asker;
    /** The models loaded through this facade, by name (statistics and unloading by name). */
    private final java.util.Map<String, ActorRef<InferenceProtocol.Command>> loaded =
            new java.util.concurrent.ConcurrentHashMap<>();

    Models(ActorRef<RuntimeProtocol.Command> runtime, Asker asker) {
        this.runtime = runtime;
        this.asker = asker;
    }

    /** Loads a Hugging Face folder on every device and starts its replicas; fails with the loader's reason. */
    public CompletionStage<ActorRef<InferenceProtocol.Command>> loadModel(String name, Path folder) {
        return loadModel(name, folder, null);
    }

    /**
     * Loads a Hugging Face folder on the devices {@code devices} (ordinals; null: every device) and starts a
     * replica on each; fails with the loader's reason or naming a device the runtime does not have.
     */
    public CompletionStage<ActorRef<InferenceProtocol.Command>> loadModel(String name, Path folder,
                                                                          List<Integer> devices) {
        return asker.ask(runtime, (ActorRef<RuntimeProtocol.ModelLoadReply> r) ->
                        new RuntimeProtocol.LoadModel(name, folder, devices, r))
                .thenApply(reply -> {
                    if (reply instanceof RuntimeProtocol.ModelLoadFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    ActorRef<InferenceProtocol.Command> model = ((RuntimeProtocol.ModelLoaded) reply).model();
                    loaded.put(name, model);
                    return model;
                });
    }

    /** The model loaded through this facade as {@code name} (also the one behind a text encoder). */
    public java.util.Optional<ActorRef<InferenceProtocol.Command>> model(String name) {
        return java.util.Optional.ofNullable(loaded.get(name));
    }

    /**
     * Stops the model loaded as {@code name} on every device (its replicas, its router, and a text encoder in
     * front of it) and frees its device weights; completes once every replica has stopped, with false when no
     * model of that name was loaded. Requests it still held are answered with a failure: drain them first.
     */
    public CompletionStage<Boolean> unloadModel(String name) {
        return asker.ask(runtime, (ActorRef<RuntimeProtocol.ModelUnloaded> r) -> new RuntimeProtocol.UnloadModel(name, r))
                .thenApply(reply -> {
                    loaded.remove(name);
                    return reply.found();
                });
    }

    /**
     * One request; completes with the result, or exceptionally with the model's reason
     * ({@link OverloadedException} when every replica refused it at admission). Its deadline is the ask
     * timeout: if it is still queued then, it is dropped before it reaches the device.
     */
    public CompletionStage<InferenceProtocol.InferResult> infer(ActorRef<InferenceProtocol.Command> model,
                                                               String requestId,
                                                               InferenceProtocol.InferenceInputs inputs) {
        return infer(model, requestId, inputs, InferenceProtocol.OutputSpec.HF_DEFAULT);
    }

    /** {@link #infer(ActorRef, String, InferenceProtocol.InferenceInputs)} for the outputs {@code outputs}. */
    public CompletionStage<InferenceProtocol.InferResult> infer(ActorRef<InferenceProtocol.Command> model,
                                                               String requestId,
                                                               InferenceProtocol.InferenceInputs inputs,
                                                               InferenceProtocol.OutputSpec outputs) {
        return asker.ask(model, (ActorRef<InferenceProtocol.InferReply> r) ->
                        InferenceProtocol.Infer.within(requestId, inputs, r, asker.timeout(), outputs))
                .thenApply(reply -> {
                    if (reply instanceof InferenceProtocol.InferFailure f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    if (reply instanceof InferenceProtocol.Overloaded o) {
                        throw new OverloadedException(o.reason());
                    }
                    return (InferenceProtocol.InferResult) reply;
                });
    }

    /**
     * The model's counters: requests, successes, failures and refusals as callers saw them; batches and
     * sequences summed over its replicas.
     */
    public CompletionStage<InferenceProtocol.ModelStats> modelStats(ActorRef<InferenceProtocol.Command> model) {
        return asker.ask(model, InferenceProtocol.GetModelStats::new);
    }

    /** Per device: requests routed to the model's replica, outstanding, answered, moved away, restarts. */
    public CompletionStage<ReplicaProtocol.ReplicaStats> replicaStats(ActorRef<InferenceProtocol.Command> model) {
        return asker.ask(model, ReplicaProtocol.GetReplicaStats::new);
    }

    /**
     * Loads a Hugging Face folder as a text encoder: its model (as {@link #loadModel}, on every device), its
     * {@code tokenizer.json} and its sentence-transformers settings (pooling, normalization, sequence limit),
     * and starts the actor that owns the tokenizer; each request it makes of the model goes to the least-loaded
     * replica. Fails with the reason naming the file or setting at fault.
     */
    public CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, Path folder) {
        return loadTextEncoder(name, folder, null);
    }

    /** {@link #loadTextEncoder(String, Path)} with its model on the devices {@code devices} (null: every device). */
    public CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, Path folder,
                                                                          List<Integer> devices) {
        var system = asker.system();
        TextSettings settings = TextSettings.fromConfig(system.settings().config());
        Executor tokenize = system.dispatchers().lookup(DispatcherSelector.fromConfig(TextSettings.TOKENIZE_DISPATCHER));
        CompletableFuture<TextEncoderActor.Text> text = CompletableFuture.supplyAsync(
                () -> TextEncoderActor.Text.load(folder), tokenize);
        return text.thenCompose(t -> loadModel(name, folder, devices)
                        .<ActorRef<TextProtocol.Command>>thenApply(model -> system.systemActorOf(
                                TextEncoderActor.create(model, t, settings, tokenize),
                                "text-encoder-" + java.util.UUID.randomUUID(), Props.empty()))
                        .whenComplete((ref, failure) -> {
                            if (failure != null) {
                                t.tokenizer().close();
                            }
                        }))
                .exceptionally(e -> {
                    Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
                    throw cause instanceof MpsRuntimeException m ? m : new MpsRuntimeException(cause.getMessage());
                });
    }

    /**
     * Embeds {@code texts} (one vector per text, in order); completes exceptionally with an
     * {@link TextRequestFailedException} naming the bad texts, or the model's reason. Its deadline is the ask timeout.
     *
     * @param options null: the folder's pooling and normalization, truncation on
     */
    public CompletionStage<TextProtocol.Embeddings> embed(ActorRef<TextProtocol.Command> encoder, String requestId,
                                                          List<String> texts, TextProtocol.EmbedOptions options) {
        return asker.ask(encoder, (ActorRef<TextProtocol.EmbedReply> r) -> new TextProtocol.Embed(requestId, texts,
                options, r, deadline())).thenApply(reply -> {
                    if (reply instanceof TextProtocol.TextFailure f) {
                        throw new TextRequestFailedException(f);
                    }
                    return (TextProtocol.Embeddings) reply;
                });
    }

    /**
     * Scores each text against {@code query} with the encoder's cross-encoder head (one score per text, in
     * order); completes exceptionally with a {@link TextRequestFailedException} (kind UNSUPPORTED when the
     * model has no such head). Its deadline is the ask timeout.
     *
     * @param options null: truncation on, the head's activation applied
     */
    public CompletionStage<TextProtocol.Scores> rerank(ActorRef<TextProtocol.Command> encoder, String requestId,
                                                       String query, List<String> texts,
                                                       TextProtocol.ScoreOptions options) {
        return asker.ask(encoder, (ActorRef<TextProtocol.RerankReply> r) -> new TextProtocol.Rerank(requestId, query,
                texts, options, r, deadline())).thenApply(reply -> {
                    if (reply instanceof TextProtocol.TextFailure f) {
                        throw new TextRequestFailedException(f);
                    }
                    return (TextProtocol.Scores) reply;
                });
    }

    /**
     * Classifies each text with the encoder's sequence-classification head (every label with its score,
     * highest first); completes exceptionally with a {@link TextRequestFailedException}. Its deadline is the
     * ask timeout.
     *
     * @param options null: truncation on, the head's activation applied
     */
    public CompletionStage<TextProtocol.Classifications> classify(ActorRef<TextProtocol.Command> encoder,
                                                                  String requestId, List<String> texts,
                                                                  TextProtocol.ScoreOptions options) {
        return asker.ask(encoder, (ActorRef<TextProtocol.ClassifyReply> r) -> new TextProtocol.Classify(requestId,
                texts, options, r, deadline())).thenApply(reply -> {
                    if (reply instanceof TextProtocol.TextFailure f) {
                        throw new TextRequestFailedException(f);
                    }
                    return (TextProtocol.Classifications) reply;
                });
    }

    /** What the encoder is (family, width, token limit) and what it can be asked for. */
    public CompletionStage<TextProtocol.EncoderInfo> describe(ActorRef<TextProtocol.Command> encoder) {
        return asker.ask(encoder, TextProtocol.Describe::new);
    }

    private java.time.Instant deadline() {
        return java.time.Instant.now().plus(asker.timeout());
    }
}
