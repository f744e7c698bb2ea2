package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.runtime.RuntimeSettings;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * {@code bin/mps-actors stress}: per client count, mps-actors then each chosen baseline on the same model
 * and shape, one after another; then the GEMM rate alone; then the tables, JSON and plot. Returns the exit
 * status: 1 when any reply was lost.
 */
final class StressBench {
    private final StressOptions options;
    private final String command;
    private final PrintStream out;
    /** A running server ({@code --url}) driven over HTTP after the in-process run, or null. */
    private final java.net.URI url;

    StressBench(StressOptions options, String command, PrintStream out) {
        this(options, command, out, null);
    }

    StressBench(StressOptions options, String command, PrintStream out, java.net.URI url) {
        this.options = options;
        this.command = command;
        this.out = out;
        this.url = url;
        if (url != null && (options.model() == null || options.mix() != StressOptions.Mix.BERT
                || options.clusterNodes() > 0)) {
            throw new Cli.UsageException("--url needs --model DIR, the folder the server serves (BERT requests, one runtime)");
        }
    }

    /** Removes {@code --url URL} from {@code args}: the server {@code stress} also drives over HTTP, or null. */
    static java.net.URI takeUrl(java.util.Deque<String> args) {
        java.util.List<String> rest = new java.util.ArrayList<>(args);
        int i = rest.indexOf("--url");
        if (i < 0) {
            return null;
        }
        if (i + 1 >= rest.size()) {
            throw new Cli.UsageException("--url needs a value");
        }
        String v = rest.get(i + 1);
        rest.subList(i, i + 2).clear();
        args.clear();
        args.addAll(rest);
        try {
            java.net.URI u = java.net.URI.create(v);
            if ((u.getScheme() == null || !u.getScheme().startsWith("http")) || u.getHost() == null) {
                throw new IllegalArgumentException("not an http(s) URL");
            }
            return u;
        } catch (IllegalArgumentException e) {
            throw new Cli.UsageException("--url takes http://HOST:PORT, got '" + v + "'");
        }
    }

    int run() throws Exception {
        StressModel model = StressModel.resolve(options.model(), options.onnx());
        try {
            String origin = options.model() != null ? "" : options.onnx() != null ? "imported from " + options.onnx()
                    + ": " : "generated BERT ";
            out.println("model: " + origin + model.describe() + " in " + model.folder()
                    + (options.lengths() == null ? "" : ", request lengths " + options.lengths()));
            Config actorsConfig = config(options.streams() > 0 ? options.streams() : 0, 0);
            RuntimeSettings settings = RuntimeSettings.fromConfig(actorsConfig);
            List<StressReport.Point> points = new ArrayList<>();
            for (int clients : options.clientCounts()) {
                points.add(point(model, clients, actorsConfig, settings));
            }
            List<GemmCeiling.Rate> gemm = List.of();
            Double ceiling = null, fraction = null;
            if (options.gemmSeconds() > 0) {
                gemm = gemm(model, settings);
                ceiling = gemm.stream().mapToDouble(GemmCeiling.Rate::gflops).max().orElse(0);
                fraction = MeasurementDriver.round(points.get(points.size() - 1).actors().gflops() / ceiling);
            }
            StressReport report = new StressReport(LocalDate.now().toString(), machine(), command, options.backend(),
                    model.describe(), options.mix().name().toLowerCase(), options.seq(),
                    options.texts() != null ? "of the texts in " + options.texts()
                            : options.lengths() == null ? null : options.lengths().toString(), options.batchPerRequest(),
                    options.texts() != null ? "the folder's sentence embedding" : options.outputs().toString(), points,
                    gemm, ceiling, fraction);
            report.print(out);
            if (options.json() != null) {
                report.writeJson(options.json());
                out.println("json: " + options.json());
            }
            if (options.plot() != null) {
                SvgPlot.write(report, options.plot());
                out.println("plot: " + options.plot());
            }
            long lost = report.lost();
            if (lost > 0) {
                out.println("LOST " + lost + " replies");
                return 1;
            }
            return 0;
        } finally {
            model.cleanUp();
        }
    }

    private StressReport.Point point(StressModel model, int clients, Config actorsConfig, RuntimeSettings settings)
            throws Exception {
        int streams = settings.streams();
        List<Measurement> ms = new ArrayList<>();
        out.printf("%n-- %d clients, %d streams --%n", clients, streams);
        TextStress texts = null;
        if (options.texts() != null) {
            texts = new TextStress(options, clients, actorsConfig, model.folder());
            ms.addAll(texts.run(model, recorders(), out));
        } else if (options.clusterNodes() > 0) {
            ms.add(new ClusterStress(options, clients, actorsConfig).run(model.folder(), model, recorders(), out));
        } else {
            ms.add(new ActorStress("mps-actors", "actor runtime, " + streams + " streams per device, max-batch "
                    + settings.model().maxBatch(), actorsConfig, options, clients).run(model.folder(), model,
                    recorders(), out));
        }
        if (url != null) {
            ms.add(http(model, clients));
        }
        for (StressOptions.Baseline b : options.compare()) {
            ms.add(switch (b) {
                case RAW -> threads(ThreadBaseline.Kind.RAW, model, clients, streams, settings,
                        "plain threads, per-stream lock for encode+commit only, whole request in one encode");
                case LOCKED -> threads(ThreadBaseline.Kind.LOCKED, model, clients, streams, settings,
                        "fork style: stream mutex held across commit+wait, global LayerNorm lock, kernel by kernel");
                case SERIAL -> new ActorStress("serial", "actor runtime, 1 device, 1 stream, max-batch 1",
                        config(1, 1).withValue("mps-actors.devices", ConfigValueFactory.fromAnyRef(1)),
                        options.withoutCrash(), clients).run(model.folder(), model, recorders(), out);
                case ORT -> new OrtPeer(options, clients, model).run(recorders(), out);
            });
        }
        Map<String, Double> ratios = new LinkedHashMap<>(), cpuRatios = new LinkedHashMap<>();
        for (Measurement m : ms.subList(1, ms.size())) {
            ratios.put(m.name(), MeasurementDriver.round(ms.get(0).requestsPerSecond()
                    / Math.max(1e-9, m.requestsPerSecond())));
            cpuRatios.put(m.name(), MeasurementDriver.round(ms.get(0).requestsPerCpuSecond()
                    / Math.max(1e-9, m.requestsPerCpuSecond())));
        }
        if (texts != null) {
            texts.printRates(ms, out);
        }
        return new StressReport.Point(clients, ms, ratios, cpuRatios);
    }

    /** The same requests, from {@code clients} HTTP connections in closed loop, to the server at {@code url}. */
    private Measurement http(StressModel model, int clients) throws Exception {
        dev.mpsactors.server.HttpLoad load = new dev.mpsactors.server.HttpLoad(url);
        String served = load.defaultModel();
        List<List<int[][]>> requests = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            requests.add(model.clientRequests(c, options).stream().map(in -> in.inputIds()).toList());
        }
        LoadRecorder rec = recorders().get();
        java.util.concurrent.CompletableFuture<Void> all = load.start(served, requests,
                new dev.mpsactors.server.HttpLoad.Recorder() {
                    @Override
                    public boolean trySend() {
                        return rec.trySend();
                    }

                    @Override
                    public void completed(long sentAtNanos, boolean ok, String failure) {
                        rec.completed(sentAtNanos, ok, failure);
                    }
                });
        Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run("http", "POST /v1/embeddings (token ids) to "
                + url + ", model " + served + ", " + clients + " connections", clients, load.streamBusyNanos().length,
                rec, all, load::streamBusyNanos, model.flopsPerRequest(options), model.sequencesPerRequest(options)), out);
        MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
        return m;
    }

    private Measurement threads(ThreadBaseline.Kind kind, StressModel model, int clients, int streams,
                                RuntimeSettings settings, String description) throws InterruptedException {
        try (NativeDevice device = NativeDevice.open(new DeviceOptions(options.backend(), 0,
                settings.blasThreads(), settings.gemmMath()))) {
            Function<NativeDevice, StressWorkload> workload = d -> options.mix() == StressOptions.Mix.LAYERNORM
                    ? LayerNormMix.onDevice(d, options.seq(), model.config().hiddenSize(), options.layerNorms())
                    : bert(d, model);
            Measurement m = new ThreadBaseline(kind, clients, streams).run(device, workload, recorders(),
                    model.flopsPerRequest(options), model.sequencesPerRequest(options), description, out);
            NativeWorkloadBench.waitForNativeCleanup(device);
            return m;
        }
    }

    private StressWorkload bert(NativeDevice device, StressModel model) {
        try {
            return new BertWorkload(device, model.folder(), options.batchPerRequest(), options.seq());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private List<GemmCeiling.Rate> gemm(StressModel model, RuntimeSettings settings) throws InterruptedException {
        int rows = options.seq() * Math.max(options.batchPerRequest(), settings.model().maxBatch());
        List<GemmCeiling.Shape> shapes = List.of(new GemmCeiling.Shape("square", 2048, 2048, 2048),
                new GemmCeiling.Shape("ffn-matched", rows, model.config().intermediateSize(),
                        model.config().hiddenSize()));
        out.printf("%n-- GEMM alone --%n");
        try (NativeDevice device = NativeDevice.open(new DeviceOptions(options.backend(), 0,
                settings.blasThreads(), settings.gemmMath()))) {
            List<GemmCeiling.Rate> rates = GemmCeiling.measure(device, shapes, settings.streams(),
                    options.gemmSeconds(), out);
            NativeWorkloadBench.waitForNativeCleanup(device);
            return rates;
        }
    }

    private Supplier<LoadRecorder> recorders() {
        return () -> new LoadRecorder(options.warmup(), options.seconds(), options.requests());
    }

    /** The runtime's configuration with the command's backend; streams / max-batch overridden when > 0. */
    private Config config(int streams, int maxBatch) {
        Config c = ConfigFactory.load().withValue("mps-actors.backend", ConfigValueFactory.fromAnyRef(options.backend()));
        if (streams > 0) {
            c = c.withValue("mps-actors.streams", ConfigValueFactory.fromAnyRef(streams));
        }
        if (maxBatch > 0) {
            c = c.withValue("mps-actors.model.max-batch", ConfigValueFactory.fromAnyRef(maxBatch));
        }
        if (options.cpuDevices() > 0) {
            c = c.withValue("mps-actors.cpu.devices", ConfigValueFactory.fromAnyRef(options.cpuDevices()));
        }
        if (options.devices() != null) {
            c = c.withValue("mps-actors.devices", ConfigValueFactory.fromAnyRef(options.devices()));
        }
        if (options.crashDevice() >= 0) {
            c = c.withValue("mps-actors.fault-injection.enabled", ConfigValueFactory.fromAnyRef(true));
        }
        return c;
    }

    static StressReport.Machine machine() {
        String cpu = "unknown";
        try {
            cpu = Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                    .map(l -> l.substring(l.indexOf(':') + 1).trim()).findFirst().orElse(cpu);
        } catch (IOException ignored) {
            // not Linux: the CPU stays unknown
        }
        return new StressReport.Machine(Runtime.getRuntime().availableProcessors(), cpu);
    }
}
