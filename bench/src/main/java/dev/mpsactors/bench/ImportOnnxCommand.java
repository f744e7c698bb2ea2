package dev.mpsactors.bench;

import dev.mpsactors.model.ModelFormatException;
import dev.mpsactors.model.onnx.OnnxBertImporter;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.text.SentenceEncoderConfig;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code bin/mps-actors import-onnx}: an ONNX export of a BERT-family encoder as a Hugging Face folder. */
@Command(name = "import-onnx", description = {
        "Import an ONNX export of a BERT-family encoder as a Hugging Face folder (config.json derived from the"
                + " graph, model.safetensors, the tokenizer).",
        "With --pooling also write the sentence-transformers files (modules.json, 1_Pooling, a Normalize module,"
                + " sentence_bert_config.json): the graph ends at last_hidden_state and cannot say how the model"
                + " card pools; for all-MiniLM-L6-v2: --pooling mean --normalize --max-seq-length 256."})
final class ImportOnnxCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL.onnx", description = "the ONNX file")
    Path onnx;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "the folder to write")
    Path out;

    @Option(names = "--tokenizer", paramLabel = "tokenizer.json", description = "the tokenizer to copy in")
    Path tokenizer;

    @Option(names = "--pooling", paramLabel = "P", converter = PoolingConverter.class,
            description = "cls, mean, max or mean_sqrt_len: write the sentence-transformers files")
    InferenceProtocol.Pooling pooling;

    @Option(names = "--normalize", description = "L2-normalize the pooled embedding (with --pooling)")
    boolean normalize;

    @Option(names = "--max-seq-length", paramLabel = "N", description = "the token limit (with --pooling; >= 2)")
    Integer maxSeqLength;

    @Override
    public Integer call() throws Exception {
        if (maxSeqLength != null && maxSeqLength < 2) {
            throw new Cli.UsageException("--max-seq-length must be >= 2, got " + maxSeqLength);
        }
        if (pooling == null && (normalize || maxSeqLength != null)) {
            throw new Cli.UsageException("--normalize and --max-seq-length go with --pooling");
        }
        OnnxBertImporter.Imported imported;
        try {
            imported = OnnxBertImporter.importFolder(onnx, tokenizer, out);
        } catch (ModelFormatException e) {
            throw new Cli.InputException(e.getMessage());
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
                    + pooling.name().toLowerCase(Locale.ROOT) + (normalize ? ", then Normalize" : "") + "), "
                    + SentenceEncoderConfig.SENTENCE_BERT_CONFIG_FILE + " (max_seq_length " + limit + ")");
        }
        return 0;
    }

    /** A pooling by its name, as the runtime parses it. */
    static final class PoolingConverter extends Cli.ParsingConverter<InferenceProtocol.Pooling> {
        PoolingConverter() {
            super(InferenceProtocol.Pooling::of);
        }
    }
}
