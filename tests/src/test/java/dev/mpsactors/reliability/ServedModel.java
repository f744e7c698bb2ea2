package dev.mpsactors.reliability;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * A runtime of its own (MpsRuntime.start) serving a small generated BERT, for the reliability tests: send
 * many requests, collect every reply by id (counting duplicates), read the allocator, shut down and return
 * what was left natively.
 */
final class ServedModel implements AutoCloseable {
    static final Duration BOUND = Duration.ofSeconds(90);
    static final BertConfig CONFIG = new BertConfig("bert", 80, 32, 2, 4, 64, 64, 2, 1e-12, "gelu");

    final MpsRuntime runtime;
    final ActorRef<InferenceProtocol.Command> model;
    final Path folder;
    private boolean closed;

    ServedModel(String config) throws Exception {
        this(config, null);
    }

    /** @param faults each device's fault injector by ordinal (null: from the configuration) */
    ServedModel(String config, java.util.function.IntFunction<dev.mpsactors.actors.FaultInjector> faults)
            throws Exception {
        folder = Files.createTempDirectory("reliability-");
        BertFolderGenerator.write(folder, CONFIG, 11);
        runtime = faults == null ? MpsRuntime.start(ConfigFactory.parseString(config))
                : MpsRuntime.start(ConfigFactory.parseString(config), faults);
        model = runtime.models().loadModel("tiny", folder).toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    static InferenceInputs randomRequest(Random random) {
        int sequences = 1 + random.nextInt(2);
        int length = 3 + random.nextInt(20);
        int[][] ids = new int[sequences][length];
        for (int[] row : ids) {
            for (int t = 0; t < length; t++) {
                row[t] = 1 + random.nextInt(CONFIG.vocabSize() - 1);
            }
        }
        return InferenceInputs.of(ids);
    }

    /** Every reply to a set of requests, by id; a second reply to an id is counted, never dropped. */
    static final class Replies {
        final Map<String, InferReply> byId = new ConcurrentHashMap<>();
        final AtomicInteger duplicates = new AtomicInteger();
        final Map<String, CompletableFuture<InferReply>> pending = new ConcurrentHashMap<>();

        /** The first reply to {@code id}; register before sending the request. */
        CompletableFuture<InferReply> expect(String id) {
            return pending.computeIfAbsent(id, k -> new CompletableFuture<>());
        }

        void record(InferReply reply) {
            if (byId.putIfAbsent(reply.requestId(), reply) != null) {
                duplicates.incrementAndGet();
            } else {
                expect(reply.requestId()).complete(reply);
            }
        }

        long count(Class<? extends InferReply> kind) {
            return byId.values().stream().filter(kind::isInstance).count();
        }

        List<String> failureReasons() {
            List<String> out = new ArrayList<>();
            for (InferReply r : byId.values()) {
                if (r instanceof InferenceProtocol.InferFailure f) {
                    out.add(f.reason());
                }
            }
            return out;
        }
    }

    private static final AtomicInteger SENDS = new AtomicInteger();

    /**
     * Sends {@code requests} requests from {@code clients} concurrent clients, each sending its next request
     * after its previous reply; waits for every reply. Replies go to one receiver actor that records every
     * message it gets (an ask would drop a second reply unseen), so duplicates are counted, then a short
     * settling wait gives a late second reply the time to arrive.
     */
    Replies send(int requests, int clients, long seed, Duration deadline) throws Exception {
        Replies replies = new Replies();
        ActorRef<InferReply> receiver = runtime.system().systemActorOf(Behaviors.receiveMessage(reply -> {
            replies.record(reply);
            return Behaviors.same();
        }), "replies-" + SENDS.incrementAndGet(), Props.empty());
        Random random = new Random(seed);
        List<InferenceInputs> inputs = new ArrayList<>();
        for (int i = 0; i < requests; i++) {
            inputs.add(randomRequest(random));
        }
        AtomicInteger next = new AtomicInteger();
        List<CompletableFuture<Void>> workers = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            workers.add(CompletableFuture.runAsync(() -> {
                for (int i = next.getAndIncrement(); i < requests; i = next.getAndIncrement()) {
                    String id = "r-" + i;
                    InferenceInputs in = inputs.get(i);
                    CompletableFuture<InferReply> reply = replies.expect(id);
                    model.tell(deadline == null ? new InferenceProtocol.Infer(id, in, receiver)
                            : InferenceProtocol.Infer.within(id, in, receiver, deadline));
                    try {
                        reply.get(BOUND.toSeconds(), TimeUnit.SECONDS);
                    } catch (Exception e) {
                        throw new IllegalStateException("no reply to " + id + " within " + BOUND, e);
                    }
                }
            }));
        }
        CompletableFuture.allOf(workers.toArray(CompletableFuture[]::new)).get(BOUND.toSeconds() * 3, TimeUnit.SECONDS);
        Thread.sleep(200); // a second reply would arrive in this time (as with expectNoMessage)
        return replies;
    }

    Path folder() {
        return folder;
    }

    AllocatorStats allocator() throws Exception {
        return runtime.memory().stats().toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    InferenceProtocol.ModelStats stats() throws Exception {
        return runtime.models().modelStats(model).toCompletableFuture().get(BOUND.toSeconds(), TimeUnit.SECONDS);
    }

    /**
     * The model's counters once they account for {@code requests}: replies go out from the outputs executor
     * before the model actor counts the batch, so the counters may trail the last reply briefly.
     */
    InferenceProtocol.ModelStats settledStats(long requests) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        InferenceProtocol.ModelStats s = stats();
        while (s.succeeded() + s.failed() + s.overloaded() < requests && System.nanoTime() < deadline) {
            Thread.sleep(10);
            s = stats();
        }
        return s;
    }

    /** Shuts down and returns what was still alive natively (all zero after a clean shutdown). */
    LiveObjects shutdown() throws Exception {
        closed = true;
        return runtime.shutdown(BOUND);
    }

    @Override
    public void close() throws Exception {
        if (!closed) {
            shutdown();
        }
    }
}
