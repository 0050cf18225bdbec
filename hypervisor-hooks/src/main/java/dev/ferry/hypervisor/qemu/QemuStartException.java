package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.HypervisorException;

/** Starting a QEMU process failed; {@link #failedStep()} says where. */
public final class QemuStartException extends HypervisorException {
    /** The steps of {@link QemuProcess#start}, in order. */
    public enum Step {
        PREPARE_RUN_DIR("prepare run directory"),
        LAUNCH("launch QEMU"),
        WAIT_FOR_QMP_SOCKET("wait for the QMP socket"),
        CONNECT_QMP("connect QMP"),
        QUERY("query QEMU"),
        CHECK_ACCEL("check the accelerator");

        private final String text;

        Step(String text) {
            this.text = text;
        }

        @Override
        public String toString() {
            return text;
        }
    }

    private final Step failedStep;

    QemuStartException(Step step, String message, Throwable cause) {
        super("start QEMU: " + step, message, cause);
        this.failedStep = step;
    }

    public Step failedStep() {
        return failedStep;
    }
}
