package dev.mpsactors.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The real all-MiniLM-L6-v2 tokenizer.json through Hugging Face tokenizers, and the folder's sentence settings. */
class TextTokenizerTest {
    @TempDir
    Path dir;

    private Path folder(int maxPositions) throws Exception {
        try (InputStream in = TextTokenizerTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            assertTrue(in != null, "all-minilm-l6-v2-tokenizer.json on the test class path");
            Files.copy(in, dir.resolve(TextTokenizer.TOKENIZER_FILE));
        }
        Files.writeString(dir.resolve("config.json"),
                "{\"max_position_embeddings\": " + maxPositions + ", \"hidden_size\": 384}");
        return dir;
    }

    @Test
    void encodesAsBertWordPieceWithSpecialTokens() throws Exception {
        try (TextTokenizer t = TextTokenizer.load(folder(512), 512)) {
            TextTokenizer.Batch b = t.encode(List.of("Hello world!", "unaffable"), true);
            assertTrue(b.problems().isEmpty(), b.problems().toString());
            // ids of bert-base-uncased's vocabulary: [CLS] hello world ! [SEP]; un ##af ##fa ##ble
            assertArrayEquals(new int[] {101, 7592, 2088, 999, 102}, b.tokens().get(0).ids());
            assertArrayEquals(new int[] {0, 0, 0, 0, 0}, b.tokens().get(0).typeIds());
            assertEquals(101, b.tokens().get(1).ids()[0]);
            assertEquals(102, b.tokens().get(1).ids()[b.tokens().get(1).length() - 1]);
            assertTrue(b.tokens().get(1).length() > 3, "a rare word splits into word pieces");
            assertFalse(b.tokens().get(0).truncated());
        }
    }

    @Test
    void truncatesToTheLimitKeepingTheClosingTokenOrRefuses() throws Exception {
        String longText = String.join(" ", java.util.Collections.nCopies(100, "word"));
        try (TextTokenizer t = TextTokenizer.load(folder(512), 16)) {
            TextTokenizer.Tokens cut = t.encode(List.of(longText), true).tokens().get(0);
            assertEquals(16, cut.length());
            assertTrue(cut.truncated());
            assertEquals(102, cut.ids()[15], "[SEP] closes a truncated sequence");
            TextTokenizer.Batch refused = t.encode(List.of("short", longText), false);
            assertEquals(List.of(new TextProblem(1, "longer than the model's limit of 16 tokens and truncation is off")),
                    refused.problems());
            assertNull(refused.tokens().get(1));
            assertEquals(3, refused.tokens().get(0).length(), "the neighbour is tokenized");
        }
    }

    @Test
    void namesEachBadTextAndKeepsItsNeighbours() throws Exception {
        try (TextTokenizer t = TextTokenizer.load(folder(512), 512)) {
            TextTokenizer.Batch b = t.encode(Arrays.asList("ok", "", " \t\n\u00a0\u3000", "a\ud800b", "\udc00", null,
                    "\u0000\u0001", "fine 😀"), true);
            List<String> reasons = b.problems().stream().map(TextProblem::toString).toList();
            assertEquals(List.of("text 1: empty", "text 2: whitespace only",
                    "text 3: unpaired high surrogate U+D800 at char 1 (not valid UTF-16)",
                    "text 4: unpaired low surrogate U+DC00 at char 0 (not valid UTF-16)", "text 5: null",
                    "text 6: the tokenizer finds no tokens in it (only special tokens)"), reasons);
            assertEquals(3, b.tokens().get(0).length());
            assertTrue(b.tokens().get(7).length() >= 4, "emoji text tokenized");
        }
    }

    @Test
    void closedTokenizerRefusesNewWork() throws Exception {
        TextTokenizer t = TextTokenizer.load(folder(512), 512);
        t.close();
        t.close();
        assertThrows(IllegalStateException.class, () -> t.encode(List.of("x"), true));
    }

    @Test
    void missingOrCorruptTokenizerIsNamed() throws Exception {
        TextFormatException missing = assertThrows(TextFormatException.class, () -> TextTokenizer.load(dir, 128));
        assertTrue(missing.getMessage().contains("tokenizer.json: no such file"), missing.getMessage());
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {");
        TextFormatException corrupt = assertThrows(TextFormatException.class, () -> TextTokenizer.load(dir, 128));
        assertTrue(corrupt.getMessage().contains("tokenizer.json: not valid JSON"), corrupt.getMessage());
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"type\": \"NoSuchModel\"}}");
        TextFormatException refused = assertThrows(TextFormatException.class, () -> TextTokenizer.load(dir, 128));
        assertTrue(refused.getMessage().contains("the tokenizers library refused it"), refused.getMessage());
    }

    @Test
    void sentenceTransformersFilesSetPoolingNormalizationAndLimit() throws Exception {
        folder(512);
        SentenceEncoderConfig plain = SentenceEncoderConfig.read(dir);
        assertEquals(new SentenceEncoderConfig("bert", plain.hiddenSize(), Pooling.MEAN, false, 512, plain.source()), plain);

        SentenceEncoderConfig.write(dir, Pooling.MEAN, true, 256);
        SentenceEncoderConfig st = SentenceEncoderConfig.read(dir);
        assertEquals(Pooling.MEAN, st.pooling());
        assertTrue(st.normalize());
        assertEquals(256, st.maxTokens());

        SentenceEncoderConfig.write(dir, Pooling.CLS, false, 4096);
        SentenceEncoderConfig cls = SentenceEncoderConfig.read(dir);
        assertEquals(Pooling.CLS, cls.pooling());
        assertFalse(cls.normalize());
        assertEquals(512, cls.maxTokens(), "never past max_position_embeddings");

        Files.writeString(dir.resolve("1_Pooling/config.json"), "{\"pooling_mode_mean_tokens\": tru");
        assertMessage("1_Pooling/config.json: not valid JSON");
        Files.writeString(dir.resolve("1_Pooling/config.json"), "{\"pooling_mode_weightedmean_tokens\": true}");
        assertMessage("pooling_mode_weightedmean_tokens is not supported");
        Files.writeString(dir.resolve("1_Pooling/config.json"),
                "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": true}");
        assertMessage("more than one pooling mode is on");
        Files.writeString(dir.resolve("1_Pooling/config.json"), "{\"pooling_mode_mean_tokens\": false}");
        assertMessage("no pooling mode is on");
        Files.delete(dir.resolve("1_Pooling/config.json"));
        assertMessage("1_Pooling/config.json: no such file");
        Files.writeString(dir.resolve("modules.json"),
                "[{\"name\": \"2\", \"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}]");
        assertMessage("module '2' of type 'sentence_transformers.models.Dense' is not supported");
    }

    private void assertMessage(String part) {
        TextFormatException e = assertThrows(TextFormatException.class, () -> SentenceEncoderConfig.read(dir));
        assertTrue(e.getMessage().contains(part), "'" + e.getMessage() + "' should contain '" + part + "'");
    }
}
