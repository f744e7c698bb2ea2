package dev.mpsactors.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.model.SafetensorsFile.Dtype;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds a safetensors file: tensors are laid out back to back in the order added, and the JSON header is
 * padded with spaces so the data area starts 8-byte aligned, as the reference implementation does. Float
 * values are narrowed to F16/BF16 with round-to-nearest-even, the rounding PyTorch's {@code .half()} and
 * {@code .bfloat16()} use. Values are referenced, not copied, until {@link #write}.
 */
public final class SafetensorsWriter {
    private static final int WRITE_BUFFER_BYTES = 1 << 20;

    private record Pending(String name, Dtype dtype, int[] shape, float[] values, byte[] raw) {
        long byteSize() {
            return raw != null ? raw.length : (long) values.length * dtype.bytes();
        }
    }

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Pending> tensors = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Adds {@code values} (row-major) stored as {@code dtype}: F32, F16, BF16 or F64. */
    public SafetensorsWriter add(String name, Dtype dtype, int[] shape, float[] values) {
        if (!dtype.isReadableAsFloat()) {
            throw new IllegalArgumentException("cannot store floats as " + dtype + " (supported: F32, F16, BF16, F64)");
        }
        checkCount(name, shape, values.length);
        return addPending(new Pending(name, dtype, shape.clone(), values, null));
    }

    /** Adds already-encoded little-endian bytes of any dtype, e.g. an I64 {@code position_ids} buffer. */
    public SafetensorsWriter addRaw(String name, Dtype dtype, int[] shape, byte[] littleEndian) {
        long count = checkCount(name, shape, -1);
        if (count * dtype.bytes() != littleEndian.length) {
            throw new IllegalArgumentException(name + ": " + littleEndian.length + " bytes, shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + count * dtype.bytes());
        }
        return addPending(new Pending(name, dtype, shape.clone(), null, littleEndian));
    }

    /** Writes (or overwrites) {@code path}. */
    public void write(Path path) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Pending t : tensors) {
            ObjectNode entry = header.putObject(t.name());
            entry.put("dtype", t.dtype().name());
            ArrayNode shape = entry.putArray("shape");
            for (int d : t.shape()) {
                shape.add(d);
            }
            long end = offset + t.byteSize();
            entry.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] text = json.writeValueAsBytes(header);
        int padded = (text.length + 7) / 8 * 8;
        try (FileChannel out = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer buf = ByteBuffer.allocate(WRITE_BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            buf.putLong(padded);
            writeBytes(out, buf, text);
            for (int i = text.length; i < padded; i++) {
                put(out, buf, 1).put((byte) ' ');
            }
            for (Pending t : tensors) {
                if (t.raw() != null) {
                    writeBytes(out, buf, t.raw());
                } else {
                    writeFloats(out, buf, t.dtype(), t.values());
                }
            }
            flush(out, buf);
        }
    }

    /** Narrows to IEEE binary16, rounding to nearest even; overflow gives infinity, NaN stays a quiet NaN. */
    public static short floatToF16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs >= 0x7f800000) {
            return (short) (abs == 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs >>> 13) & 0x3ff));
        }
        if (abs >= 0x477ff000) { // >= 65520, half-way from 65504 (odd mantissa) to 2^16: ties to infinity
            return (short) (sign | 0x7c00);
        }
        if (abs < 0x38800000) { // below 2^-14: a subnormal half, units of 2^-24
            // scaling by 2^24 is exact, and rint rounds half to even; 1024 units encode as the smallest normal
            int units = (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f);
            return (short) (sign | units);
        }
        int h = (((abs >>> 23) - 127 + 15) << 10) | ((abs >>> 13) & 0x3ff);
        int dropped = abs & 0x1fff;
        if (dropped > 0x1000 || (dropped == 0x1000 && (h & 1) != 0)) {
            h++; // a carry out of the mantissa correctly bumps the exponent
        }
        return (short) (sign | h);
    }

    /** Narrows to bfloat16 (the upper half of a float), rounding to nearest even; NaN stays a quiet NaN. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    private SafetensorsWriter addPending(Pending p) {
        if ("__metadata__".equals(p.name()) || !names.add(p.name())) {
            throw new IllegalArgumentException("tensor name " + p.name() + " is reserved or already added");
        }
        tensors.add(p);
        return this;
    }

    private static long checkCount(String name, int[] shape, int valueCount) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(name + ": negative dimension in " + Arrays.toString(shape));
            }
            n *= d;
        }
        if (valueCount >= 0 && n != valueCount) {
            throw new IllegalArgumentException(name + ": shape " + Arrays.toString(shape) + " needs " + n
                    + " values, got " + valueCount);
        }
        return n;
    }

    private static void writeFloats(FileChannel out, ByteBuffer buf, Dtype dtype, float[] values)
            throws IOException {
        for (float v : values) {
            ByteBuffer b = put(out, buf, dtype.bytes());
            switch (dtype) {
                case F32 -> b.putFloat(v);
                case F16 -> b.putShort(floatToF16(v));
                case BF16 -> b.putShort(floatToBf16(v));
                case F64 -> b.putDouble(v);
                default -> throw new IllegalStateException("not a float dtype: " + dtype);
            }
        }
    }

    private static void writeBytes(FileChannel out, ByteBuffer buf, byte[] bytes) throws IOException {
        int done = 0;
        while (done < bytes.length) {
            if (!buf.hasRemaining()) {
                flush(out, buf);
            }
            int n = Math.min(buf.remaining(), bytes.length - done);
            buf.put(bytes, done, n);
            done += n;
        }
    }

    /** {@code buf} with room for {@code bytes} more, flushing it first if needed. */
    private static ByteBuffer put(FileChannel out, ByteBuffer buf, int bytes) throws IOException {
        if (buf.remaining() < bytes) {
            flush(out, buf);
        }
        return buf;
    }

    private static void flush(FileChannel out, ByteBuffer buf) throws IOException {
        buf.flip();
        while (buf.hasRemaining()) {
            out.write(buf);
        }
        buf.clear();
    }
}
