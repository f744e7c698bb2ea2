package dev.mpsactors.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Option;

/** The options of the commands that run the texts of a JSON-lines file through a model folder: embed, rerank, classify. */
final class TextFileOptions {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "the model folder")
    Path model;

    @Option(names = "--input", required = true, paramLabel = "TEXTS.jsonl", description = "one {\"text\": ...} a line")
    Path input;

    @Option(names = "--output", required = true, paramLabel = "OUT.jsonl", description = "one answer a line")
    Path output;

    @Option(names = "--backend", paramLabel = "NAME", description = "cpu, cuda or metal (default: mps-actors.backend)")
    String backend;

    @Option(names = "--no-truncate", description = "refuse texts over the model's limit instead of cutting them")
    boolean noTruncate;

    @Option(names = "--batch", paramLabel = "N", description = "texts a request (default: ${DEFAULT-VALUE})")
    int batch = 32;

    @Option(names = "--parallelism", paramLabel = "N", description = "requests in flight (default: ${DEFAULT-VALUE})")
    int parallelism = 4;

    /** The input's texts, after checking the options and the folder; {@code verb} names the command's work. */
    List<String> texts(String verb) {
        Cli.positive("--batch", batch);
        Cli.positive("--parallelism", parallelism);
        if (!Files.isDirectory(model)) {
            throw new Cli.InputException("model folder " + model + " does not exist");
        }
        List<String> texts = EmbedCommand.readTexts(input);
        if (texts.isEmpty()) {
            throw new Cli.InputException(input + ": no lines to " + verb);
        }
        return texts;
    }
}
