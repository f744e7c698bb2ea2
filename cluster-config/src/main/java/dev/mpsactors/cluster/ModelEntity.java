package dev.mpsactors.cluster;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.nio.file.Path;
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
 * <p>Every {@link ClusterInfer} gets exactly one {@link ClusterInferReply}. When the entity stops (handoff
 * to another node, node leaving) the requests it still holds are answered with a retryable failure; their
 * computations may still finish on the device, unobserved. The local model actor is kept loaded on the node
 * after the entity stops (the runtime has no unload); nothing else outlives the entity.
 */
public final class ModelEntity extends AbstractBehavior<ModelEntity.Command> {
    public static final EntityTypeKey<Command> TYPE_KEY = EntityTypeKey.create(Command.class, "mps-model");

    public sealed interface Command permits ClusterInfer, ModelReady, ModelFailed, Replied {}

    /**
     * A request from any node; answered with exactly one {@link ClusterInferReply} to {@code replyTo}.
     *
     * @param outputs what the reply carries (null: {@link InferenceProtocol.OutputSpec#HF_DEFAULT}); a pooled
     *                embedding or the head's logits keep the hidden states on the replica's node
     */
    public record ClusterInfer(String requestId, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds,
                               InferenceProtocol.OutputSpec outputs, ActorRef<ClusterInferReply> replyTo)
            implements Command, CborSerializable {
        public ClusterInfer {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputIds, "inputIds");
            Objects.requireNonNull(replyTo, "replyTo");
        }

        public ClusterInfer(String requestId, int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds,
                            ActorRef<ClusterInferReply> replyTo) {
            this(requestId, inputIds, attentionMask, tokenTypeIds, null, replyTo);
        }

        public static ClusterInfer of(String requestId, InferenceInputs inputs, ActorRef<ClusterInferReply> replyTo) {
            return of(requestId, inputs, null, replyTo);
        }

        public static ClusterInfer of(String requestId, InferenceInputs inputs, InferenceProtocol.OutputSpec outputs,
                                      ActorRef<ClusterInferReply> replyTo) {
            return new ClusterInfer(requestId, inputs.inputIds(), inputs.attentionMask(), inputs.tokenTypeIds(),
                    outputs, replyTo);
        }

        InferenceInputs inputs() {
            return new InferenceInputs(inputIds, attentionMask, tokenTypeIds);
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
     * @param retryable true where another replica may well succeed (the entity stopped or moved, its model
     *                  actor died, too many requests waited for the load); false where the request itself or
     *                  the model is at fault, which every replica would answer the same way
     */
    public record ClusterInferFailure(String requestId, String reason, boolean retryable, String entityId)
            implements ClusterInferReply {}

    private record ModelReady(ActorRef<InferenceProtocol.Command> model) implements Command {}

    private record ModelFailed(String reason) implements Command {}

    /** The local model actor's answer, under the entity's own request key. */
    private record Replied(InferReply reply) implements Command {}

    private final String entityId;
    private final String node;
    private final int pendingCapacity;
    private final ActorRef<InferReply> replies;
    // Requests that arrived before the model was up, in arrival order (owned by this actor).
    private final ArrayDeque<ClusterInfer> pending = new ArrayDeque<>();
    // Requests at the model actor, by the entity's own key: callers' ids need not be unique (a retry of one
    // id may come back to this replica while the first attempt still runs).
    private final Map<String, ClusterInfer> inFlight = new HashMap<>();
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

    public static String entityId(String model, int replica) {
        return model + "#" + replica;
    }

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
            // Runtime model names allow letters, digits, '_', '.', '-': '#' becomes "-r".
            String localName = entityId.replace("#", "-r");
            ctx.pipeToSelf(localModels.get(localName, folder), (ref, failure) -> ref != null ? new ModelReady(ref)
                    : new ModelFailed("cannot load model '" + modelName + "' on " + node + ": "
                    + (failure.getCause() != null ? failure.getCause().getMessage() : failure.getMessage())));
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(ClusterInfer.class, this::onInfer)
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
        if (model != null) {
            forward(m);
        } else if (loadFailure != null) {
            m.replyTo().tell(new ClusterInferFailure(m.requestId(), loadFailure, false, entityId));
        } else if (pending.size() >= pendingCapacity) {
            m.replyTo().tell(new ClusterInferFailure(m.requestId(), "replica " + entityId + " is still loading and "
                    + "holds " + pendingCapacity + " requests (pending-capacity)", true, entityId));
        } else {
            pending.add(m);
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
            ClusterInfer p = pending.poll();
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), loadFailure, false, entityId));
        }
        return this;
    }

    private void forward(ClusterInfer m) {
        String key = Long.toString(nextKey++);
        inFlight.put(key, m);
        model.tell(new InferenceProtocol.Infer(key, m.inputs(), replies, null, m.outputs()));
    }

    private Behavior<Command> onReplied(Replied m) {
        ClusterInfer request = inFlight.remove(m.reply().requestId());
        if (request == null) {
            return this;
        }
        if (m.reply() instanceof InferResult r) {
            request.replyTo().tell(new ClusterInferResult(request.requestId(), r.lastHiddenState(), r.poolerOutput(),
                    r.embedding(), r.logits(), entityId, node));
        } else if (m.reply() instanceof InferFailure f) {
            // Retryable where nothing of it ran and the failure was the replica's runtime, not the request.
            request.replyTo().tell(new ClusterInferFailure(request.requestId(), f.reason(), f.retryable(), entityId));
        } else if (m.reply() instanceof InferenceProtocol.Overloaded o) {
            // Nothing of it ran: another replica (or a later try) may serve it.
            request.replyTo().tell(new ClusterInferFailure(request.requestId(), "overloaded: " + o.reason(), true,
                    entityId));
        }
        return this;
    }

    /** The model actor (or its runtime) stopped under us: a new incarnation elsewhere may serve. */
    private Behavior<Command> onModelTerminated(Terminated t) {
        failAll("the model actor of replica " + entityId + " on " + node + " stopped", true);
        return Behaviors.stopped();
    }

    private void failAll(String reason, boolean retryable) {
        for (ClusterInfer p : pending) {
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), reason, retryable, entityId));
        }
        pending.clear();
        for (ClusterInfer p : inFlight.values()) {
            p.replyTo().tell(new ClusterInferFailure(p.requestId(), reason, retryable, entityId));
        }
        inFlight.clear();
    }
}
