package dev.mpsactors.nativemps;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * A wrapper dropped without close (a retained reference whose reply went to dead letters, say) is released
 * once the garbage collector finds it unreachable, so it cannot keep its device from closing.
 */
class UnreachableWrapperTest {

    @Test
    void unreachableUnclosedWrappersAreReleasedSoTheDeviceCanClose() throws Exception {
        try (NativeDevice device = NativeDevice.open(DeviceOptions.cpu())) {
            dropWrappers(device);
            long deadline = System.nanoTime() + 30_000_000_000L;
            LiveObjects live = device.liveObjects();
            while (!live.isEmpty() && System.nanoTime() < deadline) {
                System.gc();
                Thread.sleep(20);
                live = device.liveObjects();
            }
            assertEquals(0, live.buffers(), "buffers released: " + live);
            assertEquals(0, live.events(), "events released: " + live);
            assertEquals(0, live.libraries(), "libraries released: " + live);
            assertEquals(0, live.pipelines(), "pipelines released: " + live);
        } // close() would throw BUSY if anything were still alive
    }

    /** Creates native objects whose only Java references die with this frame. */
    private static void dropWrappers(NativeDevice device) {
        for (int i = 0; i < 16; i++) {
            device.allocate(4096);
            device.createEvent().share();
        }
        KernelLibrary library = device.compileLibrary("add", "");
        library.pipeline("add");
    }
}
