package dev.ferry.hypervisor.qemu.dirty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class KernelProbeTest {
    /** Linux 6.7 brought both UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN. */
    private static boolean kernelAtLeast6_7() {
        String[] v = System.getProperty("os.version").split("[.-]");
        int major = Integer.parseInt(v[0]);
        int minor = Integer.parseInt(v[1]);
        return major > 6 || (major == 6 && minor >= 7);
    }

    @Test
    void answersWithOneSentenceMatchingTheKernelVersion() {
        KernelProbe.Result r = KernelProbe.probe();
        LoggerFactory.getLogger(KernelProbeTest.class).info("kernel probe: {}", r.detail());
        assertTrue(r.detail().contains(System.getProperty("os.version")), r.detail());
        if (!kernelAtLeast6_7()) {
            assertEquals(false, r.present(), r.detail());
        } else {
            // A 6.7+ kernel may still lack them (config, seccomp); then the sentence must say which.
            assertTrue(
                    r.present()
                            || r.detail().contains("userfaultfd")
                            || r.detail().contains("PAGEMAP_SCAN"),
                    r.detail());
        }
    }
}
