package dev.mpsactors.actors;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.Command;
import dev.mpsactors.protocol.TextProtocol.Embed;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.protocol.TextProtocol.Embeddings;
import dev.mpsactors.protocol.TextProtocol.Internal;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.runtime.TextSettings;
import dev.mpsactors.text.SentenceEncoderConfig;
import dev.mpsactors.text.TextTokenizer;
import java.nio.file.Path;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.stream.Collectors;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Owns a model folder's tokenizer and speaks text in front of its model actor. An {@link Embed}, {@link
 * TextProtocol.Rerank} or {@link TextProtocol.Classify} is checked (count, deadline, whether the model has the
 * head it needs), tokenized on the tokenize dispatcher (never on this actor's thread nor the model's; a rerank
 * as (query, text) pairs through the tokenizer's own pair template), padded into one
 * {@link InferenceProtocol.Infer} asking only for what the reply needs (the pooled embedding, or the head's
 * logits), and answered from the model's reply. An {@link TextProtocol.EmbedTokens} skips the tokenizer. A
 * {@link TextProtocol.Cancel} drops the request while it is tokenized, or asks the model to drop it while it is
 * queued there. Every request is answered exactly once: with its result, or with a {@link TextFailure} of the
 * right {@link FailureKind} on a bad text, a missing head, a model failure or overload, a cancellation, the
 * model actor stopping, or this actor stopping.
 */
public final class TextEncoderActor extends AbstractBehavior<Command> {
    /**
     * The folder's tokenizer and sentence settings, and its sequence-classification head (null: none), loaded
     * before the actor starts.
     */
    public record Text(TextTokenizer tokenizer, SentenceEncoderConfig config, HfModelFolder.Classifier classifier) {
        public Text(TextTokenizer tokenizer, SentenceEncoderConfig config) {
            this(tokenizer, config, null);
        }

        /** Reads {@code folder}; throws {@link dev.mpsactors.text.TextFormatException} naming what is wrong. */
        public static Text load(Path folder) {
            SentenceEncoderConfig config = SentenceEncoderConfig.read(folder);
            HfModelFolder.Classifier classifier = null;
            try {
                // a folder without weights (a model served elsewhere) has no head to offer
                if (java.nio.file.Files.isRegularFile(folder.resolve(HfModelFolder.WEIGHTS_FILE))
                        || java.nio.file.Files.isRegularFile(folder.resolve(HfModelFolder.INDEX_FILE))) {
                    classifier = HfModelFolder.probeClassifier(folder);
                }
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            return new Text(TextTokenizer.load(folder, config.maxTokens()), config, classifier);
        }
    }

    private record Tokenized(long key, TextTokenizer.Batch batch, Throwable error) implements Internal {}

    /** How a request dropped on {@link TextProtocol.Cancel} is described (the model says the same). */
    private static final String CANCELLED_BY_CALLER = "cancelled by the caller";

    private record ModelReplied(InferReply reply) implements Internal {}

    private record ModelStopped() implements Internal {}

    private record Pending(Command request, int[] tokenCounts, boolean[] truncated) {}

    private final ActorRef<InferenceProtocol.Command> model;
    private final Text text;
    private final TextSettings settings;
    private final Executor tokenize;
    private final ActorRef<InferReply> replies;
    /** Requests being tokenized, by key. */
    private final Map<Long, Command> tokenizing = new HashMap<>();
    /** Requests at the model, by the model request's id. */
    private final Map<String, Pending> atModel = new HashMap<>();
    private long nextKey;

    public static Behavior<Command> create(ActorRef<InferenceProtocol.Command> model, Text text, TextSettings settings,
                                           Executor tokenize) {
        return Behaviors.setup(ctx -> new TextEncoderActor(ctx, model, text, settings, tokenize));
    }

    private TextEncoderActor(ActorContext<Command> ctx, ActorRef<InferenceProtocol.Command> model, Text text,
                             TextSettings settings, Executor tokenize) {
        super(ctx);
        this.model = model;
        this.text = text;
        this.settings = settings;
        this.tokenize = tokenize;
        this.replies = ctx.messageAdapter(InferReply.class, ModelReplied::new);
        ctx.watchWith(model, new ModelStopped());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Embed.class, m -> onRequest(m, m.texts(), m.deadline(), m.options().truncate(), "embed"))
                .onMessage(TextProtocol.EmbedTokens.class, this::onEmbedTokens)
                .onMessage(TextProtocol.Cancel.class, this::onCancel)
                .onMessage(TextProtocol.Rerank.class, this::onRerank)
                .onMessage(TextProtocol.Classify.class, this::onClassify)
                .onMessage(TextProtocol.Describe.class, this::onDescribe)
                .onMessage(Tokenized.class, this::onTokenized)
                .onMessage(ModelReplied.class, this::onModelReplied)
                .onMessage(ModelStopped.class, m -> onModelStopped())
                .onSignal(PostStop.class, s -> onStop())
                .build();
    }

    private Behavior<Command> onRerank(TextProtocol.Rerank m) {
        HfModelFolder.Classifier head = text.classifier();
        if (head == null) {
            fail(m, FailureKind.UNSUPPORTED, noHead("rerank"));
        } else if (head.numLabels() != 1) {
            fail(m, FailureKind.UNSUPPORTED, "cannot rerank: the model " + model.path().name() + "'s head has "
                    + head.numLabels() + " labels " + head.labels() + "; a cross-encoder has one (use Classify)");
        } else if (TextTokenizer.problem(m.query()) != null) {
            fail(m, FailureKind.INVALID_REQUEST, "the query is " + TextTokenizer.problem(m.query()));
        } else {
            onRequest(m, m.texts(), m.deadline(), m.options().truncate(), "rerank");
        }
        return this;
    }

    private Behavior<Command> onClassify(TextProtocol.Classify m) {
        if (text.classifier() == null) {
            fail(m, FailureKind.UNSUPPORTED, noHead("classify"));
        } else {
            onRequest(m, m.texts(), m.deadline(), m.options().truncate(), "classify");
        }
        return this;
    }

    /** The count and deadline checks every text request passes first; false when it was answered. */
    private boolean admissible(Command m, int n, Instant deadline, String verb) {
        if (n == 0) {
            fail(m, FailureKind.INVALID_REQUEST, "no texts to " + verb);
        } else if (n > settings.maxTexts()) {
            fail(m, FailureKind.INVALID_REQUEST,
                    n + " texts in one request; at most " + settings.maxTexts() + " (mps-actors.text.max-texts)");
        } else if (expired(deadline)) {
            fail(m, FailureKind.DEADLINE_EXCEEDED, "deadline " + deadline + " passed before tokenizing");
        } else {
            return true;
        }
        return false;
    }

    /** Token ids need no tokenizer: checked here and sent to the model at once. */
    private Behavior<Command> onEmbedTokens(TextProtocol.EmbedTokens m) {
        if (!admissible(m, m.tokenIds().length, m.deadline(), "embed")) {
            return this;
        }
        int limit = text.config().maxTokens();
        List<TextTokenizer.Tokens> tokens = new java.util.ArrayList<>();
        List<TextProblem> problems = new java.util.ArrayList<>();
        for (int i = 0; i < m.tokenIds().length; i++) {
            int[] ids = m.tokenIds()[i];
            if (ids == null || ids.length == 0) {
                problems.add(new TextProblem(i, "no token ids"));
                continue;
            }
            int negative = -1;
            for (int t = 0; t < ids.length && negative < 0; t++) {
                negative = ids[t] < 0 ? t : -1;
            }
            if (negative >= 0) {
                problems.add(new TextProblem(i, "token id " + ids[negative] + " at position " + negative
                        + " is negative"));
            } else if (ids.length > limit && !m.options().truncate()) {
                problems.add(new TextProblem(i, ids.length + " tokens, over the model's limit of " + limit
                        + " (truncation is off)"));
            } else {
                boolean cut = ids.length > limit;
                int[] kept = cut ? java.util.Arrays.copyOf(ids, limit) : ids.clone();
                tokens.add(new TextTokenizer.Tokens(kept, new int[kept.length], cut));
            }
        }
        if (!problems.isEmpty()) {
            refuse(m, m.tokenIds().length, problems);
        } else {
            send(m, tokens, nextKey++);
        }
        return this;
    }

    /** The caller went away: drop its request here, or ask the model to drop it if it is still queued there. */
    private Behavior<Command> onCancel(TextProtocol.Cancel c) {
        tokenizing.entrySet().removeIf(e -> {
            if (requestId(e.getValue()).equals(c.requestId())) {
                fail(e.getValue(), FailureKind.CANCELLED, CANCELLED_BY_CALLER + " while tokenizing");
                return true;
            }
            return false;
        });
        atModel.forEach((id, p) -> {
            if (requestId(p.request()).equals(c.requestId())) {
                model.tell(new InferenceProtocol.Cancel(id));
            }
        });
        return this;
    }

    private Behavior<Command> onRequest(Command m, List<String> texts, Instant deadline, boolean truncate,
                                        String verb) {
        if (admissible(m, texts.size(), deadline, verb)) {
            long key = nextKey++;
            tokenizing.put(key, m);
            TextTokenizer tokenizer = text.tokenizer();
            java.util.function.Supplier<TextTokenizer.Batch> work = m instanceof TextProtocol.Rerank r
                    ? () -> tokenizer.encodePairs(r.query(), texts, truncate)
                    : () -> tokenizer.encode(texts, truncate);
            getContext().pipeToSelf(CompletableFuture.supplyAsync(work, tokenize),
                    (batch, error) -> new Tokenized(key, batch, error));
        }
        return this;
    }

    private String noHead(String task) {
        return "cannot " + task + ": the model " + model.path().name()
                + " has no sequence-classification head (its folder holds an encoder body only)";
    }

    private Behavior<Command> onDescribe(TextProtocol.Describe m) {
        java.util.Set<TextProtocol.Task> tasks = java.util.EnumSet.of(TextProtocol.Task.EMBED);
        HfModelFolder.Classifier head = text.classifier();
        if (head != null) {
            tasks.add(TextProtocol.Task.CLASSIFY);
            if (head.numLabels() == 1) {
                tasks.add(TextProtocol.Task.RERANK);
            }
        }
        m.replyTo().tell(new TextProtocol.EncoderInfo(text.config().family(), text.config().hiddenSize(),
                text.config().maxTokens(), tasks, head == null ? List.of() : head.labels(),
                text.config().pooling(), text.config().normalize()));
        return this;
    }

    private Behavior<Command> onTokenized(Tokenized t) {
        Command m = tokenizing.remove(t.key());
        if (m == null) {
            return this;
        }
        if (t.error() != null) {
            Throwable cause = t.error().getCause() != null ? t.error().getCause() : t.error();
            fail(m, FailureKind.INVALID_REQUEST, "tokenizing failed: " + cause);
            return this;
        }
        List<TextProblem> problems = t.batch().problems();
        if (!problems.isEmpty()) {
            refuse(m, t.batch().tokens().size(), problems);
            return this;
        }
        if (expired(deadline(m))) {
            fail(m, FailureKind.DEADLINE_EXCEEDED, "deadline " + deadline(m) + " passed while tokenizing");
            return this;
        }
        send(m, t.batch().tokens(), t.key());
        return this;
    }

    private static void refuse(Command m, int texts, List<TextProblem> problems) {
        reply(m, new TextFailure(requestId(m), FailureKind.INVALID_REQUEST, problems.size() + " of " + texts
                + " texts cannot be " + (m instanceof TextProtocol.Rerank ? "reranked"
                : m instanceof TextProtocol.Classify ? "classified" : "embedded") + ": "
                + problems.stream().map(TextProblem::toString).collect(Collectors.joining("; ")), problems));
    }

    /** The tokens of one request, padded to the longest, as one model request asking only for what it needs. */
    private void send(Command m, List<TextTokenizer.Tokens> tokens, long key) {
        int longest = tokens.stream().mapToInt(TextTokenizer.Tokens::length).max().orElseThrow();
        int b = tokens.size();
        int[][] ids = new int[b][longest], mask = new int[b][longest], types = new int[b][longest];
        int[] counts = new int[b];
        boolean[] truncated = new boolean[b];
        for (int i = 0; i < b; i++) {
            TextTokenizer.Tokens s = tokens.get(i);
            System.arraycopy(s.ids(), 0, ids[i], 0, s.length());
            System.arraycopy(s.typeIds(), 0, types[i], 0, s.length());
            java.util.Arrays.fill(mask[i], 0, s.length(), 1);
            counts[i] = s.length();
            truncated[i] = s.truncated();
        }
        InferenceProtocol.OutputSpec outputs;
        TextProtocol.EmbedOptions embed = m instanceof Embed e ? e.options()
                : m instanceof TextProtocol.EmbedTokens e ? e.options() : null;
        if (embed != null) {
            Pooling pooling = embed.pooling() != null ? embed.pooling() : text.config().pooling();
            boolean normalize = embed.normalize() != null ? embed.normalize() : text.config().normalize();
            outputs = InferenceProtocol.OutputSpec.embedding(pooling, normalize);
        } else {
            outputs = InferenceProtocol.OutputSpec.LOGITS; // only the head's logits leave the device
        }
        // the model sees one request per text request; its id is made unique here so callers may reuse theirs
        String id = requestId(m) + "#" + key;
        atModel.put(id, new Pending(m, counts, truncated));
        model.tell(new InferenceProtocol.Infer(id, new InferenceProtocol.InferenceInputs(ids, mask, types), replies,
                deadline(m), outputs, priority(m)));
    }

    private Behavior<Command> onModelReplied(ModelReplied r) {
        Pending p = atModel.remove(r.reply().requestId());
        if (p == null) {
            return this;
        }
        Command m = p.request();
        if (r.reply() instanceof InferenceProtocol.InferResult result) {
            answer(m, result, p);
        } else if (r.reply() instanceof InferenceProtocol.InferFailure f) {
            fail(m, f.kind(), "the model failed the request: " + f.reason());
        } else if (r.reply() instanceof InferenceProtocol.Overloaded o) {
            fail(m, FailureKind.OVERLOADED, "overloaded: " + o.reason());
        }
        return this;
    }

    private void answer(Command m, InferenceProtocol.InferResult result, Pending p) {
        int n = p.tokenCounts().length;
        ActorRef<TextProtocol.EmbedReply> embedReply = m instanceof Embed e ? e.replyTo()
                : m instanceof TextProtocol.EmbedTokens e ? e.replyTo() : null;
        if (embedReply != null) {
            if (result.embedding() == null || result.embedding().length != n) {
                fail(m, FailureKind.UNAVAILABLE, "the model's reply carries no embedding for each text");
            } else {
                embedReply.tell(new Embeddings(requestId(m), result.embedding(), p.tokenCounts(), p.truncated()));
            }
            return;
        }
        float[][] logits = result.logits();
        int labels = text.classifier().numLabels();
        if (logits == null || logits.length != n || java.util.Arrays.stream(logits).anyMatch(l -> l.length != labels)) {
            fail(m, FailureKind.UNAVAILABLE, "the model's reply carries no " + labels + " logits for each text");
            return;
        }
        if (m instanceof TextProtocol.Rerank rr) {
            float[] scores = new float[n];
            for (int i = 0; i < n; i++) {
                scores[i] = rr.options().rawScores() ? logits[i][0] : sigmoid(logits[i][0]);
            }
            rr.replyTo().tell(new TextProtocol.Scores(rr.requestId(), scores, p.tokenCounts(), p.truncated()));
        } else if (m instanceof TextProtocol.Classify c) {
            List<List<TextProtocol.LabelScore>> out = new java.util.ArrayList<>(n);
            for (float[] row : logits) {
                float[] scores = c.options().rawScores() ? row.clone()
                        : text.classifier().sigmoid() ? sigmoids(row) : softmax(row);
                List<TextProtocol.LabelScore> ranked = new java.util.ArrayList<>(labels);
                for (int k = 0; k < labels; k++) {
                    ranked.add(new TextProtocol.LabelScore(text.classifier().labels().get(k), scores[k]));
                }
                ranked.sort((a, b) -> Float.compare(b.score(), a.score())); // stable: ties keep id order
                out.add(ranked);
            }
            c.replyTo().tell(new TextProtocol.Classifications(c.requestId(), out, p.tokenCounts(), p.truncated()));
        }
    }

    static float sigmoid(float x) {
        return (float) (1 / (1 + Math.exp(-(double) x)));
    }

    private static float[] sigmoids(float[] row) {
        float[] out = new float[row.length];
        for (int i = 0; i < row.length; i++) {
            out[i] = sigmoid(row[i]);
        }
        return out;
    }

    static float[] softmax(float[] row) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (float v : row) {
            max = Math.max(max, v);
        }
        double[] e = new double[row.length];
        for (int i = 0; i < row.length; i++) {
            e[i] = Math.exp(row[i] - max);
            sum += e[i];
        }
        float[] out = new float[row.length];
        for (int i = 0; i < row.length; i++) {
            out[i] = (float) (e[i] / sum);
        }
        return out;
    }

    private Behavior<Command> onModelStopped() {
        for (Pending p : atModel.values()) {
            fail(p.request(), FailureKind.UNAVAILABLE, "the model actor stopped before answering");
        }
        atModel.clear();
        return Behaviors.stopped();
    }

    private Behavior<Command> onStop() {
        for (Command m : tokenizing.values()) {
            fail(m, FailureKind.UNAVAILABLE, "the text encoder stopped");
        }
        for (Pending p : atModel.values()) {
            fail(p.request(), FailureKind.UNAVAILABLE, "the text encoder stopped");
        }
        tokenizing.clear();
        atModel.clear();
        text.tokenizer().close();
        return this;
    }

    private static boolean expired(Instant deadline) {
        return deadline != null && !Instant.now().isBefore(deadline);
    }

    private static String requestId(Command m) {
        if (m instanceof Embed e) {
            return e.requestId();
        }
        if (m instanceof TextProtocol.EmbedTokens e) {
            return e.requestId();
        }
        if (m instanceof TextProtocol.Rerank r) {
            return r.requestId();
        }
        if (m instanceof TextProtocol.Classify c) {
            return c.requestId();
        }
        throw new IllegalArgumentException("not a text request: " + m);
    }

    private static Instant deadline(Command m) {
        if (m instanceof Embed e) {
            return e.deadline();
        }
        if (m instanceof TextProtocol.EmbedTokens e) {
            return e.deadline();
        }
        if (m instanceof TextProtocol.Rerank r) {
            return r.deadline();
        }
        return m instanceof TextProtocol.Classify c ? c.deadline() : null;
    }

    /** The priority the model batches the request by (higher first); scoring requests carry none. */
    private static int priority(Command m) {
        if (m instanceof Embed e) {
            return e.priority();
        }
        return m instanceof TextProtocol.EmbedTokens e ? e.priority() : 0;
    }

    /** Sends {@code reply} (a TextFailure, which is a reply of every kind) to the request's replyTo. */
    private static void reply(Command m, TextFailure reply) {
        if (m instanceof Embed e) {
            e.replyTo().tell(reply);
        } else if (m instanceof TextProtocol.EmbedTokens e) {
            e.replyTo().tell(reply);
        } else if (m instanceof TextProtocol.Rerank r) {
            r.replyTo().tell(reply);
        } else if (m instanceof TextProtocol.Classify c) {
            c.replyTo().tell(reply);
        } else {
            throw new IllegalArgumentException("not a text request: " + m);
        }
    }

    private static void fail(Command m, FailureKind kind, String reason) {
        reply(m, new TextFailure(requestId(m), kind, reason));
    }
}
