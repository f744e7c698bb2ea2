package dev.mpsactors.model.onnx;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.SafetensorsFile;
import dev.mpsactors.model.onnx.OnnxSchema.Attribute;
import dev.mpsactors.model.onnx.OnnxSchema.Graph;
import dev.mpsactors.model.onnx.OnnxSchema.Model;
import dev.mpsactors.model.onnx.OnnxSchema.Node;
import dev.mpsactors.model.onnx.OnnxSchema.StringPair;
import dev.mpsactors.model.onnx.OnnxSchema.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An ONNX model file, parsed, with the look-ups a pattern matcher needs: initializers and {@code Constant}
 * outputs by name, the node producing each value and the nodes consuming it. Tensor values are decoded on
 * demand to float (FLOAT, FLOAT16, BFLOAT16, DOUBLE) or long (INT64, INT32), from the message itself or from
 * an external data file next to the model.
 */
public final class OnnxGraph {
    /** ONNX's TensorProto.DataType codes used here. */
    static final int FLOAT = 1, INT32 = 6, INT64 = 7, FLOAT16 = 10, DOUBLE = 11, BFLOAT16 = 16;

    private final Path file;
    private final Model model;
    private final Map<String, Tensor> initializers = new LinkedHashMap<>();
    private final Map<String, Node> producers = new HashMap<>();
    private final Map<String, List<Node>> consumers = new HashMap<>();

    private OnnxGraph(Path file, Model model) {
        this.file = file;
        this.model = model;
        Graph g = model.getGraph();
        for (Tensor t : g.getInitializerList()) {
            if (initializers.putIfAbsent(t.getName(), t) != null) {
                throw fail("initializer " + t.getName() + " is defined twice");
            }
        }
        for (Node n : g.getNodeList()) {
            for (String out : n.getOutputList()) {
                if (!out.isEmpty()) {
                    producers.put(out, n);
                }
            }
            for (String in : n.getInputList()) {
                if (!in.isEmpty()) {
                    consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
                }
            }
        }
    }

    /**
     * Parses {@code file}.
     *
     * @throws ModelFormatException the file is not an ONNX model (not protobuf, or no graph)
     */
    public static OnnxGraph read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": no such file");
        }
        long size = Files.size(file);
        if (size > Integer.MAX_VALUE) {
            throw new ModelFormatException(file + ": " + size + " bytes; an ONNX protobuf is at most 2 GiB "
                    + "(larger models keep their weights as external data next to the file)");
        }
        Model model;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
            CodedInputStream in = CodedInputStream.newInstance(mapped);
            in.setSizeLimit(Integer.MAX_VALUE);
            in.setRecursionLimit(256);
            model = Model.parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            throw new ModelFormatException(file + ": not an ONNX model (protobuf parse failed: " + e.getMessage()
                    + ")", e);
        }
        if (!model.hasGraph() || model.getGraph().getNodeCount() == 0) {
            throw new ModelFormatException(file + ": not an ONNX model (it holds no graph nodes)");
        }
        return new OnnxGraph(file, model);
    }

    public Path file() {
        return file;
    }

    public Model model() {
        return model;
    }

    public Graph graph() {
        return model.getGraph();
    }

    public Map<String, Tensor> initializers() {
        return initializers;
    }

    public Optional<Tensor> initializer(String name) {
        return Optional.ofNullable(initializers.get(name));
    }

    /** The node whose output {@code value} is, if a node makes it (graph inputs and initializers have none). */
    public Optional<Node> producer(String value) {
        return Optional.ofNullable(producers.get(value));
    }

    public List<Node> consumers(String value) {
        return consumers.getOrDefault(value, List.of());
    }

    /** The constant behind {@code value}: an initializer or the tensor of a {@code Constant} node. */
    public Optional<Tensor> constant(String value) {
        Tensor init = initializers.get(value);
        if (init != null) {
            return Optional.of(init);
        }
        Node n = producers.get(value);
        if (n != null && n.getOpType().equals("Constant")) {
            for (Attribute a : n.getAttributeList()) {
                if (a.getName().equals("value") && a.hasT()) {
                    return Optional.of(a.getT());
                }
            }
        }
        return Optional.empty();
    }

    /** The single value of a constant scalar (or one-element) tensor behind {@code value}, if there is one. */
    public Optional<Double> scalar(String value) {
        return constant(value).filter(t -> count(t) == 1).map(t -> {
            int type = t.getDataType();
            return type == INT64 || type == INT32 ? (double) longs(t)[0] : (double) floats(t)[0];
        });
    }

    public static long count(Tensor t) {
        long n = 1;
        for (long d : t.getDimsList()) {
            n *= d;
        }
        return n;
    }

    public static int[] shape(Tensor t) {
        int[] s = new int[t.getDimsCount()];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.toIntExact(t.getDims(i));
        }
        return s;
    }

    /** An attribute of {@code node}, if set. */
    public static Optional<Attribute> attribute(Node node, String name) {
        for (Attribute a : node.getAttributeList()) {
            if (a.getName().equals(name)) {
                return Optional.of(a);
            }
        }
        return Optional.empty();
    }

    /** The tensor's values as floats, row-major. */
    public float[] floats(Tensor t) {
        long n = count(t);
        if (n > Integer.MAX_VALUE - 8) {
            throw fail("tensor " + t.getName() + " holds " + n + " values, more than one Java array can");
        }
        float[] out = new float[(int) n];
        switch (t.getDataType()) {
            case FLOAT -> {
                if (t.getFloatDataCount() > 0) {
                    requireCount(t, t.getFloatDataCount(), n);
                    for (int i = 0; i < n; i++) {
                        out[i] = t.getFloatData(i);
                    }
                } else {
                    bytes(t, n * 4).asFloatBuffer().get(out);
                }
            }
            case DOUBLE -> {
                if (t.getDoubleDataCount() > 0) {
                    requireCount(t, t.getDoubleDataCount(), n);
                    for (int i = 0; i < n; i++) {
                        out[i] = (float) t.getDoubleData(i);
                    }
                } else {
                    ByteBuffer b = bytes(t, n * 8);
                    for (int i = 0; i < n; i++) {
                        out[i] = (float) b.getDouble(8 * i);
                    }
                }
            }
            case FLOAT16, BFLOAT16 -> {
                boolean half = t.getDataType() == FLOAT16;
                if (t.getInt32DataCount() > 0) {
                    requireCount(t, t.getInt32DataCount(), n);
                    for (int i = 0; i < n; i++) {
                        int bits = t.getInt32Data(i);
                        out[i] = half ? SafetensorsFile.f16ToFloat(bits) : SafetensorsFile.bf16ToFloat(bits);
                    }
                } else {
                    ByteBuffer b = bytes(t, n * 2);
                    for (int i = 0; i < n; i++) {
                        int bits = b.getShort(2 * i);
                        out[i] = half ? SafetensorsFile.f16ToFloat(bits) : SafetensorsFile.bf16ToFloat(bits);
                    }
                }
            }
            default -> throw fail("tensor " + t.getName() + " has data type " + t.getDataType()
                    + ", not a floating-point type (FLOAT, FLOAT16, BFLOAT16, DOUBLE)");
        }
        return out;
    }

    /** The tensor's values as longs (INT64 or INT32). */
    public long[] longs(Tensor t) {
        int n = Math.toIntExact(count(t));
        long[] out = new long[n];
        switch (t.getDataType()) {
            case INT64 -> {
                if (t.getInt64DataCount() > 0) {
                    requireCount(t, t.getInt64DataCount(), n);
                    for (int i = 0; i < n; i++) {
                        out[i] = t.getInt64Data(i);
                    }
                } else {
                    bytes(t, n * 8L).asLongBuffer().get(out);
                }
            }
            case INT32 -> {
                if (t.getInt32DataCount() > 0) {
                    requireCount(t, t.getInt32DataCount(), n);
                    for (int i = 0; i < n; i++) {
                        out[i] = t.getInt32Data(i);
                    }
                } else {
                    ByteBuffer b = bytes(t, n * 4L);
                    for (int i = 0; i < n; i++) {
                        out[i] = b.getInt(4 * i);
                    }
                }
            }
            default -> throw fail("tensor " + t.getName() + " has data type " + t.getDataType()
                    + ", not an integer type (INT64, INT32)");
        }
        return out;
    }

    private void requireCount(Tensor t, int stored, long expected) {
        if (stored != expected) {
            throw fail("tensor " + t.getName() + " of shape " + t.getDimsList() + " stores " + stored + " values, "
                    + "needs " + expected);
        }
    }

    /** The raw little-endian bytes of {@code t}: raw_data, or the region of its external data file. */
    private ByteBuffer bytes(Tensor t, long expected) {
        ByteBuffer b;
        if (t.getDataLocation() == 1) {
            b = external(t, expected);
        } else {
            ByteString raw = t.getRawData();
            if (raw.size() != expected) {
                throw fail("tensor " + t.getName() + " of shape " + t.getDimsList() + " has " + raw.size()
                        + " bytes of raw data, needs " + expected);
            }
            b = raw.asReadOnlyByteBuffer();
        }
        return b.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    private ByteBuffer external(Tensor t, long expected) {
        String location = null;
        long offset = 0, length = -1;
        for (StringPair p : t.getExternalDataList()) {
            try {
                switch (p.getKey()) {
                    case "location" -> location = p.getValue();
                    case "offset" -> offset = Long.parseLong(p.getValue());
                    case "length" -> length = Long.parseLong(p.getValue());
                    default -> { } // checksum and future keys: not needed to read the bytes
                }
            } catch (NumberFormatException e) {
                throw fail("tensor " + t.getName() + ": external data " + p.getKey() + " '" + p.getValue()
                        + "' is not a number");
            }
        }
        if (location == null || location.isEmpty()) {
            throw fail("tensor " + t.getName() + " is stored externally but names no location");
        }
        Path dir = file.toAbsolutePath().getParent();
        Path data = dir.resolve(location).normalize();
        if (!data.startsWith(dir)) {
            throw fail("tensor " + t.getName() + ": external data location '" + location
                    + "' is outside the model's folder");
        }
        if (length >= 0 && length != expected) {
            throw fail("tensor " + t.getName() + ": external data length " + length + ", needs " + expected);
        }
        try (FileChannel ch = FileChannel.open(data, StandardOpenOption.READ)) {
            if (offset < 0 || offset + expected > ch.size()) {
                throw fail("tensor " + t.getName() + ": bytes " + offset + ".." + (offset + expected) + " of "
                        + data.getFileName() + " are past its end (" + ch.size() + " bytes)");
            }
            return ch.map(FileChannel.MapMode.READ_ONLY, offset, expected);
        } catch (IOException e) {
            throw fail("tensor " + t.getName() + ": cannot read external data " + data + ": " + e.getMessage());
        }
    }

    ModelFormatException fail(String what) {
        return new ModelFormatException(file + ": " + what);
    }
}
