package dev.mpsactors.runtime;

import dev.mpsactors.nativemps.DeviceInfo;
import dev.mpsactors.protocol.RuntimeProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * One device of the runtime and its owners, grouped by concern. A snapshot: if the device's runtime is started
 * again after a crash, {@link MpsRuntime#refreshDevices()} gives views of the new owners.
 */
public final class RuntimeDevice {
    private final int ordinal;
    private final RuntimeRefs refs;
    private final ActorRef<RuntimeProtocol.Command> runtime;
    private final DeviceMemory memory;
    private final DeviceStreams streams;
    private final DeviceEvents events;
    private final DeviceKernels kernels;

    RuntimeDevice(RuntimeProtocol.DeviceRefs device, Asker asker) {
        this.ordinal = device.ordinal();
        this.refs = device.refs();
        this.runtime = device.runtime();
        this.memory = new DeviceMemory(refs, asker);
        this.streams = new DeviceStreams(refs, asker);
        this.events = new DeviceEvents(refs, asker);
        this.kernels = new DeviceKernels(refs, asker);
    }

    /** The device's ordinal in its backend. */
    public int ordinal() {
        return ordinal;
    }

    /** What the backend reports about the device (name, memory, compute units). */
    public DeviceInfo info() {
        return refs.device();
    }

    /** The owners' refs, for talking to them from actors. */
    public RuntimeRefs refs() {
        return refs;
    }

    /** The device's DeviceRuntime guardian. */
    public ActorRef<RuntimeProtocol.Command> runtime() {
        return runtime;
    }

    /** Device memory: the allocator and the streams' arenas. */
    public DeviceMemory memory() {
        return memory;
    }

    /** Streams: the stream owners and the pool that leases them. */
    public DeviceStreams streams() {
        return streams;
    }

    /** Events: the event pool. */
    public DeviceEvents events() {
        return events;
    }

    /** Kernels: the sharded kernel cache. */
    public DeviceKernels kernels() {
        return kernels;
    }
}
