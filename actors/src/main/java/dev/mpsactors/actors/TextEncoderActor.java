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
 * Owns a model folder's tokenizer and speaks text in front of its model actor. An {@link Embed} is checked
 * (count), tokenized on the tokenize dispatcher (never on this actor's thread nor the model's), padded into
 * one {@link InferenceProtocol.Infer} asking only for the pooled embedding, and answered from the model's
 * reply. Every Embed is answered exactly once: with {@link Embeddings}, or with an {@link TextFailure} on
 * a bad text, a model failure or overload, the model actor stopping, or this actor stopping.
 */
public final class TextEncoderActor extends AbstractBehavior<Command> {
    /** The folder's tokenizer and sentence settings, loaded before the actor starts. */
    public record Text(TextTokenizer tokenizer, SentenceEncoderConfig config) {
        /** Reads {@code folder}; throws {@link dev.mpsactors.text.TextFormatException} naming what is wrong. */
        public static Text load(Path folder) {
            SentenceEncoderConfig config = SentenceEncoderConfig.read(folder);
            return new Text(TextTokenizer.load(folder, config.maxTokens()), config);
        }
    }

    private record Tokenized(long key, TextTokenizer.Batch batch, Throwable error) implements Internal {}

    /** What the encoder keeps of an {@link Embed} or {@link TextProtocol.EmbedTokens}: how to answer it. */
    private record Request(String requestId, int texts, TextProtocol.EmbedOptions options,
                           ActorRef<TextProtocol.EmbedReply> replyTo, Instant deadline, int priority) {
        static Request of(Embed m) {
            return new Request(m.requestId(), m.texts().size(), m.options(), m.replyTo(), m.deadline(), m.priority());
        }

        static Request of(TextProtocol.EmbedTokens m) {
            return new Request(m.requestId(), m.tokenIds().length, m.options(), m.replyTo(), m.deadline(),
                    m.priority());
        }
    }

    /** The reason a model gives a request it dropped on {@link InferenceProtocol.Cancel}. */
    private static final String CANCELLED_BY_CALLER = "cancelled by the caller";

    private record ModelReplied(InferReply reply) implements Internal {}

    private record ModelStopped() implements Internal {}

    private record Pending(Request embed, int[] tokenCounts, boolean[] truncated) {}

    private final ActorRef<InferenceProtocol.Command> model;
    private final Text text;
    private final TextSettings settings;
    private final Executor tokenize;
    private final ActorRef<InferReply> replies;
    /** Requests being tokenized, by key. */
    private final Map<Long, Request> tokenizing = new HashMap<>();
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
                .onMessage(Embed.class, this::onEmbed)
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

    private Behavior<Command> onEmbed(Embed embed) {
        Request m = Request.of(embed);
        if (admissible(m)) {
            long key = nextKey++;
            tokenizing.put(key, m);
            boolean truncate = m.options().truncate();
            getContext().pipeToSelf(CompletableFuture.supplyAsync(() -> text.tokenizer().encode(embed.texts(),
                    truncate), tokenize), (batch, error) -> new Tokenized(key, batch, error));
        }
        return this;
    }

    /** The count and deadline checks every embedding request passes first; false when it was answered. */
    private boolean admissible(Request m) {
        int n = m.texts();
        if (n == 0) {
            fail(m, FailureKind.INVALID_REQUEST, "no texts to embed");
        } else if (n > settings.maxTexts()) {
            fail(m, FailureKind.INVALID_REQUEST,
                    n + " texts in one request; at most " + settings.maxTexts() + " (mps-actors.text.max-texts)");
        } else if (expired(m)) {
            fail(m, FailureKind.DEADLINE_EXCEEDED, "deadline " + m.deadline() + " passed before tokenizing");
        } else {
            return true;
        }
        return false;
    }

    /** Token ids need no tokenizer: checked here and sent to the model at once. */
    private Behavior<Command> onEmbedTokens(TextProtocol.EmbedTokens embed) {
        Request m = Request.of(embed);
        if (!admissible(m)) {
            return this;
        }
        int limit = text.config().maxTokens();
        List<TextTokenizer.Tokens> tokens = new java.util.ArrayList<>();
        List<TextProblem> problems = new java.util.ArrayList<>();
        for (int i = 0; i < embed.tokenIds().length; i++) {
            int[] ids = embed.tokenIds()[i];
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
            refuse(m, problems);
            return this;
        }
        send(m, tokens, nextKey++);
        return this;
    }

    /** The caller went away: drop its request here, or ask the model to drop it if it is still queued there. */
    private Behavior<Command> onCancel(TextProtocol.Cancel c) {
        tokenizing.entrySet().removeIf(e -> {
            if (e.getValue().requestId().equals(c.requestId())) {
                fail(e.getValue(), FailureKind.CANCELLED, CANCELLED_BY_CALLER + " while tokenizing");
                return true;
            }
            return false;
        });
        atModel.forEach((id, p) -> {
            if (p.embed().requestId().equals(c.requestId())) {
                model.tell(new InferenceProtocol.Cancel(id));
            }
        });
        return this;
    }

    private static void refuse(Request m, List<TextProblem> problems) {
        m.replyTo().tell(new TextFailure(m.requestId(), FailureKind.INVALID_REQUEST, problems.size() + " of "
                + m.texts() + " texts cannot be embedded: " + problems.stream().map(TextProblem::toString)
                .collect(Collectors.joining("; ")), problems));
    }

    private Behavior<Command> onRerank(TextProtocol.Rerank m) {
        m.replyTo().tell(new TextFailure(m.requestId(), FailureKind.UNSUPPORTED, noHead("rerank")));
        return this;
    }

    private Behavior<Command> onClassify(TextProtocol.Classify m) {
        m.replyTo().tell(new TextFailure(m.requestId(), FailureKind.UNSUPPORTED, noHead("classify")));
        return this;
    }

    private String noHead(String task) {
        return "cannot " + task + ": the model " + model.path().name()
                + " has no sequence-classification head (its folder holds an encoder body only)";
    }

    private Behavior<Command> onDescribe(TextProtocol.Describe m) {
        m.replyTo().tell(new TextProtocol.EncoderInfo(text.config().family(), text.config().hiddenSize(),
                text.config().maxTokens(), java.util.Set.of(TextProtocol.Task.EMBED), List.of(),
                text.config().pooling(), text.config().normalize()));
        return this;
    }

    private Behavior<Command> onTokenized(Tokenized t) {
        Request m = tokenizing.remove(t.key());
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
            refuse(m, problems);
            return this;
        }
        if (expired(m)) {
            fail(m, FailureKind.DEADLINE_EXCEEDED, "deadline " + m.deadline() + " passed while tokenizing");
            return this;
        }
        send(m, t.batch().tokens(), t.key());
        return this;
    }

    /** The tokens of one request, padded to the longest, as one model request asking for the pooled embedding. */
    private void send(Request m, List<TextTokenizer.Tokens> tokens, long key) {
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
        Pooling pooling = m.options().pooling() != null ? m.options().pooling() : text.config().pooling();
        boolean normalize = m.options().normalize() != null ? m.options().normalize() : text.config().normalize();
        // the model sees one request per Embed; its id is made unique here so callers may reuse theirs
        String id = m.requestId() + "#" + key;
        atModel.put(id, new Pending(m, counts, truncated));
        model.tell(new InferenceProtocol.Infer(id, new InferenceProtocol.InferenceInputs(ids, mask, types), replies,
                m.deadline(), InferenceProtocol.OutputSpec.embedding(pooling, normalize), m.priority()));
    }

    private Behavior<Command> onModelReplied(ModelReplied r) {
        Pending p = atModel.remove(r.reply().requestId());
        if (p == null) {
            return this;
        }
        Request m = p.embed();
        if (r.reply() instanceof InferenceProtocol.InferResult result) {
            if (result.embedding() == null || result.embedding().length != p.tokenCounts().length) {
                fail(m, FailureKind.UNAVAILABLE, "the model's reply carries no embedding for each text");
            } else {
                m.replyTo().tell(new Embeddings(m.requestId(), result.embedding(), p.tokenCounts(), p.truncated()));
            }
        } else if (r.reply() instanceof InferenceProtocol.InferFailure f) {
            FailureKind kind = f.reason().contains(CANCELLED_BY_CALLER) ? FailureKind.CANCELLED
                    : f.reason().contains("deadline") ? FailureKind.DEADLINE_EXCEEDED : FailureKind.UNAVAILABLE;
            fail(m, kind, "the model failed the request: " + f.reason());
        } else if (r.reply() instanceof InferenceProtocol.Overloaded o) {
            fail(m, FailureKind.OVERLOADED, "overloaded: " + o.reason());
        }
        return this;
    }

    private Behavior<Command> onModelStopped() {
        for (Pending p : atModel.values()) {
            fail(p.embed(), FailureKind.UNAVAILABLE, "the model actor stopped before answering");
        }
        atModel.clear();
        return Behaviors.stopped();
    }

    private Behavior<Command> onStop() {
        for (Request m : tokenizing.values()) {
            fail(m, FailureKind.UNAVAILABLE, "the text encoder stopped");
        }
        for (Pending p : atModel.values()) {
            fail(p.embed(), FailureKind.UNAVAILABLE, "the text encoder stopped");
        }
        tokenizing.clear();
        atModel.clear();
        text.tokenizer().close();
        return this;
    }

    private static boolean expired(Request m) {
        return m.deadline() != null && !Instant.now().isBefore(m.deadline());
    }

    private static void fail(Request m, FailureKind kind, String reason) {
        m.replyTo().tell(new TextFailure(m.requestId(), kind, reason));
    }
}
