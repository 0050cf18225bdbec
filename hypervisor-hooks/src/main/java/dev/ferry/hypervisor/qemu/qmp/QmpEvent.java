package dev.ferry.hypervisor.qemu.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Instant;

/**
 * An asynchronous QMP event ({@code STOP}, {@code RESUME}, {@code SHUTDOWN}, {@code MIGRATION},
 * ...).
 *
 * @param name the event name, as QEMU spells it
 * @param data the event's {@code data} member; an empty object when QEMU sent none
 * @param timestamp QEMU's own timestamp of the event (host wall clock), or when it arrived if QEMU's
 *     does not read as one
 */
public record QmpEvent(String name, JsonNode data, Instant timestamp) {}
