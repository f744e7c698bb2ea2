package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.onnx.OnnxBertImporter;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.InvalidConfigException;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import dev.mpsactors.text.SentenceEncoderConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * {@code bin/mps-actors}: {@code run}, {@code import-onnx}, {@code info}, {@code stress} (alias {@code load-test}),
 * {@code native-workload}, {@code generate-model}, {@code embed}.
 * Failures print one line ("mps-actors: ...") to stderr and exit non-zero: 2 for bad usage or input,
 * 1 for a failure of the runtime or the model.
 */
public final class Cli {
    private static final String USAGE = """
            usage: mps-actors <command> [options]     (every command answers --help; --version prints the version)
            """ + StressOptions.USAGE + """
              run --model DIR --input IN.json --output OUT.json [--backend cpu] [--outputs LIST]
                    run a Hugging Face BERT folder on IN.json {"input_ids": [[..]], "attention_mask": [[..]],
                    "token_type_ids": [[..]]} (the last two optional); writes {"last_hidden_state": [[[..]]],
                    "pooler_output": [[..]]}, or what --outputs names: last_hidden_state, pooler_output,
                    embedding[:cls|mean|max|mean_sqrt_len][:normalized] (written as "embedding": [[..]])
              import-onnx MODEL.onnx [--tokenizer tokenizer.json] --out DIR
                                        import an ONNX export of a BERT-family encoder as a Hugging Face folder
                                        (config.json derived from the graph, model.safetensors, the tokenizer)
                    [--pooling cls|mean|max|mean_sqrt_len [--normalize] [--max-seq-length N]]
                                        also write the sentence-transformers files (modules.json, 1_Pooling,
                                        a Normalize module, sentence_bert_config.json): the graph ends at
                                        last_hidden_state and cannot say how the model card pools; for
                                        all-MiniLM-L6-v2: --pooling mean --normalize --max-seq-length 256
              info [--backend cpu]      the backend, the device and the effective configuration
              native-workload [...]     the multi-stream native workload (--help for its options)
              generate-model OUT_DIR [...] write a BERT folder with random weights (--help for its options)
              jmh [regex] [JMH options] the JMH micro-benchmarks (docs/benchmarks.md)
              node --host H --port P --seeds H:P,.. --model NAME=DIR [--replicas R]
                                        a Pekko Cluster node serving models as sharded entities (docs/cluster.md)
              serve --model NAME=DIR [--model NAME=DIR..] [--host H] [--port P]
                                        an HTTP server: TEI and OpenAI routes, /metrics, /models (docs/serving.md)
              stress --url http://HOST:PORT --model DIR [...]
                                        also drive that running server over HTTP (POST /v1/embeddings, token ids)
                                        and report it as "http" beside the in-process run on the same folder
            """ + EmbedCommand.USAGE + ClusterClientCommand.USAGE + Soak.USAGE;

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    private Cli() {}

    public static void main(String[] argv) throws Exception {
        Deque<String> args = new ArrayDeque<>(List.of(argv));
        String command = args.isEmpty() ? "help" : args.pollFirst();
        if (command.equals("--version") || command.equals("version")) {
            System.out.println("mps-actors " + version());
            return;
        }
        if (asksForHelp(command, args)) {
            System.out.print(command.equals("generate-model")
                    ? BertFolderGenerator.USAGE.replace("usage: BertFolderGenerator", "usage: mps-actors generate-model")
                            + System.lineSeparator()
                    : USAGE);
            return;
        }
        try {
            switch (command) {
                case "run" -> run(args);
                case "info" -> info(args);
                case "native-workload" -> BenchMain.main(args.toArray(String[]::new));
                case "stress", "load-test" -> stress(command, args);
                case "jmh" -> dev.mpsactors.bench.jmh.JmhMain.main(args.toArray(String[]::new));
                case "node" -> dev.mpsactors.cluster.ClusterNode.main(args.toArray(String[]::new));
                case "import-onnx" -> importOnnx(args);
                case "embed" -> EmbedCommand.run(args, ConfigFactory.load(), System.err);
                case "cluster-client" -> {
                    int status = ClusterClientCommand.run(args, System.out);
                    if (status != 0) {
                        System.err.println("mps-actors: cluster-client: replies were lost, duplicated or different");
                        System.exit(status);
                    }
                }
                case "generate-model" -> BertFolderGenerator.main(args.toArray(String[]::new));
                case "soak" -> Soak.run(args);
                case "serve" -> {
                    int status = dev.mpsactors.server.ServeCommand.run(args.toArray(String[]::new));
                    if (status != 0) {
                        System.exit(status);
                    }
                }
                case "help", "-h", "--help" -> System.out.print(USAGE);
                default -> throw new UsageException("unknown command '" + command + "'");
            }
        } catch (UsageException | InvalidConfigException e) {
            System.err.println("mps-actors: " + e.getMessage());
            System.err.print(USAGE);
            System.exit(2);
        } catch (InputException e) {
            System.err.println("mps-actors: " + e.getMessage());
            System.exit(2);
        } catch (RuntimeException e) {
            System.err.println("mps-actors: " + oneLine(e));
            System.exit(1);
        }
    }

    /**
     * Whether {@code args} of {@code command} hold {@code --help} or {@code -h}: answered with the usage on stdout
     * and exit status 0. {@code native-workload} and {@code jmh} answer it themselves.
     */
    private static boolean asksForHelp(String command, Deque<String> args) {
        if (command.equals("native-workload") || command.equals("jmh") || command.equals("serve")) {
            return false;
        }
        return args.contains("--help") || args.contains("-h");
    }

    /** The packaged jar's Implementation-Version. */
    private static String version() {
        String v = Cli.class.getPackage().getImplementationVersion();
        return v != null ? v : "(unknown: not run from the packaged jar)";
    }

    /** Bad input files: exit 2 with one line. */
    static final class InputException extends RuntimeException {
        InputException(String message) {
            super(message);
        }
    }

    private static void run(Deque<String> args) throws Exception {
        Path model = null, input = null, output = null;
        String backend = null;
        InferenceProtocol.OutputSpec outputs = InferenceProtocol.OutputSpec.HF_DEFAULT;
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            switch (flag) {
                case "--outputs" -> {
                    try {
                        outputs = InferenceProtocol.OutputSpec.parse(value(flag, args));
                    } catch (IllegalArgumentException e) {
                        throw new UsageException("--outputs: " + e.getMessage());
                    }
                }
                case "--model" -> model = Path.of(value(flag, args));
                case "--input" -> input = Path.of(value(flag, args));
                case "--output" -> output = Path.of(value(flag, args));
                case "--backend" -> backend = value(flag, args);
                default -> throw new UsageException("run: unknown option '" + flag + "'");
            }
        }
        if (model == null || input == null || output == null) {
            throw new UsageException("run needs --model, --input and --output");
        }
        if (!Files.isDirectory(model)) {
            throw new InputException("model folder " + model + " does not exist");
        }
        InferenceInputs inputs = readInputs(input);
        try (MpsRuntime rt = MpsRuntime.start(config(backend))) {
            ActorRef<InferenceProtocol.Command> m = await(rt.models().loadModel("cli", model));
            InferResult result = await(rt.models().infer(m, "cli-1", inputs, outputs));
            writeOutputs(output, result);
        }
    }

    private static void importOnnx(Deque<String> args) throws IOException {
        Path onnx = null, tokenizer = null, out = null;
        InferenceProtocol.Pooling pooling = null;
        boolean normalize = false;
        Integer maxSeqLength = null;
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            switch (flag) {
                case "--tokenizer" -> tokenizer = Path.of(value(flag, args));
                case "--pooling" -> {
                    try {
                        pooling = InferenceProtocol.Pooling.of(value(flag, args));
                    } catch (IllegalArgumentException e) {
                        throw new UsageException("--pooling: " + e.getMessage());
                    }
                }
                case "--normalize" -> normalize = true;
                case "--max-seq-length" -> {
                    String v = value(flag, args);
                    try {
                        maxSeqLength = Integer.parseInt(v);
                    } catch (NumberFormatException e) {
                        throw new UsageException("--max-seq-length takes an integer, got '" + v + "'");
                    }
                    if (maxSeqLength < 2) {
                        throw new UsageException("--max-seq-length must be >= 2, got " + maxSeqLength);
                    }
                }
                case "--out" -> out = Path.of(value(flag, args));
                default -> {
                    if (flag.startsWith("--") || onnx != null) {
                        throw new UsageException("import-onnx: unknown option '" + flag + "'");
                    }
                    onnx = Path.of(flag);
                }
            }
        }
        if (onnx == null || out == null) {
            throw new UsageException("import-onnx needs MODEL.onnx and --out DIR");
        }
        if (pooling == null && (normalize || maxSeqLength != null)) {
            throw new UsageException("import-onnx: --normalize and --max-seq-length go with --pooling");
        }
        OnnxBertImporter.Imported imported;
        try {
            imported = OnnxBertImporter.importFolder(onnx, tokenizer, out);
        } catch (ModelFormatException e) {
            throw new InputException(e.getMessage());
        }
        System.out.println("wrote " + out + ": " + OnnxBertImporter.CONFIG_FILE + " (" + imported.config()
                .get("num_hidden_layers") + " layers, hidden " + imported.config().get("hidden_size") + ", "
                + imported.config().get("num_attention_heads") + " heads, " + imported.config().get("hidden_act").asText()
                + ", eps " + imported.config().get("layer_norm_eps") + "), " + OnnxBertImporter.WEIGHTS_FILE + " ("
                + imported.tensors().size() + " tensors" + (imported.hasPooler() ? "" : ", no pooler") + ")"
                + (tokenizer == null ? "" : ", " + OnnxBertImporter.TOKENIZER_FILE));
        if (pooling != null) {
            int limit = maxSeqLength != null ? maxSeqLength : imported.config().get("max_position_embeddings").intValue();
            SentenceEncoderConfig.write(out, pooling, normalize, limit);
            System.out.println("wrote " + out + ": " + SentenceEncoderConfig.MODULES_FILE + ", 1_Pooling/config.json ("
                    + pooling.name().toLowerCase(java.util.Locale.ROOT) + (normalize ? ", then Normalize" : "") + "), "
                    + SentenceEncoderConfig.SENTENCE_BERT_CONFIG_FILE + " (max_seq_length " + limit + ")");
        }
    }

    /** {@code load-test} is the same command under its older name. */
    private static void stress(String command, Deque<String> args) throws Exception {
        String line = "bin/mps-actors " + command + (args.isEmpty() ? "" : " " + String.join(" ", args));
        java.net.URI url = StressBench.takeUrl(args);
        StressOptions options = StressOptions.parse(args, command.equals("load-test"));
        int status = new StressBench(options, line, System.out, url).run();
        if (status != 0) {
            System.err.println("mps-actors: replies were lost");
            System.exit(status);
        }
    }

    private static void info(Deque<String> args) throws Exception {
        String backend = null;
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            if (flag.equals("--backend")) {
                backend = value(flag, args);
            } else {
                throw new UsageException("info: unknown option '" + flag + "'");
            }
        }
        Config config = config(backend);
        RuntimeSettings settings = RuntimeSettings.fromConfig(config);
        try (MpsRuntime rt = MpsRuntime.start(config)) {
            System.out.println("backend:  " + settings.backend());
            System.out.println("devices:  " + rt.devices().size() + " (mps-actors.devices = " + settings.devices() + ")");
            for (dev.mpsactors.runtime.RuntimeDevice d : rt.devices()) {
                System.out.println("device:   " + d.ordinal() + " " + d.info() + ", " + d.streams().count() + " streams");
            }
            System.out.println("settings: " + settings);
            System.out.println("config:   " + config.getConfig("mps-actors").root().render(
                    com.typesafe.config.ConfigRenderOptions.concise()));
        }
    }

    private static Config config(String backend) {
        Config base = ConfigFactory.load();
        return backend == null ? base : base.withValue("mps-actors.backend", ConfigValueFactory.fromAnyRef(backend));
    }

    static InferenceInputs readInputs(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new InputException("cannot read " + file + ": " + e.getMessage().lines().findFirst().orElse(""));
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
        if (result.logits() != null) {
            root.set("logits", mapper.valueToTree(result.logits()));
        }
        mapper.writeValue(file.toFile(), root);
    }

    static <T> T await(java.util.concurrent.CompletionStage<T> stage) throws InterruptedException {
        try {
            return stage.toCompletableFuture().get(10, TimeUnit.MINUTES);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() instanceof CompletionException c && c.getCause() != null ? c.getCause()
                    : e.getCause();
            throw cause instanceof RuntimeException r ? r : new RuntimeException(cause);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new RuntimeException("no answer within 10 minutes");
        }
    }

    private static String value(String flag, Deque<String> args) {
        String v = args.pollFirst();
        if (v == null) {
            throw new UsageException(flag + " needs a value");
        }
        return v;
    }

    private static String oneLine(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        return m.lines().findFirst().orElse(m);
    }
}
