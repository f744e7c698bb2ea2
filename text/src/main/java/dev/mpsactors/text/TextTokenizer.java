package dev.mpsactors.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mpsactors.protocol.TextProtocol.TextProblem;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A model folder's {@code tokenizer.json} run by Hugging Face's tokenizers library (Rust, through DJL's
 * binding): the same normalizer, pre-tokenizer, model and post-processor (special tokens) as in Python.
 * The file's own padding is turned off (batches are padded by the model) and its truncation replaced by
 * the model's limit ({@link SentenceEncoderConfig#maxTokens()}).
 *
 * <p>Safe for concurrent {@link #encode} calls (the native tokenizer is immutable). {@link #close} frees
 * the native tokenizer once no encode is running: an encode that starts after close fails, one that is
 * running finishes on a live tokenizer.
 */
public final class TextTokenizer implements AutoCloseable {
    public static final String TOKENIZER_FILE = "tokenizer.json";
    private static final long CLOSED = 1L << 62;

    private final HuggingFaceTokenizer tokenizer;
    private final int maxTokens;
    /** Running encodes, plus {@link #CLOSED} once closed; the native tokenizer is freed when it is exactly CLOSED. */
    private final AtomicLong users = new AtomicLong();

    private TextTokenizer(HuggingFaceTokenizer tokenizer, int maxTokens) {
        this.tokenizer = tokenizer;
        this.maxTokens = maxTokens;
    }

    /** Loads {@code folder/tokenizer.json}, truncating at {@code maxTokens}; throws {@link TextFormatException}. */
    /**
     * DJL picks a CUDA build of the tokenizers library when it finds CUDA on the host, and that build is not in
     * its jar: it would try to download it, which fails on a host without internet access (and tokenizing runs
     * on the CPU anyway). The CPU library in the jar is used unless {@code RUST_FLAVOR} (environment or system
     * property, DJL's own switch) says otherwise.
     */
    private static void preferCpuLibrary() {
        if (System.getenv("RUST_FLAVOR") == null && System.getProperty("RUST_FLAVOR") == null) {
            System.setProperty("RUST_FLAVOR", "cpu");
        }
    }

    public static TextTokenizer load(Path folder, int maxTokens) {
        preferCpuLibrary();
        Path file = folder.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new TextFormatException(file + ": no such file (the model folder needs the tokenizer it was trained with)");
        }
        // parse first: the native loader's messages for a broken file are less clear than Jackson's
        try {
            JsonNode root = new ObjectMapper().readTree(file.toFile());
            if (root == null || !root.isObject() || !root.has("model")) {
                throw new TextFormatException(file + ": not a Hugging Face tokenizer.json (a JSON object with \"model\")");
            }
        } catch (IOException e) {
            throw new TextFormatException(file + ": not valid JSON: "
                    + String.valueOf(e.getMessage()).lines().findFirst().orElse(""), e);
        }
        try {
            HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(file, Map.of(
                    "addSpecialTokens", "true",
                    "padding", "false",
                    "truncation", "true",
                    "maxLength", Integer.toString(maxTokens)));
            return new TextTokenizer(t, maxTokens);
        } catch (IOException | RuntimeException e) {
            throw new TextFormatException(file + ": the tokenizers library refused it: " + e.getMessage(), e);
        }
    }

    public int maxTokens() {
        return maxTokens;
    }

    /** One text's tokens, or the reason it has none. */
    public record Tokens(int[] ids, int[] typeIds, boolean truncated) {
        public int length() {
            return ids.length;
        }
    }

    /**
     * The texts' tokens in order, and the problems of those that cannot be used (a text with a problem has a
     * null entry). {@code truncate} false refuses a text over the limit instead of cutting it.
     */
    public record Batch(List<Tokens> tokens, List<TextProblem> problems) {}

    public Batch encode(List<String> texts, boolean truncate) {
        return encodeEach(texts, truncate, tokenizer::encode, true,
                "longer than the model's limit of " + maxTokens + " tokens and truncation is off");
    }

    /**
     * Each (query, text) as one pair through the tokenizer's own pair template ({@code [CLS] q [SEP] t [SEP]},
     * {@code <s> q </s></s> t </s>}, …), truncated longest-first to the limit or, with {@code truncate} false,
     * refused when over it. Problems are the texts' (by index); the caller checks the query with {@link #problem}.
     */
    public Batch encodePairs(String query, List<String> texts, boolean truncate) {
        return encodeEach(texts, truncate, text -> tokenizer.encode(query, text), false,
                "the pair (query, text) is longer than the model's limit of " + maxTokens
                        + " tokens and truncation is off");
    }

    /**
     * Each text checked, then encoded by {@code encoder}; a text refused when it is bad, when it yields only
     * special tokens ({@code ownTokens}), or when it is over the limit with {@code truncate} off.
     */
    private Batch encodeEach(List<String> texts, boolean truncate, java.util.function.Function<String, Encoding> encoder,
                             boolean ownTokens, String overLimit) {
        acquire();
        try {
            List<Tokens> out = new ArrayList<>(texts.size());
            List<TextProblem> problems = new ArrayList<>();
            for (int i = 0; i < texts.size(); i++) {
                String problem = check(texts.get(i));
                Tokens tokens = null;
                if (problem == null) {
                    Encoding e = encoder.apply(texts.get(i));
                    if (ownTokens && onlySpecial(e)) {
                        problem = "the tokenizer finds no tokens in it (only special tokens)";
                    } else if (e.exceedMaxLength() && !truncate) {
                        problem = overLimit;
                    } else {
                        tokens = new Tokens(narrow(e.getIds()), narrow(e.getTypeIds()), e.exceedMaxLength());
                    }
                }
                if (problem != null) {
                    problems.add(new TextProblem(i, problem));
                }
                out.add(tokens);
            }
            return new Batch(out, problems);
        } finally {
            release();
        }
    }

    private static boolean onlySpecial(Encoding e) {
        for (long s : e.getSpecialTokenMask()) {
            if (s == 0) {
                return false;
            }
        }
        return true;
    }

    /** What is wrong with a text before it reaches the tokenizer (null, empty, whitespace only, bad UTF-16), or null. */
    public static String problem(String text) {
        return check(text);
    }

    /** What is wrong with a text before it reaches the tokenizer, or null. */
    static String check(String text) {
        if (text == null) {
            return "null";
        }
        if (text.isEmpty()) {
            return "empty";
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                    i++;
                    continue;
                }
                return "unpaired high surrogate U+" + Integer.toHexString(c).toUpperCase(java.util.Locale.ROOT)
                        + " at char " + i + " (not valid UTF-16)";
            }
            if (Character.isLowSurrogate(c)) {
                return "unpaired low surrogate U+" + Integer.toHexString(c).toUpperCase(java.util.Locale.ROOT)
                        + " at char " + i + " (not valid UTF-16)";
            }
        }
        if (text.codePoints().allMatch(cp -> Character.isWhitespace(cp) || Character.isSpaceChar(cp))) {
            return "whitespace only";
        }
        return null;
    }

    private static int[] narrow(long[] v) {
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = Math.toIntExact(v[i]);
        }
        return out;
    }

    private void acquire() {
        long now = users.incrementAndGet();
        if (now >= CLOSED) {
            release();
            throw new IllegalStateException("the tokenizer is closed");
        }
    }

    private void release() {
        if (users.decrementAndGet() == CLOSED) {
            freeOnce();
        }
    }

    private final java.util.concurrent.atomic.AtomicBoolean freed = new java.util.concurrent.atomic.AtomicBoolean();

    private void freeOnce() {
        if (freed.compareAndSet(false, true)) {
            tokenizer.close();
        }
    }

    @Override
    public void close() {
        long before = users.getAndUpdate(u -> u >= CLOSED ? u : u + CLOSED);
        if (before == 0) {
            freeOnce();
        }
    }
}
