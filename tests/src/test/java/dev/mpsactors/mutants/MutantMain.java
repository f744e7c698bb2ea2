package dev.mpsactors.mutants;

import static net.bytebuddy.matcher.ElementMatchers.named;

import dev.mpsactors.nativemps.NativeLibraryLoader;
import java.lang.instrument.Instrumentation;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import net.bytebuddy.agent.ByteBuddyAgent;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.utility.JavaModule;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;
import org.junit.platform.engine.discovery.DiscoverySelectors;

/**
 * Runs one hazard test in this (child) JVM with one mutant in place: weaves the mutant's advice into the
 * owners before they load, runs the test through the JUnit launcher and prints one outcome line:
 * {@code MUTANT-OUTCOME survived}, {@code MUTANT-OUTCOME killed: <the test's failure>} or
 * {@code MUTANT-OUTCOME error: <why the mutant was not in place>}. Exit status 0, 1 and 2 respectively.
 * Started by {@link HazardMutantsTest} with {@code -javaagent:byte-buddy-agent.jar}.
 */
public final class MutantMain {
    private MutantMain() {}

    public static void main(String[] args) {
        HazardMutant mutant = HazardMutant.number(Integer.parseInt(args[0]));
        Set<String> woven = ConcurrentHashMap.newKeySet();
        Instrumentation instrumentation = ByteBuddyAgent.getInstrumentation();
        AgentBuilder builder = new AgentBuilder.Default()
                .disableClassFormatChanges()
                .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
                .with(new AgentBuilder.Listener.Adapter() {
                    @Override
                    public void onTransformation(TypeDescription type, ClassLoader loader, JavaModule module,
                                                 boolean loaded, DynamicType dynamicType) {
                        woven.add(type.getName());
                    }

                    @Override
                    public void onError(String type, ClassLoader loader, JavaModule module, boolean loaded,
                                        Throwable throwable) {
                        System.out.println("MUTANT-OUTCOME error: weaving " + type + " failed: " + throwable);
                        System.exit(2);
                    }
                });
        for (HazardMutant.Weave weave : mutant.weaves) {
            builder = builder.type(named(weave.type()))
                    .transform((b, type, loader, module, domain) -> b.visit(weave.advice()));
        }
        builder.installOn(instrumentation);

        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClass(mutant.testClass)).build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        launcher.execute(request, summary);
        TestExecutionSummary result = summary.getSummary();

        for (HazardMutant.Weave weave : mutant.weaves) {
            if (!woven.contains(weave.type())) {
                outcome(2, "error: the mutant's advice never reached " + weave.type());
            }
        }
        String library = NativeLibraryLoader.loadedLibrary();
        if (mutant.nativeMutant && (library == null || !library.contains("mutants"))) {
            outcome(2, "error: the test ran on " + library + ", not on libmpsnative_mutants.so");
        }
        if (result.getTestsFoundCount() == 0) {
            outcome(2, "error: no test found in " + mutant.testClass);
        }
        if (result.getTotalFailureCount() == 0) {
            outcome(0, "survived");
        }
        Throwable failure = result.getFailures().get(0).getException();
        outcome(1, "killed: " + firstLine(failure));
    }

    private static String firstLine(Throwable t) {
        String text = t.getClass().getSimpleName() + ": " + t.getMessage();
        int newline = text.indexOf('\n');
        return newline < 0 ? text : text.substring(0, newline);
    }

    private static void outcome(int status, String line) {
        System.out.println("MUTANT-OUTCOME " + line);
        System.out.flush();
        // Halt: a mutant may leave owners blocked forever, and shutdown hooks would wait for them.
        Runtime.getRuntime().halt(status);
    }
}
