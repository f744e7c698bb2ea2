package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Runs every folder of a families check in one runtime (bench/device/families.sh), as {@code bin/mps-actors run}
 * runs one: {@code FamilyRuns ROOT OUT_DIR} reads {@code ROOT/cases.json} ({@code [{"name": …, "outputs": …}]}),
 * loads {@code ROOT/NAME}, runs {@code ROOT/NAME-in.json} asking for the case's outputs and writes
 * {@code OUT_DIR/NAME.json}; the backend and GEMM math come from the configuration ({@code MPS_ACTORS_BACKEND},
 * {@code MPS_ACTORS_GEMM_MATH}). A case that fails is reported and the others still run; an exception ends it then
 * (exit status 1).
 */
public final class FamilyRuns {
    private FamilyRuns() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            throw new IllegalArgumentException("usage: FamilyRuns ROOT OUT_DIR");
        }
        Path root = Path.of(args[0]), out = Path.of(args[1]);
        Files.createDirectories(out);
        JsonNode cases = new ObjectMapper().readTree(root.resolve("cases.json").toFile());
        int failed = 0;
        try (MpsRuntime rt = MpsRuntime.start(ConfigFactory.load())) {
            for (JsonNode c : cases) {
                String name = c.get("name").asText();
                try {
                    ActorRef<InferenceProtocol.Command> model = Cli.await(rt.models().loadModel(name, root.resolve(name)));
                    InferenceProtocol.InferResult result = Cli.await(rt.models().infer(model, name,
                            Cli.readInputs(root.resolve(name + "-in.json")),
                            InferenceProtocol.OutputSpec.parse(c.get("outputs").asText())));
                    Cli.writeOutputs(out.resolve(name + ".json"), result);
                    System.out.println(name + ": ran (" + c.get("outputs").asText() + ")");
                } catch (Exception e) {
                    failed++;
                    System.out.println(name + ": FAILED " + e.getMessage());
                }
            }
        }
        if (failed > 0) { // a non-zero exit status for the script, from an uncaught exception: only Cli exits
            throw new IllegalStateException(failed + " of " + cases.size() + " cases failed");
        }
    }
}
