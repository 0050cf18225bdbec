package dev.ferry.hypervisor.storage;

/** A VM spec named a file that {@link StorageRoots} does not let the hypervisor open. */
public final class StorageRefusedException extends Exception {
    private static final long serialVersionUID = 1L;

    public StorageRefusedException(String message) {
        super(message);
    }
}
