package dev.mpsactors.bench;

import dev.mpsactors.bench.jmh.JmhMain;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

/** {@code bin/mps-actors jmh}: the JMH micro-benchmarks, with JMH's own command line. */
@Command(name = "jmh", description = {
        "The JMH micro-benchmarks of dev.mpsactors.bench.jmh: [REGEX] [JMH options], passed to JMH as they are"
                + " (e.g. -f 1 -wi 2 -i 3, -l to list, -rf json -rff FILE; results go to jmh-result.json unless"
                + " -rf/-rff say otherwise). JMH's own option list: mps-actors jmh -- -h."})
final class JmhCommand implements Callable<Integer> {
    /** JMH's arguments, in order. */
    @Unmatched
    List<String> args = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> jmh = new ArrayList<>(args);
        jmh.remove("--");
        try {
            JmhMain.main(jmh.toArray(String[]::new));
        } catch (org.openjdk.jmh.runner.options.CommandLineOptionException e) {
            throw new Cli.UsageException(e.getMessage());
        }
        return 0;
    }
}
