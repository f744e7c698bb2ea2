package dev.mpsactors.actors;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Command;
import dev.mpsactors.protocol.InferenceProtocol.GetModelStats;
import dev.mpsactors.protocol.InferenceProtocol.Infer;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.ModelStats;
import dev.mpsactors.protocol.InferenceProtocol.Overloaded;
import dev.mpsactors.protocol.ReplicaProtocol;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One model served from several devices: the only owner of the map of requests in flight, it speaks the model
 * protocol, so a caller cannot tell it from a single model actor. Each {@link Infer} goes to the replica with the
 * fewest tokens outstanding (then the fewest requests; ties rotate), not round-robin, so a slow or busy device
 * gets less. The reply goes exactly once to the request's own {@code replyTo}:
 * <ul>
 *   <li>a replica's retryable failure (its runtime stopping before the request reached the device) or its
 *       {@link Overloaded} is tried on a replica that has not had the request yet, while one is up;</li>
 *   <li>when a replica's actor terminates (its device's runtime stopped or crashed), every request it still
 *       held is routed again: whatever that replica may still send for it is recognised as stale and dropped;</li>
 *   <li>a request no replica can take is answered with a retryable {@link InferFailure}.</li>
 * </ul>
 * Replicas come and go by {@link ReplicaProtocol.ReplicaUp} and {@link ReplicaProtocol.ReplicaDown} from the
 * host runtime, which restarts stopped devices and loads the model there again.
 */
public final class ModelRouter extends AbstractBehavior<Command> {
    private final String name;
    private final Duration askTimeout;
    /** Replicas by device ordinal, ordered so ties rotate over a stable order. */
    private final TreeMap<Integer, Replica> replicas = new TreeMap<>();
    /** The values of {@code replicas} in their order, for routing without an iterator per request. */
    private Replica[] ordered = new Replica[0];
    /** Requests handed to a replica, by the id the replica knows them under. */
    private final Map<String, Pending> pending = new HashMap<>();
    private final ActorRef<InferReply> replies;
    private long sequence;
    private int cursor;
    private long requests;
    private long succeeded;
    private long failed;
    private long overloaded;
    private long retried;
    private long stale;

    /** One request of a caller, across the replicas it is tried on. */
    private static final class Pending {
        final Infer request;
        final long tokens;
        /** The first replica tried; the others, only once a request is retried (most never are). */
        int firstTried = -1;
        Set<Integer> alsoTried;
        Replica at;

        Pending(Infer request, long tokens) {
            this.request = request;
            this.tokens = tokens;
        }

        boolean tried(int ordinal) {
            return ordinal == firstTried || (alsoTried != null && alsoTried.contains(ordinal));
        }

        void markTried(int ordinal) {
            if (firstTried < 0) {
                firstTried = ordinal;
            } else {
                if (alsoTried == null) {
                    alsoTried = new HashSet<>();
                }
                alsoTried.add(ordinal);
            }
        }
    }

    private static final class Replica {
        final int ordinal;
        ActorRef<Command> ref; // null while its device is down
        long outstanding;
        long outstandingTokens;
        long routed;
        long succeeded;
        long failed;
        long retriedAway;
        int incarnations;

        Replica(int ordinal) {
            this.ordinal = ordinal;
        }
    }

    private record Reply(InferReply reply) implements InferenceProtocol.Internal {}

    private record ReplicaTerminated(int ordinal, ActorRef<Command> ref) implements InferenceProtocol.Internal {}

    private record StatsGathered(ActorRef<ModelStats> replyTo, List<ModelStats> stats)
            implements InferenceProtocol.Internal {}

    /**
     * @param replicas the replica on each device it was loaded on, by ordinal; {@code assigned} may name more
     *                 devices (down at load time), which join when a {@link ReplicaProtocol.ReplicaUp} arrives
     */
    public static Behavior<Command> create(String name, Map<Integer, ActorRef<Command>> replicas,
                                           List<Integer> assigned, Duration askTimeout) {
        return Behaviors.setup(ctx -> new ModelRouter(ctx, name, replicas, assigned, askTimeout));
    }

    private ModelRouter(ActorContext<Command> ctx, String name, Map<Integer, ActorRef<Command>> initial,
                        List<Integer> assigned, Duration askTimeout) {
        super(ctx);
        this.name = name;
        this.askTimeout = askTimeout;
        this.replies = ctx.messageAdapter(InferReply.class, Reply::new);
        for (int ordinal : assigned) {
            replicas.put(ordinal, new Replica(ordinal));
        }
        ordered = replicas.values().toArray(Replica[]::new);
        initial.forEach(this::up);
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Infer.class, this::onInfer)
                .onMessage(InferenceProtocol.Cancel.class, this::onCancel)
                .onMessage(Reply.class, this::onReply)
                .onMessage(ReplicaProtocol.ReplicaUp.class, m -> {
                    up(m.ordinal(), m.replica());
                    return this;
                })
                .onMessage(ReplicaProtocol.ReplicaDown.class, m -> {
                    Replica r = replicas.get(m.ordinal());
                    if (r != null && r.ref != null) {
                        down(r);
                    }
                    return this;
                })
                .onMessage(ReplicaTerminated.class, m -> {
                    Replica r = replicas.get(m.ordinal());
                    if (r != null && m.ref().equals(r.ref)) {
                        down(r);
                    }
                    return this;
                })
                .onMessage(GetModelStats.class, this::onStats)
                .onMessage(StatsGathered.class, this::onStatsGathered)
                .onMessage(ReplicaProtocol.GetReplicaStats.class, m -> {
                    m.replyTo().tell(replicaStats());
                    return this;
                })
                .onSignal(PostStop.class, s -> {
                    for (Pending p : pending.values()) {
                        answer(p, new InferFailure(p.request.requestId(), FailureKind.UNAVAILABLE, "model " + name + " stopped", true));
                    }
                    pending.clear();
                    return this;
                })
                .build();
    }

    private void up(int ordinal, ActorRef<Command> ref) {
        Replica r = replicas.computeIfAbsent(ordinal, Replica::new);
        ordered = replicas.values().toArray(Replica[]::new);
        if (ref.equals(r.ref)) {
            return;
        }
        if (r.ref != null) {
            down(r);
        }
        r.ref = ref;
        r.incarnations++;
        getContext().watchWith(ref, new ReplicaTerminated(ordinal, ref));
    }

    /** The replica is gone: whatever it held is routed again (its late replies will be stale). */
    private void down(Replica r) {
        getContext().unwatch(r.ref);
        r.ref = null;
        List<Map.Entry<String, Pending>> held = new ArrayList<>();
        for (Map.Entry<String, Pending> e : pending.entrySet()) {
            if (e.getValue().at == r) {
                held.add(e);
            }
        }
        for (Map.Entry<String, Pending> e : held) {
            pending.remove(e.getKey());
            Pending p = e.getValue();
            leave(p);
            r.retriedAway++;
            retried++;
            route(p, "its replica on device " + r.ordinal + " stopped");
        }
    }

    private Behavior<Command> onInfer(Infer m) {
        requests++;
        long tokens = 0;
        for (int[] row : m.inputs().inputIds()) {
            tokens += row == null ? 0 : row.length;
        }
        route(new Pending(m, Math.max(1, tokens)), null);
        return this;
    }

    /** The caller went away: the replica holding the request is asked to drop it if it is still queued. */
    private Behavior<Command> onCancel(InferenceProtocol.Cancel m) {
        pending.forEach((id, p) -> {
            if (p.request.requestId().equals(m.requestId()) && p.at != null && p.at.ref != null) {
                p.at.ref.tell(new InferenceProtocol.Cancel(id));
            }
        });
        return this;
    }

    /** Hands {@code p} to the least-loaded replica it was not tried on, or answers it when there is none. */
    private void route(Pending p, String why) {
        Replica best = pick(p);
        if (best == null) {
            String reason = "model " + name + ": no replica can take the request"
                    + (why == null ? "" : " (" + why + ")") + "; " + upCount() + " of " + replicas.size()
                    + " replicas up";
            answer(p, new InferFailure(p.request.requestId(), FailureKind.UNAVAILABLE, reason, true));
            return;
        }
        String id = (sequence++) + "/" + p.request.requestId();
        p.at = best;
        p.markTried(best.ordinal);
        best.outstanding++;
        best.outstandingTokens += p.tokens;
        best.routed++;
        pending.put(id, p);
        Infer r = p.request;
        best.ref.tell(new Infer(id, r.inputs(), replies, r.deadline(), r.outputs(), r.priority()));
    }

    /**
     * The up replica with the least outstanding work that {@code p} was not tried on; ties rotate. Runs once per
     * request, so it allocates nothing.
     */
    private Replica pick(Pending p) {
        int n = ordered.length;
        int start = n == 1 ? 0 : Math.floorMod(cursor++, n);
        Replica best = null;
        for (int i = 0; i < n; i++) {
            Replica r = ordered[(start + i) % n];
            if (r.ref == null || p.tried(r.ordinal)) {
                continue;
            }
            if (best == null || r.outstandingTokens < best.outstandingTokens
                    || (r.outstandingTokens == best.outstandingTokens && r.outstanding < best.outstanding)) {
                best = r;
            }
        }
        return best;
    }

    private Behavior<Command> onReply(Reply m) {
        Pending p = pending.remove(m.reply().requestId());
        if (p == null) {
            stale++; // from a replica the request was already taken away from
            return this;
        }
        Replica at = p.at;
        leave(p);
        String id = p.request.requestId();
        if (m.reply() instanceof InferResult r) {
            at.succeeded++;
            succeeded++;
            p.request.replyTo().tell(new InferResult(id, r.lastHiddenState(), r.poolerOutput(), r.embedding(),
                    r.logits()));
        } else if (m.reply() instanceof InferFailure f) {
            if (f.retryable() && pick(p) != null) {
                at.retriedAway++;
                retried++;
                route(p, f.reason());
            } else {
                at.failed++;
                answer(p, new InferFailure(id, f.kind(), f.reason(), f.retryable()));
            }
        } else if (m.reply() instanceof Overloaded o) {
            if (pick(p) != null) {
                at.retriedAway++;
                retried++;
                route(p, o.reason());
            } else {
                overloaded++;
                p.request.replyTo().tell(new Overloaded(id, o.reason()));
            }
        }
        return this;
    }

    private void leave(Pending p) {
        p.at.outstanding--;
        p.at.outstandingTokens -= p.tokens;
        p.at = null;
    }

    private void answer(Pending p, InferFailure failure) {
        failed++;
        p.request.replyTo().tell(failure);
    }

    private int upCount() {
        int n = 0;
        for (Replica r : replicas.values()) {
            if (r.ref != null) {
                n++;
            }
        }
        return n;
    }

    /**
     * Requests, successes, failures and refusals as the callers saw them (retries inside counted once); batches,
     * sequences, the largest batch, expiries and short batches started while busy summed over the replicas up now.
     */
    private Behavior<Command> onStats(GetModelStats m) {
        List<CompletableFuture<ModelStats>> asks = new ArrayList<>();
        for (Replica r : replicas.values()) {
            if (r.ref != null) {
                asks.add(AskPattern.<Command, ModelStats>ask(r.ref, GetModelStats::new, askTimeout,
                        getContext().getSystem().scheduler()).toCompletableFuture()
                        .exceptionally(e -> new ModelStats(name, 0, 0, 0, 0, 0, 0, 0, 0, 0)));
            }
        }
        getContext().pipeToSelf(CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new)),
                (v, e) -> new StatsGathered(m.replyTo(), asks.stream().map(CompletableFuture::join).toList()));
        return this;
    }

    private Behavior<Command> onStatsGathered(StatsGathered m) {
        long batches = 0, sequences = 0, expired = 0, partialWhileBusy = 0;
        int largest = 0;
        for (ModelStats s : m.stats()) {
            batches += s.batches();
            sequences += s.sequences();
            expired += s.expired();
            partialWhileBusy += s.partialWhileBusy();
            largest = Math.max(largest, s.largestBatch());
        }
        m.replyTo().tell(new ModelStats(name, requests, succeeded, failed, batches, sequences, largest, overloaded,
                expired, partialWhileBusy));
        return this;
    }

    private ReplicaProtocol.ReplicaStats replicaStats() {
        List<ReplicaProtocol.ReplicaState> states = new ArrayList<>();
        for (Replica r : replicas.values()) {
            states.add(new ReplicaProtocol.ReplicaState(r.ordinal, r.ref != null, r.routed, r.outstanding,
                    r.outstandingTokens, r.succeeded, r.failed, r.retriedAway, r.incarnations));
        }
        return new ReplicaProtocol.ReplicaStats(name, states, pending.size(), retried, stale);
    }
}
