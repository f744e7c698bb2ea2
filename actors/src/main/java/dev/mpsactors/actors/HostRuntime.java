package dev.mpsactors.actors;

import dev.mpsactors.nativemps.LiveObjects;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.ReplicaProtocol;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.Command;
import dev.mpsactors.protocol.RuntimeProtocol.LoadModel;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoadFailed;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoadReply;
import dev.mpsactors.protocol.RuntimeProtocol.ModelLoaded;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.runtime.RuntimeSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.IntFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ChildFailed;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The guardian of every device of the host the runtime uses ({@code mps-actors.devices}): one
 * {@link DeviceRuntime} per device, each with its own five owners, and one {@link ModelRouter} per model that
 * routes requests to the model's replica on each device it is assigned to. A device whose runtime stops (its
 * guardian crashed, or fault injection stopped it) is started again with a doubling backoff, bounded by
 * {@code device-restart.max-restarts}, and its models are loaded there again; meanwhile the routers leave it
 * out. It answers the same {@link RuntimeProtocol} as a DeviceRuntime, so a caller (the facade, a cluster
 * node's model entities) does not change with the number of devices.
 *
 * <p>Start-up waits for every device: commands that arrive before all are up are held and answered then; a
 * device that fails to open at start-up fails the whole start with its reason.
 */
public final class HostRuntime extends AbstractBehavior<Command> {
    private final RuntimeSettings settings;
    private final CompletableFuture<LiveObjects> closed;
    private final TimerScheduler<Command> timers;
    private final TreeMap<Integer, Slot> slots = new TreeMap<>();
    private final Map<String, ModelEntry> models = new HashMap<>();
    /** Models being unloaded, by name: the name stays taken until every replica has stopped. */
    private final Map<String, Unload> unloading = new HashMap<>();
    /** Commands held until every device came up the first time. */
    private final List<Command> waiting = new ArrayList<>();
    private boolean starting = true;

    /** One device: its current runtime incarnation and what it went through. */
    private static final class Slot {
        final int ordinal;
        final FaultInjector faults;
        final List<CompletableFuture<LiveObjects>> incarnationsClosed = new ArrayList<>();
        ActorRef<Command> runtime;
        RuntimeRefs refs;
        int incarnation;
        boolean up;
        int failuresInARow;
        int restarts;
        boolean gaveUp;
        String lastFailure;

        Slot(int ordinal, FaultInjector faults) {
            this.ordinal = ordinal;
            this.faults = faults;
        }
    }

    private record ModelEntry(String name, java.nio.file.Path folder, List<Integer> devices,
                              ActorRef<InferenceProtocol.Command> router) {}

    /** A model being loaded on its devices for the first time. */
    private static final class Load {
        final LoadModel request;
        final Map<Integer, ActorRef<InferenceProtocol.Command>> loaded = new LinkedHashMap<>();
        final List<String> failures = new ArrayList<>();
        /** Devices that did not answer in time: they may still finish loading. */
        final List<Integer> unanswered = new ArrayList<>();
        final List<Integer> assigned;
        int remaining;
        String description;

        Load(LoadModel request, List<Integer> assigned, int remaining) {
            this.request = request;
            this.assigned = assigned;
            this.remaining = remaining;
        }
    }

    /**
     * A model being unloaded from its devices: on request (with its router), or the replicas a failed load left
     * (no router; {@code then} answers the load's failure once they are gone).
     */
    private static final class Unload {
        final ActorRef<InferenceProtocol.Command> router;
        final List<ActorRef<RuntimeProtocol.ModelUnloaded>> waiting = new ArrayList<>();
        Runnable then = () -> { };
        int remaining;

        Unload(ActorRef<InferenceProtocol.Command> router) {
            this.router = router;
        }
    }

    private record ReplicaUnloaded(String model) implements RuntimeProtocol.Internal {}

    private record DeviceUp(int ordinal, int incarnation, RuntimeRefs refs) implements RuntimeProtocol.Internal {}

    /** @param cause why, when known (the exception its guardian failed with) */
    private record DeviceStopped(int ordinal, int incarnation, String cause) implements RuntimeProtocol.Internal {}

    private record RestartDevice(int ordinal) implements RuntimeProtocol.Internal {}

    private record ReplicaLoaded(Load load, String model, int ordinal, int incarnation, ModelLoadReply reply,
                                 Throwable failure) implements RuntimeProtocol.Internal {}

    private record FaultCountsGathered(ActorRef<RuntimeProtocol.FaultCounts> replyTo)
            implements RuntimeProtocol.Internal {}

    /**
     * @param closed completed, after the runtime stopped, with what was still alive natively on all devices
     *               together (normally nothing); completed exceptionally if the start failed
     */
    public static Behavior<Command> create(RuntimeSettings settings, CompletableFuture<LiveObjects> closed) {
        return create(settings, closed, ordinal -> new FaultInjector(settings.faults()));
    }

    /** With each device's fault injector made by {@code faults} (a test slowing one device, say). */
    public static Behavior<Command> create(RuntimeSettings settings, CompletableFuture<LiveObjects> closed,
                                           IntFunction<FaultInjector> faults) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            try {
                return new HostRuntime(ctx, timers, settings, closed, faults);
            } catch (RuntimeException e) {
                closed.completeExceptionally(e);
                throw e;
            }
        }));
    }

    /** The device ordinals {@code settings} select on this host (asks the backend how many it has). */
    public static List<Integer> selectDevices(RuntimeSettings settings) {
        int available = NativeDevice.count(settings.deviceOptions(0));
        return settings.devices().resolve(available, settings.backend());
    }

    private HostRuntime(ActorContext<Command> ctx, TimerScheduler<Command> timers, RuntimeSettings settings,
                        CompletableFuture<LiveObjects> closed, IntFunction<FaultInjector> faults) {
        super(ctx);
        this.settings = settings;
        this.closed = closed;
        this.timers = timers;
        for (int ordinal : selectDevices(settings)) {
            slots.put(ordinal, new Slot(ordinal, faults.apply(ordinal)));
        }
        ctx.getLog().info("mps-actors host runtime: {} backend, devices {} (mps-actors.devices = {})",
                settings.backend(), slots.keySet(), settings.devices());
        slots.values().forEach(this::startDevice);
    }

    private void startDevice(Slot slot) {
        slot.incarnation++;
        int incarnation = slot.incarnation;
        CompletableFuture<LiveObjects> deviceClosed = new CompletableFuture<>();
        slot.incarnationsClosed.add(deviceClosed);
        ActorRef<Command> runtime = getContext().spawn(
                DeviceRuntime.create(settings.forDevice(slot.ordinal), deviceClosed, slot.faults),
                "device-" + slot.ordinal + "-" + incarnation);
        slot.runtime = runtime;
        getContext().watch(runtime);
        getContext().ask(RuntimeRefs.class, runtime, settings.askTimeout(), RuntimeProtocol.GetRuntime::new,
                (refs, failure) -> refs != null ? new DeviceUp(slot.ordinal, incarnation, refs)
                        : new DeviceStopped(slot.ordinal, incarnation, "it did not answer: " + failure));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(DeviceUp.class, this::onDeviceUp)
                .onMessage(DeviceStopped.class, this::onDeviceStopped)
                .onMessage(RestartDevice.class, m -> {
                    Slot slot = slots.get(m.ordinal());
                    if (!slot.up && !slot.gaveUp) {
                        startDevice(slot);
                    }
                    return this;
                })
                .onMessage(ReplicaLoaded.class, this::onReplicaLoaded)
                .onMessage(RuntimeProtocol.GetDeviceStatus.class, m -> {
                    List<RuntimeProtocol.DeviceState> states = new ArrayList<>();
                    for (Slot s : slots.values()) {
                        states.add(new RuntimeProtocol.DeviceState(s.ordinal, s.refs == null ? "" : s.refs.device().name(),
                                s.up, s.restarts, s.gaveUp, s.lastFailure));
                    }
                    m.replyTo().tell(new RuntimeProtocol.DeviceStatus(states));
                    return this;
                })
                .onMessage(RuntimeProtocol.GetFaultCounts.class, m -> {
                    long kernel = 0, allocation = 0, hangs = 0, crashes = 0;
                    for (Slot s : slots.values()) {
                        FaultInjector.Counts c = s.faults.counts();
                        kernel += c.kernelFailures();
                        allocation += c.allocationFailures();
                        hangs += c.hangs();
                        crashes += c.crashes();
                    }
                    m.replyTo().tell(new RuntimeProtocol.FaultCounts(kernel, allocation, hangs, crashes));
                    return this;
                })
                .onMessage(RuntimeProtocol.InjectDeviceCrash.class, m -> {
                    Slot slot = slots.get(m.ordinal());
                    if (slot == null || !slot.up) {
                        getContext().getLog().warn("InjectDeviceCrash({}) ignored: no such device is up", m.ordinal());
                    } else {
                        slot.runtime.tell(m);
                    }
                    return this;
                })
                .onMessage(RuntimeProtocol.GetRuntime.class, m -> held(m, () -> {
                    Slot first = firstUp();
                    if (first != null) {
                        m.replyTo().tell(first.refs);
                    }
                }))
                .onMessage(RuntimeProtocol.GetDevices.class, m -> held(m, () -> {
                    List<RuntimeProtocol.DeviceRefs> up = new ArrayList<>();
                    for (Slot s : slots.values()) {
                        if (s.up) {
                            up.add(new RuntimeProtocol.DeviceRefs(s.ordinal, s.refs, s.runtime));
                        }
                    }
                    m.replyTo().tell(new RuntimeProtocol.Devices(up));
                }))
                .onMessage(LoadModel.class, m -> held(m, () -> onLoadModel(m)))
                .onMessage(RuntimeProtocol.UnloadModel.class, this::onUnloadModel)
                .onMessage(ReplicaUnloaded.class, this::onReplicaUnloaded)
                .onSignal(Terminated.class, t -> {
                    for (Slot s : slots.values()) {
                        if (t.getRef().equals(s.runtime)) {
                            String cause = t instanceof ChildFailed f ? f.getCause().getMessage() : null;
                            return onDeviceStopped(new DeviceStopped(s.ordinal, s.incarnation, cause));
                        }
                    }
                    return this;
                })
                .onSignal(PostStop.class, s -> {
                    onStopped();
                    return this;
                })
                .build();
    }

    /** Runs {@code action} now, or once every device came up the first time. */
    private Behavior<Command> held(Command m, Runnable action) {
        if (starting) {
            waiting.add(m);
        } else {
            action.run();
        }
        return this;
    }

    private Slot firstUp() {
        for (Slot s : slots.values()) {
            if (s.up) {
                return s;
            }
        }
        return null;
    }

    private Behavior<Command> onDeviceUp(DeviceUp m) {
        Slot slot = slots.get(m.ordinal());
        if (m.incarnation() != slot.incarnation || slot.up) {
            return this;
        }
        slot.up = true;
        slot.refs = m.refs();
        slot.failuresInARow = 0;
        if (starting) {
            if (slots.values().stream().allMatch(s -> s.up)) {
                starting = false;
                List<Command> replay = new ArrayList<>(waiting);
                waiting.clear();
                replay.forEach(getContext().getSelf()::tell);
            }
            return this;
        }
        getContext().getLog().info("device {} is up again (restart {}); loading its models", slot.ordinal,
                slot.restarts);
        for (ModelEntry model : models.values()) {
            // A model whose first load still runs (no router yet) is given to this device when that load ends.
            if (model.router() != null && model.devices().contains(slot.ordinal)) {
                loadReplica(null, model.name(), model.folder(), slot);
            }
        }
        return this;
    }

    private Behavior<Command> onDeviceStopped(DeviceStopped m) {
        Slot slot = slots.get(m.ordinal());
        if (m.incarnation() != slot.incarnation || slot.runtime == null) {
            return this; // an earlier incarnation, or this one's stop already handled
        }
        getContext().unwatch(slot.runtime);
        getContext().stop(slot.runtime); // a runtime that did not answer GetRuntime in time
        slot.runtime = null;
        boolean wasUp = slot.up;
        slot.up = false;
        slot.lastFailure = m.cause() != null ? m.cause() : failureOf(slot);
        if (starting) {
            String reason = "device " + slot.ordinal + " did not start: " + slot.lastFailure;
            closed.completeExceptionally(new IllegalStateException(reason));
            throw new IllegalStateException(reason);
        }
        if (wasUp) {
            for (ModelEntry model : models.values()) {
                if (model.devices().contains(slot.ordinal)) {
                    model.router().tell(new ReplicaProtocol.ReplicaDown(slot.ordinal));
                }
            }
        }
        slot.failuresInARow++;
        if (slot.failuresInARow > settings.deviceRestart().maxRestarts()) {
            slot.gaveUp = true;
            getContext().getLog().error("device {} stopped ({}) and was not started again: {} restarts in a row did "
                    + "not bring it up (mps-actors.device-restart.max-restarts)", slot.ordinal, slot.lastFailure,
                    settings.deviceRestart().maxRestarts());
            return this;
        }
        Duration backoff = settings.deviceRestart().backoff(slot.failuresInARow);
        slot.restarts++;
        getContext().getLog().warn("device {} stopped ({}); starting it again in {}", slot.ordinal, slot.lastFailure,
                backoff);
        timers.startSingleTimer("restart-" + slot.ordinal, new RestartDevice(slot.ordinal), backoff);
        return this;
    }

    private static String failureOf(Slot slot) {
        CompletableFuture<LiveObjects> last = slot.incarnationsClosed.get(slot.incarnationsClosed.size() - 1);
        if (last.isCompletedExceptionally()) {
            try {
                last.join();
            } catch (CompletionException e) {
                Throwable cause = e.getCause() == null ? e : e.getCause();
                return cause.getMessage();
            }
        }
        return "its runtime stopped";
    }

    /**
     * Unloads the model from every device it runs on (each device stops its replica and frees its weights; what
     * a replica still held is answered through the router), then stops the router, then answers.
     */
    private Behavior<Command> onUnloadModel(RuntimeProtocol.UnloadModel m) {
        Unload running = unloading.get(m.name());
        if (running != null) {
            running.waiting.add(m.replyTo());
            return this;
        }
        ModelEntry entry = models.get(m.name());
        if (entry == null || entry.router() == null) { // never loaded, or its first load has not finished
            m.replyTo().tell(new RuntimeProtocol.ModelUnloaded(m.name(), false));
            return this;
        }
        models.remove(m.name());
        Unload unload = new Unload(entry.router());
        unload.waiting.add(m.replyTo());
        unloadReplicas(m.name(), entry.devices(), unload);
        return this;
    }

    /** Asks each of {@code ordinals} that is up to unload {@code name}; {@code unload} finishes when all answered. */
    private void unloadReplicas(String name, java.util.Collection<Integer> ordinals, Unload unload) {
        unloading.put(name, unload);
        for (int ordinal : ordinals) {
            Slot slot = slots.get(ordinal);
            if (slot != null && slot.up) {
                unload.remaining++;
                getContext().ask(RuntimeProtocol.ModelUnloaded.class, slot.runtime, settings.askTimeout(),
                        replyTo -> new RuntimeProtocol.UnloadModel(name, replyTo),
                        (reply, failure) -> new ReplicaUnloaded(name));
            }
        }
        if (unload.remaining == 0) {
            finishUnload(name, unload);
        }
    }

    private Behavior<Command> onReplicaUnloaded(ReplicaUnloaded m) {
        Unload unload = unloading.get(m.model());
        if (unload != null && --unload.remaining <= 0) {
            finishUnload(m.model(), unload);
        }
        return this;
    }

    private void finishUnload(String name, Unload unload) {
        if (unload.router != null) {
            getContext().stop(unload.router); // answers whatever it still routes with a retryable failure
        }
        unloading.remove(name);
        unload.waiting.forEach(r -> r.tell(new RuntimeProtocol.ModelUnloaded(name, true)));
        unload.then.run();
    }

    private void onLoadModel(LoadModel m) {
        if (unloading.containsKey(m.name())) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "the model named '" + m.name() + "' is being unloaded"));
            return;
        }
        if (models.containsKey(m.name())) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "a model named '" + m.name() + "' is already loaded"));
            return;
        }
        if (!m.name().matches("[A-Za-z0-9_.-]{1,64}")) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "model names are 1-64 letters, digits, '_', '.' or '-'"));
            return;
        }
        List<Integer> assigned = m.devices() == null ? List.copyOf(slots.keySet()) : m.devices();
        if (assigned.isEmpty() || !slots.keySet().containsAll(assigned)
                || assigned.stream().distinct().count() != assigned.size()) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "devices " + assigned + " must be distinct devices of "
                    + "this runtime: " + slots.keySet()));
            return;
        }
        List<Slot> targets = assigned.stream().map(slots::get).filter(s -> s.up).toList();
        if (targets.isEmpty()) {
            m.replyTo().tell(new ModelLoadFailed(m.name(), "none of devices " + assigned + " is up"));
            return;
        }
        Load load = new Load(m, assigned, targets.size());
        // Reserved at once so that a second load of the name is refused while this one runs.
        models.put(m.name(), new ModelEntry(m.name(), m.folder(), assigned, null));
        for (Slot slot : targets) {
            loadReplica(load, m.name(), m.folder(), slot);
        }
    }

    /** Loads {@code model} on {@code slot}'s current runtime; {@code load} is null for a reload after a restart. */
    private void loadReplica(Load load, String model, java.nio.file.Path folder, Slot slot) {
        int incarnation = slot.incarnation;
        getContext().ask(ModelLoadReply.class, slot.runtime, settings.askTimeout(),
                replyTo -> new LoadModel(model, folder, List.of(slot.ordinal), replyTo),
                (reply, failure) -> new ReplicaLoaded(load, model, slot.ordinal, incarnation, reply, failure));
    }

    private Behavior<Command> onReplicaLoaded(ReplicaLoaded m) {
        Slot slot = slots.get(m.ordinal());
        String failure = m.reply() instanceof ModelLoadFailed f ? f.reason()
                : m.reply() == null ? "device " + m.ordinal() + " did not answer: " + m.failure() : null;
        Load load = m.load();
        if (load == null) { // a restarted device took its model back
            ModelEntry model = models.get(m.model());
            if (failure != null) {
                getContext().getLog().error("model {} not loaded again on device {}: {}", m.model(), m.ordinal(), failure);
            } else if (model != null && model.router() != null && slot.incarnation == m.incarnation() && slot.up) {
                model.router().tell(new ReplicaProtocol.ReplicaUp(m.ordinal(), ((ModelLoaded) m.reply()).model()));
            }
            return this;
        }
        if (failure != null) {
            load.failures.add("device " + m.ordinal() + ": " + failure);
            if (m.reply() == null) {
                load.unanswered.add(m.ordinal());
            }
        } else {
            ModelLoaded loaded = (ModelLoaded) m.reply();
            load.loaded.put(m.ordinal(), loaded.model());
            load.description = loaded.description();
        }
        if (--load.remaining > 0) {
            return this;
        }
        LoadModel request = load.request;
        if (!load.failures.isEmpty()) {
            // All or nothing: the replicas that did load (and any device that did not answer in time, which may
            // yet finish) are unloaded again before the failure is answered, so no device keeps weights nobody
            // can reach and the name is free again when the caller hears of the failure.
            models.remove(request.name());
            Unload undo = new Unload(null);
            String reason = String.join("; ", load.failures);
            undo.then = () -> request.replyTo().tell(new ModelLoadFailed(request.name(), reason));
            List<Integer> left = new ArrayList<>(load.loaded.keySet());
            left.addAll(load.unanswered);
            unloadReplicas(request.name(), left, undo);
            return this;
        }
        ActorRef<InferenceProtocol.Command> router = getContext().spawn(
                ModelRouter.create(request.name(), load.loaded, load.assigned, settings.askTimeout()),
                "model-" + request.name(), DispatcherSelector.fromConfig(RuntimeSettings.OWNER_DISPATCHER));
        models.put(request.name(), new ModelEntry(request.name(), request.folder(), load.assigned, router));
        // A device that restarted while the load ran has loaded nothing yet: give it the model now.
        for (int ordinal : load.assigned) {
            Slot s = slots.get(ordinal);
            if (s.up && !load.loaded.containsKey(ordinal)) {
                loadReplica(null, request.name(), request.folder(), s);
            }
        }
        request.replyTo().tell(new ModelLoaded(request.name(), router, load.description + " on "
                + (load.loaded.size() == 1 ? "device " + load.loaded.keySet().iterator().next()
                : load.loaded.size() + " devices " + load.loaded.keySet())));
        return this;
    }

    /** Every child has stopped: the host is closed once each incarnation's device is. */
    private void onStopped() {
        List<CompletableFuture<LiveObjects>> all = new ArrayList<>();
        for (Slot s : slots.values()) {
            for (CompletableFuture<LiveObjects> f : s.incarnationsClosed) {
                // A runtime that failed to open its device left nothing alive.
                all.add(f.exceptionally(e -> LiveObjects.NONE));
            }
        }
        CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).whenComplete((v, e) -> {
            LiveObjects sum = LiveObjects.NONE;
            for (CompletableFuture<LiveObjects> f : all) {
                sum = sum.plus(f.join());
            }
            closed.complete(sum);
        });
    }
}
