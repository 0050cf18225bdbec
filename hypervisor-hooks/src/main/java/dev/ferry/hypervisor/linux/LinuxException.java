package dev.ferry.hypervisor.linux;

import java.io.IOException;

/** A system call failed; carries errno. */
public final class LinuxException extends IOException {
    private final int errno;

    public LinuxException(String call, int errno) {
        super(call + " failed: " + Errno.describe(errno));
        this.errno = errno;
    }

    public int errno() {
        return errno;
    }
}
