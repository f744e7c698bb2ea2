package dev.mpsactors.cluster;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.cluster.sharding.typed.ClusterShardingSettings;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.Entity;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityContext;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityTypeKey;

/**
 * One replica of one model, a sharded entity with id {@code "<model>#<replica>"}: it lives on one node and
 * serves requests from anywhere in the cluster with that node's device. On start it has the node's
 * runtime load the model's folder (or reuses the copy a former incarnation loaded there, see
 * {@link LocalModels}); requests that arrive meanwhile wait, up to pending-capacity, and are answered once
 * the model is up, or with a failure if it could not load.
 *
 * <p>A request carries its caller's deadline (as the time left when it was sent) and priority: the replica's model
 * actor orders its queue by the priority and answers a request still queued at the deadline without running it,
 * as on a single node. A {@link ClusterCancel} drops a request that has not reached the device.
 *
 * <p>Every {@link ClusterInfer} gets exactly one {@link ClusterInferReply}. When the entity stops (handoff
 * to another node, node leaving) the requests it still holds are answered with a retryable failure; their
 * computations may still finish on the device, unobserved. The local model actor is kept loaded on the node
 * after the entity stops (the runtime has no unload); nothing else outlives the entity.
 */
public final class ModelEntity extends AbstractBehavior<ModelEntity.Command> {
    public static final EntityTypeKey<Command> TYPE_KEY = EntityTypeKey.create(Command.class, "mps-model");

    public sealed interface Command permits ClusterInfer, ClusterCancel, ModelReady, ModelFailed, Replied {}

    /**
     * A request from any node; answered with exactly one {@link ClusterInferReply} to {@code replyTo}.
     *
     * @param outputs       what the reply carries (null: {@link InferenceProtocol.OutputSpec#HF_DEFAULT}); a pooled
     *                      embedding or the head's logits keep the hidden states on the replica's node
     * @param timeoutMillis the time left to the caller's deadline when the request was sent (null: no deadline).
     *                      The replica's deadline is its receipt plus this, so the clocks of different hosts need
     *                      not agree; the time in transit is not counted (it expires that much later, never
     *                      earlier)
     * @param priority      orders the replica's queue as {@link InferenceProtocol.Infer#priority()} does
     */
    public record ClusterInfer(String requestId, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds,
                               InferenceProtocol.OutputSpec outputs, Long timeoutMillis, int priority,
                               ActorRef<ClusterInferReply> replyTo)
            implements Command, CborSerializable {
        public ClusterInfer {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputIds, "inputIds");
            Objects.requireNonNull(replyTo, "replyTo");
        }

        public ClusterInfer(String requestId, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds,
                            ActorRef<ClusterInferReply> replyTo) {
            this(requestId, inputIds, attentionMask, tokenTypeIds, null, null, 0, replyTo);
        }

        public static ClusterInfer of(String requestId, InferenceInputs inputs, ActorRef<ClusterInferReply> replyTo) {
            return of(requestId, inputs, null, replyTo);
        }

        public static ClusterInfer of(String requestId, InferenceInputs inputs, InferenceProtocol.OutputSpec outputs,
                                      ActorRef<ClusterInferReply> replyTo) {
            return of(requestId, inputs, outputs, null, 0, replyTo);
        }

        public static ClusterInfer of(String requestId, InferenceInputs inputs, InferenceProtocol.OutputSpec outputs,
                                      Long timeoutMillis, int priority, ActorRef<ClusterInferReply> replyTo) {
            return new ClusterInfer(requestId, inputs.inputIds(), inputs.attentionMask(), inputs.tokenTypeIds(),
                    outputs, timeoutMillis, priority, replyTo);
        }

        InferenceInputs inputs() {
            return new InferenceInputs(inputIds, attentionMask, tokenTypeIds);
        }
    }

    /**
     * {@code replyTo} no longer wants the reply to its request {@code requestId}: one still waiting for the model
     * to load is answered at once, one queued at the model is dropped there (answered {@code CANCELLED}, never
     * run); one already in a device batch completes. Unknown requests are ignored.
     */
    public record ClusterCancel(String requestId, ActorRef<ClusterInferReply> replyTo)
            implements Command, CborSerializable {
        public ClusterCancel {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(replyTo, "replyTo");
        }
    }

    public sealed interface ClusterInferReply extends CborSerializable
            permits ClusterInferResult, ClusterInferFailure {
        String requestId();
    }

    /**
     * Each output is null unless the request asked for it ({@link ClusterInfer#outputs()}).
     *
     * @param lastHiddenState [batch][seq][hidden]
     * @param poolerOutput    [batch][hidden]
     * @param embedding       [batch][hidden], the pooled sentence embedding
     * @param logits          [batch][labels], the sequence-classification head's logits
     * @param entityId        the replica that computed it
     * @param node            address of the node whose device computed it
     */
    public record ClusterInferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput,
                                     float[][] embedding, float[][] logits, String entityId, String node)
            implements ClusterInferReply {
        public ClusterInferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput,
                                  String entityId, String node) {
            this(requestId, lastHiddenState, poolerOutput, null, null, entityId, node);
        }
    }

    /**
     * @param kind      what kind of failure it is, as the replica's model actor said ({@code OVERLOADED} for its
     *                  overload refusal), so a caller answers it as it would a local one (an HTTP front: 429 for
     *                  overload, 504 for a deadline passed in the queue)
     * @param retryable true where another replica may well succeed (the entity stopped or moved, its model
     *                  actor died, too many requests waited for the load, the replica's queue was full); false
     *                  where the request itself or the model is at fault, which every replica would answer the
     *                  same way
     */
    public record ClusterInferFailure(String requestId, FailureKind kind, String reason, boolean retryable,
                                      String entityId) implements ClusterInferReply {
        public ClusterInferFailure {
            Objects.requireNonNull(kind, "kind");
        }
    }

    private record ModelReady(ActorRef<InferenceProtocol.Command> model) implements Command {}

    private record ModelFailed(String reason) implements Command {}

    /** The local model actor's answer, under the entity's own request key. */
    private record Replied(InferReply reply) implements Command {}

    private final String entityId;
    private final String node;
    private final int pendingCapacity;
    private final ActorRef<InferReply> replies;
    // Requests that arrived before the model was up, in arrival order (owned by this actor).
    private final ArrayDeque<Received> pending = new ArrayDeque<>();
    // Requests at the model actor, by the entity's own key: callers' ids need not be unique (a retry of one
    // id may come back to this replica while the first attempt still runs).
    private final Map<String, ClusterInfer> inFlight = new HashMap<>();
    // The entity's key of each request at the model, by its caller and the caller's id (the latest of a repeat).
    private final Map<Caller, String> keys = new HashMap<>();
    private long nextKey;
    private ActorRef<InferenceProtocol.Command> model;
    private String loadFailure;

    static Behavior<Command> create(String entityId, ClusterSettings settings, LocalModels localModels) {
        return Behaviors.setup(ctx -> new ModelEntity(ctx, entityId, settings, localModels));
    }

    /**
     * Starts the model entities' sharding on {@code system}: on a node with the sharding role (mps-node) it
     * hosts entities made by {@code factory}; on any other (a client) it is a proxy that only routes to them.
     */
    static void initSharding(ActorSystem<?> system, Function<EntityContext<Command>, Behavior<Command>> factory) {
        ClusterSharding.get(system).init(Entity.of(TYPE_KEY, factory::apply)
                .withSettings(ClusterShardingSettings.create(system).withNoPassivationStrategy()));
    }

    /** The model name of an entity id {@code "<model>#<replica>"}. */
    static String modelOf(String entityId) {
        int hash = entityId.lastIndexOf('#');
        return hash < 0 ? entityId : entityId.substring(0, hash);
    }

    /** The name an entity's model has on its node's runtime: letters, digits, '_', '.', '-' ('#' becomes "-r"). */
    static String localName(String entityId) {
        return entityId.replace("#", "-r");
    }

    public static String entityId(String model, int replica) {
        return model + "#" + replica;
    }

    /** A request with its deadline on this node's clock (null: none), fixed when it arrived. */
    private record Received(ClusterInfer request, Instant deadline) {}

    private record Caller(ActorRef<ClusterInferReply> replyTo, String requestId) {}

    private ModelEntity(ActorContext<Command> ctx, String entityId, ClusterSettings settings, LocalModels localModels) {
        super(ctx);
        this.entityId = entityId;
        this.node = ctx.getSystem().address().toString();
        this.pendingCapacity = settings.pendingCapacity();
        this.replies = ctx.messageAdapter(InferReply.class, Replied::new);
        String modelName = modelOf(entityId);
        Path folder = settings.models().get(modelName);
        if (folder == null) {
            loadFailure = "model '" + modelName + "' is not configured (mps-actors.cluster.models) on " + node;
        } else {
            ctx.pipeToSelf(localModels.get(localName(entityId), folder), (ref, failure) -> ref != null ? new ModelReady(ref)
                    : new ModelFailed("cannot load model '" + modelName + "' on " + node + ": "
                    + (failure.getCause() != null ? failure.getCause().getMessage() : failure.getMessage())));
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(ClusterInfer.class, this::onInfer)
                .onMessage(ClusterCancel.class, this::onCancel)
                .onMessage(ModelReady.class, this::onModelReady)
                .onMessage(ModelFailed.class, this::onModelFailed)
                .onMessage(Replied.class, this::onReplied)
                .onSignal(Terminated.class, this::onModelTerminated)
                .onSignal(PostStop.class, s -> {
                    failAll("replica " + entityId + " stopped on " + node + " (moved or node leaving)", true);
                    return this;
                })
                .build();
    }

    private Behavior<Command> onInfer(ClusterInfer m) {
        Received r = new Received(m, m.timeoutMillis() == null ? null : Instant.now().plusMillis(m.timeoutMillis()));
        if (model != null) {
            forward(r);
        } else if (loadFailure != null) {
            m.replyTo().tell(new ClusterInferFailure(m.requestId(), FailureKind.UNAVAILABLE, loadFailure, false,
                    entityId));
        } else if (pending.size() >= pendingCapacity) {
            m.replyTo().tell(new ClusterInferFailure(m.requestId(), FailureKind.UNAVAILABLE, "replica " + entityId
                    + " is still loading and holds " + pendingCapacity + " requests (pending-capacity)", true,
                    entityId));
        } else {
            pending.add(r);
        }
        return this;
    }

    private Behavior<Command> onCancel(ClusterCancel c) {
        String key = keys.get(new Caller(c.replyTo(), c.requestId()));
        if (key != null) {
            model.tell(new InferenceProtocol.Cancel(key)); // queued there: answered CANCELLED; running: completes
            return this;
        }
        for (java.util.Iterator<Received> it = pending.iterator(); it.hasNext(); ) {
            ClusterInfer p = it.next().request();
            if (p.requestId().equals(c.requestId()) && p.replyTo().equals(c.replyTo())) {
                it.remove();
                p.replyTo().tell(new ClusterInferFailure(p.requestId(), FailureKind.CANCELLED, "cancelled by the "
                        + "caller while replica " + entityId + " was loading; it was not run", false, entityId));
                break;
            }
        }
        return this;
    }

    private Behavior<Command> onModelReady(ModelReady m) {
        model = m.model();
        getContext().watch(model);
        getContext().getLog().info("replica {} serving on {}", entityId, node);
        while (!pending.isEmpty()) {
            forward(pending.poll());
        }
        return this;
    }

    private Behavior<Command> onModelFailed(ModelFailed m) {
        loadFailure = m.reason();
        getContext().getLog().warn("replica {}: {}", entityId, m.reason());
        while (!pending.isEmpty()) {
            ClusterInfer p = pending.poll().request();
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), FailureKind.UNAVAILABLE, loadFailure, false,
                    entityId));
        }
        return this;
    }

    private void forward(Received r) {
        ClusterInfer m = r.request();
        String key = Long.toString(nextKey++);
        inFlight.put(key, m);
        keys.put(new Caller(m.replyTo(), m.requestId()), key);
        model.tell(new InferenceProtocol.Infer(key, m.inputs(), replies, r.deadline(), m.outputs(), m.priority()));
    }

    private Behavior<Command> onReplied(Replied m) {
        String key = m.reply().requestId();
        ClusterInfer request = inFlight.remove(key);
        if (request == null) {
            return this;
        }
        keys.remove(new Caller(request.replyTo(), request.requestId()), key);
        if (m.reply() instanceof InferResult r) {
            request.replyTo().tell(new ClusterInferResult(request.requestId(), r.lastHiddenState(), r.poolerOutput(),
                    r.embedding(), r.logits(), entityId, node));
        } else if (m.reply() instanceof InferFailure f) {
            // Retryable where nothing of it ran and the failure was the replica's runtime, not the request.
            request.replyTo().tell(new ClusterInferFailure(request.requestId(), f.kind(), f.reason(), f.retryable(),
                    entityId));
        } else if (m.reply() instanceof InferenceProtocol.Overloaded o) {
            // Nothing of it ran: another replica (or a later try) may serve it.
            request.replyTo().tell(new ClusterInferFailure(request.requestId(), FailureKind.OVERLOADED,
                    "overloaded: " + o.reason(), true, entityId));
        }
        return this;
    }

    /** The model actor (or its runtime) stopped under us: a new incarnation elsewhere may serve. */
    private Behavior<Command> onModelTerminated(Terminated t) {
        failAll("the model actor of replica " + entityId + " on " + node + " stopped", true);
        return Behaviors.stopped();
    }

    private void failAll(String reason, boolean retryable) {
        for (Received r : pending) {
            ClusterInfer p = r.request();
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), FailureKind.UNAVAILABLE, reason, retryable,
                    entityId));
        }
        pending.clear();
        for (ClusterInfer p : inFlight.values()) {
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), FailureKind.UNAVAILABLE, reason, retryable,
                    entityId));
        }
        inFlight.clear();
        keys.clear();
    }
}
