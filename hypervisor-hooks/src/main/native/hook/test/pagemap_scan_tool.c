// ferry-pagemap-scan: by-hand checking tool. Reads a libferryhook status file
// (pid=, start=, length=), then every INTERVAL_MS scans the range with
// re-protection and prints how many pages were written since the last scan.
// Usage: ferry-pagemap-scan STATUS_FILE [INTERVAL_MS [COUNT [-v]]]
//   -v also prints the guest-physical page numbers (offset into the RAM file).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagemap_scan.h"

static unsigned long long field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? strtoull(p + strlen(key), NULL, 0) : 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s STATUS_FILE [INTERVAL_MS [COUNT [-v]]]\n", argv[0]);
        return 2;
    }
    int interval = argc > 2 ? atoi(argv[2]) : 1000;
    int count = argc > 3 ? atoi(argv[3]) : 1;
    int verbose = argc > 4 && strcmp(argv[4], "-v") == 0;
    char line[1024] = "";
    FILE *f = fopen(argv[1], "r");
    if (!f || !fgets(line, sizeof line, f)) {
        perror(argv[1]);
        return 2;
    }
    fclose(f);
    if (strncmp(line, "status=ok ", 10) != 0) {
        fprintf(stderr, "hook not ready: %s", line);
        return 1;
    }
    int pid = (int)field(line, "pid=");
    uint64_t start = field(line, "start="), len = field(line, "length=");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        return 2;
    }
    size_t cap = len / 4096;
    uint64_t *pages = malloc(cap * sizeof *pages);
    for (int i = 0; i < count; i++) {
        if (i > 0) {
            usleep((useconds_t)interval * 1000);
        }
        size_t n;
        int calls;
        double t0 = now_ms();
        int rc = ferry_pagemap_scan_written(fd, start, start + len, 1, 64, pages, cap, &n, &calls);
        double t1 = now_ms();
        if (rc < 0) {
            fprintf(stderr, "PAGEMAP_SCAN failed: %s\n", strerror(-rc));
            return 1;
        }
        printf("scan %d: written=%zu pages (%.1f MiB) ioctls=%d scan_ms=%.2f\n", i, n,
               n * 4096.0 / 1048576.0, calls, t1 - t0);
        if (verbose) {
            for (size_t k = 0; k < n; k++) {
                printf("%s%llu", k ? " " : "  pfn ", (unsigned long long)((pages[k] - start) / 4096));
            }
            printf("\n");
        }
        fflush(stdout);
    }
    return 0;
}
