package dev.mpsactors.nativemps;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Extracts the native library that travels inside the jar ({@code META-INF/native/<platform>/}) together
 * with the shared libraries it links against (listed in {@code dependencies.txt} beside it, found on the
 * class path, e.g. OpenBLAS from org.bytedeco:openblas) into one private temporary directory, and loads
 * them in dependency order. {@code -Dmps.native.library=/path/libmpsnative.so} loads a library built
 * elsewhere instead (its dependencies must then resolve through its own RUNPATH).
 *
 * <p>Each backend is its own library: {@code libmpsnative.so} (cpu) and {@code libmpsnative_cuda.so} (cuda,
 * in the jar only when native-mps was built where the CUDA toolkit has cuBLAS and NVRTC). Both define the
 * same JNI entry points, so a JVM loads one: the backend of the first device opened ({@link
 * #ensureLoaded(String)}), or {@code -Dmps.native.backend} (default cpu) when a class needs the library
 * before any device is opened.
 */
public final class NativeLibraryLoader {
    public static final String LIBRARY_PROPERTY = "mps.native.library";
    public static final String BACKEND_PROPERTY = "mps.native.backend";
    private static final String CPU_LIBRARY_FILE = "libmpsnative.so";
    private static final String CUDA_LIBRARY_FILE = "libmpsnative_cuda.so";
    private static final String METAL_LIBRARY_FILE = "libmpsnative_metal.dylib";

    private static String loaded;

    private NativeLibraryLoader() {}

    /** Loads a library once per class loader (see the class comment for which); throws UnsatisfiedLinkError
     * naming what is missing. */
    public static synchronized void ensureLoaded() {
        if (loaded == null) {
            loaded = load(System.getProperty(BACKEND_PROPERTY, "cpu"));
        }
    }

    /** Loads the library of {@code backend} unless one is already loaded (a device of another backend then
     * fails to open with the loaded library's message). */
    public static synchronized void ensureLoaded(String backend) {
        if (loaded == null) {
            loaded = load(backend);
        }
    }

    /** The file name (or override path) of the loaded library, null before the first load. */
    public static synchronized String loadedLibrary() {
        return loaded;
    }

    /** The {@code os-arch} directory name this JVM looks for, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String osName = os.startsWith("linux") ? "linux" : os.startsWith("mac") ? "darwin" : os.replace(' ', '_');
        String archName = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return osName + "-" + archName;
    }

    private static String load(String backend) {
        String override = System.getProperty(LIBRARY_PROPERTY);
        if (override != null && !override.isBlank()) {
            String path = Path.of(override).toAbsolutePath().toString();
            System.load(path);
            return path;
        }
        boolean cuda = "cuda".equalsIgnoreCase(backend);
        boolean metal = "metal".equalsIgnoreCase(backend);
        String file = cuda ? CUDA_LIBRARY_FILE : metal ? METAL_LIBRARY_FILE : CPU_LIBRARY_FILE;
        String platform = platform();
        String directory = "META-INF/native/" + platform + "/";
        ClassLoader loader = NativeLibraryLoader.class.getClassLoader();
        if (cuda && loader.getResource(directory + file) == null) {
            throw new UnsatisfiedLinkError("the cuda backend is not in this build of mps-actors: native-mps was built "
                    + "where the CUDA toolkit lacks cuBLAS or NVRTC (CMake printed 'cuda backend SKIPPED'), so "
                    + directory + file + " is not on the class path. Build native-mps on a machine with the full "
                    + "toolkit, or set -D" + LIBRARY_PROPERTY + "=/path/to/" + file
                    + " (bench/device/cuda-native.sh builds one)");
        }
        if (metal && loader.getResource(directory + file) == null) {
            throw new UnsatisfiedLinkError("the metal backend is not in this build of mps-actors: it is built on "
                    + "macOS (Apple silicon) only, into META-INF/native/darwin-aarch64/" + file + ", and this jar has no "
                    + directory + file + ". Build native-mps on a Mac (docs/metal.md) or set -D" + LIBRARY_PROPERTY
                    + "=/path/to/" + file);
        }
        if (loader.getResource(directory + file) == null) {
            throw new UnsatisfiedLinkError("mps-actors has no native library for platform " + platform
                    + ": resource " + directory + file + " is not on the class path. Builds exist for "
                    + "linux-x86_64; build native-mps on this platform (./mvnw -pl native-mps package) or set -D"
                    + LIBRARY_PROPERTY + "=/path/to/" + file);
        }
        try {
            Path dir = Files.createTempDirectory("mps-actors-native-");
            dir.toFile().deleteOnExit();
            List<Path> ordered = new ArrayList<>();
            // OpenBLAS for cpu; the cuda library finds the CUDA toolkit's libraries through its RUNPATH, and the
            // metal one links system frameworks only.
            if (!cuda && !metal) {
                for (String dependency : dependencies(loader, directory + "dependencies.txt")) {
                    ordered.add(extract(loader, dependency, dir, platform));
                }
            }
            ordered.add(extract(loader, directory + file, dir, platform));
            for (Path library : ordered) {
                System.load(library.toString());
            }
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("could not extract the mps-actors native library for " + platform, e);
        }
    }

    private static List<String> dependencies(ClassLoader loader, String listing) throws IOException {
        List<String> result = new ArrayList<>();
        try (InputStream in = loader.getResourceAsStream(listing)) {
            if (in == null) {
                return result;
            }
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String entry = line.strip();
                if (!entry.isEmpty() && !entry.startsWith("#")) {
                    result.add(entry);
                }
            }
        }
        return result;
    }

    private static Path extract(ClassLoader loader, String resource, Path dir, String platform) throws IOException {
        try (InputStream in = loader.getResourceAsStream(resource)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("mps-actors native library for " + platform + " needs " + resource
                        + ", which is not on the class path (for OpenBLAS add org.bytedeco:openblas with classifier "
                        + platform + ")");
            }
            Path target = dir.resolve(resource.substring(resource.lastIndexOf('/') + 1));
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            target.toFile().deleteOnExit();
            return target;
        }
    }
}
