/**
 * The pieces of the QEMU driver.
 *
 * <ul>
 *   <li>{@link dev.ferry.hypervisor.qemu.QemuCommand}: one VM's command line and environment
 *       (pure, unit-tested).
 *   <li>{@link dev.ferry.hypervisor.qemu.QemuProcess}: launches QEMU, connects QMP, reports its
 *       end once, and ends it for sure on close.
 *   <li>{@link dev.ferry.hypervisor.qemu.qmp.QmpClient}: QMP over the unix socket; concurrent
 *       commands correlated by id, events to listeners and waiters, EOF fails everything pending.
 *   <li>{@link dev.ferry.hypervisor.qemu.dirty.PagemapScanner}: which guest pages QEMU wrote, from
 *       PAGEMAP_SCAN over the range the LD_PRELOAD hook write-protected ({@link
 *       dev.ferry.hypervisor.qemu.HookStatus}); {@link dev.ferry.hypervisor.qemu.dirty.KernelProbe}
 *       says at agent start whether this kernel can do it.
 * </ul>
 *
 * <p>Facts about QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18) and Linux 6.18 these rest on, each pinned
 * by an integration test against real QEMU:
 *
 * <ul>
 *   <li>Guest RAM of a pc machine with {@code -machine pc,memory-backend=ram0} is one RAM block,
 *       {@code ram0}, at offset 0 of QEMU's ram_addr space, mapped once from the RAM file: a page
 *       of the scanned range is a page of the file. The other blocks (pc.bios 256 KiB, pc.rom 128
 *       KiB, ACPI tables 128 KiB, table-loader and RSDP 4 KiB each: 520 KiB) live in QEMU's
 *       anonymous memory and travel in QEMU's own migration stream with {@code x-ignore-shared}.
 *       For pc guests above 3.5 GiB the guest-physical layout is split around the PCI hole, but
 *       the file offsets stay linear.
 *   <li>Only writes through QEMU's own mapping mark pages: a vCPU, a device, or QEMU itself (its
 *       gdbstub writes, used by the tests to write exact pages without guest code). Writes through
 *       the agent's mapping of the same file are invisible to the scan (userfaultfd write-protect
 *       lives in QEMU's page tables), though QEMU reads them at once. A paused QEMU writes nothing.
 *   <li>PAGEMAP_SCAN may stop before the end of the range with fewer regions than the vector
 *       holds; the scanner loops on {@code walk_end}. After the process is gone it fails with
 *       ESRCH rather than reporting a clean range.
 *   <li>Events: {@code stop} gives STOP, {@code cont} RESUME (a second {@code stop} none). A
 *       migration with the {@code events} capability gives, on the source, MIGRATION
 *       setup/active/completed with MIGRATION_PASS 1 and 2, and on the destination MIGRATION
 *       setup/active/completed; without {@code events} the source sends none and the destination
 *       only "setup". The source ends in run state {@code postmigrate}; a destination started with
 *       {@code -incoming defer} reports {@code inmigrate} and stays paused after loading until
 *       {@code cont}. {@code quit} gives SHUTDOWN {@code host-qmp-quit}, SIGTERM SHUTDOWN
 *       {@code host-signal} and exit status 0.
 *   <li>QEMU sometimes resets the QMP connection instead of closing it when it exits; both mean
 *       the same.
 * </ul>
 */
package dev.ferry.hypervisor.qemu;
