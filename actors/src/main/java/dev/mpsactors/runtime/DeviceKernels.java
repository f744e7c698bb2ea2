package dev.mpsactors.runtime;

import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;

/** The kernel cache of one device: its shard actors, each the only owner of its part of the map. */
public final class DeviceKernels {
    private final RuntimeRefs refs;
    private final Asker asker;

    DeviceKernels(RuntimeRefs refs, Asker asker) {
        this.refs = refs;
        this.asker = asker;
    }

    /** The pipeline of {@code key}, compiled once (single flight) by the shard that owns the key. */
    public CompletionStage<Pipeline> pipeline(KernelCacheProtocol.KernelKey key) {
        return asker.ask(refs.kernels().shardFor(key), (ActorRef<KernelCacheProtocol.PipelineReply> r) ->
                new KernelCacheProtocol.GetPipeline(key, false, r)).thenApply(reply -> {
                    if (reply instanceof KernelCacheProtocol.PipelineFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    return ((KernelCacheProtocol.PipelineReady) reply).pipeline();
                });
    }

    /** The cache's counters summed over its shards. */
    public CompletionStage<KernelCacheProtocol.CacheStats> stats() {
        List<CompletableFuture<KernelCacheProtocol.CacheStats>> all = new ArrayList<>();
        for (ActorRef<KernelCacheProtocol.Command> shard : refs.kernels().shards()) {
            all.add(asker.ask(shard, KernelCacheProtocol.GetCacheStats::new).toCompletableFuture());
        }
        return CompletableFuture.allOf(all.toArray(CompletableFuture[]::new))
                .thenApply(v -> KernelCacheProtocol.CacheStats.sum(all.stream().map(CompletableFuture::join).toList()));
    }
}
