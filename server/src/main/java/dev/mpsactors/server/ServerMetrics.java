package dev.mpsactors.server;

import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * The server's Prometheus metrics through Micrometer. Request counts and latencies per model, route and
 * status, overload refusals, cancellations and tokens are recorded as requests finish; what the runtime
 * knows (each model's {@code ModelStats}, each device's allocator memory, each stream's busy time; tagged by
 * {@code device}) is asked for
 * when {@code /metrics} is scraped, without blocking, and read by the gauges from the last answers.
 */
final class ServerMetrics {
    final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final MpsRuntime runtime;
    private final Map<String, ModelMeters> models = new ConcurrentHashMap<>();
    /** Each device's last allocator statistics, by device ordinal. */
    private final Map<Integer, AtomicReference<AllocatorProtocol.AllocatorStats>> allocators = new ConcurrentHashMap<>();
    /** Each stream's samples, by "device/stream". */
    private final Map<String, StreamSample> streams = new ConcurrentHashMap<>();

    /** A stream's busy time at the last two scrapes: utilisation is their difference over the wall time between. */
    private static final class StreamSample {
        volatile long busyNanos;
        volatile long atNanos;
        volatile double utilisation;
    }

    /** The gauges of one loaded version, read from its last ModelStats; removed when it is unloaded. */
    private final class ModelMeters {
        final AtomicReference<InferenceProtocol.ModelStats> stats = new AtomicReference<>();
        final List<Meter> meters = new ArrayList<>();
        final DoubleAdder tokens = new DoubleAdder();
        volatile double tokensAtScrape;
        volatile long scrapedAtNanos = System.nanoTime();
        volatile double tokensPerSecond;

        /**
         * @param local whether the model actor computes in this process: its own counters ({@code mps_model_*})
         *              are shown only then (on a cluster node they live on the replicas' nodes)
         */
        ModelMeters(ServedModel m, boolean local) {
            Tags tags = Tags.of("model", m.name, "version", Integer.toString(m.version));
            if (local) {
                modelActorMeters(tags);
            }
            meters.add(FunctionCounter.builder("mps.server.tokens", tokens, DoubleAdder::sum)
                    .description("tokens of the requests answered with embeddings (special tokens included)")
                    .tags(tags).register(registry));
            meters.add(Gauge.builder("mps.server.tokens.per.second", this, mm -> mm.tokensPerSecond)
                    .description("tokens embedded per second between the last two scrapes").tags(tags)
                    .register(registry));
            meters.add(Gauge.builder("mps.server.in.flight", m, ServedModel::inFlight)
                    .description("requests the server holds on this version").tags(tags).register(registry));
        }

        private void modelActorMeters(Tags tags) {
            meters.add(counter("mps.model.requests", "requests the model actor took in (overloaded ones included)",
                    tags, s -> s.requests()));
            meters.add(counter("mps.model.succeeded", "requests answered with a result", tags, s -> s.succeeded()));
            meters.add(counter("mps.model.failed", "requests answered with a failure", tags, s -> s.failed()));
            meters.add(counter("mps.model.overloaded", "requests refused at admission (the queue was full)", tags,
                    s -> s.overloaded()));
            meters.add(counter("mps.model.expired", "requests whose deadline passed while queued (never run)", tags,
                    s -> s.expired()));
            meters.add(counter("mps.model.batches", "device batches run", tags, s -> s.batches()));
            meters.add(counter("mps.model.sequences", "sequences computed (the batch sizes summed)", tags,
                    s -> s.sequences()));
            meters.add(gauge("mps.model.queue.depth", "requests the model holds, queued or running", tags,
                    s -> s.requests() - s.succeeded() - s.failed() - s.overloaded()));
            meters.add(gauge("mps.model.batch.size.mean", "sequences per device batch, mean since load", tags,
                    s -> s.batches() == 0 ? 0 : (double) s.sequences() / s.batches()));
            meters.add(gauge("mps.model.batch.size.max", "the largest device batch since load", tags,
                    s -> s.largestBatch()));
        }

        private Meter counter(String name, String help, Tags tags,
                              java.util.function.ToDoubleFunction<InferenceProtocol.ModelStats> read) {
            return FunctionCounter.builder(name, stats, r -> r.get() == null ? 0 : read.applyAsDouble(r.get()))
                    .description(help).tags(tags).register(registry);
        }

        private Meter gauge(String name, String help, Tags tags,
                            java.util.function.ToDoubleFunction<InferenceProtocol.ModelStats> read) {
            return Gauge.builder(name, stats, r -> r.get() == null ? 0 : read.applyAsDouble(r.get()))
                    .description(help).tags(tags).register(registry);
        }

        void sampleTokens() {
            long now = System.nanoTime();
            double total = tokens.sum();
            double seconds = (now - scrapedAtNanos) / 1e9;
            if (seconds > 0) {
                tokensPerSecond = (total - tokensAtScrape) / seconds;
            }
            tokensAtScrape = total;
            scrapedAtNanos = now;
        }
    }

    ServerMetrics(MpsRuntime runtime) {
        this.runtime = runtime;
        runtime.devices().forEach(this::deviceMeters);
    }

    /** Registers the gauges of a device and its streams the first time it is seen (it may restart). */
    private void deviceMeters(dev.mpsactors.runtime.RuntimeDevice device) {
        allocators.computeIfAbsent(device.ordinal(), ordinal -> {
            AtomicReference<AllocatorProtocol.AllocatorStats> allocator = new AtomicReference<>();
            Tags tags = Tags.of("device", Integer.toString(ordinal));
            Gauge.builder("mps.device.memory.allocated", allocator, r -> r.get() == null ? 0 : r.get().allocatedBytes())
                    .baseUnit("bytes").description("device memory leased to work now").tags(tags).register(registry);
            Gauge.builder("mps.device.memory.reserved", allocator, r -> r.get() == null ? 0 : r.get().reservedBytes())
                    .baseUnit("bytes").description("device memory the allocator holds (leased and cached)")
                    .tags(tags).register(registry);
            Gauge.builder("mps.device.memory.peak.reserved", allocator,
                            r -> r.get() == null ? 0 : r.get().peakReservedBytes())
                    .baseUnit("bytes").description("the most device memory the allocator held").tags(tags)
                    .register(registry);
            Gauge.builder("mps.device.memory.limit", allocator, r -> r.get() == null ? 0 : r.get().limitBytes())
                    .baseUnit("bytes").description("the allocator's high watermark").tags(tags).register(registry);
            return allocator;
        });
        for (StreamHandle s : device.streams().handles()) {
            streams.computeIfAbsent(device.ordinal() + "/" + s.id(), key -> {
                StreamSample sample = new StreamSample();
                sample.atNanos = System.nanoTime();
                Tags tags = Tags.of("device", Integer.toString(device.ordinal()), "stream", Integer.toString(s.id()));
                FunctionCounter.builder("mps.stream.busy", sample, x -> x.busyNanos / 1e9).baseUnit("seconds")
                        .description("time the stream had work on the device").tags(tags).register(registry);
                Gauge.builder("mps.stream.utilisation", sample, x -> x.utilisation)
                        .description("fraction of the time between the last two scrapes the stream was busy")
                        .tags(tags).register(registry);
                return sample;
            });
        }
    }

    void modelServing(ServedModel m) {
        models.put(m.runtimeName, new ModelMeters(m, runtime.models().model(m.runtimeName).isPresent()));
    }

    void modelRetired(ServedModel m) {
        ModelMeters mm = models.remove(m.runtimeName);
        if (mm != null) {
            mm.meters.forEach(registry::remove);
        }
    }

    /** One answered request: its latency by model, route and status; 429s also count as overload refusals. */
    void request(String model, String route, int status, long startNanos) {
        Timer.builder("mps.server.requests").description("HTTP requests answered, by model, route and status")
                .tags("model", model, "route", route, "status", Integer.toString(status))
                .publishPercentileHistogram().serviceLevelObjectives()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofSeconds(60))
                .register(registry).record(System.nanoTime() - startNanos, TimeUnit.NANOSECONDS);
        if (status == 429) {
            Counter.builder("mps.server.overloaded").description("requests refused with 429 (the model's queue was full)")
                    .tags("model", model, "route", route).register(registry).increment();
        }
    }

    void tokens(ServedModel m, long n) {
        ModelMeters mm = models.get(m.runtimeName);
        if (mm != null) {
            mm.tokens.add(n);
        }
    }

    void cancelled(String model) {
        Counter.builder("mps.server.cancelled").description("requests whose client disconnected before the answer")
                .tags("model", model).register(registry).increment();
    }

    void unauthorized() {
        Counter.builder("mps.server.unauthorized").description("requests refused with 401 (no or a wrong API key)")
                .register(registry).increment();
    }

    /** Asks the runtime for what the gauges show, then renders the registry in Prometheus text format. */
    CompletionStage<String> scrape(List<ServedModel> served) {
        List<CompletableFuture<?>> asks = new ArrayList<>();
        for (ServedModel m : served) {
            ModelMeters mm = models.get(m.runtimeName);
            runtime.models().model(m.runtimeName).ifPresent(ref -> {
                if (mm != null) {
                    asks.add(runtime.models().modelStats(ref).toCompletableFuture().thenAccept(mm.stats::set));
                    mm.sampleTokens();
                }
            });
        }
        for (dev.mpsactors.runtime.RuntimeDevice device : runtime.devices()) {
            deviceMeters(device);
            AtomicReference<AllocatorProtocol.AllocatorStats> allocator = allocators.get(device.ordinal());
            asks.add(device.memory().stats().toCompletableFuture().thenAccept(allocator::set));
            for (StreamHandle s : device.streams().handles()) {
                StreamSample sample = streams.get(device.ordinal() + "/" + s.id());
                asks.add(device.streams().stats(s).toCompletableFuture().thenAccept(st -> record(sample, st)));
            }
        }
        return CompletableFuture.allOf(asks.stream().map(f -> f.exceptionally(e -> null))
                        .toArray(CompletableFuture[]::new))
                .thenApply(v -> registry.scrape());
    }

    private static void record(StreamSample sample, StreamProtocol.StreamStats st) {
        long now = System.nanoTime();
        long wall = now - sample.atNanos;
        if (wall > 0 && st.busyNanos() >= sample.busyNanos) {
            sample.utilisation = Math.min(1.0, (st.busyNanos() - sample.busyNanos) / (double) wall);
        }
        sample.busyNanos = st.busyNanos();
        sample.atNanos = now;
    }
}
