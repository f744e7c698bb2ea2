package dev.mpsactors.model.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.SafetensorsFile;
import dev.mpsactors.model.onnx.OnnxSchema.Attribute;
import dev.mpsactors.model.onnx.OnnxSchema.Graph;
import dev.mpsactors.model.onnx.OnnxSchema.Model;
import dev.mpsactors.model.onnx.OnnxSchema.Node;
import dev.mpsactors.model.onnx.OnnxSchema.Tensor;
import dev.mpsactors.model.onnx.OnnxSchema.ValueInfo;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The importer on small graphs built here: a one-layer BERT in the Gemm/LayerNormalization/Gelu form (the
 * MatMul/decomposed form is the real MiniLM export, tested with the runtime), and graphs that are malformed or
 * miss what a BERT needs, each refused naming what was missing.
 */
class OnnxBertImporterTest {
    static final int H = 8, HEADS = 2, I = 16, V = 30, P = 12;

    @TempDir
    Path dir;

    private final Random random = new Random(3);

    private Tensor init(String name, int... dims) {
        int n = 1;
        for (int d : dims) {
            n *= d;
        }
        ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            b.putFloat((float) random.nextGaussian());
        }
        Tensor.Builder t = Tensor.newBuilder().setName(name).setDataType(OnnxGraph.FLOAT)
                .setRawData(ByteString.copyFrom(b.array()));
        for (int d : dims) {
            t.addDims(d);
        }
        return t.build();
    }

    private static Node node(String op, String name, String[] in, String out, Attribute... attrs) {
        Node.Builder n = Node.newBuilder().setOpType(op).setName(name).addOutput(out);
        for (String i : in) {
            n.addInput(i);
        }
        for (Attribute a : attrs) {
            n.addAttribute(a);
        }
        return n.build();
    }

    private static Attribute intAttr(String name, long v) {
        return Attribute.newBuilder().setName(name).setType(2).setI(v).build();
    }

    private static Attribute floatAttr(String name, float v) {
        return Attribute.newBuilder().setName(name).setType(1).setF(v).build();
    }

    /** A one-layer BERT: Gemm Linears (transB = 1, weights [out, in]), LayerNormalization, fused Gelu. */
    private Graph.Builder tinyBert() {
        Graph.Builder g = Graph.newBuilder().setName("tiny")
                .addInput(ValueInfo.newBuilder().setName("input_ids"))
                .addOutput(ValueInfo.newBuilder().setName("last_hidden_state"));
        g.addInitializer(init("embeddings.word_embeddings.weight", V, H));
        g.addInitializer(init("embeddings.position_embeddings.weight", P, H));
        g.addInitializer(init("embeddings.token_type_embeddings.weight", 2, H));
        g.addInitializer(init("embeddings.LayerNorm.weight", H));
        g.addInitializer(init("embeddings.LayerNorm.bias", H));
        g.addNode(node("Gather", "emb", new String[] {"embeddings.word_embeddings.weight", "input_ids"}, "e"));
        g.addNode(node("LayerNormalization", "emb_ln", new String[] {"e", "embeddings.LayerNorm.weight",
                "embeddings.LayerNorm.bias"}, "x0", floatAttr("epsilon", 1e-5f)));
        String p = "encoder.layer.0.";
        String[][] linears = {{"attention.self.query", "x0", "q"}, {"attention.self.key", "x0", "k"},
                {"attention.self.value", "x0", "v"}, {"attention.output.dense", "ctx", "ao"},
                {"intermediate.dense", "x1", "im"}, {"output.dense", "act", "o"}};
        for (String[] l : linears) {
            int out = l[0].equals("intermediate.dense") ? I : H, in = l[0].equals("output.dense") ? I : H;
            g.addInitializer(init(p + l[0] + ".weight", out, in));
            g.addInitializer(init(p + l[0] + ".bias", out));
            g.addNode(node("Gemm", l[0], new String[] {l[1], p + l[0] + ".weight", p + l[0] + ".bias"}, l[2],
                    intAttr("transB", 1)));
        }
        Tensor shape = Tensor.newBuilder().setName("split").setDataType(OnnxGraph.INT64).addDims(4)
                .addInt64Data(0).addInt64Data(0).addInt64Data(HEADS).addInt64Data(H / HEADS).build();
        g.addInitializer(shape);
        g.addNode(node("Reshape", "split_q", new String[] {"q", "split"}, "q4"));
        g.addNode(node("Attention", "attention", new String[] {"q4", "k", "v"}, "ctx"));
        for (String[] ln : new String[][] {{"attention.output.LayerNorm", "ao", "x1"}, {"output.LayerNorm", "o", "x2"}}) {
            g.addInitializer(init(p + ln[0] + ".weight", H));
            g.addInitializer(init(p + ln[0] + ".bias", H));
            g.addNode(node("LayerNormalization", ln[0], new String[] {ln[1], p + ln[0] + ".weight",
                    p + ln[0] + ".bias"}, ln[2], floatAttr("epsilon", 1e-5f)));
        }
        g.addNode(node("Gelu", "gelu", new String[] {"im"}, "act"));
        return g;
    }

    private Path write(Graph.Builder g) throws IOException {
        Path file = dir.resolve("model.onnx");
        Files.write(file, Model.newBuilder().setIrVersion(8).setProducerName("test").setGraph(g).build().toByteArray());
        return file;
    }

    private Graph.Builder without(Graph.Builder g, UnaryOperator<Node> nodes, String... initializers) {
        Graph.Builder copy = g.clone().clearNode().clearInitializer();
        for (Node n : g.getNodeList()) {
            Node m = nodes.apply(n);
            if (m != null) {
                copy.addNode(m);
            }
        }
        for (Tensor t : g.getInitializerList()) {
            if (!java.util.List.of(initializers).contains(t.getName())) {
                copy.addInitializer(t);
            }
        }
        return copy;
    }

    private void assertRefused(Graph.Builder g, String... fragments) throws IOException {
        Path file = write(g);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> OnnxBertImporter.read(file));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
        assertTrue(e.getMessage().startsWith(file.toString()), "names the file: " + e.getMessage());
    }

    @Test
    void theGemmFormImportsWithConfigFromTheGraphAndWeightsAsStored() throws IOException {
        Graph.Builder g = tinyBert();
        Path out = dir.resolve("folder");
        Path tokenizer = dir.resolve("tokenizer.json");
        Files.writeString(tokenizer, "{\"model\": {\"type\": \"WordPiece\"}}");
        OnnxBertImporter.Imported imported = OnnxBertImporter.importFolder(write(g), tokenizer, out);
        assertEquals(1, imported.config().get("num_hidden_layers").intValue());
        assertEquals(HEADS, imported.config().get("num_attention_heads").intValue());
        assertEquals(H, imported.config().get("hidden_size").intValue());
        assertEquals(I, imported.config().get("intermediate_size").intValue());
        assertEquals(V, imported.config().get("vocab_size").intValue());
        assertEquals(P, imported.config().get("max_position_embeddings").intValue());
        assertEquals(1e-5, imported.config().get("layer_norm_eps").doubleValue());
        assertEquals("gelu", imported.config().get("hidden_act").textValue());
        assertFalse(imported.hasPooler());
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            String name = "encoder.layer.0.intermediate.dense.weight";
            assertArrayEquals(new int[] {I, H}, f.info(name).shape());
            OnnxGraph graph = OnnxGraph.read(dir.resolve("model.onnx"));
            assertArrayEquals(graph.floats(graph.initializer(name).orElseThrow()), f.readFloats(name),
                    "transB = 1: stored [out, in] as PyTorch does, copied unchanged");
        }
        assertTrue(Files.readString(out.resolve("config.json")).contains("\"model_type\" : \"bert\""));
        assertEquals(Files.readString(tokenizer), Files.readString(out.resolve("tokenizer.json")));
    }

    @Test
    void aMatMulWeightIsTransposedBackToOutIn() throws IOException {
        Graph.Builder g = tinyBert();
        String p = "encoder.layer.0.intermediate.dense.";
        Tensor w = init("onnx::MatMul_1", H, I); // x·W with W [in, out]
        g = without(g, n -> n.getName().equals("intermediate.dense") ? null : n, p + "weight");
        g.addInitializer(w);
        g.addNode(node("MatMul", "inter_mm", new String[] {"x1", "onnx::MatMul_1"}, "im_mm"));
        g.addNode(node("Add", "inter_add", new String[] {p + "bias", "im_mm"}, "im"));
        Path file = write(g);
        OnnxBertImporter.Imported imported = OnnxBertImporter.read(file);
        float[] stored = OnnxGraph.read(file).floats(w);
        float[] got = imported.tensors().get(p + "weight").values();
        assertArrayEquals(new int[] {I, H}, imported.tensors().get(p + "weight").shape());
        for (int o = 0; o < I; o++) {
            for (int i = 0; i < H; i++) {
                assertEquals(stored[i * I + o], got[o * H + i]);
            }
        }
    }

    @Test
    void aNonFiniteWeightIsRefusedNamingTensorAndIndex() throws IOException {
        String name = "encoder.layer.0.output.dense.weight";
        Graph.Builder g = without(tinyBert(), UnaryOperator.identity(), name);
        ByteBuffer b = ByteBuffer.allocate(4 * H * I).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < H * I; i++) {
            b.putFloat(i == 5 ? Float.NaN : 0.25f);
        }
        g.addInitializer(Tensor.newBuilder().setName(name).setDataType(OnnxGraph.FLOAT).addDims(H).addDims(I)
                .setRawData(ByteString.copyFrom(b.array())));
        assertRefused(g, "initializer " + name, "holds NaN at flat index 5", "must be finite");
    }

    @Test
    void bytesThatAreNotAnOnnxModelAreRefused() throws IOException {
        Path file = dir.resolve("junk.onnx");
        byte[] junk = new byte[4096];
        new Random(1).nextBytes(junk);
        Files.write(file, junk);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> OnnxBertImporter.read(file));
        assertTrue(e.getMessage().contains("not an ONNX model"), e.getMessage());
        Path empty = dir.resolve("empty.onnx");
        Files.write(empty, Model.newBuilder().setIrVersion(8).build().toByteArray());
        e = assertThrows(ModelFormatException.class, () -> OnnxBertImporter.read(empty));
        assertTrue(e.getMessage().contains("holds no graph nodes"), e.getMessage());
        Path truncated = dir.resolve("truncated.onnx");
        byte[] whole = Files.readAllBytes(write(tinyBert()));
        Files.write(truncated, java.util.Arrays.copyOf(whole, whole.length / 2));
        e = assertThrows(ModelFormatException.class, () -> OnnxBertImporter.read(truncated));
        assertTrue(e.getMessage().contains("not an ONNX model"), e.getMessage());
    }

    @Test
    void graphsMissingWhatABertNeedsAreRefusedByName() throws IOException {
        assertRefused(without(tinyBert(), UnaryOperator.identity(), "embeddings.word_embeddings.weight"),
                "no initializer embeddings.word_embeddings.weight", "Hugging Face initializer names");
        assertRefused(tinyBert().clearInput().addInput(ValueInfo.newBuilder().setName("tokens")),
                "no graph input input_ids");
        assertRefused(without(tinyBert(), UnaryOperator.identity(), "embeddings.position_embeddings.weight"),
                "missing initializer embeddings.position_embeddings.weight");
        assertRefused(without(tinyBert(), n -> n.getName().equals("emb_ln") ? null : n),
                "could not find the epsilon of the LayerNorm scaled by embeddings.LayerNorm.weight");
        assertRefused(without(tinyBert(), n -> n.getName().startsWith("attention.self.query") ? null : n),
                "could not find the weight of encoder.layer.0.attention.self.query");
        assertRefused(without(tinyBert(), n -> n.getName().equals("split_q") ? null : n),
                "could not find the head count of layer 0");
        assertRefused(without(tinyBert(), n -> n.getName().equals("gelu") ? null : n),
                "could not recognise the activation of layer 0");
        assertRefused(tinyBert().addNode(node("CumSum", "positions", new String[] {"input_ids", "axis"}, "pos")),
                "CumSum", "RoBERTa");
        Graph.Builder gap = tinyBert();
        gap.addInitializer(init("encoder.layer.2.output.dense.bias", H));
        assertRefused(gap, "layer 1 is missing");
    }
}
