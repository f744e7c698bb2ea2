package dev.mpsactors.cluster;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A model as the local runtime's protocol sees it ({@link InferenceProtocol}), served by the model's sharded
 * entities anywhere in the cluster: each {@link InferenceProtocol.Infer} becomes one {@link ClusterCaller.Call}
 * (round robin over the replicas, retried on another replica when one stops or does not answer) and its
 * {@link ClusterCaller.Outcome} the one {@link InferenceProtocol.InferReply}. A text encoder on the node that
 * received a request sits in front of it, so tokenizing stays local and only token ids and the outputs asked
 * for cross the network.
 *
 * <p>Every Infer gets exactly one reply: its outcome; a failure when its deadline has already passed on
 * arrival (never sent); "cancelled by the caller" at once on a {@link InferenceProtocol.Cancel} (the call is
 * cancelled too, and the replica holding it drops it while it has not reached the device; an outcome that
 * still comes is dropped); a retryable failure for each request still open when the proxy stops. A request's
 * deadline and priority travel with it to the replica, whose model actor orders its queue by the priority and
 * expires it there at the deadline, as on a single node; a failure keeps its kind (an overload comes back as
 * {@link InferenceProtocol.Overloaded}). {@link #stats} counts the outcomes by the node whose device computed them.
 */
public final class ClusterModelProxy extends AbstractBehavior<InferenceProtocol.Command> {
    /** Stops the proxy; what it still holds is answered with a retryable failure. */
    public record Stop() implements InferenceProtocol.Internal {}

    private record Outcome(ClusterCaller.Outcome outcome) implements InferenceProtocol.Internal {}

    /** What the proxy saw, readable from any thread. */
    public static final class Stats {
        final AtomicLong requests = new AtomicLong();
        final AtomicLong succeeded = new AtomicLong();
        final AtomicLong failed = new AtomicLong();
        final ConcurrentMap<String, LongAdder> byNode = new ConcurrentHashMap<>();

        public long requests() {
            return requests.get();
        }

        public long succeeded() {
            return succeeded.get();
        }

        public long failed() {
            return failed.get();
        }

        /** Results by the address of the node whose device computed them. */
        public Map<String, Long> succeededByNode() {
            Map<String, Long> out = new java.util.TreeMap<>();
            byNode.forEach((node, n) -> out.put(node, n.sum()));
            return out;
        }
    }

    private static final String CANCELLED_BY_CALLER = "cancelled by the caller";

    private final String model;
    private final ActorRef<ClusterCaller.Command> caller;
    private final Stats stats;
    private final ActorRef<ClusterCaller.Outcome> outcomes;
    /** Requests sent to the cluster, by the proxy's own call id (callers' ids need not be unique). */
    private final Map<String, InferenceProtocol.Infer> open = new HashMap<>();
    private final Map<String, String> byCallerId = new HashMap<>();
    private long nextKey;

    /**
     * @param model  the model's name in {@code mps-actors.cluster.models} (its entities are "model#replica")
     * @param caller the node's {@link ClusterInference#caller()}
     */
    public static Behavior<InferenceProtocol.Command> create(String model, ActorRef<ClusterCaller.Command> caller,
                                                            Stats stats) {
        return Behaviors.setup(ctx -> new ClusterModelProxy(ctx, model, caller, stats));
    }

    private ClusterModelProxy(ActorContext<InferenceProtocol.Command> ctx, String model,
                              ActorRef<ClusterCaller.Command> caller, Stats stats) {
        super(ctx);
        this.model = model;
        this.caller = caller;
        this.stats = stats;
        this.outcomes = ctx.messageAdapter(ClusterCaller.Outcome.class, Outcome::new);
    }

    @Override
    public Receive<InferenceProtocol.Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(InferenceProtocol.Infer.class, this::onInfer)
                .onMessage(InferenceProtocol.Cancel.class, this::onCancel)
                .onMessage(InferenceProtocol.GetModelStats.class, this::onStats)
                .onMessage(Outcome.class, this::onOutcome)
                .onMessage(Stop.class, m -> Behaviors.stopped())
                .onSignal(PostStop.class, s -> {
                    for (InferenceProtocol.Infer m : open.values()) {
                        stats.failed.incrementAndGet();
                        m.replyTo().tell(new InferFailure(m.requestId(), FailureKind.UNAVAILABLE,
                                "the cluster proxy of model " + model + " stopped", true));
                    }
                    open.clear();
                    return this;
                })
                .build();
    }

    private Behavior<InferenceProtocol.Command> onInfer(InferenceProtocol.Infer m) {
        stats.requests.incrementAndGet();
        if (m.deadline() != null && !Instant.now().isBefore(m.deadline())) {
            stats.failed.incrementAndGet();
            m.replyTo().tell(new InferFailure(m.requestId(), FailureKind.DEADLINE_EXCEEDED,
                    "the deadline passed before the request was sent"));
            return this;
        }
        String key = m.requestId() + "@" + (nextKey++);
        open.put(key, m);
        byCallerId.put(m.requestId(), key);
        caller.tell(new ClusterCaller.Call(model, key, m.inputs(), m.outputs(), m.deadline(), m.priority(), outcomes));
        return this;
    }

    private Behavior<InferenceProtocol.Command> onCancel(InferenceProtocol.Cancel m) {
        String key = byCallerId.remove(m.requestId());
        InferenceProtocol.Infer request = key == null ? null : open.remove(key);
        if (request != null) {
            stats.failed.incrementAndGet();
            caller.tell(new ClusterCaller.Cancel(key));
            request.replyTo().tell(new InferFailure(request.requestId(), FailureKind.CANCELLED, CANCELLED_BY_CALLER));
        }
        return this;
    }

    private Behavior<InferenceProtocol.Command> onOutcome(Outcome o) {
        InferenceProtocol.Infer request = open.remove(o.outcome().requestId());
        if (request == null) {
            return this; // cancelled meanwhile: answered already
        }
        byCallerId.remove(request.requestId(), o.outcome().requestId());
        if (o.outcome() instanceof ClusterCaller.Succeeded ok) {
            ModelEntity.ClusterInferResult r = ok.result();
            stats.succeeded.incrementAndGet();
            stats.byNode.computeIfAbsent(r.node(), n -> new LongAdder()).increment();
            request.replyTo().tell(new InferResult(request.requestId(), r.lastHiddenState(), r.poolerOutput(),
                    r.embedding(), r.logits()));
        } else if (o.outcome() instanceof ClusterCaller.Failed f) {
            stats.failed.incrementAndGet();
            String reason = "model " + model + " in the cluster: " + f.reason() + " (after " + f.attempts()
                    + (f.attempts() == 1 ? " attempt)" : " attempts)");
            request.replyTo().tell(f.kind() == FailureKind.OVERLOADED
                    ? new InferenceProtocol.Overloaded(request.requestId(), reason)
                    : new InferFailure(request.requestId(), f.kind(), reason));
        }
        return this;
    }

    private Behavior<InferenceProtocol.Command> onStats(InferenceProtocol.GetModelStats m) {
        m.replyTo().tell(new InferenceProtocol.ModelStats(model, stats.requests(), stats.succeeded(), stats.failed(),
                0, 0, 0, 0, 0, 0));
        return this;
    }
}
