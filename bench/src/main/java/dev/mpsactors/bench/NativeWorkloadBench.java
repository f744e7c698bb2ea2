package dev.mpsactors.bench;

import dev.mpsactors.nativemps.DeviceInfo;
import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.nativemps.NativeStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The multi-stream native workload: BERT-style encoder requests on 1..S streams at once, each stream fed
 * by its own client thread with a bounded number of committed requests in flight, completions counted
 * from the native callbacks. Prints throughput, GFLOP/s and the speed-up over one stream.
 */
final class NativeWorkloadBench {
    record Settings(int maxStreams, double secondsPerRun, double warmupSeconds, int inFlight, EncoderShape shape,
                    int blasThreads) {}

    record Result(int streams, long requests, long failed, double seconds, double requestsPerSecond, double gflops,
                  double p50Millis, double p99Millis) {}

    private final Settings settings;
    private final PrintStream out;

    NativeWorkloadBench(Settings settings, PrintStream out) {
        this.settings = settings;
        this.out = out;
    }

    List<Result> run() throws InterruptedException {
        List<Result> results = new ArrayList<>();
        try (NativeDevice device = NativeDevice.open(new DeviceOptions("cpu", 0, settings.blasThreads()))) {
            DeviceInfo info = device.info();
            EncoderShape s = settings.shape();
            out.printf("device: %s '%s', %d cores; encoder seq=%d hidden=%d heads=%d intermediate=%d layers=%d "
                            + "(%.2f GFLOP per request); %d in flight per stream, %.1f s per run%n",
                    info.backend(), info.name(), info.computeUnits(), s.seq(), s.hidden(), s.heads(),
                    s.intermediate(), s.layers(), s.flopsPerRequest() / 1e9, settings.inFlight(),
                    settings.secondsPerRun());
            try (EncoderLayerWorkload workload = new EncoderLayerWorkload(device, s, 42)) {
                for (int streams = 1; streams <= settings.maxStreams(); streams *= 2) {
                    results.add(runOnce(device, workload, streams));
                    if (streams < settings.maxStreams() && streams * 2 > settings.maxStreams()) {
                        streams = settings.maxStreams() / 2; // always finish on maxStreams itself
                    }
                }
            }
            waitForNativeCleanup(device);
        }
        printTable(results);
        return results;
    }

    private Result runOnce(NativeDevice device, EncoderLayerWorkload workload, int streams)
            throws InterruptedException {
        LongAdder completed = new LongAdder();
        LongAdder failed = new LongAdder();
        AtomicLong measuring = new AtomicLong(0); // 0 while warming up, 1 while measuring
        List<Thread> clients = new ArrayList<>();
        List<long[]> latencies = new ArrayList<>();
        long warmupNanos = (long) (settings.warmupSeconds() * 1e9);
        long runNanos = (long) (settings.secondsPerRun() * 1e9);
        long start = System.nanoTime();
        long measureStart = start + warmupNanos;
        long end = measureStart + runNanos;
        for (int k = 0; k < streams; k++) {
            long[] samples = new long[1 << 16];
            latencies.add(samples);
            int client = k;
            Thread t = new Thread(() -> clientLoop(device, workload, client, end, completed, failed, measuring,
                    samples), "bench-client-" + k);
            clients.add(t);
            t.start();
        }
        long lastReport = start;
        while (System.nanoTime() < end) {
            TimeUnit.MILLISECONDS.sleep(100);
            long now = System.nanoTime();
            if (measuring.get() == 0 && now >= measureStart) {
                completed.reset();
                failed.reset();
                measuring.set(1);
            }
            if (now - lastReport >= 1_000_000_000L) {
                lastReport = now;
                out.printf("  streams=%d  %s  %d requests done%n", streams,
                        now < measureStart ? "warming up" : String.format("%.0f%%", 100.0 * (now - measureStart) / runNanos),
                        completed.sum());
            }
        }
        for (Thread t : clients) {
            t.join();
        }
        double seconds = (System.nanoTime() - measureStart) / 1e9;
        long done = completed.sum();
        long[] all = latencies.stream().flatMapToLong(a -> Arrays.stream(a).filter(v -> v > 0)).sorted().toArray();
        double p50 = all.length == 0 ? 0 : all[all.length / 2] / 1e6;
        double p99 = all.length == 0 ? 0 : all[Math.min(all.length - 1, (int) (all.length * 0.99))] / 1e6;
        double rps = done / seconds;
        return new Result(streams, done, failed.sum(), seconds, rps, rps * settings.shape().flopsPerRequest() / 1e9,
                p50, p99);
    }

    /** One client: owns one stream, keeps `inFlight` requests committed, stops at `end`, drains. */
    private void clientLoop(NativeDevice device, EncoderLayerWorkload workload, int client, long end,
                            LongAdder completed, LongAdder failed, AtomicLong measuring, long[] latencySamples) {
        int inFlight = settings.inFlight();
        Semaphore permits = new Semaphore(inFlight);
        long[] committedAt = new long[inFlight];
        AtomicLong sampleIndex = new AtomicLong();
        // Each in-flight request has its own activations so concurrent requests on one stream never share them.
        List<EncoderLayerWorkload.Activations> slots = new ArrayList<>();
        NativeStream stream = device.createStream((point, status, message, startedNanos, finishedNanos) -> {
            long latency = System.nanoTime() - committedAt[(int) ((point - 1) % inFlight)];
            if (status == NativeStatus.OK) {
                completed.increment();
            } else {
                failed.increment();
                System.err.println("request failed on stream " + client + ": " + message);
            }
            if (measuring.get() == 1) {
                int i = (int) (sampleIndex.getAndIncrement() & (latencySamples.length - 1));
                latencySamples[i] = latency;
            }
            permits.release();
        });
        try {
            for (int k = 0; k < inFlight; k++) {
                slots.add(workload.activations(device, 1000L * client + k));
            }
            long point = 0;
            while (System.nanoTime() < end) {
                permits.acquire();
                int slot = (int) (point % inFlight);
                workload.encode(stream, slots.get(slot));
                committedAt[slot] = System.nanoTime();
                point = stream.commit();
            }
            permits.acquire(inFlight); // drain: every committed request reported before its buffers go
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            stream.close();
            for (EncoderLayerWorkload.Activations a : slots) {
                a.close();
            }
        }
    }

    /** Stream close is asynchronous (the executor drains, then ends): a device closes only once they are gone. */
    static void waitForNativeCleanup(NativeDevice device) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!device.liveObjects().isEmpty() && System.nanoTime() < deadline) {
            TimeUnit.MILLISECONDS.sleep(5);
        }
    }

    private void printTable(List<Result> results) {
        double base = results.isEmpty() ? 1 : results.get(0).requestsPerSecond();
        out.println();
        out.println("streams  requests  failed  requests/s  GFLOP/s  p50 ms  p99 ms  speed-up vs 1 stream");
        for (Result r : results) {
            out.printf("%7d  %8d  %6d  %10.1f  %7.2f  %6.2f  %6.2f  %6.2fx%n", r.streams(), r.requests(), r.failed(),
                    r.requestsPerSecond(), r.gflops(), r.p50Millis(), r.p99Millis(), r.requestsPerSecond() / base);
        }
    }
}
