package dev.mpsactors.bench;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.apache.pekko.actor.typed.ActorRef;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bin/mps-actors run}: one model folder on one JSON input, written as JSON. */
@Command(name = "run", description = {
        "Run a Hugging Face BERT folder on IN.json {\"input_ids\": [[..]], \"attention_mask\": [[..]],"
                + " \"token_type_ids\": [[..]]} (the last two optional).",
        "Writes {\"last_hidden_state\": [[[..]]], \"pooler_output\": [[..]]}, or what --outputs names"
                + " (an embedding is written as \"embedding\": [[..]])."})
final class RunCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "the model folder")
    Path model;

    @Option(names = "--input", required = true, paramLabel = "IN.json", description = "the token ids")
    Path input;

    @Option(names = "--output", required = true, paramLabel = "OUT.json", description = "where the outputs go")
    Path output;

    @Option(names = "--backend", paramLabel = "NAME", description = "cpu, cuda or metal (default: mps-actors.backend)")
    String backend;

    @Option(names = "--outputs", paramLabel = "LIST", converter = OutputSpecConverter.class,
            description = "last_hidden_state, pooler_output, embedding[:cls|mean|max|mean_sqrt_len][:normalized]"
                    + " (default: last_hidden_state,pooler_output)")
    InferenceProtocol.OutputSpec outputs = InferenceProtocol.OutputSpec.HF_DEFAULT;

    @Override
    public Integer call() throws Exception {
        if (!Files.isDirectory(model)) {
            throw new Cli.InputException("model folder " + model + " does not exist");
        }
        InferenceInputs inputs = Cli.readInputs(input);
        try (MpsRuntime rt = MpsRuntime.start(Cli.config(backend))) {
            ActorRef<InferenceProtocol.Command> m = Cli.await(rt.models().loadModel("cli", model));
            InferResult result = Cli.await(rt.models().infer(m, "cli-1", inputs, outputs));
            Cli.writeOutputs(output, result);
        }
        return 0;
    }

    /** {@code --outputs LIST} as the runtime parses it. */
    static final class OutputSpecConverter extends Cli.ParsingConverter<InferenceProtocol.OutputSpec> {
        OutputSpecConverter() {
            super(InferenceProtocol.OutputSpec::parse);
        }
    }
}
