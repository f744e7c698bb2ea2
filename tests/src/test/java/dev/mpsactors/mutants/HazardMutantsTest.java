package dev.mpsactors.mutants;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.mpsactors.nativemps.NativeLibraryLoader;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import net.bytebuddy.agent.ByteBuddyAgent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Proofs that bite: each hazard test is run, in a child JVM, against a runtime with that hazard put back
 * ({@link HazardMutant}), and must FAIL there — the mutant is killed — within a bound. A mutant that hangs
 * its test (the deadlock) counts as killed only through that bound. The same tests pass against the real
 * runtime in the ordinary test run. Each kill is printed:
 * {@code mutant 6 (global LayerNorm mutex): killed by ParallelLayerNormTest — <the test's failure>}.
 */
class HazardMutantsTest {
    /** A child run (JVM start, runtime, test) that has not ended by then has hung. */
    static final long CHILD_LIMIT_SECONDS = 90;

    @ParameterizedTest(name = "mutant {0}")
    @EnumSource(HazardMutant.class)
    void theHazardTestFailsAgainstItsMutant(HazardMutant mutant) throws Exception {
        assumeTrue(NativeLibraryLoader.platform().equals("linux-x86_64"),
                "libmpsnative_mutants.so is built for linux-x86_64 (the cpu backend) only");
        String only = System.getProperty("mps.mutants.only", "");
        assumeTrue(only.isBlank() || List.of(only.split(",")).contains(Integer.toString(mutant.number)),
                "-Dmps.mutants.only=" + only);
        Path library = Path.of(System.getProperty("mps.mutants.library", "")).toAbsolutePath();
        Path logs = Path.of(System.getProperty("mps.mutants.logs", "target/mutants"));
        Files.createDirectories(logs);
        Path log = logs.resolve("mutant-" + mutant.number + ".log");

        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.add("-javaagent:" + Path.of(ByteBuddyAgent.class.getProtectionDomain().getCodeSource().getLocation()
                .toURI()));
        // A mutant may crash the JVM (4): its report goes with the log, and no core dump is written.
        Path crashReport = logs.toAbsolutePath().resolve("hs_err-mutant-" + mutant.number + ".log");
        Files.deleteIfExists(crashReport);
        command.add("-XX:ErrorFile=" + crashReport);
        command.add("-XX:-CreateCoredumpOnCrash");
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        if (mutant.nativeMutant) {
            assertTrue(Files.isRegularFile(library), "the test-only mutant library was not built: " + library);
            command.add("-Dmps.native.library=" + library);
        }
        long limit = CHILD_LIMIT_SECONDS;
        if (mutant.boundSeconds > 0) {
            command.add("-Dmps-actors.test.bound-seconds=" + mutant.boundSeconds);
            limit = 2L * mutant.boundSeconds + 20;
        }
        command.add(MutantMain.class.getName());
        command.add(Integer.toString(mutant.number));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        builder.environment().put("MPS_MUTANT", Integer.toString(mutant.number));

        long started = System.nanoTime();
        Process child = builder.start();
        boolean ended = child.waitFor(limit, TimeUnit.SECONDS);
        if (!ended) {
            // Where it hung, for the log: the child's threads.
            Path threads = logs.resolve("mutant-" + mutant.number + ".threads.txt");
            new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
                    Long.toString(child.pid()), "Thread.print").redirectErrorStream(true)
                    .redirectOutput(threads.toFile()).start().waitFor(20, TimeUnit.SECONDS);
            child.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        List<String> output = Files.readAllLines(log, StandardCharsets.UTF_8);
        String outcome = last(output, "MUTANT-OUTCOME ");
        String reason;
        if (!ended) {
            assertTrue(mutant.boundSeconds > 0, "mutant " + mutant.number + ": the test did not end within " + limit
                    + " s, and only a deadlock mutant may be killed by a hang; log " + log);
            // The test printed its diagnosis before its clean-up hung on the blocked owners.
            String diagnosis = last(output, "HAZARD-FAILURE ");
            reason = (diagnosis != null ? diagnosis.substring("HAZARD-FAILURE ".length()) + "; " : "")
                    + "then hung past its " + mutant.boundSeconds + " s bound and was stopped at " + limit + " s";
        } else {
            int status = child.exitValue();
            if (status == 0) {
                fail("mutant " + mutant.number + " (" + mutant.description + ") SURVIVED: " + mutant.testName()
                        + " passed against it; log " + log);
            }
            if (outcome == null) {
                // A JVM that crashed in native code failed its test too; say so, it is not the test's assertion.
                // Any other end without an outcome is a broken harness.
                assertTrue(Files.exists(crashReport), "mutant " + mutant.number + ": the child JVM ended with status "
                        + status + ", no outcome and no crash report; log " + log);
                List<String> report = Files.readAllLines(crashReport, StandardCharsets.ISO_8859_1);
                int at = report.indexOf("# Problematic frame:");
                String frame = at >= 0 && at + 1 < report.size() ? report.get(at + 1).replaceFirst("^#\\s*", "") : "?";
                reason = "the child JVM crashed in native code before the test ended, in " + frame + " ("
                        + crashReport.getFileName() + ")";
            } else {
                assertEquals(1, status, "mutant " + mutant.number + ": " + outcome + "; log " + log);
                reason = outcome.substring("MUTANT-OUTCOME killed: ".length());
            }
        }
        System.out.printf("mutant %d (%s): killed by %s — %s [%.1f s]%n", mutant.number, mutant.description,
                mutant.testName(), reason, seconds);
    }

    /** The mutants live in the test-only library: the release library carries none of their code. */
    @Test
    void theReleaseLibraryContainsNoMutant() throws Exception {
        assumeTrue(NativeLibraryLoader.platform().equals("linux-x86_64"), "the cpu backend's libraries");
        String resource = "META-INF/native/linux-x86_64/libmpsnative.so";
        byte[] release;
        try (InputStream in = HazardMutantsTest.class.getClassLoader().getResourceAsStream(resource)) {
            assertTrue(in != null, resource + " on the class path");
            release = in.readAllBytes();
        }
        byte[] mutants = Files.readAllBytes(Path.of(System.getProperty("mps.mutants.library", "")));
        byte[] marker = "MPS_MUTANT".getBytes(StandardCharsets.US_ASCII);
        assertTrue(contains(mutants, marker), "the check sees the mutant selector in libmpsnative_mutants.so");
        assertFalse(contains(release, marker), "the release libmpsnative.so contains mutant code");
    }

    private static boolean contains(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return true;
        }
        return false;
    }

    private static String last(List<String> lines, String marker) {
        String found = null;
        for (String line : lines) {
            int at = line.indexOf(marker);
            if (at >= 0) {
                found = line.substring(at);
            }
        }
        return found;
    }

    private static String tail(List<String> lines) {
        return lines.isEmpty() ? "no output" : lines.get(lines.size() - 1);
    }
}
