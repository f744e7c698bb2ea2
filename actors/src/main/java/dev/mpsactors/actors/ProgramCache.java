package dev.mpsactors.actors;

import dev.mpsactors.model.ModelEngine.ShapeProgram;
import dev.mpsactors.protocol.InferenceProtocol;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * A model's compiled programs, one per batch shape (rows, padded length, pooled embedding), owned by its
 * {@link ModelActor} and used only on that actor's thread. Bounded by {@code model.program-cache} as a
 * least-recently-used cache: when a new program makes it exceed the bound, the least recently used one is
 * closed and dropped, unless a batch still runs or reads through it (then it stays, and the cache is over its
 * bound until a later compile finds the eldest unused).
 */
final class ProgramCache {
    /** Compiles the program of one batch shape. */
    @FunctionalInterface
    interface Compiler {
        ShapeProgram compile(int rows, int seq, InferenceProtocol.Embedding embedding);
    }

    private final LinkedHashMap<Long, ShapeProgram> programs;

    /**
     * @param bound the programs kept (model.program-cache)
     * @param inUse whether a batch still runs or reads through a program (such a program is never evicted)
     */
    ProgramCache(int bound, Predicate<ShapeProgram> inUse) {
        this.programs = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, ShapeProgram> eldest) {
                boolean evict = size() > bound && !inUse.test(eldest.getValue());
                if (evict) {
                    eldest.getValue().close();
                }
                return evict;
            }
        };
    }

    /** The program of this shape, compiled now on a miss (a compile failure propagates; nothing is cached). */
    ShapeProgram get(int rows, int seq, InferenceProtocol.Embedding embedding, Compiler compiler) {
        long key = ((long) rows << 32) | BatchQueue.bucketKey(seq, embedding);
        ShapeProgram p = programs.get(key);
        if (p == null) {
            p = compiler.compile(rows, seq, embedding);
            programs.put(key, p);
        }
        return p;
    }

    int size() {
        return programs.size();
    }

    /**
     * Closes and drops every program: at once, or, for a program that batches still read through, when the
     * last of their reads (its {@code readers}) is done.
     */
    void closeAll(Function<ShapeProgram, List<CompletableFuture<?>>> readers) {
        for (ShapeProgram p : new ArrayList<>(programs.values())) {
            List<CompletableFuture<?>> reading = readers.apply(p);
            if (reading.isEmpty()) {
                p.close();
            } else {
                CompletableFuture.allOf(reading.toArray(CompletableFuture[]::new)).whenComplete((v, e) -> p.close());
            }
        }
        programs.clear();
    }
}
