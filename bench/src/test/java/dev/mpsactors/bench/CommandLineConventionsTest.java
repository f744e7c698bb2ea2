package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The conventions of every command of {@code bin/mps-actors}, run in this JVM through {@link Cli#execute} (the
 * entry point's own code, short of exiting): {@code --help} and {@code -h} print the command's usage on stdout
 * with status 0, {@code --version} the version; an unknown option and a bad value are one line on stderr that
 * starts {@code "mps-actors: <command>: "}, with status 2. The commands are taken from the command line itself,
 * so a command added later is held to the same rules.
 */
class CommandLineConventionsTest {
    record Outcome(int exit, String stdout, String stderr) {}

    static Outcome run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int exit = Cli.execute(new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), args);
        return new Outcome(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static List<String> commands() {
        List<String> names = new ArrayList<>(Cli.commandLine(System.out, System.err).getSubcommands().keySet());
        assertTrue(names.containsAll(List.of("stress", "load-test", "run", "info", "native-workload", "jmh", "node",
                "import-onnx", "embed", "rerank", "classify", "cluster-client", "generate-model", "soak")),
                names::toString);
        return names;
    }

    @Test
    void everyCommandAnswersHelpAndVersionOnStdoutWithStatusZero() {
        Outcome top = run("--help");
        assertEquals(0, top.exit(), top.stderr());
        for (String command : commands()) {
            assertTrue(top.stdout().contains("\n  " + command + " "),
                    "the list names " + command + ": " + top.stdout());
            for (String flag : List.of("--help", "-h")) {
                Outcome o = run(command, flag);
                assertEquals(0, o.exit(), command + " " + flag + ": " + o.stderr());
                assertTrue(o.stdout().startsWith("Usage: mps-actors " + command),
                        command + " " + flag + ": " + o.stdout());
                assertEquals("", o.stderr(), command + " " + flag + " writes nothing to stderr");
            }
            Outcome v = run(command, "--version");
            assertEquals(0, v.exit(), command + " --version: " + v.stderr());
            assertTrue(v.stdout().matches("mps-actors \\d+\\.\\d+\\.\\d+(-SNAPSHOT)?\\R"), command + ": " + v.stdout());
        }
        Outcome none = run();
        assertEquals(0, none.exit());
        assertEquals(top.stdout(), none.stdout(), "no command: the list of commands");
    }

    @Test
    void anUnknownOptionIsOneLineWithThePrefixAndStatusTwo() {
        for (String command : commands()) {
            Outcome o = run(command, "--no-such-option");
            assertEquals(2, o.exit(), command + ": " + o.stdout() + o.stderr());
            assertOneLine(command, o);
            assertTrue(o.stderr().contains("no-such-option"), o.stderr()); // JMH names it without its dashes
            assertEquals("", o.stdout(), command + ": nothing on stdout");
        }
        Outcome unknown = run("no-such-command");
        assertEquals(2, unknown.exit());
        assertEquals(List.of("mps-actors: unknown command 'no-such-command' (mps-actors --help lists the commands)"),
                unknown.stderr().lines().toList());
    }

    @Test
    void aBadValueIsOneLineWithThePrefixAndStatusTwo() {
        Map<String, List<String>> bad = Map.ofEntries(
                Map.entry("stress", List.of("--clients", "many")),
                Map.entry("load-test", List.of("--lengths", "9..3")),
                Map.entry("run", List.of("--model", "m", "--input", "i", "--output", "o", "--outputs",
                        "embedding:median")),
                Map.entry("info", List.of("--backend", "tpu")),
                Map.entry("native-workload", List.of("--seconds", "soon")),
                Map.entry("jmh", List.of("-f", "many")),
                Map.entry("node", List.of("--port", "x")),
                Map.entry("import-onnx", List.of("m.onnx", "--out", "d", "--pooling", "median")),
                Map.entry("embed", List.of("--model", "m", "--input", "i", "--output", "o", "--normalize", "maybe")),
                Map.entry("rerank", List.of("--model", "m", "--input", "i", "--output", "o", "--query", "q",
                        "--batch", "0")),
                Map.entry("classify", List.of("--model", "m", "--input", "i", "--output", "o", "--parallelism", "x")),
                Map.entry("cluster-client", List.of("--seeds", "h:1", "--model", "m", "--concurrency", "0")),
                Map.entry("generate-model", List.of("out", "--dtype", "f8")),
                Map.entry("soak", List.of("--minutes", "x")));
        for (Map.Entry<String, List<String>> e : bad.entrySet()) {
            List<String> args = new ArrayList<>(List.of(e.getKey()));
            args.addAll(e.getValue());
            Outcome o = run(args.toArray(String[]::new));
            assertEquals(2, o.exit(), args + ": " + o.stdout() + o.stderr());
            assertOneLine(e.getKey(), o);
        }
    }

    private static void assertOneLine(String command, Outcome o) {
        List<String> lines = o.stderr().lines().toList();
        assertEquals(1, lines.size(), command + ": one line: " + o.stderr());
        String prefix = command.equals("help") ? "mps-actors: " : "mps-actors: " + command + ": ";
        assertTrue(lines.get(0).startsWith(prefix), command + ": " + lines.get(0));
    }
}
