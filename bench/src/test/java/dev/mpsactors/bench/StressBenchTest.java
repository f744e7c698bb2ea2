package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
 * has its fields, the sweep's SVG is well-formed XML with a vertex per swept client count inside its
 * drawing. Nothing here depends on timings.
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
    void twoCpuDevicesReportEachDevicesUtilisationAndACrashedDeviceLosesNothing() throws Exception {
        Path json = dir.resolve("devices.json");
        int status = stress("--model", model.toString(), "--seq", "16", "--clients", "8", "--seconds", "2",
                "--warmup", "0", "--streams", "1", "--cpu-devices", "2", "--crash-device", "1", "--compare", "serial",
                "--gemm-seconds", "0", "--json", json.toString());
        assertEquals(0, status);
        JsonNode points = new ObjectMapper().readTree(json.toFile()).get("points").get(0).get("measurements");
        JsonNode m = points.get(0);
        assertEquals(2, m.get("streams").asInt(), "one stream on each of the two devices");
        JsonNode devices = m.get("devices");
        assertEquals(2, devices.size(), m.toString());
        long served = 0;
        for (int d = 0; d < 2; d++) {
            assertEquals(d, devices.get(d).get("ordinal").asInt());
            assertTrue(devices.get(d).get("served").asLong() > 0, "device " + d + " served requests: " + devices);
            served += devices.get(d).get("served").asLong();
        }
        assertEquals(1, devices.get(1).get("restarts").asInt(), "the crashed device was started again: " + devices);
        assertEquals(0, devices.get(0).get("restarts").asInt());
        assertEquals(0, m.get("lost").asLong(), "nothing lost with the crash: " + m);
        assertTrue(served >= m.get("succeeded").asLong(), "the devices served every success (warm-up included)");
        // The serial baseline runs on one device without the crash.
        assertEquals(1, points.get(1).get("devices").size());
        assertThrows(Cli.UsageException.class, () -> StressOptions.parse(
                new java.util.ArrayDeque<>(List.of("--crash-device", "x")), false));
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
        // raw and locked (one compiled shape each) are left out under --lengths, and refused when named
        assertEquals(16, StressOptions.parse(
                new java.util.ArrayDeque<>(List.of("--lengths", "2..16")), false).lengths().max());
        assertThrows(Cli.UsageException.class, () -> StressOptions.parse(
                new java.util.ArrayDeque<>(List.of("--lengths", "2..16", "--compare", "raw")), false));
    }

    @Test
    void textsRunThroughEmbedAndAsTokenIdsAndEveryReplyArrives() throws Exception {
        Path textModel = dir.resolve("text-model");
        Files.createDirectories(textModel);
        BertFolderGenerator.write(textModel, new BertConfig("bert", 30522, 32, 2, 4, 64, 64, 2, 1e-12, "gelu"), 6);
        try (java.io.InputStream in = StressBenchTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            assertTrue(in != null, "the all-MiniLM-L6-v2 tokenizer on the test class path");
            Files.copy(in, textModel.resolve("tokenizer.json"));
        }
        Path texts = dir.resolve("texts.txt"); // plain lines
        List<String> lines = new java.util.ArrayList<>();
        for (int i = 0; i < 30; i++) {
            lines.add("text " + i + " " + "about actors and streams ".repeat(1 + i % 5));
        }
        Files.write(texts, lines, StandardCharsets.UTF_8);
        Path json = dir.resolve("texts.json");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StressOptions options = StressOptions.parse(new ArrayDeque<>(List.of("--model", textModel.toString(),
                "--texts", texts.toString(), "--batch-per-request", "3", "--clients", "4", "--seconds", "1",
                "--warmup", "0", "--streams", "2", "--gemm-seconds", "0", "--json", json.toString())), false);
        assertEquals(Set.of(), options.compare(), "no baselines with --texts");
        int status = new StressBench(options, "test", new PrintStream(bytes, true, StandardCharsets.UTF_8)).run();
        String out = bytes.toString(StandardCharsets.UTF_8);
        System.out.print(out);
        assertEquals(0, status);
        List<String> names = new java.util.ArrayList<>();
        for (JsonNode m : new ObjectMapper().readTree(json.toFile()).get("points").get(0).get("measurements")) {
            names.add(m.get("name").asText());
            assertTrue(m.get("sent").asLong() > 0, m.toString());
            assertEquals(m.get("sent").asLong(), m.get("succeeded").asLong(), m.toString());
            assertEquals(0, m.get("lost").asLong(), m.toString());
        }
        assertEquals(List.of("texts", "token-ids"), names);
        assertTrue(out.contains("texts from " + texts + ": 10 requests of up to 3 texts"), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("texts ") && l.contains(" tokens/s")), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("token-ids ") && l.contains(" tokens/s")), out);

        assertThrows(Cli.UsageException.class, () -> StressOptions.parse(new ArrayDeque<>(List.of("--texts",
                texts.toString())), false), "--texts needs --model");
        assertThrows(Cli.UsageException.class, () -> StressOptions.parse(new ArrayDeque<>(List.of("--model",
                textModel.toString(), "--texts", texts.toString(), "--compare", "raw")), false));
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
                "--warmup", "0", "--gemm-seconds", "0", "--json", json.toString());
        assertEquals(0, status);
        JsonNode point = new ObjectMapper().readTree(json.toFile()).get("points").get(0);
        assertEquals(Set.of("serial"), fieldNames(point.get("throughputRatios")),
                "raw and locked compile one shape each: left out of the default baselines");
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
        // Every line has one vertex per swept client count, inside the drawing's viewBox.
        String[] box = doc.getDocumentElement().getAttribute("viewBox").trim().split("\\s+");
        assertEquals(4, box.length, "viewBox has min-x, min-y, width, height");
        double width = Double.parseDouble(box[2]);
        double height = Double.parseDouble(box[3]);
        assertTrue(width > 0 && height > 0, "a drawing of positive size");
        org.w3c.dom.NodeList lines = doc.getElementsByTagName("polyline");
        for (int i = 0; i < lines.getLength(); i++) {
            String[] vertices = ((org.w3c.dom.Element) lines.item(i)).getAttribute("points").trim().split("\\s+");
            assertEquals(2, vertices.length, "a vertex for each of the 2 client counts: " + String.join(" ", vertices));
            for (String vertex : vertices) {
                String[] xy = vertex.split(",");
                double x = Double.parseDouble(xy[0]);
                double y = Double.parseDouble(xy[1]);
                assertTrue(x >= 0 && x <= width && y >= 0 && y <= height, "vertex " + vertex + " inside the viewBox");
            }
        }
    }

    private static Set<String> fieldNames(JsonNode node) {
        java.util.Set<String> names = new java.util.HashSet<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
