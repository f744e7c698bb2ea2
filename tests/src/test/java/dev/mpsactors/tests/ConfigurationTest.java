package dev.mpsactors.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.runtime.InvalidConfigException;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.MpsRuntimeException;
import dev.mpsactors.runtime.RuntimeSettings;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** Configuration: documented defaults, environment overrides, and invalid values refused with the key's name. */
class ConfigurationTest {

    @Test
    void defaultsComeFromReferenceConf() {
        RuntimeSettings s = RuntimeSettings.fromConfig(ConfigFactory.empty());
        assertEquals("cpu", s.backend());
        assertEquals(8, s.kernelShards());
        assertTrue(s.streams() >= 2);
        assertEquals(0.8, s.allocator().lowWatermarkRatio());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "mps-actors.streams = -1                       | mps-actors.streams",
        "mps-actors.streams = lots                     | mps-actors.streams",
        "mps-actors.backend = tpu                      | mps-actors.backend",
        "mps-actors.kernel-cache.shards = 0            | mps-actors.kernel-cache.shards",
        "mps-actors.allocator.low-watermark-ratio = 2  | mps-actors.allocator.low-watermark-ratio",
        "mps-actors.allocator.memory-limit = -5        | mps-actors.allocator.memory-limit",
        "mps-actors.allocator.wait-timeout = -1s       | mps-actors.allocator.wait-timeout",
        "mps-actors.ask-timeout = 0s                   | mps-actors.ask-timeout",
        "mps-actors.event-pool.max-events = 0          | mps-actors.event-pool.max-events",
        "mps-actors.blas-threads = 0                   | mps-actors.blas-threads",
        "mps-actors.gemm-math = fp8                    | mps-actors.gemm-math",
        "mps-actors.gemm-math = fp16                   | mps-actors.gemm-math",
        "mps-actors.model.storage = fp8                | mps-actors.model.storage",
        "mps-actors.model.storage = fp16               | mps-actors.model.storage",
    })
    void invalidValuesAreRefusedNamingTheKey(String setting, String key) {
        InvalidConfigException e = assertThrows(InvalidConfigException.class,
                () -> RuntimeSettings.fromConfig(ConfigFactory.parseString(setting)));
        assertEquals(key, e.path());
        assertTrue(e.getMessage().startsWith(key + ": "), e.getMessage());
    }

    @Test
    void aRuntimeWithInvalidConfigDoesNotStart() {
        InvalidConfigException e = assertThrows(InvalidConfigException.class,
                () -> MpsRuntime.start(ConfigFactory.parseString("mps-actors.streams = 999")));
        assertTrue(e.getMessage().contains("mps-actors.streams"), e.getMessage());
    }

    @Test
    void aBackendThatIsNotBuiltFailsAtStartWithTheBackendsMessage() {
        MpsRuntimeException e = assertThrows(MpsRuntimeException.class,
                () -> MpsRuntime.start(ConfigFactory.parseString("mps-actors.backend = metal")));
        assertTrue(e.getMessage().contains("metal"), e.getMessage());
    }

    @Test
    void environmentVariablesOverrideTheDefaults() throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                PrintSettings.class.getName()).redirectErrorStream(true);
        pb.environment().put("MPS_ACTORS_STREAMS", "3");
        pb.environment().put("MPS_ACTORS_KERNEL_SHARDS", "5");
        pb.environment().put("MPS_ACTORS_MEMORY_LIMIT", "123456789");
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child JVM finished");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("streams=3"), out);
        assertTrue(out.contains("kernelShards=5"), out);
        assertTrue(out.contains("memoryLimitBytes=123456789"), out);
    }

    /** Run in a child JVM by the environment test. */
    public static final class PrintSettings {
        public static void main(String[] args) {
            System.out.println(RuntimeSettings.fromConfig(ConfigFactory.load()));
        }
    }
}
