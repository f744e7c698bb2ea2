package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bin/mps-actors node} and {@code bin/mps-actors cluster-client} as a user runs them, each in its own JVM:
 * a node started with nothing but its flags serves a model, and a client from outside the cluster drives it
 * and reports every request answered once, with results equal to its own single-node run. (Nodes on separate
 * addresses in separate network namespaces: MultiHostClusterTest in the tests module.)
 */
class ClusterCliTest {

    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void aNodeFromTheCommandLineServesAClientFromOutside() throws Exception {
        Path dir = Files.createTempDirectory("cluster-cli-");
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        dev.mpsactors.model.BertFolderGenerator.write(model, CliTest.CONFIG, 4);
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Path nodeLog = dir.resolve("node.log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process node = new ProcessBuilder(java, "-Xmx256m", "-Dmps-actors.streams=1", "-cp",
                System.getProperty("java.class.path"), Cli.class.getName(), "node", "--host", "127.0.0.1",
                "--port", Integer.toString(port), "--seeds", "127.0.0.1:" + port, "--model", "tiny=" + model,
                "--replicas", "1").redirectErrorStream(true).redirectOutput(nodeLog.toFile()).start();
        try {
            awaitLine(nodeLog, "mps-actors node pekko://mps-actors@127.0.0.1:" + port + " serving [tiny] x1", node);
            CliTest.Outcome o = CliTest.cliIn(dir, "cluster-client", "--seeds", "127.0.0.1:" + port, "--host", "127.0.0.1",
                    "--model", "tiny", "--replicas", "1", "--seconds", "2", "--concurrency", "4", "--seq", "8", "--check",
                    model.toString());
            assertEquals(0, o.exit(), o.stdout() + o.stderr());
            String summary = o.stdout().lines().filter(l -> l.contains(" lost ")).findFirst().orElseThrow();
            assertTrue(summary.matches("cluster-client: sent (\\d+) succeeded \\1 failed 0 lost 0 duplicates 0 .*"),
                    summary);
            assertTrue(o.stdout().contains(" above 1e-05"), o.stdout());
            assertTrue(o.stdout().lines().anyMatch(l -> l.endsWith(", 0 above 1e-05")), o.stdout());
        } finally {
            node.destroy();
            assertTrue(node.waitFor(60, TimeUnit.SECONDS), "the node stops on SIGTERM");
        }
        String log = Files.readString(nodeLog, StandardCharsets.UTF_8);
        assertTrue(log.contains("stopping: the JVM is exiting (SIGTERM): left the cluster"), log);
    }

    @Test
    void badFlagsExitWithUsageStatusAndOneLine(@TempDir Path dir) throws Exception {
        CliTest.Outcome o = CliTest.cliIn(dir, "node", "--port", "x");
        assertEquals(2, o.exit(), o.stderr());
        assertEquals(List.of("mps-actors: node: Invalid value for option '--port': 'x' is not an int"
                + " (mps-actors node --help lists the options)"), o.stderr().lines().toList());
        o = CliTest.cliIn(dir, "node", "--seeds", "10.0.0.1");
        assertEquals(2, o.exit(), o.stderr());
        assertTrue(o.stderr().startsWith("mps-actors: node: seed '10.0.0.1' (mps-actors.cluster.seeds) is not"),
                o.stderr());
        assertEquals(1, o.stderr().lines().count(), o.stderr());
        o = CliTest.cliIn(dir, "cluster-client", "--model", "tiny");
        assertEquals(2, o.exit(), o.stderr());
        assertEquals(List.of("mps-actors: cluster-client: Missing required option: '--seeds=H:P,..'"
                + " (mps-actors cluster-client --help lists the options)"), o.stderr().lines().toList());
    }

    private static void awaitLine(Path log, String text, Process p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline) {
            if (Files.readString(log, StandardCharsets.UTF_8).contains(text)) {
                return;
            }
            assertTrue(p.isAlive(), "the node exited early:\n" + Files.readString(log, StandardCharsets.UTF_8));
            TimeUnit.MILLISECONDS.sleep(100);
        }
        throw new AssertionError("no '" + text + "' within 90 s:\n" + Files.readString(log, StandardCharsets.UTF_8));
    }
}
