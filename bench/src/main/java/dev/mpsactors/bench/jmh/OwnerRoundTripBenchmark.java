package dev.mpsactors.bench.jmh;

import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol;
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
 * The price of talking to an owner: one message to an owner actor and its reply.
 * <ul>
 *   <li>{@code askStreamStats}, {@code askPoolLoad}: from a plain thread through {@link AskPattern}
 *       (a temporary actor, a future, a thread wake-up): what every {@link MpsRuntime} call pays;</li>
 *   <li>{@code actorToStreamStats}: the same request sent by an actor, 1000 in a row, per request: the pure
 *       mailbox round trip to a StreamActor (its dispatcher, its handler) without the ask machinery;</li>
 *   <li>{@code actorToEcho}: the same between two trivial actors: the floor any owner can reach.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@State(Scope.Benchmark)
public class OwnerRoundTripBenchmark {
    static final int BATCH = 1000;

    private MpsRuntime rt;
    private ActorSystem<?> system;
    private StreamHandle stream;
    private ActorRef<Object> asker;
    private ActorRef<SequentialAsker.Ping> echo;

    @Setup(Level.Trial)
    public void setUp() {
        rt = BenchRuntime.start();
        try {
            system = rt.system();
            stream = rt.streams().get(0);
            asker = system.systemActorOf(SequentialAsker.create(), "jmh-asker", Props.empty());
            echo = system.systemActorOf(SequentialAsker.echo(), "jmh-echo", Props.empty());
        } catch (Exception e) {
            throw BenchRuntime.abandon(rt, e);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        BenchRuntime.shutdown(rt); // stops the asker and the echo with the system
    }

    @Benchmark
    public StreamProtocol.StreamStats askStreamStats() throws Exception {
        return BenchRuntime.await(AskPattern.<StreamProtocol.Command, StreamProtocol.StreamStats>ask(stream.owner(),
                StreamProtocol.GetStreamStats::new, BenchRuntime.TIMEOUT, system.scheduler()));
    }

    @Benchmark
    public StreamPoolProtocol.PoolLoad askPoolLoad() throws Exception {
        return BenchRuntime.await(AskPattern.<StreamPoolProtocol.Command, StreamPoolProtocol.PoolLoad>ask(
                rt.refs().streamPool(), StreamPoolProtocol.GetPoolLoad::new, BenchRuntime.TIMEOUT, system.scheduler()));
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public Object actorToStreamStats() throws Exception {
        ActorRef<StreamProtocol.Command> owner = stream.owner();
        return runBatch((previous, self) -> owner.tell(new StreamProtocol.GetStreamStats(self.narrow())));
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public Object actorToEcho() throws Exception {
        return runBatch((previous, self) -> echo.tell(new SequentialAsker.Ping(self)));
    }

    private Object runBatch(java.util.function.BiConsumer<Object, ActorRef<Object>> step) throws Exception {
        CompletableFuture<Object> done = new CompletableFuture<>();
        asker.tell(new SequentialAsker.Run(BATCH, step, done));
        return BenchRuntime.await(done);
    }
}
