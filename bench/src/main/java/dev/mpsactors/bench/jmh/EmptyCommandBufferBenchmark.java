package dev.mpsactors.bench.jmh;

import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
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
 * Submit-to-completion latency of an empty command buffer: what synchronising with a stream costs when
 * the device has nothing to do (commit, the executor thread runs the empty buffer, the completion comes
 * back to Java).
 * <ul>
 *   <li>{@code direct}: {@link NativeStream#commit()} and wait for the {@code CompletionListener}, no actors;</li>
 *   <li>{@code actorSubmitOnComplete}: one ask of the StreamActor, {@code Submit(empty, commit = true,
 *       onComplete = the asker)}: commit on the owner, completion as a message to the owner, then to us;</li>
 *   <li>{@code runtimeRun}: {@link DeviceStreams#run} with an empty work list: the facade's two asks (Submit,
 *       then NotifyWhenComplete).</li>
 * </ul>
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class EmptyCommandBufferBenchmark {

    /** A native stream of a device opened directly; the listener completes the one outstanding commit. */
    @State(Scope.Thread)
    public static class Direct {
        NativeDevice device;
        NativeStream stream;
        volatile CompletableFuture<NativeStatus> pending;

        @Setup(Level.Trial)
        public void setUp() {
            device = NativeDevice.open(DeviceOptions.cpu());
            stream = device.createStream((point, status, message, started, finished) -> {
                CompletableFuture<NativeStatus> p = pending;
                if (p != null) {
                    p.complete(status);
                }
            });
        }

        @TearDown(Level.Trial)
        public void tearDown() throws InterruptedException {
            stream.close();
            BenchRuntime.closeDevice(device);
        }
    }

    @State(Scope.Thread)
    public static class ViaRuntime {
        MpsRuntime rt;
        ActorSystem<?> system;
        StreamHandle stream;
        ActorRef<StreamProtocol.SubmitReply> ignore;

        @Setup(Level.Trial)
        public void setUp() {
            rt = BenchRuntime.start();
            system = rt.system();
            stream = rt.streams().get(0);
            ignore = system.ignoreRef();
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            BenchRuntime.shutdown(rt);
        }
    }

    @Benchmark
    public NativeStatus direct(Direct s) throws Exception {
        CompletableFuture<NativeStatus> done = new CompletableFuture<>();
        s.pending = done; // published before the commit, so the executor's callback sees it
        s.stream.commit();
        NativeStatus status = done.get(BenchRuntime.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        if (status != NativeStatus.OK) {
            throw new IllegalStateException("empty command buffer failed: " + status);
        }
        return status;
    }

    @Benchmark
    public StreamProtocol.PointCompleted actorSubmitOnComplete(ViaRuntime s) throws Exception {
        StreamProtocol.PointCompleted c = BenchRuntime.await(
                AskPattern.<StreamProtocol.Command, StreamProtocol.PointCompleted>ask(s.stream.owner(),
                        onComplete -> new StreamProtocol.Submit(List.of(), true, s.ignore, onComplete),
                        BenchRuntime.TIMEOUT, s.system.scheduler()));
        if (!c.succeeded()) {
            throw new IllegalStateException(c.failure());
        }
        return c;
    }

    @Benchmark
    public StreamProtocol.PointCompleted runtimeRun(ViaRuntime s) throws Exception {
        return BenchRuntime.await(s.rt.streams().run(s.stream, List.of()));
    }
}
