package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceInfo;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/** Messages of the DeviceRuntime guardian, which opens the device and starts every owner. */
public final class RuntimeProtocol {
    private RuntimeProtocol() {}

    public sealed interface Command permits GetRuntime, Internal {}

    /** Messages private to the guardian's implementation. */
    public non-sealed interface Internal extends Command {}

    public record GetRuntime(ActorRef<RuntimeRefs> replyTo) implements Command {}

    /** Everything a client needs to talk to the owners of one device. */
    public record RuntimeRefs(DeviceInfo device, ActorRef<AllocatorProtocol.Command> allocator,
                              ActorRef<EventPoolProtocol.Command> eventPool, KernelLibraryShards kernels,
                              ActorRef<StreamPoolProtocol.Command> streamPool, List<StreamHandle> streams) {
        public RuntimeRefs {
            streams = List.copyOf(streams);
        }
    }
}
