package dev.mpsactors.protocol;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The kernel library's shards and the rule that maps a library to its one owner. Immutable, so any
 * actor or thread may route with it; all functions of one library live on the same shard, so the
 * library is compiled once however many of its functions are asked for.
 */
public record KernelLibraryShards(List<ActorRef<KernelCacheProtocol.Command>> shards) {
    public KernelLibraryShards {
        shards = List.copyOf(shards);
        if (shards.isEmpty()) {
            throw new IllegalArgumentException("a kernel library needs at least one shard");
        }
    }

    public ActorRef<KernelCacheProtocol.Command> shardFor(KernelCacheProtocol.LibraryKey key) {
        return shards.get(Math.floorMod(key.hashCode(), shards.size()));
    }

    public ActorRef<KernelCacheProtocol.Command> shardFor(KernelCacheProtocol.KernelKey key) {
        return shardFor(key.library());
    }
}
