package dev.ferry.hypervisor.qemu;

import com.fasterxml.jackson.databind.JsonNode;

/** QEMU's version as {@code query-version} reports it, for logs and compatibility checks. */
public record QemuVersion(int major, int minor, int micro, String packageName) {
    static QemuVersion fromQueryVersion(JsonNode r) {
        JsonNode q = r.path("qemu");
        return new QemuVersion(
                q.path("major").asInt(),
                q.path("minor").asInt(),
                q.path("micro").asInt(),
                r.path("package").asText("").strip());
    }

    public boolean atLeast(int major, int minor) {
        return this.major > major || (this.major == major && this.minor >= minor);
    }

    /** {@code major.minor.micro}, what a host registers. */
    public String number() {
        return major + "." + minor + "." + micro;
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + micro + (packageName.isEmpty() ? "" : " (" + packageName + ")");
    }
}
