// libferryhook.so: LD_PRELOAD library for QEMU that turns on kernel dirty-page
// tracking (userfaultfd write-protect, async mode) over the guest-RAM mapping.
//
// QEMU maps its guest RAM file (memory-backend-file, share=on) with
// mmap(MAP_SHARED). We wrap mmap/mmap64; when the mapped fd is the file named
// by FERRY_HOOK_RAM_PATH we register the returned range with a userfaultfd in
// WP_ASYNC mode and write-protect it. From then on the kernel resolves every
// write fault itself (no handler thread) and remembers which pages were
// written; the Ferry agent (another process) reads and re-arms that record with
// ioctl(PAGEMAP_SCAN) on /proc/QEMU_PID/pagemap.
//
// Contract (see ../README.md):
//  * FERRY_HOOK_RAM_PATH and FERRY_HOOK_STATUS_FILE both set and non-empty:
//    active. Otherwise the library is inert: every call goes straight through.
//  * Every mapping the hook does not own is untouched: same arguments, same
//    return value, same errno.
//  * Registration failures never stop QEMU; they are reported in the status
//    file and the agent refuses pre-copy.
//
// Second job, independent of the first: the guest's lease (the fence below the
// agent). When FERRY_LEASE_FILE is set, the constructor arms a POSIX timer on
// CLOCK_MONOTONIC whose expiry makes the kernel send SIGSTOP to this process,
// at the deadline the agent wrote into that file, and starts one thread that
// re-arms the timer whenever the agent moves the deadline. The kernel, not
// this thread, enforces the deadline: if the agent is frozen (SIGSTOP, swap,
// a long GC, a cgroup limit) or dead, nobody moves the deadline and every
// QEMU thread stops at it, even if this thread itself is never scheduled
// again. A stopped QEMU runs no guest code; the agent thaws it with SIGCONT
// once it has renewed the lease (it still owns the VM) or kills it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// Debian 12 ships linux-libc-dev 6.1, which predates these (added in 6.7 / 6.4).
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#define FERRY_EXPORT __attribute__((visibility("default")))
#define REQUIRED_FEATURES (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

// Written only by the constructor, which runs before QEMU's main() and so
// before QEMU starts any thread; read-only afterwards.
static mmap_fn real_mmap;
static mmap_fn real_mmap64;
static int hook_active;
static pid_t hook_pid; // a fork()ed child (no exec) must not act on our behalf
static char ram_path[PATH_MAX];
static char status_path[PATH_MAX];

// Serialises registration and status-file writes: QEMU may map from several
// threads (e.g. memory hot-plug from the main loop while vCPUs run).
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int registered_mappings; // guarded by reg_lock

static void write_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Set only by the constructor (single-threaded): publish with link(2), which
// fails if the status file already exists, instead of rename(2).
static int write_status_exclusive;

// Writes one status line atomically: to "<path>.tmp.<pid>" then rename(2), so
// a reader sees either the previous complete file or the new complete file.
// Errors are ignored on purpose: a missing status file is itself the signal.
static void write_status(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    // n == 0 (an empty format) would make len 0 and write line[-1], below the buffer: nothing to
    // record then, and a status file that is not written is itself the signal.
    if (n <= 0) {
        return;
    }
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    line[len - 1] = '\n'; // a truncated line still ends the record

    char tmp[PATH_MAX + 32];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", status_path, (int)getpid()) >= (int)sizeof tmp) {
        return;
    }
    // SAFETY: tmp is a NUL-terminated path in our own stack buffer; O_CLOEXEC so
    // the fd never leaks into programs QEMU execs; the fd is closed below.
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    size_t off = 0;
    while (off < len) {
        // SAFETY: writes from our own stack buffer, bounded by len <= sizeof line.
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    // SAFETY: fd was opened above and is owned solely by this function.
    close(fd);
    if (off == len && !write_status_exclusive) {
        // SAFETY: both paths are NUL-terminated buffers we own; rename(2) is
        // atomic within a filesystem, which is what readers rely on.
        rename(tmp, status_path);
        return;
    }
    if (off == len) {
        // SAFETY: as above; link(2) is equally atomic but never replaces an
        // existing file (EEXIST is the expected, ignored, outcome).
        (void)link(tmp, status_path);
    }
    // SAFETY: removes only the temporary file this function created.
    unlink(tmp);
}

static long long now_us(void) {
    struct timespec ts;
    // SAFETY: ts is a valid out-pointer on our stack.
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

// ------------------------------------------------------------------ lease

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

// The lease file's layout (little-endian, 64-bit aligned; the agent writes it
// in place through a shared mapping and never replaces the file):
//   u64 magic "FERRYLS1", u64 deadline (CLOCK_MONOTONIC ns; 0 = none granted),
//   u64 revision (bumped on every write, for diagnostics).
#define LEASE_MAGIC 0x31534c5952524546ULL // "FERRYLS1" read as a little-endian u64
#define LEASE_POLL_NS 20000000L          // how soon a moved deadline is re-armed

struct lease_page {
    uint64_t magic;
    uint64_t deadline_ns;
    uint64_t revision;
};

static const volatile struct lease_page *lease_page; // read-only shared mapping
static timer_t lease_timer;

// The deadline the agent granted, or 0 (none: stop at once).
static uint64_t lease_deadline(void) {
    if (lease_page == NULL || __atomic_load_n(&lease_page->magic, __ATOMIC_ACQUIRE) != LEASE_MAGIC) {
        return 0;
    }
    return __atomic_load_n(&lease_page->deadline_ns, __ATOMIC_ACQUIRE);
}

// Arms the stop timer at the absolute CLOCK_MONOTONIC time `deadline`; a
// deadline in the past (or 0) fires at once.
static void lease_arm(uint64_t deadline) {
    struct itimerspec when = {0};
    if (deadline == 0) {
        deadline = 1; // an all-zero it_value would disarm the timer instead
    }
    when.it_value.tv_sec = (time_t)(deadline / 1000000000ULL);
    when.it_value.tv_nsec = (long)(deadline % 1000000000ULL);
    // SAFETY: lease_timer was created by timer_create below and is never
    // deleted; `when` is a valid itimerspec on our stack.
    timer_settime(lease_timer, TIMER_ABSTIME, &when, NULL);
}

static uint64_t mono_now(void) {
    struct timespec ts;
    // SAFETY: ts is a valid out-pointer on our stack; clock_gettime is async-signal-safe.
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *lease_watch(void *unused) {
    (void)unused;
    uint64_t armed = lease_deadline();
    for (;;) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = LEASE_POLL_NS};
        // SAFETY: pause is a valid timespec on our stack; EINTR just polls sooner.
        nanosleep(&pause, NULL);
        uint64_t granted = lease_deadline();
        // A moved deadline is armed; a passed one is armed again, so that a process someone
        // continued (SIGCONT) without a renewed lease stops again rather than running on.
        if (granted != armed || granted <= mono_now()) {
            lease_arm(granted);
            armed = granted;
        }
    }
    return NULL;
}

// SIGCONT: continued without a current lease (by anyone but an agent that renewed it first), the
// process stops again at once, before the vCPUs get far. Async-signal-safe: a volatile load from
// the mapped page, clock_gettime and kill.
static void lease_on_cont(int sig) {
    (void)sig;
    int saved = errno;
    uint64_t granted = lease_deadline();
    if (granted <= mono_now()) {
        // SAFETY: signals this very process; SIGSTOP cannot be caught or ignored.
        kill(getpid(), SIGSTOP);
    }
    errno = saved;
}

// Runs from the constructor, before QEMU's main(). Any failure stops the
// process: a guest whose lease cannot be enforced must not run.
static void lease_start(const char *path) {
    const char *step = "open";
    // SAFETY: path is a NUL-terminated environment string; O_CLOEXEC keeps the
    // descriptor out of programs QEMU execs.
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto fail;
    }
    step = "mmap";
    long page = sysconf(_SC_PAGESIZE);
    // SAFETY: a fresh read-only shared mapping of one page of the lease file,
    // through the real mmap (never our wrapper: this is not the RAM file); the
    // mapping lives as long as the process.
    void *map = real_mmap != NULL ? real_mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0)
                                  : raw_mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    // SAFETY: the mapping keeps the file referenced; the descriptor is ours.
    close(fd);
    if (map == MAP_FAILED) {
        goto fail;
    }
    lease_page = (const volatile struct lease_page *)map;
    step = "timer_create";
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGSTOP; // cannot be blocked or handled: the whole process stops
    // SAFETY: ev is a valid sigevent on our stack; lease_timer receives the id.
    if (timer_create(CLOCK_MONOTONIC, &ev, &lease_timer) != 0) {
        goto fail;
    }
    lease_arm(lease_deadline());
    step = "sigaction";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = lease_on_cont;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    // SAFETY: installs our handler for SIGCONT, which QEMU does not use; SA_RESTART keeps the
    // system calls it interrupts transparent to QEMU.
    if (sigaction(SIGCONT, &sa, NULL) != 0) {
        goto fail;
    }
    step = "pthread_create";
    pthread_t watcher;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // SAFETY: lease_watch takes no argument and runs for the life of the process.
    int rc = pthread_create(&watcher, &attr, lease_watch, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    return;
fail:;
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof msg, "ferryhook: lease %s (%s) failed: %s; stopping\n", path, step,
                     strerror(errno));
    if (n > 0) {
        // SAFETY: writes our own stack buffer to stderr (QEMU's log); best effort.
        ssize_t ignored = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)ignored;
    }
    // SAFETY: stops this process, which is exactly what an unenforceable lease means.
    raise(SIGSTOP);
}

__attribute__((constructor)) static void ferryhook_init(void) {
    int saved_errno = errno; // invisible to the program, like everything else here
    // SAFETY: dlsym with RTLD_NEXT and constant names; returns the next
    // definition in lookup order (glibc's). glibc's internal allocations do not
    // go through the exported mmap symbol, so this cannot recurse into us.
    real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
    // SAFETY: as above. On x86_64 glibc, mmap64 is an alias of mmap, but QEMU
    // 7.2 on Debian imports the name mmap64, so it must be resolved separately.
    real_mmap64 = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
    if (real_mmap64 == NULL) {
        real_mmap64 = real_mmap;
    }

    const char *lease = getenv("FERRY_LEASE_FILE");
    if (lease != NULL && lease[0] != '\0') {
        // Stays in the environment: a wrapper that execs QEMU in place (setpriv)
        // loses its timer and thread at exec, and QEMU's own constructor must arm
        // them again. A helper QEMU forks and execs stops at the same deadline.
        lease_start(lease);
    }

    const char *ram = getenv("FERRY_HOOK_RAM_PATH");
    const char *status = getenv("FERRY_HOOK_STATUS_FILE");
    if (ram == NULL || status == NULL || ram[0] == '\0' || status[0] == '\0' ||
        strlen(ram) >= sizeof ram_path || strlen(status) >= sizeof status_path ||
        real_mmap == NULL) {
        errno = saved_errno;
        return; // inert
    }
    strcpy(ram_path, ram);
    strcpy(status_path, status);
    // The variables stay in the environment: QEMU may be started through a
    // wrapper (timeout, taskset, sh -c) that loads this library too and must
    // pass them on. Wrappers and helpers never map the RAM file, so they never
    // write "ok"/"error"; the "loaded" line below is created exclusively.
    hook_pid = getpid();
    hook_active = 1;
    // Lets the agent tell "hook loaded, RAM not (yet) mapped" from "no hook".
    // Only the first process to load the hook writes it (a wrapper such as
    // timeout(1) may be that process), and it never replaces an ok/error line.
    write_status_exclusive = 1;
    write_status("status=loaded pid=%d\n", (int)getpid());
    write_status_exclusive = 0;
    errno = saved_errno;
}

// Raw mmap for calls that arrive before our constructor resolved the real
// symbol (another library's constructor). The hook is never active then.
static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    // SAFETY: forwards the caller's arguments unchanged to the mmap system call;
    // on x86_64 glibc's syscall() returns -1 (== MAP_FAILED) and sets errno on
    // failure, exactly like mmap(3).
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

// True when fd refers to the RAM file. /proc/self/fd/N gives the kernel's
// canonical absolute path of the open file; realpath() canonicalises the
// configured path the same way (symlinks, "..", double slashes).
static int is_ram_file(int fd) {
    char link[64];
    char target[PATH_MAX];
    char want[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    // SAFETY: reads into a PATH_MAX stack buffer with an explicit size limit;
    // the result is not NUL-terminated by the kernel, so we terminate it.
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) {
        return 0;
    }
    target[n] = '\0';
    // SAFETY: want is PATH_MAX bytes as realpath(3) requires; ram_path is
    // NUL-terminated. realpath uses stat/readlink, never mmap.
    if (realpath(ram_path, want) == NULL) {
        return 0;
    }
    return strcmp(target, want) == 0;
}

static void register_range(void *addr, size_t len, off_t off) {
    long long t0 = now_us();
    uintptr_t start = (uintptr_t)addr;
    long page = sysconf(_SC_PAGESIZE);
    // mmap maps whole pages; userfaultfd wants a page-multiple length.
    uint64_t length = ((uint64_t)len + (uint64_t)page - 1) & ~((uint64_t)page - 1);

    pthread_mutex_lock(&reg_lock);
    if (registered_mappings > 0) {
        // Writes through a second, untracked mapping would be invisible to the
        // agent's scan: refuse rather than tracking half of the writes.
        write_status("status=error step=second-mapping errno=0 start=0x%lx length=%llu "
                     "message=RAM file mapped more than once; dirty tracking would be incomplete\n",
                     (unsigned long)start, (unsigned long long)length);
        registered_mappings++;
        pthread_mutex_unlock(&reg_lock);
        return;
    }
    registered_mappings++;

    const char *step = "userfaultfd";
    // SAFETY: no pointers passed. O_CLOEXEC keeps the fd out of exec'd helpers;
    // O_NONBLOCK because nobody ever reads events (WP_ASYNC generates none);
    // UFFD_USER_MODE_ONLY is enough for WP and is allowed unprivileged.
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (uffd < 0) {
        goto fail;
    }

    step = "UFFDIO_API";
    struct uffdio_api api = {.api = UFFD_API, .features = REQUIRED_FEATURES};
    // SAFETY: api is a properly initialised struct uffdio_api on our stack, the
    // exact type UFFDIO_API expects; the kernel fills in features and ioctls.
    // If the kernel lacks WP_ASYNC it fails with EINVAL here, before any range is
    // registered, so QEMU can never block on a synchronous WP fault.
    if (ioctl(uffd, UFFDIO_API, &api) < 0) {
        goto fail_close;
    }
    if ((api.features & REQUIRED_FEATURES) != REQUIRED_FEATURES) {
        errno = EOPNOTSUPP;
        goto fail_close;
    }

    step = "UFFDIO_REGISTER";
    struct uffdio_register reg = {
        .range = {.start = start, .len = length},
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    // SAFETY: the range is exactly the mapping mmap just returned to us
    // (page-aligned start, page-rounded length), so it lies inside VMAs that
    // exist; reg is a valid struct uffdio_register on our stack.
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        goto fail_close;
    }

    step = "UFFDIO_WRITEPROTECT";
    struct uffdio_writeprotect wp = {
        .range = {.start = start, .len = length},
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };
    // SAFETY: same range as registered above; with WP_ASYNC the kernel
    // unprotects on the first write and records the page as written, so no
    // thread ever waits. WP_UNPOPULATED also marks not-yet-faulted pages.
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        goto fail_close;
    }

    // The fd stays open for the life of the process: closing it would drop the
    // registration and with it the dirty record.
    write_status("status=ok pid=%d start=0x%lx length=%llu offset=%lld uffd=%d features=0x%llx "
                 "elapsed_us=%lld\n",
                 (int)getpid(), (unsigned long)start, (unsigned long long)length, (long long)off,
                 uffd, (unsigned long long)api.features, now_us() - t0);
    pthread_mutex_unlock(&reg_lock);
    return;

fail_close:;
    int saved = errno;
    // SAFETY: uffd is the descriptor we created above and nobody else holds it;
    // closing it drops any partial registration, leaving the mapping untracked
    // but otherwise normal.
    close(uffd);
    errno = saved;
fail:;
    int err = errno;
    write_status("status=error step=%s errno=%d start=0x%lx length=%llu message=%s\n", step, err,
                 (unsigned long)start, (unsigned long long)length, strerror(err));
    pthread_mutex_unlock(&reg_lock);
}

static void *hooked(mmap_fn real, void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    // SAFETY: the caller's arguments go unchanged to glibc's mmap (or the raw
    // system call before the constructor ran); the caller owns their validity,
    // exactly as without the hook, and gets the result and errno unchanged.
    void *ret = real != NULL ? real(addr, len, prot, flags, fd, off)
                             : raw_mmap(addr, len, prot, flags, fd, off);
    if (!hook_active || ret == MAP_FAILED || fd < 0 || (flags & MAP_ANONYMOUS)) {
        return ret; // fast path: nothing of ours, errno untouched
    }
    int saved_errno = errno; // the caller must see exactly what mmap left
    // SAFETY: getpid(2) takes no arguments and cannot fail.
    if (getpid() == hook_pid && is_ram_file(fd)) {
        int type = flags & MAP_TYPE;
        if (type == MAP_SHARED || type == MAP_SHARED_VALIDATE) {
            register_range(ret, len, off);
        } else {
            // Guest writes would go to private copies the agent cannot read.
            pthread_mutex_lock(&reg_lock);
            write_status("status=error step=mmap errno=0 start=0x%lx length=%zu "
                         "message=RAM file mapped MAP_PRIVATE (memory-backend-file needs share=on)\n",
                         (unsigned long)(uintptr_t)ret, len);
            pthread_mutex_unlock(&reg_lock);
        }
    }
    errno = saved_errno;
    return ret;
}

FERRY_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return hooked(real_mmap, addr, len, prot, flags, fd, off);
}

FERRY_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return hooked(real_mmap64, addr, len, prot, flags, fd, off);
}
