package dev.mpsactors.bench;

import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.model.onnx.OnnxBertImporter;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** The model every measurement of one stress run shares: a given Hugging Face folder or a generated one. */
record StressModel(Path folder, BertConfig config, boolean generated) {
    /** MiniLM-sized (hidden 384, 6 layers, 12 heads, intermediate 1536), vocabulary 8192. */
    static final BertConfig DEFAULT = new BertConfig("bert", 8192, 384, 6, 12, 1536, 512, 2, 1e-12, "gelu");

    static StressModel resolve(Path folder) throws IOException {
        return resolve(folder, null);
    }

    /** A given folder; else the ONNX export {@code onnx} imported into a temporary folder; else a generated one. */
    static StressModel resolve(Path folder, Path onnx) throws IOException {
        if (folder != null) {
            return new StressModel(folder, HfModelFolder.readConfig(folder.resolve(HfModelFolder.CONFIG_FILE)), false);
        }
        if (onnx != null) {
            Path dir = Files.createTempDirectory("mps-actors-stress-onnx-");
            OnnxBertImporter.importFolder(onnx, null, dir);
            return new StressModel(dir, HfModelFolder.readConfig(dir.resolve(HfModelFolder.CONFIG_FILE)), true);
        }
        Path dir = Files.createTempDirectory("mps-actors-stress-model-");
        BertFolderGenerator.write(dir, DEFAULT, 42);
        return new StressModel(dir, DEFAULT, true);
    }

    /** Deletes a generated folder (a given one is the user's). */
    void cleanUp() {
        if (!generated) {
            return;
        }
        try (var files = Files.walk(folder)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temp folder left behind is harmless
        }
    }

    EncoderShape shape(int seq) {
        return BertWorkload.shape(config, seq);
    }

    /**
     * GEMM FLOPs of one request (multiply-add = 2), as {@link EncoderShape} counts them; with
     * {@code --lengths}, the mean over one client's requests.
     */
    double flopsPerRequest(StressOptions o) {
        if (o.mix() == StressOptions.Mix.LAYERNORM) {
            return 2.0 * o.seq() * config.hiddenSize() * config.hiddenSize();
        }
        double pooler = 2.0 * config.hiddenSize() * config.hiddenSize();
        if (o.lengths() == null) {
            return (shape(o.seq()).flopsPerRequest() + pooler) * o.batchPerRequest();
        }
        double sum = 0;
        List<InferenceInputs> requests = clientRequests(0, o);
        for (InferenceInputs in : requests) {
            sum += (shape(in.inputIds()[0].length).flopsPerRequest() + pooler) * o.batchPerRequest();
        }
        return sum / requests.size();
    }

    /** Requests per client with {@code --lengths}: each client cycles through this many. */
    static final int REQUESTS_PER_CLIENT = 32;

    /**
     * Client {@code client}'s requests, the same in every measurement of the run: one of {@code --seq} tokens,
     * or with {@code --lengths} {@link #REQUESTS_PER_CLIENT} of lengths drawn uniformly from the range.
     */
    List<InferenceInputs> clientRequests(int client, StressOptions o) {
        Random random = new Random(client);
        if (o.lengths() == null) {
            return List.of(randomInputs(random, o.batchPerRequest(), o.seq()));
        }
        List<InferenceInputs> out = new ArrayList<>();
        for (int i = 0; i < REQUESTS_PER_CLIENT; i++) {
            int length = o.lengths().min() + random.nextInt(o.lengths().max() - o.lengths().min() + 1);
            out.add(randomInputs(random, o.batchPerRequest(), length));
        }
        return List.copyOf(out);
    }

    int sequencesPerRequest(StressOptions o) {
        return o.mix() == StressOptions.Mix.LAYERNORM ? 1 : o.batchPerRequest();
    }

    InferenceInputs randomInputs(Random random, int batch, int seq) {
        int[][] ids = new int[batch][seq];
        for (int[] row : ids) {
            for (int t = 0; t < seq; t++) {
                row[t] = random.nextInt(config.vocabSize());
            }
        }
        return InferenceInputs.of(ids);
    }

    String describe() {
        return "hidden=" + config.hiddenSize() + " layers=" + config.numHiddenLayers() + " heads="
                + config.numAttentionHeads() + " intermediate=" + config.intermediateSize() + " vocab="
                + config.vocabSize();
    }
}
