/*
 * Ferry test guest: a multiboot kernel that dirties guest RAM at a set rate,
 * in a page format an outside checker can validate from the RAM file, checks
 * its own pages before rewriting them, and prints a heartbeat on COM1.
 * The page format and the line formats are specified in ../README.md; any
 * change here must be mirrored there (and in the Java checker).
 *
 * 32-bit protected mode, paging off, flat segments: physical address ==
 * pointer value. Physical memory map:
 *   1 MiB ..            this kernel (code, data, bss, stack; must end < 2 MiB)
 *   2 MiB ..            generation table: u64 per working-set page
 *   ws_base .. mem_end  working set (ws_base = 2 MiB + table size, 4 KiB aligned)
 */
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096u
#define WORDS_PER_PAGE (PAGE_SIZE / 8)
#define TABLE_BASE 0x200000u
#define MB_BOOT_MAGIC 0x2BADB002u
#define FERRY_MAGIC 0x46455259u /* "FERY" */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define TICK_HZ 100u      /* PIT interrupt rate: one burst every 10 ms */
#define PIT_HZ 1193182u
#define COM1 0x3F8
#define MAX_CATCHUP_TICKS 100u /* never try to make up for more than 1 s of lag */

enum pattern { PAT_RANDOM, PAT_COMPRESSIBLE, PAT_SPARSE, PAT_INC };
static const char *const pattern_names[] = {"random", "compressible", "sparse", "inc"};

/* ---- state: all of it lives in guest RAM, so a live migration carries it ---- */
static volatile uint32_t ticks;      /* incremented by the timer interrupt */
static uint64_t hb_count;            /* heartbeat counter: must survive migration */
static uint64_t total_writes;        /* == generation of the newest page written */
static uint64_t stale_count;
static uint32_t rng_state;           /* page choice */
static uint64_t *gens;               /* generation table at TABLE_BASE */
static uint32_t ws_pages, hot_pages, ws_base_pfn;
static char cmdline[1024];

static struct {
    uint64_t ws; int ws_given;
    uint32_t rate, hotpct, hb_ms, seed;
    uint64_t hot;
    enum pattern pattern;
} cfg = {.hb_ms = 1000, .seed = 1, .pattern = PAT_RANDOM};

/* ---------------------------------------------------------------- port I/O */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* ------------------------------------------------------------ serial output */
static void serial_init(void) {
    outb(COM1 + 1, 0x00); /* no UART interrupts: we poll */
    outb(COM1 + 3, 0x80); /* DLAB on: set divisor 1 = 115200 baud */
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}
static void putc_(char c) {
    while (!(inb(COM1 + 5) & 0x20)) { /* wait for an empty transmit register */ }
    outb(COM1, (uint8_t)c);
}
static void puts_(const char *s) { while (*s) putc_(*s++); }

/* u64 / 10 without libgcc's __udivdi3: two 32-bit divides, the second a
 * 64-by-32 divl whose quotient fits because the high part (r) is < 10. */
static uint64_t divmod10(uint64_t n, uint32_t *rem) {
    uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n, r = hi % 10, qlo;
    __asm__("divl %4" : "=a"(qlo), "=d"(*rem) : "a"(lo), "d"(r), "rm"(10u));
    return ((uint64_t)(hi / 10) << 32) | qlo;
}
static void put_u64(uint64_t v) {
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        uint32_t d;
        v = divmod10(v, &d);
        buf[--i] = (char)('0' + d);
    } while (v);
    puts_(buf + i);
}
static void put_hex(uint32_t v) {
    puts_("0x");
    for (int s = 28; s >= 0; s -= 4) putc_("0123456789abcdef"[(v >> s) & 15]);
}
static void kv(const char *key, uint64_t v) { putc_(' '); puts_(key); putc_('='); put_u64(v); }

/* --------------------------------------------------------- page contents */
static uint64_t fmix64(uint64_t h) { /* MurmurHash3 finaliser */
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}
static uint64_t xorshift64(uint64_t x) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
static uint64_t fnv_step(uint64_t h, uint64_t w) { return (h ^ w) * FNV_PRIME; }

/* Checksum: FNV-1a-style over the page's 64-bit little-endian words 0, 1,
 * 3..511 (all but the checksum word itself), then fmix64. */
static uint64_t page_checksum(const volatile uint64_t *w) {
    uint64_t h = fnv_step(fnv_step(FNV_OFFSET, w[0]), w[1]);
    for (uint32_t i = 3; i < WORDS_PER_PAGE; i++) h = fnv_step(h, w[i]);
    return fmix64(h);
}

/* Writes header, filler (a pure function of pfn, gen, pattern) and checksum.
 * The checksum is computed on the fly, in the same word order as above. */
static void fill_page(volatile uint64_t *w, uint32_t pfn, uint64_t gen) {
    uint64_t seed = fmix64(gen * GOLDEN + pfn), x = seed ? seed : GOLDEN, v;
    uint64_t h;
    w[0] = FERRY_MAGIC | ((uint64_t)pfn << 32);
    w[1] = gen;
    h = fnv_step(fnv_step(FNV_OFFSET, w[0]), gen);
    for (uint32_t i = 3; i < WORDS_PER_PAGE; i++) {
        switch (cfg.pattern) {
        case PAT_RANDOM: /* incompressible */
            v = x = xorshift64(x);
            break;
        case PAT_COMPRESSIBLE: /* one random word repeated per 64-byte line */
            if (i == 3 || (i & 7) == 0) x = xorshift64(x);
            v = x;
            break;
        case PAT_SPARSE: /* header + one word, rest zero: almost a zero page */
            v = i == 3 ? xorshift64(x) : 0;
            break;
        default: /* PAT_INC: counting words */
            v = x + i;
            break;
        }
        w[i] = v;
        h = fnv_step(h, v);
    }
    w[2] = fmix64(h);
}

static void report_stale(uint32_t pfn, uint64_t expected, uint64_t found, const char *why) {
    stale_count++;
    puts_("FERRY-GUEST STALE");
    kv("pfn", pfn); kv("expected", expected); kv("found", found);
    puts_(" reason="); puts_(why); putc_('\n');
}

/* Before a rewrite: the page must hold exactly what we last wrote there
 * (or still be zero if never written). A lost or stale page shows up here. */
static void verify_page(uint32_t idx, uint32_t pfn, const volatile uint64_t *w) {
    uint64_t expect = gens[idx];
    uint64_t found = (uint32_t)w[0] == FERRY_MAGIC ? w[1] : 0;
    if (expect == 0) {
        for (uint32_t i = 0; i < WORDS_PER_PAGE; i++) {
            if (w[i]) { report_stale(pfn, 0, found, "nonzero"); return; }
        }
        return;
    }
    const char *why = 0;
    if ((uint32_t)w[0] != FERRY_MAGIC) why = "magic";
    else if ((uint32_t)(w[0] >> 32) != pfn) why = "pfn";
    else if (w[1] != expect) why = "generation";
    else if (w[2] != page_checksum(w)) why = "checksum";
    if (why) report_stale(pfn, expect, found, why);
}

static uint32_t rng_next(void) { /* xorshift32: page choice */
    uint32_t x = rng_state;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return rng_state = x;
}

static void write_one_page(void) {
    uint32_t idx;
    if (hot_pages && rng_next() % 100 < cfg.hotpct) idx = rng_next() % hot_pages;
    else idx = rng_next() % ws_pages;
    uint32_t pfn = ws_base_pfn + idx;
    volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)(pfn * PAGE_SIZE);
    verify_page(idx, pfn, w);
    uint64_t gen = ++total_writes;
    fill_page(w, pfn, gen);
    gens[idx] = gen; /* after the page: a pause in between leaves both consistent */
}

/* ------------------------------------------------------- command line */
static int starts(const char *s, const char *p) { while (*p) if (*s++ != *p++) return 0; return 1; }
static int word_is(const char *s, const char *w) { /* token value equals w */
    while (*w) if (*s++ != *w++) return 0;
    return *s == 0 || *s == ' ';
}

/* Decimal with optional K/M/G (binary) suffix; 0 on success. */
static int parse_num(const char *s, uint64_t *out) {
    uint64_t v = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) v = v * 10 + (uint64_t)(*s - '0');
    switch (*s) {
    case 'K': case 'k': v <<= 10; s++; break;
    case 'M': case 'm': v <<= 20; s++; break;
    case 'G': case 'g': v <<= 30; s++; break;
    }
    if (!digits || (*s && *s != ' ')) return -1;
    *out = v;
    return 0;
}

static void warn(const char *what, const char *tok) {
    puts_("FERRY-GUEST warn "); puts_(what);
    if (*tok) putc_(' ');
    while (*tok && *tok != ' ') putc_(*tok++);
    putc_('\n');
}

static void parse_cmdline(const char *s) {
    while (*s) {
        while (*s == ' ') s++;
        const char *tok = s, *eq = 0;
        while (*s && *s != ' ') { if (*s == '=' && !eq) eq = s; s++; }
        if (!eq) continue; /* e.g. the kernel path QEMU puts first */
        const char *val = eq + 1;
        uint64_t n = 0;
        int bad = 0;
        if (starts(tok, "pattern=")) {
            int found = 0;
            for (int p = 0; p < 4; p++) {
                if (word_is(val, pattern_names[p])) {
                    cfg.pattern = (enum pattern)p;
                    found = 1;
                }
            }
            bad = !found;
        } else if (parse_num(val, &n) != 0) {
            bad = 1;
        } else if (starts(tok, "ws=")) { cfg.ws = n; cfg.ws_given = 1; }
        else if (starts(tok, "rate=")) cfg.rate = n > 10000000 ? 10000000 : (uint32_t)n;
        else if (starts(tok, "hotpct=")) cfg.hotpct = n > 100 ? 100 : (uint32_t)n;
        else if (starts(tok, "hot=")) cfg.hot = n;
        else if (starts(tok, "hb=")) cfg.hb_ms = n > 3600000 ? 3600000 : (uint32_t)n;
        else if (starts(tok, "seed=")) cfg.seed = n ? (uint32_t)n : 1;
        else warn("unknown", tok);
        if (bad) warn("bad-value", tok);
    }
}

/* ------------------------------------------------ interrupts and timer */
struct idt_gate { uint16_t off_lo, sel; uint8_t zero, type; uint16_t off_hi; } __attribute__((packed));
static struct idt_gate idt[256];
extern void irq_timer_stub(void), irq_ignore_stub(void);
extern void (*const exc_stub_table[32])(void);

static void set_gate(int n, void (*h)(void)) {
    uint32_t a = (uint32_t)(uintptr_t)h;
    idt[n] = (struct idt_gate){(uint16_t)a, 0x08, 0, 0x8E /* present, ring 0, 32-bit int gate */,
                               (uint16_t)(a >> 16)};
}

void timer_irq(void) {
    ticks++;
    outb(0x20, 0x20); /* EOI to the master PIC */
}

__attribute__((noreturn)) void guest_fault(uint32_t vector) {
    puts_("FERRY-GUEST FAULT vector="); put_u64(vector); putc_('\n');
    for (;;) __asm__ volatile("cli; hlt");
}

static void interrupts_init(void) {
    for (int i = 0; i < 256; i++) set_gate(i, i < 32 ? exc_stub_table[i] : irq_ignore_stub);
    set_gate(0x20, irq_timer_stub);
    struct { uint16_t limit; uint32_t base; } __attribute__((packed)) d = {sizeof idt - 1, (uint32_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(d));
    /* 8259 PICs: IRQ0-7 -> vectors 0x20-0x27, IRQ8-15 -> 0x28-0x2F (away from
     * CPU exceptions); unmask only IRQ0, the PIT. */
    outb(0x20, 0x11); outb(0xA0, 0x11);
    outb(0x21, 0x20); outb(0xA1, 0x28);
    outb(0x21, 0x04); outb(0xA1, 0x02);
    outb(0x21, 0x01); outb(0xA1, 0x01);
    outb(0x21, 0xFE); outb(0xA1, 0xFF);
    /* PIT channel 0, lobyte/hibyte, mode 2 (rate generator) at TICK_HZ. */
    uint32_t div = (PIT_HZ + TICK_HZ / 2) / TICK_HZ;
    outb(0x43, 0x34);
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
}

/* ------------------------------------------------------------------ main */
static void heartbeat(void) {
    hb_count++;
    puts_("FERRY-GUEST");
    kv("hb", hb_count); kv("gen", total_writes); kv("stale", stale_count);
    putc_('\n');
}

static void layout(uint32_t mem_end) {
    /* Largest n with align4k(8n) + 4096n <= available. */
    uint32_t avail = mem_end > TABLE_BASE + 2 * PAGE_SIZE ? mem_end - TABLE_BASE : 0;
    uint32_t max = avail / (PAGE_SIZE + 8);
    while (max && ((max * 8 + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) + max * PAGE_SIZE > avail) max--;
    ws_pages = max;
    if (cfg.ws_given && cfg.ws / PAGE_SIZE < max) ws_pages = (uint32_t)(cfg.ws / PAGE_SIZE);
    else if (cfg.ws_given && cfg.ws / PAGE_SIZE > max) warn("ws-clamped-to-available-ram", "");
    uint32_t table_bytes = (ws_pages * 8 + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    gens = (uint64_t *)(uintptr_t)TABLE_BASE;
    ws_base_pfn = (TABLE_BASE + table_bytes) / PAGE_SIZE;
    hot_pages = cfg.hot / PAGE_SIZE < ws_pages ? (uint32_t)(cfg.hot / PAGE_SIZE) : ws_pages;
    /* The table is ours: clear what a warm reset may have left (write only
     * where non-zero, so a fresh guest's RAM pages stay untouched). */
    for (uint32_t i = 0; i < ws_pages; i++) if (gens[i]) gens[i] = 0;
}

void guest_main(uint32_t magic, uint32_t info) {
    serial_init();
    if (magic != MB_BOOT_MAGIC) {
        puts_("FERRY-GUEST FAULT not-multiboot\n");
        return;
    }
    const volatile uint32_t *mbi = (const volatile uint32_t *)(uintptr_t)info;
    /* Copy the command line out before touching memory: it sits in RAM the
     * loader chose (just above this kernel). */
    if (mbi[0] & (1u << 2)) {
        const char *src = (const char *)(uintptr_t)mbi[4];
        uint32_t i = 0;
        for (; src[i] && i < sizeof cmdline - 1; i++) cmdline[i] = src[i];
        cmdline[i] = 0;
    }
    if (!(mbi[0] & 1u)) {
        puts_("FERRY-GUEST FAULT no-memory-info\n");
        return;
    }
    /* mem_upper = KiB of contiguous RAM from 1 MiB; QEMU derives it from the
     * below-4G RAM size. The guest uses nothing above 4 GiB (no PAE). */
    uint32_t mem_end = 0x100000u + mbi[2] * 1024u;
    parse_cmdline(cmdline);
    rng_state = cfg.seed;
    layout(mem_end);

    puts_("FERRY-GUEST start");
    kv("mem", mem_end); kv("ws", (uint64_t)ws_pages * PAGE_SIZE);
    puts_(" ws_base="); put_hex(ws_base_pfn * PAGE_SIZE);
    kv("pages", ws_pages);
    puts_(" table="); put_hex(TABLE_BASE);
    kv("rate", cfg.rate);
    puts_(" pattern="); puts_(pattern_names[cfg.pattern]);
    kv("hot", (uint64_t)hot_pages * PAGE_SIZE); kv("hotpct", cfg.hotpct);
    kv("hb", cfg.hb_ms); kv("seed", cfg.seed);
    putc_('\n');

    interrupts_init();
    uint32_t hb_ticks = cfg.hb_ms ? (cfg.hb_ms * TICK_HZ + 999) / 1000 : 0;
    uint32_t seen = 0, credit = 0, next_hb = hb_ticks;
    for (;;) {
        /* cli; test; sti; hlt: sti's one-instruction interrupt shadow makes
         * "sti; hlt" atomic, so a tick cannot slip in between and be slept on. */
        __asm__ volatile("cli");
        if (ticks == seen) {
            __asm__ volatile("sti; hlt");
            continue;
        }
        uint32_t now = ticks;
        __asm__ volatile("sti");
        uint32_t elapsed = now - seen;
        seen = now;
        /* Console input (ferry vm console): echoed back as it comes, a tick at a time, so a test
         * sees that keystrokes reach the guest. Never waits: nothing there, nothing done. */
        while (inb(COM1 + 5) & 0x01) putc_((char)inb(COM1));
        if (hb_ticks && (int32_t)(now - next_hb) >= 0) {
            heartbeat();
            next_hb += hb_ticks;
            if ((int32_t)(now - next_hb) >= 0) next_hb = now + hb_ticks; /* fell behind: resync */
        }
        if (elapsed > MAX_CATCHUP_TICKS) elapsed = MAX_CATCHUP_TICKS;
        if (!ws_pages) continue;
        credit += elapsed * cfg.rate; /* in units of 1/TICK_HZ page */
        uint32_t n = credit / TICK_HZ;
        credit -= n * TICK_HZ;
        while (n--) write_one_page();
    }
}
