package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.LabelScore;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.TextRequestFailedException;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code bin/mps-actors rerank} and {@code classify}: the texts of a JSONL file through a model folder's
 * sequence-classification head, in requests of {@code --batch} ({@code --parallelism} in flight, answers
 * written in the file's order), with the progress on stderr as {@code embed} shows it. A model without such a
 * head answers each request with an unsupported failure: the command stops at the first with that reason on
 * one line (exit 2); a bad text is named by its line (exit 2).
 */
final class ScoreCommands {
    private ScoreCommands() {}

    /** The options both commands share. */
    abstract static class Scoring implements Callable<Integer> {
        @Mixin
        TextFileOptions files;

        @Option(names = "--raw-scores", description = "the head's logits, without the model's activation")
        boolean rawScores;

        @Spec
        CommandSpec spec;

        /** "scored", "classified". */
        abstract String verb();

        /** Asks the encoder about {@code texts}; each answer becomes one output line per text. */
        abstract CompletionStage<List<ObjectNode>> ask(MpsRuntime rt, ActorRef<TextProtocol.Command> encoder,
                                                       String requestId, List<String> texts,
                                                       TextProtocol.ScoreOptions options, ObjectMapper json);

        @Override
        public Integer call() throws Exception {
            List<String> texts = files.texts(spec.name());
            int batch = files.batch;
            List<Integer> starts = new ArrayList<>();
            for (int start = 0; start < texts.size(); start += batch) {
                starts.add(start);
            }
            TextProtocol.ScoreOptions options = new TextProtocol.ScoreOptions(!files.noTruncate, rawScores);
            Progress bar = new Progress(System.err, texts.size(), verb());
            ObjectMapper json = new ObjectMapper();
            try (MpsRuntime rt = MpsRuntime.start(Cli.config(files.backend));
                 BufferedWriter out = Files.newBufferedWriter(files.output, StandardCharsets.UTF_8)) {
                ActorRef<TextProtocol.Command> encoder = Cli.await(rt.models().loadTextEncoder(spec.name(), files.model));
                Cli.await(Source.from(starts)
                        .mapAsync(files.parallelism, start -> ask(rt, encoder, Integer.toString(start),
                                texts.subList(start, Math.min(texts.size(), start + batch)), options, json)
                                .exceptionally(e -> {
                                    throw failure(start, e);
                                }))
                        .runWith(Sink.foreach(lines -> {
                            for (ObjectNode line : lines) {
                                out.write(json.writeValueAsString(line));
                                out.newLine();
                            }
                            bar.advance(lines.size());
                        }), rt.system()));
            }
            bar.done();
            return 0;
        }

        /** A refused request as the user's file sees it: bad texts by line number, else the model's reason. */
        private RuntimeException failure(int firstIndex, Throwable e) {
            Throwable cause = e instanceof CompletionException c && c.getCause() != null ? c.getCause() : e;
            if (cause instanceof TextRequestFailedException t) {
                return EmbedCommand.failure(files.input, firstIndex,
                        new TextFailure(Integer.toString(firstIndex), t.kind(), t.getMessage(), t.problems()));
            }
            return cause instanceof RuntimeException r ? r : new CompletionException(cause);
        }
    }

    @Command(name = "rerank", description = {
            "Relevance of each text to --query with a cross-encoder (a sequence-classification head of one label):"
                    + " one {\"text\": ...} per input line, one {\"index\": i, \"score\": s, \"tokens\": N} per"
                    + " output line, in the input's order."})
    static final class Rerank extends Scoring {
        @Option(names = "--query", required = true, paramLabel = "Q", description = "what the texts are scored against")
        String query;

        @Override
        String verb() {
            return "scored";
        }

        @Override
        CompletionStage<List<ObjectNode>> ask(MpsRuntime rt, ActorRef<TextProtocol.Command> encoder, String requestId,
                                              List<String> texts, TextProtocol.ScoreOptions options,
                                              ObjectMapper json) {
            int first = Integer.parseInt(requestId);
            return rt.models().rerank(encoder, requestId, query, texts, options).thenApply(s -> {
                List<ObjectNode> lines = new ArrayList<>();
                for (int i = 0; i < s.scores().length; i++) {
                    ObjectNode line = json.createObjectNode();
                    line.put("index", first + i);
                    line.put("score", s.scores()[i]);
                    line.put("tokens", s.tokenCounts()[i]);
                    lines.add(line);
                }
                return lines;
            });
        }
    }

    @Command(name = "classify", description = {
            "Labels of each text from the model's sequence-classification head: one {\"text\": ...} per input line,"
                    + " one {\"labels\": [{\"label\": L, \"score\": s}, ..], \"tokens\": N} per output line (labels"
                    + " highest first), in the input's order."})
    static final class Classify extends Scoring {
        @Override
        String verb() {
            return "classified";
        }

        @Override
        CompletionStage<List<ObjectNode>> ask(MpsRuntime rt, ActorRef<TextProtocol.Command> encoder, String requestId,
                                              List<String> texts, TextProtocol.ScoreOptions options,
                                              ObjectMapper json) {
            return rt.models().classify(encoder, requestId, texts, options).thenApply(c -> {
                List<ObjectNode> lines = new ArrayList<>();
                for (int i = 0; i < c.labels().size(); i++) {
                    ObjectNode line = json.createObjectNode();
                    ArrayNode labels = line.putArray("labels");
                    for (LabelScore l : c.labels().get(i)) {
                        labels.addObject().put("label", l.label()).put("score", l.score());
                    }
                    line.put("tokens", c.tokenCounts()[i]);
                    lines.add(line);
                }
                return lines;
            });
        }
    }
}
