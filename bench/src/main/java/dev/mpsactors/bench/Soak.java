package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.RuntimeProtocol.FaultCounts;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/mps-actors soak}: minutes of closed-loop load with every fault switched on — kernel failures,
 * device out-of-memory, hung command buffers caught by the watchdog, owners crashed on a timer — plus bad
 * requests and bursts past admission. Prints progress every interval and a final report: requests sent and
 * answered, replies by kind and cause, faults injected, replies lost (must be 0), device and JVM memory at
 * start and end, native objects left after shutdown (must be none). Exit 1 when anything was lost or left.
 */
@Command(name = "soak", description = "Minutes of load with every fault on (kernel failures, device out-of-memory,"
        + " hung command buffers, owners crashed on a timer, bad requests); reports served, faults, replies lost."
        + " Exit 1 when a reply was lost or duplicated, or memory or native objects were left.")
final class Soak implements Callable<Integer> {
    @Option(names = "--minutes", paramLabel = "M", description = "how long (default ${DEFAULT-VALUE})")
    double minutes = 2;

    @Option(names = "--clients", paramLabel = "C", description = "closed-loop clients (default ${DEFAULT-VALUE})")
    int clients = 32;

    @Option(names = "--model", paramLabel = "DIR", description = "the model folder (default: a generated BERT)")
    Path model;

    @Option(names = "--kernel-rate", paramLabel = "P", description = "kernel failure rate (default ${DEFAULT-VALUE})")
    double kernelRate = 0.01;

    @Option(names = "--oom-rate", paramLabel = "P", description = "device OOM rate (default ${DEFAULT-VALUE})")
    double oomRate = 0.02;

    @Option(names = "--hang-rate", paramLabel = "P",
            description = "hung command buffer rate (default ${DEFAULT-VALUE})")
    double hangRate = 0.002;

    @Option(names = "--crash-every", paramLabel = "SECONDS", description = "an owner crashed this often"
            + " (default ${DEFAULT-VALUE})")
    double crashEvery = 5;

    @Option(names = "--watchdog", paramLabel = "SECONDS",
            description = "the stream watchdog (default ${DEFAULT-VALUE})")
    double watchdog = 2;

    @Option(names = "--url", paramLabel = "http://HOST:PORT", description = "the same clients through an HTTP"
            + " server started on that address (POST /v1/embeddings with token ids, bad bodies among them)")
    java.net.URI url;

    @Override
    public Integer call() throws Exception {
        if (!(minutes > 0) || !(crashEvery > 0) || !(watchdog > 0)) {
            throw new Cli.UsageException("--minutes, --crash-every and --watchdog must be > 0");
        }
        for (double rate : new double[] {kernelRate, oomRate, hangRate}) {
            if (!(rate >= 0 && rate <= 1)) {
                throw new Cli.UsageException("--kernel-rate, --oom-rate and --hang-rate are between 0 and 1, got "
                        + rate);
            }
        }
        Cli.positive("--clients", clients);
        Path model = this.model;
        if (model == null) {
            model = Files.createTempDirectory("soak-model-");
            BertFolderGenerator.write(model, new BertConfig("bert", 512, 64, 2, 4, 128, 128, 2, 1e-12, "gelu"), 21);
        }
        Config config = ConfigFactory.parseString(String.format(java.util.Locale.ROOT,
                "mps-actors { stream-watchdog = %.3fs, model { max-batch = 8, max-queued = %d },"
                        + " fault-injection { enabled = true, kernel-failure-rate = %s, allocation-failure-rate = %s,"
                        + " hang-rate = %s, seed = 42 } }", watchdog, clients * 4, kernelRate, oomRate, hangRate))
                .withFallback(ConfigFactory.load());
        if (url != null) {
            if (url.getHost() == null || url.getPort() < 0) {
                throw new Cli.UsageException("--url takes http://HOST:PORT, got '" + url + "'");
            }
            if (!Files.exists(model.resolve("tokenizer.json"))) {
                dev.mpsactors.server.VocabularyTokenizer.write(model, new com.fasterxml.jackson.databind.ObjectMapper()
                        .readTree(model.resolve("config.json").toFile()).path("vocab_size").asInt());
            }
            // no warm-up: with faults on, a warm-up request may fail on purpose
            config = ConfigFactory.parseString("mps-actors.server { host = \"" + url.getHost() + "\", port = "
                    + url.getPort() + ", warmup-batch-sizes = [] }").withFallback(config);
        }
        return new Run(config, model, clients, Duration.ofMillis((long) (minutes * 60_000)),
                Duration.ofMillis((long) (crashEvery * 1000)), url).execute();
    }

    private static final class Run {
        private final Config config;
        private final Path folder;
        private final int clients;
        private final Duration length;
        private final Duration crashEvery;
        private final AtomicLong sent = new AtomicLong();
        private final AtomicLong answered = new AtomicLong();
        private final AtomicLong duplicates = new AtomicLong();
        private final Map<String, Boolean> open = new ConcurrentHashMap<>();
        private final Map<String, AtomicLong> byCause = new ConcurrentHashMap<>();
        private final AtomicLong badInputsTried = new AtomicLong();
        private final AtomicLong badInputsRefused = new AtomicLong();
        private final java.net.URI url;
        private dev.mpsactors.server.HttpLoad http;

        Run(Config config, Path folder, int clients, Duration length, Duration crashEvery, java.net.URI url) {
            this.url = url;
            this.config = config;
            this.folder = folder;
            this.clients = clients;
            this.length = length;
            this.crashEvery = crashEvery;
        }

        /** Runs the soak and prints its report; 1 when anything was lost or left, else 0. */
        int execute() throws Exception {
            MpsRuntime rt = MpsRuntime.start(config);
            dev.mpsactors.server.MpsServer server = null;
            ActorRef<InferenceProtocol.Command> model;
            if (url != null) {
                server = dev.mpsactors.server.MpsServer.start(rt, dev.mpsactors.server.ServerSettings.fromConfig(
                        config.resolve()), Map.of("soak", folder));
                http = new dev.mpsactors.server.HttpLoad(java.net.URI.create(server.url()));
                model = rt.models().model("soak.v1").orElseThrow();
                System.out.printf("soak: through the HTTP server at %s%n", server.url());
            } else {
                model = rt.models().loadModel("soak", folder).toCompletableFuture().get(120, TimeUnit.SECONDS);
            }
            AllocatorStats memoryAtStart = rt.memory().stats().toCompletableFuture().get(60, TimeUnit.SECONDS);
            long heapAtStart = usedHeap();
            System.out.printf("soak: %s, %d clients, faults on (%s), watchdog %s, an owner crashed every %s%n",
                    length, clients, config.getConfig("mps-actors.fault-injection").root().render(
                            com.typesafe.config.ConfigRenderOptions.concise()), config.getDuration(
                            "mps-actors.stream-watchdog"), crashEvery);
            long end = System.nanoTime() + length.toNanos();
            List<Thread> workers = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                int client = c;
                Thread t = new Thread(() -> clientLoop(rt, model, client, end), "soak-client-" + c);
                t.start();
                workers.add(t);
            }
            Random chaos = new Random(7);
            long nextCrash = System.nanoTime() + crashEvery.toNanos();
            long nextReport = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            long started = System.nanoTime();
            while (System.nanoTime() < end) {
                Thread.sleep(50);
                if (System.nanoTime() >= nextCrash) {
                    crashAnOwner(rt, chaos);
                    nextCrash += crashEvery.toNanos();
                }
                if (System.nanoTime() >= nextReport) {
                    FaultCounts f = rt.faultCounts().toCompletableFuture().get(60, TimeUnit.SECONDS);
                    System.out.printf("  %5.0f s: %d sent, %d answered, faults %d (kernel %d, oom %d, hang %d, crash %d)%n",
                            (System.nanoTime() - started) / 1e9, sent.get(), answered.get(), f.total(),
                            f.kernelFailures(), f.allocationFailures(), f.hangs(), f.crashes());
                    nextReport += TimeUnit.SECONDS.toNanos(10);
                }
            }
            for (Thread t : workers) {
                t.join(TimeUnit.MINUTES.toMillis(3));
            }
            FaultCounts faults = rt.faultCounts().toCompletableFuture().get(60, TimeUnit.SECONDS);
            AllocatorStats memoryAtEnd = settledAllocator(rt);
            long heapAtEnd = usedHeap();
            LiveObjects left = server != null ? server.shutdown() : rt.shutdown(Duration.ofSeconds(60));
            long lost = sent.get() - answered.get();
            System.out.println();
            System.out.printf("requests sent       %d%n", sent.get());
            System.out.printf("replies             %d (lost %d, answered twice %d)%n", answered.get(), lost,
                    duplicates.get());
            new TreeMap<>(byCause).forEach((cause, n) -> System.out.printf("  %-17s %d%n", cause, n.get()));
            System.out.printf("bad inputs tried    %d (refused naming the problem: %d)%n", badInputsTried.get(),
                    badInputsRefused.get());
            System.out.printf("faults injected     %d (kernel failures %d, device OOM %d, hangs %d, owner crashes %d)%n",
                    faults.total(), faults.kernelFailures(), faults.allocationFailures(), faults.hangs(),
                    faults.crashes());
            System.out.printf("device memory       leased %d -> %d bytes, reserved %d -> %d bytes, peak reserved %d"
                            + " of limit %d%n", memoryAtStart.allocatedBytes(), memoryAtEnd.allocatedBytes(),
                    memoryAtStart.reservedBytes(), memoryAtEnd.reservedBytes(), memoryAtEnd.peakReservedBytes(),
                    memoryAtEnd.limitBytes());
            System.out.printf("JVM heap used       %d MiB -> %d MiB (after GC)%n", heapAtStart >> 20, heapAtEnd >> 20);
            System.out.printf("native objects left %s%n", left);
            long serverErrors = byCause.entrySet().stream().filter(e -> e.getKey().startsWith("HTTP 500"))
                    .mapToLong(e -> e.getValue().get()).sum();
            if (lost != 0 || duplicates.get() != 0 || !left.isEmpty() || memoryAtEnd.allocatedBytes() != 0
                    || serverErrors != 0) {
                System.out.println("SOAK FAILED: replies lost or duplicated, or memory/native objects left");
                return Cli.FAILURE_STATUS;
            }
            System.out.println("soak passed: no reply lost, allocator at baseline, nothing left natively");
            return 0;
        }

        private void clientLoop(MpsRuntime rt, ActorRef<InferenceProtocol.Command> model, int client, long end) {
            Random random = new Random(1000 + client);
            long n = 0;
            while (System.nanoTime() < end) {
                String id = client + "-" + n++;
                boolean bad = random.nextInt(50) == 0;
                InferenceInputs in = bad ? badInput(random) : goodInput(random);
                if (bad) {
                    badInputsTried.incrementAndGet();
                }
                open.put(id, Boolean.TRUE);
                sent.incrementAndGet();
                if (http != null) {
                    overHttp(id, bad, in, random);
                    continue;
                }
                InferReply reply;
                try {
                    reply = AskPattern.<InferenceProtocol.Command, InferReply>ask(model,
                            r -> InferenceProtocol.Infer.within(id, in, r, Duration.ofSeconds(30)),
                            Duration.ofSeconds(120), rt.system().scheduler()).toCompletableFuture().join();
                } catch (RuntimeException e) {
                    count("no reply (ask timed out)");
                    continue; // counted as lost: sent but not answered
                }
                if (open.remove(id) == null) {
                    duplicates.incrementAndGet();
                    continue;
                }
                answered.incrementAndGet();
                if (reply instanceof InferenceProtocol.InferResult) {
                    count(bad ? "BAD INPUT SERVED" : "result");
                } else if (reply instanceof InferenceProtocol.Overloaded) {
                    count("overloaded");
                } else if (reply instanceof InferenceProtocol.InferFailure f) {
                    if (bad) {
                        badInputsRefused.incrementAndGet();
                    }
                    count(bad ? "bad input refused" : cause(f.reason()));
                }
            }
        }

        /** One request through the server: its status (and error message) classified as the actor replies are. */
        private void overHttp(String id, boolean bad, InferenceInputs in, Random random) {
            dev.mpsactors.server.HttpLoad.Outcome o;
            try {
                o = http.send(bad ? badBody(random) : "{\"input\": " + java.util.Arrays.deepToString(in.inputIds()) + "}");
            } catch (Exception e) {
                count("no reply (" + e.getClass().getSimpleName() + ")");
                return; // counted as lost: sent but not answered
            }
            if (open.remove(id) == null) {
                duplicates.incrementAndGet();
                return;
            }
            answered.incrementAndGet();
            if (o.status() == 200) {
                count(bad ? "BAD INPUT SERVED" : "result");
            } else if (o.status() == 429) {
                count("overloaded");
            } else if (bad && o.status() >= 400 && o.status() < 500) {
                badInputsRefused.incrementAndGet();
                count("bad input refused (" + o.status() + ")");
            } else if (o.status() >= 500 && o.status() != 503 && o.status() != 504) {
                count("HTTP " + o.status() + ": " + o.error());
            } else {
                count(cause(String.valueOf(o.error())));
            }
        }

        /** Out-of-vocabulary, negative, empty and over-long token ids, and bodies that are not JSON. */
        private static String badBody(Random random) {
            return switch (random.nextInt(5)) {
                case 0 -> "{\"input\": [[1, 2, 100000]]}";
                case 1 -> "{\"input\": [[-1, 2]]}";
                case 2 -> "{\"input\": [[]]}";
                case 3 -> "{\"input\": " + java.util.Arrays.toString(new int[10_000]) + "}";
                default -> "{\"input\": [[1, 2";
            };
        }

        private static String cause(String reason) {
            if (reason.contains("injected kernel failure") || reason.contains("retired after point")) {
                return "kernel failure";
            }
            if (reason.contains("out of memory")) {
                return "device OOM";
            }
            if (reason.contains("watchdog")) {
                return "hung stream";
            }
            if (reason.contains("injected crash") || reason.contains("restarted") || reason.contains("allocator")) {
                return "owner crash";
            }
            if (reason.contains("deadline")) {
                return "deadline";
            }
            return "other: " + reason.substring(0, Math.min(60, reason.length()));
        }

        private void count(String cause) {
            byCause.computeIfAbsent(cause, k -> new AtomicLong()).incrementAndGet();
        }

        private static InferenceInputs goodInput(Random random) {
            int rows = 1 + random.nextInt(2), length = 4 + random.nextInt(60);
            int[][] ids = new int[rows][length];
            for (int[] row : ids) {
                for (int t = 0; t < length; t++) {
                    row[t] = 1 + random.nextInt(500);
                }
            }
            return InferenceInputs.of(ids);
        }

        /** Out-of-vocabulary ids, ragged rows, sequences past max positions, negative ids, empty rows. */
        private static InferenceInputs badInput(Random random) {
            return switch (random.nextInt(5)) {
                case 0 -> InferenceInputs.of(new int[][] {{1, 2, 100_000}});
                case 1 -> InferenceInputs.of(new int[][] {{1, 2, 3}, {1}});
                case 2 -> InferenceInputs.of(new int[1][10_000]);
                case 3 -> InferenceInputs.of(new int[][] {{-1, 2}});
                default -> InferenceInputs.of(new int[][] {{}});
            };
        }

        private static void crashAnOwner(MpsRuntime rt, Random chaos) {
            List<StreamHandle> streams = rt.streams().handles();
            if (chaos.nextInt(4) == 0) {
                rt.refs().allocator().tell(new AllocatorProtocol.InjectCrash("soak"));
            } else {
                streams.get(chaos.nextInt(streams.size())).owner().tell(new StreamProtocol.InjectCrash("soak"));
            }
        }

        private static AllocatorStats settledAllocator(MpsRuntime rt) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            AllocatorStats s = rt.memory().stats().toCompletableFuture().get(60, TimeUnit.SECONDS);
            while (s.allocatedBytes() != 0 && System.nanoTime() < deadline) {
                Thread.sleep(50);
                s = rt.memory().stats().toCompletableFuture().get(60, TimeUnit.SECONDS);
            }
            return s;
        }

        private static long usedHeap() {
            System.gc();
            Runtime r = Runtime.getRuntime();
            return r.totalMemory() - r.freeMemory();
        }
    }
}
