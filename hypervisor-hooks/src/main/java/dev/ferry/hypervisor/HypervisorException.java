package dev.ferry.hypervisor;

/** A driver operation failed; {@link #step()} names the step, for operators and logs. */
public class HypervisorException extends Exception {
    private final String step;

    public HypervisorException(String step, String message) {
        super(step + ": " + message);
        this.step = step;
    }

    public HypervisorException(String step, String message, Throwable cause) {
        super(step + ": " + message, cause);
        this.step = step;
    }

    public String step() {
        return step;
    }
}
