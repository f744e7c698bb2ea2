package dev.mpsactors.tests;

import com.typesafe.config.ConfigFactory;
import dev.mpsactors.runtime.MpsRuntime;

/**
 * Run in a fresh JVM by {@link UnavailableBackendTest}: starts the runtime on a backend whose library this
 * build lacks, before any native library was loaded. Prints the refusal and exits 0; a JVM stopped by the
 * failure would exit otherwise.
 */
public final class StartWithBackend {
    private StartWithBackend() {}

    public static void main(String[] args) {
        try {
            MpsRuntime rt = MpsRuntime.start(ConfigFactory.parseString("mps-actors.backend = " + args[0]));
            System.out.println("started?! " + rt);
            System.exit(3);
        } catch (RuntimeException e) {
            System.out.println("refused: " + e.getMessage());
        }
        System.out.println("jvm alive");
        System.exit(0);
    }
}
