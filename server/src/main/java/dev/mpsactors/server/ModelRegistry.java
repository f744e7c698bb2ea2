package dev.mpsactors.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import dev.mpsactors.text.TextTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The models the server serves, by name. A load reads the folder, starts a new version's encoder on the
 * runtime, warms every shape it will run and only then puts it in front of traffic; the version it
 * replaces (a reload) is drained (new requests go to the new version, the old one finishes what it took)
 * and then unloaded. An unload drains and unloads. Operations on one name run one after another; nothing
 * here blocks a thread: every step is a {@link CompletionStage}.
 */
final class ModelRegistry {
    private final MpsRuntime runtime;
    private final ModelBackend backend;
    private final ServerSettings settings;
    private final RuntimeSettings.ModelSettings modelSettings;
    private final Executor blocking;
    private final Map<String, ServedModel> live = new ConcurrentHashMap<>();
    private final Map<String, CompletableFuture<?>> operations = new ConcurrentHashMap<>();
    private final AtomicInteger versions = new AtomicInteger();
    private final Consumer<ServedModel> onServing;
    private final Consumer<ServedModel> onRetired;
    /** Names in load order: the first is the default model of the TEI routes. */
    private final List<String> order = new java.util.concurrent.CopyOnWriteArrayList<>();

    ModelRegistry(MpsRuntime runtime, ModelBackend backend, ServerSettings settings, Executor blocking,
                  Consumer<ServedModel> onServing, Consumer<ServedModel> onRetired) {
        this.runtime = runtime;
        this.backend = backend;
        this.settings = settings;
        this.modelSettings = RuntimeSettings.fromConfig(runtime.system().settings().config()).model();
        this.blocking = blocking;
        this.onServing = onServing;
        this.onRetired = onRetired;
    }

    /** The live version of {@code name}, taken for one request (release it when answered), if any. */
    Optional<ServedModel> acquire(String name) {
        // A version that drains has already left the map (a reload put its successor there first): look again.
        for (int attempt = 0; attempt < 8; attempt++) {
            ServedModel m = live.get(name);
            if (m == null) {
                return Optional.empty();
            }
            if (m.tryAcquire()) {
                return Optional.of(m);
            }
        }
        return Optional.empty();
    }

    /** Null where models may be loaded and unloaded over HTTP, otherwise why not. */
    String managementRefused() {
        return backend.managementRefused();
    }

    /** The name the TEI routes use when a request names none. */
    Optional<String> defaultModel() {
        if (!settings.defaultModel().isBlank()) {
            return Optional.of(settings.defaultModel());
        }
        return order.stream().filter(live::containsKey).findFirst();
    }

    List<ServedModel> list() {
        List<ServedModel> out = new ArrayList<>(live.values());
        out.sort(Comparator.comparing(m -> m.name));
        return out;
    }

    /** Loads (or reloads) {@code name} from {@code folder}; completes when it serves, with the new version. */
    CompletionStage<ServedModel> load(String name, Path folder) {
        if (!name.matches("[A-Za-z0-9_-]{1,48}")) {
            return CompletableFuture.failedFuture(ApiException.badRequest(
                    "model names are 1-48 letters, digits, '_' or '-', got '" + JsonBodies.oneLine(name) + "'", "name"));
        }
        return serialized(name, () -> loadNow(name, folder));
    }

    /** Drains and unloads {@code name}; completes with false when no such model was served. */
    CompletionStage<Boolean> unload(String name) {
        return serialized(name, () -> {
            ServedModel m = live.get(name);
            if (m == null) {
                return CompletableFuture.completedFuture(false);
            }
            return retire(m, true).thenApply(n -> true);
        });
    }

    /** Drains and unloads every model (shutdown). */
    CompletionStage<Void> unloadAll() {
        List<CompletableFuture<Boolean>> all = new ArrayList<>();
        for (String name : new ArrayList<>(live.keySet())) {
            all.add(unload(name).toCompletableFuture());
        }
        return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new));
    }

    /** Stops every model at once, without draining: what they still hold is answered with the stop (shutdown). */
    CompletionStage<Void> stopAll() {
        List<CompletableFuture<Boolean>> all = new ArrayList<>();
        for (ServedModel m : live.values()) {
            all.add(backend.unload(m.runtimeName).toCompletableFuture());
        }
        return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new));
    }


    private <T> CompletionStage<T> serialized(String name, java.util.function.Supplier<CompletionStage<T>> op) {
        CompletableFuture<T> result = new CompletableFuture<>();
        operations.compute(name, (k, previous) -> {
            CompletableFuture<?> before = previous == null ? CompletableFuture.completedFuture(null) : previous;
            before.handle((v, e) -> null).thenCompose(v -> {
                try {
                    return op.get();
                } catch (RuntimeException e) {
                    return CompletableFuture.<T>failedFuture(e);
                }
            }).whenComplete((v, e) -> {
                if (e != null) {
                    result.completeExceptionally(unwrap(e));
                } else {
                    result.complete(v);
                }
            });
            return result;
        });
        result.whenComplete((v, e) -> operations.remove(name, result));
        return result;
    }

    private CompletionStage<ServedModel> loadNow(String name, Path folder) {
        int version = versions.incrementAndGet();
        String runtimeName = name + ".v" + version;
        record Read(TextTokenizer tokenizer, int vocab) {}
        CompletableFuture<Read> read = CompletableFuture.supplyAsync(() -> {
            if (!Files.isDirectory(folder)) {
                throw ApiException.unprocessable("model folder " + folder + " does not exist or is not a folder",
                        "folder");
            }
            int vocab;
            try {
                JsonNode config = JsonBodies.MAPPER.readTree(folder.resolve("config.json").toFile());
                vocab = config.path("vocab_size").asInt(0);
            } catch (java.io.IOException e) {
                throw ApiException.unprocessable("cannot read " + folder.resolve("config.json") + ": "
                        + JsonBodies.oneLine(String.valueOf(e.getMessage())), "folder");
            }
            try {
                int limit = dev.mpsactors.text.SentenceEncoderConfig.read(folder).maxTokens();
                return new Read(TextTokenizer.load(folder, limit), vocab);
            } catch (RuntimeException e) {
                throw ApiException.unprocessable("cannot load " + folder + ": " + JsonBodies.oneLine(
                        String.valueOf(e.getMessage())), "folder");
            }
        }, blocking);
        return read.thenCompose(r -> backend.loadTextEncoder(name, runtimeName, folder)
                .exceptionally(e -> {
                    r.tokenizer().close();
                    throw ApiException.unprocessable("cannot load " + folder + ": "
                            + JsonBodies.oneLine(String.valueOf(unwrap(e).getMessage())), "folder");
                })
                .thenCompose(encoder -> runtime.models().describe(encoder)
                        .thenCompose(info -> warm(runtimeName, encoder, info)
                                .thenApply(shapes -> new ServedModel(name, version, runtimeName, folder, encoder, info,
                                        r.tokenizer(), r.vocab(), shapes)))
                        .whenComplete((m, e) -> {
                            if (e != null) { // warm-up failed: the new version never served
                                r.tokenizer().close();
                                backend.unload(runtimeName);
                            }
                        })))
                .thenApply(m -> {
                    ServedModel previous = live.put(name, m);
                    if (!order.contains(name)) {
                        order.add(name);
                    }
                    onServing.accept(m);
                    if (previous != null) {
                        retire(previous, false); // serves until drained; the new version takes every new request
                    }
                    return m;
                });
    }

    /**
     * Every bucketed length up to the model's limit, once at each warm-up batch size: each runs alone (one
     * after another), so each compiles its program and sizes its memory before the model takes traffic.
     */
    private CompletionStage<Integer> warm(String runtimeName, ActorRef<TextProtocol.Command> encoder,
                                          TextProtocol.EncoderInfo info) {
        TreeSet<Integer> lengths = new TreeSet<>();
        for (int len = modelSettings.seqBucket(); len < info.maxTokens(); len += modelSettings.seqBucket()) {
            lengths.add(len);
        }
        lengths.add(info.maxTokens());
        TreeSet<Integer> rows = new TreeSet<>();
        for (int b : settings.warmupBatchSizes()) {
            rows.add(b == 0 ? modelSettings.maxBatch() : Math.min(b, modelSettings.maxBatch()));
        }
        CompletionStage<Integer> chain = CompletableFuture.completedFuture(0);
        for (int r : rows) {
            for (int len : lengths) {
                int[][] ids = new int[r][len];
                for (int[] row : ids) {
                    java.util.Arrays.fill(row, 1);
                }
                chain = chain.thenCompose(n -> AskPattern.<TextProtocol.Command, TextProtocol.EmbedReply>ask(encoder,
                        replyTo -> new TextProtocol.EmbedTokens(runtimeName + "-warmup", ids, null, replyTo, null, 0),
                        Duration.ofMinutes(5), runtime.system().scheduler()).thenApply(reply -> {
                            if (reply instanceof TextProtocol.TextFailure f) {
                                throw new IllegalStateException("warming " + r + " x " + len + " failed: " + f.reason());
                            }
                            return n + 1;
                        }));
            }
        }
        return chain;
    }

    /** Out of traffic now; unloaded from the runtime once its requests are answered (or the drain timeout). */
    private CompletionStage<Integer> retire(ServedModel m, boolean removeName) {
        if (removeName) {
            live.remove(m.name, m);
            order.remove(m.name);
        }
        return m.drain().completeOnTimeout(-1, settings.drainTimeout().toMillis(), TimeUnit.MILLISECONDS)
                .thenCompose(served -> backend.unload(m.runtimeName).handle((found, e) -> {
                    m.tokenizer.close();
                    onRetired.accept(m);
                    return served;
                }));
    }

    static Throwable unwrap(Throwable e) {
        while ((e instanceof CompletionException || e instanceof java.util.concurrent.ExecutionException)
                && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

}
