package dev.mpsactors.model.onnx;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.SafetensorsFile.Dtype;
import dev.mpsactors.model.SafetensorsWriter;
import dev.mpsactors.model.onnx.OnnxSchema.Node;
import dev.mpsactors.model.onnx.OnnxSchema.Tensor;
import dev.mpsactors.model.onnx.OnnxSchema.ValueInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Imports an ONNX export of a BERT-family encoder into a Hugging Face model folder ({@code config.json},
 * {@code model.safetensors}, optionally {@code tokenizer.json}).
 *
 * <p>What it expects, the layout {@code torch.onnx.export} and Optimum write for {@code BertModel}:
 * <ul>
 *   <li>initializers named as in Hugging Face ({@code embeddings.word_embeddings.weight},
 *       {@code encoder.layer.N.attention.self.query.bias}, ..., with or without the {@code bert.} prefix);
 *   <li>each Linear's weight found through the nodes that consume its bias: {@code Add(bias, MatMul(x, W))}
 *       where {@code W} is an initializer in {@code [in, out]} (transposed back to PyTorch's {@code [out, in]})
 *       or a {@code Transpose} of one in {@code [out, in]}, or {@code Gemm(x, W, bias)} with its
 *       {@code transB};
 *   <li>LayerNorms as {@code LayerNormalization} or as the ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div
 *       decomposition, the epsilon read from the graph;
 *   <li>heads from the attention's {@code Reshape} to {@code [batch, seq, heads, head_size]}, checked against
 *       the scores' scale {@code 1/sqrt(head_size)} where the graph shows it;
 *   <li>the intermediate activation: erf GELU ({@code gelu}), the tanh approximation ({@code gelu_new}) or
 *       {@code relu}, as decomposed ops or a fused {@code Gelu}.
 * </ul>
 * Anything else is refused with a {@link ModelFormatException} naming what was looked for and not found.
 * The pooler ({@code pooler.dense.*}) is imported when the graph has it; an export without one yields a
 * folder without one.
 */
public final class OnnxBertImporter {
    public static final String CONFIG_FILE = "config.json";
    public static final String WEIGHTS_FILE = "model.safetensors";
    public static final String TOKENIZER_FILE = "tokenizer.json";

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final String[] PREFIXES = {"", "bert."};
    private static final Pattern LAYER = Pattern.compile("encoder\\.layer\\.(\\d+)\\.");

    /** One imported tensor: PyTorch layout, row-major. */
    public record ImportedTensor(int[] shape, float[] values) {}

    /**
     * What was read from the graph.
     *
     * @param config  the Hugging Face {@code config.json} of a {@code BertModel}
     * @param tensors canonical names (no {@code bert.} prefix) to values, Linear weights as {@code [out, in]}
     */
    public record Imported(ObjectNode config, Map<String, ImportedTensor> tensors) {
        public boolean hasPooler() {
            return tensors.containsKey("pooler.dense.weight");
        }
    }

    private final OnnxGraph g;
    private final String prefix;

    private OnnxBertImporter(OnnxGraph g, String prefix) {
        this.g = g;
        this.prefix = prefix;
    }

    /** Reads {@code onnx} and writes the folder {@code out} (created if needed; its three files overwritten). */
    public static Imported importFolder(Path onnx, Path tokenizer, Path out) throws IOException {
        if (tokenizer != null) {
            requireJsonObject(tokenizer);
        }
        Imported imported = read(onnx);
        Files.createDirectories(out);
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt")
                .metadata("source", "ONNX import of " + onnx.getFileName());
        imported.tensors().forEach((name, t) -> writer.add(name, Dtype.F32, t.shape(), t.values()));
        writer.write(out.resolve(WEIGHTS_FILE));
        Files.writeString(out.resolve(CONFIG_FILE), JSON.writeValueAsString(imported.config()));
        if (tokenizer != null) {
            Files.copy(tokenizer, out.resolve(TOKENIZER_FILE), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return imported;
    }

    /** Reads and recognises {@code onnx}; writes nothing. */
    public static Imported read(Path onnx) throws IOException {
        OnnxGraph g = OnnxGraph.read(onnx);
        String prefix = null;
        for (String p : PREFIXES) {
            if (g.initializer(p + "embeddings.word_embeddings.weight").isPresent()) {
                prefix = p;
                break;
            }
        }
        if (prefix == null) {
            throw g.fail("not a recognised BERT export: no initializer embeddings.word_embeddings.weight (or "
                    + "bert.embeddings.word_embeddings.weight); the importer needs Hugging Face initializer names. "
                    + "Initializers found: " + sample(g.initializers().keySet()));
        }
        return new OnnxBertImporter(g, prefix).recognise();
    }

    private Imported recognise() {
        for (Node n : g.graph().getNodeList()) {
            if (n.getOpType().equals("CumSum")) {
                throw g.fail("not a recognised BERT export: node " + n.getName() + " (CumSum) computes position "
                        + "ids from the input, as RoBERTa-style models do; only absolute positions 0..seq-1 are "
                        + "supported");
            }
        }
        requireInput("input_ids");

        Map<String, ImportedTensor> out = new LinkedHashMap<>();
        float[] word = put(out, "embeddings.word_embeddings.weight", requireInit("embeddings.word_embeddings.weight", 2));
        int[] wordShape = out.get("embeddings.word_embeddings.weight").shape();
        int vocab = wordShape[0], hidden = wordShape[1];
        put(out, "embeddings.position_embeddings.weight", requireInit("embeddings.position_embeddings.weight", 2));
        put(out, "embeddings.token_type_embeddings.weight", requireInit("embeddings.token_type_embeddings.weight", 2));
        int maxPositions = out.get("embeddings.position_embeddings.weight").shape()[0];
        int typeVocab = out.get("embeddings.token_type_embeddings.weight").shape()[0];
        requireWidth(out, "embeddings.position_embeddings.weight", hidden);
        requireWidth(out, "embeddings.token_type_embeddings.weight", hidden);
        Tensor embGamma = layerNormParam("embeddings.LayerNorm", "weight", "gamma");
        put(out, "embeddings.LayerNorm.weight", embGamma);
        put(out, "embeddings.LayerNorm.bias", layerNormParam("embeddings.LayerNorm", "bias", "beta"));
        double eps = layerNormEps(embGamma);
        assert word.length == (long) vocab * hidden;

        int layers = countLayers();
        int intermediate = -1, heads = -1;
        String activation = null;
        for (int l = 0; l < layers; l++) {
            String p = "encoder.layer." + l + ".";
            Tensor queryBias = requireInit(p + "attention.self.query.bias", 1);
            linear(out, p + "attention.self.query", hidden, hidden);
            linear(out, p + "attention.self.key", hidden, hidden);
            linear(out, p + "attention.self.value", hidden, hidden);
            linear(out, p + "attention.output.dense", hidden, hidden);
            Tensor attnGamma = layerNormParam(p + "attention.output.LayerNorm", "weight", "gamma");
            put(out, p + "attention.output.LayerNorm.weight", attnGamma);
            put(out, p + "attention.output.LayerNorm.bias", layerNormParam(p + "attention.output.LayerNorm", "bias",
                    "beta"));
            Tensor interBias = requireInit(p + "intermediate.dense.bias", 1);
            int inter = OnnxGraph.shape(interBias)[0];
            if (intermediate < 0) {
                intermediate = inter;
            } else if (inter != intermediate) {
                throw g.fail("layer " + l + " has intermediate size " + inter + ", layer 0 has " + intermediate);
            }
            String interOut = linear(out, p + "intermediate.dense", inter, hidden);
            linear(out, p + "output.dense", hidden, inter);
            Tensor outGamma = layerNormParam(p + "output.LayerNorm", "weight", "gamma");
            put(out, p + "output.LayerNorm.weight", outGamma);
            put(out, p + "output.LayerNorm.bias", layerNormParam(p + "output.LayerNorm", "bias", "beta"));
            for (Tensor gamma : List.of(attnGamma, outGamma)) {
                double e = layerNormEps(gamma);
                if (Math.abs(e - eps) > 1e-6 * eps) {
                    throw g.fail("LayerNorm " + gamma.getName() + " uses epsilon " + e + ", the embeddings' uses "
                            + eps + "; config.json holds one epsilon");
                }
            }
            int h = heads(l, queryBias, hidden);
            if (heads < 0) {
                heads = h;
            } else if (h != heads) {
                throw g.fail("layer " + l + " has " + h + " attention heads, layer 0 has " + heads);
            }
            String act = activation(l, interOut);
            if (activation == null) {
                activation = act;
            } else if (!act.equals(activation)) {
                throw g.fail("layer " + l + " uses activation " + act + ", layer 0 uses " + activation);
            }
        }
        if (g.initializer(prefix + "pooler.dense.bias").isPresent()) {
            linear(out, "pooler.dense", hidden, hidden);
        }

        ObjectNode config = JSON.createObjectNode();
        config.putArray("architectures").add("BertModel");
        config.put("model_type", "bert");
        config.put("vocab_size", vocab);
        config.put("hidden_size", hidden);
        config.put("num_hidden_layers", layers);
        config.put("num_attention_heads", heads);
        config.put("intermediate_size", intermediate);
        config.put("hidden_act", activation);
        config.put("max_position_embeddings", maxPositions);
        config.put("type_vocab_size", typeVocab);
        config.put("layer_norm_eps", eps);
        config.put("position_embedding_type", "absolute");
        config.put("torch_dtype", "float32");
        return new Imported(config, out);
    }

    // ------------------------------------------------------------------------------------------------
    // Tensors
    // ------------------------------------------------------------------------------------------------

    private float[] put(Map<String, ImportedTensor> out, String name, Tensor t) {
        float[] v = finiteFloats(t, "");
        out.put(name, new ImportedTensor(OnnxGraph.shape(t), v));
        return v;
    }

    /** The tensor's values; a NaN or infinity would turn every output into NaN, so it is refused by place. */
    private float[] finiteFloats(Tensor t, String role) {
        float[] v = g.floats(t);
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                throw g.fail("initializer " + t.getName() + role + " holds " + v[i] + " at flat index " + i
                        + "; weights must be finite");
            }
        }
        return v;
    }

    private Tensor requireInit(String name, int rank) {
        Tensor t = g.initializer(prefix + name).orElseThrow(() -> g.fail("not a recognised BERT export: missing "
                + "initializer " + prefix + name));
        if (t.getDimsCount() != rank) {
            throw g.fail("initializer " + t.getName() + " has shape " + t.getDimsList() + ", expected rank " + rank);
        }
        return t;
    }

    private void requireWidth(Map<String, ImportedTensor> out, String name, int hidden) {
        int[] s = out.get(name).shape();
        if (s[1] != hidden) {
            throw g.fail("initializer " + prefix + name + " has shape " + Arrays.toString(s) + ", expected width "
                    + hidden + " (the word embeddings')");
        }
    }

    private Tensor layerNormParam(String module, String name, String tfName) {
        Optional<Tensor> t = g.initializer(prefix + module + "." + name);
        if (t.isEmpty()) {
            t = g.initializer(prefix + module + "." + tfName);
        }
        return t.orElseThrow(() -> g.fail("not a recognised BERT export: missing initializer " + prefix + module
                + "." + name));
    }

    private void requireInput(String name) {
        for (ValueInfo v : g.graph().getInputList()) {
            if (v.getName().equals(name)) {
                return;
            }
        }
        List<String> names = new ArrayList<>();
        g.graph().getInputList().forEach(v -> names.add(v.getName()));
        throw g.fail("not a recognised BERT export: no graph input " + name + " (inputs: " + names + ")");
    }

    private int countLayers() {
        TreeSet<Integer> seen = new TreeSet<>();
        for (String name : g.initializers().keySet()) {
            if (!name.startsWith(prefix)) {
                continue;
            }
            Matcher m = LAYER.matcher(name.substring(prefix.length()));
            if (m.lookingAt()) {
                seen.add(Integer.parseInt(m.group(1)));
            }
        }
        if (seen.isEmpty()) {
            throw g.fail("not a recognised BERT export: no initializer named " + prefix + "encoder.layer.N.*");
        }
        for (int i = 0; i <= seen.last(); i++) {
            if (!seen.contains(i)) {
                throw g.fail("not a recognised BERT export: encoder layers " + seen + " are not numbered 0.."
                        + seen.last() + " (layer " + i + " is missing)");
            }
        }
        return seen.last() + 1;
    }

    // ------------------------------------------------------------------------------------------------
    // Linear layers
    // ------------------------------------------------------------------------------------------------

    /**
     * Imports {@code module}.weight ([outDim, inDim]) and {@code module}.bias, finding the weight through the
     * node that adds the bias; returns the name of the value holding the Linear's output.
     */
    private String linear(Map<String, ImportedTensor> out, String module, int outDim, int inDim) {
        Tensor bias = requireInit(module + ".bias", 1);
        if (OnnxGraph.shape(bias)[0] != outDim) {
            throw g.fail("initializer " + bias.getName() + " has shape " + bias.getDimsList() + ", expected ["
                    + outDim + "]");
        }
        put(out, module + ".bias", bias);
        for (Node n : g.consumers(bias.getName())) {
            if (n.getOpType().equals("Add") && n.getInputCount() == 2) {
                String other = n.getInput(0).equals(bias.getName()) ? n.getInput(1) : n.getInput(0);
                Optional<Node> mm = g.producer(other).filter(m -> m.getOpType().equals("MatMul"));
                if (mm.isPresent()) {
                    float[] w = matmulWeight(module, mm.get().getInput(1), outDim, inDim);
                    out.put(module + ".weight", new ImportedTensor(new int[] {outDim, inDim}, w));
                    return n.getOutput(0);
                }
            } else if (n.getOpType().equals("Gemm") && n.getInputCount() == 3 && n.getInput(2).equals(bias.getName())) {
                if (OnnxGraph.attribute(n, "transA").map(a -> a.getI()).orElse(0L) != 0
                        || OnnxGraph.attribute(n, "alpha").map(a -> a.getF()).orElse(1f) != 1f
                        || OnnxGraph.attribute(n, "beta").map(a -> a.getF()).orElse(1f) != 1f) {
                    throw g.fail("Gemm " + n.getName() + " of " + module + " has transA, alpha or beta set; only "
                            + "x·Wᵀ + b is recognised");
                }
                boolean transB = OnnxGraph.attribute(n, "transB").map(a -> a.getI()).orElse(0L) != 0;
                Tensor w = constantMatrix(module, n.getInput(1));
                float[] values = orient(module, w, transB, outDim, inDim);
                out.put(module + ".weight", new ImportedTensor(new int[] {outDim, inDim}, values));
                return n.getOutput(0);
            }
        }
        throw g.fail("not a recognised BERT export: could not find the weight of " + prefix + module + " (expected "
                + "Add(" + bias.getName() + ", MatMul(x, W)) or Gemm(x, W, " + bias.getName() + "); its bias feeds "
                + ops(g.consumers(bias.getName())) + ")");
    }

    /** The [out, in] weight behind the MatMul operand {@code value}: x·W with W [in, out], or x·Transpose(W). */
    private float[] matmulWeight(String module, String value, int outDim, int inDim) {
        Optional<Node> transpose = g.producer(value).filter(n -> n.getOpType().equals("Transpose"));
        if (transpose.isPresent()) {
            List<Long> perm = OnnxGraph.attribute(transpose.get(), "perm").map(a -> a.getIntsList()).orElse(List.of());
            if (!perm.isEmpty() && !perm.equals(List.of(1L, 0L))) {
                throw g.fail("the weight of " + module + " goes through Transpose with perm " + perm);
            }
            return orient(module, constantMatrix(module, transpose.get().getInput(0)), true, outDim, inDim);
        }
        return orient(module, constantMatrix(module, value), false, outDim, inDim);
    }

    private Tensor constantMatrix(String module, String value) {
        Tensor t = g.constant(value).orElseThrow(() -> g.fail("not a recognised BERT export: the weight of "
                + prefix + module + " (" + value + ") is not an initializer or constant"));
        if (t.getDimsCount() != 2) {
            throw g.fail("the weight of " + module + " (" + t.getName() + ") has shape " + t.getDimsList()
                    + ", expected a matrix");
        }
        return t;
    }

    /**
     * {@code t} as [outDim, inDim]: stored that way when {@code outIn}, else stored [inDim, outDim] (the
     * MatMul operand of x·W) and transposed here.
     */
    private float[] orient(String module, Tensor t, boolean outIn, int outDim, int inDim) {
        int[] s = OnnxGraph.shape(t);
        int[] want = outIn ? new int[] {outDim, inDim} : new int[] {inDim, outDim};
        if (!Arrays.equals(s, want)) {
            throw g.fail("the weight of " + module + " (" + t.getName() + ") has shape " + Arrays.toString(s)
                    + ", expected " + Arrays.toString(want));
        }
        float[] v = finiteFloats(t, " (the weight of " + module + ")");
        if (outIn) {
            return v;
        }
        float[] tr = new float[v.length];
        for (int i = 0; i < inDim; i++) {
            for (int o = 0; o < outDim; o++) {
                tr[o * inDim + i] = v[i * outDim + o];
            }
        }
        return tr;
    }

    // ------------------------------------------------------------------------------------------------
    // Hyper-parameters read from the graph
    // ------------------------------------------------------------------------------------------------

    /** The epsilon of the LayerNorm whose scale is {@code gamma}, as the decimal the float was written from. */
    private double layerNormEps(Tensor gamma) {
        for (Node n : g.consumers(gamma.getName())) {
            if (n.getOpType().equals("LayerNormalization")) {
                float e = OnnxGraph.attribute(n, "epsilon").map(a -> a.getF()).orElse(1e-5f);
                return asWritten(e);
            }
            if (n.getOpType().equals("Mul")) {
                String normalized = n.getInput(0).equals(gamma.getName()) ? n.getInput(1) : n.getInput(0);
                Optional<Double> eps = g.producer(normalized).filter(d -> d.getOpType().equals("Div"))
                        .flatMap(d -> g.producer(d.getInput(1))).filter(s -> s.getOpType().equals("Sqrt"))
                        .flatMap(s -> g.producer(s.getInput(0))).filter(a -> a.getOpType().equals("Add"))
                        .flatMap(a -> g.scalar(a.getInput(1)).or(() -> g.scalar(a.getInput(0))));
                if (eps.isPresent()) {
                    return asWritten(eps.get().floatValue());
                }
            }
        }
        throw g.fail("not a recognised BERT export: could not find the epsilon of the LayerNorm scaled by "
                + gamma.getName() + " (expected LayerNormalization, or Mul(Div(x - mean, Sqrt(Add(var, eps))), "
                + "gamma); it feeds " + ops(g.consumers(gamma.getName())) + ")");
    }

    /** 1e-12 stored as a float reads 9.9999999600e-13; config.json gets the decimal it was written from. */
    private static double asWritten(float f) {
        return Double.parseDouble(Float.toString(f));
    }

    /**
     * The head count of layer {@code l}: the third dimension of the Reshape that splits the query into
     * [batch, seq, heads, head_size], checked against the scores' scale where the graph shows it.
     */
    private int heads(int l, Tensor queryBias, int hidden) {
        String queryOut = null;
        for (Node n : g.consumers(queryBias.getName())) {
            if (n.getOpType().equals("Add") || n.getOpType().equals("Gemm")) {
                queryOut = n.getOutput(0);
            }
        }
        if (queryOut != null) {
            for (Node r : g.consumers(queryOut)) {
                if (!r.getOpType().equals("Reshape") || r.getInputCount() < 2) {
                    continue;
                }
                Optional<Long> heads = reshapeDim(r.getInput(1), 2);
                Optional<Long> size = reshapeDim(r.getInput(1), 3);
                if (heads.isPresent() && heads.get() > 0 && hidden % heads.get() == 0) {
                    int h = Math.toIntExact(heads.get());
                    if (size.isPresent() && size.get() > 0 && size.get() * h != hidden) {
                        throw g.fail("layer " + l + " reshapes the query to " + h + " heads of " + size.get()
                                + ", not the hidden size " + hidden);
                    }
                    checkScale(l, r.getOutput(0), hidden / h);
                    return h;
                }
            }
        }
        throw g.fail("not a recognised BERT export: could not find the head count of layer " + l + " (expected a "
                + "Reshape of the query to [batch, seq, heads, head_size] with constant heads)");
    }

    /** Dimension {@code i} of a Reshape's target: a constant shape, or a Concat of one-element constants. */
    private Optional<Long> reshapeDim(String shape, int i) {
        Optional<Tensor> c = g.constant(shape);
        if (c.isPresent()) {
            long[] v = g.longs(c.get());
            return v.length == 4 ? Optional.of(v[i]) : Optional.empty();
        }
        return g.producer(shape).filter(n -> n.getOpType().equals("Concat") && n.getInputCount() == 4)
                .flatMap(n -> g.scalar(n.getInput(i))).map(Double::longValue);
    }

    /** Where Transpose → MatMul → Div/Mul by a constant follows the split query, the constant must be √d. */
    private void checkScale(int l, String splitQuery, int headSize) {
        for (Node t : g.consumers(splitQuery)) {
            if (!t.getOpType().equals("Transpose")) {
                continue;
            }
            for (Node mm : g.consumers(t.getOutput(0))) {
                if (!mm.getOpType().equals("MatMul")) {
                    continue;
                }
                for (Node s : g.consumers(mm.getOutput(0))) {
                    Optional<Double> c = s.getInputCount() == 2 ? g.scalar(s.getInput(1)) : Optional.empty();
                    if (c.isEmpty()) {
                        continue;
                    }
                    double want = Math.sqrt(headSize);
                    double got = s.getOpType().equals("Div") ? c.get() : s.getOpType().equals("Mul") ? 1 / c.get() : want;
                    if (Math.abs(got - want) > 1e-4 * want) {
                        throw g.fail("layer " + l + " scales the attention scores by 1/" + got + ", BERT by 1/sqrt("
                                + headSize + ") = 1/" + want);
                    }
                }
            }
        }
    }

    /** The activation applied to the intermediate dense output {@code value} of layer {@code l}. */
    private String activation(int l, String value) {
        List<Node> uses = g.consumers(value);
        for (Node n : uses) {
            switch (n.getOpType()) {
                case "Relu" -> {
                    return "relu";
                }
                case "Gelu", "FastGelu" -> {
                    String approx = OnnxGraph.attribute(n, "approximate").map(a -> a.getS().toStringUtf8()).orElse("none");
                    return n.getOpType().equals("FastGelu") || approx.equals("tanh") ? "gelu_new" : "gelu";
                }
                case "Div", "Mul" -> {
                    for (Node e : g.consumers(n.getOutput(0))) {
                        if (e.getOpType().equals("Erf")) {
                            Optional<Double> c = g.scalar(n.getInput(1));
                            double root2 = Math.sqrt(2);
                            boolean exact = c.isPresent() && (n.getOpType().equals("Div")
                                    ? Math.abs(c.get() - root2) < 1e-5 : Math.abs(c.get() - 1 / root2) < 1e-5);
                            if (!exact) {
                                throw g.fail("layer " + l + ": Erf of the intermediate output is not erf(x/sqrt(2))");
                            }
                            return "gelu";
                        }
                    }
                }
                default -> { }
            }
        }
        // the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): a Tanh within a few nodes
        if (reaches(value, "Tanh", 6)) {
            return "gelu_new";
        }
        throw g.fail("not a recognised BERT export: could not recognise the activation of layer " + l + " (expected "
                + "erf GELU, tanh GELU or Relu after the intermediate dense; its output feeds " + ops(uses) + ")");
    }

    private boolean reaches(String value, String op, int depth) {
        if (depth == 0) {
            return false;
        }
        for (Node n : g.consumers(value)) {
            if (n.getOpType().equals(op)) {
                return true;
            }
            if (n.getOutputCount() > 0 && reaches(n.getOutput(0), op, depth - 1)) {
                return true;
            }
        }
        return false;
    }

    private static String ops(List<Node> nodes) {
        if (nodes.isEmpty()) {
            return "no node";
        }
        List<String> s = new ArrayList<>();
        for (Node n : nodes) {
            s.add(n.getOpType() + " " + n.getName());
        }
        return String.join(", ", s);
    }

    private static String sample(java.util.Collection<String> names) {
        List<String> first = new ArrayList<>();
        for (String n : names) {
            if (first.size() == 8) {
                first.add("... (" + names.size() + " in all)");
                break;
            }
            first.add(n);
        }
        return first.isEmpty() ? "none" : String.join(", ", first);
    }

    private static void requireJsonObject(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": no such tokenizer file");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JacksonException e) {
            throw new ModelFormatException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + ": not a tokenizer.json (not a JSON object)");
        }
    }
}
