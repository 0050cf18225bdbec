package dev.ferry.chaos.scenario;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.chaos.runner.RunResult;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Scenarios with QEMU guests (the test guest): the frozen agent, and I1's negative control. */
class QemuChaosTest extends ChaosGroup {
    @BeforeAll
    static void qemu() {
        QemuTestSupport.requireQemu();
    }

    @Test
    void scenario7AFrozenAgentsGuestStopsBeforeItRunsElsewhere() {
        pass("7");
    }

    @Test
    void negativeControlASecondCopyIsCaughtByI1() {
        RunResult r = runner.run(new Scenarios.SecondCopy(), SEED);
        assertTrue(
                r.violations().stream().anyMatch(v -> v.invariant().equals("I1")),
                "I1 did not fire on a second copy: " + r.violations() + " " + r.error());
    }
}
