package dev.mpsactors.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.util.ArrayList;
import java.util.List;

/**
 * Reading request bodies: strict JSON (no trailing garbage, no duplicate keys, bounded nesting and number
 * length) into a tree, then typed fields with a 400/422 naming the field and what was expected. Nothing
 * here lets a parser exception or a stack trace reach the client.
 */
final class JsonBodies {
    /** Deeper than any request of the API needs (token arrays are two levels inside the object). */
    static final int MAX_DEPTH = 16;

    static final ObjectMapper MAPPER = JsonMapper.builder(new com.fasterxml.jackson.core.JsonFactoryBuilder()
                    .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(MAX_DEPTH)
                            .maxNumberLength(64).maxStringLength(64 << 20).build())
                    .build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .disable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private JsonBodies() {}

    /** The body as a JSON object; 400 when it is not valid JSON, 422 when it is not an object. */
    static JsonNode object(String body) {
        JsonNode root;
        try {
            root = MAPPER.readTree(body);
        } catch (JsonProcessingException e) {
            String why = e.getOriginalMessage() == null ? "malformed" : e.getOriginalMessage();
            throw ApiException.badRequest("the body is not valid JSON: " + oneLine(why)
                    + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr() + ")"), null);
        }
        if (root == null || root.isMissingNode()) {
            throw ApiException.badRequest("the body is empty: a JSON object is expected", null);
        }
        if (!root.isObject()) {
            throw ApiException.unprocessable("the body must be a JSON object, got " + kind(root), null);
        }
        return root;
    }

    static String oneLine(String s) {
        String line = s.lines().findFirst().orElse(s);
        return line.length() > 200 ? line.substring(0, 200) + "..." : line;
    }

    static String kind(JsonNode n) {
        if (n == null || n.isMissingNode()) {
            return "nothing";
        }
        return switch (n.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            default -> n.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    static JsonNode field(JsonNode body, String name) {
        JsonNode v = body.get(name);
        return v == null || v.isNull() ? null : v;
    }

    static boolean bool(JsonNode body, String name, boolean fallback) {
        JsonNode v = field(body, name);
        if (v == null) {
            return fallback;
        }
        if (!v.isBoolean()) {
            throw ApiException.unprocessable("\"" + name + "\" must be a boolean, got " + kind(v), name);
        }
        return v.booleanValue();
    }

    static String string(JsonNode body, String name, boolean required) {
        JsonNode v = field(body, name);
        if (v == null) {
            if (required) {
                throw ApiException.unprocessable("\"" + name + "\" is missing", name);
            }
            return null;
        }
        if (!v.isTextual()) {
            throw ApiException.unprocessable("\"" + name + "\" must be a string, got " + kind(v), name);
        }
        return v.textValue();
    }

    /** A string or a list of strings. */
    static List<String> texts(JsonNode body, String name) {
        JsonNode v = field(body, name);
        if (v == null) {
            throw ApiException.unprocessable("\"" + name + "\" is missing", name);
        }
        if (v.isTextual()) {
            return List.of(v.textValue());
        }
        if (!v.isArray()) {
            throw ApiException.unprocessable("\"" + name + "\" must be a string or a list of strings, got " + kind(v),
                    name);
        }
        List<String> out = new ArrayList<>(v.size());
        for (int i = 0; i < v.size(); i++) {
            if (!v.get(i).isTextual()) {
                throw ApiException.unprocessable("\"" + name + "\"[" + i + "] must be a string, got " + kind(v.get(i)),
                        name);
            }
            out.add(v.get(i).textValue());
        }
        return out;
    }

    /** A token id: an integer that fits an int (negative ids are refused by the encoder, naming the position). */
    static int tokenId(JsonNode v, String where, String param) {
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw ApiException.unprocessable(where + " must be an integer token id, got "
                    + (v.isNumber() ? v.asText() : kind(v)), param);
        }
        return v.intValue();
    }
}
