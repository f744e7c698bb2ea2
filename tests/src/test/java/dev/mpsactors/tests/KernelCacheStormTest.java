package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol.GetPipeline;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.KernelCacheProtocol.LibraryKey;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReady;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReply;
import dev.mpsactors.protocol.KernelLibraryShards;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * Hazard 1 (docs/audit.md): the fork guarded one shared shader-cache map with K shard mutexes, a data
 * race. Here each shard actor owns its own map. A storm of client actors asking for overlapping keys at
 * once must compile each library exactly once and hand every caller of a key the same pipeline.
 * (The native compile path itself runs from many threads under TSan in test_runtime.cpp.)
 */
class KernelCacheStormTest {
    static final int CLIENTS = 96;
    static final int LIBRARIES = 24;

    record ClientReport(Map<KernelKey, Pipeline> pipelines, int failures) {}

    @Test
    void eachLibraryCompilesOnceAndEveryCallerGetsTheSamePipeline() throws Exception {
        try (RuntimeFixture f = new RuntimeFixture("mps-actors { streams = 2, kernel-cache.shards = 4 }")) {
            List<KernelKey> keys = new ArrayList<>();
            for (int lib = 0; lib < LIBRARIES; lib++) {
                // Options are part of the cache key, so each is a distinct library; a macro definition is a
                // valid option for every backend (NVRTC takes it, cpu ignores options).
                LibraryKey library = new LibraryKey("gemm layernorm softmax gelu", "-DMPS_VARIANT=" + lib);
                for (String function : List.of("gemm", "layernorm", "softmax", "gelu")) {
                    keys.add(new KernelKey(library, function));
                }
            }
            TestProbe<ClientReport> reports = f.kit.createTestProbe();
            KernelLibraryShards shards = f.runtime.refs().kernels();
            for (int c = 0; c < CLIENTS; c++) {
                List<KernelKey> mine = new ArrayList<>(keys);
                Collections.shuffle(mine, new Random(c));
                f.kit.spawn(client(shards, mine, reports.getRef()), "cache-client-" + c);
            }
            Map<KernelKey, Pipeline> first = new HashMap<>();
            for (int c = 0; c < CLIENTS; c++) {
                ClientReport report = reports.receiveMessage(Duration.ofSeconds(Await.BOUND_SECONDS));
                assertEquals(0, report.failures(), "a client got a failure");
                assertEquals(keys.size(), report.pipelines().size());
                for (Map.Entry<KernelKey, Pipeline> e : report.pipelines().entrySet()) {
                    Pipeline seen = first.putIfAbsent(e.getKey(), e.getValue());
                    if (seen != null) {
                        assertSame(seen, e.getValue(), "two pipelines for " + e.getKey());
                    }
                }
            }
            KernelCacheProtocol.CacheStats stats = Await.result(f.runtime.kernels().stats());
            System.out.printf("kernel-cache storm: %d actors x %d keys (%d libraries) -> %s%n", CLIENTS, keys.size(),
                    LIBRARIES, stats);
            assertEquals(LIBRARIES, stats.compilations(), "each library compiled exactly once");
            assertEquals(0, stats.failures());
            assertEquals(LIBRARIES * 4, stats.pipelines(), "one pipeline per key");
        }
    }

    private static Behavior<PipelineReply> client(KernelLibraryShards shards, List<KernelKey> keys,
                                                  ActorRef<ClientReport> report) {
        return Behaviors.setup(ctx -> {
            for (KernelKey key : keys) {
                shards.shardFor(key).tell(new GetPipeline(key, false, ctx.getSelf()));
            }
            Map<KernelKey, Pipeline> got = new HashMap<>();
            int[] failures = {0};
            return Behaviors.receive(PipelineReply.class).onAnyMessage(reply -> {
                if (reply instanceof PipelineReady ready) {
                    got.put(ready.key(), ready.pipeline());
                } else {
                    failures[0]++;
                }
                if (got.size() + failures[0] == keys.size()) {
                    report.tell(new ClientReport(got, failures[0]));
                    return Behaviors.stopped();
                }
                return Behaviors.same();
            }).build();
        });
    }
}
