package dev.mpsactors.bench;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bin/mps-actors native-workload}: the BERT-style encoder on 1, 2, 4 .. S native streams without actors. */
@Command(name = "native-workload", description = "BERT-style encoder requests on 1, 2, 4 .. S native cpu streams,"
        + " without actors. Exit 1 if a request failed.")
final class NativeWorkloadCommand implements Callable<Integer> {
    private static final EncoderShape MINI_LM = EncoderShape.miniLm();

    @Option(names = "--streams", paramLabel = "S", description = "most streams to run at once (default: the machine's"
            + " cores, at least 2)")
    Integer streams;

    @Option(names = "--seconds", paramLabel = "T",
            description = "measured seconds per stream count (default ${DEFAULT-VALUE})")
    double seconds = 5;

    @Option(names = "--warmup", paramLabel = "T",
            description = "warm-up seconds per stream count (default ${DEFAULT-VALUE})")
    double warmup = 1;

    @Option(names = "--in-flight", paramLabel = "N",
            description = "committed requests per stream at once (default ${DEFAULT-VALUE})")
    int inFlight = 2;

    @Option(names = "--seq", paramLabel = "L", description = "tokens a request (default ${DEFAULT-VALUE})")
    int seq = MINI_LM.seq();

    @Option(names = "--hidden", paramLabel = "H", description = "hidden size (default ${DEFAULT-VALUE})")
    int hidden = MINI_LM.hidden();

    @Option(names = "--heads", paramLabel = "A", description = "attention heads (default ${DEFAULT-VALUE})")
    int heads = MINI_LM.heads();

    @Option(names = "--intermediate", paramLabel = "I", description = "intermediate size (default ${DEFAULT-VALUE})")
    int intermediate = MINI_LM.intermediate();

    @Option(names = "--layers", paramLabel = "N", description = "layers (default ${DEFAULT-VALUE})")
    int layers = MINI_LM.layers();

    @Option(names = "--blas-threads", paramLabel = "T", description = "threads one GEMM may use (default"
            + " ${DEFAULT-VALUE}: streams give the parallelism)")
    int blasThreads = 1;

    @Override
    public Integer call() throws Exception {
        int s = streams != null ? Cli.positive("--streams", streams)
                : Math.max(2, Runtime.getRuntime().availableProcessors());
        if (!(seconds > 0) || !Double.isFinite(seconds)) {
            throw new Cli.UsageException("--seconds must be a number > 0, got " + seconds);
        }
        if (!(warmup >= 0) || !Double.isFinite(warmup)) {
            throw new Cli.UsageException("--warmup must be a number >= 0, got " + warmup);
        }
        Cli.positive("--in-flight", inFlight);
        Cli.positive("--blas-threads", blasThreads);
        EncoderShape shape;
        try {
            shape = new EncoderShape(Cli.positive("--seq", seq), Cli.positive("--hidden", hidden),
                    Cli.positive("--heads", heads), Cli.positive("--intermediate", intermediate),
                    Cli.positive("--layers", layers));
        } catch (IllegalArgumentException e) {
            throw new Cli.UsageException(e.getMessage());
        }
        var settings = new NativeWorkloadBench.Settings(s, seconds, warmup, inFlight, shape, blasThreads);
        var results = new NativeWorkloadBench(settings, System.out).run();
        long failed = results.stream().mapToLong(NativeWorkloadBench.Result::failed).sum();
        if (failed > 0) {
            System.err.println(Cli.PREFIX + "native-workload: " + failed + " requests failed");
            return Cli.FAILURE_STATUS;
        }
        return 0;
    }
}
