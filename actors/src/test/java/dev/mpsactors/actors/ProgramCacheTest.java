package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.model.ModelEngine;
import dev.mpsactors.model.ModelEngine.ShapeProgram;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.protocol.InferenceProtocol.Embedding;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.StreamWork;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** The compiled-program cache on its own: the bound, LRU eviction, programs in use, closing on stop. */
class ProgramCacheTest {

    /** A program that only records its shape and whether it was closed (and how often). */
    private static final class FakeProgram implements ShapeProgram {
        final int rows;
        final int seq;
        final Embedding embedding;
        int closed;

        FakeProgram(int rows, int seq, Embedding embedding) {
            this.rows = rows;
            this.seq = seq;
            this.embedding = embedding;
        }

        @Override
        public int batch() {
            return rows;
        }

        @Override
        public int seq() {
            return seq;
        }

        @Override
        public long bufferBytes() {
            return 0;
        }

        @Override
        public void writeInputs(DeviceBuffer buffer, List<InferenceInputs> requests) {
            throw new UnsupportedOperationException();
        }

        @Override
        public StreamWork work(DeviceBuffer buffer) {
            throw new UnsupportedOperationException();
        }

        @Override
        public ModelEngine.Outputs readOutputs(DeviceBuffer buffer, boolean lastHiddenState, boolean poolerOutput,
                                               boolean embedding, boolean logits) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
            closed++;
        }
    }

    private final List<FakeProgram> compiled = new ArrayList<>();
    private final Set<ShapeProgram> inUse = new HashSet<>();

    private ProgramCache cache(int bound) {
        return new ProgramCache(bound, inUse::contains);
    }

    private FakeProgram get(ProgramCache cache, int rows, int seq, Embedding embedding) {
        return (FakeProgram) cache.get(rows, seq, embedding, (r, s, e) -> {
            FakeProgram p = new FakeProgram(r, s, e);
            compiled.add(p);
            return p;
        });
    }

    @Test
    void aShapeIsCompiledOnceAndEachShapeHasItsOwnProgram() {
        ProgramCache cache = cache(8);
        FakeProgram a = get(cache, 4, 128, null);
        assertSame(a, get(cache, 4, 128, null));
        FakeProgram rows = get(cache, 2, 128, null);
        FakeProgram seq = get(cache, 4, 64, null);
        FakeProgram pooled = get(cache, 4, 128, new Embedding(Pooling.MEAN, false));
        FakeProgram normalized = get(cache, 4, 128, new Embedding(Pooling.MEAN, true));
        assertEquals(5, compiled.size());
        assertEquals(5, cache.size());
        assertEquals(List.of(4, 2, 4, 4, 4), List.of(a.rows, rows.rows, seq.rows, pooled.rows, normalized.rows));
        assertEquals(64, seq.seq);
        assertEquals(new Embedding(Pooling.MEAN, true), normalized.embedding);
        assertSame(pooled, get(cache, 4, 128, new Embedding(Pooling.MEAN, false)));
        assertEquals(5, compiled.size());
    }

    @Test
    void theLeastRecentlyUsedProgramIsClosedBeyondTheBound() {
        ProgramCache cache = cache(2);
        FakeProgram a = get(cache, 1, 8, null);
        FakeProgram b = get(cache, 2, 8, null);
        get(cache, 1, 8, null); // a is now the most recently used
        FakeProgram c = get(cache, 3, 8, null);
        assertEquals(2, cache.size());
        assertEquals(1, b.closed);
        assertEquals(0, a.closed);
        assertEquals(0, c.closed);
        assertSame(a, get(cache, 1, 8, null));
        assertSame(c, get(cache, 3, 8, null));
        FakeProgram b2 = get(cache, 2, 8, null); // b was dropped: compiled again
        assertEquals(4, compiled.size());
        assertEquals(1, a.closed);
        assertEquals(2, cache.size());
        assertEquals(0, b2.closed);
        assertEquals(1, b.closed); // closed once only
    }

    @Test
    void aProgramInUseIsNotEvictedUntilAFreeOneCanBe() {
        ProgramCache cache = cache(1);
        FakeProgram a = get(cache, 1, 8, null);
        inUse.add(a);
        FakeProgram b = get(cache, 2, 8, null);
        assertEquals(0, a.closed);
        assertEquals(2, cache.size()); // over the bound while a runs
        inUse.remove(a);
        FakeProgram c = get(cache, 3, 8, null);
        assertEquals(1, a.closed); // the eldest, now free, goes
        assertEquals(0, b.closed);
        assertEquals(0, c.closed);
        assertEquals(2, cache.size());
    }

    @Test
    void aFailedCompileCachesNothing() {
        ProgramCache cache = cache(2);
        RuntimeException failure = assertThrows(RuntimeException.class,
                () -> cache.get(1, 8, null, (r, s, e) -> {
                    throw new IllegalStateException("no kernel");
                }));
        assertEquals("no kernel", failure.getMessage());
        assertEquals(0, cache.size());
        get(cache, 1, 8, null);
        assertEquals(1, compiled.size());
    }

    @Test
    void closeAllClosesIdleProgramsAtOnceAndReadProgramsAfterTheirLastReader() {
        ProgramCache cache = cache(4);
        FakeProgram idle = get(cache, 1, 8, null);
        FakeProgram read = get(cache, 2, 8, null);
        CompletableFuture<Void> first = new CompletableFuture<>();
        CompletableFuture<Void> second = new CompletableFuture<>();
        cache.closeAll(p -> p == read ? List.of(first, second) : List.of());
        assertEquals(0, cache.size());
        assertEquals(1, idle.closed);
        assertEquals(0, read.closed);
        first.complete(null);
        assertEquals(0, read.closed);
        second.completeExceptionally(new IllegalStateException("a reader failed"));
        assertEquals(1, read.closed);
        assertFalse(compiled.isEmpty());
        assertTrue(compiled.stream().allMatch(p -> p.closed == 1));
    }
}
