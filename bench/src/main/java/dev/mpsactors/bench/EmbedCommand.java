package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.Embeddings;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import dev.mpsactors.runtime.EmbeddingFlow;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * {@code bin/mps-actors embed}: JSON lines of {@code {"text": ...}} in, JSON lines of
 * {@code {"embedding": [...], "tokens": N}} out, in order. Texts go to the model in requests of
 * {@code --batch} through {@link EmbeddingFlow} ({@code --parallelism} in flight); progress goes to stderr.
 * A bad line stops the run with its line number and the reason (exit 2).
 */
final class EmbedCommand {
    static final String USAGE = """
              embed --model DIR --input TEXTS.jsonl --output OUT.jsonl [--backend cpu] [--pooling P]
                    [--normalize true|false] [--no-truncate] [--batch 32] [--parallelism 4]
                                        sentence embeddings from text: one {"text": ...} per input line, one
                                        {"embedding": [..], "tokens": N} per output line; pooling and
                                        normalization as the folder's sentence-transformers files say unless given
            """;

    private EmbedCommand() {}

    static void run(Deque<String> args, Config config, PrintStream progress) throws Exception {
        Path model = null, input = null, output = null;
        Pooling pooling = null;
        Boolean normalize = null;
        boolean truncate = true;
        int batch = 32, parallelism = 4;
        while (!args.isEmpty()) {
            String flag = args.pollFirst();
            switch (flag) {
                case "--model" -> model = Path.of(value(flag, args));
                case "--input" -> input = Path.of(value(flag, args));
                case "--output" -> output = Path.of(value(flag, args));
                case "--backend" -> config = config.withValue("mps-actors.backend",
                        com.typesafe.config.ConfigValueFactory.fromAnyRef(value(flag, args)));
                case "--pooling" -> {
                    try {
                        pooling = Pooling.of(value(flag, args));
                    } catch (IllegalArgumentException e) {
                        throw new Cli.UsageException("--pooling: " + e.getMessage());
                    }
                }
                case "--normalize" -> {
                    String v = value(flag, args);
                    if (!v.equals("true") && !v.equals("false")) {
                        throw new Cli.UsageException("--normalize takes true or false, got '" + v + "'");
                    }
                    normalize = Boolean.parseBoolean(v);
                }
                case "--no-truncate" -> truncate = false;
                case "--batch" -> batch = positive(flag, value(flag, args));
                case "--parallelism" -> parallelism = positive(flag, value(flag, args));
                default -> throw new Cli.UsageException("embed: unknown option '" + flag + "'");
            }
        }
        if (model == null || input == null || output == null) {
            throw new Cli.UsageException("embed needs --model, --input and --output");
        }
        if (!Files.isDirectory(model)) {
            throw new Cli.InputException("model folder " + model + " does not exist");
        }
        Path inputFile = input;
        List<String> texts = readTexts(input);
        if (texts.isEmpty()) {
            throw new Cli.InputException(input + ": no lines to embed");
        }
        TextProtocol.EmbedOptions options = new TextProtocol.EmbedOptions(pooling, normalize, truncate);
        List<EmbeddingFlow.Request> requests = new ArrayList<>();
        for (int start = 0; start < texts.size(); start += batch) {
            requests.add(new EmbeddingFlow.Request(Integer.toString(start),
                    texts.subList(start, Math.min(texts.size(), start + batch)), options));
        }
        Progress bar = new Progress(progress, texts.size());
        ObjectMapper json = new ObjectMapper();
        try (MpsRuntime rt = MpsRuntime.start(config);
             BufferedWriter out = Files.newBufferedWriter(output, StandardCharsets.UTF_8)) {
            ActorRef<TextProtocol.Command> encoder = Cli.await(rt.models().loadTextEncoder("embed", model));
            Duration timeout = Duration.ofMinutes(10);
            Cli.await(Source.from(requests)
                    .via(EmbeddingFlow.create(encoder, parallelism, timeout, rt.system().scheduler()))
                    .runWith(Sink.foreach(reply -> {
                        int first = Integer.parseInt(reply.requestId());
                        if (reply instanceof TextFailure f) {
                            throw failure(inputFile, first, f);
                        }
                        Embeddings e = (Embeddings) reply;
                        for (int i = 0; i < e.vectors().length; i++) {
                            ObjectNode line = json.createObjectNode();
                            line.set("embedding", json.valueToTree(e.vectors()[i]));
                            line.put("tokens", e.tokenCounts()[i]);
                            out.write(json.writeValueAsString(line));
                            out.newLine();
                        }
                        bar.advance(e.vectors().length);
                    }), rt.system()));
        }
        bar.done();
    }

    /** A failed request as the user's file sees it: bad texts by line number (exit 2), else the reason (exit 1). */
    private static RuntimeException failure(Path input, int firstIndex, TextFailure f) {
        if (f.problems().isEmpty()) {
            return new RuntimeException("lines " + (firstIndex + 1) + "..: " + f.reason());
        }
        List<String> lines = new ArrayList<>();
        for (TextProblem p : f.problems()) {
            lines.add("line " + (firstIndex + p.index() + 1) + ": " + p.reason());
        }
        return new Cli.InputException(input + ": " + String.join("; ", lines));
    }

    /** The "text" of each line; a line that is not {"text": string} is refused with its number. */
    static List<String> readTexts(Path file) {
        ObjectMapper json = new ObjectMapper();
        List<String> texts = new ArrayList<>();
        var decoder = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        try (BufferedReader in = new BufferedReader(new java.io.InputStreamReader(Files.newInputStream(file), decoder))) {
            String line;
            int number = 0;
            while ((line = in.readLine()) != null) {
                number++;
                JsonNode node;
                try {
                    node = json.readTree(line);
                } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                    throw new Cli.InputException(file + ": line " + number + ": not JSON: " + e.getOriginalMessage());
                }
                if (node == null || !node.isObject() || !node.path("text").isTextual()) {
                    throw new Cli.InputException(file + ": line " + number + ": expected {\"text\": \"...\"}");
                }
                texts.add(node.get("text").textValue());
            }
        } catch (CharacterCodingException e) {
            throw new Cli.InputException(file + ": not valid UTF-8 (after line " + texts.size() + ")");
        } catch (IOException e) {
            throw new Cli.InputException("cannot read " + file + ": " + e.getMessage());
        }
        return texts;
    }

    /** A bar redrawn in place on a terminal; elsewhere a line per tenth of the file. */
    private static final class Progress {
        private final PrintStream out;
        private final int total;
        private final boolean terminal = System.console() != null;
        private final long start = System.nanoTime();
        private int done;
        private int lastTenth;

        Progress(PrintStream out, int total) {
            this.out = out;
            this.total = total;
        }

        void advance(int n) {
            done += n;
            int tenth = (int) (10L * done / total);
            if (terminal) {
                int width = 30, filled = (int) ((long) width * done / total);
                out.print("\r[" + "#".repeat(filled) + ".".repeat(width - filled) + "] " + done + "/" + total
                        + " texts, " + rate() + " texts/s");
            } else if (tenth > lastTenth && total >= 100) {
                out.println("embedded " + done + "/" + total + " texts (" + (tenth * 10) + "%), " + rate() + " texts/s");
            }
            lastTenth = tenth;
        }

        void done() {
            if (terminal) {
                out.println();
            }
            out.println("embedded " + done + " texts in " + String.format("%.1f", (System.nanoTime() - start) / 1e9)
                    + " s (" + rate() + " texts/s)");
        }

        private String rate() {
            double s = Math.max(1e-9, (System.nanoTime() - start) / 1e9);
            return String.format("%.1f", done / s);
        }
    }

    private static int positive(String flag, String v) {
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new Cli.UsageException(flag + " takes a positive integer, got '" + v + "'");
    }

    private static String value(String flag, Deque<String> args) {
        String v = args.pollFirst();
        if (v == null) {
            throw new Cli.UsageException(flag + " needs a value");
        }
        return v;
    }
}
