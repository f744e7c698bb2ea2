package dev.mpsactors.bench;

import com.typesafe.config.Config;
import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.Pipeline;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.KernelCacheProtocol.KernelKey;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * A measurement through the actor runtime ({@code mps-actors}, and {@code serial} = one stream, max-batch
 * 1): M client actors in closed loop, each sending its next request when its reply arrives. BERT requests
 * go to the model actor as {@code Infer}; the LayerNorm mix goes straight to the stream owners as one
 * {@code Submit} per request (client i on stream i mod S), with kernels from the kernel cache and memory
 * from the allocator actor.
 */
final class ActorStress {
    /** Distinct inputs each client cycles through in the mixed-length workload. */
    private static final int MIXED_REQUESTS_PER_CLIENT = 64;

    private final String name;
    private final String description;
    private final Config config;
    private final StressOptions options;
    private final int clients;

    ActorStress(String name, String description, Config config, StressOptions options, int clients) {
        this.name = name;
        this.description = description;
        this.config = config;
        this.options = options;
        this.clients = clients;
    }

    Measurement run(Path modelFolder, StressModel model, Supplier<LoadRecorder> newRecorder, PrintStream out)
            throws Exception {
        try (MpsRuntime rt = MpsRuntime.start(config)) {
            List<StreamHandle> streams = rt.streams();
            List<AllocatorProtocol.BufferLease> leases = new ArrayList<>();
            ActorRef<InferenceProtocol.Command> modelRef = options.mix() == StressOptions.Mix.LAYERNORM ? null
                    : await(rt.loadModel("stress", modelFolder));
            List<Consumer<ActorRef<Object>>> senders = modelRef == null ? mixSenders(rt, model, streams, leases)
                    : inferSenders(modelRef, model);
            LoadRecorder rec = newRecorder.get();
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                CompletableFuture<Void> f = new CompletableFuture<>();
                done.add(f);
                rt.system().systemActorOf(client(senders.get(c), rec, f), name + "-client-" + c, Props.empty());
            }
            CompletableFuture<Void> all = CompletableFuture.allOf(done.toArray(CompletableFuture[]::new));
            Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run(name, description, clients,
                    streams.size(), rec, all, () -> busy(rt, streams), model.flopsPerRequest(options),
                    model.sequencesPerRequest(options)), out);
            MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
            Measurement.Batching batching = null;
            if (modelRef != null) {
                // the model is this runtime's only one: its stats cover exactly this run (warm-up included)
                InferenceProtocol.ModelStats s = await(rt.modelStats(modelRef));
                batching = new Measurement.Batching(s.batches(), s.batches() == 0 ? 0
                        : MeasurementDriver.round((double) s.sequences() / s.batches()), s.largestBatch());
            }
            AllocatorProtocol.AllocatorStats a = await(rt.allocatorStats());
            leases.forEach(rt::free);
            return withStats(m, batching, new Measurement.Allocator(a.peakReservedBytes(), a.peakAllocatedBytes()));
        }
    }

    private List<Consumer<ActorRef<Object>>> inferSenders(ActorRef<InferenceProtocol.Command> modelRef,
                                                          StressModel model) {
        List<Consumer<ActorRef<Object>>> senders = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            List<InferenceInputs> requests = model.clientRequests(c, options);
            String prefix = name + "-" + c + "-";
            long[] n = {0};
            InferenceProtocol.OutputSpec outputs = options.outputs();
            senders.add(self -> {
                InferenceInputs inputs = requests.get((int) (n[0] % requests.size()));
                modelRef.tell(new InferenceProtocol.Infer(prefix + n[0]++, inputs, self.narrow(), null, outputs));
            });
        }
        return senders;
    }

    private List<Consumer<ActorRef<Object>>> mixSenders(MpsRuntime rt, StressModel model, List<StreamHandle> streams,
                                                        List<AllocatorProtocol.BufferLease> leases) throws Exception {
        Pipeline ln = await(rt.pipeline(KernelKey.of("*", "layernorm")));
        Pipeline gemm = await(rt.pipeline(KernelKey.of("*", "gemm")));
        java.util.function.LongFunction<DeviceBuffer> allocate = bytes -> {
            AllocatorProtocol.BufferLease lease = await(rt.allocate(bytes));
            leases.add(lease);
            return lease.buffer();
        };
        LayerNormMix mix = new LayerNormMix(ln, gemm, allocate, options.seq(), model.config().hiddenSize(),
                options.layerNorms());
        List<Consumer<ActorRef<Object>>> senders = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            List<StreamWork> work = new ArrayList<>();
            for (KernelStep s : mix.steps(mix.clientBuffers(allocate, 1000L + c))) {
                work.add(new StreamWork.KernelCall(s.pipeline(), s.args()));
            }
            StreamHandle stream = streams.get(c % streams.size());
            senders.add(self -> stream.owner().tell(new StreamProtocol.Submit(work, true, self.narrow(),
                    self.narrow())));
        }
        return senders;
    }

    /** A closed-loop client: exactly one request outstanding; each reply is counted once, then the next goes. */
    static Behavior<Object> client(Consumer<ActorRef<Object>> send, LoadRecorder rec,
                                           CompletableFuture<Void> done) {
        return Behaviors.setup(ctx -> {
            long[] sentAt = {System.nanoTime()};
            if (!rec.trySend()) {
                done.complete(null);
                return Behaviors.stopped();
            }
            send.accept(ctx.getSelf());
            return Behaviors.receive(Object.class).onAnyMessage(msg -> {
                String failure;
                if (msg instanceof InferenceProtocol.InferResult) {
                    failure = null;
                } else if (msg instanceof InferenceProtocol.InferFailure f) {
                    failure = f.reason();
                } else if (msg instanceof InferenceProtocol.Overloaded o) {
                    failure = "overloaded: " + o.reason();
                } else if (msg instanceof StreamProtocol.SubmitFailed f) {
                    failure = f.reason();
                } else if (msg instanceof StreamProtocol.PointCompleted p) {
                    failure = p.failure();
                } else if (msg instanceof dev.mpsactors.protocol.TextProtocol.Embeddings) {
                    failure = null;
                } else if (msg instanceof dev.mpsactors.protocol.TextProtocol.TextFailure f) {
                    failure = f.kind() + ": " + f.reason();
                } else {
                    return Behaviors.same(); // Submitted: the completion follows
                }
                rec.completed(sentAt[0], failure == null, failure);
                if (rec.trySend()) {
                    sentAt[0] = System.nanoTime();
                    send.accept(ctx.getSelf());
                    return Behaviors.same();
                }
                done.complete(null);
                return Behaviors.stopped();
            }).build();
        });
    }

    static long[] busy(MpsRuntime rt, List<StreamHandle> streams) {
        long[] busy = new long[streams.size()];
        for (int s = 0; s < busy.length; s++) {
            busy[s] = await(rt.streamStats(streams.get(s))).busyNanos();
        }
        return busy;
    }

    private static Measurement withStats(Measurement m, Measurement.Batching b, Measurement.Allocator a) {
        return new Measurement(m.name(), m.description(), m.clients(), m.streams(), m.seconds(), m.sent(),
                m.succeeded(), m.failed(), m.lost(), m.requestsPerSecond(), m.sequencesPerSecond(), m.p50Ms(),
                m.p90Ms(), m.p99Ms(), m.maxMs(), m.gflops(), m.streamUtilisation(), b, a, m.requestsPerCpuSecond());
    }

    static <T> T await(CompletionStage<T> stage) {
        try {
            return stage.toCompletableFuture().get(5, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted");
        } catch (Exception e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw cause instanceof RuntimeException r ? r : new IllegalStateException(cause);
        }
    }
}
