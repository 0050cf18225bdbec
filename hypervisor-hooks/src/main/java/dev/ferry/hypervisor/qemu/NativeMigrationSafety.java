package dev.ferry.hypervisor.qemu;

import java.util.Optional;

/**
 * Whether QEMU's own migration (Ferry's {@code --mode qemu-native}) keeps every guest write.
 *
 * <p>Under TCG, QEMU before 9.0 does not: after the migration thread syncs and clears its dirty
 * bitmap, stores through softmmu TLB entries that were already marked dirty are not logged, so the
 * last contents of often-written pages never cross. Fixed upstream by commit 03bfc2188f
 * ("physmem: Fix migration dirty bitmap coherency with TCG memory access", QEMU 9.0); Debian 12's
 * 7.2 does not carry it. Measured here (2026-12-07, Debian's 7.2.22): the RAM of a stopped source
 * and of its paused destination differed in 12-19 pages after 8 of 9 such migrations of the test
 * guest, with QEMU's own anonymous RAM as with the shared RAM file, with or without Ferry's hook
 * (docs/BENCHMARKS.md, "Stale pages"). Under KVM, QEMU's dirty log comes from KVM's own, and
 * this bug does not apply.
 *
 * <p>Ferry's pre-copy does not depend on QEMU's dirty bitmap (the kernel write-protects the
 * guest's pages), so it is safe on the same QEMU.
 */
public final class NativeMigrationSafety {
    /** The first QEMU release with the fix. */
    static final int FIXED_MAJOR = 9;

    static final int FIXED_MINOR = 0;

    private NativeMigrationSafety() {}

    /**
     * Why QEMU's own migration of a guest run this way would lose guest writes, or empty when it
     * is not known to. {@code version} null (not known yet) counts as too old under TCG.
     */
    public static Optional<String> hazard(Accel accel, QemuVersion version) {
        if (accel != Accel.TCG) {
            return Optional.empty();
        }
        if (version != null && version.atLeast(FIXED_MAJOR, FIXED_MINOR)) {
            return Optional.empty();
        }
        return Optional.of("QEMU " + (version == null ? "of unknown version" : version)
                + " under TCG loses guest writes in its own migration (its dirty-bitmap sync leaves"
                + " stores through already-dirty TLB entries unlogged; fixed in QEMU "
                + FIXED_MAJOR + "." + FIXED_MINOR
                + ", commit 03bfc2188f); use --mode precopy, which does not depend on QEMU's dirty"
                + " tracking, or QEMU " + FIXED_MAJOR + "." + FIXED_MINOR + " or later, or KVM");
    }
}
