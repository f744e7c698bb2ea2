package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceInfo;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a runtime guardian: a DeviceRuntime (one device and its owners) or a HostRuntime (one
 * DeviceRuntime per device of the host, each model replicated over its devices behind one router). Both answer
 * every command here; a DeviceRuntime reports itself as the only device.
 */
public final class RuntimeProtocol {
    private RuntimeProtocol() {}

    public sealed interface Command permits GetRuntime, GetDevices, LoadModel, UnloadModel, GetFaultCounts,
            InjectDeviceCrash, GetDeviceStatus, Internal {}

    /** Messages private to the guardian's implementation. */
    public non-sealed interface Internal extends Command {}

    /** The owners of the first device that is up (of the only device, for a DeviceRuntime). */
    public record GetRuntime(ActorRef<RuntimeRefs> replyTo) implements Command {}

    /** The owners of every device that is up, in ordinal order. */
    public record GetDevices(ActorRef<Devices> replyTo) implements Command {}

    /** @param devices one entry per device that is up, in ordinal order */
    public record Devices(List<DeviceRefs> devices) {
        public Devices {
            devices = List.copyOf(devices);
        }
    }

    /**
     * @param ordinal the device's ordinal in its backend
     * @param runtime the DeviceRuntime guardian of this device (its current incarnation)
     */
    public record DeviceRefs(int ordinal, RuntimeRefs refs, ActorRef<Command> runtime) {}

    /**
     * Fault injection: the runtime of device {@code ordinal} fails as if its guardian had crashed, stopping its
     * owners and its model replicas (their requests are answered); a HostRuntime then starts it again. Ignored with
     * a warning unless {@code mps-actors.fault-injection.enabled} is on.
     */
    public record InjectDeviceCrash(int ordinal) implements Command {}

    /** Whether each device of the runtime is up and how often it was started again. */
    public record GetDeviceStatus(ActorRef<DeviceStatus> replyTo) implements Command {}

    public record DeviceStatus(List<DeviceState> devices) {
        public DeviceStatus {
            devices = List.copyOf(devices);
        }
    }

    /**
     * @param up        its runtime is running (false while it restarts or after it gave up)
     * @param restarts  how often its runtime was started again after it stopped
     * @param gaveUp    restarts failed {@code device-restart.max-restarts} times in a row: it stays down
     * @param lastFailure why it last stopped (null if it never did)
     */
    public record DeviceState(int ordinal, String name, boolean up, int restarts, boolean gaveUp, String lastFailure) {}

    /** Faults injected so far by the runtime's owners (all zero unless mps-actors.fault-injection is on). */
    public record GetFaultCounts(ActorRef<FaultCounts> replyTo) implements Command {}

    public record FaultCounts(long kernelFailures, long allocationFailures, long hangs, long crashes) {
        public long total() {
            return kernelFailures + allocationFailures + hangs + crashes;
        }
    }

    /**
     * Loads a Hugging Face model folder (config.json + model.safetensors or its sharded index) and starts
     * a model actor for it on each device of {@code devices}; {@code name} must be unique on the runtime. The
     * reply's model is one ref that routes each request to the least-loaded replica.
     *
     * @param devices device ordinals to replicate the model on; null: every device of the runtime
     */
    public record LoadModel(String name, java.nio.file.Path folder, List<Integer> devices,
                            ActorRef<ModelLoadReply> replyTo) implements Command {
        public LoadModel {
            devices = devices == null ? null : List.copyOf(devices);
        }

        /** On every device of the runtime. */
        public LoadModel(String name, java.nio.file.Path folder, ActorRef<ModelLoadReply> replyTo) {
            this(name, folder, null, replyTo);
        }
    }

    public sealed interface ModelLoadReply permits ModelLoaded, ModelLoadFailed {}

    public record ModelLoaded(String name, ActorRef<InferenceProtocol.Command> model, String description)
            implements ModelLoadReply {}

    /** @param reason names the file and the problem (malformed header, missing tensor, unsupported config, ...) */
    public record ModelLoadFailed(String name, String reason) implements ModelLoadReply {}

    /**
     * Stops the model actor loaded as {@code name} and frees its device weights; the name may be loaded
     * again afterwards. Requests the model still held are answered with a failure saying it stopped (drain
     * them first to answer them all with results). Answered once the actor has stopped, with
     * {@code found} false when no model of that name was loaded.
     */
    public record UnloadModel(String name, ActorRef<ModelUnloaded> replyTo) implements Command {}

    public record ModelUnloaded(String name, boolean found) {}

    /** Everything a client needs to talk to the owners of one device. */
    public record RuntimeRefs(DeviceInfo device, ActorRef<AllocatorProtocol.Command> allocator,
                              ActorRef<EventPoolProtocol.Command> eventPool, KernelLibraryShards kernels,
                              ActorRef<StreamPoolProtocol.Command> streamPool, List<StreamHandle> streams) {
        public RuntimeRefs {
            streams = List.copyOf(streams);
        }
    }
}
