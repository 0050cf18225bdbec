package dev.ferry.chaos.nemesis;

import java.io.IOException;
import java.util.concurrent.TimeUnit;

/** kill(1), for processes that are not daemons of the kit (a QEMU). */
final class Signals {
    private Signals() {}

    static boolean send(String signal, long pid) {
        try {
            Process p = new ProcessBuilder("kill", "-" + signal, Long.toString(pid))
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
            return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
