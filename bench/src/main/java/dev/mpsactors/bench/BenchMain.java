package dev.mpsactors.bench;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;

/** Command line of the benchmarks: {@code java -jar bench/target/mps-actors-bench.jar [native-workload] [options]}. */
public final class BenchMain {
    private static final String USAGE = """
            usage: mps-actors-bench [native-workload] [options]
              native-workload   BERT-style encoder requests on 1, 2, 4 .. S native cpu streams (default command)
            options:
              --streams S        most streams to run at once (default: the machine's cores, at least 2)
              --seconds T        measured seconds per stream count (default 5)
              --warmup T         warm-up seconds per stream count (default 1)
              --in-flight N      committed requests per stream at once (default 2)
              --seq L --hidden H --heads A --intermediate I --layers N
                                 encoder shape (default MiniLM-L6: 128 384 12 1536 6)
              --blas-threads T   threads one GEMM may use (default 1: streams give the parallelism)
            """;

    private BenchMain() {}

    public static void main(String[] argv) throws Exception {
        Deque<String> args = new ArrayDeque<>(List.of(argv));
        if (!args.isEmpty() && !args.peekFirst().startsWith("-")) {
            String command = args.pollFirst();
            if (!command.equals("native-workload")) {
                fail("unknown command '" + command + "'");
            }
        }
        int cores = Runtime.getRuntime().availableProcessors();
        int streams = Math.max(2, cores);
        double seconds = 5;
        double warmup = 1;
        int inFlight = 2;
        int blasThreads = 1;
        EncoderShape d = EncoderShape.miniLm();
        int seq = d.seq(), hidden = d.hidden(), heads = d.heads(), inter = d.intermediate(), layers = d.layers();
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            switch (flag) {
                case "--streams" -> streams = positiveInt(flag, args);
                case "--seconds" -> seconds = positiveDouble(flag, args);
                case "--warmup" -> warmup = nonNegativeDouble(flag, args);
                case "--in-flight" -> inFlight = positiveInt(flag, args);
                case "--seq" -> seq = positiveInt(flag, args);
                case "--hidden" -> hidden = positiveInt(flag, args);
                case "--heads" -> heads = positiveInt(flag, args);
                case "--intermediate" -> inter = positiveInt(flag, args);
                case "--layers" -> layers = positiveInt(flag, args);
                case "--blas-threads" -> blasThreads = positiveInt(flag, args);
                case "-h", "--help" -> {
                    System.out.print(USAGE);
                    return;
                }
                default -> fail("unknown option '" + flag + "'");
            }
        }
        EncoderShape shape;
        try {
            shape = new EncoderShape(seq, hidden, heads, inter, layers);
        } catch (IllegalArgumentException e) {
            fail(e.getMessage());
            return;
        }
        var settings = new NativeWorkloadBench.Settings(streams, seconds, warmup, inFlight, shape, blasThreads);
        var results = new NativeWorkloadBench(settings, System.out).run();
        long failed = results.stream().mapToLong(NativeWorkloadBench.Result::failed).sum();
        if (failed > 0) {
            System.err.println(failed + " requests failed");
            System.exit(1);
        }
    }

    private static String value(String flag, Deque<String> args) {
        String v = args.pollFirst();
        if (v == null) {
            fail(flag + " needs a value");
        }
        return v;
    }

    private static int positiveInt(String flag, Deque<String> args) {
        String v = value(flag, args);
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        fail(flag + " must be a whole number >= 1, got '" + v + "'");
        return 0;
    }

    private static double positiveDouble(String flag, Deque<String> args) {
        double x = nonNegativeDouble(flag, args);
        if (x <= 0) {
            fail(flag + " must be > 0");
        }
        return x;
    }

    private static double nonNegativeDouble(String flag, Deque<String> args) {
        String v = value(flag, args);
        try {
            double x = Double.parseDouble(v);
            if (x >= 0 && Double.isFinite(x)) {
                return x;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        fail(flag + " must be a number >= 0, got '" + v + "'");
        return 0;
    }

    private static void fail(String message) {
        System.err.println("mps-actors-bench: " + message);
        System.err.print(USAGE);
        System.exit(2);
    }
}
