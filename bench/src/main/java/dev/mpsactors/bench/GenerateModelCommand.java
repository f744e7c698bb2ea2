package dev.mpsactors.bench;

import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.model.BertWeights;
import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.SafetensorsFile.Dtype;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code bin/mps-actors generate-model}: a Hugging Face BERT folder with seeded random weights. */
@Command(name = "generate-model", description = "Write a BERT folder with seeded random weights, laid out like a"
        + " real checkpoint (config.json, model.safetensors or shards, the bert. prefix).")
final class GenerateModelCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "OUT_DIR", description = "the folder to write")
    Path out;

    @Option(names = "--hidden", paramLabel = "H", description = "hidden size (default ${DEFAULT-VALUE})")
    int hidden = 64;

    @Option(names = "--layers", paramLabel = "N", description = "layers (default ${DEFAULT-VALUE})")
    int layers = 2;

    @Option(names = "--heads", paramLabel = "A", description = "attention heads (default ${DEFAULT-VALUE})")
    int heads = 4;

    @Option(names = "--intermediate", paramLabel = "I", description = "intermediate size (default ${DEFAULT-VALUE})")
    int intermediate = 128;

    @Option(names = "--vocab", paramLabel = "V", description = "vocabulary size (default ${DEFAULT-VALUE})")
    int vocab = 1000;

    @Option(names = "--max-pos", paramLabel = "P", description = "position embeddings (default ${DEFAULT-VALUE})")
    int maxPos = 128;

    @Option(names = "--type-vocab", paramLabel = "T", description = "token types (default ${DEFAULT-VALUE})")
    int typeVocab = 2;

    @Option(names = "--seed", paramLabel = "S", description = "the weights' seed (default ${DEFAULT-VALUE})")
    long seed = 1;

    @Option(names = "--dtype", paramLabel = "f32|f16|bf16", converter = DtypeConverter.class,
            description = "storage of the float tensors (default f32)")
    Dtype dtype = Dtype.F32;

    @Option(names = "--shards", paramLabel = "K", description = "1: model.safetensors; K >= 2: an index and K shards"
            + " (default ${DEFAULT-VALUE})")
    int shards = 1;

    @Option(names = "--no-prefix", description = "tensor names without the bert. prefix")
    boolean noPrefix;

    @Option(names = "--no-pooler", description = "leave the pooler out (as sentence-embedding checkpoints do)")
    boolean noPooler;

    @Override
    public Integer call() throws Exception {
        BertWeights w;
        BertConfig config;
        BertFolderGenerator.Options options;
        try {
            config = new BertConfig("bert", vocab, hidden, layers, heads, intermediate, maxPos, typeVocab, 1e-12,
                    "gelu");
            options = new BertFolderGenerator.Options(dtype, shards, !noPrefix, true, !noPooler);
            w = BertFolderGenerator.write(out, config, seed, options);
        } catch (IllegalArgumentException | ModelFormatException e) {
            throw new Cli.UsageException(e.getMessage());
        }
        long params = 0;
        for (int[] shape : BertWeights.expectedShapes(w.config()).values()) {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            params += n;
        }
        System.out.println("wrote " + out + ": " + config + ", " + params + " encoder parameters as " + dtype
                + ", " + options.shards() + " shard(s), seed " + seed);
        return 0;
    }

    /** f32, f16 or bf16. */
    static final class DtypeConverter extends Cli.ParsingConverter<Dtype> {
        DtypeConverter() {
            super(value -> switch (value.toLowerCase(java.util.Locale.ROOT)) {
                case "f32" -> Dtype.F32;
                case "f16" -> Dtype.F16;
                case "bf16" -> Dtype.BF16;
                default -> throw new IllegalArgumentException("f32, f16 or bf16, not '" + value + "'");
            });
        }
    }
}
