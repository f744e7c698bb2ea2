package dev.mpsactors.nativemps;

/** Native objects alive on a device; a clean shutdown brings every count to zero. */
public record LiveObjects(long buffers, long bufferBytes, long streams, long events, long libraries, long pipelines,
                          long commandBuffers, long programs) {
    public boolean isEmpty() {
        return buffers == 0 && streams == 0 && events == 0 && libraries == 0 && pipelines == 0 && commandBuffers == 0
                && programs == 0;
    }
}
