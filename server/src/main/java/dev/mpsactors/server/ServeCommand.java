package dev.mpsactors.server;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.runtime.InvalidConfigException;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code bin/mps-actors serve}: starts a runtime, loads and warms each {@code --model NAME=DIR}, then serves
 * HTTP until the JVM is asked to stop (SIGTERM, Ctrl-C), when it stops accepting, answers what is in
 * flight and frees the device. Settings: {@code mps-actors.server} (reference.conf of this module).
 */
@Command(name = "serve", mixinStandardHelpOptions = true, versionProvider = ServeCommand.Version.class, // alone
        // (as bin/mps-actors serve, the command line's own version and help options are inherited)
        sortOptions = false, usageHelpAutoWidth = true,
        description = "Serve text encoders over HTTP: TEI-compatible /embed /rerank /predict /info /health, "
                + "OpenAI-compatible /v1/embeddings /v1/models, Prometheus /metrics, and /models to load, reload and "
                + "unload models live. Settings: mps-actors.server (docs/serving.md).")
public final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "NAME=DIR", required = true,
            description = "a model to serve as NAME: a Hugging Face folder with tokenizer.json (repeatable)")
    LinkedHashMap<String, Path> models;

    @Option(names = "--host", paramLabel = "HOST", description = "interface to listen on (default: mps-actors.server.host)")
    String host;

    @Option(names = "--port", paramLabel = "PORT", description = "port to listen on, 0 for any (default: mps-actors.server.port)")
    Integer port;

    private final PrintStream out;
    private final CountDownLatch stop = new CountDownLatch(1);
    private volatile MpsServer server;

    public ServeCommand() {
        this(System.out);
    }

    ServeCommand(PrintStream out) {
        this.out = out;
    }

    /** Runs the command line; returns the exit status (0, 1 on a failure to serve, 2 on bad usage). */
    public static int run(String... args) {
        return commandLine(new ServeCommand()).execute(args);
    }

    static CommandLine commandLine(ServeCommand command) {
        return new CommandLine(command).setParameterExceptionHandler((e, args) -> {
            e.getCommandLine().getErr().println("mps-actors: serve: " + e.getMessage());
            e.getCommandLine().getErr().println("usage: mps-actors serve --model NAME=DIR [--model NAME=DIR]... "
                    + "[--host H] [--port P] (--help for more)");
            return 2;
        }).setExecutionExceptionHandler((e, cl, parsed) -> {
            String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            cl.getErr().println("mps-actors: serve: " + m.lines().findFirst().orElse(m));
            return e instanceof InvalidConfigException || e instanceof IllegalArgumentException ? 2 : 1;
        });
    }

    @Override
    public Integer call() throws Exception {
        for (var m : models.entrySet()) {
            if (!Files.isDirectory(m.getValue())) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--model " + m.getKey() + "=" + m.getValue()
                        + ": no such folder");
            }
        }
        // this command's own hook stops the server in order (stop accepting, answer, free the device)
        Config config = ConfigFactory.parseString("pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off")
                .withFallback(ConfigFactory.load());
        if (host != null) {
            config = config.withValue("mps-actors.server.host", ConfigValueFactory.fromAnyRef(host));
        }
        if (port != null) {
            config = config.withValue("mps-actors.server.port", ConfigValueFactory.fromAnyRef(port));
        }
        ServerSettings settings = ServerSettings.fromConfig(config);
        MpsRuntime runtime = MpsRuntime.start(config);
        // Warming compiles and runs every shape of every model once: on a slow device that takes a while.
        out.println("mps-actors serve: loading " + String.join(", ", models.keySet()) + " and warming every shape"
                + " (mps-actors.server.warmup-batch-sizes) before listening");
        out.flush();
        try {
            server = MpsServer.start(runtime, settings, models);
        } catch (RuntimeException e) {
            runtime.close();
            throw e;
        }
        Thread hook = new Thread(this::stop, "mps-actors-serve-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        out.println("mps-actors serve: listening on " + server.url() + " (models: " + String.join(", ", models.keySet())
                + ")");
        out.flush();
        stop.await();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is already stopping: the hook ran
        }
        return 0;
    }

    /** Stops serving (what the shutdown hook does): in flight answered, then the device freed. */
    void stop() {
        MpsServer s = server;
        try {
            if (s != null) {
                var left = s.shutdown();
                if (!left.isEmpty()) {
                    System.err.println("mps-actors: serve: native objects left after shutdown: " + left);
                }
            }
        } catch (Exception e) {
            System.err.println("mps-actors: serve: shutdown failed: " + e.getMessage());
        } finally {
            stop.countDown();
        }
    }

    MpsServer server() {
        return server;
    }

    /** The packaged jar's Implementation-Version. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = ServeCommand.class.getPackage().getImplementationVersion();
            return new String[] {"mps-actors " + (v != null ? v : "(unknown: not run from the packaged jar)")};
        }
    }
}
