package dev.mpsactors.nativemps;

/**
 * Properties of an open device.
 *
 * @param memoryBytes    memory the device can address (host RAM for cpu)
 * @param maxBufferBytes the largest single buffer {@link NativeDevice#allocate} accepts
 * @param computeUnits   cores (cpu) or multiprocessors (gpu)
 * @param hostVisible    whether buffers can be read and written directly from the host
 */
public record DeviceInfo(String backend, String name, long memoryBytes, long maxBufferBytes, int computeUnits,
                         boolean hostVisible) {}
