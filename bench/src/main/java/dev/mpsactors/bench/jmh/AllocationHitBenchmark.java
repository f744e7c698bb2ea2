package dev.mpsactors.bench.jmh;

import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.AllocatorProtocol.AllocationReply;
import dev.mpsactors.protocol.AllocatorProtocol.Allocated;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * An allocation served from a cache (no device allocation): Allocate + Free of one size class.
 * <ul>
 *   <li>{@code askAllocateFree}: ask the AllocatorActor {@code Allocate(4 KiB)}, then tell {@code Free};
 *       the Free is queued before the next Allocate, so every allocation after the first is a cache hit;</li>
 *   <li>{@code askAllocateOnStreamFree}: ask a StreamActor {@code AllocateOnStream}, then tell
 *       {@code FreeOnStream}: served by the stream's arena, the allocator is not involved;</li>
 *   <li>{@code actorAllocateFree}: an actor doing Allocate + Free 1000 times in a row (the cost without
 *       the ask machinery).</li>
 * </ul>
 * Teardown checks that the allocator made exactly one device allocation in the trial.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@State(Scope.Benchmark)
public class AllocationHitBenchmark {
    static final int BATCH = 1000;
    static final long BYTES = 4096;

    private MpsRuntime rt;
    private ActorSystem<?> system;
    private ActorRef<AllocatorProtocol.Command> allocator;
    private StreamHandle stream;
    private ActorRef<Object> asker;

    @Setup(Level.Trial)
    public void setUp() {
        rt = BenchRuntime.start();
        try {
            system = rt.system();
            allocator = rt.refs().allocator();
            stream = rt.streams().get(0);
            asker = system.systemActorOf(SequentialAsker.create(), "jmh-asker", Props.empty());
        } catch (Exception e) {
            throw BenchRuntime.abandon(rt, e);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        AllocatorStats stats = BenchRuntime.await(rt.memory().stats());
        // One device allocation per trial (each benchmark runs in its own fork); a lease left in the stream's
        // arena is still live for the allocator (the arena hands it back when the stream stops).
        if (stats.deviceAllocations() != 1 || stats.liveLeases() > 1) {
            throw new IllegalStateException("the measured path was not the cache-hit path: " + stats);
        }
        BenchRuntime.shutdown(rt);
    }

    @Benchmark
    public BufferLease askAllocateFree() throws Exception {
        BufferLease lease = lease(BenchRuntime.await(AskPattern.<AllocatorProtocol.Command, AllocationReply>ask(
                allocator, r -> new AllocatorProtocol.Allocate(BYTES, r), BenchRuntime.TIMEOUT, system.scheduler())));
        allocator.tell(new AllocatorProtocol.Free(lease));
        return lease;
    }

    @Benchmark
    public BufferLease askAllocateOnStreamFree() throws Exception {
        BufferLease lease = lease(BenchRuntime.await(AskPattern.<StreamProtocol.Command, AllocationReply>ask(
                stream.owner(), r -> new StreamProtocol.AllocateOnStream(BYTES, r), BenchRuntime.TIMEOUT,
                system.scheduler())));
        stream.owner().tell(new StreamProtocol.FreeOnStream(lease));
        return lease;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public Object actorAllocateFree() throws Exception {
        CompletableFuture<Object> done = new CompletableFuture<>();
        asker.tell(new SequentialAsker.Run(BATCH, (previous, self) -> {
            if (previous != null) {
                allocator.tell(new AllocatorProtocol.Free(lease(previous)));
            }
            allocator.tell(new AllocatorProtocol.Allocate(BYTES, self.narrow()));
        }, done));
        BufferLease last = lease(BenchRuntime.await(done));
        allocator.tell(new AllocatorProtocol.Free(last));
        return last;
    }

    private static BufferLease lease(Object reply) {
        if (reply instanceof Allocated a) {
            return a.lease();
        }
        throw new IllegalStateException("allocation failed: " + reply);
    }
}
