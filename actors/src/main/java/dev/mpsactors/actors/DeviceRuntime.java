package dev.mpsactors.actors;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.EventPoolProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.KernelLibraryShards;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.Command;
import dev.mpsactors.protocol.RuntimeProtocol.GetRuntime;
import dev.mpsactors.protocol.RuntimeProtocol.LoadModel;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoadFailed;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoaded;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.model.BertEngine;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.model.ModelEngine;
import dev.mpsactors.model.TensorStorage;
import java.util.HashMap;
import java.util.Map;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.RuntimeSettings;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The guardian of one device: opens it, starts every owner under explicit supervision (a crashed owner
 * is restarted and answers what it held with failures), and closes the device after the owners stopped
 * and the native work they left has drained. Spawn it in your own ActorSystem, or let {@code MpsRuntime}
 * start one for it.
 */
public final class DeviceRuntime extends AbstractBehavior<Command> {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceRuntime.class);

    private final RuntimeSettings settings;
    private final NativeDevice device;
    private final RuntimeRefs refs;
    private final CompletableFuture<LiveObjects> deviceClosed;
    private final Executor blocking;
    private final Map<String, ActorRef<InferenceProtocol.Command>> models = new HashMap<>();

    /** A model folder read and its weights uploaded, off the guardian's thread. */
    private record ModelReady(LoadModel request, ModelEngine engine, Throwable failure) implements dev.mpsactors.protocol.RuntimeProtocol.Internal {}

    /** A model actor stopped by {@link RuntimeProtocol.UnloadModel} has terminated: its name is free again. */
    private record ModelTerminated(String name) implements dev.mpsactors.protocol.RuntimeProtocol.Internal {}

    /** Who waits for each model being unloaded. */
    private final Map<String, List<ActorRef<RuntimeProtocol.ModelUnloaded>>> unloading = new HashMap<>();

    /**
     * @param deviceClosed completed with what was still alive (normally nothing) once the device is closed
     *                     after the runtime stopped; pass a new future if you do not need it
     */
    public static Behavior<Command> create(RuntimeSettings settings, CompletableFuture<LiveObjects> deviceClosed) {
        return create(settings, deviceClosed, new FaultInjector(settings.faults()));
    }

    /** With a fault injector of the caller's (a test's hold of batch preparation, say). */
    public static Behavior<Command> create(RuntimeSettings settings, CompletableFuture<LiveObjects> deviceClosed,
                                           FaultInjector faults) {
        return Behaviors.setup(ctx -> {
            try {
                return new DeviceRuntime(ctx, settings, deviceClosed, faults);
            } catch (RuntimeException e) {
                // The device did not open (or an owner could not start): whoever waits for the runtime learns why.
                deviceClosed.completeExceptionally(e);
                throw e;
            }
        });
    }

    /** Shared by the owners this runtime spawns; its counters are atomics (statistics). */
    private final FaultInjector faults;
    /** Leases still held when the allocator stopped, closed once every child has stopped. */
    private final Queue<DeviceBuffer> heldAtStop = new ConcurrentLinkedQueue<>();

    private DeviceRuntime(ActorContext<Command> ctx, RuntimeSettings s, CompletableFuture<LiveObjects> deviceClosed,
                          FaultInjector faults) {
        super(ctx);
        this.settings = s;
        this.deviceClosed = deviceClosed;
        this.device = NativeDevice.open(s.deviceOptions(s.deviceOrdinal()));
        DispatcherSelector owners = DispatcherSelector.fromConfig(RuntimeSettings.OWNER_DISPATCHER);
        DispatcherSelector streamsDispatcher = DispatcherSelector.fromConfig(RuntimeSettings.STREAM_DISPATCHER);
        Executor compile = ctx.getSystem().dispatchers().lookup(
                DispatcherSelector.fromConfig(RuntimeSettings.COMPILE_DISPATCHER));
        this.blocking = compile;
        this.faults = faults;

        ActorRef<AllocatorProtocol.Command> allocator = ctx.spawn(
                Behaviors.supervise(AllocatorActor.create(device, s.allocator(), faults, s.askTimeout(),
                                heldAtStop::addAll))
                        .onFailure(SupervisorStrategy.restart()), "allocator", owners);
        ActorRef<EventPoolProtocol.Command> eventPool = ctx.spawn(
                Behaviors.supervise(EventPoolActor.create(device, s.maxEvents(), s.askTimeout()))
                        .onFailure(SupervisorStrategy.restart()), "event-pool", owners);
        List<ActorRef<KernelCacheProtocol.Command>> shards = new ArrayList<>();
        for (int i = 0; i < s.kernelShards(); i++) {
            shards.add(ctx.spawn(Behaviors.supervise(KernelCacheShard.create(i, device, compile, s.faultInjection()))
                    .onFailure(SupervisorStrategy.restart()), "kernel-shard-" + i, owners));
        }
        List<StreamHandle> streams = new ArrayList<>();
        for (int i = 0; i < s.streams(); i++) {
            ActorRef<StreamProtocol.Command> ref = ctx.spawn(Behaviors.supervise(StreamActor.create(i, device, allocator,
                    s.streamStashCapacity(), s.askTimeout(), faults, s.streamWatchdog()))
                    .onFailure(SupervisorStrategy.restart()), "stream-" + i, streamsDispatcher);
            streams.add(new StreamHandle(i, ref));
        }
        ActorRef<StreamPoolProtocol.Command> pool = ctx.spawn(
                Behaviors.supervise(StreamPoolActor.create(streams)).onFailure(SupervisorStrategy.restart()),
                "stream-pool", owners);
        this.refs = new RuntimeRefs(device.info(), allocator, eventPool, new KernelLibraryShards(shards), pool,
                streams);
        ctx.getLog().info("mps-actors runtime started: {} backend device {} '{}', {} streams, {} kernel shards",
                s.backend(), s.deviceOrdinal(), device.info().name(), s.streams(), s.kernelShards());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(GetRuntime.class, m -> {
                    m.replyTo().tell(refs);
                    return this;
                })
                .onMessage(RuntimeProtocol.GetDevices.class, m -> {
                    m.replyTo().tell(new RuntimeProtocol.Devices(List.of(new RuntimeProtocol.DeviceRefs(
                            settings.deviceOrdinal(), refs, getContext().getSelf()))));
                    return this;
                })
                .onMessage(RuntimeProtocol.GetDeviceStatus.class, m -> {
                    m.replyTo().tell(new RuntimeProtocol.DeviceStatus(List.of(new RuntimeProtocol.DeviceState(
                            settings.deviceOrdinal(), device.info().name(), true, 0, false, null))));
                    return this;
                })
                .onMessage(RuntimeProtocol.InjectDeviceCrash.class, this::onInjectDeviceCrash)
                .onMessage(LoadModel.class, this::onLoadModel)
                .onMessage(RuntimeProtocol.GetFaultCounts.class, m -> {
                    FaultInjector.Counts c = faults.counts();
                    m.replyTo().tell(new RuntimeProtocol.FaultCounts(c.kernelFailures(), c.allocationFailures(),
                            c.hangs(), c.crashes()));
                    return this;
                })
                .onMessage(ModelReady.class, this::onModelReady)
                .onMessage(RuntimeProtocol.UnloadModel.class, this::onUnloadModel)
                .onMessage(ModelTerminated.class, this::onModelTerminated)
                .onSignal(PostStop.class, s -> {
                    // Every child has stopped: nobody can be preparing work in leased memory any more.
                    heldAtStop.forEach(DeviceBuffer::close);
                    heldAtStop.clear();
                    closeDeviceWhenDrained();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onInjectDeviceCrash(RuntimeProtocol.InjectDeviceCrash m) {
        if (m.ordinal() != settings.deviceOrdinal()) {
            LOG.warn("InjectDeviceCrash for device {} ignored: this runtime runs device {}", m.ordinal(),
                    settings.deviceOrdinal());
            return this;
        }
        if (!faults.enabled()) {
            LOG.warn("InjectDeviceCrash ignored: mps-actors.fault-injection.enabled is off");
            return this;
        }
        faults.countCrash();
        throw new IllegalStateException("injected crash of the runtime of device " + settings.deviceOrdinal());
    }

    private Behavior<Command> onLoadModel(LoadModel m) {
        if (m.devices() != null && !m.devices().contains(settings.deviceOrdinal())) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "this runtime runs device " + settings.deviceOrdinal()
                    + " only, not " + m.devices()));
            return this;
        }
        if (models.containsKey(m.name()) || unloading.containsKey(m.name())) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "a model named '" + m.name() + "' is already loaded"));
            return this;
        }
        if (!m.name().matches("[A-Za-z0-9_.-]{1,64}")) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "model names are 1-64 letters, digits, '_', '.' or '-'"));
            return this;
        }
        // Reading (and converting) the weights and uploading them takes long: not on the guardian's thread.
        getContext().pipeToSelf(CompletableFuture.supplyAsync(() -> {
            try {
                HfModelFolder folder = HfModelFolder.load(m.folder());
                return (ModelEngine) BertEngine.upload(device, folder.weights(),
                        TensorStorage.of(settings.model().storage(), settings.gemmMath()));
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, blocking), (engine, failure) -> new ModelReady(m, engine, failure));
        return this;
    }

    private Behavior<Command> onUnloadModel(RuntimeProtocol.UnloadModel m) {
        ActorRef<InferenceProtocol.Command> model = models.get(m.name());
        if (model == null) {
            m.replyTo().tell(new RuntimeProtocol.ModelUnloaded(m.name(), false));
            return this;
        }
        // The name stays taken until the actor has terminated (its child name is reserved until then).
        if (unloading.computeIfAbsent(m.name(), n -> new ArrayList<>()).isEmpty()) {
            getContext().watchWith(model, new ModelTerminated(m.name()));
            getContext().stop(model);
        }
        unloading.get(m.name()).add(m.replyTo());
        return this;
    }

    private Behavior<Command> onModelTerminated(ModelTerminated m) {
        models.remove(m.name());
        List<ActorRef<RuntimeProtocol.ModelUnloaded>> waiting = unloading.remove(m.name());
        if (waiting != null) {
            waiting.forEach(r -> r.tell(new RuntimeProtocol.ModelUnloaded(m.name(), true)));
        }
        return this;
    }

    private Behavior<Command> onModelReady(ModelReady m) {
        LoadModel request = m.request();
        if (m.failure() != null) {
            Throwable cause = m.failure() instanceof java.util.concurrent.CompletionException c && c.getCause() != null
                    ? c.getCause() : m.failure();
            String why = cause instanceof java.io.UncheckedIOException io ? io.getCause().toString() : cause.getMessage();
            request.replyTo().tell(new ModelLoadFailed(request.name(), "cannot load " + request.folder() + ": " + why));
            return this;
        }
        if (models.containsKey(request.name()) || unloading.containsKey(request.name())) { // two loads of one name raced
            m.engine().close();
            request.replyTo().tell(new ModelLoadFailed(request.name(), "a model named '" + request.name()
                    + "' is already loaded"));
            return this;
        }
        ActorRef<InferenceProtocol.Command> model = getContext().spawn(
                Behaviors.supervise(ModelActor.create(request.name(), m.engine(), refs, settings.model(),
                        settings.askTimeout(), faults)).onFailure(SupervisorStrategy.restart()),
                "model-" + request.name(), DispatcherSelector.fromConfig(RuntimeSettings.OWNER_DISPATCHER));
        models.put(request.name(), model);
        request.replyTo().tell(new ModelLoaded(request.name(), model, m.engine().description()));
        return this;
    }

    /**
     * The owners have stopped and released their native objects without waiting; native streams may still
     * be finishing committed work. A daemon thread, not an actor, watches the live-object count drop to
     * zero (bounded by shutdown-timeout) and then closes the device.
     */
    private void closeDeviceWhenDrained() {
        long deadline = System.nanoTime() + settings.shutdownTimeout().toNanos();
        Thread closer = new Thread(() -> {
            LiveObjects live = device.liveObjects();
            while (!live.isEmpty() && System.nanoTime() < deadline) {
                try {
                    Thread.sleep(2);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
                live = device.liveObjects();
            }
            if (live.isEmpty()) {
                device.close();
            } else {
                LOG.warn("device not closed: native objects still alive after {}: {}", settings.shutdownTimeout(),
                        live);
            }
            deviceClosed.complete(live);
        }, "mps-device-closer");
        closer.setDaemon(true);
        closer.start();
    }
}
