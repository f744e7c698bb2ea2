package dev.mpsactors.bench.jmh;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.StreamTimeline;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.CompilerControl;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The fixed cost of crossing into the native module, with no actor involved: a trivial native call (a
 * stream's completed point, read through the owner's {@link NativeStream} and through a shared
 * {@link StreamTimeline}) and a 1-float host write into a cpu buffer (range check + JNI array copy), each
 * against a pure Java call of the same shape that the JIT may not inline.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@State(Scope.Thread)
public class JniCallBenchmark {
    private NativeDevice device;
    private NativeStream stream;
    private StreamTimeline timeline;
    private DeviceBuffer buffer;
    private final float[] one = {1.5f};
    private final float[] javaTarget = new float[128];
    private long javaPoint = 42;

    @Setup(Level.Trial)
    public void setUp() {
        device = NativeDevice.open(DeviceOptions.cpu());
        stream = device.createStream((point, status, message, started, finished) -> {});
        stream.commit(); // completedPoint() has something to report
        timeline = stream.timeline();
        buffer = device.allocate(512);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        buffer.close();
        timeline.close();
        stream.close();
        BenchRuntime.closeDevice(device);
    }

    /** Baseline: a non-inlined Java call returning a field. */
    @Benchmark
    public long javaCallBaseline() {
        return javaCompletedPoint();
    }

    @CompilerControl(CompilerControl.Mode.DONT_INLINE)
    private long javaCompletedPoint() {
        return javaPoint;
    }

    @Benchmark
    public long streamCompletedPoint() {
        return stream.completedPoint();
    }

    @Benchmark
    public long timelineCompletedPoint() {
        return timeline.completedPoint();
    }

    /** Baseline: a non-inlined Java copy of 1 float into a heap array, with the same argument checks. */
    @Benchmark
    public float[] javaWrite1FloatBaseline() {
        javaWrite(0, one);
        return javaTarget;
    }

    @CompilerControl(CompilerControl.Mode.DONT_INLINE)
    private void javaWrite(long byteOffset, float[] src) {
        java.util.Objects.requireNonNull(src, "src");
        if (byteOffset < 0 || byteOffset + 4L * src.length > 4L * javaTarget.length) {
            throw new IndexOutOfBoundsException();
        }
        System.arraycopy(src, 0, javaTarget, (int) (byteOffset / 4), src.length);
    }

    @Benchmark
    public DeviceBuffer bufferWrite1Float() {
        buffer.write(0, one);
        return buffer;
    }
}
