package dev.mpsactors.bench;

import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code bin/mps-actors help [COMMAND]}: the list of commands, or one command's usage, on stdout. */
@Command(name = "help", description = "The list of commands, or COMMAND's usage (the same as COMMAND --help).")
final class HelpCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(arity = "0..1", paramLabel = "COMMAND", description = "the command whose usage to print")
    String command;

    @Override
    public Integer call() {
        CommandLine root = spec.commandLine().getParent();
        CommandLine target = command == null ? root : root.getSubcommands().get(command);
        if (target == null) {
            throw new Cli.UsageException("unknown command '" + command + "'");
        }
        target.usage(spec.commandLine().getOut());
        return 0;
    }
}
