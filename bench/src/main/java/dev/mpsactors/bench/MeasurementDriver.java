package dev.mpsactors.bench;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.HdrHistogram.Histogram;

/**
 * The part every measurement shares: progress once a second while the clients run, per-stream busy
 * time sampled at the start and end of the measured window, then the numbers. The clients themselves
 * (actors or threads) belong to the caller.
 */
final class MeasurementDriver {
    /** How long clients may take to get their last replies after the run ended before they count as lost. */
    static final long DRAIN_SECONDS = 120;

    private MeasurementDriver() {}

    /** What the caller knows about its run; {@code busyNanos} is read once per stream at each sample. */
    record Run(String name, String description, int clients, int streams, LoadRecorder recorder,
               CompletableFuture<Void> clientsDone, Supplier<long[]> busyNanos, double flopsPerRequest,
               int sequencesPerRequest) {}

    /** Waits for the run, printing progress; returns the measurement without batching/allocator figures. */
    static Measurement drive(Run run, PrintStream out) throws InterruptedException {
        LoadRecorder rec = run.recorder();
        long[] busyAtStart = null;
        long busyStartNanos = 0;
        long cpuAtStart = -1, cpuAtEnd = -1;
        long lastPrint = System.nanoTime();
        while (!run.clientsDone().isDone()) {
            TimeUnit.MILLISECONDS.sleep(20);
            long now = System.nanoTime();
            if (busyAtStart == null && rec.measuring(now)) {
                busyAtStart = run.busyNanos().get();
                busyStartNanos = now;
                cpuAtStart = processCpuNanos();
            }
            if (cpuAtEnd < 0 && rec.end != 0 && now >= rec.end) {
                cpuAtEnd = processCpuNanos(); // the drain after the window is not measured
            }
            if (rec.end != 0 && now > rec.end + TimeUnit.SECONDS.toNanos(DRAIN_SECONDS)) {
                break; // replies that never come are counted as lost below
            }
            if (now - lastPrint >= 1_000_000_000L) {
                lastPrint = now;
                out.printf("  [%s] %5.1f s  sent %d  answered %d  failed %d%n", run.name(), (now - rec.start) / 1e9,
                        rec.sent(), rec.answered(), rec.failed());
            }
        }
        // Busy time counts to the end of the window (a timed run's tail of drained requests is excluded).
        long busyEndNanos = System.nanoTime();
        long[] busyAtEnd = run.busyNanos().get();
        if (busyAtStart == null) {
            busyAtStart = new long[busyAtEnd.length];
            busyStartNanos = rec.start;
        }
        long windowNanos = busyEndNanos - busyStartNanos;
        List<Double> utilisation = new ArrayList<>();
        for (int s = 0; s < busyAtEnd.length; s++) {
            utilisation.add(round(Math.min(1.0, (busyAtEnd[s] - busyAtStart[s]) / (double) Math.max(1, windowNanos))));
        }
        if (cpuAtEnd < 0) {
            cpuAtEnd = processCpuNanos();
        }
        double cpuSeconds = cpuAtStart < 0 || cpuAtEnd <= cpuAtStart ? 0 : (cpuAtEnd - cpuAtStart) / 1e9;
        double seconds = rec.windowSeconds();
        double rps = rec.measured() / seconds;
        Histogram h = rec.latencyMicros();
        return new Measurement(run.name(), run.description(), run.clients(), run.streams(), round(seconds), rec.sent(),
                rec.succeeded(), rec.failed(), rec.sent() - rec.answered(), round(rps),
                round(rps * run.sequencesPerRequest()), ms(h, 50), ms(h, 90), ms(h, 99), round(h.getMaxValue() / 1e3),
                round(rps * run.flopsPerRequest() / 1e9), utilisation, null, null,
                cpuSeconds > 0 ? round(rec.measured() / cpuSeconds) : 0, null);
    }

    /** CPU time of the whole process (every thread, native ones included), or -1 where the JVM cannot say. */
    static long processCpuNanos() {
        java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean sun ? sun.getProcessCpuTime() : -1;
    }

    /** Waits for the clients' futures without failing the measurement when some never finish. */
    static void awaitQuietly(CompletableFuture<?> f, long seconds) {
        try {
            f.get(seconds, TimeUnit.SECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            // counted as lost / failed by the recorder
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static double ms(Histogram h, double percentile) {
        return h.getTotalCount() == 0 ? 0 : round(h.getValueAtPercentile(percentile) / 1e3);
    }

    static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
