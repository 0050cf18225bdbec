package dev.ferry.hypervisor.qemu.qmp;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * One message from QEMU's QMP monitor, classified. Pure parsing and encoding, kept apart from the
 * socket so that it is tested without QEMU.
 *
 * <p>QEMU sends a greeting, then replies ({@code return} or {@code error}, carrying the request's
 * {@code id}) and events ({@code event}), each as one JSON object followed by CRLF.
 */
public sealed interface QmpMessage {
    ObjectMapper JSON = new ObjectMapper();

    /** {@code {"QMP": {"version": ..., "capabilities": [...]}}}, sent once on connect. */
    record Greeting(JsonNode version, List<String> capabilities) implements QmpMessage {}

    /** A successful reply; {@code id} is null when the request carried none. */
    record Return(Long id, JsonNode value) implements QmpMessage {}

    /** An error reply; {@code id} is null when QEMU could not read the request's id. */
    record Error(Long id, String errorClass, String description) implements QmpMessage {}

    record Event(QmpEvent event) implements QmpMessage {}

    /** Parses one line from QEMU; throws {@link IllegalArgumentException} for anything that is not QMP. */
    static QmpMessage parse(byte[] line) {
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("not JSON: " + abbreviate(new String(line, StandardCharsets.UTF_8)), e);
        }
        return classify(node);
    }

    static QmpMessage classify(JsonNode node) {
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException("not a JSON object: " + abbreviate(String.valueOf(node)));
        }
        if (node.has("return")) {
            return new Return(id(node), node.get("return"));
        }
        if (node.has("error")) {
            JsonNode error = node.get("error");
            return new Error(
                    id(node),
                    error.path("class").asText("?"),
                    error.path("desc").asText("?"));
        }
        if (node.has("event")) {
            Instant timestamp = timestamp(node.path("timestamp"));
            JsonNode data = node.has("data") ? node.get("data") : JsonNodeFactory.instance.objectNode();
            return new Event(new QmpEvent(node.get("event").asText(), data, timestamp));
        }
        if (node.has("QMP")) {
            JsonNode qmp = node.get("QMP");
            List<String> caps = new ArrayList<>();
            qmp.path("capabilities").forEach(c -> caps.add(c.asText()));
            return new Greeting(qmp.path("version"), List.copyOf(caps));
        }
        throw new IllegalArgumentException("unknown QMP message: " + abbreviate(node.toString()));
    }

    /** The request line for {@code command}: {@code {"execute": ..., "arguments": ..., "id": ...}} and a newline. */
    static byte[] request(String command, JsonNode arguments, long id) {
        ObjectNode req = JsonNodeFactory.instance.objectNode();
        req.put("execute", command);
        if (arguments != null && !arguments.isNull() && !arguments.isMissingNode()) {
            if (!arguments.isObject()) {
                throw new IllegalArgumentException(
                        "QMP arguments of " + command + " must be a JSON object, got " + arguments);
            }
            req.set("arguments", arguments);
        }
        req.put("id", id);
        try {
            byte[] json = JSON.writeValueAsBytes(req);
            byte[] line = java.util.Arrays.copyOf(json, json.length + 1);
            line[json.length] = '\n';
            return line;
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot encode QMP request " + command, e);
        }
    }

    /**
     * QEMU's timestamp of an event, or the time it arrived when QEMU's does not read as one (not
     * integers, microseconds out of range, seconds beyond what an Instant holds): a broken or
     * hostile QEMU's timestamp must not cost the event, let alone the connection.
     */
    private static Instant timestamp(JsonNode ts) {
        JsonNode seconds = ts.path("seconds");
        JsonNode micros = ts.path("microseconds");
        if (seconds.isIntegralNumber()
                && seconds.canConvertToLong()
                && micros.isIntegralNumber()
                && micros.canConvertToLong()
                && micros.asLong() >= 0
                && micros.asLong() < 1_000_000) {
            try {
                return Instant.ofEpochSecond(seconds.asLong(), micros.asLong() * 1000);
            } catch (java.time.DateTimeException e) {
                // beyond Instant's range: fall through to the arrival time
            }
        }
        return Instant.now();
    }

    private static Long id(JsonNode node) {
        JsonNode id = node.get("id");
        // Only ids this client sends are numbers; anything else is not ours to correlate.
        return id != null && id.canConvertToLong() && id.isIntegralNumber() ? id.asLong() : null;
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }
}
