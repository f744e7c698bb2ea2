package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Set;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;

/**
 * The stress command in-process on a tiny model: every measurement completes, no reply is lost, the JSON
 * has its fields, the sweep's SVG is well-formed XML. Nothing here depends on timings.
 */
class StressBenchTest {
    static final BertConfig TINY = new BertConfig("bert", 200, 32, 2, 4, 64, 32, 2, 1e-12, "gelu");

    @TempDir
    static Path dir;
    static Path model;

    @BeforeAll
    static void generate() throws Exception {
        model = dir.resolve("model");
        Files.createDirectories(model);
        BertFolderGenerator.write(model, TINY, 5);
    }

    private static int stress(String... args) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StressOptions options = StressOptions.parse(new ArrayDeque<>(List.of(args)), false);
        int status = new StressBench(options, "test", new PrintStream(bytes, true, StandardCharsets.UTF_8)).run();
        System.out.print(bytes.toString(StandardCharsets.UTF_8));
        return status;
    }

    @Test
    void aClusterTargetAnswersEveryRequest() throws Exception {
        Path json = dir.resolve("cluster.json");
        int status = stress("--model", model.toString(), "--seq", "16", "--clients", "8", "--seconds", "2",
                "--warmup", "0", "--cluster-nodes", "2", "--compare", "none", "--gemm-seconds", "0",
                "--json", json.toString());
        assertEquals(0, status);
        JsonNode m = new ObjectMapper().readTree(json.toFile()).get("points").get(0).get("measurements").get(0);
        assertEquals("cluster-2", m.get("name").asText());
        assertTrue(m.get("sent").asLong() > 0);
        assertEquals(m.get("sent").asLong(), m.get("succeeded").asLong());
        assertEquals(0, m.get("lost").asLong());
    }

    @Test
    void mixedLengthsAskingForEmbeddingsAnswerEveryRequest() throws Exception {
        Path json = dir.resolve("mixed.json");
        int status = stress("--model", model.toString(), "--lengths", "2..16", "--clients", "8", "--seconds", "2",
                "--warmup", "0", "--streams", "2", "--compare", "serial", "--gemm-seconds", "0", "--outputs",
                "embedding:mean_sqrt_len", "--json", json.toString());
        assertEquals(0, status);
        JsonNode root = new ObjectMapper().readTree(json.toFile());
        assertEquals("2..16", root.get("lengths").asText());
        assertEquals("embedding:mean_sqrt_len", root.get("outputs").asText());
        for (JsonNode m : root.get("points").get(0).get("measurements")) {
            assertTrue(m.get("sent").asLong() > 0, m.toString());
            assertEquals(m.get("sent").asLong(), m.get("succeeded").asLong(), m.toString());
        }
        assertThrows(Cli.UsageException.class, () -> StressOptions.parse(
                new java.util.ArrayDeque<>(List.of("--lengths", "16..2")), false));
        // raw and locked (one compiled shape each) are skipped under --lengths, not refused
        assertEquals(16, StressOptions.parse(
                new java.util.ArrayDeque<>(List.of("--lengths", "2..16", "--compare", "raw")), false).lengths().max());
    }

    @Test
    void allBaselinesRunAndEveryReplyArrives() throws Exception {
        Path json = dir.resolve("stress.json");
        int status = stress("--model", model.toString(), "--seq", "16", "--clients", "8", "--seconds", "2",
                "--warmup", "0", "--streams", "2", "--compare", "raw,serial,locked", "--gemm-seconds", "0.2",
                "--json", json.toString());
        assertEquals(0, status);
        JsonNode root = new ObjectMapper().readTree(json.toFile());
        assertTrue(root.get("gemmCeilingGflops").asDouble() > 0);
        assertTrue(root.get("endToEndFractionOfGemm").asDouble() > 0);
        JsonNode point = root.get("points").get(0);
        assertEquals(8, point.get("clients").asInt());
        assertEquals(Set.of("raw", "serial", "locked"), fieldNames(point.get("throughputRatios")));
        assertEquals(4, point.get("measurements").size());
        for (JsonNode m : point.get("measurements")) {
            String name = m.get("name").asText();
            assertEquals(0, m.get("lost").asLong(), name);
            assertEquals(0, m.get("failed").asLong(), name);
            assertEquals(m.get("sent").asLong(), m.get("succeeded").asLong(), name);
            for (String field : List.of("sent", "requestsPerSecond", "sequencesPerSecond", "p50Ms", "p90Ms", "p99Ms",
                    "maxMs", "gflops", "seconds")) {
                assertTrue(m.get(field).asDouble() > 0, name + "." + field + " = " + m.get(field));
            }
            assertEquals(m.get("streams").asInt(), m.get("streamUtilisation").size(), name);
            if (name.equals("mps-actors") || name.equals("serial")) {
                assertTrue(m.get("batching").get("batches").asLong() > 0, name);
                assertTrue(m.get("batching").get("meanBatch").asDouble() >= 1, name);
                assertTrue(m.get("allocator").get("peakReservedBytes").asLong() > 0, name);
                assertTrue(m.get("allocator").get("peakAllocatedBytes").asLong() > 0, name);
            }
        }
    }

    @Test
    void mixedLengthsRunThroughTheRuntimeAndSerial() throws Exception {
        Path json = dir.resolve("lengths.json");
        int status = stress("--model", model.toString(), "--lengths", "3..20", "--clients", "8", "--seconds", "2",
                "--warmup", "0", "--compare", "raw,serial", "--gemm-seconds", "0", "--json", json.toString());
        assertEquals(0, status);
        JsonNode point = new ObjectMapper().readTree(json.toFile()).get("points").get(0);
        assertEquals(Set.of("serial"), fieldNames(point.get("throughputRatios")), "raw compiles one shape: skipped");
        for (JsonNode m : point.get("measurements")) {
            assertEquals(0, m.get("lost").asLong());
            assertEquals(m.get("sent").asLong(), m.get("succeeded").asLong());
        }
    }

    @Test
    void compareOrtAndLengthsAreParsedAndCheckedByName() {
        StressOptions o = StressOptions.parse(new ArrayDeque<>(List.of("--compare", "ort", "--onnx", "m.onnx")), false);
        assertEquals(java.util.EnumSet.allOf(StressOptions.Baseline.class), o.compare(), "ort next to the baselines");
        o = StressOptions.parse(new ArrayDeque<>(List.of("--compare", "serial,ort", "--onnx", "m.onnx")), false);
        assertEquals(Set.of(StressOptions.Baseline.SERIAL, StressOptions.Baseline.ORT), o.compare());
        o = StressOptions.parse(new ArrayDeque<>(List.of("--lengths", "8..128")), false);
        assertEquals(new StressOptions.Lengths(8, 128), o.lengths());
        assertEquals(128, o.seq());
        assertEquals(Set.of(StressOptions.Baseline.SERIAL), o.compare());
        for (String[] bad : new String[][] {{"--compare", "ort"}, {"--lengths", "9..3"}, {"--lengths", "8"},
                {"--lengths", "0..4"}}) {
            Cli.UsageException e = org.junit.jupiter.api.Assertions.assertThrows(Cli.UsageException.class,
                    () -> StressOptions.parse(new ArrayDeque<>(List.of(bad)), false));
            assertTrue(e.getMessage().contains(bad[0]), e.getMessage());
        }
    }

    @Test
    void sweepDrawsAWellFormedSvg() throws Exception {
        Path svg = dir.resolve("sweep.svg");
        int status = stress("--model", model.toString(), "--seq", "16", "--sweep", "1,4", "--seconds", "1",
                "--warmup", "0", "--streams", "2", "--compare", "raw", "--gemm-seconds", "0", "--plot", svg.toString());
        assertEquals(0, status);
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(svg.toFile());
        assertEquals("svg", doc.getDocumentElement().getNodeName());
        assertEquals(4, doc.getElementsByTagName("polyline").getLength()); // 2 runs x 2 panels
        String text = Files.readString(svg);
        assertTrue(text.contains("requests/s") && text.contains("p99 latency"));
        assertNotNull(doc.getDocumentElement().getAttribute("viewBox"));
    }

    private static Set<String> fieldNames(JsonNode node) {
        java.util.Set<String> names = new java.util.HashSet<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
