package dev.mpsactors.actors;

import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol.Command;
import dev.mpsactors.protocol.StreamPoolProtocol.GetPoolLoad;
import dev.mpsactors.protocol.StreamPoolProtocol.Lease;
import dev.mpsactors.protocol.StreamPoolProtocol.Leased;
import dev.mpsactors.protocol.StreamPoolProtocol.PoolLoad;
import dev.mpsactors.protocol.StreamPoolProtocol.Release;
import dev.mpsactors.protocol.StreamPoolProtocol.StreamLease;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * The scheduler: leases streams to work, least loaded first (fewest active leases; ties rotate so idle
 * streams share the work). Releasing is a one-way message: the caller never waits, and the stream's
 * pending work is untouched (hazard 7 of docs/audit.md synchronised the stream inside release).
 */
public final class StreamPoolActor extends AbstractBehavior<Command> {
    private final List<StreamHandle> streams;
    private final int[] active;
    private final Map<Long, Integer> leaseToStream = new HashMap<>();
    private long nextLeaseId = 1;
    private int cursor;
    private long granted;
    private long released;

    public static Behavior<Command> create(List<StreamHandle> streams) {
        if (streams.isEmpty()) {
            throw new IllegalArgumentException("a stream pool needs at least one stream");
        }
        return Behaviors.setup(ctx -> new StreamPoolActor(ctx, streams));
    }

    private StreamPoolActor(ActorContext<Command> ctx, List<StreamHandle> streams) {
        super(ctx);
        this.streams = List.copyOf(streams);
        this.active = new int[streams.size()];
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Lease.class, this::onLease)
                .onMessage(Release.class, this::onRelease)
                .onMessage(GetPoolLoad.class, this::onGetLoad)
                .build();
    }

    private Behavior<Command> onLease(Lease m) {
        int n = streams.size();
        int best = cursor;
        for (int k = 1; k < n; k++) {
            int candidate = (cursor + k) % n;
            if (active[candidate] < active[best]) {
                best = candidate;
            }
        }
        cursor = (best + 1) % n;
        active[best]++;
        granted++;
        long id = nextLeaseId++;
        leaseToStream.put(id, best);
        m.replyTo().tell(new Leased(new StreamLease(id, streams.get(best))));
        return this;
    }

    private Behavior<Command> onRelease(Release m) {
        Integer stream = leaseToStream.remove(m.lease().id());
        if (stream == null) {
            getContext().getLog().debug("release of unknown or already released lease {}", m.lease().id());
            return this;
        }
        active[stream]--;
        released++;
        return this;
    }

    private Behavior<Command> onGetLoad(GetPoolLoad m) {
        List<Integer> load = new ArrayList<>(active.length);
        for (int a : active) {
            load.add(a);
        }
        m.replyTo().tell(new PoolLoad(load, granted, released));
        return this;
    }
}
