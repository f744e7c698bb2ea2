package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The native library travels inside the native-mps jar and works from a plain {@code java -cp} in a
 * directory that has nothing but the jars: no build tree, no java.library.path.
 */
class PackagedNativeLibraryTest {

    @Test
    void nativeJarCarriesTheSharedLibraryUnderItsPlatformDirectory() throws IOException {
        Path jar = classPathJar("mps-actors-native");
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            assertTrue(zip.getEntry("META-INF/native/linux-x86_64/libmpsnative.so") != null,
                    jar + " lacks META-INF/native/linux-x86_64/libmpsnative.so");
            assertTrue(zip.getEntry("META-INF/native/linux-x86_64/dependencies.txt") != null,
                    jar + " lacks the dependency list");
        }
    }

    @Test
    void selfCheckRunsFromAPlainClassPathOutsideTheBuildTree(@TempDir Path dir) throws Exception {
        Path nativeJar = Files.copy(classPathJar("mps-actors-native"), dir.resolve("mps-actors-native.jar"),
                StandardCopyOption.REPLACE_EXISTING);
        Path blasJar = Files.copy(classPathJar("openblas"), dir.resolve("openblas.jar"),
                StandardCopyOption.REPLACE_EXISTING);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-cp",
                nativeJar.getFileName() + File.pathSeparator + blasJar.getFileName(),
                "dev.mpsactors.nativemps.NativeSelfCheck"));
        Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("self-check did not finish within 120 s");
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        System.out.print(output);
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("native self-check passed"), output);
        assertTrue(output.contains("backend=cpu"), output);
    }

    @Test
    void missingOpenBlasIsReportedByName(@TempDir Path dir) throws Exception {
        Path nativeJar = Files.copy(classPathJar("mps-actors-native"), dir.resolve("mps-actors-native.jar"),
                StandardCopyOption.REPLACE_EXISTING);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(java, "-cp", nativeJar.getFileName().toString(),
                "dev.mpsactors.nativemps.NativeSelfCheck").directory(dir.toFile()).redirectErrorStream(true).start();
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("did not finish within 120 s");
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.exitValue() != 0, output);
        assertTrue(output.contains("libopenblas.so.0") || output.contains("libquadmath.so.0"), output);
        assertTrue(output.contains("org.bytedeco:openblas"), output);
    }

    @Test
    void aBuildWithoutTheCudaBackendSaysSoWhenCudaIsAskedFor(@TempDir Path dir) throws Exception {
        Path nativeJar = Files.copy(classPathJar("mps-actors-native"), dir.resolve("mps-actors-native.jar"),
                StandardCopyOption.REPLACE_EXISTING);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(java, "-cp", nativeJar.getFileName().toString(),
                "dev.mpsactors.nativemps.NativeSelfCheck", "cuda").directory(dir.toFile())
                .redirectErrorStream(true).start();
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("did not finish within 120 s");
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.exitValue() != 0, output);
        // CI's CUDA toolkit has no cuBLAS or NVRTC, so the jar has no libmpsnative_cuda.so: the loader says
        // which library is missing, why, and how to get one.
        assertTrue(output.contains("the cuda backend is not in this build"), output);
        assertTrue(output.contains("libmpsnative_cuda.so") && output.contains("mps.native.library"), output);
    }

    /** The packaged jar of a dependency, as Maven put it on the test class path (run through `verify`). */
    private static Path classPathJar(String artifactPrefix) {
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path path = Path.of(entry);
            String name = path.getFileName().toString();
            if (name.startsWith(artifactPrefix) && name.endsWith(".jar")) {
                return path;
            }
            if (path.toString().contains(artifactPrefix) && Files.isDirectory(path)) {
                fail(artifactPrefix + " is on the class path as a directory (" + path + "), not as its jar: run the"
                        + " tests through `./mvnw verify`, which packages each module before the next one's tests");
            }
        }
        throw new AssertionError(artifactPrefix + " jar is not on the test class path");
    }
}
