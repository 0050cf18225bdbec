package dev.ferry.cli.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

class ProcStatTest {
    @Test
    void userPlusSystemTimeAreFields14And15() {
        String line = "21769 (qemu-system-x86) R 21765 21765 1 0 -1 4194624 1543 0 0 0 1000 44 0 0 20 0 4 0 "
                + "556791 1211117568 9536 18446744073709551615 1 1 0 0 0 0 0 4096 17635 0 0 0 -1 1 0 0 0 0 0";
        assertEquals(1044, ProcStat.parseCpuTicks(line));
    }

    @Test
    void aCommandNameWithSpacesAndParenthesesDoesNotShiftTheFields() {
        String line = "7 (C2 CompilerThre) S 1 1 1 0 -1 0 0 0 0 0 30 12 5 6 20 0 1 0 100 0 0";
        assertEquals(42, ProcStat.parseCpuTicks(line));
        String odd = "8 (a) b (c)) S 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 100 0 0";
        assertEquals(10, ProcStat.parseCpuTicks(odd));
    }

    @Test
    void refusesWhatIsNotAStatLine() {
        assertThrows(IllegalArgumentException.class, () -> ProcStat.parseCpuTicks("hello"));
        assertThrows(IllegalArgumentException.class, () -> ProcStat.parseCpuTicks("1 (x) S 1 2"));
    }

    @Test
    void thisProcessHasCpuTimeAndJitThreads() {
        long me = ProcessHandle.current().pid();
        assertTrue(ProcStat.cpuTicks(me).isPresent());
        assertTrue(ProcStat.cpuTicks(Long.MAX_VALUE).isEmpty());
        assertEquals(
                5,
                ProcStat.jitTicksBetween(Map.of(1L, 10L), Map.of(1L, 12L, 2L, 3L)),
                "a compiler thread that appeared counts from zero");
    }
}
