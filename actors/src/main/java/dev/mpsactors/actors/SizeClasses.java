package dev.mpsactors.actors;

/**
 * The size classes of device memory. A request is rounded up to its class so that a freed buffer can be
 * reused by any later request of a nearby size; without classes a cache only helps requests of the exact
 * same size, and the pool fragments into buffers nobody asks for again.
 *
 * <p>The classes, in bytes:
 * <ul>
 *   <li>{@value #MIN_CLASS_BYTES} for every request up to that size (the smallest allocation worth the
 *       device's bookkeeping, and the granularity of small activations);</li>
 *   <li>above it, each power of two {@code 2^k} and three linear steps of {@code 2^k / 4} up to the next:
 *       {@code 2^k}, {@code 1.25 × 2^k}, {@code 1.5 × 2^k}, {@code 1.75 × 2^k}, {@code 2^(k+1)}, … So 513 B
 *       becomes 640 B, 1 000 B becomes 1 024 B, 1 025 B becomes 1 280 B.</li>
 * </ul>
 * A class exceeds its request by less than one step, {@code 2^k / 4 ≤ request / 4}: the waste is at most
 * 25% of the request (20% of the class), against up to 100% with plain powers of two, while there are only
 * four classes per doubling to keep cached buffers of.
 *
 * <p>The largest class is {@value #MAX_CLASS_BYTES} bytes ({@code 1.75 × 2^62}); the next one would not fit a
 * {@code long}.
 */
public final class SizeClasses {
    /** The smallest class, in bytes. */
    public static final long MIN_CLASS_BYTES = 512;
    /** The largest class, in bytes: {@code 7 × 2^60}, the last sub-step below {@code 2^63}. */
    public static final long MAX_CLASS_BYTES = 7L << 60;
    /** Linear sub-steps per power of two. */
    static final int STEPS_PER_DOUBLING = 4;

    private SizeClasses() {}

    /**
     * The class of a request of {@code requested} bytes: the smallest class that is at least that large.
     *
     * @throws IllegalArgumentException if {@code requested <= 0} or above {@link #MAX_CLASS_BYTES}
     */
    public static long classBytes(long requested) {
        if (requested <= 0) {
            throw new IllegalArgumentException("a buffer must be > 0 bytes, got " + requested + " bytes");
        }
        if (requested > MAX_CLASS_BYTES) {
            // Rounding up would overflow a long (2^63).
            throw new IllegalArgumentException("a buffer of " + requested + " bytes is beyond the largest size class ("
                    + MAX_CLASS_BYTES + " bytes)");
        }
        if (requested <= MIN_CLASS_BYTES) {
            return MIN_CLASS_BYTES;
        }
        long base = Long.highestOneBit(requested); // >= 512, so the step is >= 128 bytes
        long step = base / STEPS_PER_DOUBLING;
        long remainder = requested % step;
        // Cannot overflow: requested <= 7 × 2^60 is itself a multiple of the largest step (2^60).
        return remainder == 0 ? requested : requested + (step - remainder);
    }
}
