package dev.mpsactors.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.actors.TextEncoderActor;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.Infer;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.Embed;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.EmbedOptions;
import dev.mpsactors.protocol.TextProtocol.EmbedReply;
import dev.mpsactors.protocol.TextProtocol.Embeddings;
import dev.mpsactors.runtime.TextSettings;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The text encoder against a probe standing in for the model actor (no device): what it sends the model,
 * how it maps each model reply, and that every Embed is answered exactly once when the model fails,
 * refuses, stops, or the encoder itself stops.
 */
class TextEncoderActorTest {
    static final ActorTestKit kit = ActorTestKit.create();

    @TempDir
    static Path dir;
    static Executor tokenize;

    @BeforeAll
    static void folder() throws Exception {
        try (InputStream in = TextEncoderActorTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve(TextTokenizer.TOKENIZER_FILE));
        }
        Files.writeString(dir.resolve("config.json"), "{\"max_position_embeddings\": 512, \"hidden_size\": 4}");
        SentenceEncoderConfig.write(dir, Pooling.CLS, true, 128);
        tokenize = kit.system().dispatchers().lookup(DispatcherSelector.defaultDispatcher());
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
    }

    private static ActorRef<TextProtocol.Command> encoder(TestProbe<InferenceProtocol.Command> model) {
        return kit.spawn(TextEncoderActor.create(model.getRef(), TextEncoderActor.Text.load(dir), new TextSettings(4),
                tokenize));
    }

    @Test
    void oneRaggedRequestPaddedWithMaskAskingOnlyForTheFoldersEmbedding() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        Instant deadline = Instant.now().plusSeconds(60);
        encoder.tell(new Embed("e1", List.of("Hello world!", "hi"), null, replies.getRef(), deadline));
        Infer infer = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        assertArrayEquals(new int[] {101, 7592, 2088, 999, 102}, infer.inputs().inputIds()[0]);
        assertArrayEquals(new int[] {101, 7632, 102, 0, 0}, infer.inputs().inputIds()[1]);
        assertArrayEquals(new int[] {1, 1, 1, 0, 0}, infer.inputs().attentionMask()[1]);
        assertEquals(InferenceProtocol.OutputSpec.embedding(Pooling.CLS, true), infer.outputs());
        assertEquals(deadline, infer.deadline());
        float[][] vectors = {{1, 0, 0, 0}, {0, 1, 0, 0}};
        infer.replyTo().tell(new InferenceProtocol.InferResult(infer.requestId(), null, null, vectors));
        Embeddings e = assertInstanceOf(Embeddings.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertEquals("e1", e.requestId());
        assertArrayEquals(vectors, e.vectors());
        assertArrayEquals(new int[] {5, 3}, e.tokenCounts());

        // per-request override
        encoder.tell(new Embed("e2", List.of("x"), new EmbedOptions(Pooling.MAX, false, true), replies.getRef()));
        Infer overridden = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        assertEquals(InferenceProtocol.OutputSpec.embedding(Pooling.MAX, false), overridden.outputs());
        assertNull(overridden.deadline());
    }

    @Test
    void modelFailuresAndOverloadBecomeTextFailuresOnceEach() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        encoder.tell(new Embed("same-id", List.of("a"), null, replies.getRef()));
        encoder.tell(new Embed("same-id", List.of("b"), null, replies.getRef()));
        Infer first = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        Infer second = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        assertTrue(!first.requestId().equals(second.requestId()), "model ids are unique even when the caller's repeat");
        first.replyTo().tell(new InferenceProtocol.InferFailure(first.requestId(), TextProtocol.FailureKind.UNAVAILABLE,
                "kernel failed"));
        second.replyTo().tell(new InferenceProtocol.Overloaded(second.requestId(), "queue full"));
        Set<String> reasons = new HashSet<>();
        for (int i = 0; i < 2; i++) {
            TextFailure f = assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30)));
            reasons.add(f.kind() + ": " + f.reason());
        }
        assertEquals(Set.of("UNAVAILABLE: the model failed the request: kernel failed",
                "OVERLOADED: overloaded: queue full"), reasons);
        // a duplicate reply from the model is not passed on
        first.replyTo().tell(new InferenceProtocol.InferFailure(first.requestId(), TextProtocol.FailureKind.UNAVAILABLE,
                "again"));
        replies.expectNoMessage(Duration.ofMillis(200));
        // a result without the embedding asked for is a failure, not a null vector
        encoder.tell(new Embed("no-embedding", List.of("a"), null, replies.getRef()));
        Infer third = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        third.replyTo().tell(new InferenceProtocol.InferResult(third.requestId(), null, null, null));
        assertEquals("the model's reply carries no embedding for each text",
                assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30))).reason());
    }

    @Test
    void aStoppedModelOrEncoderAnswersEveryPendingRequest() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        encoder.tell(new Embed("pending", List.of("a"), null, replies.getRef()));
        model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        model.stop();
        TextFailure f = assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertEquals("the model actor stopped before answering", f.reason());
        replies.expectTerminated(encoder, Duration.ofSeconds(30));

        TestProbe<InferenceProtocol.Command> model2 = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder2 = encoder(model2);
        encoder2.tell(new Embed("held", List.of("a"), null, replies.getRef()));
        model2.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        kit.stop(encoder2);
        assertEquals("the text encoder stopped",
                assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30))).reason());
        replies.expectNoMessage(Duration.ofMillis(200));
    }

    @Test
    void requestsPastTheCountOrDeadlineNeverReachTheModel() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        encoder.tell(new Embed("five", List.of("a", "b", "c", "d", "e"), null, replies.getRef()));
        assertEquals("5 texts in one request; at most 4 (mps-actors.text.max-texts)",
                assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30))).reason());
        encoder.tell(new Embed("late", List.of("a"), null, replies.getRef(), Instant.now().minusSeconds(1)));
        assertTrue(assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30))).reason()
                .contains("passed before tokenizing"));
        model.expectNoMessage(Duration.ofMillis(200));
    }

    @Test
    void tokenIdsGoToTheModelAsTheyAreWithThePriorityAndBadOnesAreRefusedByIndex() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        encoder.tell(new TextProtocol.EmbedTokens("t1", new int[][] {{101, 7592, 102}, {101, 102}}, null,
                replies.getRef(), null, 3));
        Infer infer = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        assertArrayEquals(new int[] {101, 7592, 102}, infer.inputs().inputIds()[0]);
        assertArrayEquals(new int[] {101, 102, 0}, infer.inputs().inputIds()[1]);
        assertArrayEquals(new int[] {1, 1, 0}, infer.inputs().attentionMask()[1]);
        assertEquals(3, infer.priority());
        assertEquals(InferenceProtocol.OutputSpec.embedding(Pooling.CLS, true), infer.outputs());
        float[][] vectors = {{1, 0, 0, 0}, {0, 1, 0, 0}};
        infer.replyTo().tell(new InferenceProtocol.InferResult(infer.requestId(), null, null, vectors));
        Embeddings e = assertInstanceOf(Embeddings.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertArrayEquals(new int[] {3, 2}, e.tokenCounts());

        int[] tooLong = new int[129];
        java.util.Arrays.fill(tooLong, 7);
        encoder.tell(new TextProtocol.EmbedTokens("t2", new int[][] {{}, {5, -1}, tooLong, {101}},
                new EmbedOptions(null, null, false), replies.getRef(), null, 0));
        TextFailure refused = assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertEquals(TextProtocol.FailureKind.INVALID_REQUEST, refused.kind());
        assertEquals(List.of(0, 1, 2), refused.problems().stream().map(TextProtocol.TextProblem::index).toList());
        assertTrue(refused.reason().contains("position 1 is negative"), refused.reason());
        model.expectNoMessage(Duration.ofMillis(100));

        encoder.tell(new TextProtocol.EmbedTokens("t3", new int[][] {tooLong}, null, replies.getRef(), null, 0));
        Infer cut = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        assertEquals(128, cut.inputs().inputIds()[0].length, "cut to the model's limit with truncation on");
        cut.replyTo().tell(new InferenceProtocol.InferResult(cut.requestId(), null, null, new float[][] {{1, 0, 0, 0}}));
        Embeddings truncated = assertInstanceOf(Embeddings.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertTrue(truncated.truncated()[0]);
        assertEquals(128, truncated.tokenCounts()[0]);
    }

    @Test
    void cancelAsksTheModelToDropTheQueuedRequestAndAnswersOnceAsCancelled() {
        TestProbe<InferenceProtocol.Command> model = kit.createTestProbe();
        TestProbe<EmbedReply> replies = kit.createTestProbe();
        ActorRef<TextProtocol.Command> encoder = encoder(model);
        encoder.tell(new Embed("c1", List.of("a text"), null, replies.getRef(), null, 0));
        Infer infer = model.expectMessageClass(Infer.class, Duration.ofSeconds(30));
        encoder.tell(new TextProtocol.Cancel("c1"));
        encoder.tell(new TextProtocol.Cancel("unknown"));
        InferenceProtocol.Cancel cancel = model.expectMessageClass(InferenceProtocol.Cancel.class, Duration.ofSeconds(30));
        assertEquals(infer.requestId(), cancel.requestId());
        model.expectNoMessage(Duration.ofMillis(100));
        // the kind decides, not the wording of the reason
        infer.replyTo().tell(new InferenceProtocol.InferFailure(infer.requestId(), TextProtocol.FailureKind.CANCELLED,
                "dropped"));
        TextFailure f = assertInstanceOf(TextFailure.class, replies.receiveMessage(Duration.ofSeconds(30)));
        assertEquals(TextProtocol.FailureKind.CANCELLED, f.kind());
        replies.expectNoMessage(Duration.ofMillis(100));
    }
}
