package dev.mpsactors.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A read-only view of one safetensors file: an 8-byte little-endian header length {@code N}, {@code N}
 * bytes of UTF-8 JSON naming each tensor's dtype, shape and {@code [begin, end)} byte range in the data
 * area that follows, then the data area.
 *
 * <p>{@link #open} validates the whole header up front (every range inside the data area, sizes matching
 * shapes, no two tensors overlapping), so a malformed file fails with a {@link ModelFormatException} naming
 * the file and the problem before any tensor is read; reads never index outside what was validated.
 * Tensor bytes are memory-mapped, not read into a heap buffer: the only copy is the conversion into the
 * {@code float[]} returned by {@link #readFloats}.
 */
public final class SafetensorsFile implements AutoCloseable {
    /**
     * A header larger than this is refused rather than allocated: real headers are a few hundred bytes per
     * tensor (the reference implementation caps them at 100 MB too).
     */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    /** Mapping granularity: one mapping may not exceed 2 GiB, so large tensors are converted in chunks. */
    private static final int MAP_CHUNK_BYTES = 1 << 30;

    private static final String METADATA_KEY = "__metadata__";

    /** Element types of the format, with their sizes in bytes. */
    public enum Dtype {
        BOOL(1), U8(1), I8(1), F8_E5M2(1), F8_E4M3(1), I16(2), U16(2), F16(2), BF16(2), I32(4), U32(4), F32(4),
        F64(8), I64(8), U64(8);

        private final int bytes;

        Dtype(int bytes) {
            this.bytes = bytes;
        }

        public int bytes() {
            return bytes;
        }

        /** Whether {@link #readFloats} converts this dtype. */
        public boolean isReadableAsFloat() {
            return this == F32 || this == F16 || this == BF16 || this == F64;
        }
    }

    /**
     * One tensor's header entry. {@code begin} and {@code end} are byte offsets relative to the start of the
     * data area, {@code end - begin == elementCount() * dtype.bytes()}.
     */
    public record TensorInfo(String name, Dtype dtype, int[] shape, long begin, long end) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override
        public int[] shape() {
            return shape.clone();
        }

        public long elementCount() {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        public long byteSize() {
            return end - begin;
        }

        @Override
        public String toString() {
            return name + " " + dtype + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
        }
    }

    private static final ObjectMapper JSON = JsonMapper.builder()
            // a tensor named twice is ambiguous; Jackson would otherwise silently keep the last entry
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, TensorInfo> tensors,
                            Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Opens and validates {@code path}.
     *
     * @throws ModelFormatException the file is not a well-formed safetensors file
     * @throws IOException          the file cannot be read
     */
    public static SafetensorsFile open(Path path) throws IOException {
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            long size = channel.size();
            if (size < 8) {
                throw fail(path, "file is " + size + " bytes, shorter than the 8-byte header length");
            }
            ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBytes, 0, path);
            long headerLength = lengthBytes.getLong(0); // unsigned in the format: negative here means >= 2^63
            if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
                throw fail(path, "header length " + Long.toUnsignedString(headerLength) + " exceeds the "
                        + MAX_HEADER_BYTES + "-byte limit");
            }
            if (headerLength > size - 8) {
                throw fail(path, "header length " + headerLength + " runs past the end of the file ("
                        + size + " bytes)");
            }
            if (headerLength < 2) {
                throw fail(path, "header length " + headerLength + " is too short for a JSON object");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLength);
            readFully(channel, header, 8, path);
            header.flip();
            long dataStart = 8 + headerLength;
            long dataLength = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> tensors = parseHeader(path, decodeUtf8(path, header), dataLength, metadata);
            return new SafetensorsFile(path, channel, dataStart, Collections.unmodifiableMap(tensors),
                    Collections.unmodifiableMap(metadata));
        } catch (Throwable t) {
            channel.close();
            throw t;
        }
    }

    public Path path() {
        return path;
    }

    /** Tensor names in header order. */
    public Set<String> names() {
        return tensors.keySet();
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The header entry of {@code name}; a {@link ModelFormatException} naming the file if it is absent. */
    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw fail(path, "no tensor named " + name);
        }
        return info;
    }

    /** The {@code __metadata__} string map (empty when the header has none). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The values of {@code name}, row-major, as floats: F32 as stored, F16 and BF16 widened exactly, F64
     * rounded to the nearest float.
     *
     * @throws ModelFormatException the tensor is absent, of a dtype other than F32/F16/BF16/F64, or too large
     *                              for one Java array
     */
    public float[] readFloats(String name) throws IOException {
        TensorInfo info = info(name);
        if (!info.dtype().isReadableAsFloat()) {
            throw fail(path, "tensor " + name + " has dtype " + info.dtype()
                    + ", which cannot be read as float (supported: F32, F16, BF16, F64)");
        }
        long count = info.elementCount();
        if (count > Integer.MAX_VALUE - 8) {
            throw fail(path, "tensor " + name + " has " + count + " elements, more than one Java array holds");
        }
        float[] out = new float[(int) count];
        int elementBytes = info.dtype().bytes();
        int chunkElements = MAP_CHUNK_BYTES / elementBytes;
        int done = 0;
        while (done < out.length) {
            int n = Math.min(chunkElements, out.length - done);
            ByteBuffer bytes = channel.map(FileChannel.MapMode.READ_ONLY,
                            dataStart + info.begin() + (long) done * elementBytes, (long) n * elementBytes)
                    .order(ByteOrder.LITTLE_ENDIAN);
            convert(info.dtype(), bytes, out, done, n);
            done += n;
        }
        return out;
    }

    @Override
    public void close() throws IOException {
        channel.close(); // idempotent; mappings already handed out stay valid until collected
    }

    /** Widens an IEEE binary16 value (low 16 bits of {@code bits}) to the float of exactly the same value. */
    public static float f16ToFloat(int bits) {
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1f;
        int mantissa = bits & 0x3ff;
        if (exponent == 0x1f) { // infinity, or NaN with its payload kept
            return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
        }
        if (exponent == 0) { // zero or subnormal: mantissa * 2^-24, exact in float
            float magnitude = mantissa * 0x1p-24f;
            return sign != 0 ? -magnitude : magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
    }

    /** Widens a bfloat16 value (low 16 bits of {@code bits}): it is the upper half of a float, so exact. */
    public static float bf16ToFloat(int bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    private static void convert(Dtype dtype, ByteBuffer bytes, float[] out, int offset, int n) {
        switch (dtype) {
            case F32 -> bytes.asFloatBuffer().get(out, offset, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = f16ToFloat(bytes.getShort(2 * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = bf16ToFloat(bytes.getShort(2 * i));
                }
            }
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = (float) bytes.getDouble(8 * i);
                }
            }
            default -> throw new IllegalStateException("not a float dtype: " + dtype);
        }
    }

    private static Map<String, TensorInfo> parseHeader(Path path, String text, long dataLength,
                                                       Map<String, String> metadata) {
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JacksonException e) {
            throw new ModelFormatException(path + ": header is not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw fail(path, "header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String name = field.getKey();
            JsonNode entry = field.getValue();
            if (METADATA_KEY.equals(name)) {
                parseMetadata(path, entry, metadata);
            } else {
                tensors.put(name, parseEntry(path, name, entry, dataLength));
            }
        }
        checkNoOverlap(path, tensors);
        return tensors;
    }

    private static void parseMetadata(Path path, JsonNode node, Map<String, String> metadata) {
        if (!node.isObject()) {
            throw fail(path, METADATA_KEY + " is not a JSON object");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw fail(path, METADATA_KEY + " value of " + e.getKey() + " is not a string");
            }
            metadata.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode entry, long dataLength) {
        String where = "tensor " + name + ": ";
        if (!entry.isObject()) {
            throw fail(path, where + "entry is not a JSON object");
        }
        JsonNode dtypeNode = required(path, where, entry, "dtype");
        JsonNode shapeNode = required(path, where, entry, "shape");
        JsonNode offsetsNode = required(path, where, entry, "data_offsets");
        if (!dtypeNode.isTextual()) {
            throw fail(path, where + "dtype is not a string");
        }
        Dtype dtype;
        try {
            dtype = Dtype.valueOf(dtypeNode.textValue());
        } catch (IllegalArgumentException e) {
            throw fail(path, where + "unknown dtype '" + dtypeNode.textValue() + "' (known: "
                    + Arrays.toString(Dtype.values()) + ")");
        }
        if (!shapeNode.isArray()) {
            throw fail(path, where + "shape is not an array");
        }
        int[] shape = new int[shapeNode.size()];
        long elements = 1;
        for (int i = 0; i < shape.length; i++) {
            long d = nonNegativeInteger(path, where + "shape[" + i + "]", shapeNode.get(i));
            if (d > Integer.MAX_VALUE) {
                throw fail(path, where + "shape[" + i + "] = " + d + " is too large");
            }
            shape[i] = (int) d;
            try {
                elements = Math.multiplyExact(elements, d);
            } catch (ArithmeticException e) {
                throw fail(path, where + "shape " + shapeNode + " has more elements than a long counts");
            }
        }
        if (!offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw fail(path, where + "data_offsets is not an array of two offsets");
        }
        long begin = nonNegativeInteger(path, where + "data_offsets[0]", offsetsNode.get(0));
        long end = nonNegativeInteger(path, where + "data_offsets[1]", offsetsNode.get(1));
        if (begin > end) {
            throw fail(path, where + "data_offsets begin " + begin + " > end " + end);
        }
        if (end > dataLength) {
            throw fail(path, where + "data_offsets [" + begin + ", " + end + ") out of range of the "
                    + dataLength + "-byte data area");
        }
        long expected;
        try {
            expected = Math.multiplyExact(elements, dtype.bytes());
        } catch (ArithmeticException e) {
            throw fail(path, where + "shape " + shapeNode + " is too large for dtype " + dtype);
        }
        if (end - begin != expected) {
            throw fail(path, where + "holds " + (end - begin) + " bytes but shape " + Arrays.toString(shape)
                    + " of " + dtype + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static JsonNode required(Path path, String where, JsonNode entry, String key) {
        JsonNode v = entry.get(key);
        if (v == null || v.isNull()) {
            throw fail(path, where + "missing " + key);
        }
        return v;
    }

    private static long nonNegativeInteger(Path path, String what, JsonNode v) {
        if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) {
            throw fail(path, what + " is not an integer in range: " + v);
        }
        long x = v.longValue();
        if (x < 0) {
            throw fail(path, what + " is negative: " + x);
        }
        return x;
    }

    /** Overlapping ranges would let one tensor's writes alias another's; the reference refuses them too. */
    private static void checkNoOverlap(Path path, Map<String, TensorInfo> tensors) {
        List<TensorInfo> byBegin = new ArrayList<>(tensors.values());
        byBegin.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo previous = null;
        for (TensorInfo t : byBegin) {
            if (t.byteSize() == 0) {
                continue; // empty tensors occupy no bytes
            }
            if (previous != null && t.begin() < previous.end()) {
                throw fail(path, "tensors " + previous.name() + " " + rangeOf(previous) + " and " + t.name() + " "
                        + rangeOf(t) + " overlap");
            }
            previous = t;
        }
    }

    private static String rangeOf(TensorInfo t) {
        return "[" + t.begin() + ", " + t.end() + ")";
    }

    private static String decodeUtf8(Path path, ByteBuffer header) {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(header);
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(path + ": header is not valid UTF-8", e);
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer into, long position, Path path)
            throws IOException {
        long at = position;
        while (into.hasRemaining()) {
            int n = channel.read(into, at);
            if (n < 0) {
                throw fail(path, "file ended while reading the header");
            }
            at += n;
        }
    }

    private static ModelFormatException fail(Path path, String problem) {
        return new ModelFormatException(path + ": " + problem);
    }
}
