package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.ProgramArgs.Ref;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * A program is built once and encoded in one call on any number of streams, each binding its own buffers
 * to the slots; bad programs fail at build, bad bindings at encode, and a failed encode appends nothing.
 */
class NativeProgramTest {
    /** Slots of the test program: out = layernorm(a + b) * gamma + beta, params = gamma ++ beta. */
    private static final int A = 0, B = 1, PARAMS = 2, OUT = 3, SLOTS = 4;
    private static final int ROWS = 5, COLS = 24;
    private static final double EPS = 1e-5;

    private NativeDevice device;
    private KernelLibrary library;
    private Pipeline add;
    private Pipeline layerNorm;
    /** Stream owners on several threads track their buffers here, hence synchronized. */
    private final List<AutoCloseable> toClose = Collections.synchronizedList(new ArrayList<>());

    @BeforeEach
    void open() {
        device = NativeDevice.open(DeviceOptions.cpu());
        library = device.compileLibrary("*", "");
        add = library.pipeline("add");
        layerNorm = library.pipeline("layernorm");
    }

    @AfterEach
    void closeEverythingAndCheckNothingLeaked() throws Exception {
        try {
            for (int i = toClose.size() - 1; i >= 0; i--) {
                toClose.get(i).close();
            }
            add.close();
            layerNorm.close();
            library.close();
            CompletionRecorder.awaitNoLiveObjects(device);
        } finally {
            device.close();
        }
    }

    private <T extends AutoCloseable> T track(T resource) {
        toClose.add(resource);
        return resource;
    }

    private NativeProgram addThenLayerNorm() {
        return track(NativeProgram.builder(device, SLOTS)
                .kernel(add, ProgramArgs.add(new Ref(A, 0), new Ref(B, 0), new Ref(OUT, 0), (long) ROWS * COLS))
                .kernel(layerNorm, ProgramArgs.layerNorm(new Ref(OUT, 0), null, new Ref(PARAMS, 0),
                        new Ref(PARAMS, 4L * COLS), new Ref(OUT, 0), ROWS, COLS, EPS))
                .build());
    }

    /** One request's buffers, with random inputs, and the float64 answer. */
    private final class Binding {
        final DeviceBuffer[] slots = {
            track(device.allocate(4L * ROWS * COLS)), track(device.allocate(4L * ROWS * COLS)),
            track(device.allocate(8L * COLS)), track(device.allocate(4L * ROWS * COLS))};
        final float[] a = new float[ROWS * COLS], b = new float[ROWS * COLS], params = new float[2 * COLS];

        Binding(long seed) {
            Random r = new Random(seed);
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) r.nextGaussian();
                b[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < params.length; i++) {
                params[i] = (float) (r.nextGaussian() * 0.5 + (i < COLS ? 1 : 0));
            }
            slots[A].write(0, a);
            slots[B].write(0, b);
            slots[PARAMS].write(0, params);
        }

        double maxError() {
            float[] got = new float[ROWS * COLS];
            slots[OUT].read(0, got);
            double worst = 0;
            for (int r = 0; r < ROWS; r++) {
                double[] h = new double[COLS];
                double mean = 0, var = 0;
                for (int c = 0; c < COLS; c++) {
                    h[c] = (float) ((double) a[r * COLS + c] + b[r * COLS + c]);
                    mean += h[c];
                }
                mean /= COLS;
                for (int c = 0; c < COLS; c++) {
                    var += (h[c] - mean) * (h[c] - mean);
                }
                var /= COLS;
                for (int c = 0; c < COLS; c++) {
                    double want = (h[c] - mean) / Math.sqrt(var + (float) EPS) * params[c] + params[COLS + c];
                    worst = Math.max(worst, Math.abs(got[r * COLS + c] - want));
                }
            }
            return worst;
        }
    }

    private static NativeException assertNative(NativeStatus status, Executable call, String... mentions) {
        NativeException e = assertThrows(NativeException.class, call);
        assertEquals(status, e.status(), e::getMessage);
        for (String m : mentions) {
            assertTrue(e.getMessage().contains(m), () -> "message should mention '" + m + "': " + e.getMessage());
        }
        return e;
    }

    @Test
    void oneProgramEncodedConcurrentlyOnThreeStreamsWithOwnBindingsMatchesFloat64() throws Exception {
        NativeProgram program = addThenLayerNorm();
        assertEquals(2, program.kernelCount());
        assertEquals(SLOTS, program.slotCount());
        ExecutorService owners = Executors.newFixedThreadPool(3);
        try {
            List<Future<Double>> results = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                int owner = t;
                results.add(owners.submit(() -> {
                    CompletionRecorder recorder = new CompletionRecorder();
                    double worst = 0;
                    try (NativeStream stream = device.createStream(recorder)) {
                        for (int request = 0; request < 10; request++) {
                            Binding binding = new Binding(1000L * owner + request);
                            stream.encodeProgram(program, binding.slots);
                            assertEquals(2, stream.openCommands(), "one call appends the whole program");
                            recorder.awaitOk(stream.commit());
                            worst = Math.max(worst, binding.maxError());
                        }
                    }
                    return worst;
                }));
            }
            for (int t = 0; t < 3; t++) {
                double worst = results.get(t).get(60, TimeUnit.SECONDS);
                System.out.printf("stream %d: max |error| vs float64 %.3g%n", t, worst);
                assertTrue(worst < 2e-5, "stream " + t + " error " + worst);
            }
        } finally {
            owners.shutdownNow();
        }
    }

    @Test
    void aLiveProgramIsCountedAndKeepsTheDeviceBusyUntilClosed() {
        NativeProgram program = addThenLayerNorm();
        assertEquals(1, device.liveObjects().programs());
        assertNative(NativeStatus.BUSY, device::close, "1 programs");
        program.close();
        program.close(); // idempotent
        assertTrue(program.isClosed());
        assertEquals(0, device.liveObjects().programs());
    }

    @Test
    void buildRejectsASlotOutOfRangeNamingKernelArgumentAndSlot() {
        NativeProgram.Builder builder = NativeProgram.builder(device, 2)
                .kernel(add, ProgramArgs.add(new Ref(0, 0), new Ref(1, 0), new Ref(2, 0), 4));
        assertNative(NativeStatus.INVALID_ARGUMENT, builder::build, "program kernel 0 (add)", "(y)", "slot 2",
                "2 slots");
        assertEquals(0, device.liveObjects().programs(), "a failed build leaves no native program");
    }

    @Test
    void buildRejectsAWrongArgumentKindNamingKernelAndArgument() {
        ProgramArgs wrong = new ProgramArgs().slot(0, 0).i(7).slot(1, 0).i(4);
        NativeProgram.Builder builder = NativeProgram.builder(device, 2).kernel(add, wrong);
        assertNative(NativeStatus.INVALID_ARGUMENT, builder::build, "add", "(b)", "must be buffer");
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> NativeProgram.builder(device, 2).kernel(add, new ProgramArgs().slot(0, 0)));
        assertTrue(count.getMessage().contains("takes 4 arguments, got 1"), count.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ProgramArgs().slot(-1, 0));
        assertThrows(IllegalArgumentException.class, () -> new ProgramArgs().slot(0, -4));
    }

    @Test
    void aTooSmallBindingFailsNamingKernelAndArgumentAndAppendsNothing() {
        NativeProgram program = addThenLayerNorm();
        CompletionRecorder recorder = new CompletionRecorder();
        NativeStream stream = track(device.createStream(recorder));
        // One command already open: it must survive the failed encode untouched.
        DeviceBuffer x = track(device.allocate(16));
        x.write(0, new float[] {1, 2, 3, 4});
        stream.encodeKernel(add, new KernelArgs().buffer(x).buffer(x).buffer(x).i(4));

        Binding good = new Binding(7);
        DeviceBuffer[] tooSmall = good.slots.clone();
        tooSmall[PARAMS] = track(device.allocate(4L * COLS + 8)); // gamma fits, beta does not
        NativeException e = assertNative(NativeStatus.INVALID_ARGUMENT,
                () -> stream.encodeProgram(program, tooSmall), "program kernel 1 of 2", "layernorm", "buffer beta",
                "beta=slot 2+" + 4 * COLS);
        System.out.println("too-small binding: " + e.getMessage());
        assertEquals(1, stream.openCommands(), "nothing of the program was appended");

        DeviceBuffer[] tooFew = {good.slots[0], good.slots[1], good.slots[2]};
        assertThrows(IllegalArgumentException.class, () -> stream.encodeProgram(program, tooFew));
        DeviceBuffer[] unbound = {good.slots[0], null, good.slots[2], good.slots[3]};
        NullPointerException npe = assertThrows(NullPointerException.class,
                () -> stream.encodeProgram(program, unbound));
        assertTrue(npe.getMessage().contains("slot 1"), npe.getMessage());
        assertEquals(1, stream.openCommands());

        stream.encodeProgram(program, good.slots);
        assertEquals(3, stream.openCommands());
        recorder.awaitOk(stream.commit());
        float[] doubled = new float[4];
        x.read(0, doubled);
        assertEquals(8f, doubled[3]);
        assertTrue(good.maxError() < 2e-5);
    }

    @Test
    void closingTheProgramAndPipelinesWhileEncodedWorkIsPendingIsSafe() {
        NativeProgram program = addThenLayerNorm();
        CompletionRecorder recorder = new CompletionRecorder();
        NativeStream stream = track(device.createStream(recorder));
        List<Binding> bindings = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            Binding binding = new Binding(i);
            bindings.add(binding);
            stream.encodeProgram(program, binding.slots);
        }
        program.close();
        add.close();
        layerNorm.close();
        library.close();
        long point = stream.commit();
        assertThrows(IllegalStateException.class, () -> stream.encodeProgram(program, bindings.get(0).slots));
        recorder.awaitOk(point);
        for (Binding binding : bindings) {
            assertTrue(binding.maxError() < 2e-5);
        }
        assertEquals(0, device.liveObjects().programs());
    }
}
