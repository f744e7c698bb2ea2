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
 */
public final class NativeLibraryLoader {
    public static final String LIBRARY_PROPERTY = "mps.native.library";
    private static final String LIBRARY_FILE = "libmpsnative.so";

    private NativeLibraryLoader() {}

    /** Loads the library once per class loader; throws UnsatisfiedLinkError naming what is missing. */
    public static void ensureLoaded() {
        Holder.touch();
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

    private static final class Holder {
        static {
            load();
        }

        static void touch() {}
    }

    private static void load() {
        String override = System.getProperty(LIBRARY_PROPERTY);
        if (override != null && !override.isBlank()) {
            System.load(Path.of(override).toAbsolutePath().toString());
            return;
        }
        String platform = platform();
        String directory = "META-INF/native/" + platform + "/";
        ClassLoader loader = NativeLibraryLoader.class.getClassLoader();
        if (loader.getResource(directory + LIBRARY_FILE) == null) {
            throw new UnsatisfiedLinkError("mps-actors has no native library for platform " + platform
                    + ": resource " + directory + LIBRARY_FILE + " is not on the class path. Builds exist for "
                    + "linux-x86_64; build native-mps on this platform (./mvnw -pl native-mps package) or set -D"
                    + LIBRARY_PROPERTY + "=/path/to/" + LIBRARY_FILE);
        }
        try {
            Path dir = Files.createTempDirectory("mps-actors-native-");
            dir.toFile().deleteOnExit();
            List<Path> ordered = new ArrayList<>();
            for (String dependency : dependencies(loader, directory + "dependencies.txt")) {
                ordered.add(extract(loader, dependency, dir, platform));
            }
            ordered.add(extract(loader, directory + LIBRARY_FILE, dir, platform));
            for (Path library : ordered) {
                System.load(library.toString());
            }
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
