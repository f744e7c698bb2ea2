package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Asking for a backend this build has no library for, in a JVM that has loaded no native library yet, is a
 * start failure naming the library — not an UnsatisfiedLinkError that Pekko treats as fatal and answers by
 * stopping the JVM (it did, before NativeDevice turned it into a NativeException).
 */
class UnavailableBackendTest {
    @ParameterizedTest
    @CsvSource({"cuda, libmpsnative_cuda.so", "metal, libmpsnative_metal.dylib"})
    void startingOnAMissingBackendFailsWithItsLibraryNamedAndTheJvmLives(String backend, String library)
            throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                StartWithBackend.class.getName(), backend).redirectErrorStream(true).start();
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("did not finish within 120 s");
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("refused: ") && output.contains(library), output);
        assertTrue(output.contains("jvm alive"), output);
    }
}
