package dev.ferry.migration.commit;

/**
 * One live migration's ownership change: {@code vm} moves from {@code source} at {@code epoch}
 * to {@code target} at {@code epoch + 1}.
 */
public record CommitRequest(String vm, String migrationId, String source, String target, long epoch) {
    public long newEpoch() {
        return epoch + 1;
    }
}
