package dev.mpsactors.runtime;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.actors.DeviceRuntime;
import dev.mpsactors.actors.FaultInjector;
import dev.mpsactors.actors.HostRuntime;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.IntFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The Java facade for callers outside actors, grouped by concern: {@link #memory()}, {@link #streams()},
 * {@link #events()} and {@link #kernels()} talk to the owners of one device (the first, or any through
 * {@link #device(int)}); {@link #models()} loads models and text encoders replicated over every device and
 * sends them requests. Every request sends one message to the owner concerned and returns a
 * {@link CompletionStage} of its reply (a failure reply completes it exceptionally with an
 * {@link MpsRuntimeException} carrying the owner's reason). Nothing here blocks except {@link #start}, which
 * waits for the runtime to come up, and {@link #close}, which waits for it to shut down.
 *
 * <p>Two ways to embed: {@link #start(Config)} runs a {@link HostRuntime} (one DeviceRuntime per device of
 * {@code mps-actors.devices}) in an ActorSystem of its own; {@link #attach} wraps a HostRuntime or a
 * DeviceRuntime you spawned inside your own ActorSystem.
 */
public final class MpsRuntime implements AutoCloseable {
    private final ActorSystem<?> system;
    private final ActorRef<RuntimeProtocol.Command> runtimeRef;
    private final boolean ownsSystem;
    private final Asker asker;
    private final CompletableFuture<LiveObjects> deviceClosed;
    private final Models models;
    private volatile List<RuntimeDevice> devices;

    private MpsRuntime(ActorSystem<?> system, ActorRef<RuntimeProtocol.Command> runtimeRef, boolean ownsSystem,
                       RuntimeProtocol.Devices devices, Duration askTimeout, CompletableFuture<LiveObjects> deviceClosed) {
        this.system = system;
        this.runtimeRef = runtimeRef;
        this.ownsSystem = ownsSystem;
        this.asker = new Asker(system, askTimeout);
        this.deviceClosed = deviceClosed;
        this.models = new Models(runtimeRef, asker);
        this.devices = views(devices);
    }

    /** Starts a runtime with {@code ConfigFactory.load()}. */
    public static MpsRuntime start() {
        return start(ConfigFactory.load());
    }

    /**
     * Starts a runtime in an ActorSystem of its own, configured by {@code config} (mps-actors.* keys,
     * reference.conf as fallback), on every device {@code mps-actors.devices} selects. Invalid configuration
     * throws {@link InvalidConfigException} naming the key; a device that cannot open throws with the backend's
     * message.
     */
    public static MpsRuntime start(Config config) {
        Config resolved = config.withFallback(ConfigFactory.defaultReference()).resolve();
        RuntimeSettings settings = RuntimeSettings.fromConfig(resolved);
        return start(resolved, ordinal -> new FaultInjector(settings.faults()));
    }

    /**
     * {@link #start(Config)} with each device's fault injector made by {@code faults} (from the device's
     * ordinal): tests that slow or hold one device.
     */
    public static MpsRuntime start(Config config, IntFunction<FaultInjector> faults) {
        Config resolved = config.withFallback(ConfigFactory.defaultReference()).resolve();
        RuntimeSettings settings = RuntimeSettings.fromConfig(resolved);
        // Refuse a device selection the backend cannot satisfy before any actor starts, naming the key.
        try {
            HostRuntime.selectDevices(settings);
        } catch (dev.mpsactors.nativemps.NativeException e) {
            throw new MpsRuntimeException("the runtime did not start: " + rootMessage(e));
        }
        CompletableFuture<LiveObjects> closed = new CompletableFuture<>();
        ActorSystem<RuntimeProtocol.Command> system =
                ActorSystem.create(HostRuntime.create(settings, closed, faults), "mps-actors", resolved);
        try {
            CompletableFuture<RuntimeProtocol.Devices> started = AskPattern.<RuntimeProtocol.Command,
                    RuntimeProtocol.Devices>ask(system, RuntimeProtocol.GetDevices::new, settings.askTimeout(),
                    system.scheduler()).toCompletableFuture();
            // A guardian that failed in setup completes `closed` exceptionally: fail at once with its reason.
            CompletableFuture.anyOf(started, closed).get(settings.askTimeout().toMillis(), TimeUnit.MILLISECONDS);
            if (closed.isCompletedExceptionally()) {
                closed.get();
            }
            return new MpsRuntime(system, system, true, started.getNow(null), settings.askTimeout(), closed);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            system.terminate();
            throw new MpsRuntimeException("interrupted while the runtime started");
        } catch (ExecutionException | TimeoutException e) {
            system.terminate();
            // The guardian failed in setup (e.g. a device did not open): surface why.
            throw new MpsRuntimeException("the runtime did not start: " + rootMessage(e));
        }
    }

    /** Wraps a {@link HostRuntime} or {@link DeviceRuntime} spawned inside the caller's own ActorSystem. */
    public static CompletionStage<MpsRuntime> attach(ActorSystem<?> system, ActorRef<RuntimeProtocol.Command> runtime,
                                                     Duration askTimeout) {
        return AskPattern.<RuntimeProtocol.Command, RuntimeProtocol.Devices>ask(runtime, RuntimeProtocol.GetDevices::new,
                        askTimeout, system.scheduler())
                .thenApply(d -> new MpsRuntime(system, runtime, false, d, askTimeout, new CompletableFuture<>()));
    }

    // ---- devices ------------------------------------------------------------------------------------

    /** Every device that was up when the runtime started (or at the last {@link #refreshDevices()}), by ordinal. */
    public List<RuntimeDevice> devices() {
        return devices;
    }

    /** The device with ordinal {@code ordinal}; throws if the runtime does not use it. */
    public RuntimeDevice device(int ordinal) {
        for (RuntimeDevice d : devices) {
            if (d.ordinal() == ordinal) {
                return d;
            }
        }
        throw new IllegalArgumentException("the runtime has no device " + ordinal + "; its devices are "
                + devices.stream().map(RuntimeDevice::ordinal).toList());
    }

    /** Asks the runtime again for its devices' owners (after a device's runtime was started again). */
    public CompletionStage<List<RuntimeDevice>> refreshDevices() {
        return asker.ask(runtimeRef, RuntimeProtocol.GetDevices::new).thenApply(d -> {
            devices = views(d);
            return devices;
        });
    }

    /** Whether each device is up and how often its runtime was started again. */
    public CompletionStage<RuntimeProtocol.DeviceStatus> deviceStatus() {
        return asker.ask(runtimeRef, RuntimeProtocol.GetDeviceStatus::new);
    }

    /**
     * Fault injection: crashes the runtime of device {@code ordinal} (its owners and model replicas stop, their
     * requests are answered or moved to other replicas, and the runtime is started again). Ignored with a
     * warning unless {@code mps-actors.fault-injection.enabled} is on. One-way.
     */
    public void crashDevice(int ordinal) {
        runtimeRef.tell(new RuntimeProtocol.InjectDeviceCrash(ordinal));
    }

    /** The first device's owners' refs (for talking to them from actors). */
    public RuntimeRefs refs() {
        return first().refs();
    }

    // ---- the first device's owners, by concern ------------------------------------------------------

    /** Device memory of the first device; {@code device(i).memory()} for another. */
    public DeviceMemory memory() {
        return first().memory();
    }

    /** Streams of the first device; {@code device(i).streams()} for another. */
    public DeviceStreams streams() {
        return first().streams();
    }

    /** Events of the first device; {@code device(i).events()} for another. */
    public DeviceEvents events() {
        return first().events();
    }

    /** The kernel cache of the first device; {@code device(i).kernels()} for another. */
    public DeviceKernels kernels() {
        return first().kernels();
    }

    /** Models and text encoders, each replicated over its devices behind one ref. */
    public Models models() {
        return models;
    }

    /** Faults the runtime injected so far, over every device (zero unless mps-actors.fault-injection is on). */
    public CompletionStage<RuntimeProtocol.FaultCounts> faultCounts() {
        return asker.ask(runtimeRef, RuntimeProtocol.GetFaultCounts::new);
    }

    /** The ActorSystem the runtime runs in. */
    public ActorSystem<?> system() {
        return system;
    }

    // ---- lifecycle ----------------------------------------------------------------------------------

    /**
     * Stops the runtime (when it owns its ActorSystem) and waits, in the caller's thread, until every device
     * is closed. Returns what was still alive natively on all devices together (empty after a clean shutdown).
     */
    public LiveObjects shutdown(Duration timeout) throws TimeoutException, InterruptedException {
        if (!ownsSystem) {
            throw new IllegalStateException("this runtime lives in the caller's ActorSystem: stop its runtime actor");
        }
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return deviceClosed.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw new MpsRuntimeException("shutdown failed: " + rootMessage(e));
        }
    }

    /** {@link #shutdown} with the ask timeout plus 30 s; does nothing for an attached runtime. */
    @Override
    public void close() {
        if (!ownsSystem) {
            return;
        }
        try {
            shutdown(asker.timeout().plusSeconds(30));
        } catch (TimeoutException e) {
            throw new MpsRuntimeException("runtime did not shut down in time");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private RuntimeDevice first() {
        List<RuntimeDevice> d = devices;
        if (d.isEmpty()) {
            throw new IllegalStateException("no device of the runtime is up");
        }
        return d.get(0);
    }

    private List<RuntimeDevice> views(RuntimeProtocol.Devices d) {
        return d.devices().stream().map(refs -> new RuntimeDevice(refs, asker)).toList();
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }
}
