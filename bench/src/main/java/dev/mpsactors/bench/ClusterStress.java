package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.cluster.ClusterInference;
import dev.mpsactors.cluster.ClusterNode;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.cluster.MemberStatus;

/**
 * The stress benchmark against a Pekko Cluster: N nodes on 127.0.0.1 in this JVM, each with its own
 * runtime and one replica of the model; M closed-loop client actors on the first node send every request
 * through {@link ClusterInference} (round robin over replicas, retried on failure), so requests cross nodes
 * exactly as in a real cluster. On one machine the nodes share its cores: this measures the cluster path's
 * cost, not scaling.
 */
final class ClusterStress {
    private static final String MODEL = "stress";

    private final StressOptions options;
    private final int clients;
    private final Config base;

    ClusterStress(StressOptions options, int clients, Config base) {
        this.options = options;
        this.clients = clients;
        this.base = base;
    }

    Measurement run(Path folder, StressModel model, Supplier<LoadRecorder> newRecorder, PrintStream out)
            throws Exception {
        int n = options.clusterNodes();
        List<Integer> ports = freePorts(n);
        List<ClusterNode> nodes = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                nodes.add(ClusterNode.start(ConfigFactory.parseString(String.format(
                        "pekko.remote.artery.canonical { hostname = \"127.0.0.1\", port = %d }%n"
                                + "mps-actors.cluster { seeds = \"127.0.0.1:%d\", replicas = %d, models { %s = \"%s\" } }",
                        ports.get(i), ports.get(0), n, MODEL, folder.toAbsolutePath().toString().replace("\\", "/")))
                        .withFallback(base.withOnlyPath("mps-actors"))));
            }
            awaitMembersUp(nodes.get(0), n);
            ClusterInference inference = nodes.get(0).inference();
            // One request per replica first, so loading the model on every node is not measured.
            for (int r = 0; r < n; r++) {
                ActorStress.await(inference.infer(MODEL, "warm-" + r,
                        model.randomInputs(new Random(r), options.batchPerRequest(), options.seq())));
            }
            out.printf("cluster: %d nodes up on 127.0.0.1 (ports %s), one replica of the model each%n", n, ports);
            LoadRecorder rec = newRecorder.get();
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                CompletableFuture<Void> f = new CompletableFuture<>();
                done.add(f);
                nodes.get(0).system().systemActorOf(ActorStress.client(sender(inference, model, c), rec, f),
                        "cluster-client-" + c, Props.empty());
            }
            CompletableFuture<Void> all = CompletableFuture.allOf(done.toArray(CompletableFuture[]::new));
            Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run("cluster-" + n,
                    n + " Pekko Cluster nodes on one machine, requests through ClusterInference", clients, n, rec,
                    all, () -> new long[0], model.flopsPerRequest(options), model.sequencesPerRequest(options)), out);
            MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
            out.printf("cluster: %d retries by the client%n", inference.retries());
            return m;
        } finally {
            for (int i = nodes.size() - 1; i >= 0; i--) {
                nodes.get(i).close();
            }
        }
    }

    /** Each reply, success or failure, comes back to the client actor as the message its loop counts. */
    private Consumer<ActorRef<Object>> sender(ClusterInference inference, StressModel model, int client) {
        InferenceInputs inputs = model.randomInputs(new Random(client), options.batchPerRequest(), options.seq());
        long[] n = {0};
        return self -> {
            String id = "cluster-" + client + "-" + n[0]++;
            inference.infer(MODEL, id, inputs).whenComplete((r, e) -> self.tell(r != null
                    ? new InferenceProtocol.InferResult(id, r.lastHiddenState(), r.poolerOutput())
                    : new InferenceProtocol.InferFailure(id,
                            dev.mpsactors.protocol.TextProtocol.FailureKind.UNAVAILABLE, String.valueOf(e))));
        };
    }

    private static void awaitMembersUp(ClusterNode node, int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            long up = java.util.stream.StreamSupport.stream(node.cluster().state().getMembers().spliterator(), false)
                    .filter(m -> m.status() == MemberStatus.up()).count();
            if (up == n) {
                return;
            }
            TimeUnit.MILLISECONDS.sleep(100);
        }
        throw new IllegalStateException("the cluster did not reach " + n + " members up within 60 s");
    }

    private static List<Integer> freePorts(int n) throws IOException {
        List<ServerSocket> sockets = new ArrayList<>();
        List<Integer> ports = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0);
                sockets.add(s);
                ports.add(s.getLocalPort());
            }
        } finally {
            for (ServerSocket s : sockets) {
                s.close();
            }
        }
        return ports;
    }
}
