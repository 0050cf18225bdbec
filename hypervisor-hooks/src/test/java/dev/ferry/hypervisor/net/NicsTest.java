package dev.ferry.hypervisor.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.vm.Nic;
import dev.ferry.proto.vm.NicModel;
import dev.ferry.proto.vm.VmSpec;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NicsTest {
    private static VmSpec spec(Nic... nics) {
        return VmSpec.newBuilder()
                .setName("web")
                .addAllNics(java.util.List.of(nics))
                .build();
    }

    @Test
    void parsesTheNicOption() {
        Nic n = Nics.parse("bridge=vmbr0,mac=52:54:00:AB:cd:01,model=e1000");
        assertEquals("vmbr0", n.getBridge());
        assertEquals("52:54:00:ab:cd:01", n.getMac());
        assertEquals(NicModel.NIC_MODEL_E1000, n.getModel());
        Nic plain = Nics.parse("bridge=br0");
        assertEquals("", plain.getMac());
        assertEquals(NicModel.NIC_MODEL_VIRTIO, plain.getModel());
    }

    @Test
    void refusesABadNicOptionWithTheReason() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Nics.parse("mac=52:54:00:00:00:01"))
                .getMessage()
                .contains("bridge=BR is required"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Nics.parse("bridge=br0,mac=01:00:5e:00:00:01"))
                .getMessage()
                .contains("multicast"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Nics.parse("bridge=br0,mac=00:00:00:00:00:00"))
                .getMessage()
                .contains("not an address"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Nics.parse("bridge=br0,model=rtl8139"))
                .getMessage()
                .contains("virtio or e1000"));
        assertThrows(IllegalArgumentException.class, () -> Nics.parse("bridge=averyveryverylongname"));
        assertThrows(IllegalArgumentException.class, () -> Nics.parse("bridge=br0,speed=10"));
    }

    @Test
    void generatesMissingMacsOnceUnicastAndDistinct() {
        VmSpec given = spec(
                Nic.newBuilder().setBridge("br0").build(),
                Nic.newBuilder().setBridge("br1").setMac("52:54:00:00:00:07").build(),
                Nic.newBuilder().setBridge("br0").build());
        VmSpec done = Nics.withMacs(given, Set.of("52:54:00:00:00:08"), new Random(1));
        assertTrue(Nics.problem(done).isEmpty(), () -> Nics.problem(done).orElseThrow());
        assertEquals("52:54:00:00:00:07", done.getNics(1).getMac());
        assertTrue(done.getNics(0).getMac().startsWith("52:54:00:"));
        assertNotEquals(done.getNics(0).getMac(), done.getNics(2).getMac());
        // A spec that has its MACs keeps them: the coordinator's second look changes nothing.
        assertEquals(done, Nics.withMacs(done, Set.of(), new Random(2)));
    }

    @Test
    void aVmWithTwoCardsOfOneMacIsRefused() {
        VmSpec twice = spec(
                Nic.newBuilder().setBridge("br0").setMac("52:54:00:00:00:07").build(),
                Nic.newBuilder().setBridge("br1").setMac("52:54:00:00:00:07").build());
        assertTrue(Nics.problem(twice).orElseThrow().contains("already used by another NIC"));
        assertThrows(IllegalArgumentException.class, () -> Nics.withMacs(twice, Set.of(), new Random(1)));
        assertTrue(Nics.problem(spec(Nic.newBuilder().setBridge("br0").build()))
                .orElseThrow()
                .contains("has no MAC"));
    }

    @Test
    void tapNamesAreShortDeterministicAndFollowTheMac() {
        Nic n = Nic.newBuilder().setBridge("br0").setMac("52:54:00:a1:b2:c3").build();
        assertEquals("ft525400a1b2c3", Nics.tapName(n));
        assertTrue(Nics.tapName(n).length() <= 15);
        assertNotEquals(
                Nics.tapName(n),
                Nics.tapName(n.toBuilder().setMac("52:54:00:a1:b2:c4").build()));
        assertEquals(Set.of("br0"), Nics.bridges(spec(n)));
    }
}
