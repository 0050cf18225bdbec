package dev.ferry.chaos.history;

/** The kinds of {@link Event.Observation} the observers write and the checkers read. */
public final class Observations {
    private Observations() {}

    /**
     * A copy's progress counter sampled from outside its agent: the test guest's last heartbeat
     * on its serial console (QEMU), or the last heartbeat line on a sim guest's console file.
     * Value: the counter, or -1 when the copy printed none yet.
     */
    public static final String PROGRESS = "progress";

    /** A copy's heartbeat reported stale pages (value: the guest's stale counter, or the line). */
    public static final String STALE = "stale";

    /** A VM's record read from ZooKeeper: value "owner=h epoch=e desired=RUNNING phase=..." ("absent"). */
    public static final String RECORD = "record";

    /** Something found at the end that nothing accounts for (copy: where; value: what). */
    public static final String LEFTOVER = "leftover";

    /**
     * The end of the window a run is judged in: the runner writes it after its final sample and
     * record read, before it deletes the run's VMs (which leaves every record "absent"). I4 judges
     * the records and progress up to the last such mark (value: empty).
     */
    public static final String WINDOW_END = "window-end";

    /** A QEMU process's run state from /proc (value: R, S, T, ...; copy: host/pid). */
    public static final String PROC_STATE = "proc-state";

    /**
     * What exists at the end, one observation each, for I5 (copy: the host it is on; value: the
     * path or pid): a QEMU process, a RAM file, a VM's run directory, a run lock in ZooKeeper.
     */
    public static final String FINAL_QEMU = "final-qemu";

    public static final String FINAL_RAM_FILE = "final-ram-file";
    public static final String FINAL_RUN_DIR = "final-run-dir";
    public static final String FINAL_RUN_LOCK = "final-run-lock";
}
