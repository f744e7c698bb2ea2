package dev.mpsactors.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.EmbedOptions;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.text.TextTokenizer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntity;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.ExceptionHandler;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.RejectionHandler;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.scaladsl.model.EntityStreamSizeException;
import org.apache.pekko.stream.Materializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The routes. TEI-compatible: {@code POST /embed}, {@code /rerank}, {@code /predict}, {@code GET /info},
 * {@code /health}; OpenAI-compatible: {@code POST /v1/embeddings}, {@code GET /v1/models}; {@code GET /metrics};
 * model management: {@code GET /models}, {@code PUT} and {@code DELETE /models/{name}}. Every request is
 * answered from {@link CompletionStage}s (asks to the encoders, tokenizing on the tokenize dispatcher):
 * nothing waits on a dispatcher thread. Errors are JSON in the route's style, never a stack trace.
 */
final class Api extends AllDirectives {
    private static final Logger LOG = LoggerFactory.getLogger(Api.class);
    static final String TIMEOUT_HEADER = "X-Request-Timeout";
    static final String PRIORITY_HEADER = "X-Request-Priority";

    /** How a route writes its errors: TEI's {@code {"error", "error_type"}} or OpenAI's {@code {"error": {...}}}. */
    enum Style { TEI, OPENAI }

    /** One client connection: the requests it waits for, cancelled if it goes away first. */
    static final class Connection {
        final Map<String, Pending> pending = new ConcurrentHashMap<>();
        volatile boolean closed;
    }

    record Pending(ActorRef<TextProtocol.Command> encoder, String model) {}

    /** One request as it is handled. */
    final class Call {
        final Connection connection;
        final String route;
        final Style style;
        final HttpRequest request;
        final long startNanos = System.nanoTime();
        Instant deadline;
        int priority;
        JsonNode body;
        String model = "-";
        ServedModel served;

        Call(Connection connection, String route, Style style, HttpRequest request) {
            this.connection = connection;
            this.route = route;
            this.style = style;
            this.request = request;
        }

        /** Takes the named model for this request (404 when it is not served), released when answered. */
        ServedModel use(String name) {
            if (name == null) {
                name = registry.defaultModel().orElseThrow(() -> ApiException.notFound("no model is loaded"));
            }
            model = name;
            String n = name;
            served = registry.acquire(name).orElseThrow(() -> new ApiException(404, "NotFound",
                    "model '" + JsonBodies.oneLine(n) + "' is not loaded (GET /models lists the loaded models)",
                    "model", List.of(), 0));
            return served;
        }
    }

    @FunctionalInterface
    interface Handler {
        CompletionStage<HttpResponse> handle(Call call);
    }

    private final MpsServer server;
    private final MpsRuntime runtime;
    private final ServerSettings settings;
    private final ModelRegistry registry;
    private final ServerMetrics metrics;
    private final Executor tokenize;
    private final Materializer materializer;
    private final List<byte[]> keys;

    Api(MpsServer server, MpsRuntime runtime, ServerSettings settings, ModelRegistry registry, ServerMetrics metrics,
        Executor tokenize) {
        this.server = server;
        this.runtime = runtime;
        this.settings = settings;
        this.registry = registry;
        this.metrics = metrics;
        this.tokenize = tokenize;
        this.materializer = Materializer.matFromSystem(runtime.system());
        this.keys = settings.apiKeys().stream().map(k -> k.getBytes(StandardCharsets.UTF_8)).toList();
    }

    Route routes(Connection c) {
        return handleExceptions(exceptions(), () -> handleRejections(rejections(), () -> concat(
                path("embed", () -> post(() -> api(c, "embed", Style.TEI, this::embed))),
                path("rerank", () -> post(() -> api(c, "rerank", Style.TEI, this::rerank))),
                path("predict", () -> post(() -> api(c, "predict", Style.TEI, this::predict))),
                path("info", () -> get(() -> api(c, "info", Style.TEI, this::info))),
                path("health", () -> get(() -> handle(this::health))),
                path("metrics", () -> get(() -> api(c, "metrics", Style.TEI, this::metrics))),
                pathPrefix("v1", () -> concat(
                        path("embeddings", () -> post(() -> api(c, "v1/embeddings", Style.OPENAI,
                                this::openAiEmbeddings))),
                        path("models", () -> get(() -> api(c, "v1/models", Style.OPENAI, this::openAiModels))))),
                pathPrefix("models", () -> concat(
                        pathEnd(() -> get(() -> api(c, "models", Style.TEI, this::listModels))),
                        path(PathMatchers.segment(), name -> concat(
                                put(() -> api(c, "models", Style.TEI, call -> loadModel(call, name))),
                                delete(() -> api(c, "models", Style.TEI, call -> unloadModel(call, name))))))))));
    }

    /** Unmatched paths and methods: the default rejection responses, as JSON. */
    private static RejectionHandler rejections() {
        return RejectionHandler.defaultHandler().mapRejectionResponse(response -> {
            if (response.entity() instanceof HttpEntity.Strict strict
                    && !strict.getContentType().equals(ContentTypes.APPLICATION_JSON)) {
                String text = strict.getData().utf8String();
                return json(response.status().intValue(), teiError(text, type(response.status().intValue())),
                        response.getHeaders());
            }
            return response;
        });
    }

    private static ExceptionHandler exceptions() {
        return ExceptionHandler.newBuilder().matchAny(e -> {
            LOG.error("unexpected failure in a route", e);
            return org.apache.pekko.http.javadsl.server.Directives.complete(json(500,
                    teiError("internal error: " + e.getClass().getSimpleName(), "Backend"), List.of()));
        }).build();
    }

    private Route api(Connection c, String route, Style style, Handler handler) {
        return handle(request -> call(new Call(c, route, style, request), handler));
    }

    private CompletionStage<HttpResponse> call(Call call, Handler handler) {
        if (!server.enter()) {
            call.request.discardEntityBytes(materializer);
            return CompletableFuture.completedFuture(error(call, new ApiException(503, "Unhealthy",
                    "the server is shutting down")).addHeader(RawHeader.create("Connection", "close")));
        }
        CompletionStage<HttpResponse> out;
        try {
            authorize(call);
            call.deadline = Instant.now().plus(timeout(call.request));
            call.priority = priority(call.request);
            out = body(call).thenCompose(body -> {
                call.body = body;
                return handler.handle(call);
            });
        } catch (RuntimeException e) {
            call.request.discardEntityBytes(materializer);
            out = CompletableFuture.failedFuture(e);
        }
        return out.handle((response, failure) -> {
            HttpResponse r = response != null ? response : error(call, ModelRegistry.unwrap(failure));
            metrics.request(call.model, call.route, r.status().intValue(), call.startNanos);
            if (call.served != null) {
                call.served.release();
            }
            server.leave();
            return r;
        });
    }

    // ---- request framing: keys, deadline, priority, body ------------------------------------------------

    private void authorize(Call call) {
        if (keys.isEmpty()) {
            return;
        }
        Optional<HttpHeader> header = call.request.getHeader("Authorization");
        if (header.isPresent() && header.get().value().regionMatches(true, 0, "Bearer ", 0, 7)) {
            byte[] given = header.get().value().substring(7).strip().getBytes(StandardCharsets.UTF_8);
            for (byte[] key : keys) {
                if (MessageDigest.isEqual(key, given)) {
                    return;
                }
            }
        }
        metrics.unauthorized();
        throw new ApiException(401, "Unauthorized", header.isPresent() ? "the API key is not valid"
                : "an API key is required: send \"Authorization: Bearer <key>\"", null, List.of(), 0);
    }

    /** X-Request-Timeout: 250ms, 2s, 1.5 (seconds), 1m or 1h; at most max-request-timeout. */
    private Duration timeout(HttpRequest request) {
        Optional<HttpHeader> h = request.getHeader(TIMEOUT_HEADER);
        if (h.isEmpty()) {
            return settings.requestTimeout();
        }
        String v = h.get().value().strip();
        Duration d = null;
        try {
            if (v.endsWith("ms")) {
                d = Duration.ofMillis(Long.parseLong(v.substring(0, v.length() - 2).strip()));
            } else if (v.endsWith("s")) {
                d = Duration.ofNanos((long) (Double.parseDouble(v.substring(0, v.length() - 1).strip()) * 1e9));
            } else if (v.endsWith("h")) {
                d = Duration.ofNanos((long) (Double.parseDouble(v.substring(0, v.length() - 1).strip()) * 3600e9));
            } else if (v.endsWith("m")) {
                d = Duration.ofNanos((long) (Double.parseDouble(v.substring(0, v.length() - 1).strip()) * 60e9));
            } else {
                d = Duration.ofNanos((long) (Double.parseDouble(v) * 1e9));
            }
        } catch (NumberFormatException | ArithmeticException e) {
            // reported below
        }
        if (d == null || d.isNegative() || d.isZero() || v.contains("N") || v.contains("I")) {
            throw ApiException.badRequest(TIMEOUT_HEADER + " must be a positive duration such as 250ms, 2s, 1.5 or 1m, got '"
                    + JsonBodies.oneLine(v) + "'", TIMEOUT_HEADER);
        }
        if (d.compareTo(settings.maxRequestTimeout()) > 0) {
            throw ApiException.badRequest(TIMEOUT_HEADER + " " + v + " is longer than " + settings.maxRequestTimeout()
                    + " (" + ServerSettings.PREFIX + "max-request-timeout)", TIMEOUT_HEADER);
        }
        return d;
    }

    private int priority(HttpRequest request) {
        Optional<HttpHeader> h = request.getHeader(PRIORITY_HEADER);
        if (h.isEmpty()) {
            return 0;
        }
        try {
            int p = Integer.parseInt(h.get().value().strip());
            if (Math.abs((long) p) <= settings.maxPriority()) {
                return p;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw ApiException.badRequest(PRIORITY_HEADER + " must be an integer in [-" + settings.maxPriority() + ", "
                + settings.maxPriority() + "] (" + ServerSettings.PREFIX + "max-priority), got '"
                + JsonBodies.oneLine(h.get().value()) + "'", PRIORITY_HEADER);
    }

    /** The body of a POST or PUT as a JSON object, at most max-body-bytes; null for other methods. */
    private CompletionStage<JsonNode> body(Call call) {
        HttpRequest r = call.request;
        if (!r.method().equals(HttpMethods.POST) && !r.method().equals(HttpMethods.PUT)) {
            r.discardEntityBytes(materializer);
            return CompletableFuture.completedFuture(null);
        }
        long limit = settings.maxBodyBytes();
        java.util.OptionalLong declared = r.entity().getContentLengthOption();
        if (declared.isPresent() && declared.getAsLong() > limit) {
            r.discardEntityBytes(materializer);
            throw bodyTooLarge(declared.getAsLong());
        }
        return r.entity().withSizeLimit(limit).toStrict(Math.max(1, Duration.between(Instant.now(), call.deadline)
                        .toMillis()), materializer)
                .handle((strict, e) -> {
                    if (e != null) {
                        Throwable cause = ModelRegistry.unwrap(e);
                        if (cause instanceof EntityStreamSizeException) {
                            throw bodyTooLarge(-1);
                        }
                        throw ApiException.badRequest("could not read the body: " + JsonBodies.oneLine(
                                String.valueOf(cause.getMessage())), null);
                    }
                    return JsonBodies.object(strict.getData().utf8String());
                });
    }

    private ApiException bodyTooLarge(long bytes) {
        return ApiException.limit("the body " + (bytes >= 0 ? "of " + bytes + " bytes " : "")
                + "is larger than " + settings.maxBodyBytes() + " bytes", "max-body-bytes");
    }

    // ---- TEI --------------------------------------------------------------------------------------------

    private CompletionStage<HttpResponse> embed(Call c) {
        ServedModel m = c.use(JsonBodies.string(c.body, "model", false));
        List<String> inputs = JsonBodies.texts(c.body, "inputs");
        boolean normalize = JsonBodies.bool(c.body, "normalize", true);
        boolean truncate = JsonBodies.bool(c.body, "truncate", false);
        String direction = JsonBodies.string(c.body, "truncation_direction", false);
        if (direction != null && !direction.equalsIgnoreCase("right")) {
            throw ApiException.unprocessable("truncation_direction '" + JsonBodies.oneLine(direction)
                    + "' is not supported (right only)", "truncation_direction");
        }
        return tokenizeTexts(c, m, inputs, truncate)
                .thenCompose(ids -> embedTokens(c, m, ids, new EmbedOptions(null, normalize, false)))
                .thenApply(e -> json(200, e.vectors(), List.of()));
    }

    private CompletionStage<HttpResponse> rerank(Call c) {
        ServedModel m = c.use(JsonBodies.string(c.body, "model", false));
        String query = JsonBodies.string(c.body, "query", true);
        List<String> texts = JsonBodies.texts(c.body, "texts");
        boolean returnText = JsonBodies.bool(c.body, "return_text", false);
        boolean raw = JsonBodies.bool(c.body, "raw_scores", false);
        boolean truncate = JsonBodies.bool(c.body, "truncate", false);
        checkCount(texts.size());
        List<String> all = new ArrayList<>(texts.size() + 1);
        all.add(query);
        all.addAll(texts);
        return countTokens(m, all, true).thenCompose(lengths -> {
            // a pair runs as [CLS] query [SEP] text [SEP]: the two encodings share one [CLS]/[SEP] pair
            int[] pairs = new int[texts.size()];
            for (int i = 0; i < pairs.length; i++) {
                pairs[i] = lengths[0] + lengths[i + 1] - 1;
            }
            checkTokenLimits(pairs);
            String id = UUID.randomUUID().toString();
            return ask(c, m, id, TextProtocol.RerankReply.class, replyTo -> new TextProtocol.Rerank(id, query, texts,
                    new TextProtocol.ScoreOptions(truncate, raw), replyTo, c.deadline));
        }).thenApply(reply -> {
            TextProtocol.Scores s = (TextProtocol.Scores) reply;
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < s.scores().length; i++) {
                order.add(i);
            }
            order.sort((a, b) -> Float.compare(s.scores()[b], s.scores()[a]));
            ArrayNode out = JsonBodies.MAPPER.createArrayNode();
            for (int i : order) {
                ObjectNode o = out.addObject().put("index", i).put("score", s.scores()[i]);
                if (returnText) {
                    o.put("text", texts.get(i));
                }
            }
            metrics.tokens(m, sum(s.tokenCounts()));
            return json(200, out, List.of());
        });
    }

    private CompletionStage<HttpResponse> predict(Call c) {
        ServedModel m = c.use(JsonBodies.string(c.body, "model", false));
        JsonNode inputs = JsonBodies.field(c.body, "inputs");
        if (inputs != null && inputs.isArray() && inputs.size() > 0 && inputs.get(0).isArray()) {
            throw ApiException.unprocessable("\"inputs\" as text pairs is not supported: send a string or a list of "
                    + "strings", "inputs");
        }
        boolean single = inputs != null && inputs.isTextual();
        List<String> texts = JsonBodies.texts(c.body, "inputs");
        boolean raw = JsonBodies.bool(c.body, "raw_scores", false);
        boolean truncate = JsonBodies.bool(c.body, "truncate", false);
        checkCount(texts.size());
        return countTokens(m, texts, true).thenCompose(lengths -> {
            checkTokenLimits(lengths);
            String id = UUID.randomUUID().toString();
            return ask(c, m, id, TextProtocol.ClassifyReply.class, replyTo -> new TextProtocol.Classify(id, texts,
                    new TextProtocol.ScoreOptions(truncate, raw), replyTo, c.deadline));
        }).thenApply(reply -> {
            TextProtocol.Classifications cl = (TextProtocol.Classifications) reply;
            ArrayNode out = JsonBodies.MAPPER.createArrayNode();
            for (List<TextProtocol.LabelScore> labels : cl.labels()) {
                ArrayNode one = JsonBodies.MAPPER.createArrayNode();
                for (TextProtocol.LabelScore l : labels) {
                    one.addObject().put("score", l.score()).put("label", l.label());
                }
                out.add(one);
            }
            metrics.tokens(m, sum(cl.tokenCounts()));
            return json(200, single ? out.get(0) : out, List.of());
        });
    }

    private CompletionStage<HttpResponse> info(Call c) {
        ServedModel m = c.use(c.request.getUri().query().get("model").orElse(null));
        TextProtocol.EncoderInfo info = m.info;
        ObjectNode o = JsonBodies.MAPPER.createObjectNode();
        o.put("model_id", m.name);
        o.putNull("model_sha");
        o.put("model_dtype", runtime.system().settings().config().getString("mps-actors.model.storage"));
        ObjectNode type = o.putObject("model_type");
        if (info.tasks().contains(TextProtocol.Task.RERANK)) {
            type.putObject("reranker").set("id2label", labels(info));
        } else if (info.tasks().contains(TextProtocol.Task.CLASSIFY)) {
            type.putObject("classifier").set("id2label", labels(info));
        } else {
            type.putObject("embedding").put("pooling", info.pooling().name().toLowerCase(java.util.Locale.ROOT));
        }
        o.put("max_input_length", info.maxTokens());
        o.put("max_client_batch_size", settings.maxTexts());
        o.put("max_batch_tokens", settings.maxTokensPerRequest());
        o.put("auto_truncate", false);
        o.put("version", version());
        o.put("family", info.family());
        o.put("hidden_size", info.hiddenSize());
        o.put("normalize", info.normalize());
        ArrayNode tasks = o.putArray("tasks");
        info.tasks().stream().map(t -> t.name().toLowerCase(java.util.Locale.ROOT)).sorted().forEach(tasks::add);
        o.put("model_version", m.version);
        return CompletableFuture.completedFuture(json(200, o, List.of()));
    }

    private static ObjectNode labels(TextProtocol.EncoderInfo info) {
        ObjectNode labels = JsonBodies.MAPPER.createObjectNode();
        for (int i = 0; i < info.labels().size(); i++) {
            labels.put(Integer.toString(i), info.labels().get(i));
        }
        return labels;
    }

    /** 200 when every model answers its encoder's Describe within 5 s; 503 otherwise (or with no model). */
    private CompletionStage<HttpResponse> health(HttpRequest request) {
        request.discardEntityBytes(materializer);
        List<ServedModel> models = registry.list();
        if (server.stopping()) {
            return CompletableFuture.completedFuture(json(503, teiError("the server is shutting down", "Unhealthy"),
                    List.of()));
        }
        if (models.isEmpty()) {
            return CompletableFuture.completedFuture(json(503, teiError("no model is loaded", "Unhealthy"), List.of()));
        }
        List<CompletableFuture<String>> checks = new ArrayList<>();
        for (ServedModel m : models) {
            checks.add(AskPattern.<TextProtocol.Command, TextProtocol.EncoderInfo>ask(m.encoder,
                            TextProtocol.Describe::new, Duration.ofSeconds(5), runtime.system().scheduler())
                    .toCompletableFuture().handle((info, e) -> e == null ? null : m.name));
        }
        return CompletableFuture.allOf(checks.toArray(CompletableFuture[]::new)).thenApply(v -> {
            List<String> down = checks.stream().map(CompletableFuture::join).filter(java.util.Objects::nonNull).toList();
            ObjectNode o = JsonBodies.MAPPER.createObjectNode();
            o.put("status", down.isEmpty() ? "ok" : "unhealthy");
            ArrayNode names = o.putArray("models");
            models.forEach(m -> names.add(m.name));
            if (!down.isEmpty()) {
                ArrayNode d = o.putArray("not_answering");
                down.forEach(d::add);
            }
            return json(down.isEmpty() ? 200 : 503, o, List.of());
        });
    }

    private CompletionStage<HttpResponse> metrics(Call c) {
        return metrics.scrape(registry.list()).thenApply(text -> HttpResponse.create().withStatus(200).withEntity(
                org.apache.pekko.http.javadsl.model.HttpEntities.create(ContentTypes.TEXT_PLAIN_UTF8,
                        text.getBytes(StandardCharsets.UTF_8))));
    }

    // ---- OpenAI -----------------------------------------------------------------------------------------

    private CompletionStage<HttpResponse> openAiEmbeddings(Call c) {
        ServedModel m = c.use(JsonBodies.string(c.body, "model", false));
        String format = JsonBodies.string(c.body, "encoding_format", false);
        if (format != null && !format.equals("float") && !format.equals("base64")) {
            throw ApiException.badRequest("encoding_format must be float or base64, got '" + JsonBodies.oneLine(format)
                    + "'", "encoding_format");
        }
        JsonNode dims = JsonBodies.field(c.body, "dimensions");
        if (dims != null && (!dims.canConvertToInt() || !dims.isIntegralNumber() || dims.intValue() != m.info.hiddenSize())) {
            throw ApiException.badRequest("dimensions must be " + m.info.hiddenSize() + " for model " + m.name
                    + " (its embeddings are not shortened), got " + JsonBodies.oneLine(dims.toString()), "dimensions");
        }
        JsonNode input = JsonBodies.field(c.body, "input");
        if (input == null) {
            throw ApiException.badRequest("\"input\" is missing", "input");
        }
        CompletionStage<int[][]> ids;
        if (input.isTextual() || (input.isArray() && input.size() > 0 && input.get(0).isTextual())) {
            ids = tokenizeTexts(c, m, JsonBodies.texts(c.body, "input"), false);
        } else if (input.isArray() && input.size() > 0) {
            ids = CompletableFuture.completedFuture(tokenArrays(input, m));
        } else {
            throw ApiException.badRequest("\"input\" must be a string, a list of strings, a list of token ids or a "
                    + "list of lists of token ids, and not empty; got " + JsonBodies.kind(input)
                    + (input.isArray() ? " (empty)" : ""), "input");
        }
        boolean base64 = "base64".equals(format);
        return ids.thenCompose(t -> embedTokens(c, m, t, EmbedOptions.DEFAULT.withTruncate(false))).thenApply(e -> {
            ObjectNode o = JsonBodies.MAPPER.createObjectNode();
            o.put("object", "list");
            ArrayNode data = o.putArray("data");
            for (int i = 0; i < e.vectors().length; i++) {
                ObjectNode d = data.addObject();
                d.put("object", "embedding");
                d.put("index", i);
                if (base64) {
                    ByteBuffer bytes = ByteBuffer.allocate(4 * e.vectors()[i].length).order(ByteOrder.LITTLE_ENDIAN);
                    for (float f : e.vectors()[i]) {
                        bytes.putFloat(f);
                    }
                    d.put("embedding", Base64.getEncoder().encodeToString(bytes.array()));
                } else {
                    ArrayNode v = d.putArray("embedding");
                    for (float f : e.vectors()[i]) {
                        v.add(f);
                    }
                }
            }
            o.put("model", m.name);
            long tokens = sum(e.tokenCounts());
            o.putObject("usage").put("prompt_tokens", tokens).put("total_tokens", tokens);
            return json(200, o, List.of());
        });
    }

    /** {@code [1, 2, 3]} (one sequence) or {@code [[1, 2], [3]]}: ids of the model's vocabulary. */
    private int[][] tokenArrays(JsonNode input, ServedModel m) {
        boolean nested = input.get(0).isArray();
        int n = nested ? input.size() : 1;
        checkCount(n);
        int[][] ids = new int[n][];
        for (int s = 0; s < n; s++) {
            JsonNode seq = nested ? input.get(s) : input;
            if (!seq.isArray()) {
                throw ApiException.badRequest("input[" + s + "] must be a list of token ids, got " + JsonBodies.kind(seq),
                        "input");
            }
            ids[s] = new int[seq.size()];
            for (int t = 0; t < seq.size(); t++) {
                String where = nested ? "input[" + s + "][" + t + "]" : "input[" + t + "]";
                int id = JsonBodies.tokenId(seq.get(t), where, "input");
                if (m.vocabSize > 0 && (id < 0 || id >= m.vocabSize)) {
                    throw ApiException.badRequest(where + " = " + id + " is not a token id of model " + m.name
                            + " (its vocabulary has " + m.vocabSize + " ids)", "input");
                }
                ids[s][t] = id;
            }
        }
        int[] lengths = new int[n];
        for (int s = 0; s < n; s++) {
            lengths[s] = ids[s].length;
        }
        checkTokenLimits(lengths);
        return ids;
    }

    private CompletionStage<HttpResponse> openAiModels(Call c) {
        ObjectNode o = JsonBodies.MAPPER.createObjectNode();
        o.put("object", "list");
        ArrayNode data = o.putArray("data");
        for (ServedModel m : registry.list()) {
            data.addObject().put("id", m.name).put("object", "model").put("created", m.loadedAt.getEpochSecond())
                    .put("owned_by", "mps-actors");
        }
        return CompletableFuture.completedFuture(json(200, o, List.of()));
    }

    // ---- model management -------------------------------------------------------------------------------

    private CompletionStage<HttpResponse> listModels(Call c) {
        ArrayNode out = JsonBodies.MAPPER.createArrayNode();
        for (ServedModel m : registry.list()) {
            out.add(describe(m));
        }
        return CompletableFuture.completedFuture(json(200, out, List.of()));
    }

    private static ObjectNode describe(ServedModel m) {
        ObjectNode o = JsonBodies.MAPPER.createObjectNode();
        o.put("name", m.name).put("version", m.version).put("folder", m.folder.toString())
                .put("loaded_at", m.loadedAt.toString()).put("in_flight", m.inFlight())
                .put("warmed_shapes", m.warmedShapes).put("family", m.info.family())
                .put("hidden_size", m.info.hiddenSize()).put("max_input_length", m.info.maxTokens());
        ArrayNode tasks = o.putArray("tasks");
        m.info.tasks().stream().map(t -> t.name().toLowerCase(java.util.Locale.ROOT)).sorted().forEach(tasks::add);
        return o;
    }

    private CompletionStage<HttpResponse> loadModel(Call c, String name) {
        c.model = name;
        refuseManagement("PUT");
        String folder = JsonBodies.string(c.body, "folder", true);
        Path path;
        try {
            path = Path.of(folder);
        } catch (java.nio.file.InvalidPathException e) {
            throw ApiException.unprocessable("\"folder\" is not a path: " + JsonBodies.oneLine(e.getMessage()), "folder");
        }
        return registry.load(name, path).thenApply(m -> json(200, describe(m), List.of()));
    }

    private CompletionStage<HttpResponse> unloadModel(Call c, String name) {
        c.model = name;
        refuseManagement("DELETE");
        return registry.unload(name).thenApply(found -> {
            if (!found) {
                throw ApiException.notFound("model '" + JsonBodies.oneLine(name) + "' is not loaded");
            }
            ObjectNode o = JsonBodies.MAPPER.createObjectNode().put("name", name).put("unloaded", true);
            return json(200, o, List.of());
        });
    }

    /** 405 naming why, where models are not managed over HTTP (a cluster node). */
    private void refuseManagement(String method) {
        String why = registry.managementRefused();
        if (why != null) {
            throw new ApiException(405, "NotManaged", method + " /models/{name} is not available here: " + why);
        }
    }

    // ---- into the encoders ------------------------------------------------------------------------------

    /** The texts' tokens (the model's tokenizer, on the tokenize dispatcher), checked against every limit. */
    private CompletionStage<int[][]> tokenizeTexts(Call c, ServedModel m, List<String> texts, boolean truncate) {
        checkCount(texts.size());
        return CompletableFuture.supplyAsync(() -> m.tokenizer.encode(texts, truncate), tokenize).thenApply(batch -> {
            if (!batch.problems().isEmpty()) {
                boolean allTooLong = batch.problems().stream().allMatch(p -> p.reason().startsWith("longer than"));
                List<String> problems = batch.problems().stream().map(TextProtocol.TextProblem::toString).toList();
                throw new ApiException(allTooLong ? 413 : 422, allTooLong ? "Validation" : "Tokenizer",
                        problems.size() + " of " + texts.size() + " texts cannot be embedded: "
                                + String.join("; ", problems), "inputs", problems, 0);
            }
            int[][] ids = new int[texts.size()][];
            int[] lengths = new int[ids.length];
            for (int i = 0; i < ids.length; i++) {
                TextTokenizer.Tokens t = batch.tokens().get(i);
                ids[i] = t.ids();
                lengths[i] = t.length();
            }
            checkTokenLimits(lengths);
            return ids;
        });
    }

    private CompletionStage<int[]> countTokens(ServedModel m, List<String> texts, boolean truncate) {
        return CompletableFuture.supplyAsync(() -> m.tokenizer.encode(texts, truncate), tokenize).thenApply(batch -> {
            int[] lengths = new int[texts.size()];
            for (int i = 0; i < lengths.length; i++) {
                TextTokenizer.Tokens t = batch.tokens().get(i);
                lengths[i] = t == null ? 0 : t.length(); // bad texts are named by the encoder
            }
            return lengths;
        });
    }

    private void checkCount(int n) {
        if (n == 0) {
            throw new ApiException(400, "Empty", "no inputs: at least one text is needed", "inputs", List.of(), 0);
        }
        if (n > settings.maxTexts()) {
            throw ApiException.limit(n + " texts in one request, more than " + settings.maxTexts(), "max-texts");
        }
    }

    private void checkTokenLimits(int[] lengths) {
        long total = 0;
        for (int i = 0; i < lengths.length; i++) {
            if (settings.maxTokensPerText() > 0 && lengths[i] > settings.maxTokensPerText()) {
                throw ApiException.limit("text " + i + " has " + lengths[i] + " tokens, more than "
                        + settings.maxTokensPerText(), "max-tokens-per-text");
            }
            total += lengths[i];
        }
        if (total > settings.maxTokensPerRequest()) {
            throw ApiException.limit("the request has " + total + " tokens, more than "
                    + settings.maxTokensPerRequest(), "max-tokens-per-request");
        }
    }

    private CompletionStage<TextProtocol.Embeddings> embedTokens(Call c, ServedModel m, int[][] ids,
                                                                 EmbedOptions options) {
        String id = UUID.randomUUID().toString();
        return ask(c, m, id, TextProtocol.EmbedReply.class, replyTo -> new TextProtocol.EmbedTokens(id, ids, options,
                replyTo, c.deadline, c.priority)).thenApply(reply -> {
                    TextProtocol.Embeddings e = (TextProtocol.Embeddings) reply;
                    metrics.tokens(m, sum(e.tokenCounts()));
                    return e;
                });
    }

    /**
     * One request to the encoder, registered with its connection (so a disconnect cancels it) and answered by
     * its reply: a {@link TextFailure} becomes the status its kind maps to; no reply within the deadline
     * (and a grace for the reply to travel) becomes 504.
     */
    private <R extends TextProtocol.TextReply> CompletionStage<R> ask(
            Call c, ServedModel m, String id, Class<R> type,
            org.apache.pekko.japi.function.Function<ActorRef<R>, TextProtocol.Command> message) {
        if (c.connection.closed) {
            throw new ApiException(503, "Cancelled", "the client went away", null, List.of(), 0);
        }
        c.connection.pending.put(id, new Pending(m.encoder, m.name));
        Duration wait = Duration.between(Instant.now(), c.deadline).plusSeconds(5);
        return AskPattern.<TextProtocol.Command, R>ask(m.encoder, message, wait.isNegative() ? Duration.ofSeconds(5)
                        : wait, runtime.system().scheduler())
                .handle((reply, e) -> {
                    c.connection.pending.remove(id);
                    if (e != null) {
                        if (ModelRegistry.unwrap(e) instanceof TimeoutException) {
                            throw new ApiException(504, "DeadlineExceeded", "no answer from model " + m.name
                                    + " before the request's deadline", null, List.of(), 0);
                        }
                        throw new ApiException(503, "Unhealthy", "model " + m.name + " did not answer: "
                                + ModelRegistry.unwrap(e).getMessage(), null, List.of(), 0);
                    }
                    if (reply instanceof TextFailure f) {
                        throw failure(f);
                    }
                    return type.cast(reply);
                });
    }

    /** A client went away: what it still waited for is cancelled (dropped if it has not reached the device). */
    void connectionClosed(Connection connection) {
        connection.closed = true;
        for (Map.Entry<String, Pending> e : connection.pending.entrySet()) {
            if (connection.pending.remove(e.getKey()) != null) {
                e.getValue().encoder().tell(new TextProtocol.Cancel(e.getKey()));
                metrics.cancelled(e.getValue().model());
            }
        }
    }

    private ApiException failure(TextFailure f) {
        List<String> problems = f.problems().stream().map(TextProtocol.TextProblem::toString).toList();
        return switch (f.kind()) {
            case INVALID_REQUEST -> {
                if (!problems.isEmpty()) {
                    boolean tooLong = f.problems().stream().allMatch(p -> p.reason().contains("over the model's limit")
                            || p.reason().startsWith("longer than"));
                    yield new ApiException(tooLong ? 413 : 422, tooLong ? "Validation" : "Tokenizer", f.reason(),
                            "input", problems, 0);
                }
                if (f.reason().contains("mps-actors.text.max-texts")) {
                    yield new ApiException(413, "Validation", f.reason(), "input", problems, 0);
                }
                yield new ApiException(f.reason().startsWith("no texts") ? 400 : 422,
                        f.reason().startsWith("no texts") ? "Empty" : "Validation", f.reason(), null, problems, 0);
            }
            case UNSUPPORTED -> new ApiException(400, "Unsupported", f.reason(), null, List.of(), 0);
            case OVERLOADED -> new ApiException(429, "Overloaded", f.reason(), null, List.of(),
                    Math.max(1, (settings.retryAfter().toMillis() + 999) / 1000));
            case DEADLINE_EXCEEDED -> new ApiException(504, "DeadlineExceeded", f.reason(), null, List.of(), 0);
            case UNAVAILABLE -> new ApiException(503, "Unhealthy", f.reason(), null, List.of(), 0);
            case CANCELLED -> new ApiException(503, "Cancelled", f.reason(), null, List.of(), 0);
        };
    }

    // ---- responses --------------------------------------------------------------------------------------

    private HttpResponse error(Call call, Throwable failure) {
        ApiException e;
        if (failure instanceof ApiException a) {
            e = a;
        } else {
            LOG.error("unexpected failure answering {} {}", call.request.method().value(), call.route, failure);
            e = new ApiException(500, "Backend", "internal error: " + failure.getClass().getSimpleName());
        }
        List<HttpHeader> headers = new ArrayList<>();
        if (e.retryAfterSeconds > 0) {
            headers.add(RawHeader.create("Retry-After", Long.toString(e.retryAfterSeconds)));
        }
        if (e.status == 401) {
            headers.add(RawHeader.create("WWW-Authenticate", "Bearer"));
        }
        Object body;
        if (call.style == Style.OPENAI) {
            ObjectNode o = JsonBodies.MAPPER.createObjectNode();
            ObjectNode err = o.putObject("error");
            err.put("message", e.getMessage());
            err.put("type", switch (e.status) {
                case 401 -> "authentication_error";
                case 404 -> "not_found_error";
                case 429 -> "rate_limit_error";
                case 500, 503, 504 -> "server_error";
                default -> "invalid_request_error";
            });
            if (e.param != null) {
                err.put("param", e.param);
            } else {
                err.putNull("param");
            }
            err.put("code", e.type);
            if (!e.problems.isEmpty()) {
                ArrayNode p = err.putArray("problems");
                e.problems.forEach(p::add);
            }
            body = o;
        } else {
            ObjectNode o = teiError(e.getMessage(), e.type);
            if (!e.problems.isEmpty()) {
                ArrayNode p = o.putArray("problems");
                e.problems.forEach(p::add);
            }
            body = o;
        }
        return json(e.status, body, headers);
    }

    static ObjectNode teiError(String message, String type) {
        return JsonBodies.MAPPER.createObjectNode().put("error", message).put("error_type", type);
    }

    private static String type(int status) {
        return switch (status) {
            case 401 -> "Unauthorized";
            case 404 -> "NotFound";
            case 405 -> "MethodNotAllowed";
            case 413 -> "Validation";
            case 429 -> "Overloaded";
            case 503 -> "Unhealthy";
            default -> status >= 500 ? "Backend" : "Validation";
        };
    }

    static HttpResponse json(int status, Object body, Iterable<HttpHeader> headers) {
        byte[] bytes;
        try {
            bytes = JsonBodies.MAPPER.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        return HttpResponse.create().withStatus(StatusCodes.get(status)).addHeaders(headers)
                .withEntity(org.apache.pekko.http.javadsl.model.HttpEntities.create(ContentTypes.APPLICATION_JSON, bytes));
    }

    private static long sum(int[] v) {
        long s = 0;
        for (int x : v) {
            s += x;
        }
        return s;
    }

    private static String version() {
        String v = Api.class.getPackage().getImplementationVersion();
        return v != null ? v : "development";
    }
}
