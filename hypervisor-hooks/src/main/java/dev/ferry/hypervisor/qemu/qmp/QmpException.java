package dev.ferry.hypervisor.qemu.qmp;

import dev.ferry.hypervisor.HypervisorException;

/**
 * A QMP command failed. {@link #step()} is {@code "QMP <command>"}; {@link #kind()} says whether
 * QEMU refused it (then {@link #errorClass()} and {@link #description()} are QEMU's own words),
 * gave no answer in time, or went away.
 */
public final class QmpException extends HypervisorException {
    /** How the command failed. */
    public enum Kind {
        /** QEMU answered with an error. */
        ERROR,
        /** No answer within the caller's timeout; QEMU may still carry the command out. */
        TIMEOUT,
        /** The connection ended (QEMU exited or closed the monitor) before the answer came. */
        DISCONNECTED,
        /** The client was closed by its owner. */
        CLOSED,
        /** QEMU sent something that is not QMP, or the handshake failed. */
        PROTOCOL,
        /** Reading or writing the socket failed. */
        IO
    }

    private final String command;
    private final Kind kind;
    private final String errorClass;
    private final String description;

    private QmpException(
            String command, Kind kind, String errorClass, String description, String message, Throwable cause) {
        super("QMP " + command, message, cause);
        this.command = command;
        this.kind = kind;
        this.errorClass = errorClass;
        this.description = description;
    }

    /** QEMU's error reply: {@code {"error": {"class": ..., "desc": ...}}}. */
    public static QmpException error(String command, String errorClass, String description) {
        return new QmpException(
                command,
                Kind.ERROR,
                errorClass,
                description,
                "QEMU refused it: " + errorClass + ": " + description,
                null);
    }

    public static QmpException timeout(String command, long millis) {
        return new QmpException(command, Kind.TIMEOUT, null, null, "no reply from QEMU within " + millis + " ms", null);
    }

    public static QmpException disconnected(String command, String reason) {
        return new QmpException(command, Kind.DISCONNECTED, null, null, reason, null);
    }

    public static QmpException closed(String command) {
        return new QmpException(command, Kind.CLOSED, null, null, "the QMP client is closed", null);
    }

    public static QmpException protocol(String command, String message, Throwable cause) {
        return new QmpException(command, Kind.PROTOCOL, null, null, message, cause);
    }

    public static QmpException io(String command, String message, Throwable cause) {
        return new QmpException(command, Kind.IO, null, null, message, cause);
    }

    public String command() {
        return command;
    }

    public Kind kind() {
        return kind;
    }

    /** QEMU's error class ({@code GenericError}, {@code CommandNotFound}, ...), or null when QEMU did not answer. */
    public String errorClass() {
        return errorClass;
    }

    /** QEMU's error description, or null when QEMU did not answer. */
    public String description() {
        return description;
    }
}
