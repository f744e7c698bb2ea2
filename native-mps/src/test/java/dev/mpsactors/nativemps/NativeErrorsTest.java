package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad use of the Java/JNI layer gives a Java exception (with a message naming what was wrong) and never
 * a crash; the objects involved stay usable afterwards; every test ends with no native object alive.
 */
class NativeErrorsTest {
    /** The cpu library first, whatever the test order: opening "cuda" in a fresh JVM would load the cuda library. */
    @BeforeAll
    static void loadTheCpuLibrary() {
        NativeLibraryLoader.ensureLoaded("cpu");
    }

    private NativeDevice device;
    private KernelLibrary library;
    private Pipeline add;
    private Pipeline gemm;
    private Pipeline embedding;
    private CompletionRecorder recorder;
    private NativeStream stream;
    /** Extra objects a test opens; closed (in reverse) after it. */
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void open() {
        device = NativeDevice.open(DeviceOptions.cpu());
        library = device.compileLibrary("*", "");
        add = library.pipeline("add");
        gemm = library.pipeline("gemm");
        embedding = library.pipeline("embedding");
        recorder = new CompletionRecorder();
        stream = device.createStream(recorder);
    }

    @AfterEach
    void closeEverythingAndCheckNothingLeaked() throws Exception {
        try {
            for (int i = toClose.size() - 1; i >= 0; i--) {
                toClose.get(i).close();
            }
            stream.close();
            add.close();
            gemm.close();
            embedding.close();
            library.close();
            CompletionRecorder.awaitNoLiveObjects(device);
        } finally {
            device.close();
        }
        assertTrue(device.isClosed());
    }

    private <T extends AutoCloseable> T track(T resource) {
        toClose.add(resource);
        return resource;
    }

    private DeviceBuffer floats(int n) {
        return track(device.allocate(4L * n));
    }

    private static NativeException assertNative(NativeStatus status, Executable call, String... mentions) {
        NativeException e = assertThrows(NativeException.class, call);
        assertEquals(status, e.status(), e::getMessage);
        for (String m : mentions) {
            assertTrue(e.getMessage().contains(m), () -> "message should mention '" + m + "': " + e.getMessage());
        }
        return e;
    }

    /** After a rejected call the stream still encodes, commits and completes normally. */
    private void assertStreamStillWorks() {
        DeviceBuffer a = floats(4);
        DeviceBuffer y = floats(4);
        a.write(0, new float[] {1, 2, 3, 4});
        int before = stream.openCommands();
        stream.encodeKernel(add, new KernelArgs().buffer(a).buffer(a).buffer(y).i(4));
        assertEquals(before + 1, stream.openCommands());
        recorder.awaitOk(stream.commit());
        float[] out = new float[4];
        y.read(0, out);
        assertArrayEquals(new float[] {2, 4, 6, 8}, out);
    }

    // ------------------------------------------------------------------------------------------------
    // Devices
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"cuda", "metal", "opencl"})
    void openingABackendThisLibraryLacksThrowsNotFoundNamingTheBackend(String backend) {
        assertNative(NativeStatus.NOT_FOUND, () -> NativeDevice.open(new DeviceOptions(backend, 0, 1)),
                "'" + backend + "'");
    }

    @Test
    void invalidDeviceOptionsAreRejectedInJavaOrNamedByTheBackend() {
        assertThrows(NullPointerException.class, () -> NativeDevice.open(null));
        assertThrows(IllegalArgumentException.class, () -> new DeviceOptions(null, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new DeviceOptions(" ", 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new DeviceOptions("cpu", -1, 1));
        assertThrows(IllegalArgumentException.class, () -> new DeviceOptions("cpu", 0, 0));
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> NativeDevice.open(new DeviceOptions("cpu", 1, 1)),
                "ordinal 1");
    }

    @Test
    void deviceInfoDescribesAHostVisibleCpu() {
        DeviceInfo info = device.info();
        assertEquals("cpu", info.backend());
        assertTrue(info.hostVisible());
        assertTrue(info.computeUnits() >= 1);
        assertTrue(info.maxBufferBytes() > 0 && info.maxBufferBytes() <= info.memoryBytes());
    }

    // ------------------------------------------------------------------------------------------------
    // Buffers and host copies
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(longs = {0, -1, -4096, Long.MIN_VALUE, Long.MAX_VALUE})
    void nonPositiveOrEnormousAllocationsThrowIllegalArgumentBeforeReachingNative(long bytes) {
        LiveObjects before = device.liveObjects();
        assertThrows(IllegalArgumentException.class, () -> device.allocate(bytes));
        assertEquals(before, device.liveObjects(), "nothing was allocated natively");
    }

    @Test
    void allocationJustAboveTheDeviceLimitIsRejectedNamingTheLimit() {
        long limit = device.info().maxBufferBytes();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.allocate(limit + 1));
        assertTrue(e.getMessage().contains(Long.toString(limit)), e.getMessage());
        assertEquals(0, device.liveObjects().buffers());
    }

    @ParameterizedTest(name = "offset={0} floats={1}")
    @CsvSource({"-4, 1", "13, 1", "16, 1", "20, 0", "0, 5", "4, 4", "9223372036854775804, 1"})
    void hostReadsAndWritesOutsideTheBufferThrowIndexOutOfBounds(long offset, int count) {
        DeviceBuffer b = floats(4); // 16 bytes
        float[] f = new float[count];
        int[] i = new int[count];
        ByteBuffer direct = ByteBuffer.allocateDirect(4 * count).order(ByteOrder.LITTLE_ENDIAN);
        assertThrows(IndexOutOfBoundsException.class, () -> b.write(offset, f));
        assertThrows(IndexOutOfBoundsException.class, () -> b.read(offset, f));
        assertThrows(IndexOutOfBoundsException.class, () -> b.write(offset, i));
        assertThrows(IndexOutOfBoundsException.class, () -> b.read(offset, i));
        assertThrows(IndexOutOfBoundsException.class, () -> b.write(offset, direct));
        assertThrows(IndexOutOfBoundsException.class, () -> b.read(offset, direct));
    }

    @Test
    void hostCopiesAtTheExactEndOfTheBufferAreAllowed() {
        DeviceBuffer b = floats(4);
        b.write(12, new float[] {7f});
        b.write(16, new float[0]);
        float[] out = new float[1];
        b.read(12, out);
        assertEquals(7f, out[0]);
    }

    @Test
    void nullHostArraysThrowNullPointer() {
        DeviceBuffer b = floats(4);
        assertThrows(NullPointerException.class, () -> b.write(0, (float[]) null));
        assertThrows(NullPointerException.class, () -> b.read(0, (float[]) null));
        assertThrows(NullPointerException.class, () -> b.write(0, (int[]) null));
        assertThrows(NullPointerException.class, () -> b.read(0, (int[]) null));
        assertThrows(NullPointerException.class, () -> b.write(0, (ByteBuffer) null));
        assertThrows(NullPointerException.class, () -> b.read(0, (ByteBuffer) null));
    }

    @Test
    void heapByteBuffersAreRejectedWhereDirectMemoryIsRequired() {
        DeviceBuffer b = floats(4);
        ByteBuffer heap = ByteBuffer.allocate(16);
        assertThrows(IllegalArgumentException.class, () -> b.write(0, heap));
        assertThrows(IllegalArgumentException.class, () -> b.read(0, heap));
        assertThrows(IllegalArgumentException.class, () -> stream.encodeUpload(heap, b, 0));
        assertThrows(IllegalArgumentException.class, () -> stream.encodeDownload(b, 0, heap));
        ByteBuffer readOnly = ByteBuffer.allocateDirect(16).asReadOnlyBuffer();
        assertThrows(IllegalArgumentException.class, () -> b.read(0, readOnly));
        assertThrows(IllegalArgumentException.class, () -> stream.encodeDownload(b, 0, readOnly));
        assertEquals(0, stream.openCommands(), "nothing was encoded");
    }

    @Test
    void deviceCopiesOutsideEitherBufferThrowIndexOutOfBounds() {
        DeviceBuffer a = floats(4);
        DeviceBuffer b = floats(2);
        assertThrows(IndexOutOfBoundsException.class, () -> stream.encodeCopy(a, 0, b, 0, 16));
        assertThrows(IndexOutOfBoundsException.class, () -> stream.encodeCopy(a, 12, b, 0, 8));
        assertThrows(IndexOutOfBoundsException.class, () -> stream.encodeCopy(a, 0, b, -4, 4));
        assertThrows(IndexOutOfBoundsException.class, () -> stream.encodeCopy(a, 0, b, 0, -1));
        assertThrows(IndexOutOfBoundsException.class,
                () -> stream.encodeUpload(ByteBuffer.allocateDirect(12), b, 0));
        assertThrows(NullPointerException.class, () -> stream.encodeCopy(null, 0, b, 0, 4));
        assertEquals(0, stream.openCommands());
        assertStreamStillWorks();
    }

    // ------------------------------------------------------------------------------------------------
    // Libraries and pipelines
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"conv2d", "gemm nosuchkernel", "add,Add", "gemm\tsoftmax2"})
    void compilingAnUnknownKernelNameFailsWithCompileFailedNamingIt(String source) {
        String unknown = source.contains("nosuchkernel") ? "nosuchkernel"
                : source.contains("Add") ? "Add" : source.contains("softmax2") ? "softmax2" : "conv2d";
        assertNative(NativeStatus.COMPILE_FAILED, () -> device.compileLibrary(source, null), "'" + unknown + "'");
        assertEquals(1, device.liveObjects().libraries(), "the failed compile left no library behind");
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "   ", ",,"})
    void compilingASourceThatNamesNoKernelFails(String source) {
        assertNative(NativeStatus.COMPILE_FAILED, () -> device.compileLibrary(source, null));
    }

    @Test
    void compilingNullSourceThrowsNullPointer() {
        assertThrows(NullPointerException.class, () -> device.compileLibrary(null, null));
    }

    @Test
    void pipelineForAFunctionNotInTheLibraryIsNotFoundNamingIt() {
        KernelLibrary small = track(device.compileLibrary("gemm add", null));
        assertNative(NativeStatus.NOT_FOUND, () -> small.pipeline("softmax"), "'softmax'");
        assertNative(NativeStatus.NOT_FOUND, () -> small.pipeline("no_such_function"), "'no_such_function'");
        assertThrows(NullPointerException.class, () -> small.pipeline(null));
        try (Pipeline p = small.pipeline("add")) {
            assertEquals("add", p.function());
            assertEquals(4, p.argCount());
        }
    }

    @Test
    void pipelinesStayUsableAfterTheirLibraryIsClosed() {
        KernelLibrary lib = device.compileLibrary("add", null);
        Pipeline p = track(lib.pipeline("add"));
        lib.close();
        DeviceBuffer a = floats(3);
        DeviceBuffer y = floats(3);
        a.write(0, new float[] {1.5f, -2f, 3f});
        stream.encodeKernel(p, new KernelArgs().buffer(a).buffer(a).buffer(y).i(3));
        recorder.awaitOk(stream.commit());
        float[] out = new float[3];
        y.read(0, out);
        assertArrayEquals(new float[] {3f, -4f, 6f}, out);
    }

    // ------------------------------------------------------------------------------------------------
    // Kernel arguments
    // ------------------------------------------------------------------------------------------------

    @Test
    void nullPipelineArgumentsOrListenersThrowNullPointer() {
        DeviceBuffer a = floats(4);
        KernelArgs ok = new KernelArgs().buffer(a).buffer(a).buffer(a).i(4);
        assertThrows(NullPointerException.class, () -> stream.encodeKernel(null, ok));
        assertThrows(NullPointerException.class, () -> stream.encodeKernel(add, null));
        assertThrows(NullPointerException.class, () -> new KernelArgs().buffer(null));
        assertThrows(NullPointerException.class, () -> new KernelArgs().buffer(null, 0));
        assertThrows(NullPointerException.class, () -> device.createStream(null));
        assertThrows(NullPointerException.class, () -> stream.encodeWait((NativeStream) null, 1));
        assertThrows(NullPointerException.class, () -> stream.encodeEventRecord(null));
        assertEquals(0, stream.openCommands());
    }

    @Test
    void kernelArgsRejectNegativeOrPastTheEndOffsetsAndMoreThanMaxArguments() {
        DeviceBuffer a = floats(4);
        assertThrows(IndexOutOfBoundsException.class, () -> new KernelArgs().buffer(a, -4));
        assertThrows(IndexOutOfBoundsException.class, () -> new KernelArgs().buffer(a, 17));
        KernelArgs full = new KernelArgs();
        for (int i = 0; i < KernelArgs.MAX_ARGS; i++) {
            full.i(i);
        }
        assertThrows(IllegalArgumentException.class, () -> full.i(0));
        assertEquals(KernelArgs.MAX_ARGS, full.count());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3, 5, 8})
    void aWrongArgumentCountIsRejectedNamingTheKernel(int count) {
        DeviceBuffer a = floats(4);
        KernelArgs args = new KernelArgs();
        for (int i = 0; i < count; i++) {
            if (i < 3) {
                args.buffer(a);
            } else {
                args.i(4);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> stream.encodeKernel(add, args));
        assertTrue(e.getMessage().contains("add") && e.getMessage().contains("4"), e.getMessage());
        assertEquals(0, stream.openCommands());
        assertStreamStillWorks();
    }

    @Test
    void anIntWhereABufferIsExpectedIsInvalidArgumentNamingTheArgument() {
        DeviceBuffer a = floats(4);
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().i(7).buffer(a).buffer(a).i(4)), "add", "(a)");
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a).buffer(a).i(7).i(4)), "(y)");
        assertEquals(0, stream.openCommands());
        assertStreamStillWorks();
    }

    @Test
    void otherKindMismatchesAreInvalidArgumentNamingTheArgument() {
        DeviceBuffer a = floats(4);
        // float where the int n is expected
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a).buffer(a).buffer(a).f(4.0)), "(n)");
        // buffer where the int n is expected
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a).buffer(a).buffer(a).buffer(a)), "(n)");
        // none() for a buffer that is not optional
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a).none().buffer(a).i(4)), "(b)");
        // int where gemm's float alpha is expected
        DeviceBuffer m = floats(16);
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                new KernelArgs().buffer(m).buffer(m).buffer(m).none().i(2).i(2).i(2).i(2).i(2).i(2).i(0).i(0)
                        .i(1).f(0).i(0).i(1).i(0).i(0).i(0).i(1).i(0).i(0).i(0)), "(alpha)");
        assertEquals(0, stream.openCommands());
    }

    @ParameterizedTest(name = "{0} too small")
    @ValueSource(strings = {"a", "b", "y"})
    void aBufferTooSmallForTheGivenSizeIsInvalidArgumentNamingThatBuffer(String small) {
        DeviceBuffer big = floats(100);
        DeviceBuffer tiny = floats(99);
        KernelArgs args = new KernelArgs()
                .buffer(small.equals("a") ? tiny : big)
                .buffer(small.equals("b") ? tiny : floats(100))
                .buffer(small.equals("y") ? tiny : floats(100))
                .i(100);
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(add, args), "buffer " + small,
                "396", "400");
        assertEquals(0, stream.openCommands());
    }

    @Test
    void aByteOffsetThatLeavesTooFewBytesIsInvalidArgumentNamingTheBuffer() {
        DeviceBuffer a = floats(8);
        DeviceBuffer y = floats(4);
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a, 20).buffer(a).buffer(y).i(4)), "buffer a");
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a, 2).buffer(a).buffer(y).i(1)), "aligned");
    }

    @Test
    void gemmOperandsTooSmallForTheirShapesAreNamed() {
        DeviceBuffer a = floats(6); // 2 x 3
        DeviceBuffer b = floats(12); // 3 x 4
        DeviceBuffer c = floats(7); // needs 2 x 4 = 8
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                KernelNumericsTest.gemmArgs(a, 0, b, 0, c, 0, null, 2, 4, 3, 3, 4, 4, false, false, 1, 0, 0,
                        1, 0, 0, 0, 1, 0, 0, 0)), "buffer C", "28", "32");
        DeviceBuffer c8 = floats(8);
        // a second batch item needs 6 more floats of A
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                KernelNumericsTest.gemmArgs(a, 0, b, 0, c8, 0, null, 2, 4, 3, 3, 4, 4, false, false, 1, 0, 0,
                        2, 6, 0, 0, 1, 0, 0, 0)), "buffer A");
        DeviceBuffer bias = floats(3);
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                KernelNumericsTest.gemmArgs(a, 0, b, 0, c8, 0, bias, 2, 4, 3, 3, 4, 4, false, false, 1, 0, 0,
                        1, 0, 0, 0, 1, 0, 0, 0)), "buffer bias");
        // a leading dimension smaller than the stored columns
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                KernelNumericsTest.gemmArgs(a, 0, b, 0, c8, 0, null, 2, 4, 3, 2, 4, 4, false, false, 1, 0, 0,
                        1, 0, 0, 0, 1, 0, 0, 0)), "lda");
        assertEquals(0, stream.openCommands());
    }

    @Test
    void embeddingTableTooSmallForVocabTimesDimIsNamed() {
        DeviceBuffer ids = floats(2);
        DeviceBuffer table = floats(10 * 4 - 1);
        DeviceBuffer out = floats(2 * 4);
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(embedding,
                new KernelArgs().buffer(ids).buffer(table).buffer(out).i(2).i(4).i(10).i(0)), "buffer table");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"n, -1", "n, 0", "n, -9223372036854775808"})
    void negativeOrZeroSizesAreInvalidArgumentNamingTheSize(String name, long value) {
        DeviceBuffer a = floats(4);
        assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeKernel(add, new KernelArgs().buffer(a).buffer(a).buffer(a).i(value)),
                name + " is " + value);
    }

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource({"M, 4, -3", "N, 5, -1", "K, 6, 0", "batch_outer, 15, 0", "stride_a_outer, 16, -2",
        "activation, 14, 3"})
    void outOfRangeGemmIntegersAreInvalidArgumentNamingTheArgument(String name, int index, long value) {
        DeviceBuffer m = floats(64);
        long[] ints = {0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
        ints[index] = value;
        KernelArgs args = new KernelArgs().buffer(m).buffer(m, 64).buffer(m, 128).none();
        for (int i = 4; i < 23; i++) {
            if (i == 12 || i == 13) {
                args.f(i == 12 ? 1.0 : 0.0);
            } else {
                args.i(ints[i]);
            }
        }
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm, args), name + " is " + value);
    }

    @ParameterizedTest
    @ValueSource(doubles = {Double.NaN, Double.POSITIVE_INFINITY, 1e39})
    void nonFiniteOrFloatOverflowingScalarsAreInvalidArgument(double alpha) {
        DeviceBuffer m = floats(12);
        assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(gemm,
                KernelNumericsTest.gemmArgs(m, 0, m, 0, floats(4), 0, null, 2, 2, 2, 2, 2, 2, false, false, alpha, 0,
                        0, 1, 0, 0, 0, 1, 0, 0, 0)), "alpha");
    }

    @Test
    void buffersAndPipelinesOfAnotherDeviceAreRejected() {
        try (NativeDevice other = NativeDevice.open(DeviceOptions.cpu())) {
            try (DeviceBuffer foreign = other.allocate(16);
                 KernelLibrary otherLib = other.compileLibrary("add", null);
                 Pipeline foreignAdd = otherLib.pipeline("add")) {
                DeviceBuffer mine = floats(4);
                assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(add,
                        new KernelArgs().buffer(mine).buffer(foreign).buffer(mine).i(4)), "another device");
                assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeKernel(foreignAdd,
                        new KernelArgs().buffer(mine).buffer(mine).buffer(mine).i(4)), "another device");
                assertNative(NativeStatus.INVALID_ARGUMENT, () -> stream.encodeCopy(foreign, 0, mine, 0, 16),
                        "another device");
                assertEquals(0, stream.openCommands());
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Timeline and events
    // ------------------------------------------------------------------------------------------------

    @Test
    void waitingOnAPointNotYetCommittedIsAStateError() {
        NativeStream other = track(device.createStream(new CompletionRecorder()));
        assertNative(NativeStatus.STATE, () -> stream.encodeWait(other, 1), "point 1", "not committed");
        long p = other.commit();
        assertNative(NativeStatus.STATE, () -> stream.encodeWait(other, p + 1), "point " + (p + 1));
        assertThrows(IllegalArgumentException.class, () -> stream.encodeWait(other, 0));
        assertThrows(IllegalArgumentException.class, () -> stream.encodeWait(other, -5));
        assertDoesNotThrow(() -> stream.encodeWait(other, p));
        assertStreamStillWorks();
    }

    @Test
    void anEventQueriedBeforeItWasEverRecordedIsAStateError() {
        DeviceEvent e = track(device.createEvent());
        DeviceEvent recorded = track(device.createEvent());
        assertNative(NativeStatus.STATE, e::isComplete, "never recorded");
        stream.encodeEventRecord(recorded);
        recorder.awaitOk(stream.commit());
        assertTrue(recorded.isComplete());
        assertNative(NativeStatus.STATE, () -> recorded.elapsedMillisSince(e), "never recorded");
        assertNative(NativeStatus.STATE, () -> e.elapsedMillisSince(recorded), "never recorded");
        assertThrows(NullPointerException.class, () -> e.elapsedMillisSince(null));
    }

    @Test
    void aKernelFailingAtExecutionCompletesWithKernelFailedNamingTheIdAndTheStreamGoesOn() {
        DeviceBuffer ids = floats(4);
        ids.write(0, new int[] {1, 0, 17, 2});
        DeviceBuffer table = floats(10 * 3);
        table.write(0, KernelNumericsTest.uniform(new java.util.Random(1), 30));
        DeviceBuffer out = floats(4 * 3);
        float[] sentinel = KernelNumericsTest.uniform(new java.util.Random(2), 12);
        out.write(0, sentinel);
        stream.encodeKernel(embedding, new KernelArgs().buffer(ids).buffer(table).buffer(out).i(4).i(3).i(10).i(0));
        long bad = stream.commit();
        CompletionRecorder.Completion c = recorder.await(bad);
        assertEquals(NativeStatus.KERNEL_FAILED, c.status());
        assertTrue(c.message().contains("17") && c.message().contains("position 2"), c.message());
        float[] after = new float[12];
        out.read(0, after);
        assertArrayEquals(sentinel, after, "a failed embedding leaves out untouched");
        assertEquals(bad, stream.completedPoint());
        assertStreamStillWorks();
        recorder.assertEachPointOnceInOrder(bad + 1);
    }

    // ------------------------------------------------------------------------------------------------
    // Use after close, idempotent close
    // ------------------------------------------------------------------------------------------------

    @Test
    void aClosedBufferThrowsIllegalStateAndClosesIdempotently() {
        DeviceBuffer b = device.allocate(16);
        KernelArgs args = new KernelArgs().buffer(b).buffer(b).buffer(b).i(4);
        b.close();
        b.close();
        assertTrue(b.isClosed());
        assertThrows(IllegalStateException.class, () -> b.write(0, new float[1]));
        assertThrows(IllegalStateException.class, () -> b.read(0, new float[1]));
        assertThrows(IllegalStateException.class, () -> b.write(0, new int[1]));
        assertThrows(IllegalStateException.class, () -> b.read(0, ByteBuffer.allocateDirect(4)));
        assertThrows(IllegalStateException.class, () -> stream.encodeKernel(add, args));
        assertThrows(IllegalStateException.class, () -> stream.encodeCopy(b, 0, b, 0, 4));
        assertThrows(IllegalStateException.class, () -> stream.encodeUpload(ByteBuffer.allocateDirect(4), b, 0));
        assertEquals(0, stream.openCommands());
        assertEquals(0, device.liveObjects().buffers());
    }

    @Test
    void aClosedStreamThrowsIllegalStateAndClosesIdempotently() {
        NativeStream s = device.createStream(new CompletionRecorder());
        DeviceBuffer a = floats(4);
        s.close();
        s.close();
        assertTrue(s.isClosed());
        assertThrows(IllegalStateException.class, () -> s.encodeKernel(add,
                new KernelArgs().buffer(a).buffer(a).buffer(a).i(4)));
        assertThrows(IllegalStateException.class, s::commit);
        assertThrows(IllegalStateException.class, s::committedPoint);
        assertThrows(IllegalStateException.class, s::completedPoint);
        assertThrows(IllegalStateException.class, s::openCommands);
        assertThrows(IllegalStateException.class, () -> s.encodeCopy(a, 0, a, 0, 4));
        assertThrows(IllegalStateException.class, () -> stream.encodeWait(s, 1));
        assertThrows(IllegalStateException.class, () -> s.encodeWait(stream, 1));
    }

    @Test
    void aClosedEventThrowsIllegalStateAndClosesIdempotently() {
        DeviceEvent e = device.createEvent();
        DeviceEvent other = track(device.createEvent());
        e.close();
        e.close();
        assertTrue(e.isClosed());
        assertThrows(IllegalStateException.class, e::isComplete);
        assertThrows(IllegalStateException.class, () -> stream.encodeEventRecord(e));
        assertThrows(IllegalStateException.class, () -> other.elapsedMillisSince(e));
        assertThrows(IllegalStateException.class, () -> e.elapsedMillisSince(other));
        assertEquals(0, stream.openCommands());
    }

    @Test
    void aClosedPipelineOrLibraryThrowsIllegalStateAndClosesIdempotently() {
        KernelLibrary lib = device.compileLibrary("add", null);
        Pipeline p = lib.pipeline("add");
        p.close();
        p.close();
        DeviceBuffer a = floats(4);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> stream.encodeKernel(p, new KernelArgs().buffer(a).buffer(a).buffer(a).i(4)));
        assertTrue(e.getMessage().contains("add"), e.getMessage());
        lib.close();
        lib.close();
        assertThrows(IllegalStateException.class, () -> lib.pipeline("add"));
        assertEquals(1, device.liveObjects().libraries(), "only the fixture's library remains");
        assertEquals(3, device.liveObjects().pipelines(), "only the fixture's pipelines remain");
    }

    @Test
    void aClosedDeviceThrowsIllegalStateAndClosesIdempotently() {
        NativeDevice d = NativeDevice.open(DeviceOptions.cpu());
        d.close();
        d.close();
        assertTrue(d.isClosed());
        assertThrows(IllegalStateException.class, () -> d.allocate(16));
        assertThrows(IllegalStateException.class, () -> d.createStream(new CompletionRecorder()));
        assertThrows(IllegalStateException.class, () -> d.compileLibrary("*", null));
        assertThrows(IllegalStateException.class, d::createEvent);
        assertThrows(IllegalStateException.class, d::liveObjects);
    }

    // ------------------------------------------------------------------------------------------------
    // Closing a device with live objects
    // ------------------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"buffer", "stream", "event", "library", "pipeline"})
    void closingADeviceWithALiveObjectIsBusyAndTheDeviceStaysUsable(String kind) {
        NativeDevice d = NativeDevice.open(DeviceOptions.cpu());
        try {
            AutoCloseable alive = create(d, kind);
            try {
                NativeException e = assertThrows(NativeException.class, d::close);
                assertEquals(NativeStatus.BUSY, e.status());
                assertTrue(e.getMessage().contains("live objects"), e.getMessage());
                assertFalse(d.isClosed());
                // still usable: a full round trip through a new stream
                try (KernelLibrary lib = d.compileLibrary("add", null);
                     Pipeline p = lib.pipeline("add");
                     DeviceBuffer b = d.allocate(8)) {
                    CompletionRecorder r = new CompletionRecorder();
                    NativeStream s = d.createStream(r);
                    try {
                        b.write(0, new float[] {1f, 2f});
                        s.encodeKernel(p, new KernelArgs().buffer(b).buffer(b).buffer(b).i(2));
                        r.awaitOk(s.commit());
                    } finally {
                        s.close();
                    }
                    float[] out = new float[2];
                    b.read(0, out);
                    assertArrayEquals(new float[] {2f, 4f}, out);
                }
            } finally {
                alive.close();
            }
            CompletionRecorder.awaitNoLiveObjects(d);
        } catch (Exception e) {
            throw new AssertionError(e);
        } finally {
            d.close();
        }
        assertTrue(d.isClosed());
    }

    private static AutoCloseable create(NativeDevice d, String kind) {
        switch (kind) {
            case "buffer":
                return d.allocate(64);
            case "stream":
                return d.createStream(new CompletionRecorder());
            case "event":
                return d.createEvent();
            case "library":
                return d.compileLibrary("gemm", null);
            case "pipeline": {
                KernelLibrary lib = d.compileLibrary("gemm", null);
                Pipeline p = lib.pipeline("gemm");
                lib.close(); // the pipeline alone keeps the device busy
                return p;
            }
            default:
                throw new IllegalArgumentException(kind);
        }
    }

    @Test
    void aCompletionListenerThatThrowsDoesNotStopLaterCompletions() {
        List<Long> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        CompletionRecorder after = new CompletionRecorder();
        Consumer<Long> boom = p -> {
            throw new IllegalStateException("listener bug at point " + p + " (expected by this test)");
        };
        NativeStream s = track(device.createStream((point, status, message, started, finished) -> {
            seen.add(point);
            after.onComplete(point, status, message, started, finished);
            if (point == 1) {
                boom.accept(point);
            }
        }));
        s.commit();
        long last = s.commit();
        after.awaitOk(last);
        assertEquals(List.of(1L, 2L), seen);
    }
}
