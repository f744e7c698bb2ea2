package dev.mpsactors.bench;

import com.typesafe.config.Config;
import dev.mpsactors.actors.TextEncoderActor;
import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.text.TextTokenizer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;

/**
 * {@code stress --texts FILE}: the same closed-loop clients, once sending the file's texts as {@code Embed}
 * (the text encoder tokenizes on its dispatcher, then the model runs) and once sending the same texts as token
 * ids already made by the same tokenizer ({@code Infer} asking for the same pooled embedding), so the
 * tokenizer's cost is the difference. Each request carries {@code --batch-per-request} consecutive texts;
 * client i starts i requests into the file and cycles through it. Texts per second are requests per second
 * times the texts a request; tokens per second are texts per second times the mean tokens a text runs as
 * (special tokens included, after truncation to the model's limit).
 */
final class TextStress {
    private final StressOptions options;
    private final int clients;
    private final Config config;
    private final List<List<String>> requests;
    private final double tokensPerText;
    private final List<InferenceInputs> tokenRequests;
    private final InferenceProtocol.OutputSpec outputs;

    TextStress(StressOptions options, int clients, Config config, Path folder) {
        this.options = options;
        this.clients = clients;
        this.config = config;
        List<String> texts = EmbedCommand.readTextsOrLines(options.texts());
        if (texts.isEmpty()) {
            throw new Cli.InputException(options.texts() + ": no texts");
        }
        List<List<String>> reqs = new ArrayList<>();
        for (int start = 0; start < texts.size(); start += options.batchPerRequest()) {
            reqs.add(texts.subList(start, Math.min(texts.size(), start + options.batchPerRequest())));
        }
        this.requests = List.copyOf(reqs);
        TextEncoderActor.Text text = TextEncoderActor.Text.load(folder);
        try (TextTokenizer tokenizer = text.tokenizer()) {
            List<InferenceInputs> tokens = new ArrayList<>();
            long count = 0;
            for (List<String> r : requests) {
                TextTokenizer.Batch batch = tokenizer.encode(r, true);
                if (!batch.problems().isEmpty()) {
                    throw new Cli.InputException(options.texts() + ": " + batch.problems().get(0));
                }
                tokens.add(inputs(batch.tokens()));
                count += batch.tokens().stream().mapToInt(TextTokenizer.Tokens::length).sum();
            }
            this.tokenRequests = List.copyOf(tokens);
            this.tokensPerText = (double) count / texts.size();
        }
        this.outputs = InferenceProtocol.OutputSpec.embedding(text.config().pooling(), text.config().normalize());
    }

    /** Padded ids, mask and token types of one request, as the text encoder makes them. */
    private static InferenceInputs inputs(List<TextTokenizer.Tokens> tokens) {
        int longest = tokens.stream().mapToInt(TextTokenizer.Tokens::length).max().orElseThrow();
        int[][] ids = new int[tokens.size()][longest], mask = new int[tokens.size()][longest],
                types = new int[tokens.size()][longest];
        for (int i = 0; i < tokens.size(); i++) {
            TextTokenizer.Tokens t = tokens.get(i);
            System.arraycopy(t.ids(), 0, ids[i], 0, t.length());
            System.arraycopy(t.typeIds(), 0, types[i], 0, t.length());
            Arrays.fill(mask[i], 0, t.length(), 1);
        }
        return new InferenceInputs(ids, mask, types);
    }

    double tokensPerText() {
        return tokensPerText;
    }

    /** The text path, then the token-id path, on one runtime; the two measurements in that order. */
    List<Measurement> run(StressModel model, Supplier<LoadRecorder> newRecorder, PrintStream out) throws Exception {
        List<Measurement> ms = new ArrayList<>();
        try (MpsRuntime rt = MpsRuntime.start(config)) {
            ActorRef<TextProtocol.Command> encoder = ActorStress.await(rt.models().loadTextEncoder("stress-text",
                    model.folder()));
            ActorRef<InferenceProtocol.Command> ids = ActorStress.await(rt.models().loadModel("stress-ids", model.folder()));
            TextProtocol.EmbedOptions embed = new TextProtocol.EmbedOptions(null, null, true);
            ms.add(measure(rt, "texts", "Embed from text: tokenized by the text encoder, then the model", model,
                    newRecorder, out, (c, n) -> {
                        List<String> texts = requests.get((int) ((c + n) % requests.size()));
                        return self -> encoder.tell(new TextProtocol.Embed("t" + c + "-" + n, texts, embed,
                                self.narrow(), null));
                    }));
            ms.add(measure(rt, "token-ids", "Infer of the same texts' token ids, tokenized before the run", model,
                    newRecorder, out, (c, n) -> {
                        InferenceInputs in = tokenRequests.get((int) ((c + n) % tokenRequests.size()));
                        return self -> ids.tell(new InferenceProtocol.Infer("i" + c + "-" + n, in, self.narrow(), null,
                                outputs));
                    }));
        }
        return ms;
    }

    /** What client {@code c} sends as its {@code n}th request. */
    private interface Requests {
        Consumer<ActorRef<Object>> request(int client, long n);
    }

    private Measurement measure(MpsRuntime rt, String name, String description, StressModel model,
                                Supplier<LoadRecorder> newRecorder, PrintStream out, Requests requestsOf)
            throws Exception {
        List<StreamHandle> streams = rt.streams().handles();
        LoadRecorder rec = newRecorder.get();
        List<CompletableFuture<Void>> done = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            int client = c;
            long[] n = {0};
            CompletableFuture<Void> f = new CompletableFuture<>();
            done.add(f);
            rt.system().systemActorOf(ActorStress.client(self -> requestsOf.request(client, n[0]++).accept(self), rec,
                    f), "stress-" + name + "-client-" + c, Props.empty());
        }
        CompletableFuture<Void> all = CompletableFuture.allOf(done.toArray(CompletableFuture[]::new));
        Measurement m = MeasurementDriver.drive(new MeasurementDriver.Run(name, description, clients, streams.size(),
                rec, all, () -> ActorStress.busy(rt, streams), flopsPerRequest(model), options.batchPerRequest()), out);
        MeasurementDriver.awaitQuietly(all, MeasurementDriver.DRAIN_SECONDS);
        return m;
    }

    /** GEMM FLOPs of a request, the mean over the file's requests (each padded to its longest text). */
    private double flopsPerRequest(StressModel model) {
        double pooler = 2.0 * model.config().hiddenSize() * model.config().hiddenSize();
        double sum = 0;
        for (InferenceInputs in : tokenRequests) {
            sum += (model.shape(in.inputIds()[0].length).flopsPerRequest() + pooler) * in.inputIds().length;
        }
        return sum / tokenRequests.size();
    }

    /** The texts and tokens per second of the two measurements, and the tokenizer's share of the text path. */
    void printRates(List<Measurement> ms, PrintStream out) {
        out.printf("%ntexts from %s: %d requests of up to %d texts, %.1f tokens a text on average%n", options.texts(),
                requests.size(), options.batchPerRequest(), tokensPerText);
        for (Measurement m : ms) {
            double texts = m.sequencesPerSecond();
            out.printf("%-11s %9.1f texts/s %11.1f tokens/s%n", m.name(), texts, texts * tokensPerText);
        }
        if (ms.size() == 2 && ms.get(1).sequencesPerSecond() > 0) {
            out.printf("the text path runs at %.2fx the token-id path: tokenizing costs %.0f%% of its throughput%n",
                    ms.get(0).sequencesPerSecond() / ms.get(1).sequencesPerSecond(),
                    100 * (1 - ms.get(0).sequencesPerSecond() / ms.get(1).sequencesPerSecond()));
        }
    }
}
