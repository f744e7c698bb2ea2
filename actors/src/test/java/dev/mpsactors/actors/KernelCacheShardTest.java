package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol.CacheStats;
import dev.mpsactors.protocol.KernelCacheProtocol.GetCacheStats;
import dev.mpsactors.protocol.KernelCacheProtocol.GetPipeline;
import dev.mpsactors.protocol.KernelCacheProtocol.InjectCrash;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineFailed;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReady;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReply;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.DeadLetter;
import org.apache.pekko.actor.WrappedMessage;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A kernel-cache shard owns its own map (hazard 1 of docs/audit.md was shard locks over one shared map): one
 * compilation per library however many ask at once, one pipeline object per kernel for every caller,
 * failures cached with the compiler's message, and a crash answers the waiters and leaks nothing.
 */
class KernelCacheShardTest {
    private static final Duration BOUND = Duration.ofSeconds(10);
    private static final String LIBRARY = "gemm layernorm add";

    private static ActorTestKit testKit;
    private static NativeDevice device;
    private static ExecutorService compileThreads;

    /** Holds compilations until opened, so requests provably arrive while one is in flight. */
    private CountDownLatch gate;
    private ActorRef<KernelCacheProtocol.Command> shard;

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create();
        device = NativeDevice.open(DeviceOptions.cpu());
        compileThreads = Executors.newFixedThreadPool(2);
    }

    @AfterAll
    static void stop() {
        try {
            testKit.shutdownTestKit();
            compileThreads.shutdownNow();
            awaitTrue("every native object released", () -> device.liveObjects().isEmpty());
        } finally {
            // Throws BUSY if a library or pipeline leaked.
            device.close();
        }
    }

    @BeforeEach
    void spawnShard() {
        gate = new CountDownLatch(0);
        shard = testKit.spawn(KernelCacheShard.create(3, device, this::compileBehindGate, false));
    }

    @AfterEach
    void stopShard() {
        gate.countDown();
        testKit.stop(shard, BOUND);
        awaitTrue("a stopped shard closes its libraries and pipelines",
                () -> device.liveObjects().libraries() == 0 && device.liveObjects().pipelines() == 0);
    }

    private void compileBehindGate(Runnable compile) {
        CountDownLatch g = gate;
        compileThreads.execute(() -> {
            try {
                g.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            compile.run();
        });
    }

    // ---- specifications -----------------------------------------------------------------------------

    @Test
    void manyConcurrentRequestsForOneLibraryCompileItOnceAndAllGetTheSamePipeline() {
        gate = new CountDownLatch(1);
        KernelKey key = KernelKey.of(LIBRARY, "gemm");
        List<TestProbe<PipelineReply>> clients = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            TestProbe<PipelineReply> client = testKit.createTestProbe(PipelineReply.class);
            clients.add(client);
            shard.tell(new GetPipeline(key, client.getRef()));
        }
        CacheStats during = stats(shard);
        assertEquals(1, during.compilations());
        assertEquals(63, during.joined());

        gate.countDown();
        Pipeline first = null;
        for (TestProbe<PipelineReply> client : clients) {
            PipelineReady ready = (PipelineReady) client.expectMessageClass(PipelineReply.class, BOUND);
            assertEquals(key, ready.key());
            if (first == null) {
                first = ready.pipeline();
            }
            assertSame(first, ready.pipeline());
        }
        assertEquals("gemm", first.function());
        CacheStats after = stats(shard);
        assertEquals(1, after.compilations());
        assertEquals(1, after.libraries());
        assertEquals(1, after.pipelines());
    }

    @Test
    void aCachedPipelineIsAnsweredFromTheCacheWithoutCompiling() {
        KernelKey gemm = KernelKey.of(LIBRARY, "gemm");
        Pipeline compiled = ready(shard, gemm);
        assertSame(compiled, ready(shard, gemm));
        assertSame(compiled, ready(shard, gemm));
        // Another function of the same library: no compilation either.
        assertEquals("layernorm", ready(shard, KernelKey.of(LIBRARY, "layernorm")).function());

        CacheStats stats = stats(shard);
        assertEquals(1, stats.compilations());
        assertEquals(2, stats.hits());
        assertEquals(2, stats.pipelines());
    }

    @Test
    void aFunctionMissingFromTheLibraryIsACachedNotFoundFailure() {
        KernelKey softmax = KernelKey.of("gemm add", "softmax");
        PipelineFailed missing = failed(shard, softmax);
        assertTrue(missing.reason().contains("NOT_FOUND") && missing.reason().contains("'softmax'"),
                missing.reason());
        assertEquals(missing, failed(shard, softmax));
        assertEquals("add", ready(shard, KernelKey.of("gemm add", "add")).function());
        assertEquals(1, stats(shard).compilations());
    }

    @Test
    void aCompileFailureIsCachedWithTheCompilersMessage() {
        KernelKey bad = KernelKey.of("gemm no_such_kernel", "gemm");
        PipelineFailed first = failed(shard, bad);
        assertTrue(first.reason().contains("no_such_kernel"), first.reason());
        assertEquals(first, failed(shard, bad));

        CacheStats stats = stats(shard);
        assertEquals(1, stats.compilations());
        assertEquals(1, stats.failures());
        assertEquals(0, stats.libraries());
    }

    @Test
    void retryIfFailedCompilesAgainOnceForAllWhoAsk() {
        KernelKey bad = KernelKey.of("layernorm not_a_kernel", "layernorm");
        failed(shard, bad);
        gate = new CountDownLatch(1);
        List<TestProbe<PipelineReply>> clients = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            TestProbe<PipelineReply> client = testKit.createTestProbe(PipelineReply.class);
            clients.add(client);
            shard.tell(new GetPipeline(bad, true, client.getRef()));
        }
        CacheStats during = stats(shard);
        assertEquals(2, during.compilations());
        assertEquals(2, during.joined());
        gate.countDown();
        for (TestProbe<PipelineReply> client : clients) {
            PipelineFailed f = (PipelineFailed) client.expectMessageClass(PipelineReply.class, BOUND);
            assertTrue(f.reason().contains("not_a_kernel"), f.reason());
        }
        assertEquals(2, stats(shard).failures());
    }

    @Test
    void aCrashedShardAnswersItsWaitersLeaksNothingAndServesAfterRestart() {
        Behavior<KernelCacheProtocol.Command> supervised = Behaviors.supervise(
                        KernelCacheShard.create(5, device, this::compileBehindGate, true))
                .onFailure(SupervisorStrategy.restart());
        ActorRef<KernelCacheProtocol.Command> crashing = testKit.spawn(supervised);
        try {
            KernelKey gemm = KernelKey.of(LIBRARY, "gemm");
            ready(crashing, gemm);

            gate = new CountDownLatch(1);
            KernelKey add = KernelKey.of("add", "add");
            TestProbe<PipelineReply> waiter = testKit.createTestProbe(PipelineReply.class);
            crashing.tell(new GetPipeline(add, waiter.getRef()));
            crashing.tell(new InjectCrash("injected by the test"));
            PipelineFailed abandoned = (PipelineFailed) waiter.expectMessageClass(PipelineReply.class, BOUND);
            assertTrue(abandoned.reason().contains("kernel cache shard 5 restarted"), abandoned.reason());
            // The abandoned compilation finishes after the restart; its library must still be closed.
            gate.countDown();
            awaitTrue("the restarted shard's libraries are closed",
                    () -> device.liveObjects().libraries() == 0 && device.liveObjects().pipelines() == 0);

            assertEquals("gemm", ready(crashing, gemm).function());
            assertEquals("add", ready(crashing, add).function());
            CacheStats stats = stats(crashing);
            assertEquals(2, stats.compilations(), "a new incarnation starts with an empty cache");
            assertEquals(2, stats.libraries());
        } finally {
            testKit.stop(crashing, BOUND);
        }
    }

    /**
     * A compilation that finishes after its shard stopped (a shutdown while a GPU compiler runs) is sent to
     * dead letters. What is sent must be a message: a null wrapped in pipeToSelf's adapter message made
     * Pekko's dead-letter listener throw a NullPointerException unwrapping it.
     */
    @Test
    void aCompilationOutlivingItsStoppedShardReachesDeadLettersAsAMessageNotANull() {
        gate = new CountDownLatch(1);
        ActorRef<KernelCacheProtocol.Command> stopping = testKit.spawn(
                KernelCacheShard.create(6, device, this::compileBehindGate, false));
        TestProbe<DeadLetter> deadLetters = testKit.createTestProbe(DeadLetter.class);
        testKit.system().eventStream().tell(new EventStream.Subscribe<>(DeadLetter.class, deadLetters.getRef()));
        try {
            TestProbe<PipelineReply> waiter = testKit.createTestProbe(PipelineReply.class);
            stopping.tell(new GetPipeline(KernelKey.of("add", "add"), waiter.getRef()));
            assertEquals(1, stats(stopping).compilations(), "the compilation is in flight");
            testKit.stop(stopping, BOUND);
            PipelineFailed abandoned = (PipelineFailed) waiter.expectMessageClass(PipelineReply.class, BOUND);
            assertTrue(abandoned.reason().contains("stopped while compiling"), abandoned.reason());

            gate.countDown(); // the compilation finishes now, for a shard that is gone
            List<DeadLetter> toShard = deadLetters.fishForMessage(BOUND, "the finished compilation, dead-lettered",
                    d -> d.recipient().path().equals(stopping.path()) ? FishingOutcomes.complete()
                            : FishingOutcomes.continueAndIgnore());
            Object unwrapped = WrappedMessage.unwrap(toShard.get(toShard.size() - 1).message());
            assertNotNull(unwrapped, "a null message dead-lettered to the stopped shard");
            awaitTrue("the abandoned compilation's library is closed", () -> device.liveObjects().libraries() == 0);
        } finally {
            gate.countDown();
            testKit.system().eventStream().tell(new EventStream.Unsubscribe<>(deadLetters.getRef()));
        }
    }

    @Test
    void injectCrashIsIgnoredWhenFaultInjectionIsOff() {
        KernelKey gemm = KernelKey.of(LIBRARY, "gemm");
        Pipeline before = ready(shard, gemm);
        shard.tell(new InjectCrash("should be ignored"));
        assertSame(before, ready(shard, gemm));
        assertEquals(1, stats(shard).compilations());
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static Pipeline ready(ActorRef<KernelCacheProtocol.Command> target, KernelKey key) {
        PipelineReply reply = ask(target, key);
        assertTrue(reply instanceof PipelineReady, reply::toString);
        return ((PipelineReady) reply).pipeline();
    }

    private PipelineFailed failed(ActorRef<KernelCacheProtocol.Command> target, KernelKey key) {
        PipelineReply reply = ask(target, key);
        assertTrue(reply instanceof PipelineFailed, reply::toString);
        return (PipelineFailed) reply;
    }

    private static PipelineReply ask(ActorRef<KernelCacheProtocol.Command> target, KernelKey key) {
        TestProbe<PipelineReply> client = testKit.createTestProbe(PipelineReply.class);
        target.tell(new GetPipeline(key, client.getRef()));
        return client.expectMessageClass(PipelineReply.class, BOUND);
    }

    private static CacheStats stats(ActorRef<KernelCacheProtocol.Command> target) {
        TestProbe<CacheStats> probe = testKit.createTestProbe(CacheStats.class);
        target.tell(new GetCacheStats(probe.getRef()));
        return probe.expectMessageClass(CacheStats.class, BOUND);
    }

    private static void awaitTrue(String what, BooleanSupplier condition) {
        Eventually.awaitTrue(what, BOUND, condition, () -> "live: " + device.liveObjects());
    }
}
