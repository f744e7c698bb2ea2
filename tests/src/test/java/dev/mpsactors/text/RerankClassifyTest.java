package dev.mpsactors.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.model.Family;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.Classifications;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.protocol.TextProtocol.LabelScore;
import dev.mpsactors.protocol.TextProtocol.ScoreOptions;
import dev.mpsactors.protocol.TextProtocol.Scores;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.TextReply;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.TextFlows;
import dev.mpsactors.runtime.TextRequestFailedException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Rerank and Classify end to end on the cpu backend: sequence-classification heads of BERT (a one-label
 * cross-encoder), MPNet (three labels, softmax) and DistilBERT (two labels, multi_label_classification: sigmoid),
 * each folder with the all-MiniLM-L6-v2 tokenizer. Scores equal the activation of the logits the model computes
 * for each (query, text) pair run alone through the tokenizer's pair template; labels come from id2label, highest
 * first; requests a model cannot serve fail with the right kind; every request is answered exactly once.
 */
class RerankClassifyTest {
    static final int VOCAB = 30522;

    @TempDir
    static Path dir;
    static MpsRuntime rt;
    static ActorRef<TextProtocol.Command> crossEncoder, mpnet, distil, body;
    static ActorRef<InferenceProtocol.Command> crossModel, mpnetModel, distilModel;
    static Path crossFolder, mpnetFolder;

    static BertConfig config(Family family) {
        boolean paddingOffset = family.paddingOffsetPositions();
        return new BertConfig(family.modelType(), VOCAB, 32, 2, 4, 64, paddingOffset ? 66 : 64,
                family.tokenTypes() ? 2 : 0, 1e-12, "gelu", family, paddingOffset ? 1 : 0,
                family.relativeAttentionBias() ? BertConfig.MPNET_BUCKETS : 0);
    }

    static Path folder(String name, Family family, int labels, String problemType) throws Exception {
        Path f = dir.resolve(name);
        BertFolderGenerator.write(f, config(family), name.hashCode(),
                BertFolderGenerator.Options.defaults().withHead(labels, problemType), 0.2);
        try (InputStream in = RerankClassifyTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, f.resolve(TextTokenizer.TOKENIZER_FILE));
        }
        return f;
    }

    @BeforeAll
    static void start() throws Exception {
        crossFolder = folder("cross", Family.BERT, 1, null);
        mpnetFolder = folder("mpnet", Family.MPNET, 3, null);
        Path distilFolder = folder("distil", Family.DISTILBERT, 2, "multi_label_classification");
        Path bodyFolder = folder("body", Family.ROBERTA, 0, null);
        rt = MpsRuntime.start(ConfigFactory.load());
        crossEncoder = rt.models().loadTextEncoder("cross", crossFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        mpnet = rt.models().loadTextEncoder("mpnet", mpnetFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        distil = rt.models().loadTextEncoder("distil", distilFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        body = rt.models().loadTextEncoder("body", bodyFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        crossModel = rt.models().loadModel("cross-ids", crossFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        mpnetModel = rt.models().loadModel("mpnet-ids", mpnetFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        distilModel = rt.models().loadModel("distil-ids", distilFolder).toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    @AfterAll
    static void stop() throws Exception {
        if (rt != null) {
            assertTrue(rt.shutdown(Duration.ofSeconds(60)).isEmpty(), "nothing left alive natively");
        }
    }

    static final String QUERY = "what is the capital of France?";
    static final List<String> TEXTS = List.of("Paris is the capital and largest city of France.",
            "The Eiffel Tower 🗼 was built in 1889.", "Berlin", "東京は日本の首都です。");

    /** The logits the model computes for one sequence alone (no padding, no other request in its batch). */
    static float[] logitsAlone(ActorRef<InferenceProtocol.Command> model, int[] ids, int[] types) throws Exception {
        InferenceProtocol.InferResult r = rt.models().infer(model, "alone", new InferenceProtocol.InferenceInputs(
                new int[][] {ids}, null, new int[][] {types}), InferenceProtocol.OutputSpec.LOGITS)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        return r.logits()[0];
    }

    @Test
    void rerankScoresEachPairThroughThePairTemplate() throws Exception {
        Scores s = rt.models().rerank(crossEncoder, "r1", QUERY, TEXTS, null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        Scores raw = rt.models().rerank(crossEncoder, "r2", QUERY, TEXTS, new ScoreOptions(true, true))
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(TEXTS.size(), s.scores().length);
        try (TextTokenizer t = TextTokenizer.load(crossFolder, 64)) {
            List<TextTokenizer.Tokens> pairs = t.encodePairs(QUERY, TEXTS, true).tokens();
            for (int i = 0; i < TEXTS.size(); i++) {
                TextTokenizer.Tokens p = pairs.get(i);
                // [CLS] query [SEP] text [SEP], the text's tokens with token type 1
                assertEquals(101, p.ids()[0]);
                assertEquals(2, java.util.Arrays.stream(p.ids()).filter(id -> id == 102).count());
                assertEquals(1, p.typeIds()[p.length() - 1]);
                assertEquals(p.length(), s.tokenCounts()[i]);
                float logit = logitsAlone(crossModel, p.ids(), p.typeIds())[0];
                assertEquals(logit, raw.scores()[i], 1e-5f, "raw score of text " + i);
                assertEquals(1 / (1 + Math.exp(-logit)), s.scores()[i], 1e-5, "sigmoid score of text " + i);
            }
        }
    }

    @Test
    void classifyRanksIdToLabelsBySoftmaxOrSigmoid() throws Exception {
        Classifications c = rt.models().classify(mpnet, "c1", TEXTS, null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        Classifications multi = rt.models().classify(distil, "c2", TEXTS, null).toCompletableFuture().get(60, TimeUnit.SECONDS);
        try (TextTokenizer t = TextTokenizer.load(mpnetFolder, 64)) {
            List<TextTokenizer.Tokens> tokens = t.encode(TEXTS, true).tokens();
            for (int i = 0; i < TEXTS.size(); i++) {
                TextTokenizer.Tokens tk = tokens.get(i);
                float[] logits = logitsAlone(mpnetModel, tk.ids(), tk.typeIds());
                double max = Math.max(logits[0], Math.max(logits[1], logits[2])), sum = 0;
                for (float l : logits) {
                    sum += Math.exp(l - max);
                }
                List<LabelScore> ranked = c.labels().get(i);
                assertEquals(3, ranked.size());
                double total = 0;
                for (int k = 0; k < 3; k++) {
                    LabelScore ls = ranked.get(k);
                    int id = Integer.parseInt(ls.label().substring("label_x".length()));
                    assertEquals("label_" + (char) ('a' + id) + id, ls.label());
                    assertEquals(Math.exp(logits[id] - max) / sum, ls.score(), 1e-5, "text " + i + " " + ls.label());
                    assertTrue(k == 0 || ranked.get(k - 1).score() >= ls.score(), "highest first");
                    total += ls.score();
                }
                assertEquals(1.0, total, 1e-5);

                float[] distilLogits = logitsAlone(distilModel, tk.ids(), tk.typeIds());
                for (LabelScore ls : multi.labels().get(i)) {
                    int id = Integer.parseInt(ls.label().substring("label_x".length()));
                    assertEquals(1 / (1 + Math.exp(-distilLogits[id])), ls.score(), 1e-5, "multi-label " + ls.label());
                }
            }
        }
    }

    @Test
    void describeReportsTasksAndLabels() throws Exception {
        TextProtocol.EncoderInfo cross = rt.models().describe(crossEncoder).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(Set.of(TextProtocol.Task.EMBED, TextProtocol.Task.RERANK, TextProtocol.Task.CLASSIFY), cross.tasks());
        assertEquals(List.of("label_a0"), cross.labels());
        TextProtocol.EncoderInfo m = rt.models().describe(mpnet).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals("mpnet", m.family());
        assertEquals(64, m.maxTokens(), "66 positions past padding id 1");
        assertEquals(Set.of(TextProtocol.Task.EMBED, TextProtocol.Task.CLASSIFY), m.tasks());
        assertEquals(List.of("label_a0", "label_b1", "label_c2"), m.labels());
        TextProtocol.EncoderInfo b = rt.models().describe(body).toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(Set.of(TextProtocol.Task.EMBED), b.tasks());
        assertEquals(List.of(), b.labels());
    }

    static TextRequestFailedException failure(java.util.concurrent.CompletionStage<?> stage) throws Exception {
        try {
            stage.toCompletableFuture().get(60, TimeUnit.SECONDS);
            throw new AssertionError("expected a failure");
        } catch (ExecutionException e) {
            return assertInstanceOf(TextRequestFailedException.class, e.getCause());
        }
    }

    @Test
    void requestsAModelCannotServeFailWithTheirKind() throws Exception {
        TextRequestFailedException noHead = failure(rt.models().classify(body, "b1", TEXTS, null));
        assertEquals(FailureKind.UNSUPPORTED, noHead.kind());
        assertTrue(noHead.getMessage().contains("no sequence-classification head"), noHead.getMessage());
        TextRequestFailedException notCross = failure(rt.models().rerank(mpnet, "b2", QUERY, TEXTS, null));
        assertEquals(FailureKind.UNSUPPORTED, notCross.kind());
        assertTrue(notCross.getMessage().contains("3 labels"), notCross.getMessage());

        String longText = String.join(" ", Collections.nCopies(80, "word"));
        TextRequestFailedException tooLong = failure(rt.models().rerank(crossEncoder, "b3", QUERY, List.of("short", longText),
                new ScoreOptions(false, false)));
        assertEquals(FailureKind.INVALID_REQUEST, tooLong.kind());
        assertEquals(1, tooLong.problems().size());
        assertEquals(1, tooLong.problems().get(0).index());
        assertTrue(tooLong.problems().get(0).reason().contains("truncation is off"), tooLong.getMessage());
        Scores cut = rt.models().rerank(crossEncoder, "b4", QUERY, List.of("short", longText), null)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        assertEquals(64, cut.tokenCounts()[1]);
        assertTrue(cut.truncated()[1] && !cut.truncated()[0]);

        assertEquals(FailureKind.INVALID_REQUEST, failure(rt.models().rerank(crossEncoder, "b5", "  \t", TEXTS, null)).kind());
        assertEquals(FailureKind.INVALID_REQUEST, failure(rt.models().classify(mpnet, "b6", List.of(), null)).kind());
        TextRequestFailedException empty = failure(rt.models().classify(mpnet, "b7", List.of("fine", ""), null));
        assertEquals(List.of(1), empty.problems().stream().map(TextProtocol.TextProblem::index).toList());
    }

    @Test
    void mixedRequestsFromActorsAreEachAnsweredExactlyOnce() {
        TestProbe<TextReply> probe = TestProbe.create(rt.system());
        Instant deadline = Instant.now().plusSeconds(120);
        Set<String> sent = new HashSet<>();
        int good = 0;
        for (int i = 0; i < 24; i++) {
            String id = "m" + i;
            sent.add(id);
            List<String> texts = i % 6 == 5 ? List.of("ok", "") : TEXTS.subList(0, 1 + i % TEXTS.size());
            good += i % 6 == 5 ? 0 : 1;
            switch (i % 3) {
                case 0 -> crossEncoder.tell(new TextProtocol.Rerank(id, QUERY, texts, null, probe.getRef().narrow(),
                        deadline));
                case 1 -> mpnet.tell(new TextProtocol.Classify(id, texts, null, probe.getRef().narrow(), deadline));
                default -> distil.tell(new TextProtocol.Classify(id, texts, null, probe.getRef().narrow(), deadline));
            }
        }
        List<String> answered = new ArrayList<>();
        int ok = 0;
        for (int i = 0; i < 24; i++) {
            TextReply r = probe.receiveMessage(Duration.ofSeconds(60));
            answered.add(r.requestId());
            ok += r instanceof TextFailure ? 0 : 1;
        }
        probe.expectNoMessage(Duration.ofMillis(200));
        assertEquals(sent, new HashSet<>(answered), "every id answered");
        assertEquals(24, answered.size(), "once each");
        assertEquals(good, ok, "the requests with an empty text failed, the others succeeded");
    }

    @Test
    void pairTokensKeepTheirTypesAndPaddingDoesNotChangeScores() throws Exception {
        // one request of four texts (padded to the longest pair) against each pair alone
        Scores together = rt.models().rerank(crossEncoder, "p1", QUERY, TEXTS, new ScoreOptions(true, true))
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
        float[] alone = new float[TEXTS.size()];
        for (int i = 0; i < TEXTS.size(); i++) {
            alone[i] = rt.models().rerank(crossEncoder, "p" + i, QUERY, List.of(TEXTS.get(i)), new ScoreOptions(true, true))
                    .toCompletableFuture().get(60, TimeUnit.SECONDS).scores()[0];
        }
        assertArrayEquals(alone, together.scores(), 1e-5f);
    }

    @Test
    void streamsRerankAndClassifyInOrderWithOneReplyPerElement() throws Exception {
        // the Streams flows over the same encoders: replies in element order, failures as elements, not errors
        List<TextFlows.RerankRequest> reranks = new ArrayList<>();
        List<TextFlows.ClassifyRequest> classifies = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            List<String> texts = i % 4 == 3 ? List.of("fine", "") : TEXTS;
            reranks.add(new TextFlows.RerankRequest("fr" + i, QUERY, texts, null));
            classifies.add(new TextFlows.ClassifyRequest("fc" + i, texts, null));
        }
        List<TextProtocol.RerankReply> scored = org.apache.pekko.stream.javadsl.Source.from(reranks)
                .via(TextFlows.rerank(crossEncoder, 3, Duration.ofSeconds(60), rt.system().scheduler()))
                .runWith(org.apache.pekko.stream.javadsl.Sink.seq(), rt.system()).toCompletableFuture()
                .get(120, TimeUnit.SECONDS);
        List<TextProtocol.ClassifyReply> labelled = org.apache.pekko.stream.javadsl.Source.from(classifies)
                .via(TextFlows.classify(mpnet, 3, Duration.ofSeconds(60), rt.system().scheduler()))
                .runWith(org.apache.pekko.stream.javadsl.Sink.seq(), rt.system()).toCompletableFuture()
                .get(120, TimeUnit.SECONDS);
        Scores direct = rt.models().rerank(crossEncoder, "direct", QUERY, TEXTS, null).toCompletableFuture()
                .get(60, TimeUnit.SECONDS);
        assertEquals(12, scored.size());
        assertEquals(12, labelled.size());
        for (int i = 0; i < 12; i++) {
            assertEquals("fr" + i, scored.get(i).requestId(), "in element order");
            assertEquals("fc" + i, labelled.get(i).requestId(), "in element order");
            if (i % 4 == 3) {
                assertEquals(FailureKind.INVALID_REQUEST, assertInstanceOf(TextFailure.class, scored.get(i)).kind());
                assertEquals(FailureKind.INVALID_REQUEST, assertInstanceOf(TextFailure.class, labelled.get(i)).kind());
            } else {
                assertArrayEquals(direct.scores(), assertInstanceOf(Scores.class, scored.get(i)).scores(), 1e-6f);
                assertEquals(TEXTS.size(), assertInstanceOf(Classifications.class, labelled.get(i)).labels().size());
            }
        }
    }
}
