package dev.mpsactors.bench.jmh;

import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs the JMH micro-benchmarks of this package from the built jar:
 * <pre>
 * java -cp bench/target/mps-actors-bench.jar:bench/target/lib/* dev.mpsactors.bench.jmh.JmhMain [regex] [JMH options]
 * </pre>
 * Arguments are JMH's own command line ({@code -rf json -rff FILE}, {@code -f}, {@code -wi}, {@code -i},
 * {@code -l} to list, {@code -h}); a regex selects benchmarks (default: every benchmark of this package).
 * Unless {@code -rf}/{@code -rff} say otherwise, results are also written as JSON to {@code jmh-result.json}.
 */
public final class JmhMain {
    static final String ALL = "dev\\.mpsactors\\.bench\\.jmh\\..*";
    static final String DEFAULT_RESULT = "jmh-result.json";

    private JmhMain() {}

    public static void main(String[] args) throws Exception {
        CommandLineOptions cli = new CommandLineOptions(args);
        if (cli.shouldHelp()) {
            cli.showHelp();
            return;
        }
        if (cli.shouldList() || cli.shouldListWithParams() || cli.shouldListProfilers()
                || cli.shouldListResultFormats()) {
            new Runner(cli).list();
            return;
        }
        ChainedOptionsBuilder options = new OptionsBuilder().parent(cli);
        if (cli.getIncludes().isEmpty()) {
            options.include(ALL);
        }
        if (!cli.getResultFormat().hasValue()) {
            options.resultFormat(ResultFormatType.JSON);
        }
        if (!cli.getResult().hasValue()) {
            options.result(DEFAULT_RESULT);
        }
        new Runner(options.build()).run();
    }
}
