package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Only the command line's entry point exits the JVM: no compiled class of any module of the build, other than
 * {@link Cli}, refers to {@code System.exit}, {@code Runtime.exit} or {@code Runtime.halt} (a call or a method
 * reference both need the method in the class's constant pool, which is what is read here).
 */
class NoSystemExitTest {
    private static final String ENTRY_POINT = "dev/mpsactors/bench/Cli.class";

    @Test
    void onlyTheEntryPointExitsTheJvm() throws IOException {
        Path root = Path.of("").toAbsolutePath().getParent();
        List<Path> classDirs = new ArrayList<>();
        try (Stream<Path> modules = Files.list(root)) {
            modules.map(m -> m.resolve("target/classes")).filter(Files::isDirectory).forEach(classDirs::add);
        }
        Set<String> scannedModules = new TreeSet<>();
        Set<String> exiting = new TreeSet<>();
        int classes = 0;
        for (Path dir : classDirs) {
            scannedModules.add(root.relativize(dir).getName(0).toString());
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path f : files.filter(p -> p.toString().endsWith(".class")).toList()) {
                    classes++;
                    if (exits(f)) {
                        exiting.add(dir.relativize(f).toString());
                    }
                }
            }
        }
        assertTrue(scannedModules.containsAll(Set.of("native-mps", "actors", "cluster-config", "bench")),
                "the modules' classes were found: " + scannedModules);
        assertTrue(exiting.contains(ENTRY_POINT), "the scan finds the entry point's own exit: " + exiting);
        exiting.remove(ENTRY_POINT);
        assertEquals(Set.of(), exiting, "classes other than the entry point that exit the JVM (" + classes
                + " classes of " + scannedModules + " read)");
    }

    /** Whether the class's constant pool holds a method reference to System.exit, Runtime.exit or Runtime.halt. */
    static boolean exits(Path classFile) throws IOException {
        try (InputStream raw = Files.newInputStream(classFile); DataInputStream in = new DataInputStream(raw)) {
            if (in.readInt() != 0xCAFEBABE) {
                throw new IOException(classFile + " is not a class file");
            }
            in.readUnsignedShort();
            in.readUnsignedShort();
            int count = in.readUnsignedShort();
            String[] utf8 = new String[count];
            int[] classNames = new int[count];
            int[][] methodRefs = new int[count][];
            int[][] nameAndTypes = new int[count][];
            for (int i = 1; i < count; i++) {
                int tag = in.readUnsignedByte();
                switch (tag) {
                    case 1 -> utf8[i] = in.readUTF();
                    case 3, 4 -> in.readInt();
                    case 5, 6 -> {
                        in.readLong();
                        i++; // eight-byte constants take two entries
                    }
                    case 7 -> classNames[i] = in.readUnsignedShort();
                    case 8, 16, 19, 20 -> in.readUnsignedShort();
                    case 9, 17, 18 -> in.readInt();
                    case 10, 11 -> methodRefs[i] = new int[] {in.readUnsignedShort(), in.readUnsignedShort()};
                    case 12 -> nameAndTypes[i] = new int[] {in.readUnsignedShort(), in.readUnsignedShort()};
                    case 15 -> {
                        in.readUnsignedByte();
                        in.readUnsignedShort();
                    }
                    default -> throw new IOException(classFile + ": constant pool tag " + tag + " at " + i);
                }
            }
            for (int[] ref : methodRefs) {
                if (ref == null) {
                    continue;
                }
                String owner = utf8[classNames[ref[0]]];
                String name = utf8[nameAndTypes[ref[1]][0]];
                if (("java/lang/System".equals(owner) && "exit".equals(name))
                        || ("java/lang/Runtime".equals(owner) && ("exit".equals(name) || "halt".equals(name)))) {
                    return true;
                }
            }
            return false;
        }
    }
}
