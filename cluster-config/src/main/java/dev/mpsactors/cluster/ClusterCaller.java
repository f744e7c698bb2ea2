package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferFailure;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.time.Duration;
import java.time.Instant;
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
 *
 * <p>A call may carry a deadline and a priority: each attempt takes the time left to the replica (which
 * expires the request in its queue, as a single node does) and the priority (which orders that queue); no
 * attempt is sent once the deadline has passed. A replica's overload refusal is tried on the next replica at
 * once while some replica has not been tried in this call, then answered as an overload. A {@link Cancel} ends
 * a call at once and asks the replica of its attempt to drop it; an attempt that timed out is asked to be
 * dropped the same way, so a slow replica does not compute what another replica is asked for.
 */
public final class ClusterCaller extends AbstractBehavior<ClusterCaller.Command> {
    /** Attempts of finished calls remembered for duplicate detection (oldest forgotten first). */
    static final int REMEMBERED_ATTEMPTS = 200_000;

    public sealed interface Command permits Call, Cancel, Replied, AttemptTimedOut, RetryNow {}

    /**
     * Infer {@code inputs} on model {@code model}; answered with exactly one {@link Outcome}.
     *
     * @param outputs  what the result carries (null: last hidden state and pooler output)
     * @param deadline when the caller stops waiting (null: never): the replica drops the request if it is still
     *                 queued then, and no attempt is sent after it
     * @param priority orders the replica's queue (higher first; 0 by default)
     */
    public record Call(String model, String requestId, InferenceInputs inputs,
                       dev.mpsactors.protocol.InferenceProtocol.OutputSpec outputs, Instant deadline, int priority,
                       ActorRef<Outcome> replyTo) implements Command {
        public Call {
            Objects.requireNonNull(model, "model");
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputs, "inputs");
            Objects.requireNonNull(replyTo, "replyTo");
        }

        public Call(String model, String requestId, InferenceInputs inputs,
                    dev.mpsactors.protocol.InferenceProtocol.OutputSpec outputs, ActorRef<Outcome> replyTo) {
            this(model, requestId, inputs, outputs, null, 0, replyTo);
        }

        public Call(String model, String requestId, InferenceInputs inputs, ActorRef<Outcome> replyTo) {
            this(model, requestId, inputs, null, replyTo);
        }
    }

    /**
     * The caller no longer wants the outcome of its call {@code requestId} (the latest call with that id): the
     * call is answered at once with a {@link Failed} of kind {@code CANCELLED}, and the replica of its attempt is
     * asked to drop the request (it does while the request has not reached the device). Unknown ids are ignored.
     */
    public record Cancel(String requestId) implements Command {
        public Cancel {
            Objects.requireNonNull(requestId, "requestId");
        }
    }

    public sealed interface Outcome permits Succeeded, Failed {
        String requestId();

        /** Attempts made, 1 when the first replica answered. */
        int attempts();
    }

    public record Succeeded(String requestId, ClusterInferResult result, int attempts) implements Outcome {}

    /**
     * @param kind   what kind of failure: the last replica's ({@code OVERLOADED} when its queue was full),
     *               {@code DEADLINE_EXCEEDED} when the call's deadline passed before an attempt could be sent,
     *               {@code CANCELLED} after a {@link Cancel}, {@code UNAVAILABLE} when no replica answered in time
     * @param reason the last attempt's cause: the replica's failure, or which replica did not answer in time
     */
    public record Failed(String requestId, FailureKind kind, String reason, int attempts) implements Outcome {
        public Failed {
            Objects.requireNonNull(kind, "kind");
        }
    }

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
     * @param lateReplies      first replies to attempts that had already timed out or been cancelled (dropped)
     * @param duplicateReplies second or later replies to one attempt: a replica answered twice
     * @param unknownReplies   replies to no attempt this caller remembers
     */
    public record Stats(long calls, long succeeded, long failed, long retries, long replies, long lateReplies,
                        long duplicateReplies, long unknownReplies) {
        public long inFlight() {
            return calls - succeeded - failed;
        }
    }

    /** TIMED_OUT: no longer waited for (it timed out, or its call was cancelled); a reply to it is late. */
    private enum AttemptState { OUTSTANDING, TIMED_OUT, ANSWERED }

    private static final class Pending {
        final Call call;
        final long firstReplica;
        int attempt;
        String wireId;
        String entityId;

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
    // The call of each caller's id in progress (the latest of a repeated id), for Cancel.
    private final Map<String, Long> callsById = new HashMap<>();
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
        void send(String entityId, ModelEntity.Command message);
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
                .onMessage(Cancel.class, this::onCancel)
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
        callsById.put(c.requestId(), id);
        send(id, p);
        return this;
    }

    private Behavior<Command> onCancel(Cancel c) {
        Long id = callsById.get(c.requestId());
        Pending p = id == null ? null : calls.get(id);
        if (p == null) {
            return this;
        }
        timers.cancel("retry-" + id);
        if (p.wireId != null && attempts.get(p.wireId) == AttemptState.OUTSTANDING) {
            timers.cancel(p.wireId);
            attempts.put(p.wireId, AttemptState.TIMED_OUT);
            route.send(p.entityId, new ModelEntity.ClusterCancel(p.wireId, replies));
        }
        finish(id, p, new Failed(p.call.requestId(), FailureKind.CANCELLED, "cancelled by the caller", p.attempt));
        return this;
    }

    private void send(long id, Pending p) {
        Long timeoutMillis = null;
        if (p.call.deadline() != null) {
            timeoutMillis = Duration.between(Instant.now(), p.call.deadline()).toMillis();
            if (timeoutMillis <= 0) {
                finish(id, p, new Failed(p.call.requestId(), FailureKind.DEADLINE_EXCEEDED, "the deadline "
                        + p.call.deadline() + " passed before attempt " + (p.attempt + 1) + " was sent", p.attempt));
                return;
            }
        }
        int replica = (int) Math.floorMod(p.firstReplica + p.attempt, (long) settings.replicas());
        p.attempt++;
        p.wireId = p.call.requestId() + "@" + id + "." + p.attempt;
        p.entityId = ModelEntity.entityId(p.call.model(), replica);
        attempts.put(p.wireId, AttemptState.OUTSTANDING);
        timers.startSingleTimer(p.wireId, new AttemptTimedOut(p.wireId), settings.attemptTimeout());
        route.send(p.entityId, ClusterInfer.of(p.wireId, p.call.inputs(), p.call.outputs(), timeoutMillis,
                p.call.priority(), replies));
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
            if (f.kind() == FailureKind.OVERLOADED) {
                // another replica may have room: try the next at once, while one has not been tried
                if (p.attempt < Math.min(settings.replicas(), settings.attempts())) {
                    counters.retries.incrementAndGet();
                    send(id, p);
                } else {
                    finish(id, p, new Failed(p.call.requestId(), FailureKind.OVERLOADED, f.reason(), p.attempt));
                }
            } else if (f.retryable()) {
                retryOrFail(id, p, f.kind(), f.reason());
            } else {
                finish(id, p, new Failed(p.call.requestId(), f.kind(), f.reason(), p.attempt));
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
        // a slow replica (not a lost one) drops the request if it is still queued there
        route.send(p.entityId, new ModelEntity.ClusterCancel(m.wireId(), replies));
        retryOrFail(id, p, FailureKind.UNAVAILABLE, "no reply from replica " + p.entityId + " within "
                + settings.attemptTimeout());
        return this;
    }

    private void retryOrFail(long id, Pending p, FailureKind kind, String reason) {
        if (p.attempt >= settings.attempts()) {
            finish(id, p, new Failed(p.call.requestId(), kind, reason, p.attempt));
        } else {
            counters.retries.incrementAndGet();
            timers.startSingleTimer("retry-" + id, new RetryNow(id), settings.retryBackoff());
        }
    }

    private void finish(long id, Pending p, Outcome outcome) {
        calls.remove(id);
        callsById.remove(p.call.requestId(), id);
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
