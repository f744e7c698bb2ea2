package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Requests round up to a size class: 512 B at least, then four linear steps per power of two. */
class SizeClassesTest {

    @Test
    void everyRequestUpTo512BytesGetsTheSmallestClass() {
        assertEquals(512, SizeClasses.classBytes(1));
        assertEquals(512, SizeClasses.classBytes(100));
        assertEquals(512, SizeClasses.classBytes(512));
    }

    @Test
    void aboveTheMinimumEachPowerOfTwoHasFourLinearSteps() {
        assertEquals(640, SizeClasses.classBytes(513));
        assertEquals(768, SizeClasses.classBytes(641));
        assertEquals(896, SizeClasses.classBytes(800));
        assertEquals(1024, SizeClasses.classBytes(1000));
        assertEquals(1024, SizeClasses.classBytes(1024));
        assertEquals(1280, SizeClasses.classBytes(1025));
        assertEquals(3072, SizeClasses.classBytes(3000));
        assertEquals(1L << 20, SizeClasses.classBytes(1L << 20));
        assertEquals((1L << 20) + (1L << 18), SizeClasses.classBytes((1L << 20) + 1));
        assertEquals(1L << 30, SizeClasses.classBytes((1L << 30) - 1));
    }

    @Test
    void aClassIsTheSmallestClassAtLeastTheRequestAndWastesAtMostAQuarterOfIt() {
        long previous = 0;
        for (long request = 1; request <= 70_000; request++) {
            long r = request;
            long c = SizeClasses.classBytes(r);
            assertTrue(c >= r, () -> "class below request " + r);
            assertTrue(c >= previous, "classes are monotonic");
            if (r > 512) {
                long waste = c - r;
                assertTrue(4 * waste <= r, () -> "waste of " + waste + " bytes above 25% of " + r);
            }
            // A class is its own class: rounding is idempotent, so cached buffers match their requests.
            assertEquals(c, SizeClasses.classBytes(c));
            previous = c;
        }
    }

    @Test
    void classesNearTheTopOfTheLongRangeDoNotOverflow() {
        assertEquals(SizeClasses.MAX_CLASS_BYTES, SizeClasses.classBytes(SizeClasses.MAX_CLASS_BYTES));
        assertEquals(SizeClasses.MAX_CLASS_BYTES, SizeClasses.classBytes(SizeClasses.MAX_CLASS_BYTES - 1));
        assertEquals(1L << 62, SizeClasses.classBytes(1L << 62));
        assertThrows(IllegalArgumentException.class, () -> SizeClasses.classBytes(SizeClasses.MAX_CLASS_BYTES + 1));
        assertThrows(IllegalArgumentException.class, () -> SizeClasses.classBytes(Long.MAX_VALUE));
    }

    @Test
    void aRequestMustBePositive() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> SizeClasses.classBytes(0));
        assertTrue(zero.getMessage().contains("0 bytes"), zero.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SizeClasses.classBytes(-1));
        assertThrows(IllegalArgumentException.class, () -> SizeClasses.classBytes(Long.MIN_VALUE));
    }
}
