package dev.mpsactors.bench;

import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The two baselines without actors: M plain Java threads, each a closed-loop client with its own buffers,
 * on S native streams shared round-robin (thread i uses stream i mod S).
 *
 * <ul>
 *   <li>{@code raw} — the limit for our overhead: a per-stream lock is held only for encode + commit (the
 *       native stream allows one encoder at a time), never while waiting; the thread then waits for its
 *       point through a future completed by the stream's listener. One whole encode per request.</li>
 *   <li>{@code locked} — the fork's design on the same kernels: the request as individual kernels, the
 *       stream's mutex taken per kernel; every LayerNorm additionally takes one process-wide lock and is
 *       committed and waited for (COMMIT_AND_WAIT) while both locks are held; at the end of the request the
 *       thread commits and waits for completion still holding the stream mutex (a blocking synchronize).</li>
 * </ul>
 */
final class ThreadBaseline {
    enum Kind { RAW, LOCKED }

    private final Kind kind;
    private final int clients;
    private final int streams;

    ThreadBaseline(Kind kind, int clients, int streams) {
        this.kind = kind;
        this.clients = clients;
        this.streams = streams;
    }

    /** One mutex for the whole process, as the fork's LayerNorm had. */
    private final ReentrantLock layerNormLock = new ReentrantLock();

    Measurement run(NativeDevice device, Function<NativeDevice, StressWorkload> workloadFactory,
                    Supplier<LoadRecorder> newRecorder,
                    double flopsPerRequest, int sequencesPerRequest, String description, PrintStream out)
            throws InterruptedException {
        List<StreamCompletions> completions = new ArrayList<>();
        List<NativeStream> nativeStreams = new ArrayList<>();
        List<ReentrantLock> locks = new ArrayList<>();
        for (int s = 0; s < streams; s++) {
            StreamCompletions c = new StreamCompletions();
            completions.add(c);
            nativeStreams.add(device.createStream(c));
            locks.add(new ReentrantLock());
        }
        List<StressWorkload.Client> owned = new ArrayList<>();
        try (StressWorkload workload = workloadFactory.apply(device)) {
            List<StressWorkload.Client> clientState = new ArrayList<>();
            for (int i = 0; i < clients; i++) {
                StressWorkload.Client c = workload.client(device, i);
                owned.add(c);
                if (kind == Kind.LOCKED) {
                    c.steps(); // build the kernels before the clock starts
                }
                clientState.add(c);
            }
            LoadRecorder recorder = newRecorder.get(); // the clock starts once the clients are set up
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (int i = 0; i < clients; i++) {
                int s = i % streams;
                StressWorkload.Client client = clientState.get(i);
                CompletableFuture<Void> f = new CompletableFuture<>();
                done.add(f);
                Thread t = new Thread(() -> {
                    try {
                        loop(client, nativeStreams.get(s), locks.get(s), completions.get(s), recorder);
                    } finally {
                        f.complete(null);
                    }
                }, kind.name().toLowerCase() + "-client-" + i);
                t.setDaemon(true);
                t.start();
            }
            CompletableFuture<Void> all = CompletableFuture.allOf(done.toArray(CompletableFuture[]::new));
            Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run(kind.name().toLowerCase(), description,
                    clients, streams, recorder, all, () -> completions.stream()
                            .mapToLong(StreamCompletions::busyNanos).toArray(), flopsPerRequest,
                    sequencesPerRequest), out);
            MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
            return m;
        } finally {
            // Streams first: close() lets committed work finish natively before the buffers go.
            nativeStreams.forEach(NativeStream::close);
            owned.forEach(StressWorkload.Client::close);
        }
    }

    private void loop(StressWorkload.Client client, NativeStream stream, ReentrantLock streamLock,
                      StreamCompletions completions, LoadRecorder rec) {
        while (rec.trySend()) {
            long sentAt = System.nanoTime();
            String failure;
            try {
                failure = kind == Kind.RAW ? raw(client, stream, streamLock, completions)
                        : locked(client, stream, streamLock, completions);
            } catch (RuntimeException e) {
                failure = String.valueOf(e.getMessage());
            }
            rec.completed(sentAt, failure == null, failure);
        }
    }

    private static String raw(StressWorkload.Client client, NativeStream stream, ReentrantLock streamLock,
                              StreamCompletions completions) {
        CompletableFuture<String> done;
        streamLock.lock();
        try {
            client.encodeWhole(stream);
            done = completions.when(stream.commit());
        } finally {
            streamLock.unlock();
        }
        return done.join(); // waiting holds nothing
    }

    private String locked(StressWorkload.Client client, NativeStream stream, ReentrantLock streamLock,
                          StreamCompletions completions) {
        String failure = null;
        for (KernelStep step : client.steps()) {
            streamLock.lock();
            try {
                if (step.layerNorm()) {
                    layerNormLock.lock();
                    try {
                        stream.encodeKernel(step.pipeline(), step.args());
                        failure = firstOf(failure, completions.when(stream.commit()).join());
                    } finally {
                        layerNormLock.unlock();
                    }
                } else {
                    stream.encodeKernel(step.pipeline(), step.args());
                }
            } finally {
                streamLock.unlock();
            }
        }
        streamLock.lock();
        try {
            return firstOf(failure, completions.when(stream.commit()).join()); // synchronize under the mutex
        } finally {
            streamLock.unlock();
        }
    }

    private static String firstOf(String a, String b) {
        return a != null ? a : b;
    }
}
