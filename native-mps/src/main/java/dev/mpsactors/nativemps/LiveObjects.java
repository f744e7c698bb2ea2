package dev.mpsactors.nativemps;

/** Native objects alive on a device; a clean shutdown brings every count to zero. */
public record LiveObjects(long buffers, long bufferBytes, long streams, long events, long libraries, long pipelines,
                          long commandBuffers, long programs) {
    public static final LiveObjects NONE = new LiveObjects(0, 0, 0, 0, 0, 0, 0, 0);

    /** The counts of two devices together. */
    public LiveObjects plus(LiveObjects o) {
        return new LiveObjects(buffers + o.buffers, bufferBytes + o.bufferBytes, streams + o.streams,
                events + o.events, libraries + o.libraries, pipelines + o.pipelines,
                commandBuffers + o.commandBuffers, programs + o.programs);
    }

    public boolean isEmpty() {
        return buffers == 0 && streams == 0 && events == 0 && libraries == 0 && pipelines == 0 && commandBuffers == 0
                && programs == 0;
    }
}
