package dev.mpsactors.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mpsactors.model.SafetensorsFile.Dtype;
import dev.mpsactors.model.SafetensorsFile.TensorInfo;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors reader converts exactly, and refuses every malformed file with a ModelFormatException. */
class SafetensorsFileTest {
    @TempDir
    Path dir;

    // ---- round trips -------------------------------------------------------------------------------------

    @Test
    void f32ValuesRoundTripBitForBit() throws IOException {
        float[] values = {0f, -0f, 1f, -1.5f, Float.MIN_VALUE, Float.MAX_VALUE, Float.MIN_NORMAL,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 3.1415927f, -1e-30f};
        Path f = dir.resolve("f32.safetensors");
        new SafetensorsWriter().add("t", Dtype.F32, new int[] {3, 4}, values).write(f);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            TensorInfo info = file.info("t");
            assertEquals(Dtype.F32, info.dtype());
            assertArrayEquals(new int[] {3, 4}, info.shape());
            assertEquals(48, info.byteSize());
            assertArrayEquals(values, file.readFloats("t"));
        }
    }

    @Test
    void f16ValuesThatAreExactlyRepresentableRoundTripExactly() throws IOException {
        float[] values = {0f, -0f, 1f, -2f, 0.5f, 65504f, -65504f, 0x1p-14f, 0x1p-24f, 1f + 0x1p-10f, 3.140625f,
                1023.5f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        Path f = dir.resolve("f16.safetensors");
        new SafetensorsWriter().add("t", Dtype.F16, new int[] {values.length}, values).write(f);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertEquals(Dtype.F16, file.info("t").dtype());
            assertEquals(2L * values.length, file.info("t").byteSize());
            assertArrayEquals(values, file.readFloats("t"));
        }
    }

    @Test
    void f16EncodingMatchesIeeeBinary16BitPatterns() {
        assertEquals((short) 0x3c00, SafetensorsWriter.floatToF16(1f));
        assertEquals((short) 0xc000, SafetensorsWriter.floatToF16(-2f));
        assertEquals((short) 0x7bff, SafetensorsWriter.floatToF16(65504f));
        assertEquals((short) 0x0400, SafetensorsWriter.floatToF16(0x1p-14f));
        assertEquals((short) 0x0001, SafetensorsWriter.floatToF16(0x1p-24f));
        assertEquals((short) 0x8000, SafetensorsWriter.floatToF16(-0f));
        assertEquals((short) 0x7c00, SafetensorsWriter.floatToF16(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(SafetensorsFile.f16ToFloat(SafetensorsWriter.floatToF16(Float.NaN))));
    }

    @Test
    void everyF16BitPatternWidensAndNarrowsBackToItself() {
        for (int h = 0; h < 0x10000; h++) {
            float f = SafetensorsFile.f16ToFloat(h);
            short back = SafetensorsWriter.floatToF16(f);
            if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) {
                assertTrue(Float.isNaN(f), "NaN pattern " + Integer.toHexString(h));
                assertTrue(Float.isNaN(SafetensorsFile.f16ToFloat(back)));
            } else {
                assertEquals((short) h, back, "pattern " + Integer.toHexString(h) + " = " + f);
            }
        }
    }

    @Test
    void f16NarrowingRoundsToNearestEven() {
        assertEquals(1f, f16(1f + 0x1p-11f), "tie below an even mantissa stays");
        assertEquals(1f + 0x1p-9f, f16(1f + 3 * 0x1p-11f), "tie above an odd mantissa goes up");
        assertEquals(1f + 0x1p-10f, f16(1f + 0x1p-11f + 0x1p-20f), "above the tie goes up");
        assertEquals(65504f, f16(65519f));
        assertEquals(Float.POSITIVE_INFINITY, f16(65520f), "ties from the largest finite round to infinity");
        assertEquals(0f, f16(0x1p-25f), "tie between 0 and the smallest subnormal goes to 0");
        assertEquals(0x1p-24f, f16(0x1p-25f + 0x1p-40f));
        assertEquals(2 * 0x1p-24f, f16(1.5f * 0x1p-24f), "subnormal tie goes to the even unit");
        assertEquals(0x1p-14f, f16(0x1p-14f - 0x1p-26f), "rounding up out of the subnormals gives the min normal");
    }

    @Test
    void bf16WidensAsTheUpperHalfOfAFloat() throws IOException {
        short[] bits = {0x3f80, (short) 0xc040, 0x7f80, 0x0001, 0x4049, 0x0000, (short) 0x8000};
        float[] expected = {1f, -3f, Float.POSITIVE_INFINITY, 0x1p-133f, 3.140625f, 0f, -0f};
        ByteBuffer raw = ByteBuffer.allocate(2 * bits.length).order(ByteOrder.LITTLE_ENDIAN);
        for (short b : bits) {
            raw.putShort(b);
        }
        Path f = dir.resolve("bf16.safetensors");
        new SafetensorsWriter().addRaw("t", Dtype.BF16, new int[] {bits.length}, raw.array()).write(f);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertArrayEquals(expected, file.readFloats("t"));
        }
    }

    @Test
    void bf16NarrowingRoundsToNearestEvenAndRoundTrips() throws IOException {
        assertEquals(1f, bf16(1f + 0x1p-8f), "tie below an even mantissa stays");
        assertEquals(1f + 0x1p-6f, bf16(1f + 3 * 0x1p-8f), "tie above an odd mantissa goes up");
        assertEquals(1f + 0x1p-7f, bf16(1f + 0x1p-8f + 0x1p-20f), "above the tie goes up");
        assertEquals(Float.POSITIVE_INFINITY, bf16(Float.MAX_VALUE));
        assertTrue(Float.isNaN(bf16(Float.NaN)));

        float[] values = new float[257];
        Random r = new Random(7);
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) r.nextGaussian();
        }
        Path f = dir.resolve("bf16rt.safetensors");
        new SafetensorsWriter().add("t", Dtype.BF16, new int[] {values.length}, values).write(f);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            float[] read = file.readFloats("t");
            for (int i = 0; i < values.length; i++) {
                assertEquals(bf16(values[i]), read[i]);
                assertEquals(values[i], read[i], Math.abs(values[i]) * 0x1p-8f, "within half a bf16 ulp");
            }
        }
    }

    @Test
    void f64IsRoundedToTheNearestFloat() throws IOException {
        ByteBuffer raw = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        raw.putDouble(0.1).putDouble(-1e300).putDouble(1.0 + 0x1p-40);
        Path f = dir.resolve("f64.safetensors");
        new SafetensorsWriter().addRaw("t", Dtype.F64, new int[] {3}, raw.array()).write(f);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertArrayEquals(new float[] {0.1f, Float.NEGATIVE_INFINITY, 1f}, file.readFloats("t"));
        }
    }

    @Test
    void writerPadsTheHeaderToEightBytesWithSpacesAndKeepsOrderAndMetadata() throws IOException {
        Path f = dir.resolve("m.safetensors");
        new SafetensorsWriter().metadata("format", "pt")
                .add("b", Dtype.F32, new int[] {2}, new float[] {1, 2})
                .add("a", Dtype.F16, new int[] {3}, new float[] {1, 2, 3})
                .add("empty", Dtype.F32, new int[] {0, 4}, new float[0])
                .write(f);
        byte[] bytes = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8);
        assertEquals(8 + n + 8 + 6, bytes.length);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{") && header.stripTrailing().endsWith("}"), header);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertEquals(List.of("b", "a", "empty"), List.copyOf(file.names()));
            assertEquals(Map.of("format", "pt"), file.metadata());
            assertEquals(0, file.info("b").begin());
            assertEquals(8, file.info("a").begin());
            assertArrayEquals(new float[0], file.readFloats("empty"));
            assertArrayEquals(new float[] {1, 2, 3}, file.readFloats("a"));
        }
    }

    @Test
    void aHandWrittenReferenceLayoutFileIsRead() throws IOException {
        ByteBuffer data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        data.putFloat(1.5f).putShort((short) 0x3c00).putShort((short) 0xbf80).putFloat(-2f);
        byte[] content = file("{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[4,6]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[6,8]}}    ", data.array());
        // the trailing -2f is a gap no tensor claims; allowed, as are the header's trailing spaces
        Path f = write("ref.safetensors", content);
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertArrayEquals(new float[] {1.5f}, file.readFloats("w"));
            assertArrayEquals(new float[] {1f}, file.readFloats("h"));
            assertArrayEquals(new int[0], file.info("b").shape(), "a scalar");
            assertArrayEquals(new float[] {-1f}, file.readFloats("b"));
        }
    }

    // ---- malformed files ---------------------------------------------------------------------------------

    private static final String OK_ENTRY = "{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";

    @Test
    void aFileShorterThanTheLengthPrefixIsRefused() throws IOException {
        assertRejected(new byte[5], "shorter than the 8-byte");
        assertRejected(new byte[0], "shorter than the 8-byte");
    }

    @Test
    void aHeaderLengthBeyondTheFileIsRefused() throws IOException {
        byte[] content = file("{\"t\":" + OK_ENTRY + "}", new byte[16]);
        ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, content.length);
        assertRejected(content, "runs past the end");
        assertRejected(java.util.Arrays.copyOf(content, 40), "runs past the end");
    }

    @Test
    void anAbsurdHeaderLengthIsRefusedWithoutAllocating() throws IOException {
        byte[] content = file("{}", new byte[0]);
        ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        assertRejected(content, "exceeds");
        ByteBuffer.wrap(content).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        assertRejected(content, "18446744073709551615", "exceeds");
    }

    @Test
    void aHeaderThatIsNotJsonOrNotAnObjectIsRefused() throws IOException {
        assertRejected(file("{\"t\": {\"dtype\": \"F32\",", new byte[0]), "not valid JSON");
        assertRejected(file("[1, 2, 3]", new byte[0]), "not a JSON object");
        assertRejected(file("{} trailing", new byte[0]), "not valid JSON");
        assertRejected(file("{\"t\":" + OK_ENTRY + ",\"t\":" + OK_ENTRY + "}", new byte[16]), "not valid JSON",
                "Duplicate");
        byte[] badUtf8 = file("{\"t\":" + OK_ENTRY + "}", new byte[16]);
        badUtf8[10] = (byte) 0xff;
        assertRejected(badUtf8, "UTF-8");
    }

    @Test
    void offsetsOutsideTheDataAreaAreRefused() throws IOException {
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", new byte[16]),
                "tensor t", "out of range of the 16-byte data area");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", new byte[16]),
                "tensor t", "begin 16 > end 0");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", new byte[16]),
                "tensor t", "negative");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}",
                new byte[16]), "tensor t", "not an integer in range");
    }

    @Test
    void aByteSizeThatDisagreesWithTheShapeIsRefused() throws IOException {
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", new byte[16]),
                "tensor t", "holds 16 bytes", "needs 12");
        assertRejected(file("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", new byte[16]),
                "tensor t", "needs 8");
    }

    @Test
    void missingOrMistypedFieldsAreNamed() throws IOException {
        assertRejected(file("{\"t\":{\"shape\":[4],\"data_offsets\":[0,16]}}", new byte[16]), "tensor t",
                "missing dtype");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", new byte[16]), "missing shape");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4]}}", new byte[16]), "missing data_offsets");
        assertRejected(file("{\"t\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", new byte[16]),
                "dtype is not a string");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", new byte[16]),
                "shape is not an array");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", new byte[16]),
                "shape[0] is not an integer");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", new byte[16]),
                "not an array of two offsets");
        assertRejected(file("{\"t\":[1]}", new byte[16]), "tensor t", "not a JSON object");
        assertRejected(file("{\"__metadata__\":{\"format\":1}}", new byte[0]), "__metadata__", "not a string");
    }

    @Test
    void negativeOrOverflowingShapesAreRefused() throws IOException {
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", new byte[16]),
                "shape[0] is negative");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,16]}}",
                new byte[16]), "too large");
        assertRejected(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],"
                + "\"data_offsets\":[0,16]}}", new byte[16]), "more elements than a long counts");
        assertRejected(file("{\"t\":{\"dtype\":\"F64\",\"shape\":[2147483647,2147483647,2],"
                + "\"data_offsets\":[0,16]}}", new byte[16]), "too large for dtype F64");
    }

    @Test
    void unknownDtypesAreRefusedAndNonFloatDtypesCannotBeReadAsFloat() throws IOException {
        assertRejected(file("{\"t\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", new byte[16]),
                "unknown dtype 'F128'");
        Path f = write("i64.safetensors",
                file("{\"t\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", new byte[16]));
        try (SafetensorsFile file = SafetensorsFile.open(f)) {
            assertEquals(Dtype.I64, file.info("t").dtype());
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> file.readFloats("t"));
            assertTrue(e.getMessage().contains("I64") && e.getMessage().contains("supported: F32, F16, BF16"),
                    e.getMessage());
            ModelFormatException absent = assertThrows(ModelFormatException.class, () -> file.readFloats("u"));
            assertTrue(absent.getMessage().contains("no tensor named u"), absent.getMessage());
        }
    }

    @Test
    void overlappingTensorsAreRefused() throws IOException {
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", new byte[16]), "overlap");
    }

    // ---- fuzz --------------------------------------------------------------------------------------------

    /**
     * Thousands of random corruptions of a valid file: opening it and reading every tensor either succeeds or
     * throws ModelFormatException; never an index, number-format, null-pointer or memory error.
     */
    @Test
    void randomMutationsEitherLoadOrFailWithModelFormatException() throws IOException {
        Path valid = dir.resolve("valid.safetensors");
        float[] ramp = new float[24];
        for (int i = 0; i < ramp.length; i++) {
            ramp[i] = i * 0.25f - 3f;
        }
        ByteBuffer ids = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 4; i++) {
            ids.putLong(i);
        }
        new SafetensorsWriter().metadata("format", "pt")
                .add("a.weight", Dtype.F32, new int[] {4, 6}, ramp)
                .add("b.bias", Dtype.F16, new int[] {6}, new float[] {1, 2, 3, 4, 5, 6})
                .add("c", Dtype.BF16, new int[] {2, 3}, new float[] {-1, 0.5f, 8, 0, 1, 2})
                .addRaw("ids", Dtype.I64, new int[] {1, 4}, ids.array())
                .add("d", Dtype.F64, new int[] {2}, new float[] {1, -1})
                .write(valid);
        byte[] original = Files.readAllBytes(valid);
        Random random = new Random(20240611L);
        Path target = dir.resolve("mutant.safetensors");
        int loaded = 0;
        int refused = 0;
        for (int iteration = 0; iteration < 3000; iteration++) {
            byte[] mutant = original;
            List<String> applied = new ArrayList<>();
            int mutations = 1 + random.nextInt(3);
            for (int m = 0; m < mutations; m++) {
                mutant = mutate(mutant, random, applied);
            }
            Files.write(target, mutant);
            try (SafetensorsFile file = SafetensorsFile.open(target)) {
                for (String name : file.names()) {
                    file.info(name);
                    if (file.info(name).dtype().isReadableAsFloat()) {
                        file.readFloats(name);
                    }
                }
                loaded++;
            } catch (ModelFormatException e) {
                assertTrue(e.getMessage().contains(target.toString()), "message names the file: " + e.getMessage());
                refused++;
            } catch (Throwable t) {
                fail("iteration " + iteration + " after " + applied + ": " + t, t);
            }
        }
        assertTrue(loaded > 50 && refused > 1000, "mutations exercise both outcomes: loaded " + loaded
                + ", refused " + refused);
    }

    private static final Pattern NUMBER = Pattern.compile("-?\\d+");
    private static final String[] REPLACEMENT_NUMBERS = {"0", "1", "-1", "7", "16", "99999999999999999999",
            "2147483648", "9223372036854775807", "-9223372036854775808", "1.5", "1e3", "4294967296", "\"4\"", "null",
            "[]", "{}"};
    private static final String[] REPLACEMENT_DTYPES = {"F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F128",
            "", "f32"};
    private static final String JSON_NOISE = "{}[]\",: 0123456789-.eE\\nul";

    private static byte[] mutate(byte[] in, Random random, List<String> applied) {
        int headerLength = in.length >= 8
                ? (int) Math.min(Math.max(ByteBuffer.wrap(in).order(ByteOrder.LITTLE_ENDIAN).getLong(0), 0),
                        in.length - 8)
                : 0;
        switch (random.nextInt(8)) {
            case 0 -> { // flip a random byte anywhere
                if (in.length == 0) {
                    return in;
                }
                byte[] out = in.clone();
                int at = random.nextInt(out.length);
                out[at] ^= (byte) (1 + random.nextInt(255));
                applied.add("flip@" + at);
                return out;
            }
            case 1 -> { // truncate
                int length = random.nextInt(in.length + 1);
                applied.add("truncate" + length);
                return java.util.Arrays.copyOf(in, length);
            }
            case 2 -> { // rewrite the header length: nearby or wild
                if (in.length < 8) {
                    return in;
                }
                byte[] out = in.clone();
                long value = random.nextBoolean() ? headerLength + random.nextInt(33) - 16 : random.nextLong();
                ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
                applied.add("length" + value);
                return out;
            }
            case 3 -> { // append junk to the data area
                byte[] out = java.util.Arrays.copyOf(in, in.length + 1 + random.nextInt(16));
                applied.add("append" + (out.length - in.length));
                return out;
            }
            default -> { // edit the JSON text, then usually fix up the header length
                if (in.length < 8 || headerLength == 0) {
                    return in;
                }
                String header = new String(in, 8, headerLength, StandardCharsets.ISO_8859_1);
                String edited = editJson(header, random, applied);
                byte[] text = edited.getBytes(StandardCharsets.ISO_8859_1);
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                length.putLong(random.nextInt(10) == 0 ? headerLength : text.length);
                out.writeBytes(length.array());
                out.writeBytes(text);
                out.write(in, 8 + headerLength, in.length - 8 - headerLength);
                return out.toByteArray();
            }
        }
    }

    private static String editJson(String header, Random random, List<String> applied) {
        switch (random.nextInt(5)) {
            case 0, 1 -> { // replace a number
                List<int[]> spans = new ArrayList<>();
                Matcher m = NUMBER.matcher(header);
                while (m.find()) {
                    spans.add(new int[] {m.start(), m.end()});
                }
                if (spans.isEmpty()) {
                    return header;
                }
                int[] s = spans.get(random.nextInt(spans.size()));
                String replacement = random.nextBoolean()
                        ? REPLACEMENT_NUMBERS[random.nextInt(REPLACEMENT_NUMBERS.length)]
                        : new java.math.BigInteger(header.substring(s[0], s[1]))
                                .add(java.math.BigInteger.valueOf(random.nextInt(9) - 4)).toString();
                applied.add("number@" + s[0] + "=" + replacement);
                return header.substring(0, s[0]) + replacement + header.substring(s[1]);
            }
            case 2 -> { // replace a dtype
                String from = REPLACEMENT_DTYPES[random.nextInt(4)];
                String to = REPLACEMENT_DTYPES[random.nextInt(REPLACEMENT_DTYPES.length)];
                applied.add("dtype " + from + "->" + to);
                return header.replaceFirst("\"" + from + "\"", "\"" + to + "\"");
            }
            case 3 -> { // delete a span
                int at = random.nextInt(header.length());
                int end = Math.min(header.length(), at + 1 + random.nextInt(12));
                applied.add("delete[" + at + "," + end + ")");
                return header.substring(0, at) + header.substring(end);
            }
            default -> { // insert JSON-ish noise, or a field name
                int at = random.nextInt(header.length() + 1);
                String noise = random.nextBoolean()
                        ? String.valueOf(JSON_NOISE.charAt(random.nextInt(JSON_NOISE.length())))
                        : List.of("\"shape\":", "\"dtype\":", "\"data_offsets\":", "\"__metadata__\":", "[0,8]",
                                "{\"x\":{}},").get(random.nextInt(6));
                applied.add("insert@" + at + "=" + noise);
                return header.substring(0, at) + noise + header.substring(at);
            }
        }
    }

    // ---- helpers -----------------------------------------------------------------------------------------

    private static float f16(float v) {
        return SafetensorsFile.f16ToFloat(SafetensorsWriter.floatToF16(v));
    }

    private static float bf16(float v) {
        return SafetensorsFile.bf16ToFloat(SafetensorsWriter.floatToBf16(v));
    }

    /** The bytes of a safetensors file with this header text (not padded) and data area. */
    private static byte[] file(String header, byte[] data) {
        byte[] text = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + text.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(text.length).put(text).put(data);
        return b.array();
    }

    private int counter;

    private Path write(String name, byte[] content) throws IOException {
        Path f = dir.resolve(name);
        Files.write(f, content);
        return f;
    }

    private void assertRejected(byte[] content, String... fragments) throws IOException {
        Path f = write("bad" + (counter++) + ".safetensors", content);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> {
            try (SafetensorsFile file = SafetensorsFile.open(f)) {
                for (String name : file.names()) {
                    file.readFloats(name);
                }
            }
        });
        assertTrue(e.getMessage().contains(f.toString()), "names the file: " + e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' in: " + e.getMessage());
        }
    }
}
