// End-to-end test of libferryhook.so, playing both roles for real:
//   child  = "QEMU": LD_PRELOADs the hook, maps a tmpfs file MAP_SHARED the way
//            QEMU 7.2 does (PROT_NONE anonymous reservation, then MAP_FIXED),
//            and reads/writes pages on command;
//   parent = "agent": reads the status file, then PAGEMAP_SCANs
//            /proc/CHILD/pagemap with re-protection and checks that exactly
//            the written pages are reported, once.
// Usage: hook_test /path/to/libferryhook.so      (exit 0 = all checks passed)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagemap_scan.h"

#define PAGE 4096UL
#define NPAGES 64UL

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("  ok   ");                                                                     \
        } else {                                                                                   \
            printf("  FAIL ");                                                                     \
            failures++;                                                                            \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

// ---------------------------------------------------------------- child side

// Commands on stdin, one per line; every command answers one line on stdout.
//   map            QEMU-style mapping of argv[2]   -> "addr 0x... len N"
//   mapprivate     MAP_PRIVATE mapping of argv[2]  -> "addr 0x..."
//   mapother P     MAP_SHARED mapping of file P    -> "addr 0x..."
//   ping           -> "pong PID"
//   badfd          mmap on fd 999                  -> "errno N"
//   w N / r N      write / read page N of the map  -> "ok"
//   pw N           pwrite(2) into page N of the file (not through the map)
static int child_main(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        perror("child open");
        return 2;
    }
    char *base = NULL;
    char line[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        unsigned long n = 0;
        char other[200];
        if (strncmp(line, "map\n", 4) == 0) {
            size_t len = NPAGES * PAGE;
            // Reserve address space first (+1 guard page), then map the file over
            // it with MAP_FIXED: the sequence strace shows for QEMU 7.2.
            char *res = mmap(NULL, len + PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            base = mmap(res, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
            printf("addr %p len %zu\n", (void *)base, len);
        } else if (strncmp(line, "mapprivate\n", 11) == 0) {
            base = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            printf("addr %p\n", (void *)base);
        } else if (sscanf(line, "mapother %199s", other) == 1) {
            int ofd = open(other, O_RDWR);
            char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
            printf("addr %p\n", (void *)p);
        } else if (strncmp(line, "ping\n", 5) == 0) {
            printf("pong %d\n", (int)getpid()); // proves main() runs, so the hook's constructor ran
        } else if (strncmp(line, "badfd\n", 6) == 0) {
            errno = 0;
            void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, 999, 0);
            printf("errno %d %s\n", p == MAP_FAILED ? errno : 0, p == MAP_FAILED ? "failed" : "mapped");
        } else if (sscanf(line, "w %lu", &n) == 1) {
            ((volatile char *)base)[n * PAGE + 123] += 1;
            printf("ok\n");
        } else if (sscanf(line, "r %lu", &n) == 1) {
            volatile char c = ((volatile char *)base)[n * PAGE + 7];
            (void)c;
            printf("ok\n");
        } else if (sscanf(line, "pw %lu", &n) == 1) {
            char b = 'x';
            printf("%s\n", pwrite(fd, &b, 1, (off_t)(n * PAGE + 9)) == 1 ? "ok" : "err");
        } else {
            printf("unknown\n");
        }
    }
    return 0;
}

// --------------------------------------------------------------- parent side

struct child {
    pid_t pid;  // the process to scan ("QEMU")
    pid_t wpid; // what we fork()ed: the same, or a wrapper around it
    FILE *to;
    FILE *from;
};

static char self_path[4096];
static const char *lease_env; // FERRY_LEASE_FILE for the next spawn, or NULL

// Starts the "QEMU" child, directly or through timeout(1): a wrapper that also
// loads the hook (LD_PRELOAD is inherited) and forks, as launchers often do.
static struct child spawn(const char *hook, const char *ram, const char *env_ram,
                          const char *status, int wrapped) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) {
        perror("pipe");
        exit(2);
    }
    struct child c;
    c.pid = fork();
    if (c.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        setenv("LD_PRELOAD", hook, 1);
        if (env_ram) {
            setenv("FERRY_HOOK_RAM_PATH", env_ram, 1);
            setenv("FERRY_HOOK_STATUS_FILE", status, 1);
        } else {
            unsetenv("FERRY_HOOK_RAM_PATH");
            unsetenv("FERRY_HOOK_STATUS_FILE");
        }
        if (lease_env) {
            setenv("FERRY_LEASE_FILE", lease_env, 1);
        } else {
            unsetenv("FERRY_LEASE_FILE");
        }
        if (wrapped) {
            execlp("timeout", "timeout", "120", self_path, "--child", ram, (char *)NULL);
        } else {
            execl(self_path, self_path, "--child", ram, (char *)NULL);
        }
        perror("exec");
        _exit(2);
    }
    close(in[0]);
    close(out[1]);
    c.wpid = c.pid;
    c.to = fdopen(in[1], "w");
    c.from = fdopen(out[0], "r");
    setvbuf(c.to, NULL, _IOLBF, 0);
    // The first reply proves the child's main() runs, so its hook constructor ran.
    char r[64];
    fprintf(c.to, "ping\n");
    fflush(c.to);
    if (!fgets(r, sizeof r, c.from) || sscanf(r, "pong %d", &c.pid) != 1) {
        fprintf(stderr, "child did not start\n");
        exit(2);
    }
    return c;
}

static void cmd(struct child *c, char *reply, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->to, fmt, ap);
    va_end(ap);
    fputc('\n', c->to);
    fflush(c->to);
    if (!fgets(reply, (int)n, c->from)) {
        fprintf(stderr, "child died\n");
        exit(2);
    }
    reply[strcspn(reply, "\n")] = '\0';
}

static void finish(struct child *c) {
    fclose(c->to);
    fclose(c->from);
    int st;
    waitpid(c->wpid, &st, 0);
}

static void write_pages(struct child *c, const unsigned long *pages, size_t n) {
    char r[64];
    for (size_t i = 0; i < n; i++) {
        cmd(c, r, sizeof r, "w %lu", pages[i]);
    }
}

// Reads the status file; returns 1 and fills the fields that exist.
static int read_status(const char *path, char *line, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    int ok = fgets(line, (int)n, f) != NULL;
    fclose(f);
    if (ok) {
        line[strcspn(line, "\n")] = '\0';
    }
    return ok;
}

static unsigned long long field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? strtoull(p + strlen(key), NULL, 0) : 0;
}

// Scans [start, start+NPAGES*PAGE) of pid and returns the set of written pages
// as a bitmask (NPAGES == 64) in *mask; returns 0 or -errno.
static int scan(pid_t pid, uint64_t start, int reprotect, uint64_t *mask, int *calls) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/pagemap", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    uint64_t written[NPAGES];
    size_t nw = 0;
    // A deliberately tiny vector (2 regions) so the walk_end continuation loop,
    // which the Java agent needs for large guests, is exercised.
    int rc = ferry_pagemap_scan_written(fd, start, start + NPAGES * PAGE, reprotect, 2, written,
                                        NPAGES, &nw, calls);
    close(fd);
    *mask = 0;
    for (size_t i = 0; i < nw; i++) {
        *mask |= 1ULL << ((written[i] - start) / PAGE);
    }
    return rc;
}

static uint64_t mask_of(const unsigned long *pages, size_t n) {
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        m |= 1ULL << pages[i];
    }
    return m;
}

// The scan/re-protect cycle the agent relies on.
static void core_checks(struct child *cp, uint64_t addr) {
    struct child c = *cp; // commands only use the pipes; a copy is fine
    char r[256];
    uint64_t mask;
    int calls;
    int rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == 0, "fresh mapping: nothing written (rc=%d mask=%016llx)", rc,
          (unsigned long long)mask);

    cmd(&c, r, sizeof r, "r 5");
    cmd(&c, r, sizeof r, "r 6");
    rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == 0, "reads are not reported (mask=%016llx)", (unsigned long long)mask);

    const unsigned long w1[] = {0, 1, 2, 7, 31, 62, 63};
    write_pages(&c, w1, sizeof w1 / sizeof w1[0]);
    rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == mask_of(w1, 7),
          "exactly the written pages {0,1,2,7,31,62,63}: mask=%016llx want %016llx (%d ioctl calls)",
          (unsigned long long)mask, (unsigned long long)mask_of(w1, 7), calls);
    CHECK(calls > 1, "walk_end continuation was exercised (%d calls)", calls);

    rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == 0, "second scan reports nothing (mask=%016llx)",
          (unsigned long long)mask);

    const unsigned long w2[] = {7, 40, 7};
    write_pages(&c, w2, 3);
    rc = scan(c.pid, addr, 0, &mask, &calls);
    CHECK(rc == 0 && mask == mask_of(w2, 3), "later writes reported again, report-only scan: %016llx",
          (unsigned long long)mask);
    rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == mask_of(w2, 3), "report-only did not re-protect; scan+reprotect: %016llx",
          (unsigned long long)mask);
    rc = scan(c.pid, addr, 1, &mask, &calls);
    CHECK(rc == 0 && mask == 0, "and then nothing again");

}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

// Writes the lease file the way the agent does: magic, deadline, revision.
static void write_lease(const char *path, uint64_t deadline) {
    static uint64_t revision;
    uint64_t words[8] = {0x31534c5952524546ULL, deadline, ++revision};
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || pwrite(fd, words, sizeof words, 0) != (ssize_t)sizeof words) {
        perror("lease file");
        exit(2);
    }
    close(fd);
}

// The process state letter from /proc/PID/stat ('T' = stopped), or '?'.
static char proc_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return '?';
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

// Waits up to ms for pid to reach state want; returns the last state seen.
static char await_state(pid_t pid, char want, int ms) {
    char st = proc_state(pid);
    for (int i = 0; i < ms / 10 && st != want; i++) {
        usleep(10000);
        st = proc_state(pid);
    }
    return st;
}

static int has_stop_timer(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/timers", pid);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        found |= strncmp(line, "signal: 19/", 11) == 0;
    }
    if (f) {
        fclose(f);
    }
    return found;
}

static void make_file(const char *path, size_t size) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return child_main(argv[2]);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s /path/to/libferryhook.so\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(60); // a wedged child must fail the test, not hang the build
    ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (sl <= 0) {
        return 2;
    }
    self_path[sl] = '\0';
    char hook[4096];
    if (!realpath(argv[1], hook)) {
        perror(argv[1]);
        return 2;
    }

    char ram[128], other[128], link[128], status[128], line[512], r[256];
    int me = getpid();
    snprintf(ram, sizeof ram, "/dev/shm/ferry-hook-test-%d.ram", me);
    snprintf(other, sizeof other, "/dev/shm/ferry-hook-test-%d.other", me);
    snprintf(link, sizeof link, "/tmp/ferry-hook-test-%d.link", me);
    snprintf(status, sizeof status, "/tmp/ferry-hook-test-%d.status", me);
    make_file(ram, NPAGES * PAGE);
    make_file(other, PAGE);
    unlink(link);
    if (symlink(ram, link) != 0) {
        perror("symlink");
        return 2;
    }
    uint64_t mask;
    int calls;

    printf("[1] env vars absent: hook inert\n");
    {
        unlink(status);
        struct child c = spawn(hook, ram, NULL, status, 0);
        cmd(&c, r, sizeof r, "map");
        uint64_t addr = strtoull(strstr(r, "0x"), NULL, 16);
        CHECK(addr != 0, "mapping works without env (%s)", r);
        cmd(&c, r, sizeof r, "w 3");
        CHECK(access(status, F_OK) != 0, "no status file written");
        int rc = scan(c.pid, addr, 1, &mask, &calls);
        CHECK(rc == -EPERM, "range not registered: PAGEMAP_SCAN with CHECK_WPASYNC -> %d (want -EPERM)", rc);
        cmd(&c, r, sizeof r, "badfd");
        CHECK(strcmp(r, "errno 9 failed") == 0, "mmap(bad fd) fails with EBADF: %s", r);
        finish(&c);
    }

    printf("[2] active hook, RAM path given through a symlink\n");
    {
        unlink(status);
        struct child c = spawn(hook, ram, link, status, 0);
        // The constructor announces itself before anything is mapped.
        CHECK(read_status(status, line, sizeof line) && strncmp(line, "status=loaded pid=", 18) == 0,
              "status before mapping: %s", line);
        cmd(&c, r, sizeof r, "map");
        uint64_t addr = strtoull(strstr(r, "0x"), NULL, 16);
        CHECK(read_status(status, line, sizeof line), "status file: %s", line);
        CHECK(strncmp(line, "status=ok ", 10) == 0, "status=ok");
        CHECK(field(line, "start=") == addr, "start= matches the child's mapping 0x%llx",
              (unsigned long long)addr);
        CHECK(field(line, "length=") == NPAGES * PAGE, "length= is the mapping size");
        CHECK((int)field(line, "pid=") == c.pid, "pid= is the child's pid");
        CHECK((field(line, "features=") & (1ULL << 15)) != 0, "features include WP_ASYNC");

        core_checks(&c, addr);

        // Facts the agent must live with (informational, not failures):
        cmd(&c, r, sizeof r, "pw 9");
        scan(c.pid, addr, 1, &mask, &calls);
        printf("  info pwrite(2) to the file, not through the mapping: %s\n",
               mask ? "reported" : "NOT reported (writes must go through the mapping)");

        cmd(&c, r, sizeof r, "mapother %s", other);
        char before[512];
        snprintf(before, sizeof before, "%s", line);
        CHECK(read_status(status, line, sizeof line) && strcmp(line, before) == 0,
              "mapping another file MAP_SHARED leaves the status unchanged");
        cmd(&c, r, sizeof r, "badfd");
        CHECK(strcmp(r, "errno 9 failed") == 0, "mmap(bad fd) still fails with EBADF: %s", r);

        cmd(&c, r, sizeof r, "map");
        CHECK(read_status(status, line, sizeof line) &&
                  strncmp(line, "status=error step=second-mapping", 32) == 0,
              "second mapping of the RAM file is reported: %s", line);
        finish(&c);
    }

    printf("[3] RAM file already populated before QEMU maps it (destination / restart case),\n"
           "    QEMU started through a wrapper that loads the hook too (timeout 120 ...)\n");
    {
        unlink(status);
        int fd = open(ram, O_RDWR);
        char page[PAGE];
        memset(page, 0xAB, sizeof page);
        for (unsigned long i = 0; i < NPAGES; i++) {
            if (pwrite(fd, page, PAGE, (off_t)(i * PAGE)) != (ssize_t)PAGE) {
                perror("pwrite");
                return 2;
            }
        }
        close(fd);
        struct child c = spawn(hook, ram, ram, status, 1);
        CHECK(c.pid != c.wpid && read_status(status, line, sizeof line) &&
                  (pid_t)field(line, "pid=") == c.wpid,
              "wrapper (pid %d) wrote the loaded line: %s", c.wpid, line);
        cmd(&c, r, sizeof r, "map");
        uint64_t addr = strtoull(strstr(r, "0x"), NULL, 16);
        CHECK(read_status(status, line, sizeof line) && strncmp(line, "status=ok ", 10) == 0 &&
                  field(line, "start=") == addr && (pid_t)field(line, "pid=") == c.pid,
              "status=ok names the wrapped child (pid %d) and its mapping: %s", c.pid, line);
        core_checks(&c, addr);
        finish(&c);
    }

    printf("[4] MAP_PRIVATE mapping of the RAM file\n");
    {
        unlink(status);
        struct child c = spawn(hook, ram, ram, status, 0);
        cmd(&c, r, sizeof r, "mapprivate");
        CHECK(strstr(r, "0x") != NULL, "mapping itself succeeds: %s", r);
        CHECK(read_status(status, line, sizeof line) && strncmp(line, "status=error step=mmap", 22) == 0,
              "reported as error: %s", line);
        finish(&c);
    }

    printf("[5] lease: the kernel stops the process at the deadline; renewal and SIGCONT thaw it\n");
    {
        char lease[128];
        snprintf(lease, sizeof lease, "/tmp/ferry-hook-test-%d.lease", me);
        write_lease(lease, mono_ns() + 400000000ULL);
        lease_env = lease;
        struct child c = spawn(hook, ram, NULL, status, 0);
        CHECK(has_stop_timer(c.pid), "a SIGSTOP timer is armed (/proc/%d/timers)", c.pid);
        CHECK(proc_state(c.pid) != 'T', "runs before the deadline");
        CHECK(await_state(c.pid, 'T', 2000) == 'T', "stopped by the kernel after the deadline, nobody renewing");
        write_lease(lease, mono_ns() + 5000000000ULL);
        kill(c.pid, SIGCONT);
        cmd(&c, r, sizeof r, "ping");
        CHECK(strncmp(r, "pong", 4) == 0, "renewed and continued: answers again (%s)", r);
        usleep(300000);
        CHECK(proc_state(c.pid) != 'T', "stays running under the renewed lease");
        write_lease(lease, 0);
        CHECK(await_state(c.pid, 'T', 1000) == 'T', "a revoked lease (deadline 0) stops it within the poll interval");
        kill(c.pid, SIGCONT);
        usleep(50000);
        CHECK(proc_state(c.pid) == 'T', "continued without a renewed lease, it stops again at once");
        write_lease(lease, mono_ns() + 5000000000ULL);
        kill(c.pid, SIGCONT);
        cmd(&c, r, sizeof r, "ping");
        CHECK(strncmp(r, "pong", 4) == 0, "thawed again after a new grant (%s)", r);
        finish(&c);

        // Through a wrapper that forks and execs (timers do not survive either): QEMU's own
        // constructor arms its own timer.
        write_lease(lease, mono_ns() + 400000000ULL);
        struct child w = spawn(hook, ram, NULL, status, 1);
        CHECK(w.pid != w.wpid && has_stop_timer(w.pid), "the wrapped child armed its own timer");
        CHECK(await_state(w.pid, 'T', 2000) == 'T', "the wrapped child stops at the deadline");
        kill(w.wpid, SIGKILL);
        kill(w.pid, SIGKILL);
        finish(&w);

        // No lease file: the guest must not run at all.
        unlink(lease);
        pid_t p = fork();
        if (p == 0) {
            setenv("LD_PRELOAD", hook, 1);
            setenv("FERRY_LEASE_FILE", lease, 1);
            execl("/bin/sleep", "sleep", "30", (char *)NULL);
            _exit(2);
        }
        CHECK(await_state(p, 'T', 2000) == 'T', "a missing lease file stops the process at once");
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        lease_env = NULL;
    }

    unlink(ram);
    unlink(other);
    unlink(link);
    unlink(status);
    printf("%s (%d failure%s)\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
