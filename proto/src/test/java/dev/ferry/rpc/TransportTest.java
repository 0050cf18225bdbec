package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.MethodDescriptor;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class TransportTest {
    @Test
    void keepaliveDefaultsNoticeADeadPeerInSecondsAndAllowOurClientsPings() {
        Transport.Keepalive k = Transport.plaintext().keepalive();
        assertEquals(Transport.Keepalive.DEFAULT, k);
        // gRPC never lets a client ping more often than every 10 s; the server must permit at least that.
        assertTrue(Transport.PERMIT_KEEPALIVE_TIME.compareTo(Duration.ofSeconds(10)) <= 0);
        assertTrue(k.time().plus(k.timeout()).compareTo(Duration.ofSeconds(30)) <= 0, k.toString());
        assertTrue(k.timeout().compareTo(Duration.ofSeconds(1)) >= 0, "a real network needs seconds: " + k);
    }

    @Test
    void keepaliveMustBePositive() {
        assertThrows(
                IllegalArgumentException.class, () -> new Transport.Keepalive(Duration.ZERO, Duration.ofSeconds(1)));
        assertThrows(
                IllegalArgumentException.class,
                () -> new Transport.Keepalive(Duration.ofSeconds(1), Duration.ofSeconds(-1)));
    }

    @Test
    void keepaliveSurvivesAddingAnInterceptor() {
        Transport.Keepalive k = new Transport.Keepalive(Duration.ofSeconds(15), Duration.ofSeconds(3));
        Transport t = Transport.plaintext().withKeepalive(k).withClientInterceptor(new ClientInterceptor() {
            @Override
            public <Q, R> ClientCall<Q, R> interceptCall(
                    MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
                return next.newCall(method, options);
            }
        });
        assertEquals(k, t.keepalive());
    }
}
