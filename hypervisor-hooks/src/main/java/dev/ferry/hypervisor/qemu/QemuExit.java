package dev.ferry.hypervisor.qemu;

import java.util.List;

/**
 * How a QEMU process ended.
 *
 * @param requested true when Ferry asked for it ({@link QemuProcess#close()}); false when QEMU
 *     died, was killed by someone else, or the guest powered off
 * @param exitCode the exit status, or -1 when a signal ended it
 * @param signal the signal that ended it, or 0
 * @param reason one sentence: how it ended and what QEMU and QMP said about it
 * @param stderrTail the last lines QEMU wrote to stderr in this run
 */
public record QemuExit(boolean requested, int exitCode, int signal, String reason, List<String> stderrTail) {
    /** Java reports a child killed by signal N as exit value 128 + N. */
    static QemuExit of(boolean requested, int javaExitValue, String context, List<String> stderrTail) {
        int signal = javaExitValue > 128 && javaExitValue < 128 + 65 ? javaExitValue - 128 : 0;
        int code = signal != 0 ? -1 : javaExitValue;
        String how = signal != 0 ? "killed by signal " + signal + signalName(signal) : "exited with status " + code;
        StringBuilder reason = new StringBuilder("QEMU ").append(how);
        if (context != null && !context.isEmpty()) {
            reason.append("; ").append(context);
        }
        if (!stderrTail.isEmpty()) {
            reason.append("; last stderr: ").append(stderrTail.getLast());
        }
        return new QemuExit(requested, code, signal, reason.toString(), List.copyOf(stderrTail));
    }

    private static String signalName(int signal) {
        return switch (signal) {
            case 6 -> " (SIGABRT)";
            case 9 -> " (SIGKILL)";
            case 11 -> " (SIGSEGV)";
            case 15 -> " (SIGTERM)";
            default -> "";
        };
    }
}
