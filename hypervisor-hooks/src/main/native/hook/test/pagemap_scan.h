// PAGEMAP_SCAN (Linux 6.7+) as the Ferry agent uses it, for the C test tools.
// Debian 12's linux-libc-dev (6.1) lacks all of this, so it is spelled out.
#ifndef FERRY_PAGEMAP_SCAN_H
#define FERRY_PAGEMAP_SCAN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

struct ferry_pm_scan_arg { // == struct pm_scan_arg: twelve u64, 96 bytes
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct ferry_page_region { // == struct page_region
    uint64_t start, end, categories;
};
_Static_assert(sizeof(struct ferry_pm_scan_arg) == 96, "pm_scan_arg layout");

#define FERRY_PAGEMAP_SCAN _IOWR('f', 16, struct ferry_pm_scan_arg)
#define FERRY_PM_SCAN_WP_MATCHING (1ULL << 0)
#define FERRY_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
#define FERRY_PAGE_IS_WRITTEN (1ULL << 1)

// Collects the written pages of [start, end) in the process whose pagemap is
// open on pagemap_fd, re-protecting them when reprotect != 0. Uses a vector of
// vec_len regions and continues from walk_end until the range is done. Page
// addresses (4 KiB) go to out[0..*n); returns 0 or -errno (-ENOSPC if out
// overflows). *calls counts ioctls.
static inline int ferry_pagemap_scan_written(int pagemap_fd, uint64_t start, uint64_t end,
                                             int reprotect, size_t vec_len, uint64_t *out,
                                             size_t out_cap, size_t *n, int *calls) {
    struct ferry_page_region vec[64];
    if (vec_len > 64) {
        vec_len = 64;
    }
    *n = 0;
    *calls = 0;
    uint64_t cur = start;
    while (cur < end) {
        struct ferry_pm_scan_arg arg = {
            .size = sizeof arg,
            .flags = FERRY_PM_SCAN_CHECK_WPASYNC | (reprotect ? FERRY_PM_SCAN_WP_MATCHING : 0),
            .start = cur,
            .end = end,
            .vec = (uint64_t)(uintptr_t)vec,
            .vec_len = vec_len,
            .category_mask = FERRY_PAGE_IS_WRITTEN,
            .return_mask = FERRY_PAGE_IS_WRITTEN,
        };
        // SAFETY: arg is a 96-byte pm_scan_arg whose vec points at vec_len
        // page_region entries on our stack; the kernel writes at most vec_len
        // entries and updates walk_end in arg.
        long r = ioctl(pagemap_fd, FERRY_PAGEMAP_SCAN, &arg);
        (*calls)++;
        if (r < 0) {
            return -errno;
        }
        for (long i = 0; i < r; i++) {
            for (uint64_t a = vec[i].start; a < vec[i].end; a += 4096) {
                if (*n == out_cap) {
                    return -ENOSPC;
                }
                out[(*n)++] = a;
            }
        }
        if (arg.walk_end <= cur) {
            return -EIO; // no progress: never loop forever
        }
        cur = arg.walk_end;
    }
    return 0;
}

#endif
