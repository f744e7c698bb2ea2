package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code bin/mps-actors run} and {@code info} as a user runs them: a separate JVM, exit codes, one-line errors. */
class CliTest {
    static final BertConfig CONFIG = new BertConfig("bert", 50, 32, 2, 4, 64, 24, 2, 1e-12, "gelu");

    @TempDir
    static Path dir;
    static Path model;

    record Outcome(int exit, String stdout, String stderr) {}

    @BeforeAll
    static void generate() throws Exception {
        model = dir.resolve("model");
        Files.createDirectories(model);
        BertFolderGenerator.write(model, CONFIG, 3);
    }

    static Outcome cli(String... args) throws Exception {
        return cliIn(dir, args);
    }

    /** {@code bin/mps-actors ARGS} in a fresh JVM, its output in files under {@code dir}. */
    static Outcome cliIn(Path dir, String... args) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-cp", System.getProperty("java.class.path"),
                Cli.class.getName()));
        command.addAll(List.of(args));
        Path out = Files.createTempFile(dir, "out", ".txt");
        Path err = Files.createTempFile(dir, "err", ".txt");
        Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the command finished");
        return new Outcome(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
    }

    @Test
    void theEntryPointExitsWithTheCommandsStatus() throws Exception {
        Outcome v = cli("--version");
        assertEquals(0, v.exit(), v.stderr());
        assertTrue(v.stdout().matches("mps-actors \\d+\\.\\d+\\.\\d+(-SNAPSHOT)?\\R"), v.stdout());
        Outcome h = cli("stress", "--help");
        assertEquals(0, h.exit(), h.stderr());
        assertTrue(h.stdout().startsWith("Usage: mps-actors stress"), h.stdout());
        assertEquals("", h.stderr());
        Outcome bad = cli("stress", "--clients", "0");
        assertEquals(2, bad.exit(), bad.stderr());
        assertEquals(List.of("mps-actors: stress: --clients must be a whole number >= 1, got '0'"),
                bad.stderr().lines().toList());
    }

    @Test
    void runWritesLastHiddenStateAndPoolerOutput() throws Exception {
        Path in = dir.resolve("in.json");
        Files.writeString(in, "{\"input_ids\": [[1, 2, 3, 4], [5, 6, 7, 0]], \"attention_mask\": [[1, 1, 1, 1],"
                + " [1, 1, 1, 0]], \"token_type_ids\": [[0, 0, 1, 1], [0, 0, 0, 0]]}");
        Path out = dir.resolve("out.json");
        Outcome o = cli("run", "--model", model.toString(), "--input", in.toString(), "--output", out.toString(),
                "--backend", "cpu");
        assertEquals(0, o.exit(), o.stderr());
        JsonNode result = new ObjectMapper().readTree(out.toFile());
        JsonNode hidden = result.get("last_hidden_state");
        assertEquals(2, hidden.size());
        assertEquals(4, hidden.get(1).size());
        assertEquals(CONFIG.hiddenSize(), hidden.get(1).get(3).size());
        assertEquals(2, result.get("pooler_output").size());
        assertEquals(CONFIG.hiddenSize(), result.get("pooler_output").get(0).size());
        assertTrue(Math.abs(hidden.get(0).get(0).get(0).asDouble()) > 0, "real numbers, not zeros");
    }

    @Test
    void runWritesOnlyTheOutputsAsked() throws Exception {
        Path in = dir.resolve("in-embed.json");
        Files.writeString(in, "{\"input_ids\": [[1, 2, 3, 4], [5, 6, 7, 0]], \"attention_mask\": [[1, 0, 1, 1],"
                + " [1, 1, 1, 0]]}");
        Path out = dir.resolve("out-embed.json");
        Outcome o = cli("run", "--model", model.toString(), "--input", in.toString(), "--output", out.toString(),
                "--backend", "cpu", "--outputs", "embedding:max:normalized");
        assertEquals(0, o.exit(), o.stderr());
        JsonNode result = new ObjectMapper().readTree(out.toFile());
        assertEquals(List.of("embedding"), iterable(result.fieldNames()));
        double sq = 0;
        for (JsonNode v : result.get("embedding").get(1)) {
            sq += v.asDouble() * v.asDouble();
        }
        assertEquals(2, result.get("embedding").size());
        assertEquals(1.0, sq, 1e-5, "normalized");
        Outcome bad = cli("run", "--model", model.toString(), "--input", in.toString(), "--output", out.toString(),
                "--backend", "cpu", "--outputs", "embedding:median");
        assertEquals(2, bad.exit());
        assertTrue(bad.stderr().contains("unknown pooling 'median'"), bad.stderr());
    }

    private static List<String> iterable(java.util.Iterator<String> names) {
        List<String> out = new ArrayList<>();
        names.forEachRemaining(out::add);
        return out;
    }

    @Test
    void badInputExitsNonZeroWithOneLine() throws Exception {
        Path missing = dir.resolve("missing-ids.json");
        Files.writeString(missing, "{\"attention_mask\": [[1]]}");
        Outcome o = cli("run", "--model", model.toString(), "--input", missing.toString(), "--output",
                dir.resolve("x.json").toString());
        assertEquals(2, o.exit());
        assertEquals(1, o.stderr().lines().count(), o.stderr());
        assertTrue(o.stderr().contains("input_ids"), o.stderr());

        Path oov = dir.resolve("oov.json");
        Files.writeString(oov, "{\"input_ids\": [[1, 2, 999]]}");
        o = cli("run", "--model", model.toString(), "--input", oov.toString(), "--output",
                dir.resolve("y.json").toString());
        assertEquals(1, o.exit());
        assertTrue(o.stderr().lines().filter(l -> l.startsWith("mps-actors:")).count() == 1, o.stderr());
        assertTrue(o.stderr().contains("vocab_size"), o.stderr());

        Path notJson = dir.resolve("not.json");
        Files.writeString(notJson, "{\"input_ids\": [[1, 2,");
        o = cli("run", "--model", model.toString(), "--input", notJson.toString(), "--output",
                dir.resolve("z.json").toString());
        assertEquals(2, o.exit());
        assertEquals(1, o.stderr().lines().count(), o.stderr());

        o = cli("run", "--model", dir.resolve("nope").toString(), "--input", oov.toString(), "--output", "o.json");
        assertEquals(2, o.exit());
        assertTrue(o.stderr().contains("does not exist"), o.stderr());

        o = cli("run", "--model", model.toString(), "--input", oov.toString(), "--output", "o.json", "--backend",
                "tpu");
        assertEquals(2, o.exit());
        assertTrue(o.stderr().contains("mps-actors.backend"), o.stderr());
    }

    @Test
    void infoPrintsBackendDeviceAndConfig() throws Exception {
        Outcome o = cli("info");
        assertEquals(0, o.exit(), o.stderr());
        assertTrue(o.stdout().contains("backend:  cpu"), o.stdout());
        assertTrue(o.stdout().contains("device:"), o.stdout());
        assertTrue(o.stdout().contains("kernel-cache"), o.stdout());
    }
}
