package dev.mpsactors.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The peer: ONNX Runtime Java in this process, on the original ONNX file, serving the same clients with the
 * same requests as the mps-actors run. M client threads in closed loop put requests on one queue; W worker
 * threads each take what is queued (up to B requests), pad them to the longest into one batch, run the
 * shared session (I intra-op threads) and read last_hidden_state back as Java arrays (what mps-actors
 * replies with) before answering. A short search over W × I × B picks ORT's best configuration
 * on this machine before the measured run.
 */
final class OrtPeer {
    /** One configuration: worker threads calling the session, its intra-op threads, most requests per run. */
    record Setup(int workers, int intraOp, int maxBatch) {
        String describe() {
            return workers + " worker(s) x " + intraOp + " intra-op thread(s) x batch " + maxBatch;
        }
    }

    /** What is searched: every way to keep two cores busy, unbatched and batched. */
    static final List<Setup> SEARCH = List.of(new Setup(2, 1, 1), new Setup(1, 2, 1), new Setup(2, 1, 4),
            new Setup(2, 1, 16), new Setup(1, 2, 16));
    static final double SEARCH_SECONDS = 4, SEARCH_WARMUP = 2;

    private final StressOptions options;
    private final int clients;
    private final StressModel model;

    OrtPeer(StressOptions options, int clients, StressModel model) {
        this.options = options;
        this.clients = clients;
        this.model = model;
    }

    Measurement run(Supplier<LoadRecorder> newRecorder, PrintStream out) throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        String version = env.getVersion();
        out.printf("  [ort] ONNX Runtime %s: searching %d configurations, %.0f s each%n", version, SEARCH.size(),
                SEARCH_SECONDS);
        Setup best = null;
        double bestRate = -1;
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        for (Setup s : SEARCH) {
            Measurement m = measure(env, s, new LoadRecorder(SEARCH_WARMUP, SEARCH_SECONDS, 0), "search", quiet);
            out.printf("  [ort] %-44s %8.1f req/s  p50 %.1f ms%s%n", s.describe(), m.requestsPerSecond(), m.p50Ms(),
                    m.failed() > 0 ? "  FAILED " + m.failed() : "");
            if (m.failed() == 0 && m.requestsPerSecond() > bestRate) {
                bestRate = m.requestsPerSecond();
                best = s;
            }
        }
        if (best == null) {
            throw new IllegalStateException("every ONNX Runtime configuration failed");
        }
        out.printf("  [ort] best: %s%n", best.describe());
        return measure(env, best, newRecorder.get(), "ONNX Runtime " + version + " Java, same process, original "
                + "ONNX file; best of the search: " + best.describe(), out);
    }

    /** One request: its inputs, and the failure (null when it succeeded) once answered. */
    private record Job(InferenceInputs inputs, CompletableFuture<String> done) {}

    private Measurement measure(OrtEnvironment env, Setup setup, LoadRecorder rec, String description,
                                PrintStream out) throws Exception {
        try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
            so.setIntraOpNumThreads(setup.intraOp());
            so.setInterOpNumThreads(1);
            so.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
            so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            try (OrtSession session = env.createSession(options.onnx().toString(), so)) {
                Set<String> inputs = session.getInputNames();
                BlockingQueue<Job> queue = new LinkedBlockingQueue<>();
                AtomicBoolean stop = new AtomicBoolean();
                AtomicLong[] busy = new AtomicLong[setup.workers()];
                List<Thread> workers = new ArrayList<>();
                for (int w = 0; w < setup.workers(); w++) {
                    AtomicLong b = busy[w] = new AtomicLong();
                    Thread t = new Thread(() -> work(env, session, inputs, setup.maxBatch(), queue, stop, b),
                            "ort-worker-" + w);
                    t.setDaemon(true);
                    t.start();
                    workers.add(t);
                }
                List<CompletableFuture<Void>> done = new ArrayList<>();
                for (int c = 0; c < clients; c++) {
                    List<InferenceInputs> requests = model.clientRequests(c, options);
                    CompletableFuture<Void> f = new CompletableFuture<>();
                    done.add(f);
                    Thread t = new Thread(() -> {
                        try {
                            for (long n = 0; rec.trySend(); n++) {
                                long sentAt = System.nanoTime();
                                Job job = new Job(requests.get((int) (n % requests.size())), new CompletableFuture<>());
                                queue.add(job);
                                String failure = job.done().join();
                                rec.completed(sentAt, failure == null, failure);
                            }
                        } finally {
                            f.complete(null);
                        }
                    }, "ort-client-" + c);
                    t.setDaemon(true);
                    t.start();
                }
                CompletableFuture<Void> all = CompletableFuture.allOf(done.toArray(CompletableFuture[]::new));
                Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run("ort", description, clients,
                        setup.workers(), rec, all, () -> {
                            long[] v = new long[busy.length];
                            for (int i = 0; i < v.length; i++) {
                                v[i] = busy[i].get();
                            }
                            return v;
                        }, model.flopsPerRequest(options), model.sequencesPerRequest(options)), out);
                MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
                stop.set(true);
                for (Thread t : workers) {
                    t.join(TimeUnit.SECONDS.toMillis(MeasurementDriver.DRAIN_SECONDS));
                }
                return m;
            }
        }
    }

    private static void work(OrtEnvironment env, OrtSession session, Set<String> inputs, int maxBatch,
                             BlockingQueue<Job> queue, AtomicBoolean stop, AtomicLong busy) {
        List<Job> batch = new ArrayList<>();
        while (true) {
            Job first;
            try {
                first = queue.poll(20, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (first == null) {
                if (stop.get()) {
                    return;
                }
                continue;
            }
            batch.clear();
            batch.add(first);
            queue.drainTo(batch, maxBatch - 1);
            long started = System.nanoTime();
            String failure = null;
            try {
                run(env, session, inputs, batch);
            } catch (OrtException | RuntimeException e) {
                failure = "ONNX Runtime: " + e.getMessage();
            }
            for (Job j : batch) {
                j.done().complete(failure);
            }
            busy.addAndGet(System.nanoTime() - started);
        }
    }

    /** One session run over the jobs' sequences, padded to the longest (padding masked out); [rows][len][hidden]. */
    private static float[][][] run(OrtEnvironment env, OrtSession session, Set<String> inputs, List<Job> jobs)
            throws OrtException {
        int rows = 0, len = 0;
        for (Job j : jobs) {
            rows += j.inputs().inputIds().length;
            for (int[] ids : j.inputs().inputIds()) {
                len = Math.max(len, ids.length);
            }
        }
        long[] ids = new long[rows * len], mask = new long[rows * len], types = new long[rows * len];
        int r = 0;
        for (Job j : jobs) {
            InferenceInputs in = j.inputs();
            for (int s = 0; s < in.inputIds().length; s++, r++) {
                for (int t = 0; t < in.inputIds()[s].length; t++) {
                    ids[r * len + t] = in.inputIds()[s][t];
                    mask[r * len + t] = in.attentionMask() == null ? 1 : in.attentionMask()[s][t];
                    types[r * len + t] = in.tokenTypeIds() == null ? 0 : in.tokenTypeIds()[s][t];
                }
            }
        }
        long[] shape = {rows, len};
        Map<String, OnnxTensor> feed = new HashMap<>();
        try {
            feed.put("input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape));
            if (inputs.contains("attention_mask")) {
                feed.put("attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape));
            }
            if (inputs.contains("token_type_ids")) {
                feed.put("token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(types), shape));
            }
            try (OrtSession.Result result = session.run(feed)) {
                return (float[][][]) result.get(0).getValue();
            }
        } finally {
            feed.values().forEach(OnnxTensor::close);
        }
    }
}
