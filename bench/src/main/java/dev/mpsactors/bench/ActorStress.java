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
import dev.mpsactors.protocol.ReplicaProtocol;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeDevice;
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
            // Every device's streams, device by device: the utilisation column covers them all.
            List<StreamHandle> streams = new ArrayList<>();
            for (RuntimeDevice d : rt.devices()) {
                streams.addAll(d.streams().handles());
            }
            List<AllocatorProtocol.BufferLease> leases = new ArrayList<>();
            ActorRef<InferenceProtocol.Command> modelRef = options.mix() == StressOptions.Mix.LAYERNORM ? null
                    : await(rt.models().loadModel("stress", modelFolder));
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
            long[] lastBusy = new long[streams.size()];
            java.util.concurrent.ScheduledExecutorService crasher = null;
            if (options.crashDevice() >= 0) {
                // Halfway through the measured window (after the warm-up); requests are counted by the recorder.
                rt.device(options.crashDevice()); // refuses an ordinal the runtime does not use
                crasher = java.util.concurrent.Executors.newSingleThreadScheduledExecutor();
                long afterMillis = (long) ((options.warmup() + Math.max(1, options.seconds()) / 2) * 1000);
                crasher.schedule(() -> {
                    busy(rt, streams, lastBusy); // the crashed device's utilisation counts up to here
                    out.printf("stress: crashing device %d's runtime (fault injection)%n", options.crashDevice());
                    rt.crashDevice(options.crashDevice());
                }, afterMillis, TimeUnit.MILLISECONDS);
            }
            Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run(name, description, clients,
                    streams.size(), rec, all, () -> busy(rt, streams, lastBusy), model.flopsPerRequest(options),
                    model.sequencesPerRequest(options)), out);
            MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
            if (crasher != null) {
                crasher.shutdownNow();
            }
            Measurement.Batching batching = null;
            if (modelRef != null) {
                // the model is this runtime's only one: its stats cover exactly this run (warm-up included)
                InferenceProtocol.ModelStats s = await(rt.models().modelStats(modelRef));
                batching = new Measurement.Batching(s.batches(), s.batches() == 0 ? 0
                        : MeasurementDriver.round((double) s.sequences() / s.batches()), s.largestBatch());
            }
            AllocatorProtocol.AllocatorStats a = await(rt.memory().stats());
            leases.forEach(rt.memory()::free);
            return withStats(m, batching, new Measurement.Allocator(a.peakReservedBytes(), a.peakAllocatedBytes()),
                    deviceLoads(rt, modelRef, m.streamUtilisation()));
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
        Pipeline ln = await(rt.kernels().pipeline(KernelKey.of("*", "layernorm")));
        Pipeline gemm = await(rt.kernels().pipeline(KernelKey.of("*", "gemm")));
        java.util.function.LongFunction<DeviceBuffer> allocate = bytes -> {
            AllocatorProtocol.BufferLease lease = await(rt.memory().allocate(bytes));
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

    /**
     * Each stream's busy time; a stream whose device's runtime stopped (--crash-device) keeps its last reading,
     * so its device's utilisation counts only the time it was up.
     */
    /** Each stream's busy time now. */
    static long[] busy(MpsRuntime rt, List<StreamHandle> streams) {
        return busy(rt, streams, new long[streams.size()]);
    }

    private static long[] busy(MpsRuntime rt, List<StreamHandle> streams, long[] last) {
        synchronized (last) {
            return readBusy(rt, streams, last);
        }
    }

    private static long[] readBusy(MpsRuntime rt, List<StreamHandle> streams, long[] last) {
        for (int s = 0; s < last.length; s++) {
            try {
                last[s] = rt.streams().stats(streams.get(s)).toCompletableFuture().get(30, TimeUnit.SECONDS).busyNanos();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted");
            } catch (Exception e) {
                // the stream's owner stopped with its device: its last reading stands
            }
        }
        return last.clone();
    }

    private static Measurement withStats(Measurement m, Measurement.Batching b, Measurement.Allocator a,
                                         List<Measurement.DeviceLoad> devices) {
        return new Measurement(m.name(), m.description(), m.clients(), m.streams(), m.seconds(), m.sent(),
                m.succeeded(), m.failed(), m.lost(), m.requestsPerSecond(), m.sequencesPerSecond(), m.p50Ms(),
                m.p90Ms(), m.p99Ms(), m.maxMs(), m.gflops(), m.streamUtilisation(), b, a, m.requestsPerCpuSecond(),
                devices);
    }

    /**
     * Per device (in the order of {@code utilisation}, device by device): its streams' mean utilisation, the
     * requests its replica served and how often it was restarted.
     */
    private static List<Measurement.DeviceLoad> deviceLoads(MpsRuntime rt, ActorRef<InferenceProtocol.Command> model,
                                                            List<Double> utilisation) {
        ReplicaProtocol.ReplicaStats replicas = model == null ? null : await(rt.models().replicaStats(model));
        RuntimeProtocol.DeviceStatus status = await(rt.deviceStatus());
        List<Measurement.DeviceLoad> loads = new ArrayList<>();
        int first = 0;
        for (RuntimeDevice d : rt.devices()) {
            int n = d.streams().count();
            double sum = 0;
            for (int s = first; s < first + n && s < utilisation.size(); s++) {
                sum += utilisation.get(s);
            }
            first += n;
            long served = 0;
            if (replicas != null) {
                for (ReplicaProtocol.ReplicaState r : replicas.replicas()) {
                    if (r.ordinal() == d.ordinal()) {
                        served = r.succeeded();
                    }
                }
            }
            int restarts = 0;
            for (RuntimeProtocol.DeviceState s : status.devices()) {
                if (s.ordinal() == d.ordinal()) {
                    restarts = s.restarts();
                }
            }
            loads.add(new Measurement.DeviceLoad(d.ordinal(), d.info().name(), n,
                    MeasurementDriver.round(sum / Math.max(1, n)), served, restarts));
        }
        return loads;
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
