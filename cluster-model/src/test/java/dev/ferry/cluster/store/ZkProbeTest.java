package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

class ZkProbeTest {
    @Test
    void theServersOfAConnectStringWithPortsDefaultsIpv6AndAChroot() {
        assertEquals(
                List.of(
                        InetSocketAddress.createUnresolved("zk-1", 2281),
                        InetSocketAddress.createUnresolved("zk-2", 2181),
                        InetSocketAddress.createUnresolved("::1", 2182),
                        InetSocketAddress.createUnresolved("198.18.0.4", 2181)),
                ZkProbe.servers("zk-1:2281, zk-2,[::1]:2182,198.18.0.4/ferry/c1"));
        assertEquals(List.of(), ZkProbe.servers(" , /only-a-chroot"));
    }
}
