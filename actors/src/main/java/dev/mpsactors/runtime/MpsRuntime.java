package dev.mpsactors.runtime;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.actors.TextEncoderActor;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.EventPoolProtocol;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.protocol.TextProtocol;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The Java facade for callers outside actors: every method sends one message to the owner concerned and
 * returns a {@link CompletionStage} of its reply (a failure reply completes it exceptionally with an
 * {@link MpsRuntimeException} carrying the owner's reason). Nothing here blocks except {@link #start},
 * which waits for the runtime to come up, and {@link #close}, which waits for it to shut down.
 *
 * <p>Two ways to embed: {@link #start(Config)} runs the runtime in an ActorSystem of its own;
 * {@link #attach} wraps a {@link DeviceRuntime} you spawned inside your own ActorSystem.
 */
public final class MpsRuntime implements AutoCloseable {
    private final ActorSystem<?> system;
    private final ActorRef<RuntimeProtocol.Command> runtimeRef;
    private final boolean ownsSystem;
    private final RuntimeRefs refs;
    private final Duration askTimeout;
    private final CompletableFuture<LiveObjects> deviceClosed;
    /** The model actors loaded through this facade, by name (statistics and unloading by name). */
    private final java.util.Map<String, ActorRef<InferenceProtocol.Command>> models =
            new java.util.concurrent.ConcurrentHashMap<>();

    private MpsRuntime(ActorSystem<?> system, ActorRef<RuntimeProtocol.Command> runtimeRef, boolean ownsSystem,
                       RuntimeRefs refs, Duration askTimeout, CompletableFuture<LiveObjects> deviceClosed) {
        this.system = system;
        this.runtimeRef = runtimeRef;
        this.ownsSystem = ownsSystem;
        this.refs = refs;
        this.askTimeout = askTimeout;
        this.deviceClosed = deviceClosed;
    }

    /** Starts a runtime with {@code ConfigFactory.load()}. */
    public static MpsRuntime start() {
        return start(ConfigFactory.load());
    }

    /**
     * Starts a runtime in an ActorSystem of its own, configured by {@code config} (mps-actors.* keys,
     * reference.conf as fallback). Invalid configuration throws {@link InvalidConfigException} naming the key;
     * a device that cannot open throws with the backend's message.
     */
    public static MpsRuntime start(Config config) {
        Config resolved = config.withFallback(ConfigFactory.defaultReference()).resolve();
        RuntimeSettings settings = RuntimeSettings.fromConfig(resolved);
        CompletableFuture<LiveObjects> closed = new CompletableFuture<>();
        ActorSystem<RuntimeProtocol.Command> system =
                ActorSystem.create(DeviceRuntime.create(settings, closed), "mps-actors", resolved);
        try {
            CompletableFuture<RuntimeRefs> started = AskPattern.<RuntimeProtocol.Command, RuntimeRefs>ask(system,
                    RuntimeProtocol.GetRuntime::new, settings.askTimeout(), system.scheduler()).toCompletableFuture();
            // A guardian that failed in setup completes `closed` exceptionally: fail at once with its reason.
            CompletableFuture.anyOf(started, closed).get(settings.askTimeout().toMillis(), TimeUnit.MILLISECONDS);
            return new MpsRuntime(system, system, true, started.getNow(null), settings.askTimeout(), closed);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            system.terminate();
            throw new MpsRuntimeException("interrupted while the runtime started");
        } catch (ExecutionException | TimeoutException e) {
            system.terminate();
            // The guardian failed in setup (e.g. the device did not open): surface why.
            throw new MpsRuntimeException("the runtime did not start: " + rootMessage(e));
        }
    }

    /** Wraps a {@link DeviceRuntime} spawned inside the caller's own ActorSystem. */
    public static CompletionStage<MpsRuntime> attach(ActorSystem<?> system, ActorRef<RuntimeProtocol.Command> runtime,
                                                     Duration askTimeout) {
        return AskPattern.<RuntimeProtocol.Command, RuntimeRefs>ask(runtime, RuntimeProtocol.GetRuntime::new,
                        askTimeout, system.scheduler())
                .thenApply(refs -> new MpsRuntime(system, runtime, false, refs, askTimeout, new CompletableFuture<>()));
    }

    public RuntimeRefs refs() {
        return refs;
    }

    public List<StreamHandle> streams() {
        return refs.streams();
    }

    // ---- memory -------------------------------------------------------------------------------------

    public CompletionStage<AllocatorProtocol.BufferLease> allocate(long bytes) {
        return ask(refs.allocator(), (ActorRef<AllocatorProtocol.AllocationReply> r) ->
                new AllocatorProtocol.Allocate(bytes, r)).thenApply(MpsRuntime::lease);
    }

    /** From {@code stream}'s arena: reused at once for that stream's later work. */
    public CompletionStage<AllocatorProtocol.BufferLease> allocateOn(StreamHandle stream, long bytes) {
        return ask(stream.owner(), (ActorRef<AllocatorProtocol.AllocationReply> r) ->
                new StreamProtocol.AllocateOnStream(bytes, r)).thenApply(MpsRuntime::lease);
    }

    public void free(AllocatorProtocol.BufferLease lease) {
        refs.allocator().tell(new AllocatorProtocol.Free(lease));
    }

    public void freeAfter(AllocatorProtocol.BufferLease lease, StreamHandle stream, long point) {
        refs.allocator().tell(new AllocatorProtocol.FreeAfter(lease, stream, point));
    }

    public void freeOn(StreamHandle stream, AllocatorProtocol.BufferLease lease) {
        stream.owner().tell(new StreamProtocol.FreeOnStream(lease));
    }

    public CompletionStage<AllocatorProtocol.AllocatorStats> allocatorStats() {
        return ask(refs.allocator(), AllocatorProtocol.GetAllocatorStats::new);
    }

    public CompletionStage<AllocatorProtocol.Trimmed> trim() {
        return ask(refs.allocator(), AllocatorProtocol.Trim::new);
    }

    // ---- streams ------------------------------------------------------------------------------------

    public CompletionStage<StreamPoolProtocol.StreamLease> leaseStream() {
        return ask(refs.streamPool(), (ActorRef<StreamPoolProtocol.Leased> r) -> new StreamPoolProtocol.Lease(r))
                .thenApply(StreamPoolProtocol.Leased::lease);
    }

    /** One-way; returns at once. The stream's pending work still completes. */
    public void release(StreamPoolProtocol.StreamLease lease) {
        refs.streamPool().tell(new StreamPoolProtocol.Release(lease));
    }

    public CompletionStage<StreamPoolProtocol.PoolLoad> streamPoolLoad() {
        return ask(refs.streamPool(), StreamPoolProtocol.GetPoolLoad::new);
    }

    /** Encodes and (when {@code commit}) commits; completes when the work is encoded, not when it ran. */
    public CompletionStage<StreamProtocol.Submitted> submit(StreamHandle stream, List<StreamWork> work, boolean commit) {
        return ask(stream.owner(), (ActorRef<StreamProtocol.SubmitReply> r) ->
                new StreamProtocol.Submit(work, commit, r)).thenApply(MpsRuntime::submitted);
    }

    /** Encodes, commits and completes when the work has executed on the device. */
    public CompletionStage<StreamProtocol.PointCompleted> run(StreamHandle stream, List<StreamWork> work) {
        // One ask: onComplete hears once, on completion or at once if the submission is refused.
        return ask(stream.owner(), (ActorRef<StreamProtocol.PointCompleted> onComplete) ->
                new StreamProtocol.Submit(work, true, system.ignoreRef(), onComplete)).thenApply(MpsRuntime::completed);
    }

    public CompletionStage<StreamProtocol.Submitted> flush(StreamHandle stream) {
        return ask(stream.owner(), (ActorRef<StreamProtocol.SubmitReply> r) -> new StreamProtocol.Flush(r))
                .thenApply(MpsRuntime::submitted);
    }

    public CompletionStage<StreamProtocol.PointCompleted> whenComplete(StreamHandle stream, long point) {
        return ask(stream.owner(), (ActorRef<StreamProtocol.PointCompleted> r) ->
                new StreamProtocol.NotifyWhenComplete(point, r)).thenApply(MpsRuntime::completed);
    }

    /** Makes {@code stream} wait on the device for {@code point} of {@code other}. */
    public CompletionStage<StreamProtocol.WaitEncoded> waitFor(StreamHandle stream, StreamHandle other, long point) {
        return ask(stream.owner(), (ActorRef<StreamProtocol.WaitReply> r) -> new StreamProtocol.WaitFor(other, point, r))
                .thenApply(reply -> {
                    if (reply instanceof StreamProtocol.WaitFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    return (StreamProtocol.WaitEncoded) reply;
                });
    }

    public CompletionStage<StreamProtocol.StreamStats> streamStats(StreamHandle stream) {
        return ask(stream.owner(), StreamProtocol.GetStreamStats::new);
    }

    // ---- kernels ------------------------------------------------------------------------------------

    public CompletionStage<Pipeline> pipeline(KernelCacheProtocol.KernelKey key) {
        return ask(refs.kernels().shardFor(key), (ActorRef<KernelCacheProtocol.PipelineReply> r) ->
                new KernelCacheProtocol.GetPipeline(key, false, r)).thenApply(reply -> {
                    if (reply instanceof KernelCacheProtocol.PipelineFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    return ((KernelCacheProtocol.PipelineReady) reply).pipeline();
                });
    }

    /** The kernel cache's counters summed over its shards. */
    public CompletionStage<KernelCacheProtocol.CacheStats> kernelCacheStats() {
        List<CompletableFuture<KernelCacheProtocol.CacheStats>> all = new ArrayList<>();
        for (ActorRef<KernelCacheProtocol.Command> shard : refs.kernels().shards()) {
            all.add(ask(shard, KernelCacheProtocol.GetCacheStats::new).toCompletableFuture());
        }
        return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new))
                .thenApply(v -> KernelCacheProtocol.CacheStats.sum(all.stream().map(CompletableFuture::join).toList()));
    }

    // ---- events -------------------------------------------------------------------------------------

    public CompletionStage<EventPoolProtocol.EventHandle> acquireEvent() {
        return event(EventPoolProtocol.Acquire::new).thenApply(r -> ((EventPoolProtocol.Acquired) r).handle());
    }

    public CompletionStage<EventPoolProtocol.Recorded> recordEvent(EventPoolProtocol.EventHandle event,
                                                                  StreamHandle stream) {
        return event(r -> new EventPoolProtocol.Record(event, stream, r)).thenApply(r -> (EventPoolProtocol.Recorded) r);
    }

    public CompletionStage<EventPoolProtocol.WaitEncoded> waitForEvent(EventPoolProtocol.EventHandle event,
                                                                      StreamHandle stream) {
        return event(r -> new EventPoolProtocol.WaitForEvent(event, stream, r))
                .thenApply(r -> (EventPoolProtocol.WaitEncoded) r);
    }

    public CompletionStage<Boolean> isEventComplete(EventPoolProtocol.EventHandle event) {
        return event(r -> new EventPoolProtocol.Query(event, r))
                .thenApply(r -> ((EventPoolProtocol.EventStatus) r).complete());
    }

    public CompletionStage<Double> elapsedMillis(EventPoolProtocol.EventHandle start, EventPoolProtocol.EventHandle end) {
        return event(r -> new EventPoolProtocol.Elapsed(start, end, r))
                .thenApply(r -> ((EventPoolProtocol.ElapsedTime) r).millis());
    }

    public CompletionStage<EventPoolProtocol.Released> releaseEvent(EventPoolProtocol.EventHandle event) {
        return event(r -> new EventPoolProtocol.Release(event, r)).thenApply(r -> (EventPoolProtocol.Released) r);
    }

    private CompletionStage<EventPoolProtocol.EventReply> event(
            org.apache.pekko.japi.function.Function<ActorRef<EventPoolProtocol.EventReply>, EventPoolProtocol.Command> f) {
        return ask(refs.eventPool(), f).thenApply(reply -> {
            if (reply instanceof EventPoolProtocol.EventFailed failed) {
                throw new MpsRuntimeException(failed.reason());
            }
            return reply;
        });
    }

    // ---- models -------------------------------------------------------------------------------------

    /** Loads a Hugging Face folder and starts its model actor; fails with the loader's reason. */
    public CompletionStage<ActorRef<InferenceProtocol.Command>> loadModel(String name, java.nio.file.Path folder) {
        return ask(runtimeRef, (ActorRef<RuntimeProtocol.ModelLoadReply> r) -> new RuntimeProtocol.LoadModel(name, folder, r))
                .thenApply(reply -> {
                    if (reply instanceof RuntimeProtocol.ModelLoadFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    ActorRef<InferenceProtocol.Command> model = ((RuntimeProtocol.ModelLoaded) reply).model();
                    models.put(name, model);
                    return model;
                });
    }

    /** The model actor loaded through this facade as {@code name} (also the one behind a text encoder). */
    public java.util.Optional<ActorRef<InferenceProtocol.Command>> model(String name) {
        return java.util.Optional.ofNullable(models.get(name));
    }

    /**
     * Stops the model loaded as {@code name} (its actor, and a text encoder in front of it) and frees its
     * device weights; completes once it has stopped, with false when no model of that name was loaded.
     * Requests it still held are answered with a failure: drain them first.
     */
    public CompletionStage<Boolean> unloadModel(String name) {
        return ask(runtimeRef, (ActorRef<RuntimeProtocol.ModelUnloaded> r) -> new RuntimeProtocol.UnloadModel(name, r))
                .thenApply(reply -> {
                    models.remove(name);
                    return reply.found();
                });
    }

    /**
     * One request; completes with the result, or exceptionally with the model's reason
     * ({@link OverloadedException} when the model refused it at admission). Its deadline is the ask
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
        return ask(model, (ActorRef<InferenceProtocol.InferReply> r) ->
                InferenceProtocol.Infer.within(requestId, inputs, r, askTimeout, outputs))
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

    // ---- text ---------------------------------------------------------------------------------------

    /**
     * Loads a Hugging Face folder as a text encoder: its model (as {@link #loadModel}), its
     * {@code tokenizer.json} and its sentence-transformers settings (pooling, normalization, sequence limit),
     * and starts the actor that owns the tokenizer. Fails with the reason naming the file or setting at fault.
     */
    public CompletionStage<ActorRef<TextProtocol.Command>> loadTextEncoder(String name, java.nio.file.Path folder) {
        TextSettings settings = TextSettings.fromConfig(system.settings().config());
        java.util.concurrent.Executor tokenize = system.dispatchers().lookup(
                org.apache.pekko.actor.typed.DispatcherSelector.fromConfig(TextSettings.TOKENIZE_DISPATCHER));
        CompletableFuture<TextEncoderActor.Text> text = CompletableFuture.supplyAsync(
                () -> TextEncoderActor.Text.load(folder), tokenize);
        return text.thenCompose(t -> loadModel(name, folder)
                .<ActorRef<TextProtocol.Command>>thenApply(model -> system.systemActorOf(
                        TextEncoderActor.create(model, t, settings, tokenize),
                        "text-encoder-" + java.util.UUID.randomUUID(), org.apache.pekko.actor.typed.Props.empty()))
                .whenComplete((ref, failure) -> {
                    if (failure != null) {
                        t.tokenizer().close();
                    }
                }))
                .exceptionally(e -> {
                    Throwable cause = e instanceof java.util.concurrent.CompletionException && e.getCause() != null
                            ? e.getCause() : e;
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
        return ask(encoder, (ActorRef<TextProtocol.EmbedReply> r) -> new TextProtocol.Embed(requestId, texts, options, r,
                java.time.Instant.now().plus(askTimeout))).thenApply(reply -> {
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
        return ask(encoder, (ActorRef<TextProtocol.RerankReply> r) -> new TextProtocol.Rerank(requestId, query, texts,
                options, r, java.time.Instant.now().plus(askTimeout))).thenApply(reply -> {
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
        return ask(encoder, (ActorRef<TextProtocol.ClassifyReply> r) -> new TextProtocol.Classify(requestId, texts,
                options, r, java.time.Instant.now().plus(askTimeout))).thenApply(reply -> {
                    if (reply instanceof TextProtocol.TextFailure f) {
                        throw new TextRequestFailedException(f);
                    }
                    return (TextProtocol.Classifications) reply;
                });
    }

    /** What the encoder is (family, width, token limit) and what it can be asked for. */
    public CompletionStage<TextProtocol.EncoderInfo> describe(ActorRef<TextProtocol.Command> encoder) {
        return ask(encoder, TextProtocol.Describe::new);
    }

    /** Faults the runtime injected so far (zero unless mps-actors.fault-injection is on). */
    public CompletionStage<RuntimeProtocol.FaultCounts> faultCounts() {
        return ask(runtimeRef, RuntimeProtocol.GetFaultCounts::new);
    }

    public CompletionStage<InferenceProtocol.ModelStats> modelStats(ActorRef<InferenceProtocol.Command> model) {
        return ask(model, InferenceProtocol.GetModelStats::new);
    }

    public ActorSystem<?> system() {
        return system;
    }

    // ---- lifecycle ----------------------------------------------------------------------------------

    /**
     * Stops the runtime (when it owns its ActorSystem) and waits, in the caller's thread, until the device
     * is closed. Returns what was still alive natively (empty after a clean shutdown).
     */
    public LiveObjects shutdown(Duration timeout) throws TimeoutException, InterruptedException {
        if (!ownsSystem) {
            throw new IllegalStateException("this runtime lives in the caller's ActorSystem: stop its DeviceRuntime actor");
        }
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return deviceClosed.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw new MpsRuntimeException("shutdown failed: " + rootMessage(e));
        }
    }

    @Override
    public void close() {
        if (!ownsSystem) {
            return;
        }
        try {
            shutdown(askTimeout.plusSeconds(30));
        } catch (TimeoutException e) {
            throw new MpsRuntimeException("runtime did not shut down in time");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private <Q, R> CompletionStage<R> ask(RecipientRef<Q> target,
                                          org.apache.pekko.japi.function.Function<ActorRef<R>, Q> message) {
        return AskPattern.ask(target, message, askTimeout, system.scheduler());
    }

    private static AllocatorProtocol.BufferLease lease(AllocatorProtocol.AllocationReply reply) {
        if (reply instanceof AllocatorProtocol.AllocationFailed f) {
            throw new MpsRuntimeException(f.reason());
        }
        return ((AllocatorProtocol.Allocated) reply).lease();
    }

    private static StreamProtocol.Submitted submitted(StreamProtocol.SubmitReply reply) {
        if (reply instanceof StreamProtocol.SubmitFailed f) {
            throw new MpsRuntimeException(f.reason());
        }
        return (StreamProtocol.Submitted) reply;
    }

    private static StreamProtocol.PointCompleted completed(StreamProtocol.PointCompleted c) {
        if (!c.succeeded()) {
            throw new MpsRuntimeException(c.failure());
        }
        return c;
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }
}
