package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceInfo;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/** Messages of the DeviceRuntime guardian, which opens the device and starts every owner. */
public final class RuntimeProtocol {
    private RuntimeProtocol() {}

    public sealed interface Command permits GetRuntime, LoadModel, UnloadModel, GetFaultCounts, Internal {}

    /** Messages private to the guardian's implementation. */
    public non-sealed interface Internal extends Command {}

    public record GetRuntime(ActorRef<RuntimeRefs> replyTo) implements Command {}

    /** Faults injected so far by the runtime's owners (all zero unless mps-actors.fault-injection is on). */
    public record GetFaultCounts(ActorRef<FaultCounts> replyTo) implements Command {}

    public record FaultCounts(long kernelFailures, long allocationFailures, long hangs, long crashes) {
        public long total() {
            return kernelFailures + allocationFailures + hangs + crashes;
        }
    }

    /**
     * Loads a Hugging Face model folder (config.json + model.safetensors or its sharded index) and starts
     * a model actor for it on this runtime's device; {@code name} must be unique on the runtime.
     */
    public record LoadModel(String name, java.nio.file.Path folder, ActorRef<ModelLoadReply> replyTo)
            implements Command {}

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
