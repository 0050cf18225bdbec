package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import org.junit.jupiter.api.Test;

/** Which TLS implementation a process picks, and that the fast one is really there on these hosts. */
class TlsProviderTest {
    @Test
    void boringSslIsTheDefaultOnLinuxX86() {
        // grpc-netty-shaded bundles netty-tcnative for linux-x86_64; if a dependency change drops
        // it, every migration lane silently falls back to the JDK's TLS at half the throughput.
        assertEquals(SslProvider.OPENSSL, TlsContexts.chooseProvider(""));
        assertTrue(Transport.tlsImplementation().contains("BoringSSL"), Transport.tlsImplementation());
    }

    @Test
    void theJdkCanBeChosenForComparison() {
        assertEquals(SslProvider.JDK, TlsContexts.chooseProvider("jdk"));
        assertEquals(SslProvider.OPENSSL, TlsContexts.chooseProvider("boringssl"));
    }

    @Test
    void anUnknownProviderIsAnErrorNamingTheChoices() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> TlsContexts.chooseProvider("openssl3"));
        assertTrue(e.getMessage().contains("expected boringssl or jdk"), e.getMessage());
    }
}
