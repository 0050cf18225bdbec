package dev.ferry.hypervisor.linux;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few Linux system calls Ferry needs that the JDK does not expose, through the FFM API.
 * Each wrapper returns the raw result and throws {@link LinuxException} with errno on failure.
 */
public final class Linux {
    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;

    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int SIGKILL = 9;
    public static final int SIGTERM = 15;
    public static final int SIGCONT = 18;
    public static final int SIGSTOP = 19;

    public static final int MADV_REMOVE = 9;
    public static final int MADV_POPULATE_WRITE = 23;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

    private static final MethodHandle OPEN = downcall(
            "open",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE =
            downcall("close", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), CAPTURE_ERRNO);
    private static final MethodHandle IOCTL = downcall(
            "ioctl",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle FALLOCATE = downcall(
            "fallocate",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG),
            CAPTURE_ERRNO);
    // critical: the call is short and may read or write a Java heap array directly (no copy).
    private static final MethodHandle PREAD = downcall(
            "pread64",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS,
                    ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG),
            CAPTURE_ERRNO,
            Linker.Option.critical(true));
    private static final MethodHandle PWRITE = downcall(
            "pwrite64",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS,
                    ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG),
            CAPTURE_ERRNO,
            Linker.Option.critical(true));
    private static final MethodHandle LSEEK = downcall(
            "lseek",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT),
            CAPTURE_ERRNO);
    private static final MethodHandle MADVISE = downcall(
            "madvise",
            FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT),
            CAPTURE_ERRNO);

    private static final MethodHandle SYSCALL_INT = downcall(
            "syscall",
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT),
            CAPTURE_ERRNO,
            Linker.Option.firstVariadicArg(1));
    private static final MethodHandle KILL = downcall(
            "kill",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
            CAPTURE_ERRNO);

    /** userfaultfd(2) has no libc wrapper on Debian 12; its number differs per architecture. */
    private static final long SYS_USERFAULTFD = switch (System.getProperty("os.arch")) {
        case "amd64", "x86_64" -> 323;
        case "aarch64" -> 282;
        default -> -1;
    };

    private Linux() {}

    private static MethodHandle downcall(String name, FunctionDescriptor fd, Linker.Option... options) {
        MemorySegment symbol =
                LINKER.defaultLookup().find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    public static int open(String path, int flags) throws LinuxException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: path is a NUL-terminated copy owned by this arena for the duration of the call;
            // mode is ignored without O_CREAT.
            int fd = (int) OPEN.invokeExact(state, arena.allocateFrom(path), flags, 0);
            if (fd < 0) {
                throw new LinuxException("open " + path, errno(state));
            }
            return fd;
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: closing a descriptor this process opened and owns; errors on close are not actionable.
            if ((int) CLOSE.invokeExact(state, fd) < 0) {
                return; // nothing to do: the descriptor is gone either way
            }
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** ioctl with a pointer argument; returns the ioctl's non-negative result. */
    public static int ioctl(int fd, long request, MemorySegment arg) throws LinuxException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: arg is a native segment sized for the request's argument struct by the caller,
            // alive for the duration of the call.
            int r = (int) IOCTL.invokeExact(state, fd, request, arg);
            if (r < 0) {
                throw new LinuxException("ioctl 0x" + Long.toHexString(request), errno(state));
            }
            return r;
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * pread into {@code dst} (native or a heap array segment) until it is full; a short file is an error.
     * Returns the bytes read.
     */
    public static long pread(int fd, MemorySegment dst, long offset) throws LinuxException {
        long done = 0;
        long len = dst.byteSize();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            while (done < len) {
                // SAFETY: dst is a live segment of at least len bytes (heap segments are pinned for the
                // duration of a critical call); the kernel writes only inside [done, len).
                long r = (long) PREAD.invokeExact(state, fd, dst.asSlice(done), len - done, offset + done);
                if (r < 0) {
                    int e = errno(state);
                    if (e == 4) {
                        continue; // EINTR
                    }
                    throw new LinuxException("pread", e);
                }
                if (r == 0) {
                    throw new LinuxException("pread past the end of the file", 5);
                }
                done += r;
            }
            return done;
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** pwrite all of {@code src} (native or a heap array segment). */
    public static void pwrite(int fd, MemorySegment src, long offset) throws LinuxException {
        long done = 0;
        long len = src.byteSize();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            while (done < len) {
                // SAFETY: src is a live segment of len bytes; the kernel only reads it.
                long r = (long) PWRITE.invokeExact(state, fd, src.asSlice(done), len - done, offset + done);
                if (r < 0) {
                    int e = errno(state);
                    if (e == 4) {
                        continue; // EINTR
                    }
                    throw new LinuxException("pwrite", e);
                }
                done += r;
            }
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static final int SEEK_DATA = 3;
    private static final int ENXIO = 6;

    /**
     * The first offset at or after {@code offset} that holds data (lseek SEEK_DATA), or -1 when only
     * a hole follows: lets a reader skip memory that was never written without reading it.
     */
    public static long seekData(int fd, long offset) throws LinuxException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: lseek only moves this descriptor's file offset; nothing else reads it (all our I/O is
            // positional).
            long r = (long) LSEEK.invokeExact(state, fd, offset, SEEK_DATA);
            if (r < 0) {
                int e = errno(state);
                if (e == ENXIO) {
                    return -1;
                }
                throw new LinuxException("lseek(SEEK_DATA)", e);
            }
            return r;
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** fallocate on a descriptor this process owns (e.g. punching a hole to free file pages). */
    public static void fallocate(int fd, int mode, long offset, long length) throws LinuxException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: fd is open and owned by the caller; fallocate touches only the file's blocks, no memory of this
            // process.
            int r = (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
            if (r < 0) {
                throw new LinuxException("fallocate(" + mode + ")", errno(state));
            }
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** madvise over part of a mapping this process owns. */
    public static void madvise(MemorySegment mapping, long offset, long length, int advice) throws LinuxException {
        if (offset < 0 || length < 0 || offset + length > mapping.byteSize()) {
            throw new IndexOutOfBoundsException("madvise [" + offset + ", +" + length + ") of " + mapping.byteSize());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: the range lies inside a live mapping owned by this process (checked above);
            // MADV_REMOVE and MADV_POPULATE_WRITE only change backing memory, never the mapping itself.
            int r = (int) MADVISE.invokeExact(state, mapping.address() + offset, length, advice);
            if (r < 0) {
                throw new LinuxException("madvise(" + advice + ")", errno(state));
            }
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** userfaultfd(2): a new userfaultfd descriptor with {@code flags} (O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY). */
    public static int userfaultfd(int flags) throws LinuxException {
        if (SYS_USERFAULTFD < 0) {
            throw new LinuxException("userfaultfd on " + System.getProperty("os.arch"), 38);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: userfaultfd takes one int of flags and no pointers; the descriptor it returns is
            // owned by the caller, who closes it.
            long fd = (long) SYSCALL_INT.invokeExact(state, SYS_USERFAULTFD, flags);
            if (fd < 0) {
                throw new LinuxException("userfaultfd", errno(state));
            }
            return (int) fd;
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** kill(2): sends {@code signal} to process {@code pid}. */
    public static void kill(long pid, int signal) throws LinuxException {
        if (pid <= 0 || pid > Integer.MAX_VALUE) {
            // kill(0 or negative) addresses process groups: never what a caller holding a pid meant.
            throw new IllegalArgumentException("not a single process id: " + pid);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            // SAFETY: no pointers; pid is a positive single process id (checked above), so the signal
            // can never reach a process group.
            int r = (int) KILL.invokeExact(state, (int) pid, signal);
            if (r < 0) {
                throw new LinuxException("kill(" + pid + ", " + signal + ")", errno(state));
            }
        } catch (LinuxException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }
}
