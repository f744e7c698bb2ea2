package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferFailure;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;

/**
 * The client side of cluster inference, one actor per client: it sends each {@link Call} to one replica of the
 * model (round robin over the replicas), retries an attempt that timed out or got a retryable failure on the
 * next replica after the backoff, and answers the caller exactly once with an {@link Outcome}.
 *
 * <p>Replies reach this actor itself, never an ask: every attempt goes out under its own wire id
 * ({@code "<requestId>@<call>.<attempt>"}), so a second reply to the same attempt is seen and counted as a
 * duplicate, and a reply to an attempt that already timed out is counted as late (and dropped: the call has
 * moved on). {@link Counters} are readable from any thread while the actor runs.
 */
public final class ClusterCaller extends AbstractBehavior<ClusterCaller.Command> {
    /** Attempts of finished calls remembered for duplicate detection (oldest forgotten first). */
    static final int REMEMBERED_ATTEMPTS = 200_000;

    public sealed interface Command permits Call, Replied, AttemptTimedOut, RetryNow {}

    /**
     * Infer {@code inputs} on model {@code model}; answered with exactly one {@link Outcome}.
     *
     * @param outputs what the result carries (null: last hidden state and pooler output)
     */
    public record Call(String model, String requestId, InferenceInputs inputs,
                       dev.mpsactors.protocol.InferenceProtocol.OutputSpec outputs, ActorRef<Outcome> replyTo)
            implements Command {
        public Call {
            Objects.requireNonNull(model, "model");
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputs, "inputs");
            Objects.requireNonNull(replyTo, "replyTo");
        }

        public Call(String model, String requestId, InferenceInputs inputs, ActorRef<Outcome> replyTo) {
            this(model, requestId, inputs, null, replyTo);
        }
    }

    public sealed interface Outcome permits Succeeded, Failed {
        String requestId();

        /** Attempts made, 1 when the first replica answered. */
        int attempts();
    }

    public record Succeeded(String requestId, ClusterInferResult result, int attempts) implements Outcome {}

    /** @param reason the last attempt's cause: the replica's failure, or which replica did not answer in time */
    public record Failed(String requestId, String reason, int attempts) implements Outcome {}

    private record Replied(ClusterInferReply reply) implements Command {}

    private record AttemptTimedOut(String wireId) implements Command {}

    private record RetryNow(long call) implements Command {}

    /** What this caller saw, updated by the actor only, readable by anyone. */
    public static final class Counters {
        final AtomicLong calls = new AtomicLong();
        final AtomicLong succeeded = new AtomicLong();
        final AtomicLong failed = new AtomicLong();
        final AtomicLong retries = new AtomicLong();
        final AtomicLong replies = new AtomicLong();
        final AtomicLong lateReplies = new AtomicLong();
        final AtomicLong duplicateReplies = new AtomicLong();
        final AtomicLong unknownReplies = new AtomicLong();

        public Stats snapshot() {
            return new Stats(calls.get(), succeeded.get(), failed.get(), retries.get(), replies.get(),
                    lateReplies.get(), duplicateReplies.get(), unknownReplies.get());
        }
    }

    /**
     * @param calls            calls received
     * @param succeeded        calls answered with a result
     * @param failed           calls answered with a failure
     * @param retries          attempts after a first one timed out or failed retryably
     * @param replies          replies from replicas, all kinds
     * @param lateReplies      first replies to attempts that had already timed out (dropped)
     * @param duplicateReplies second or later replies to one attempt: a replica answered twice
     * @param unknownReplies   replies to no attempt this caller remembers
     */
    public record Stats(long calls, long succeeded, long failed, long retries, long replies, long lateReplies,
                        long duplicateReplies, long unknownReplies) {
        public long inFlight() {
            return calls - succeeded - failed;
        }
    }

    private enum AttemptState { OUTSTANDING, TIMED_OUT, ANSWERED }

    private static final class Pending {
        final Call call;
        final long firstReplica;
        int attempt;
        String wireId;

        Pending(Call call, long firstReplica) {
            this.call = call;
            this.firstReplica = firstReplica;
        }
    }

    private final Route route;
    private final ClusterSettings settings;
    private final Counters counters;
    private final TimerScheduler<Command> timers;
    private final ActorRef<ClusterInferReply> replies;
    private final Map<String, Long> nextReplica = new HashMap<>();
    private final Map<Long, Pending> calls = new HashMap<>();
    // State of every attempt of a call in progress, and of the latest attempts of finished calls.
    private final Map<String, AttemptState> attempts = new HashMap<>();
    private final LinkedHashMap<String, AttemptState> finished = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, AttemptState> eldest) {
            return size() > REMEMBERED_ATTEMPTS;
        }
    };
    private long nextCall;

    /** How an attempt reaches a replica: through Cluster Sharding, or a stand-in in tests. */
    @FunctionalInterface
    interface Route {
        void send(String entityId, ClusterInfer message);
    }

    public static Behavior<Command> create(ClusterSettings settings, Counters counters) {
        return create(settings, counters, null);
    }

    /** With {@code route} null, attempts go to the model entities through this system's Cluster Sharding. */
    static Behavior<Command> create(ClusterSettings settings, Counters counters, Route route) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new ClusterCaller(ctx, timers, settings, counters,
                route != null ? route : shardingRoute(ClusterSharding.get(ctx.getSystem())))));
    }

    private static Route shardingRoute(ClusterSharding sharding) {
        return (entityId, message) -> sharding.entityRefFor(ModelEntity.TYPE_KEY, entityId).tell(message);
    }

    private ClusterCaller(ActorContext<Command> ctx, TimerScheduler<Command> timers, ClusterSettings settings,
                          Counters counters, Route route) {
        super(ctx);
        this.route = route;
        this.settings = settings;
        this.counters = counters;
        this.timers = timers;
        this.replies = ctx.messageAdapter(ClusterInferReply.class, Replied::new);
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Call.class, this::onCall)
                .onMessage(Replied.class, this::onReplied)
                .onMessage(AttemptTimedOut.class, this::onTimedOut)
                .onMessage(RetryNow.class, m -> {
                    Pending p = calls.get(m.call());
                    if (p != null) {
                        send(m.call(), p);
                    }
                    return this;
                })
                .build();
    }

    private Behavior<Command> onCall(Call c) {
        counters.calls.incrementAndGet();
        long first = nextReplica.merge(c.model(), 1L, Long::sum) - 1;
        long id = nextCall++;
        Pending p = new Pending(c, first);
        calls.put(id, p);
        send(id, p);
        return this;
    }

    private void send(long id, Pending p) {
        int replica = (int) Math.floorMod(p.firstReplica + p.attempt, (long) settings.replicas());
        p.attempt++;
        p.wireId = p.call.requestId() + "@" + id + "." + p.attempt;
        attempts.put(p.wireId, AttemptState.OUTSTANDING);
        timers.startSingleTimer(p.wireId, new AttemptTimedOut(p.wireId), settings.attemptTimeout());
        route.send(ModelEntity.entityId(p.call.model(), replica), ClusterInfer.of(p.wireId, p.call.inputs(), p.call.outputs(),
                replies));
    }

    private Behavior<Command> onReplied(Replied m) {
        counters.replies.incrementAndGet();
        String wireId = m.reply().requestId();
        AttemptState state = attempts.get(wireId);
        boolean live = state != null;
        if (state == null) {
            state = finished.get(wireId);
        }
        if (state == null) {
            counters.unknownReplies.incrementAndGet();
            return this;
        }
        if (state == AttemptState.ANSWERED) {
            counters.duplicateReplies.incrementAndGet();
            getContext().getLog().warn("second reply to attempt {}: {}", wireId, m.reply());
            return this;
        }
        (live ? attempts : finished).put(wireId, AttemptState.ANSWERED);
        if (state == AttemptState.TIMED_OUT) {
            counters.lateReplies.incrementAndGet();
            return this;
        }
        timers.cancel(wireId);
        long id = callOf(wireId);
        Pending p = calls.get(id);
        if (m.reply() instanceof ClusterInferResult r) {
            finish(id, p, new Succeeded(p.call.requestId(), withRequestId(r, p.call.requestId()), p.attempt));
        } else if (m.reply() instanceof ClusterInferFailure f) {
            if (f.retryable()) {
                retryOrFail(id, p, f.reason());
            } else {
                finish(id, p, new Failed(p.call.requestId(), f.reason(), p.attempt));
            }
        }
        return this;
    }

    private Behavior<Command> onTimedOut(AttemptTimedOut m) {
        if (attempts.get(m.wireId()) != AttemptState.OUTSTANDING) {
            return this;
        }
        attempts.put(m.wireId(), AttemptState.TIMED_OUT);
        long id = callOf(m.wireId());
        Pending p = calls.get(id);
        int replica = (int) Math.floorMod(p.firstReplica + p.attempt - 1, (long) settings.replicas());
        retryOrFail(id, p, "no reply from replica " + ModelEntity.entityId(p.call.model(), replica) + " within "
                + settings.attemptTimeout());
        return this;
    }

    private void retryOrFail(long id, Pending p, String reason) {
        if (p.attempt >= settings.attempts()) {
            finish(id, p, new Failed(p.call.requestId(), reason, p.attempt));
        } else {
            counters.retries.incrementAndGet();
            timers.startSingleTimer("retry-" + id, new RetryNow(id), settings.retryBackoff());
        }
    }

    private void finish(long id, Pending p, Outcome outcome) {
        calls.remove(id);
        String prefix = p.call.requestId() + "@" + id + ".";
        for (int a = 1; a <= p.attempt; a++) {
            AttemptState s = attempts.remove(prefix + a);
            if (s != null) {
                finished.put(prefix + a, s);
            }
        }
        (outcome instanceof Succeeded ? counters.succeeded : counters.failed).incrementAndGet();
        p.call.replyTo().tell(outcome);
    }

    private static long callOf(String wireId) {
        int at = wireId.lastIndexOf('@');
        int dot = wireId.lastIndexOf('.');
        return Long.parseLong(wireId.substring(at + 1, dot));
    }

    private static ClusterInferResult withRequestId(ClusterInferResult r, String requestId) {
        return new ClusterInferResult(requestId, r.lastHiddenState(), r.poolerOutput(), r.embedding(), r.logits(),
                r.entityId(), r.node());
    }
}
