package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;

/**
 * Opens a report page in headless Chromium, as a person would open it in a browser: the DOM it
 * built has every chart and data point, and it logged no error (a blocked load, a parse error).
 * ./run-tests installs Debian's chromium and requires it; elsewhere, without it the check is
 * skipped unless {@code -Dferry.chromium.required=true} or the CI variable is set (as for QEMU).
 */
final class ChromiumCheck {
    private ChromiumCheck() {}

    static Path binary() {
        for (String b : List.of("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")) {
            if (Files.isExecutable(Path.of(b))) {
                return Path.of(b);
            }
        }
        return null;
    }

    static void assertRenders(Path html, int rounds, Path tmp) throws Exception {
        Path chromium = binary();
        if (chromium == null) {
            String ci = System.getenv("CI");
            if (Boolean.getBoolean("ferry.chromium.required") || (ci != null && !ci.isBlank() && !ci.equals("false"))) {
                throw new AssertionError("chromium is not installed (apt-get install chromium)");
            }
            Assumptions.abort("chromium is not installed");
        }
        File dom = tmp.resolve("dom.html").toFile();
        File log = tmp.resolve("chromium.log").toFile();
        Process p = new ProcessBuilder(
                        chromium.toString(),
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--user-data-dir=" + tmp.resolve("chromium-profile"),
                        "--enable-logging=stderr",
                        "--v=0",
                        "--dump-dom",
                        html.toUri().toString())
                .redirectOutput(dom)
                .redirectError(log)
                .start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "chromium ended");
        String out = Files.readString(dom.toPath(), StandardCharsets.UTF_8);
        String err = Files.readString(log.toPath(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), err);
        // The DOM as Chromium built it: four charts, the points of each.
        assertEquals(4, count(out, "<svg "), out);
        assertEquals(2 * rounds + rounds + rounds, count(out, "<(circle|rect) class=\"pt\" data-(series|round)"), out);
        // A console message from the page would be an error of ours: nothing may be refused or thrown.
        for (String bad : List.of("Uncaught", "Refused to", "CONSOLE", "net::ERR")) {
            assertFalse(err.contains(bad), bad + " in chromium's log:\n" + err);
        }
    }

    static int count(String s, String regex) {
        Matcher m = Pattern.compile(regex).matcher(s);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }
}
