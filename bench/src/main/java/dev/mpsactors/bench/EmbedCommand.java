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
import dev.mpsactors.runtime.TextFlows;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.TextRequestFailedException;
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
import java.util.List;
import java.util.concurrent.Callable;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code bin/mps-actors embed}: JSON lines of {@code {"text": ...}} in, JSON lines of
 * {@code {"embedding": [...], "tokens": N}} out, in order. Texts go to the model in requests of
 * {@code --batch} through {@link TextFlows} ({@code --parallelism} in flight); progress goes to stderr.
 * A bad line stops the run with its line number and the reason (exit 2).
 */
@Command(name = "embed", description = {
        "Sentence embeddings from text: one {\"text\": ...} per input line, one {\"embedding\": [..],"
                + " \"tokens\": N} per output line, in order.",
        "Pooling and normalization as the folder's sentence-transformers files say unless given."})
final class EmbedCommand implements Callable<Integer> {
    @Mixin
    TextFileOptions files;

    @Option(names = "--pooling", paramLabel = "P", converter = ImportOnnxCommand.PoolingConverter.class,
            description = "cls, mean, max or mean_sqrt_len (default: the folder's)")
    Pooling pooling;

    @Option(names = "--normalize", arity = "1", paramLabel = "true|false",
            description = "L2-normalize (default: the folder's)")
    Boolean normalize;

    @Override
    public Integer call() throws Exception {
        run(Cli.config(files.backend), System.err);
        return 0;
    }

    void run(Config config, PrintStream progress) throws Exception {
        List<String> texts = files.texts("embed");
        int batch = files.batch;
        TextProtocol.EmbedOptions options = new TextProtocol.EmbedOptions(pooling, normalize, !files.noTruncate);
        List<TextFlows.EmbedRequest> requests = new ArrayList<>();
        for (int start = 0; start < texts.size(); start += batch) {
            requests.add(new TextFlows.EmbedRequest(Integer.toString(start),
                    texts.subList(start, Math.min(texts.size(), start + batch)), options));
        }
        Progress bar = new Progress(progress, texts.size(), "embedded");
        ObjectMapper json = new ObjectMapper();
        try (MpsRuntime rt = MpsRuntime.start(config);
             BufferedWriter out = Files.newBufferedWriter(files.output, StandardCharsets.UTF_8)) {
            ActorRef<TextProtocol.Command> encoder = Cli.await(rt.models().loadTextEncoder("embed", files.model));
            Duration timeout = Duration.ofMinutes(10);
            Cli.await(Source.from(requests)
                    .via(TextFlows.embed(encoder, files.parallelism, timeout, rt.system().scheduler()))
                    .runWith(Sink.foreach(reply -> {
                        int first = Integer.parseInt(reply.requestId());
                        if (reply instanceof TextFailure f) {
                            throw failure(files.input, first, f);
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
    static RuntimeException failure(Path input, int firstIndex, TextFailure f) {
        if (f.problems().isEmpty()) {
            return new TextRequestFailedException(f.kind(), "lines " + (firstIndex + 1) + "..: " + f.reason(),
                    List.of());
        }
        List<String> lines = new ArrayList<>();
        for (TextProblem p : f.problems()) {
            lines.add("line " + (firstIndex + p.index() + 1) + ": " + p.reason());
        }
        return new Cli.InputException(input + ": " + String.join("; ", lines));
    }

    /**
     * The texts of {@code file}: the "text" of each line when the file is JSON lines (its first non-blank line
     * starts with '{'), else each non-blank line as it is.
     */
    static List<String> readTextsOrLines(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (CharacterCodingException e) {
            throw new Cli.InputException(file + ": not valid UTF-8");
        } catch (IOException e) {
            throw new Cli.InputException("cannot read " + file + ": " + e.getMessage());
        }
        boolean json = lines.stream().filter(l -> !l.isBlank()).findFirst().map(l -> l.strip().startsWith("{"))
                .orElse(false);
        return json ? readTexts(file) : lines.stream().filter(l -> !l.isBlank()).toList();
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
}
