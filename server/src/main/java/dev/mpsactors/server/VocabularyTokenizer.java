package dev.mpsactors.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.text.TextTokenizer;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Writes a Hugging Face {@code tokenizer.json} for a generated BERT folder (random weights, no tokenizer of
 * its own) so that it can be served as a text encoder: a BERT-style WordPiece tokenizer over a vocabulary of
 * exactly the model's size — {@code [PAD]} 0, {@code [UNK]} 1, {@code [CLS]} 2, {@code [SEP]} 3,
 * {@code [MASK]} 4, then the words {@code w5}, {@code w6}, ... — for load tests and the soak.
 */
public final class VocabularyTokenizer {
    private VocabularyTokenizer() {}

    public static void write(Path folder, int vocabSize) throws IOException {
        if (vocabSize < 6) {
            throw new IllegalArgumentException("a vocabulary needs at least 6 entries, got " + vocabSize);
        }
        String[] special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        ObjectNode root = JsonBodies.MAPPER.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int i = 0; i < special.length; i++) {
            added.addObject().put("id", i).put("content", special[i]).put("single_word", false).put("lstrip", false)
                    .put("rstrip", false).put("normalized", false).put("special", true);
        }
        root.putObject("normalizer").put("type", "BertNormalizer").put("clean_text", true)
                .put("handle_chinese_chars", true).putNull("strip_accents").put("lowercase", true);
        root.putObject("pre_tokenizer").put("type", "BertPreTokenizer");
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", "[CLS]").put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        single.addObject().putObject("SpecialToken").put("id", "[SEP]").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("SpecialToken").put("id", "[CLS]").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("SpecialToken").put("id", "[SEP]").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        pair.addObject().putObject("SpecialToken").put("id", "[SEP]").put("type_id", 1);
        ObjectNode specials = post.putObject("special_tokens");
        for (int i = 2; i <= 3; i++) {
            ObjectNode s = specials.putObject(special[i]);
            s.put("id", special[i]);
            s.putArray("ids").add(i);
            s.putArray("tokens").add(special[i]);
        }
        root.putObject("decoder").put("type", "WordPiece").put("prefix", "##").put("cleanup", true);
        ObjectNode model = root.putObject("model");
        model.put("type", "WordPiece").put("unk_token", "[UNK]").put("continuing_subword_prefix", "##")
                .put("max_input_chars_per_word", 100);
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < vocabSize; i++) {
            vocab.put(i < special.length ? special[i] : "w" + i, i);
        }
        JsonBodies.MAPPER.writerWithDefaultPrettyPrinter().writeValue(
                folder.resolve(TextTokenizer.TOKENIZER_FILE).toFile(), root);
    }
}
