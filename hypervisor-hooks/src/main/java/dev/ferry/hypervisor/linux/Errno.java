package dev.ferry.hypervisor.linux;

/** Names for the errno values Ferry's system calls can meet. */
final class Errno {
    private Errno() {}

    static String describe(int errno) {
        String name = switch (errno) {
            case 1 -> "EPERM (operation not permitted)";
            case 2 -> "ENOENT (no such file or directory)";
            case 3 -> "ESRCH (no such process)";
            case 4 -> "EINTR (interrupted system call)";
            case 5 -> "EIO (input/output error)";
            case 9 -> "EBADF (bad file descriptor)";
            case 11 -> "EAGAIN (resource temporarily unavailable)";
            case 12 -> "ENOMEM (out of memory)";
            case 13 -> "EACCES (permission denied)";
            case 14 -> "EFAULT (bad address)";
            case 16 -> "EBUSY (device or resource busy)";
            case 19 -> "ENODEV (no such device)";
            case 22 -> "EINVAL (invalid argument)";
            case 25 -> "ENOTTY (ioctl not supported by this kernel or file)";
            case 28 -> "ENOSPC (no space left on device)";
            case 38 -> "ENOSYS (system call not implemented)";
            case 95 -> "EOPNOTSUPP (operation not supported)";
            default -> "errno " + errno;
        };
        return name;
    }
}
