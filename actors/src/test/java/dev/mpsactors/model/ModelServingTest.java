package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.runtime.InferenceFlow;
import dev.mpsactors.runtime.InferenceRequest;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A BERT folder served by a model actor on a runtime spawned in the test's ActorSystem: batched results
 * match an independent float64 reference, bad requests fail alone, and the three ways in (another actor,
 * a CompletionStage, a Pekko Streams flow) each work.
 */
class ModelServingTest {
    static final Duration BOUND = Duration.ofSeconds(60);
    static final BertConfig CONFIG = new BertConfig("bert", 60, 48, 2, 4, 96, 40, 2, 1e-12, "gelu");

    static ActorTestKit kit;
    static ActorRef<RuntimeProtocol.Command> guardian;
    static CompletableFuture<LiveObjects> deviceClosed = new CompletableFuture<>();
    static MpsRuntime runtime;
    static BertWeights weights;
    static ActorRef<InferenceProtocol.Command> model;
    static Path folder;

    @BeforeAll
    static void start() throws Exception {
        Path dir = Files.createTempDirectory("model-serving-");
        folder = dir;
        weights = BertFolderGenerator.write(dir, CONFIG, 7);
        Config config = ConfigFactory.parseString("mps-actors { streams = 2, model { max-batch = 8, max-delay = 20ms,"
                + " seq-bucket = 8 } }").withFallback(ConfigFactory.load()).resolve();
        kit = ActorTestKit.create("model-serving", config);
        guardian = kit.spawn(DeviceRuntime.create(RuntimeSettings.fromConfig(config), deviceClosed), "runtime");
        runtime = MpsRuntime.attach(kit.system(), guardian, BOUND).toCompletableFuture().get(60, TimeUnit.SECONDS);
        model = runtime.models().loadModel("tiny", dir).toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    @AfterAll
    static void stop() throws Exception {
        kit.stop(guardian, BOUND);
        LiveObjects left = deviceClosed.get(60, TimeUnit.SECONDS);
        kit.shutdownTestKit();
        assertTrue(left.isEmpty(), "nothing alive after the runtime stopped: " + left);
    }

    static InferenceInputs randomRequest(Random random, int sequences, int length, boolean padded, boolean types) {
        int[][] ids = new int[sequences][length];
        int[][] mask = padded ? new int[sequences][length] : null;
        int[][] tt = types ? new int[sequences][length] : null;
        for (int s = 0; s < sequences; s++) {
            int real = padded ? 1 + random.nextInt(length) : length;
            for (int t = 0; t < length; t++) {
                ids[s][t] = random.nextInt(CONFIG.vocabSize());
                if (padded) {
                    mask[s][t] = t < real ? 1 : 0;
                }
                if (types) {
                    tt[s][t] = t >= length / 2 ? 1 : 0;
                }
            }
        }
        return new InferenceInputs(ids, mask, tt);
    }

    static double assertMatchesReference(InferenceInputs in, InferResult result) {
        BertReference.Output ref = BertReference.forward(weights, in.inputIds(), in.attentionMask(), in.tokenTypeIds());
        double num = 0, den = 0, pnum = 0, pden = 0;
        for (int s = 0; s < in.inputIds().length; s++) {
            assertEquals(in.inputIds()[s].length, result.lastHiddenState()[s].length, "tokens of sequence " + s);
            for (int t = 0; t < in.inputIds()[s].length; t++) {
                for (int k = 0; k < CONFIG.hiddenSize(); k++) {
                    double d = result.lastHiddenState()[s][t][k] - ref.lastHiddenState()[s][t][k];
                    num += d * d;
                    den += ref.lastHiddenState()[s][t][k] * ref.lastHiddenState()[s][t][k];
                }
            }
            for (int k = 0; k < CONFIG.hiddenSize(); k++) {
                double d = result.poolerOutput()[s][k] - ref.poolerOutput()[s][k];
                pnum += d * d;
                pden += ref.poolerOutput()[s][k] * ref.poolerOutput()[s][k];
            }
        }
        double hidden = Math.sqrt(num / den), pooled = Math.sqrt(pnum / pden);
        assertTrue(hidden < 1e-4, "last_hidden_state relative L2 " + hidden);
        assertTrue(pooled < 1e-4, "pooler_output relative L2 " + pooled);
        return Math.max(hidden, pooled);
    }

    @Test
    void concurrentRaggedRequestsAreBatchedAndMatchTheFloat64Reference() throws Exception {
        InferenceProtocol.ModelStats before = runtime.models().modelStats(model).toCompletableFuture().get();
        Random random = new Random(11);
        int n = 40;
        List<InferenceInputs> inputs = new ArrayList<>();
        TestProbe<InferReply> probe = kit.createTestProbe();
        for (int i = 0; i < n; i++) {
            InferenceInputs in = randomRequest(random, 1 + random.nextInt(3), 1 + random.nextInt(20),
                    random.nextBoolean(), random.nextBoolean());
            inputs.add(in);
            model.tell(new InferenceProtocol.Infer("r" + i, in, probe.getRef()));
        }
        Map<String, InferReply> replies = new HashMap<>();
        for (int i = 0; i < n; i++) {
            InferReply r = probe.receiveMessage(BOUND);
            assertTrue(replies.put(r.requestId(), r) == null, "one reply per request: " + r.requestId());
        }
        probe.expectNoMessage(Duration.ofMillis(200));
        double worst = 0;
        for (int i = 0; i < n; i++) {
            worst = Math.max(worst, assertMatchesReference(inputs.get(i),
                    assertInstanceOf(InferResult.class, replies.get("r" + i), "reply to r" + i)));
        }
        InferenceProtocol.ModelStats after = runtime.models().modelStats(model).toCompletableFuture().get();
        long batches = after.batches() - before.batches();
        System.out.printf("model serving: %d ragged requests in %d device batches (largest %d sequences), worst "
                + "relative L2 vs float64 %.2e%n", n, batches, after.largestBatch(), worst);
        assertTrue(batches < n, "concurrent requests were merged into batches: " + batches + " for " + n);
    }

    @Test
    void badRequestsFailAloneNamingTheProblemWhileTheirBatchSucceeds() {
        Random random = new Random(5);
        TestProbe<InferReply> probe = kit.createTestProbe();
        InferenceInputs good = randomRequest(random, 2, 6, true, false);
        Map<String, InferenceInputs> bad = new HashMap<>();
        bad.put("oov", InferenceInputs.of(new int[][] {{1, 2, CONFIG.vocabSize()}}));
        bad.put("too-long", InferenceInputs.of(new int[1][CONFIG.maxPositionEmbeddings() + 1]));
        bad.put("ragged", InferenceInputs.of(new int[][] {{1, 2, 3}, {1, 2}}));
        bad.put("mask-shape", new InferenceInputs(new int[][] {{1, 2, 3}}, new int[][] {{1, 1}}, null));
        bad.put("mask-value", new InferenceInputs(new int[][] {{1, 2, 3}}, new int[][] {{1, 2, 1}}, null));
        bad.put("type-range", new InferenceInputs(new int[][] {{1, 2, 3}}, null, new int[][] {{0, 5, 0}}));
        bad.put("negative", InferenceInputs.of(new int[][] {{1, -4, 3}}));
        bad.put("empty", InferenceInputs.of(new int[][] {{}}));
        model.tell(new InferenceProtocol.Infer("good-1", good, probe.getRef()));
        for (Map.Entry<String, InferenceInputs> e : bad.entrySet()) {
            model.tell(new InferenceProtocol.Infer(e.getKey(), e.getValue(), probe.getRef()));
        }
        model.tell(new InferenceProtocol.Infer("good-2", good, probe.getRef()));
        Map<String, InferReply> replies = new HashMap<>();
        for (int i = 0; i < bad.size() + 2; i++) {
            InferReply r = probe.receiveMessage(BOUND);
            replies.put(r.requestId(), r);
        }
        assertMatchesReference(good, assertInstanceOf(InferResult.class, replies.get("good-1")));
        assertMatchesReference(good, assertInstanceOf(InferResult.class, replies.get("good-2")));
        Map<String, String> mentions = Map.of("oov", "vocab_size", "too-long", "max_position_embeddings",
                "ragged", "input_ids[1]", "mask-shape", "attention_mask[0]", "mask-value", "attention_mask[0][1]",
                "type-range", "type_vocab_size", "negative", "input_ids[0][1]", "empty", "empty");
        for (String id : bad.keySet()) {
            InferFailure f = assertInstanceOf(InferFailure.class, replies.get(id), id);
            assertTrue(f.reason().contains(mentions.get(id)), id + ": " + f.reason());
            assertEquals(dev.mpsactors.protocol.TextProtocol.FailureKind.INVALID_REQUEST, f.kind(), id);
        }
    }

    /** Padding inside the sequences (a random quarter of positions after the first) and at their ends. */
    static InferenceInputs withHoles(Random random, int sequences, int length) {
        int[][] ids = new int[sequences][length];
        int[][] mask = new int[sequences][length];
        for (int s = 0; s < sequences; s++) {
            int real = 1 + random.nextInt(length);
            for (int t = 0; t < length; t++) {
                ids[s][t] = random.nextInt(CONFIG.vocabSize());
                mask[s][t] = t == 0 || (t < real && random.nextInt(4) != 0) ? 1 : 0;
            }
        }
        return new InferenceInputs(ids, mask, null);
    }

    /** Relative L2 of a pooled embedding against the float64 reference pooled from the reference's hidden states. */
    static double embeddingError(BertWeights w, InferenceInputs in, float[][] got, InferenceProtocol.Embedding e) {
        BertReference.Output ref = BertReference.forward(w, in.inputIds(), in.attentionMask(), in.tokenTypeIds());
        double num = 0, den = 0;
        for (int s = 0; s < in.inputIds().length; s++) {
            double[] want = BertReference.pool(ref.lastHiddenState()[s],
                    in.attentionMask() == null ? null : in.attentionMask()[s],
                    e.pooling().name().toLowerCase(java.util.Locale.ROOT), e.normalize());
            assertEquals(want.length, got[s].length, "embedding width");
            for (int k = 0; k < want.length; k++) {
                num += (got[s][k] - want[k]) * (got[s][k] - want[k]);
                den += want[k] * want[k];
            }
        }
        return Math.sqrt(num / den);
    }

    @Test
    void eachRequestGetsTheOutputsItAsksForAndPooledEmbeddingsMatchTheFloat64Reference() {
        Random random = new Random(21);
        TestProbe<InferReply> probe = kit.createTestProbe();
        Map<String, InferenceInputs> inputs = new HashMap<>();
        Map<String, InferenceProtocol.OutputSpec> asked = new HashMap<>();
        int n = 0;
        for (InferenceProtocol.Pooling pooling : InferenceProtocol.Pooling.values()) {
            for (boolean normalize : new boolean[] {false, true}) {
                for (int i = 0; i < 3; i++, n++) {
                    InferenceInputs in = withHoles(random, 1 + random.nextInt(3), 2 + random.nextInt(18));
                    InferenceProtocol.Embedding e = new InferenceProtocol.Embedding(pooling, normalize);
                    // embedding alone, with last_hidden_state, and with everything: all in the same buckets
                    InferenceProtocol.OutputSpec spec = i == 0 ? new InferenceProtocol.OutputSpec(false, false, e)
                            : i == 1 ? new InferenceProtocol.OutputSpec(true, false, e)
                            : new InferenceProtocol.OutputSpec(true, true, e);
                    inputs.put("e" + n, in);
                    asked.put("e" + n, spec);
                    model.tell(new InferenceProtocol.Infer("e" + n, in, probe.getRef(), null, spec));
                }
            }
        }
        double worst = 0;
        for (int i = 0; i < n; i++) {
            InferReply reply = probe.receiveMessage(BOUND);
            InferResult r = assertInstanceOf(InferResult.class, reply, reply.requestId());
            InferenceProtocol.OutputSpec spec = asked.remove(r.requestId());
            InferenceInputs in = inputs.get(r.requestId());
            assertEquals(spec.lastHiddenState(), r.lastHiddenState() != null, r.requestId() + " last_hidden_state");
            assertEquals(spec.poolerOutput(), r.poolerOutput() != null, r.requestId() + " pooler_output");
            if (spec.poolerOutput()) {
                assertMatchesReference(in, r);
            }
            double e = embeddingError(weights, in, r.embedding(), spec.embedding());
            assertTrue(e < 1e-4, r.requestId() + " " + spec + " relative L2 " + e);
            worst = Math.max(worst, e);
        }
        assertTrue(asked.isEmpty(), "one reply per request, left: " + asked.keySet());
        probe.expectNoMessage(Duration.ofMillis(200));
        System.out.printf("pooled embeddings: %d requests over every pooling, worst relative L2 vs float64 %.2e%n", n,
                worst);
    }

    @Test
    void aCheckpointWithoutPoolerServesEverythingButPoolerOutput() throws Exception {
        Path dir = Files.createTempDirectory("no-pooler-");
        BertWeights bare = BertFolderGenerator.write(dir, CONFIG, 9,
                BertFolderGenerator.Options.defaults().withPooler(false));
        ActorRef<InferenceProtocol.Command> m = runtime.models().loadModel("no-pooler", dir).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        InferenceInputs in = withHoles(new Random(4), 2, 11);
        InferenceProtocol.Embedding mean = new InferenceProtocol.Embedding(InferenceProtocol.Pooling.MEAN, true);
        TestProbe<InferReply> probe = kit.createTestProbe();
        m.tell(new InferenceProtocol.Infer("default", in, probe.getRef()));
        InferResult byDefault = assertInstanceOf(InferResult.class, probe.receiveMessage(BOUND));
        assertEquals(null, byDefault.poolerOutput(), "the default leaves out what the model does not have");
        assertEquals(2, byDefault.lastHiddenState().length);
        m.tell(new InferenceProtocol.Infer("pooler", in, probe.getRef(), null,
                new InferenceProtocol.OutputSpec(false, true, null)));
        InferFailure f = assertInstanceOf(InferFailure.class, probe.receiveMessage(BOUND));
        assertTrue(f.reason().contains("pooler_output is not offered"), f.reason());
        assertEquals(dev.mpsactors.protocol.TextProtocol.FailureKind.UNSUPPORTED, f.kind());
        m.tell(new InferenceProtocol.Infer("embedding", in, probe.getRef(), null,
                new InferenceProtocol.OutputSpec(true, false, mean)));
        InferResult r = assertInstanceOf(InferResult.class, probe.receiveMessage(BOUND));
        assertEquals(null, r.poolerOutput());
        double e = embeddingError(bare, in, r.embedding(), mean);
        assertTrue(e < 1e-4, "embedding relative L2 " + e);
        BertReference.Output ref = BertReference.forward(bare, in.inputIds(), in.attentionMask(), null);
        double num = 0, den = 0;
        for (int s = 0; s < 2; s++) {
            for (int t = 0; t < 11; t++) {
                for (int k = 0; k < CONFIG.hiddenSize(); k++) {
                    double d = r.lastHiddenState()[s][t][k] - ref.lastHiddenState()[s][t][k];
                    num += d * d;
                    den += ref.lastHiddenState()[s][t][k] * ref.lastHiddenState()[s][t][k];
                }
            }
        }
        assertTrue(Math.sqrt(num / den) < 1e-4, "last_hidden_state relative L2 " + Math.sqrt(num / den));
    }

    /** Way in 1: another actor asks the model and hands the reply on. */
    @Test
    void anotherActorAsksTheModel() {
        TestProbe<InferReply> out = kit.createTestProbe();
        InferenceInputs in = randomRequest(new Random(3), 1, 9, false, true);
        kit.spawn(caller(model, in, out.getRef()));
        assertMatchesReference(in, assertInstanceOf(InferResult.class, out.receiveMessage(BOUND)));
    }

    private static Behavior<InferReply> caller(ActorRef<InferenceProtocol.Command> model, InferenceInputs in,
                                               ActorRef<InferReply> out) {
        return Behaviors.setup(ctx -> {
            ctx.ask(InferReply.class, model, BOUND, replyTo -> new InferenceProtocol.Infer("from-actor", in, replyTo),
                    (reply, failure) -> reply != null ? reply : new InferFailure("from-actor",
                            dev.mpsactors.protocol.TextProtocol.FailureKind.UNAVAILABLE, String.valueOf(failure)));
            return Behaviors.receive(InferReply.class).onAnyMessage(reply -> {
                out.tell(reply);
                return Behaviors.stopped();
            }).build();
        });
    }

    /** Way in 2: plain Java through the facade's CompletionStage. */
    @Test
    void plainJavaGetsACompletionStage() throws Exception {
        InferenceInputs in = randomRequest(new Random(4), 2, 12, true, false);
        InferResult r = runtime.models().infer(model, "from-java", in).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertMatchesReference(in, r);
        Throwable failure = runtime.models().infer(model, "bad", InferenceInputs.of(new int[][] {{999}}))
                .handle((ok, e) -> e).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertTrue(failure != null && failure.getMessage().contains("vocab_size"), String.valueOf(failure));
    }

    /** Way in 3: a Pekko Streams flow, in order, with at most `parallelism` requests in flight. */
    @Test
    void streamsFlowAnswersEveryElementInOrderWithBoundedInFlight() throws Exception {
        Random random = new Random(8);
        int n = 48, parallelism = 3;
        List<InferenceRequest> requests = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            // every third element asks for the normalized [CLS] embedding alone
            requests.add(new InferenceRequest("s" + i, randomRequest(random, 1, 1 + random.nextInt(16), false, false),
                    i % 3 == 0 ? InferenceProtocol.OutputSpec.embedding(InferenceProtocol.Pooling.CLS, true) : null));
        }
        // A model of its own, so its batch statistics come from this flow alone.
        ActorRef<InferenceProtocol.Command> flowModel = runtime.models().loadModel("flow", folder).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        List<InferReply> replies = Source.from(requests)
                .via(InferenceFlow.create(flowModel, parallelism, BOUND, kit.system().scheduler()))
                .runWith(Sink.seq(), kit.system())
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(n, replies.size());
        for (int i = 0; i < n; i++) {
            assertEquals("s" + i, replies.get(i).requestId(), "replies come in request order");
            InferResult r = assertInstanceOf(InferResult.class, replies.get(i));
            if (i % 3 == 0) {
                assertEquals(null, r.lastHiddenState(), "only the embedding was asked for");
                double e = embeddingError(weights, requests.get(i).inputs(), r.embedding(),
                        requests.get(i).outputs().embedding());
                assertTrue(e < 1e-4, "embedding relative L2 " + e);
            } else {
                assertMatchesReference(requests.get(i).inputs(), r);
            }
        }
        InferenceProtocol.ModelStats stats = runtime.models().modelStats(flowModel).toCompletableFuture().get();
        // Each request is one sequence: a batch never holds more than the flow lets be in flight.
        assertTrue(stats.largestBatch() <= parallelism, "at most " + parallelism + " in flight: " + stats);
        assertEquals(n, stats.requests(), "every element became one request");
    }

    @Test
    void aMalformedFolderIsRefusedNamingTheFile() throws Exception {
        Path dir = Files.createTempDirectory("bad-model-");
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"bert\", \"hidden_size\": 48}");
        Throwable failure = runtime.models().loadModel("broken", dir).handle((ok, e) -> e).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        assertTrue(failure != null && failure.getMessage().contains("config.json"), String.valueOf(failure));
        Path truncated = Files.createTempDirectory("truncated-model-");
        BertFolderGenerator.write(truncated, CONFIG, 1);
        Path file = truncated.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        failure = runtime.models().loadModel("truncated", truncated).handle((ok, e) -> e).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        assertTrue(failure != null && failure.getMessage().contains("model.safetensors"), String.valueOf(failure));
    }
}
