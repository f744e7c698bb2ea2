package dev.mpsactors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import dev.mpsactors.runtime.MpsRuntime;
import dev.mpsactors.runtime.RuntimeSettings;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bin/mps-actors info}: the backend, the device and the effective configuration. */
@Command(name = "info", description = "The backend, the device and the effective configuration.")
final class InfoCommand implements Callable<Integer> {
    @Option(names = "--backend", paramLabel = "NAME", description = "cpu, cuda or metal (default: mps-actors.backend)")
    String backend;

    @Override
    public Integer call() throws Exception {
        Config config = Cli.config(backend);
        RuntimeSettings settings = RuntimeSettings.fromConfig(config);
        try (MpsRuntime rt = MpsRuntime.start(config)) {
            System.out.println("backend:  " + settings.backend());
            System.out.println("devices:  " + rt.devices().size() + " (mps-actors.devices = " + settings.devices() + ")");
            for (dev.mpsactors.runtime.RuntimeDevice d : rt.devices()) {
                System.out.println("device:   " + d.ordinal() + " " + d.info() + ", " + d.streams().count() + " streams");
            }
            System.out.println("settings: " + settings);
            System.out.println("config:   " + config.getConfig("mps-actors").root()
                    .render(ConfigRenderOptions.concise()));
        }
        return 0;
    }
}
