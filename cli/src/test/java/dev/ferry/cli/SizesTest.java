package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SizesTest {
    @Test
    void parsesSizesTheWayOperatorsWriteThem() {
        assertEquals(512L << 20, Sizes.parseSize("512M"));
        assertEquals(4L << 30, Sizes.parseSize("4G"));
        assertEquals(3L << 29, Sizes.parseSize("1.5GiB"));
        assertEquals(2048, Sizes.parseSize("2k"));
        assertEquals(100, Sizes.parseSize("100"));
        assertEquals(64L << 20, Sizes.parseRate("64M/s"));
        assertEquals(1L << 30, Sizes.parseRate("1G"));
    }

    @Test
    void refusesNonsenseWithAHint() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sizes.parseSize("12Q"));
        assertTrue(e.getMessage().contains("512M"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Sizes.parseSize("-1G"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parseRate("fast"));
    }

    @Test
    void formatsForHumans() {
        assertEquals("512 MiB", Sizes.format(512L << 20));
        assertEquals("1.5 GiB", Sizes.format(3L << 29));
        assertEquals("100 B", Sizes.format(100));
    }
}
