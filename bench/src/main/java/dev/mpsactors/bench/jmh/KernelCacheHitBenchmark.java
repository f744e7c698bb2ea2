package dev.mpsactors.bench.jmh;

import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.KernelCacheProtocol.LibraryKey;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReady;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReply;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.HashMap;
import java.util.Map;
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
 * A kernel-cache hit: {@code GetPipeline} of a key the shard has already compiled.
 * <ul>
 *   <li>{@code askGetPipelineHit}: from a plain thread, routing ({@code shardFor}) + ask + reply, as
 *       {@link DeviceKernels#pipeline} does it;</li>
 *   <li>{@code actorGetPipelineHit}: sent by an actor, 1000 in a row: the mailbox round trip to the shard
 *       plus its handler;</li>
 *   <li>{@code shardForRouting}: {@code KernelLibraryShards.shardFor}, the caller-side routing;</li>
 *   <li>{@code shardLookupModel}: the work the shard does for a hit (its map is private, so this replays
 *       it on the same types): library map get, function map get, type check. It shows the lookup is
 *       negligible next to the message round trip.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@State(Scope.Benchmark)
public class KernelCacheHitBenchmark {
    static final int BATCH = 1000;
    static final KernelKey KEY = KernelKey.of("*", "add");

    private MpsRuntime rt;
    private ActorSystem<?> system;
    private ActorRef<KernelCacheProtocol.Command> shard;
    private ActorRef<Object> asker;
    /** The shard's structure for a hit: library -> (function -> cached reply). */
    private final Map<LibraryKey, Map<String, PipelineReply>> model = new HashMap<>();

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        rt = BenchRuntime.start();
        try {
            system = rt.system();
            shard = rt.refs().kernels().shardFor(KEY);
            asker = system.systemActorOf(SequentialAsker.create(), "jmh-asker", Props.empty());
            BenchRuntime.await(rt.kernels().pipeline(KEY)); // compiles once: everything measured below is a hit
            Map<String, PipelineReply> functions = new HashMap<>();
            functions.put(KEY.function(), new PipelineReady(KEY, null));
            functions.put("gemm", new PipelineReady(KernelKey.of("*", "gemm"), null));
            model.put(KEY.library(), functions);
            for (int i = 0; i < 16; i++) { // a few other libraries, as a busy shard would hold
                model.put(new LibraryKey("lib-" + i, ""), new HashMap<>());
            }
        } catch (Exception e) {
            throw BenchRuntime.abandon(rt, e);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        KernelCacheProtocol.CacheStats stats = BenchRuntime.await(rt.kernels().stats());
        if (stats.compilations() != 1) {
            throw new IllegalStateException("expected one compilation and only hits, got " + stats);
        }
        BenchRuntime.shutdown(rt);
    }

    @Benchmark
    public PipelineReply askGetPipelineHit() throws Exception {
        ActorRef<KernelCacheProtocol.Command> target = rt.refs().kernels().shardFor(KEY);
        PipelineReply reply = BenchRuntime.await(AskPattern.<KernelCacheProtocol.Command, PipelineReply>ask(target,
                r -> new KernelCacheProtocol.GetPipeline(KEY, false, r), BenchRuntime.TIMEOUT, system.scheduler()));
        if (!(reply instanceof PipelineReady)) {
            throw new IllegalStateException("not a hit: " + reply);
        }
        return reply;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public Object actorGetPipelineHit() throws Exception {
        CompletableFuture<Object> done = new CompletableFuture<>();
        asker.tell(new SequentialAsker.Run(BATCH,
                (previous, self) -> shard.tell(new KernelCacheProtocol.GetPipeline(KEY, false, self.narrow())), done));
        return BenchRuntime.await(done);
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public ActorRef<KernelCacheProtocol.Command> shardForRouting() {
        return rt.refs().kernels().shardFor(KEY);
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public boolean shardLookupModel() {
        Map<String, PipelineReply> functions = model.get(KEY.library());
        return functions != null && functions.get(KEY.function()) instanceof PipelineReady;
    }
}
