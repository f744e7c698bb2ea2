package dev.mpsactors.bench;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * A model served by the runtime under concurrent load: M client actors, each sending its next Infer as
 * soon as the previous reply arrives, for a fixed time. Prints progress, then throughput, latency and the
 * exactly-one-reply accounting (sent = succeeded + failed, lost = sent - replies = 0).
 */
final class ModelLoadBench {
    record Settings(Path model, int clients, double seconds, int seq, BertConfig generated, int vocab) {}

    private final Settings settings;
    private final PrintStream out;

    ModelLoadBench(Settings settings, PrintStream out) {
        this.settings = settings;
        this.out = out;
    }

    /** Returns the number of lost replies (the run's exit status depends on it). */
    long run() throws Exception {
        Path folder = settings.model();
        if (folder == null) {
            folder = Files.createTempDirectory("mps-actors-model-");
            BertFolderGenerator.write(folder, settings.generated(), 42);
            folder.toFile().deleteOnExit();
            out.println("model: generated BERT " + describe(settings.generated()) + " in " + folder);
        }
        try (MpsRuntime rt = MpsRuntime.start(ConfigFactory.load())) {
            ActorRef<InferenceProtocol.Command> model = rt.loadModel("load", folder).toCompletableFuture()
                    .get(10, TimeUnit.MINUTES);
            out.printf("runtime: %s, %d streams; %d clients, sequence %d, %.0f s%n", rt.refs().device().name(),
                    rt.streams().size(), settings.clients(), settings.seq(), settings.seconds());
            AtomicLong sent = new AtomicLong(), succeeded = new AtomicLong(), failed = new AtomicLong();
            long[] latencies = new long[1 << 20];
            AtomicLong samples = new AtomicLong();
            long end = System.nanoTime() + (long) (settings.seconds() * 1e9);
            CompletableFuture<Void>[] done = new CompletableFuture[settings.clients()];
            for (int c = 0; c < settings.clients(); c++) {
                done[c] = new CompletableFuture<>();
                rt.system().systemActorOf(client(model, c, end, sent, succeeded, failed, latencies, samples, done[c]),
                        "load-client-" + c, org.apache.pekko.actor.typed.Props.empty());
            }
            long start = System.nanoTime();
            while (System.nanoTime() < end) {
                TimeUnit.SECONDS.sleep(1);
                out.printf("  %3.0f%%  sent %d, answered %d%n", 100.0 * Math.min(1, (System.nanoTime() - start) / (settings.seconds() * 1e9)),
                        sent.get(), succeeded.get() + failed.get());
            }
            CompletableFuture.allOf(done).get(2, TimeUnit.MINUTES);
            double seconds = (System.nanoTime() - start) / 1e9;
            long answered = succeeded.get() + failed.get();
            long n = Math.min(samples.get(), latencies.length);
            long[] sorted = Arrays.copyOf(latencies, (int) n);
            Arrays.sort(sorted);
            InferenceProtocol.ModelStats stats = rt.modelStats(model).toCompletableFuture().get(30, TimeUnit.SECONDS);
            out.printf("%nrequests/s %.1f   latency p50 %.2f ms  p99 %.2f ms  max %.2f ms%n", succeeded.get() / seconds,
                    pct(sorted, 0.5), pct(sorted, 0.99), pct(sorted, 1.0));
            out.printf("batches %d, mean batch %.2f sequences, largest %d%n", stats.batches(),
                    stats.batches() == 0 ? 0 : (double) stats.sequences() / stats.batches(), stats.largestBatch());
            out.printf("sent %d  succeeded %d  failed %d  lost %d%n", sent.get(), succeeded.get(), failed.get(),
                    sent.get() - answered);
            return sent.get() - answered;
        }
    }

    private Behavior<InferReply> client(ActorRef<InferenceProtocol.Command> model, int id, long end, AtomicLong sent,
                                        AtomicLong succeeded, AtomicLong failed, long[] latencies, AtomicLong samples,
                                        CompletableFuture<Void> done) {
        return Behaviors.setup(ctx -> {
            Random random = new Random(id);
            long[] sentAt = {0};
            Runnable next = () -> {
                sentAt[0] = System.nanoTime();
                sent.incrementAndGet();
                model.tell(new InferenceProtocol.Infer("c" + id + "-" + sentAt[0], inputs(random), ctx.getSelf()));
            };
            next.run();
            return Behaviors.receive(InferReply.class).onAnyMessage(reply -> {
                long latency = System.nanoTime() - sentAt[0];
                latencies[(int) (samples.getAndIncrement() & (latencies.length - 1))] = latency;
                if (reply instanceof InferFailure f) {
                    failed.incrementAndGet();
                } else {
                    succeeded.incrementAndGet();
                }
                if (System.nanoTime() < end) {
                    next.run();
                    return Behaviors.same();
                }
                done.complete(null);
                return Behaviors.stopped();
            }).build();
        });
    }

    private InferenceInputs inputs(Random random) {
        int[][] ids = new int[1][settings.seq()];
        for (int t = 0; t < settings.seq(); t++) {
            ids[0][t] = random.nextInt(settings.vocab());
        }
        return InferenceInputs.of(ids);
    }

    private static double pct(long[] sorted, double p) {
        if (sorted.length == 0) {
            return 0;
        }
        return sorted[Math.min(sorted.length - 1, (int) (p * sorted.length))] / 1e6;
    }

    static String describe(BertConfig c) {
        return "hidden=" + c.hiddenSize() + " layers=" + c.numHiddenLayers() + " heads=" + c.numAttentionHeads()
                + " intermediate=" + c.intermediateSize() + " vocab=" + c.vocabSize();
    }
}
