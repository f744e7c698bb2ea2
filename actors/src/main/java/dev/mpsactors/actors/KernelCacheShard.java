package dev.mpsactors.actors;

import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeException;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.KernelCacheProtocol.CacheStats;
import dev.mpsactors.protocol.KernelCacheProtocol.Command;
import dev.mpsactors.protocol.KernelCacheProtocol.GetCacheStats;
import dev.mpsactors.protocol.KernelCacheProtocol.GetPipeline;
import dev.mpsactors.protocol.KernelCacheProtocol.InjectCrash;
import dev.mpsactors.protocol.KernelCacheProtocol.Internal;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.KernelCacheProtocol.LibraryKey;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineFailed;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReady;
import dev.mpsactors.protocol.KernelCacheProtocol.PipelineReply;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One shard of the kernel library: the single owner of its own cache of compiled libraries and their
 * pipelines (hazard 1 of docs/audit.md was K shard locks guarding one shared map, so two shards raced on the same
 * container). Duties:
 * <ul>
 *   <li>single flight: a library is compiled once at a time, off this actor's thread (compiles take
 *       long on NVRTC and Metal); requests arriving meanwhile wait as entries of a list, not threads;</li>
 *   <li>hand every caller of one kernel the same {@link Pipeline} object, made once on this thread;</li>
 *   <li>cache failures with the compiler's message, so a bad source is not recompiled by every request,
 *       until a request asks to retry;</li>
 *   <li>own every native library and pipeline it made, and close them when it restarts or stops.</li>
 * </ul>
 */
public final class KernelCacheShard extends AbstractBehavior<Command> {

    /**
     * A compilation's hand-over from the compile thread to the owner: whoever wins the state change owns
     * the library, so it is closed exactly once whether the shard takes it, restarts or stops meanwhile.
     */
    private static final class CompileTicket {
        static final int RUNNING = 0;
        static final int DELIVERED = 1;
        static final int TAKEN = 2;
        static final int ABANDONED = 3;

        /** Written by the compile thread before it moves RUNNING to DELIVERED, which publishes it. */
        volatile KernelLibrary library;
        final AtomicInteger state = new AtomicInteger(RUNNING);

        /** The owner takes a delivered library; false if an earlier incarnation already disposed of it. */
        boolean take() {
            return state.compareAndSet(DELIVERED, TAKEN);
        }

        /** The owner gives up the compilation; the library, whenever it exists, gets closed exactly once. */
        void abandon() {
            if (!state.compareAndSet(RUNNING, ABANDONED) && take() && library != null) {
                // Delivered to a mailbox that this incarnation will not read: close it here.
                library.close();
            }
        }
    }

    /** What the shard knows about one library. */
    private sealed interface Entry permits Compiling, Ready, Failed {}

    private record Compiling(CompileTicket ticket, List<GetPipeline> waiters) implements Entry {}

    /** @param functions a function's cached answer: its pipeline, or why the library lacks it */
    private record Ready(KernelLibrary library, Map<String, PipelineReply> functions) implements Entry {}

    private record Failed(String reason) implements Entry {}

    /** @param failure null when {@code ticket.library} holds the compiled library */
    private record CompileFinished(LibraryKey key, CompileTicket ticket, Throwable failure) implements Internal {}

    private final int shard;
    private final NativeDevice device;
    private final Executor compileExecutor;
    private final boolean faultInjection;
    private final Map<LibraryKey, Entry> cache = new HashMap<>();
    private long compilations;
    private long hits;
    private long joined;
    private long failures;

    public static Behavior<Command> create(int shard, NativeDevice device, Executor compileExecutor,
                                           boolean faultInjection) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(compileExecutor, "compileExecutor");
        return Behaviors.setup(ctx -> new KernelCacheShard(ctx, shard, device, compileExecutor, faultInjection));
    }

    private KernelCacheShard(ActorContext<Command> ctx, int shard, NativeDevice device, Executor compileExecutor,
                             boolean faultInjection) {
        super(ctx);
        this.shard = shard;
        this.device = device;
        this.compileExecutor = compileExecutor;
        this.faultInjection = faultInjection;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(GetPipeline.class, this::onGetPipeline)
                .onMessage(CompileFinished.class, this::onCompileFinished)
                .onMessage(GetCacheStats.class, this::onGetCacheStats)
                .onMessage(InjectCrash.class, this::onInjectCrash)
                .onSignal(PreRestart.class, s -> shutDown("restarted after a failure"))
                .onSignal(PostStop.class, s -> shutDown("stopped"))
                .build();
    }

    private Behavior<Command> onGetPipeline(GetPipeline m) {
        LibraryKey library = m.key().library();
        Entry entry = cache.get(library);
        if (entry instanceof Ready ready) {
            PipelineReply cached = ready.functions().get(m.key().function());
            if (cached instanceof PipelineReady) {
                hits++;
            }
            m.replyTo().tell(cached != null ? cached : answer(ready, m.key()));
        } else if (entry instanceof Compiling compiling) {
            joined++;
            compiling.waiters().add(m);
        } else if (entry instanceof Failed failed && !m.retryIfFailed()) {
            m.replyTo().tell(new PipelineFailed(m.key(), failed.reason()));
        } else {
            startCompilation(library, m);
        }
        return this;
    }

    private void startCompilation(LibraryKey library, GetPipeline first) {
        CompileTicket ticket = new CompileTicket();
        List<GetPipeline> waiters = new ArrayList<>();
        waiters.add(first);
        cache.put(library, new Compiling(ticket, waiters));
        // The future completes with the ticket, never with null: pipeToSelf sends a successful value as the
        // message it wraps, and a null inside that wrapper, dead-lettered once this shard has stopped (a
        // compilation outliving a shutdown), makes Pekko's dead-letter listener throw unwrapping it.
        CompletableFuture<CompileTicket> compiled;
        try {
            compiled = CompletableFuture.supplyAsync(() -> {
                KernelLibrary result = device.compileLibrary(library.source(), library.options());
                ticket.library = result;
                if (!ticket.state.compareAndSet(CompileTicket.RUNNING, CompileTicket.DELIVERED)) {
                    // The shard gave up on this compilation while it ran: nobody else will close the library.
                    result.close();
                }
                return ticket;
            }, compileExecutor);
        } catch (RuntimeException e) {
            // The executor refused (shutting down): not the source's fault, so nothing is cached.
            cache.remove(library);
            first.replyTo().tell(new PipelineFailed(first.key(), "kernel cache shard " + shard
                    + " could not start compiling: " + e));
            return;
        }
        compilations++;
        getContext().pipeToSelf(compiled, (done, failure) -> new CompileFinished(library, ticket, failure));
    }

    private Behavior<Command> onCompileFinished(CompileFinished m) {
        Entry entry = cache.get(m.key());
        if (!(entry instanceof Compiling compiling) || compiling.ticket() != m.ticket()) {
            // Started by an earlier incarnation, whose waiters were already answered: nobody wants it.
            if (m.failure() == null && m.ticket().take()) {
                m.ticket().library.close();
            }
            return this;
        }
        if (m.failure() != null) {
            failures++;
            String reason = compileFailure(m.key(), m.failure());
            cache.put(m.key(), new Failed(reason));
            for (GetPipeline waiter : compiling.waiters()) {
                waiter.replyTo().tell(new PipelineFailed(waiter.key(), reason));
            }
            return this;
        }
        m.ticket().take();
        Ready ready = new Ready(m.ticket().library, new HashMap<>());
        cache.put(m.key(), ready);
        for (GetPipeline waiter : compiling.waiters()) {
            PipelineReply cached = ready.functions().get(waiter.key().function());
            waiter.replyTo().tell(cached != null ? cached : answer(ready, waiter.key()));
        }
        return this;
    }

    /** Makes the function's pipeline from the ready library (cheap) and caches the answer if it is lasting. */
    private PipelineReply answer(Ready ready, KernelKey key) {
        try {
            Pipeline pipeline = ready.library().pipeline(key.function());
            PipelineReply reply = new PipelineReady(key, pipeline);
            ready.functions().put(key.function(), reply);
            return reply;
        } catch (NativeException e) {
            PipelineReply reply = new PipelineFailed(key, e.getMessage());
            // A missing function stays missing; anything else (out of memory) may pass, so it is not cached.
            if (e.status() == NativeStatus.NOT_FOUND) {
                ready.functions().put(key.function(), reply);
            }
            return reply;
        }
    }

    private Behavior<Command> onGetCacheStats(GetCacheStats m) {
        int libraries = 0;
        int pipelines = 0;
        for (Entry entry : cache.values()) {
            if (entry instanceof Ready ready) {
                libraries++;
                for (PipelineReply reply : ready.functions().values()) {
                    if (reply instanceof PipelineReady) {
                        pipelines++;
                    }
                }
            }
        }
        m.replyTo().tell(new CacheStats(shard, compilations, hits, joined, failures, libraries, pipelines));
        return this;
    }

    private Behavior<Command> onInjectCrash(InjectCrash m) {
        if (!faultInjection) {
            getContext().getLog().warn("kernel cache shard {} ignored InjectCrash({}): fault injection is off "
                    + "(mps-actors.fault-injection.enabled)", shard, m.reason());
            return this;
        }
        throw new IllegalStateException(m.reason());
    }

    /** Answers every waiter and closes every native object: the next incarnation starts empty. */
    private Behavior<Command> shutDown(String what) {
        for (Map.Entry<LibraryKey, Entry> e : cache.entrySet()) {
            if (e.getValue() instanceof Compiling compiling) {
                compiling.ticket().abandon();
                for (GetPipeline waiter : compiling.waiters()) {
                    waiter.replyTo().tell(new PipelineFailed(waiter.key(), "kernel cache shard " + shard + " " + what
                            + " while compiling the library; ask again"));
                }
            } else if (e.getValue() instanceof Ready ready) {
                for (PipelineReply reply : ready.functions().values()) {
                    if (reply instanceof PipelineReady r) {
                        r.pipeline().close();
                    }
                }
                ready.library().close();
            }
        }
        cache.clear();
        return this;
    }

    private static String compileFailure(LibraryKey key, Throwable failure) {
        Throwable cause = failure instanceof CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
        if (cause instanceof NativeException) {
            return cause.getMessage();
        }
        return "compiling library '" + key.source() + "' failed: " + cause;
    }
}
