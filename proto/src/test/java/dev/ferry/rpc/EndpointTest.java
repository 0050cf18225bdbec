package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class EndpointTest {
    @Test
    void parsesTcpV6AndInProcess() {
        assertEquals(new Endpoint.Tcp("127.0.0.1", 7000), Endpoint.parse("127.0.0.1:7000"));
        assertEquals(new Endpoint.Tcp("::1", 7000), Endpoint.parse("[::1]:7000"));
        assertEquals("[::1]:7000", Endpoint.parse("[::1]:7000").toString());
        assertEquals(new Endpoint.InProcess("a"), Endpoint.parse("inproc:a"));
    }

    @Test
    void refusesMalformedEndpointsWithTheReason() {
        for (String bad : new String[] {"", "host", "host:", ":80", "h:99999", "h:x", "inproc:"}) {
            assertThrows(IllegalArgumentException.class, () -> Endpoint.parse(bad), bad);
        }
    }
}
