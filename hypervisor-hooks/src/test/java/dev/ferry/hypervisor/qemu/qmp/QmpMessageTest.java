package dev.ferry.hypervisor.qemu.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;

class QmpMessageTest {
    private static QmpMessage parse(String s) {
        return QmpMessage.parse(s.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void classifiesQemusGreeting() {
        QmpMessage.Greeting g = assertInstanceOf(
                QmpMessage.Greeting.class,
                parse(
                        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"Debian\"},"
                                + " \"capabilities\": [\"oob\"]}}"));
        assertEquals(List.of("oob"), g.capabilities());
        assertEquals(7, g.version().path("qemu").path("major").asInt());
    }

    @Test
    void repliesCarryTheRequestId() {
        QmpMessage.Return r = assertInstanceOf(
                QmpMessage.Return.class,
                parse("{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 42}"));
        assertEquals(42L, r.id());
        assertEquals("running", r.value().path("status").asText());
        QmpMessage.Error e = assertInstanceOf(
                QmpMessage.Error.class,
                parse(
                        "{\"id\": 7, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command foo has not been found\"}}"));
        assertEquals(7L, e.id());
        assertEquals("CommandNotFound", e.errorClass());
        assertEquals("The command foo has not been found", e.description());
    }

    @Test
    void aReplyWithoutOurKindOfIdIsNotCorrelated() {
        assertNull(((QmpMessage.Return) parse("{\"return\": {}}")).id());
        assertNull(
                ((QmpMessage.Error) parse("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}"))
                        .id());
        assertNull(((QmpMessage.Return) parse("{\"return\": {}, \"id\": \"someone-else\"}")).id());
    }

    @Test
    void eventsKeepNameDataAndQemusTimestamp() {
        QmpEvent ev = assertInstanceOf(
                        QmpMessage.Event.class,
                        parse(
                                "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 250000}, \"event\": \"MIGRATION\","
                                        + " \"data\": {\"status\": \"completed\"}}"))
                .event();
        assertEquals("MIGRATION", ev.name());
        assertEquals("completed", ev.data().path("status").asText());
        assertEquals(Instant.ofEpochSecond(1700000000, 250_000_000), ev.timestamp());
        QmpEvent stop = ((QmpMessage.Event)
                        parse("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"STOP\"}"))
                .event();
        assertTrue(stop.data().isObject() && stop.data().isEmpty());
    }

    @Test
    void refusesWhatIsNotQmp() {
        assertThrows(IllegalArgumentException.class, () -> parse("not json"));
        assertThrows(IllegalArgumentException.class, () -> parse("[1, 2]"));
        assertThrows(IllegalArgumentException.class, () -> parse("{\"hello\": 1}"));
    }

    @Test
    void requestsAreOneLineWithCommandArgumentsAndId() throws Exception {
        JsonNode args = QmpMessage.JSON.readTree("{\"uri\": \"unix:/run/a b\\n.sock\"}");
        byte[] line = QmpMessage.request("migrate", args, 5);
        String s = new String(line, StandardCharsets.UTF_8);
        assertTrue(s.endsWith("\n"));
        assertEquals(1, s.chars().filter(c -> c == '\n').count(), "a newline inside a value must be escaped");
        JsonNode back = QmpMessage.JSON.readTree(s);
        assertEquals("migrate", back.path("execute").asText());
        assertEquals(5, back.path("id").asLong());
        assertEquals("unix:/run/a b\n.sock", back.path("arguments").path("uri").asText());
        assertTrue(QmpMessage.JSON
                .readTree(QmpMessage.request("stop", null, 1))
                .path("arguments")
                .isMissingNode());
        assertThrows(
                IllegalArgumentException.class, () -> QmpMessage.request("stop", QmpMessage.JSON.readTree("[1]"), 1));
    }
}
