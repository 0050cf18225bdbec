#!/usr/bin/env python3
"""Reference checker for Ferry test-guest pages in a QEMU RAM file.

    check_ram.py RAM_FILE [--pattern random|compressible|sparse|inc] [--quiet]

Reads the file (memory-backend-file of a pc machine), and for every 4 KiB
page reports: zero, a valid Ferry page (magic, pfn matching its guest-physical
address, checksum, and with --pattern also the exact filler), an invalid Ferry
page, or other (firmware, the guest kernel, its generation table). Exit 1 if
any Ferry page is invalid. This is the executable form of the page format in
../README.md; the Java checker must agree with it.
"""
import struct
import sys

PAGE = 4096
M64 = (1 << 64) - 1
MAGIC = 0x46455259
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
GOLDEN = 0x9E3779B97F4A7C15
GIB = 1 << 30
PATTERNS = ("random", "compressible", "sparse", "inc")


def fmix64(h):
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def xorshift64(x):
    x ^= (x << 13) & M64
    x ^= x >> 7
    x ^= (x << 17) & M64
    return x


def checksum(words):
    h = FNV_OFFSET
    for i, w in enumerate(words):
        if i != 2:
            h = ((h ^ w) * FNV_PRIME) & M64
    return fmix64(h)


def filler(pfn, gen, pattern):
    """Words 3..511 of a page, as the guest writes them."""
    seed = fmix64((gen * GOLDEN + pfn) & M64)
    x = seed if seed else GOLDEN
    out = []
    for i in range(3, 512):
        if pattern == "random":
            x = xorshift64(x)
            v = x
        elif pattern == "compressible":
            if i == 3 or i % 8 == 0:
                x = xorshift64(x)
            v = x
        elif pattern == "sparse":
            v = xorshift64(x) if i == 3 else 0
        else:  # inc
            v = (x + i) & M64
        out.append(v)
    return out


def gpa_of(offset, ram_size):
    """Guest-physical address of a RAM-file offset, -machine pc (i440fx)."""
    below = 3 * GIB if ram_size >= 0xE0000000 else ram_size
    return offset if offset < below else offset - below + 4 * GIB


def main(argv):
    pattern = None
    quiet = "--quiet" in argv
    args = [a for a in argv[1:] if a != "--quiet"]
    if "--pattern" in args:
        i = args.index("--pattern")
        pattern = args[i + 1]
        del args[i:i + 2]
        if pattern not in PATTERNS:
            print("unknown pattern", pattern, file=sys.stderr)
            return 2
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    zero = valid = invalid = other = 0
    max_gen = 0
    with open(args[0], "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        off = 0
        zpage = bytes(PAGE)
        while True:
            page = f.read(PAGE)
            if len(page) < PAGE:
                break
            if page == zpage:
                zero += 1
            else:
                words = struct.unpack("<512Q", page)
                if words[0] & 0xFFFFFFFF != MAGIC:
                    other += 1
                else:
                    pfn, gen = words[0] >> 32, words[1]
                    why = None
                    if pfn != gpa_of(off, size) // PAGE:
                        why = "pfn"
                    elif words[2] != checksum(words):
                        why = "checksum"
                    elif pattern and list(words[3:]) != filler(pfn, gen, pattern):
                        why = "filler"
                    if why:
                        invalid += 1
                        if not quiet:
                            print(f"INVALID offset=0x{off:x} pfn={pfn} gen={gen} reason={why}")
                    else:
                        valid += 1
                        max_gen = max(max_gen, gen)
            off += PAGE
    print(f"pages={off // PAGE} zero={zero} ferry_valid={valid} ferry_invalid={invalid} "
          f"other={other} max_gen={max_gen}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
