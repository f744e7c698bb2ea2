package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code rerank} and {@code classify} on a folder that holds an encoder body only (a random BERT with the real
 * all-MiniLM-L6-v2 tokenizer): the model answers each request as unsupported, and the command reports that on
 * one line with the prefix and status 2, as it does a bad line of the input file.
 */
class ScoreCommandsTest {
    @TempDir
    static Path dir;
    static Path model;
    static Path texts;

    @BeforeAll
    static void folder() throws Exception {
        model = dir.resolve("body-only");
        Files.createDirectories(model);
        BertFolderGenerator.write(model, new BertConfig("bert", 30522, 32, 2, 4, 64, 64, 2, 1e-12, "gelu"), 5);
        try (InputStream in = ScoreCommandsTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            assertTrue(in != null, "the all-MiniLM-L6-v2 tokenizer on the test class path");
            Files.copy(in, model.resolve("tokenizer.json"));
        }
        texts = dir.resolve("texts.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            lines.add("{\"text\": \"passage number " + i + " about actors and streams\"}");
        }
        Files.write(texts, lines, StandardCharsets.UTF_8);
    }

    @Test
    void aModelWithoutAHeadIsReportedOnOneLineWithStatusTwo() {
        CommandLineConventionsTest.Outcome rerank = CommandLineConventionsTest.run("rerank", "--model",
                model.toString(), "--query", "what owns a stream?", "--input", texts.toString(), "--output",
                dir.resolve("scores.jsonl").toString(), "--batch", "8");
        assertEquals(2, rerank.exit(), rerank.stderr());
        List<String> lines = rerank.stderr().lines().toList();
        assertEquals(1, lines.size(), rerank.stderr());
        assertTrue(lines.get(0).startsWith("mps-actors: rerank: lines "), lines.get(0));
        assertTrue(lines.get(0).contains("cannot rerank: the model ") && lines.get(0).contains(
                "has no sequence-classification head"), lines.get(0));

        CommandLineConventionsTest.Outcome classify = CommandLineConventionsTest.run("classify", "--model",
                model.toString(), "--input", texts.toString(), "--output", dir.resolve("labels.jsonl").toString());
        assertEquals(2, classify.exit(), classify.stderr());
        lines = classify.stderr().lines().toList();
        assertEquals(1, lines.size(), classify.stderr());
        assertTrue(lines.get(0).startsWith("mps-actors: classify: lines ")
                && lines.get(0).contains("cannot classify: the model "), lines.get(0));
    }

    @Test
    void aBadLineIsNamedByItsNumber() throws Exception {
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n", StandardCharsets.UTF_8);
        CommandLineConventionsTest.Outcome o = CommandLineConventionsTest.run("classify", "--model", model.toString(),
                "--input", bad.toString(), "--output", dir.resolve("never.jsonl").toString());
        assertEquals(2, o.exit(), o.stderr());
        assertEquals(List.of("mps-actors: classify: " + bad + ": line 2: expected {\"text\": \"...\"}"),
                o.stderr().lines().toList());
    }
}
