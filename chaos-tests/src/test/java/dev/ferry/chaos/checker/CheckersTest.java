package dev.ferry.chaos.checker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.chaos.history.Event;
import dev.ferry.chaos.history.Event.OpType;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import dev.ferry.chaos.history.RecordView;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CheckersTest {
    private static final long S = 1_000_000_000L;

    @Test
    void i1AcceptsAHandoverAndCatchesTwoCopiesRunningTogether() {
        History handover = new Hist()
                .runs("v", "h1/1", 0, 2000)
                .still("v", "h1/1", 2100, 5000, 21)
                .runs("v", "h2/2", 2100, 5000)
                .build();
        assertEquals(List.of(), new NoTwoCopies().check(handover));

        History twice = new Hist()
                .runs("v", "h1/1", 0, 4000)
                .runs("v", "h2/2", 2000, 5000)
                .build();
        List<Violation> v = new NoTwoCopies().check(twice);
        assertEquals(1, v.size(), v.toString());
        assertEquals("I1", v.getFirst().invariant());
        assertTrue(v.getFirst().detail().contains("h1/1"), v.toString());

        // Taking turns is a second copy too: h1 stops while h2 runs, then h1 runs again.
        History turns = new Hist()
                .runs("v", "h1/1", 0, 1000)
                .runs("v", "h2/2", 1100, 2000)
                .still("v", "h1/1", 1100, 2000, 11)
                .observe(2100, Observations.PROGRESS, "v", "h1/1", "12")
                .build();
        assertEquals(1, new NoTwoCopies().check(turns).size());
    }

    @Test
    void i1NeverMakesUpAnOverlapFromSampling() {
        // The old copy's last beat and the new copy's first fall in adjacent samples: no certainty.
        History close = new Hist()
                .runs("v", "h1/1", 0, 1000)
                .still("v", "h1/1", 1100, 3000, 11)
                .observe(1000, Observations.PROGRESS, "v", "h2/2", "-1")
                .runs("v", "h2/2", 1100, 3000)
                .build();
        assertEquals(List.of(), new NoTwoCopies().check(close));
        // Another VM's copies never count against this one.
        History two =
                new Hist().runs("v", "h1/1", 0, 3000).runs("w", "h2/2", 0, 3000).build();
        assertEquals(List.of(), new NoTwoCopies().check(two));
    }

    @Test
    void i2CatchesAnOwnershipChangeInAFailedMigrationAndASourceThatStopped() {
        Map<String, String> args = Map.of("vm", "v", "from", "h1", "to", "h2");
        History fine = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 8000)
                .op(500, 1500, "migrate", args, OpType.FAIL, "cancelled")
                .record(1600, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .build();
        FailedMigrationKeepsSource i2 = new FailedMigrationKeepsSource(2 * S);
        assertEquals(List.of(), i2.check(fine));

        History moved = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 8000)
                .op(500, 1500, "migrate", args, OpType.FAIL, "cancelled")
                .record(1600, "v", "owner=h2 epoch=2 desired=RUNNING phase=RUNNING")
                .build();
        List<Violation> v = i2.check(moved);
        assertEquals(1, v.size(), v.toString());
        assertTrue(v.getFirst().detail().contains("owner=h2 epoch=2"), v.toString());

        History stopped = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 1000)
                .still("v", "h1/1", 1100, 8000, 11)
                .op(500, 1500, "migrate", args, OpType.FAIL, "stream broke")
                .record(1600, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .build();
        assertEquals(1, i2.check(stopped).size(), i2.check(stopped).toString());

        // A fault right after the failure may stop the source legitimately; an unknown outcome proves nothing.
        History faulted = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 1000)
                .still("v", "h1/1", 1100, 8000, 11)
                .op(500, 1500, "migrate", args, OpType.FAIL, "stream broke")
                .record(1600, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .fault(1700, "kill", true)
                .op(2000, 3000, "migrate", args, OpType.INFO, "unknown")
                .build();
        assertEquals(List.of(), i2.check(faulted));
    }

    @Test
    void i2LeavesAMigrationWhoseSourceDiedToI4ButNotOneWhoseDestinationOrLinkFailed() {
        Map<String, String> args = Map.of("vm", "v", "from", "h1", "to", "h2");
        FailedMigrationKeepsSource i2 = new FailedMigrationKeepsSource(2 * S);
        // Scenario 2: the source agent killed mid pre-copy, the VM restarted on h2 at epoch 2.
        for (Event.Fault sourceDown : List.of(
                new Event.Fault(1000 * Hist.MS, "kill", true, "h1 pid 42"),
                new Event.Fault(1000 * Hist.MS, "freeze", true, "h1 pid 42"),
                new Event.Fault(1000 * Hist.MS, "partition", true, "[h1] <-/-> [zk-1, zk-2, zk-3]"))) {
            History h = new Hist()
                    .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                    .op(500, 1500, "migrate", args, OpType.FAIL, "h1 left the cluster")
                    .event(sourceDown)
                    .record(9000, "v", "owner=h2 epoch=2 desired=RUNNING phase=RUNNING")
                    .build();
            assertEquals(List.of(), i2.check(h), sourceDown.toString());
        }
        // The destination killed, the link cut, or a host with a longer name than the source's
        // (h10 is not h1): none of these may move the VM.
        for (Event.Fault elsewhere : List.of(
                new Event.Fault(1000 * Hist.MS, "kill", true, "h2 pid 43"),
                new Event.Fault(1000 * Hist.MS, "kill", true, "h10 pid 44"),
                new Event.Fault(1000 * Hist.MS, "partition", true, "[h1] <-/-> [h2]"),
                new Event.Fault(1000 * Hist.MS, "slip-ownership", true, "v to h3 behind the cluster's back"))) {
            History h = new Hist()
                    .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                    .runs("v", "h1/1", 0, 8000)
                    .op(500, 1500, "migrate", args, OpType.FAIL, "stream broke")
                    .event(elsewhere)
                    .record(1600, "v", "owner=h3 epoch=2 desired=RUNNING phase=RUNNING")
                    .build();
            assertEquals(1, i2.check(h).size(), elsewhere + ": " + i2.check(h));
        }
    }

    @Test
    void i3ReportsEachStaleCopyOnce() {
        History h = new Hist()
                .observe(100, Observations.STALE, "v", "h2/7", "stale=1")
                .observe(200, Observations.STALE, "v", "h2/7", "stale=2")
                .observe(300, Observations.STALE, "w", "h1/8", "STALE pfn=5")
                .build();
        assertEquals(2, new MemoryIntact().check(h).size());
        assertEquals(
                List.of(),
                new MemoryIntact().check(new Hist().runs("v", "h1/1", 0, 500).build()));
    }

    @Test
    void i4WantsExactlyOneCopyOnTheOwnerWithinTheBoundAtAHigherEpoch() {
        NothingLost i4 = new NothingLost(5 * S, 2 * S);
        History ok = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 1000)
                .fault(1000, "kill", true)
                .fault(2000, "kill", false)
                .runs("v", "h2/2", 4000, 9000)
                .record(9000, "v", "owner=h2 epoch=2 desired=RUNNING phase=RUNNING")
                .build();
        assertEquals(List.of(), i4.check(ok));
        assertEquals(2 * S + 100_000_000L, NothingLost.recoveries(ok).get("v"));

        History lost = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 1000)
                .fault(1000, "kill", true)
                .fault(2000, "kill", false)
                .still("v", "h1/1", 1100, 9000, 11)
                .record(9000, "v", "owner=h2 epoch=2 desired=RUNNING phase=RUNNING")
                .build();
        assertEquals(1, i4.check(lost).size(), i4.check(lost).toString());

        History late = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .fault(1000, "kill", true)
                .fault(2000, "kill", false)
                .runs("v", "h2/2", 8000, 12000)
                .record(12000, "v", "owner=h2 epoch=2 desired=RUNNING phase=RUNNING")
                .build();
        List<Violation> v = i4.check(late);
        assertEquals(1, v.size(), v.toString());
        assertTrue(v.getFirst().detail().contains("past the bound"), v.toString());

        History sameEpoch = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h2/2", 0, 5000)
                .record(5000, "v", "owner=h2 epoch=1 desired=RUNNING phase=RUNNING")
                .build();
        assertEquals(1, i4.check(sameEpoch).size());

        History stoppedVm = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=STOPPED phase=STOPPED")
                .fault(100, "x", false)
                .record(5000, "v", "owner=h1 epoch=1 desired=STOPPED phase=STOPPED")
                .build();
        assertEquals(List.of(), i4.check(stoppedVm));
    }

    @Test
    void i4JudgesTheRecordsOfTheWindowNotTheDeletionsAfterIt() {
        // The runner deletes a run's VMs after the window it is judged in; the records read then say
        // "absent". Judged at the very end, a lost VM would pass (I4 checked nothing on real clusters).
        NothingLost i4 = new NothingLost(5 * S, 2 * S);
        History lostThenDeleted = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 1000)
                .still("v", "h1/1", 1100, 6000, 11)
                .record(6000, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .observe(6001, Observations.WINDOW_END, "", "", "")
                .record(9000, "v", RecordView.ABSENT.value())
                .build();
        List<Violation> v = i4.check(lostThenDeleted);
        assertEquals(1, v.size(), v.toString());
        assertTrue(v.getFirst().detail().contains("0 copies progressed"), v.toString());

        History ranThenDeleted = new Hist()
                .record(0, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .runs("v", "h1/1", 0, 6000)
                .record(6000, "v", "owner=h1 epoch=1 desired=RUNNING phase=RUNNING")
                .observe(6001, Observations.WINDOW_END, "", "", "")
                .record(9000, "v", RecordView.ABSENT.value())
                .build();
        assertEquals(List.of(), i4.check(ranThenDeleted));
    }

    @Test
    void i5FlagsWhatNoRecordAccountsFor() {
        History h = new Hist()
                .record(0, "v", "owner=h1 epoch=2 desired=RUNNING phase=RUNNING")
                .record(0, "s", "owner=h2 epoch=1 desired=STOPPED phase=STOPPED")
                .observe(100, Observations.FINAL_QEMU, "v", "h1", "pid 10")
                .observe(100, Observations.FINAL_RAM_FILE, "v", "h1", "/ram/v")
                .observe(100, Observations.FINAL_RUN_LOCK, "v", "h1", "/running/v")
                .observe(100, Observations.FINAL_RUN_DIR, "s", "h2", "/data/vms/s")
                .build();
        assertEquals(List.of(), new NothingLeaked().check(h));

        History leaks = new Hist()
                .record(0, "v", "owner=h1 epoch=2 desired=RUNNING phase=RUNNING")
                .record(0, "s", "owner=h2 epoch=1 desired=STOPPED phase=STOPPED")
                .observe(100, Observations.FINAL_QEMU, "v", "h2", "pid 11")
                .observe(100, Observations.FINAL_QEMU, "v", "h1", "pid 10")
                .observe(100, Observations.FINAL_QEMU, "v", "h1", "pid 12")
                .observe(100, Observations.FINAL_QEMU, "s", "h2", "pid 13")
                .observe(100, Observations.FINAL_RAM_FILE, "gone", "h1", "/ram/gone")
                .observe(100, Observations.FINAL_QEMU, "", "h3", "pid 14")
                .build();
        List<Violation> v = new NothingLeaked().check(leaks);
        assertEquals(5, v.size(), v.toString());
    }
}
