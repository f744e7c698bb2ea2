package dev.mpsactors.bench;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/**
 * {@code bin/mps-actors stress} (and {@code load-test}, its older name with the older defaults). Its options are
 * {@link StressOptions}' own, parsed and checked there and listed in its usage; picocli gives the command
 * {@code --help}, {@code --version} and the one-line errors of every command.
 */
@Command(name = "stress", customSynopsis = "mps-actors stress [-hV] [OPTIONS]",
        description = "The main job: client actors in closed loop against the runtime, then the baselines on the"
                + " same model and shape.")
class StressCommand implements Callable<Integer>, Cli.VerbatimHelp {
    @Spec
    CommandSpec spec;

    /** Every argument after the command, for {@link StressOptions#parse}. */
    @Unmatched
    List<String> args = new ArrayList<>();

    /** {@code load-test}: the actor run alone unless asked for more. */
    boolean legacy() {
        return false;
    }

    @Override
    public Integer call() throws Exception {
        String line = "bin/mps-actors " + spec.name() + (args.isEmpty() ? "" : " " + String.join(" ", args));
        ArrayDeque<String> rest = new ArrayDeque<>(args);
        java.net.URI url = StressBench.takeUrl(rest);
        StressOptions options = StressOptions.parse(rest, legacy());
        int status = new StressBench(options, line, System.out, url).run();
        if (status != 0) {
            System.err.println(Cli.PREFIX + spec.name() + ": replies were lost");
        }
        return status;
    }

    @Override
    public String verbatimHelp() {
        return "Options (and -h, --help, -V, --version):" + System.lineSeparator() + StressOptions.USAGE
                + "  --url http://HOST:PORT: also drive that running server over HTTP (POST /v1/embeddings, token"
                + System.lineSeparator() + "                    ids) and report it as \"http\" beside the in-process run"
                + " on the same folder" + System.lineSeparator();
    }

    @Command(name = "load-test", customSynopsis = "mps-actors load-test [-hV] [OPTIONS]",
            description = "stress with --compare none --gemm-seconds 0 --seconds 10 by default (older scripts).")
    static final class LoadTest extends StressCommand {
        @Override
        boolean legacy() {
            return true;
        }
    }
}
