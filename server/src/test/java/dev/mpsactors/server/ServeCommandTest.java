package dev.mpsactors.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertFolderGenerator;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code serve} as the command line runs it (picocli: help, usage errors with status 2), then a whole run on
 * a generated model given a vocabulary tokenizer: HTTP answers, the load driver's closed loop counts every
 * request answered once, and stopping answers what is in flight and frees the device.
 */
class ServeCommandTest {
    @TempDir
    static Path dir;

    record Outcome(int status, String out, String err) {}

    static Outcome run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cl = ServeCommand.commandLine(new ServeCommand());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int status = cl.execute(args);
        return new Outcome(status, out.toString(), err.toString());
    }

    @Test
    void helpAndUsageErrors() {
        Outcome help = run("--help");
        assertEquals(0, help.status());
        assertTrue(help.out().contains("--model=NAME=DIR") && help.out().contains("--port"), help.out());
        Outcome none = run();
        assertEquals(2, none.status());
        assertTrue(none.err().contains("Missing required option: '--model=NAME=DIR'"), none.err());
        Outcome missing = run("--model", "m=" + dir.resolve("absent"));
        assertEquals(2, missing.status());
        assertTrue(missing.err().contains("no such folder"), missing.err());
        assertEquals(2, run("--model", "m=" + dir, "--port", "many").status());
    }

    @Test
    void servesAGeneratedModelUnderTheLoadDriverAndStopsCleanly() throws Exception {
        Path folder = dir.resolve("generated");
        java.nio.file.Files.createDirectories(folder);
        BertFolderGenerator.write(folder, new BertConfig("bert", 80, 32, 2, 4, 64, 64, 2, 1e-12, "gelu"), 4);
        VocabularyTokenizer.write(folder, 80);
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        ServeCommand command = new ServeCommand(new PrintStream(printed, true));
        CompletableFuture<Integer> status = CompletableFuture.supplyAsync(() -> ServeCommand.commandLine(command)
                .execute("--model", "gen=" + folder, "--host", "127.0.0.1", "--port", "0"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!printed.toString().contains("listening on") && System.nanoTime() < deadline && !status.isDone()) {
            Thread.sleep(20);
        }
        assertTrue(printed.toString().contains("listening on"), printed + " / " + status);
        assertTrue(printed.toString().startsWith("mps-actors serve: loading gen and warming every shape"),
                "says what it does before the warm-up: " + printed);
        String url = command.server().url();
        TestServers.Client http = new TestServers.Client(url);
        TestServers.Reply r = http.post("/v1/embeddings", "{\"input\": \"w5 w6 w79 unknownword\"}");
        assertEquals(200, r.status(), r.toString());
        assertEquals(6, r.json().path("usage").path("prompt_tokens").asInt(), "[CLS] w5 w6 w79 [UNK] [SEP]");

        HttpLoad load = new HttpLoad(URI.create(url));
        assertEquals("gen", load.defaultModel());
        AtomicInteger issued = new AtomicInteger(), ok = new AtomicInteger(), failed = new AtomicInteger();
        AtomicLong latency = new AtomicLong();
        List<List<int[][]>> requests = new ArrayList<>();
        for (int c = 0; c < 3; c++) {
            requests.add(List.of(new int[][] {{2, 10 + c, 11, 3}}, new int[][] {{2, 12, 3}, {2, 13, 14, 15, 3}}));
        }
        load.start("gen", requests, new HttpLoad.Recorder() {
            @Override
            public boolean trySend() {
                return issued.incrementAndGet() <= 30;
            }

            @Override
            public void completed(long sentAtNanos, boolean success, String failure) {
                (success ? ok : failed).incrementAndGet();
                latency.addAndGet(System.nanoTime() - sentAtNanos);
            }
        }).get(120, TimeUnit.SECONDS);
        assertEquals(30, ok.get(), "every request answered once, each successfully (failed " + failed + ")");
        assertEquals(0, failed.get());
        long[] busy = load.streamBusyNanos();
        assertTrue(busy.length >= 2 && java.util.Arrays.stream(busy).sum() > 0, java.util.Arrays.toString(busy));

        command.stop();
        assertEquals(0, status.get(60, TimeUnit.SECONDS));
    }
}
