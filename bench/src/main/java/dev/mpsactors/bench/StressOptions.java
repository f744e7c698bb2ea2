package dev.mpsactors.bench;

import dev.mpsactors.protocol.InferenceProtocol;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Deque;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** The options of {@code bin/mps-actors stress}, parsed and checked; bad usage throws {@link Cli.UsageException}. */
record StressOptions(Path model, List<Integer> clientCounts, boolean sweep, int streams, String backend,
                     double seconds, long requests, double warmup, int seq, int batchPerRequest, Mix mix,
                     int layerNorms, Set<Baseline> compare, Path json, Path plot, double gemmSeconds,
                     int clusterNodes, InferenceProtocol.OutputSpec outputs, Lengths lengths, Path onnx,
                     String devices, int cpuDevices, int crashDevice, Path texts) {

    enum Mix { BERT, LAYERNORM }

    /** The same options with no device crashed (the baselines). */
    StressOptions withoutCrash() {
        return new StressOptions(model, clientCounts, sweep, streams, backend, seconds, requests, warmup, seq,
                batchPerRequest, mix, layerNorms, compare, json, plot, gemmSeconds, clusterNodes, outputs, lengths, onnx,
                devices, cpuDevices, -1, texts);
    }

    enum Baseline { RAW, LOCKED, SERIAL, ORT }

    /** What stress compares with unless told: the three baselines on the runtime's own kernels. */
    static final Set<Baseline> DEFAULT_BASELINES = EnumSet.of(Baseline.RAW, Baseline.LOCKED, Baseline.SERIAL);

    /** {@code --lengths MIN..MAX}: each client cycles through requests of lengths drawn uniformly from the range. */
    record Lengths(int min, int max) {
        static Lengths parse(String v) {
            String[] parts = v.split("\\.\\.", -1);
            if (parts.length == 2) {
                int min = positive("--lengths", parts[0].trim()), max = positive("--lengths", parts[1].trim());
                if (min <= max) {
                    return new Lengths(min, max);
                }
            }
            throw new Cli.UsageException("--lengths takes MIN..MAX with 1 <= MIN <= MAX, got '" + v + "'");
        }

        @Override
        public String toString() {
            return min + ".." + max;
        }
    }

    static final String USAGE = """
              stress [--clients M | --sweep M1,M2,..] [--seconds T | --requests N] [--streams S] [--backend cpu]
                     [--model DIR] [--seq L] [--batch-per-request B] [--mix bert|layernorm] [--layer-norms K]
                     [--compare raw,locked,serial,ort|none] [--warmup T] [--json FILE] [--plot FILE.svg]
                     [--gemm-seconds T] [--cluster-nodes N] [--outputs LIST] [--lengths MIN..MAX] [--onnx FILE]
                     [--texts FILE]
                    M client actors (default 64) in closed loop against a runtime with S streams (default:
                    config) for T seconds (default 20) or N requests; a MiniLM-sized BERT is generated unless
                    --model is given (seq default 128, B default 1). Then the baselines on the same model and
                    shape (default all three) and the GEMM rate the BLAS reaches alone (0 skips it). Exit 1 if
                    a reply was lost. --mix layernorm: K LayerNorms + one GEMM per request (default K 24).
                    --cluster-nodes N: the mps-actors run goes to N Pekko Cluster nodes on 127.0.0.1 in this JVM
                    (one replica of the model per node, requests through ClusterInference) instead of one runtime.
                    --outputs: what each request asks for, e.g. embedding:mean:normalized (default
                    last_hidden_state,pooler_output).
                    --onnx FILE: the model is that ONNX export of a BERT encoder, imported (unless --model names
                    the imported folder); --compare ort adds ONNX Runtime in this process on the original file,
                    at the best of a short search over workers x intra-op threads x batch (ort alone: all four).
                    --lengths MIN..MAX: request lengths drawn from the range (raw and locked, one compiled
                    shape each, are left out, and refused when named).
                    --devices all|N|I,J: the devices the mps-actors run uses (default: mps-actors.devices, all);
                    the model is replicated on each, and the report gives each device's stream utilisation and
                    the requests it served. --cpu-devices N splits the cpu backend into N devices.
                    --crash-device I: device I's runtime is crashed (fault injection) halfway through the measured
                    window; it is started again, and the report shows its restart and that nothing was lost.
                    --texts FILE: the texts of FILE (JSON lines of {"text": ...}, or plain lines), B a request,
                    through Embed (tokenized by the runtime) and then as token ids made before the run (Infer):
                    texts/s and tokens/s of both, so the tokenizer's cost shows; needs --model DIR with a
                    tokenizer.json, takes no baselines.
              load-test [...]   stress with --compare none --gemm-seconds 0 --seconds 10 by default (older scripts)
            """;

    /** {@code legacy}: {@code load-test} keeps its old scope (the actor run alone) unless asked for more. */
    static StressOptions parse(Deque<String> args, boolean legacy) {
        Path model = null, json = null, plot = null, onnx = null, texts = null;
        Lengths lengths = null;
        boolean namesOneShapeBaseline = false; // --compare named raw or locked
        boolean namesBaseline = false; // --compare named any
        InferenceProtocol.OutputSpec outputs = InferenceProtocol.OutputSpec.HF_DEFAULT;
        List<Integer> clients = List.of(64);
        boolean sweep = false;
        int streams = 0, seq = 128, batch = 1, layerNorms = LayerNormMix.DEFAULT_LAYER_NORMS;
        String backend = "cpu";
        double seconds = legacy ? 10 : 20, warmup = 2, gemmSeconds = legacy ? 0 : 3;
        long requests = 0;
        int clusterNodes = 0;
        String devices = null;
        int cpuDevices = 0, crashDevice = -1;
        Mix mix = Mix.BERT;
        Set<Baseline> compare = legacy ? EnumSet.noneOf(Baseline.class) : EnumSet.copyOf(DEFAULT_BASELINES);
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            switch (flag) {
                case "--cluster-nodes" -> clusterNodes = positive(flag, value(flag, args));
                case "--model" -> model = Path.of(value(flag, args));
                case "--clients" -> clients = List.of(positive(flag, value(flag, args)));
                case "--sweep" -> {
                    clients = counts(flag, value(flag, args));
                    sweep = true;
                }
                case "--streams" -> streams = positive(flag, value(flag, args));
                case "--backend" -> backend = value(flag, args);
                case "--seconds" -> seconds = number(flag, value(flag, args), false);
                case "--requests" -> requests = positive(flag, value(flag, args));
                case "--warmup" -> warmup = number(flag, value(flag, args), true);
                case "--seq" -> seq = positive(flag, value(flag, args));
                case "--batch-per-request" -> batch = positive(flag, value(flag, args));
                case "--mix" -> mix = mix(value(flag, args));
                case "--layer-norms" -> layerNorms = positive(flag, value(flag, args));
                case "--compare" -> {
                    compare = baselines(value(flag, args));
                    namesBaseline = !compare.isEmpty();
                    namesOneShapeBaseline = compare.contains(Baseline.RAW) || compare.contains(Baseline.LOCKED);
                }
                case "--json" -> json = Path.of(value(flag, args));
                case "--plot" -> plot = Path.of(value(flag, args));
                case "--gemm-seconds" -> gemmSeconds = number(flag, value(flag, args), true);
                case "--outputs" -> {
                    try {
                        outputs = InferenceProtocol.OutputSpec.parse(value(flag, args));
                    } catch (IllegalArgumentException e) {
                        throw new Cli.UsageException("--outputs: " + e.getMessage());
                    }
                }
                case "--lengths" -> lengths = Lengths.parse(value(flag, args));
                case "--onnx" -> onnx = Path.of(value(flag, args));
                case "--devices" -> devices = value(flag, args);
                case "--cpu-devices" -> cpuDevices = positive(flag, value(flag, args));
                case "--crash-device" -> {
                    String v = value(flag, args);
                    try {
                        crashDevice = Integer.parseInt(v);
                    } catch (NumberFormatException e) {
                        crashDevice = -1;
                    }
                    if (crashDevice < 0) {
                        throw new Cli.UsageException("--crash-device: expected a device ordinal (0, 1, ...), got '" + v
                                + "'");
                    }
                }
                case "--texts" -> texts = Path.of(value(flag, args));
                default -> throw new Cli.UsageException("stress: unknown option '" + flag + "'");
            }
        }
        if (plot != null && !sweep) {
            throw new Cli.UsageException("--plot needs --sweep (it draws against the client counts)");
        }
        if (requests > 0) {
            warmup = 0; // a counted run measures every request
        }
        if (clusterNodes > 0 && mix == Mix.LAYERNORM) {
            throw new Cli.UsageException("--cluster-nodes serves a model: it does not take --mix layernorm");
        }
        if (compare.contains(Baseline.ORT) && onnx == null) {
            throw new Cli.UsageException("--compare ort needs --onnx FILE (ONNX Runtime runs the original file)");
        }
        if (compare.equals(EnumSet.of(Baseline.ORT))) {
            compare = EnumSet.allOf(Baseline.class); // the peer next to the three baselines
        }
        if ((lengths != null || onnx != null) && mix == Mix.LAYERNORM) {
            throw new Cli.UsageException("--lengths and --onnx are for BERT requests, not --mix layernorm");
        }
        if (lengths != null && clusterNodes > 0) {
            throw new Cli.UsageException("--lengths is not supported with --cluster-nodes");
        }
        if (lengths != null && namesOneShapeBaseline) {
            throw new Cli.UsageException("--lengths drives the model actor's runs (mps-actors, serial, ort): the raw "
                    + "and locked baselines compile one shape each and do not take it");
        }
        if (texts != null) {
            if (model == null) {
                throw new Cli.UsageException("--texts needs --model DIR, a folder with its tokenizer.json");
            }
            if (mix == Mix.LAYERNORM || clusterNodes > 0 || lengths != null || onnx != null) {
                throw new Cli.UsageException("--texts does not go with --mix layernorm, --cluster-nodes, --lengths"
                        + " or --onnx");
            }
            if (namesBaseline) {
                throw new Cli.UsageException("--texts compares the text path with the token-id path: it takes no"
                        + " --compare baselines");
            }
            compare = EnumSet.noneOf(Baseline.class);
        }
        if (lengths != null) {
            seq = lengths.max(); // the longest request: what the GEMM ceiling shapes use
            compare.remove(Baseline.RAW);
            compare.remove(Baseline.LOCKED);
        }
        if (crashDevice >= 0 && (mix == Mix.LAYERNORM || clusterNodes > 0)) {
            throw new Cli.UsageException("--crash-device stops a device under model requests: not with --mix layernorm "
                    + "or --cluster-nodes");
        }
        return new StressOptions(model, clients, sweep, streams, backend, seconds, requests, warmup, seq, batch, mix,
                layerNorms, compare, json, plot, gemmSeconds, clusterNodes, outputs, lengths, onnx, devices, cpuDevices,
                crashDevice, texts);
    }

    private static Mix mix(String v) {
        return switch (v) {
            case "bert" -> Mix.BERT;
            case "layernorm" -> Mix.LAYERNORM;
            default -> throw new Cli.UsageException("--mix must be bert or layernorm, got '" + v + "'");
        };
    }

    private static Set<Baseline> baselines(String v) {
        Set<Baseline> set = EnumSet.noneOf(Baseline.class);
        if (v.equals("none") || v.isEmpty()) {
            return set;
        }
        for (String part : v.split(",")) {
            try {
                set.add(Baseline.valueOf(part.trim().toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException e) {
                throw new Cli.UsageException("--compare takes raw, locked, serial, ort or none, got '" + part + "'");
            }
        }
        return set;
    }

    private static List<Integer> counts(String flag, String v) {
        List<Integer> out = new ArrayList<>();
        for (String part : v.split(",")) {
            out.add(positive(flag, part.trim()));
        }
        return List.copyOf(out);
    }

    private static String value(String flag, Deque<String> args) {
        String v = args.pollFirst();
        if (v == null) {
            throw new Cli.UsageException(flag + " needs a value");
        }
        return v;
    }

    static int positive(String flag, String v) {
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new Cli.UsageException(flag + " must be a whole number >= 1, got '" + v + "'");
    }

    private static double number(String flag, String v, boolean zeroAllowed) {
        try {
            double x = Double.parseDouble(v);
            if (Double.isFinite(x) && (x > 0 || (zeroAllowed && x == 0))) {
                return x;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new Cli.UsageException(flag + " must be a number " + (zeroAllowed ? ">= 0" : "> 0") + ", got '" + v + "'");
    }
}
