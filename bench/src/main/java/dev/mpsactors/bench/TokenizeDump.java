package dev.mpsactors.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import dev.mpsactors.text.TextTokenizer;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The token ids mps-actors gives each text, for comparing with Python's {@code tokenizers} on the same
 * {@code tokenizer.json} (bench/device/families.sh): {@code TokenizeDump DIR MAX_TOKENS IN.jsonl OUT.jsonl} reads
 * one {@code {"text": …}} per line and writes, per line in the same order, {@code {"ids": […], "truncated": b}},
 * or {@code {"refused": reason}} for a text {@link TextTokenizer} refuses (whitespace only, only special tokens).
 * Truncation is on, at {@code MAX_TOKENS}, as the text encoder runs it.
 */
public final class TokenizeDump {
    private TokenizeDump() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 4) {
            throw new IllegalArgumentException("usage: TokenizeDump MODEL_DIR MAX_TOKENS IN.jsonl OUT.jsonl");
        }
        ObjectMapper json = new ObjectMapper();
        int lines = 0, refused = 0;
        try (TextTokenizer tokenizer = TextTokenizer.load(Path.of(args[0]), Integer.parseInt(args[1]));
             BufferedReader in = Files.newBufferedReader(Path.of(args[2]), StandardCharsets.UTF_8);
             BufferedWriter out = Files.newBufferedWriter(Path.of(args[3]), StandardCharsets.UTF_8)) {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                JsonNode text = json.readTree(line).get("text");
                TextTokenizer.Batch batch = tokenizer.encode(List.of(text.textValue()), true);
                ObjectNode row = json.createObjectNode();
                if (batch.problems().isEmpty()) {
                    TextTokenizer.Tokens tokens = batch.tokens().get(0);
                    row.set("ids", json.valueToTree(tokens.ids()));
                    row.put("truncated", tokens.truncated());
                } else {
                    row.put("refused", batch.problems().stream().map(TextProblem::reason).findFirst().orElseThrow());
                    refused++;
                }
                out.write(json.writeValueAsString(row));
                out.newLine();
                lines++;
            }
        }
        System.out.println("tokenized " + lines + " texts (" + refused + " refused) into " + args[3]);
    }
}
