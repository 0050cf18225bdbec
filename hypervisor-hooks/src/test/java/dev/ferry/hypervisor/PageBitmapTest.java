package dev.ferry.hypervisor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class PageBitmapTest {
    @Test
    void setsRangesAcrossWordBoundariesAndIterates() {
        PageBitmap b = new PageBitmap(200);
        b.setRange(60, 140);
        b.set(199);
        assertEquals(81, b.cardinality());
        assertEquals(60, b.nextSetBit(0));
        assertEquals(139, b.nextSetBit(139));
        assertEquals(199, b.nextSetBit(140));
        assertEquals(-1, b.nextSetBit(200));
        assertEquals(4, b.cardinality(136, 199));
        assertTrue(b.get(64));
        assertFalse(b.get(59));
    }

    @Test
    void lastPartialWordNeverReportsPagesPastTheEnd() {
        PageBitmap b = new PageBitmap(70);
        b.orWord(1, -1L);
        assertEquals(64, b.nextSetBit(0));
        assertEquals(-1, b.nextSetBit(70));
        assertEquals(69, b.lastSetBit());
    }

    @Test
    void clearsOnePageAndFindsTheLastOne() {
        PageBitmap b = new PageBitmap(200);
        assertEquals(-1, b.lastSetBit());
        b.setRange(60, 140);
        assertEquals(139, b.lastSetBit());
        b.clear(139);
        assertFalse(b.get(139));
        assertEquals(138, b.lastSetBit());
        assertEquals(79, b.cardinality());
    }

    @Test
    void refusesPagesOutOfRange() {
        PageBitmap b = new PageBitmap(10);
        assertThrows(IndexOutOfBoundsException.class, () -> b.set(10));
        assertThrows(IndexOutOfBoundsException.class, () -> b.setRange(5, 11));
        assertThrows(IllegalArgumentException.class, () -> b.or(new PageBitmap(11)));
    }
}
