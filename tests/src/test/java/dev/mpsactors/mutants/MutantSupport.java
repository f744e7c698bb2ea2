package dev.mpsactors.mutants;

import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.DeviceStreams;
import java.lang.reflect.Method;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * What the mutants' advice calls: the fork's behaviour, written once here and woven into the owners of a
 * child JVM by {@link MutantMain}. Test code only; nothing in the runtime refers to it.
 */
public final class MutantSupport {
    /** A blocked owner stays blocked past any test bound (the fork's deadlock never resolves). */
    static final Duration BLOCKED_FOR = Duration.ofMinutes(5);

    private MutantSupport() {}

    // ---- mutant 1: concurrent misses compile twice ---------------------------------------------------

    /** Forgets a compilation in flight, so the shard starts another; returns its waiters (null if none). */
    public static List<Object> forgetCompilation(Map<Object, Object> cache, Object library) {
        Object entry = cache.get(library);
        if (entry == null || !entry.getClass().getSimpleName().equals("Compiling")) {
            return null;
        }
        cache.remove(library);
        return waiters(entry);
    }

    /** Hands the forgotten compilation's waiters to the new one, so every caller is still answered. */
    public static void joinCompilation(Map<Object, Object> cache, Object library, List<Object> earlier) {
        Object entry = cache.get(library);
        if (entry != null && entry.getClass().getSimpleName().equals("Compiling")) {
            waiters(entry).addAll(earlier);
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Object> waiters(Object compiling) {
        return (List<Object>) invoke(compiling, "waiters");
    }

    // ---- mutants 3 and 5: an owner that blocks on device work -----------------------------------------

    /** Blocks the calling owner until {@code point} of {@code stream} has completed, as the fork's locks did. */
    public static void blockUntilComplete(Object owner, StreamHandle stream, long point) {
        ActorContext<?> ctx = (ActorContext<?>) invoke(owner, AbstractBehavior.class, "getContext");
        Scheduler scheduler = ctx.getSystem().scheduler();
        CompletionStage<StreamProtocol.PointCompleted> done = AskPattern.ask(stream.owner(),
                r -> new StreamProtocol.NotifyWhenComplete(point, r), BLOCKED_FOR, scheduler);
        try {
            done.toCompletableFuture().get(BLOCKED_FOR.toSeconds(), TimeUnit.SECONDS);
        } catch (Exception e) {
            // The fork's wait has no failure path either: carry on as if it had returned.
        }
    }

    // ---- mutant 4: the encoder mutated without its owner --------------------------------------------

    /** Threads other than the owner's, as the fork's event and hook code were. */
    private static final ExecutorService NOT_THE_OWNER = Executors.newFixedThreadPool(4, r -> {
        Thread t = new Thread(r, "mutant-4-encoder");
        t.setDaemon(true);
        return t;
    });

    /** Encodes (and commits) a submission on another thread, into the stream's open command buffer. */
    public static void submitWithoutOwner(NativeStream stream, StreamHandle handle, long pointBase,
                                          StreamProtocol.Submit m) {
        NOT_THE_OWNER.execute(() -> {
            try {
                for (StreamWork w : m.work()) {
                    if (!(w instanceof StreamWork.KernelCall k)) {
                        throw new UnsupportedOperationException("mutant 4 encodes kernel calls only, not " + w);
                    }
                    stream.encodeKernel(k.pipeline(), k.args());
                }
                long point = m.commit() ? pointBase + stream.commit() : 0;
                m.replyTo().tell(new StreamProtocol.Submitted(handle, point, m.commit() ? 0 : stream.openCommands()));
            } catch (RuntimeException e) {
                m.replyTo().tell(new StreamProtocol.SubmitFailed(handle, e.toString()));
            }
        });
    }

    // ---- mutant 7: a release that waits for the stream ----------------------------------------------

    /** Waits, on the releasing thread, until everything committed on the stream has executed. */
    public static void synchronize(DeviceStreams streams, StreamHandle stream) {
        try {
            long committed = streams.stats(stream).toCompletableFuture()
                    .get(BLOCKED_FOR.toSeconds(), TimeUnit.SECONDS).committedPoint();
            if (committed > 0) {
                streams.whenComplete(stream, committed).toCompletableFuture()
                        .get(BLOCKED_FOR.toSeconds(), TimeUnit.SECONDS);
            }
        } catch (Exception e) {
            throw new IllegalStateException("mutant 7: synchronising the released stream failed", e);
        }
    }

    private static Object invoke(Object target, String method) {
        return invoke(target, target.getClass(), method);
    }

    private static Object invoke(Object target, Class<?> declaring, String method) {
        try {
            Method m = declaring.getDeclaredMethod(method);
            m.setAccessible(true);
            return m.invoke(target);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("mutant support: cannot call " + declaring.getName() + "." + method, e);
        }
    }
}
