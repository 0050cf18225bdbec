package dev.ferry.pki;

/** A PKI operation failed; {@link #step()} names what it was doing. */
public final class PkiException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The step of a PKI operation that failed. */
    public enum Step {
        CREATE_CA,
        LOAD_CA,
        ISSUE,
        REVOKE,
        WRITE,
        READ
    }

    private final Step step;

    public PkiException(Step step, String message) {
        super(message);
        this.step = step;
    }

    public PkiException(Step step, String message, Throwable cause) {
        super(message, cause);
        this.step = step;
    }

    public Step step() {
        return step;
    }
}
