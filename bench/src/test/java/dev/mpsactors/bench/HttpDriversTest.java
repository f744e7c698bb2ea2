package dev.mpsactors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.mpsactors.model.BertFolderGenerator;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.server.MpsServer;
import dev.mpsactors.server.ServerSettings;
import dev.mpsactors.server.VocabularyTokenizer;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bin/mps-actors stress --url} and {@code soak --url} as a user runs them (a separate JVM, through the
 * command line's entry point), for a few seconds on a generated model: every request sent answered, none
 * lost, exit status 0.
 */
class HttpDriversTest {
    @TempDir
    Path dir;

    @Test
    void stressDrivesARunningServerOverHttpAndLosesNothing() throws Exception {
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        BertFolderGenerator.write(model, CliTest.CONFIG, 5);
        VocabularyTokenizer.write(model, CliTest.CONFIG.vocabSize());
        Config c = ConfigFactory.parseString("mps-actors.server { host = \"127.0.0.1\", port = 0, "
                + "warmup-batch-sizes = [] }\nmps-actors.streams = 1").withFallback(ConfigFactory.load()).resolve();
        MpsServer server = MpsServer.start(MpsRuntime.start(c), ServerSettings.fromConfig(c), Map.of("tiny", model));
        try {
            Path json = dir.resolve("stress.json");
            CliTest.Outcome o = CliTest.cliIn(dir, "stress", "--url", server.url(), "--model", model.toString(),
                    "--clients", "2", "--seconds", "2", "--warmup", "0.5", "--seq", "12", "--compare", "none",
                    "--gemm-seconds", "0", "--outputs", "embedding:mean:normalized", "--streams", "1",
                    "--json", json.toString());
            assertEquals(0, o.exit(), o.stdout() + o.stderr());
            // the table's row of the HTTP run: ... sent succeeded failed lost
            Matcher row = Pattern.compile("(?m)^http\\s.*\\s(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s*$").matcher(o.stdout());
            assertTrue(row.find(), "an http row in the report:\n" + o.stdout());
            long sent = Long.parseLong(row.group(1));
            assertTrue(sent > 0, o.stdout());
            assertEquals(sent, Long.parseLong(row.group(2)), "every request sent succeeded:\n" + o.stdout());
            assertEquals(0, Long.parseLong(row.group(3)), o.stdout());
            assertEquals(0, Long.parseLong(row.group(4)), o.stdout());
            assertTrue(Files.readString(json).contains("\"http\""), "the JSON report has the http run");
        } finally {
            assertTrue(server.shutdown().isEmpty(), "the server freed everything");
        }
    }

    @Test
    void soakThroughTheServerLosesNoReply() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        CliTest.Outcome o = CliTest.cliIn(dir, "soak", "--minutes", "0.1", "--clients", "4", "--crash-every", "2",
                "--url", "http://127.0.0.1:" + port);
        assertEquals(0, o.exit(), o.stdout() + o.stderr());
        assertTrue(o.stdout().contains("soak: through the HTTP server at http://127.0.0.1:" + port), o.stdout());
        Matcher replies = Pattern.compile("replies\\s+(\\d+) \\(lost (\\d+), answered twice (\\d+)\\)").matcher(o.stdout());
        assertTrue(replies.find(), o.stdout());
        assertTrue(Long.parseLong(replies.group(1)) > 0, o.stdout());
        assertEquals(List.of("0", "0"), List.of(replies.group(2), replies.group(3)), o.stdout());
        assertTrue(o.stdout().contains("soak passed"), o.stdout());
    }
}
