package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.TextProtocol.FailureKind;
import dev.mpsactors.runtime.InvalidConfigException;
import dev.mpsactors.runtime.TextRequestFailedException;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/**
 * {@code bin/mps-actors}: the one entry point of the command line, and the only code that exits the JVM.
 *
 * <p>Every command is a picocli {@link Command} listed in {@code subcommands} below (adding a command is one
 * line there) and returns its exit status from {@code call()}. Every command answers {@code --help} and
 * {@code -h} (usage on stdout, status 0) and {@code --version}. Failures print one line to stderr, always
 * starting {@code "mps-actors: "}: status 2 for bad usage or bad input (a picocli
 * {@link ParameterException}, {@link UsageException}, {@link InputException}, {@link InvalidConfigException},
 * or a text request the model refuses as invalid or unsupported), 1 for a failure of the runtime or the model.
 *
 * <p>A command from another module needs nothing of this class: it reports bad usage with picocli's
 * {@link ParameterException} (or an {@link InvalidConfigException}) and any other failure with any exception,
 * and inherits {@code --help}, {@code --version} and the error format from here. {@code CommandLineConventionsTest}
 * holds every listed command to these rules and {@code NoSystemExitTest} every compiled class to the last one.
 */
@Command(name = "mps-actors", mixinStandardHelpOptions = true, scope = ScopeType.INHERIT,
        versionProvider = Cli.Version.class, usageHelpAutoWidth = true,
        description = "Thread-safe parallel inference on GPUs from Pekko actors. Every command answers --help.",
        subcommands = {
                HelpCommand.class,
                StressCommand.class,
                StressCommand.LoadTest.class,
                RunCommand.class,
                EmbedCommand.class,
                ScoreCommands.Rerank.class,
                ScoreCommands.Classify.class,
                ImportOnnxCommand.class,
                InfoCommand.class,
                NativeWorkloadCommand.class,
                GenerateModelCommand.class,
                JmhCommand.class,
                NodeCommand.class,
                ClusterClientCommand.class,
                dev.mpsactors.server.ServeCommand.class,
                Soak.class,
        })
public final class Cli implements Runnable {
    /** Exit status of bad usage or bad input. */
    public static final int USAGE_STATUS = 2;
    /** Exit status of a failure of the runtime or the model. */
    public static final int FAILURE_STATUS = 1;
    /** What every error line starts with. */
    public static final String PREFIX = "mps-actors: ";

    @Spec
    CommandSpec spec;

    private final PrintStream out;

    private Cli(PrintStream out) {
        this.out = out;
    }

    /** Where a long-running command prints its lines (the stream {@link #execute} was given). */
    PrintStream out() {
        return out;
    }

    /** {@code mps-actors} alone: the list of commands, on stdout. */
    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Bad usage found by a command's own checks: exit 2 with one line. */
    public static final class UsageException extends RuntimeException {
        public UsageException(String message) {
            super(message);
        }
    }

    /** Bad input files: exit 2 with one line. */
    public static final class InputException extends RuntimeException {
        public InputException(String message) {
            super(message);
        }
    }

    public static void main(String[] argv) {
        int status = execute(System.out, System.err, argv);
        System.out.flush();
        System.exit(status);
    }

    /** Runs one command line and returns its exit status; writes to {@code out} and {@code err}, never exits. */
    public static int execute(PrintStream out, PrintStream err, String... argv) {
        return commandLine(out, err).execute(argv);
    }

    /** The command line with its error handling: one line with {@link #PREFIX} per failure. */
    static CommandLine commandLine(PrintStream out, PrintStream err) {
        CommandLine cli = new CommandLine(new Cli(out));
        // a command from another module may carry a version of its own for use alone: here it is the command line's
        cli.getSubcommands().values().forEach(sub -> sub.getCommandSpec().versionProvider(new Version()));
        PrintWriter outWriter = new PrintWriter(out, true, StandardCharsets.UTF_8);
        PrintWriter errWriter = new PrintWriter(err, true, StandardCharsets.UTF_8);
        cli.setOut(outWriter);
        cli.setErr(errWriter);
        cli.setParameterExceptionHandler((e, args) -> {
            errWriter.println(errorLine(e.getCommandLine(), parameterMessage(e)) + " (" + helpHint(e.getCommandLine())
                    + ")");
            return USAGE_STATUS;
        });
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            Throwable cause = unwrap(e);
            errWriter.println(errorLine(commandLine, message(cause)));
            return isUsageOrInput(cause) ? USAGE_STATUS : FAILURE_STATUS;
        });
        cli.setUnmatchedOptionsAllowedAsOptionParameters(false);
        verbatimHelp(cli);
        return cli;
    }

    /**
     * A command whose options are parsed by the command itself (its arguments in an {@code @Unmatched} list)
     * lists them in its help with this text, printed as it is (no wrapping) after the description.
     */
    interface VerbatimHelp {
        String verbatimHelp();
    }

    private static void verbatimHelp(CommandLine cli) {
        for (CommandLine sub : cli.getSubcommands().values()) {
            if (sub.getCommand() instanceof VerbatimHelp v) {
                String key = "verbatim-options";
                sub.getHelpSectionMap().put(key, help -> v.verbatimHelp());
                java.util.List<String> keys = new java.util.ArrayList<>(sub.getHelpSectionKeys());
                keys.add(keys.indexOf(CommandLine.Model.UsageMessageSpec.SECTION_KEY_DESCRIPTION) + 1, key);
                sub.setHelpSectionKeys(keys);
            }
            verbatimHelp(sub);
        }
    }

    private static boolean isUsageOrInput(Throwable e) {
        if (e instanceof TextRequestFailedException t) {
            return t.kind() == FailureKind.INVALID_REQUEST || t.kind() == FailureKind.UNSUPPORTED;
        }
        return e instanceof UsageException || e instanceof InputException || e instanceof InvalidConfigException
                || e instanceof ParameterException;
    }

    private static Throwable unwrap(Throwable e) {
        while ((e instanceof CompletionException || e instanceof ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

    private static String message(Throwable e) {
        return e.getMessage() == null || e.getMessage().isBlank() ? e.getClass().getSimpleName() : e.getMessage();
    }

    /** One line: the prefix, the command (unless the message starts with it) and the message's first line. */
    private static String errorLine(CommandLine commandLine, String message) {
        String path = commandPath(commandLine);
        String m = oneLine(message);
        return PREFIX + (m.startsWith(path) ? "" : path) + m;
    }

    /**
     * What was wrong with the arguments, the first thing first: an argument nobody takes is named before the
     * required options it kept from being seen, and at the top level it is an unknown command.
     */
    private static String parameterMessage(ParameterException e) {
        CommandLine.ParseResult parsed = e.getCommandLine().getParseResult();
        java.util.List<String> unmatched = e instanceof CommandLine.UnmatchedArgumentException u ? u.getUnmatched()
                : parsed != null ? parsed.unmatched() : java.util.List.of();
        if (unmatched.isEmpty()) {
            return e.getMessage();
        }
        String first = unmatched.get(0);
        if (first.startsWith("-")) {
            return "unknown option '" + first + "'";
        }
        return e.getCommandLine().getParent() == null && !e.getCommandLine().getSubcommands().isEmpty()
                ? "unknown command '" + first + "'" : "unexpected argument '" + first + "'";
    }

    /** "stress: " for a subcommand's error, "" for the top level's (its messages name what was wrong). */
    private static String commandPath(CommandLine commandLine) {
        StringBuilder path = new StringBuilder();
        for (CommandLine c = commandLine; c != null && c.getParent() != null; c = c.getParent()) {
            path.insert(0, c.getCommandName() + ": ");
        }
        return path.toString();
    }

    private static String helpHint(CommandLine commandLine) {
        String name = commandLine.getCommandSpec().qualifiedName();
        return name + " --help lists the " + (commandLine.getParent() == null ? "commands" : "options");
    }

    /** The first line of a message: every error is one line. */
    static String oneLine(String message) {
        String m = message == null ? "" : message.strip();
        return m.lines().findFirst().orElse(m);
    }

    /** The version: the packaged jar's Implementation-Version, else the version the build wrote. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"mps-actors " + version()};
        }

        static String version() {
            String v = Cli.class.getPackage().getImplementationVersion();
            if (v != null) {
                return v;
            }
            try (InputStream in = Cli.class.getResourceAsStream("version.properties")) {
                Properties p = new Properties();
                if (in != null) {
                    p.load(in);
                }
                return p.getProperty("version", "unknown");
            } catch (IOException e) {
                return "unknown";
            }
        }
    }

    // ---- shared by the commands ---------------------------------------------------------------------------

    /**
     * An option's converter over a parser that throws {@link IllegalArgumentException} naming what is wrong:
     * picocli reports that as a bad value of the option (one line, status 2).
     */
    abstract static class ParsingConverter<T> implements CommandLine.ITypeConverter<T> {
        private final java.util.function.Function<String, T> parse;

        ParsingConverter(java.util.function.Function<String, T> parse) {
            this.parse = parse;
        }

        @Override
        public T convert(String value) {
            try {
                return parse.apply(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    /** The application's configuration, with {@code mps-actors.backend} replaced when {@code backend} is given. */
    static Config config(String backend) {
        Config base = ConfigFactory.load();
        return backend == null ? base : base.withValue("mps-actors.backend", ConfigValueFactory.fromAnyRef(backend));
    }

    static InferenceInputs readInputs(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new InputException("cannot read " + file + ": " + oneLine(e.getMessage()));
        }
        if (root == null || !root.isObject()) {
            throw new InputException(file + ": expected a JSON object with \"input_ids\"");
        }
        int[][] ids = matrix(file, root, "input_ids", true);
        return new InferenceInputs(ids, matrix(file, root, "attention_mask", false),
                matrix(file, root, "token_type_ids", false));
    }

    private static int[][] matrix(Path file, JsonNode root, String key, boolean required) {
        JsonNode node = root.get(key);
        if (node == null || node.isNull()) {
            if (required) {
                throw new InputException(file + ": \"" + key + "\" is missing");
            }
            return null;
        }
        if (!node.isArray() || node.isEmpty()) {
            throw new InputException(file + ": \"" + key + "\" must be a non-empty array of arrays of integers");
        }
        int[][] out = new int[node.size()][];
        for (int b = 0; b < node.size(); b++) {
            JsonNode row = node.get(b);
            if (!row.isArray()) {
                throw new InputException(file + ": \"" + key + "\"[" + b + "] is not an array");
            }
            out[b] = new int[row.size()];
            for (int t = 0; t < row.size(); t++) {
                JsonNode v = row.get(t);
                if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                    throw new InputException(file + ": \"" + key + "\"[" + b + "][" + t + "] is not an integer: " + v);
                }
                out[b][t] = v.intValue();
            }
        }
        return out;
    }

    static void writeOutputs(Path file, InferResult result) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        if (result.lastHiddenState() != null) {
            root.set("last_hidden_state", mapper.valueToTree(result.lastHiddenState()));
        }
        if (result.poolerOutput() != null) {
            root.set("pooler_output", mapper.valueToTree(result.poolerOutput()));
        }
        if (result.embedding() != null) {
            root.set("embedding", mapper.valueToTree(result.embedding()));
        }
        mapper.writeValue(file.toFile(), root);
    }

    static <T> T await(java.util.concurrent.CompletionStage<T> stage) throws InterruptedException {
        try {
            return stage.toCompletableFuture().get(10, TimeUnit.MINUTES);
        } catch (ExecutionException e) {
            Throwable cause = unwrap(e);
            throw cause instanceof RuntimeException r ? r : new RuntimeException(cause);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new RuntimeException("no answer within 10 minutes");
        }
    }

    /** {@code value} when it is at least 1; else bad usage naming the option. */
    static int positive(String option, int value) {
        if (value < 1) {
            throw new UsageException(option + " must be a whole number >= 1, got " + value);
        }
        return value;
    }
}
