package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.Pipeline;
import java.util.List;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of the kernel library: K shard actors, each the single owner of its own cache of compiled
 * libraries (hazard 1 of docs/audit.md was K locks guarding one shared map). A library source is compiled at most
 * once at a time per key (single flight); failures are cached with the compiler's message until a
 * request asks to retry.
 */
public final class KernelCacheProtocol {
    private KernelCacheProtocol() {}

    /** A compiled library: its source and compiler options (backend-specific text). */
    public record LibraryKey(String source, String options) {
        public LibraryKey {
            Objects.requireNonNull(source, "source");
            options = options == null ? "" : options;
        }
    }

    /** A function of a library: what a stream executes. */
    public record KernelKey(LibraryKey library, String function) {
        public KernelKey {
            Objects.requireNonNull(library, "library");
            Objects.requireNonNull(function, "function");
        }

        public static KernelKey of(String source, String function) {
            return new KernelKey(new LibraryKey(source, ""), function);
        }
    }

    public sealed interface Command permits GetPipeline, GetCacheStats, InjectCrash, Internal {}

    /** Messages private to the shard's implementation (finished compilations). */
    public non-sealed interface Internal extends Command {}

    /** Get-or-compile. {@code retryIfFailed} recompiles a library whose last compilation failed. */
    public record GetPipeline(KernelKey key, boolean retryIfFailed, ActorRef<PipelineReply> replyTo)
            implements Command {
        public GetPipeline(KernelKey key, ActorRef<PipelineReply> replyTo) {
            this(key, false, replyTo);
        }
    }

    public sealed interface PipelineReply permits PipelineReady, PipelineFailed {}

    /** Every caller asking for one key gets the same pipeline object. */
    public record PipelineReady(KernelKey key, Pipeline pipeline) implements PipelineReply {}

    /** @param reason the compiler's log, or why the function is not in the library */
    public record PipelineFailed(KernelKey key, String reason) implements PipelineReply {}

    public record GetCacheStats(ActorRef<CacheStats> replyTo) implements Command {}

    /**
     * @param compilations library compilations started (single flight: one per key unless retried)
     * @param hits         requests answered from a ready pipeline
     * @param joined       requests that joined a compilation already in flight
     */
    public record CacheStats(int shard, long compilations, long hits, long joined, long failures, int libraries,
                             int pipelines) {
        public static CacheStats sum(List<CacheStats> all) {
            long c = 0, h = 0, j = 0, f = 0;
            int l = 0, p = 0;
            for (CacheStats s : all) {
                c += s.compilations;
                h += s.hits;
                j += s.joined;
                f += s.failures;
                l += s.libraries;
                p += s.pipelines;
            }
            return new CacheStats(-1, c, h, j, f, l, p);
        }
    }

    /** Fault injection: the shard throws, so supervision restarts it. Ignored unless enabled in config. */
    public record InjectCrash(String reason) implements Command {}
}
