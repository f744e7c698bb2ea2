package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.cluster.ClusterCaller;
import dev.mpsactors.cluster.ClusterClient;
import dev.mpsactors.cluster.ClusterLoad;
import dev.mpsactors.cluster.ModelEntity;
import dev.mpsactors.cluster.Outputs;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.PrintStream;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.DoubleAccumulator;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code bin/mps-actors cluster-client}: drives a running cluster from outside it. It joins through the seeds
 * as a client member (role mps-client: it holds no replica and does not count in the split-brain resolver's
 * majority), sends a steady closed-loop stream of requests to one model through the same client the Java API
 * uses (round robin over the replicas, retried on another replica), and prints the exactly-one-reply
 * accounting: sent, succeeded, failed (with causes), lost, duplicates, late replies and retries. With
 * {@code --check DIR} every result is compared with this machine's own single-node run of the model in DIR
 * on the same inputs. Exit 0 when nothing was lost, duplicated or different; 1 otherwise.
 */
@Command(name = "cluster-client", description = {
        "Drive a running cluster from outside (joins as a client, hosts nothing): first one request answered by"
                + " each replica, then a steady stream of requests, then sent/succeeded/failed/lost/duplicates.",
        "Exit 0 when nothing was lost, duplicated or different; 1 otherwise."})
final class ClusterClientCommand implements Callable<Integer> {
    /** Largest relative L2 against the local run that still counts as the same result. */
    static final double SAME_RESULT = 1e-5;

    @Option(names = "--seeds", required = true, paramLabel = "H:P,..", description = "the cluster's seed nodes")
    String seeds;

    @Option(names = "--model", required = true, paramLabel = "NAME", description = "the model to call")
    String model;

    @Option(names = "--replicas", paramLabel = "R", description = "replicas as the nodes were started with (default:"
            + " mps-actors.cluster.replicas)")
    int replicas;

    @Option(names = "--seconds", paramLabel = "T", description = "measured seconds (default ${DEFAULT-VALUE})")
    double seconds = 10;

    @Option(names = "--warmup", paramLabel = "T", description = "seconds before measuring (default ${DEFAULT-VALUE})")
    double warmup = 0;

    @Option(names = "--concurrency", paramLabel = "N", description = "requests in flight (default ${DEFAULT-VALUE})")
    int concurrency = 8;

    @Option(names = "--seq", paramLabel = "L", description = "tokens a sequence (default ${DEFAULT-VALUE})")
    int seq = 32;

    @Option(names = "--batch", paramLabel = "B", description = "sequences a request (default ${DEFAULT-VALUE})")
    int batch = 1;

    @Option(names = "--inputs", paramLabel = "N",
            description = "random inputs cycled through (default ${DEFAULT-VALUE})")
    int inputCount = 16;

    @Option(names = "--vocab", paramLabel = "V", description = "token ids drawn below V (default ${DEFAULT-VALUE})")
    int vocab = 30;

    @Option(names = "--check", paramLabel = "DIR", description = "compare every result with a local run of the model"
            + " in DIR (its vocabulary replaces --vocab)")
    Path check;

    @Option(names = "--host", paramLabel = "H", description = "this client's address (default: the local one on the"
            + " route to the first seed)")
    String host;

    @Option(names = "--port", paramLabel = "P",
            description = "this client's port (default ${DEFAULT-VALUE}: a free one)")
    int port = 0;

    @Option(names = "--wait-up", paramLabel = "T",
            description = "seconds to wait for the cluster (default ${DEFAULT-VALUE})")
    long waitUp = 60;

    @Mixin
    ClusterTlsOptions tls;

    @Override
    public Integer call() throws Exception {
        int status = run(System.out);
        if (status != 0) {
            System.err.println(Cli.PREFIX + "cluster-client: replies were lost, duplicated or different");
        }
        return status;
    }

    int run(PrintStream out) throws Exception {
        if (!(seconds > 0) || !(warmup >= 0)) {
            throw new Cli.UsageException("--seconds must be positive and --warmup not negative");
        }
        if (replicas < 0 || port < 0) {
            throw new Cli.UsageException("--replicas and --port must not be negative");
        }
        for (var e : java.util.Map.of("--concurrency", concurrency, "--seq", seq, "--batch", batch, "--inputs",
                inputCount, "--vocab", vocab).entrySet()) {
            Cli.positive(e.getKey(), e.getValue());
        }
        Cli.positive("--wait-up", (int) Math.min(Integer.MAX_VALUE, waitUp));
        int vocab = this.vocab;
        String host = this.host;
        if (check != null) {
            if (!Files.isDirectory(check)) {
                throw new Cli.InputException("--check: model folder " + check + " does not exist");
            }
            vocab = HfModelFolder.readConfig(check.resolve(HfModelFolder.CONFIG_FILE)).vocabSize();
        }
        if (host == null) {
            host = localAddressTowards(seeds);
        }
        List<InferenceInputs> inputs = new ArrayList<>();
        Random random = new Random(1);
        for (int i = 0; i < inputCount; i++) {
            int[][] ids = new int[batch][seq];
            for (int[] row : ids) {
                for (int t = 0; t < seq; t++) {
                    row[t] = random.nextInt(vocab);
                }
            }
            inputs.add(InferenceInputs.of(ids));
        }
        List<InferResult> references = check == null ? null : localReferences(check, inputs);

        Config config = ConfigFactory.parseString("")
                .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(host))
                .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(port))
                .withValue("mps-actors.cluster.seeds", ConfigValueFactory.fromAnyRef(seeds));
        if (replicas > 0) {
            config = config.withValue("mps-actors.cluster.replicas", ConfigValueFactory.fromAnyRef(replicas));
        }
        config = tls.over(config.withFallback(ConfigFactory.defaultOverrides())
                .withFallback(ConfigFactory.defaultApplication()));
        ClusterClient started;
        try {
            started = ClusterClient.start(config);
        } catch (IllegalArgumentException e) {
            throw new Cli.UsageException(e.getMessage());
        }
        try (ClusterClient client = started) {
            awaitNodes(client, waitUp, out);
            warmReplicas(client, model, inputs.get(0), waitUp, out);
            DoubleAccumulator worst = new DoubleAccumulator(Math::max, 0);
            AtomicLong compared = new AtomicLong();
            AtomicLong different = new AtomicLong();
            ClusterLoad load = new ClusterLoad(client.inference(), model, inputs, concurrency, "client-", (i, r) -> {
                if (references != null) {
                    double err = Outputs.relativeL2(r, references.get(i));
                    worst.accumulate(err);
                    compared.incrementAndGet();
                    if (!(err <= SAME_RESULT)) {
                        different.incrementAndGet();
                    }
                }
            });
            long start = System.nanoTime();
            load.start();
            long measuredFrom = start + (long) (warmup * 1e9);
            long end = measuredFrom + (long) (seconds * 1e9);
            long succeededBefore = warmup == 0 ? 0 : -1;
            int outcomesBefore = 0;
            long nextReport = start + 1_000_000_000L;
            while (System.nanoTime() < end) {
                long wake = Math.min(end, succeededBefore < 0 ? Math.min(nextReport, measuredFrom) : nextReport);
                TimeUnit.NANOSECONDS.sleep(Math.max(0, wake - System.nanoTime()));
                if (succeededBefore < 0 && System.nanoTime() >= measuredFrom) {
                    succeededBefore = client.inference().stats().succeeded();
                    outcomesBefore = load.outcomes();
                    measuredFrom = System.nanoTime();
                }
                if (System.nanoTime() >= nextReport) {
                    nextReport += 1_000_000_000L;
                    ClusterLoad.Tally t = load.tally();
                    out.printf("cluster-client: %5.1f s  sent %d  succeeded %d  failed %d  in flight %d  retries %d%n",
                            (System.nanoTime() - start) / 1e9, t.sent(), t.succeeded(), t.failed(), t.lost(),
                            client.inference().retries());
                }
            }
            load.stop();
            double elapsed = (System.nanoTime() - measuredFrom) / 1e9;
            long measured = client.inference().stats().succeeded() - Math.max(0, succeededBefore);
            Duration drain = client.settings().attemptTimeout().plus(client.settings().retryBackoff())
                    .multipliedBy(client.settings().attempts()).plusSeconds(10);
            load.awaitDrained(drain);
            // Late replies to attempts that timed out may still arrive; give them an attempt's time to come.
            TimeUnit.MILLISECONDS.sleep(Math.min(2000, client.settings().attemptTimeout().toMillis()));
            ClusterLoad.Tally t = load.tally();
            ClusterCaller.Stats s = client.inference().stats();
            long[] lat = load.latenciesNanosFrom(outcomesBefore);
            out.printf("cluster-client: model %s, %d client loop(s), %d x %d tokens a request, %s%n", model,
                    concurrency, batch, seq, client.cluster().selfMember().address());
            out.printf("cluster-client: %.1f requests/s (%d succeeded in %.2f s after %.0f s of warm-up), latency "
                    + "p50 %.1f ms p99 %.1f ms (after the warm-up)%n", measured / elapsed, measured, elapsed, warmup,
                    percentile(lat, 0.50), percentile(lat, 0.99));
            out.printf("cluster-client: sent %d succeeded %d failed %d lost %d duplicates %d (late replies %d, "
                            + "retries %d, unknown replies %d)%n", t.sent(), t.succeeded(), t.failed(), t.lost(),
                    t.duplicates() + s.duplicateReplies(), s.lateReplies(), s.retries(), s.unknownReplies());
            t.failures().forEach((reason, n) -> out.printf("cluster-client: failed %d x: %s%n", n, reason));
            if (references != null) {
                out.printf("cluster-client: %d results vs a local single-node run of %s: worst relative L2 %.3g, "
                        + "%d above %.0e%n", compared.get(), check, worst.get(), different.get(), SAME_RESULT);
            }
            boolean ok = t.lost() == 0 && t.duplicates() == 0 && s.duplicateReplies() == 0 && different.get() == 0
                    && t.sent() == t.succeeded() + t.failed();
            return ok ? 0 : 1;
        }
    }

    /** The address of this machine on the route to the first seed: the one the cluster can reach it at. */
    static String localAddressTowards(String seeds) {
        String first = seeds.split(",")[0].trim();
        first = first.contains("@") ? first.substring(first.indexOf('@') + 1) : first;
        int colon = first.lastIndexOf(':');
        String seedHost = colon < 0 ? first : first.substring(0, colon);
        try (DatagramSocket probe = new DatagramSocket()) {
            probe.connect(new InetSocketAddress(seedHost, 9));
            return probe.getLocalAddress().getHostAddress();
        } catch (Exception e) {
            throw new Cli.InputException("cannot find a local address towards seed " + seedHost + " (" + e.getMessage()
                    + "); give --host");
        }
    }

    private static List<InferResult> localReferences(Path folder, List<InferenceInputs> inputs) throws Exception {
        List<InferResult> refs = new ArrayList<>();
        try (MpsRuntime rt = MpsRuntime.start(ConfigFactory.load())) {
            ActorRef<InferenceProtocol.Command> m = rt.models().loadModel("reference", folder).toCompletableFuture()
                    .get(5, TimeUnit.MINUTES);
            for (int i = 0; i < inputs.size(); i++) {
                refs.add(rt.models().infer(m, "reference-" + i, inputs.get(i)).toCompletableFuture().get(1, TimeUnit.MINUTES));
            }
        }
        return refs;
    }

    private static void awaitNodes(ClusterClient client, long seconds, PrintStream out) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (client.cluster().selfMember().status() == MemberStatus.up()) {
                List<String> nodes = new ArrayList<>();
                for (Member m : client.cluster().state().getMembers()) {
                    if (m.status() == MemberStatus.up() && m.hasRole("mps-node")) {
                        nodes.add(m.address().toString());
                    }
                }
                if (!nodes.isEmpty()) {
                    out.println("cluster-client: joined as " + client.cluster().selfMember().address() + "; nodes up: "
                            + nodes);
                    return;
                }
            }
            TimeUnit.MILLISECONDS.sleep(100);
        }
        throw new IllegalStateException("no node of the cluster was up within " + seconds
                + " s (seeds " + client.settings().seeds() + ")");
    }

    /**
     * One request answered by each replica before the stream starts, so model loading is not measured; a
     * failure every replica would give (a model the nodes do not serve, say) ends the command with its cause.
     */
    private static void warmReplicas(ClusterClient client, String model, InferenceInputs input, long seconds,
                                     PrintStream out) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        Duration attempt = client.settings().attemptTimeout();
        List<String> placement = new ArrayList<>();
        for (int r = 0; r < client.settings().replicas(); r++) {
            String why = "no answer";
            while (true) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("replica " + model + "#" + r + " did not answer within " + seconds
                            + " s: " + why);
                }
                try {
                    ModelEntity.ClusterInferReply reply = client.inference().ask(model, r, "warm-up-" + r, input, attempt)
                            .toCompletableFuture().get(attempt.toMillis() + 1000, TimeUnit.MILLISECONDS);
                    if (reply instanceof ModelEntity.ClusterInferResult ok) {
                        placement.add(ok.entityId() + " on " + ok.node());
                        break;
                    }
                    ModelEntity.ClusterInferFailure f = (ModelEntity.ClusterInferFailure) reply;
                    if (!f.retryable()) {
                        throw new IllegalStateException("replica " + f.entityId() + ": " + f.reason());
                    }
                    why = f.reason();
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                    why = String.valueOf(e.getCause() != null ? e.getCause() : e);
                }
                TimeUnit.MILLISECONDS.sleep(100);
            }
        }
        out.println("cluster-client: every replica answered: " + placement);
    }

    private static double percentile(long[] sorted, double p) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        return sorted[Math.min(sorted.length - 1, (int) Math.floor(p * sorted.length))] / 1e6;
    }
}
