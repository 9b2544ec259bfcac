package io.statesrv.client;

/**
 * A request that did not succeed: the {@link Status} and the detail, which for a server status is
 * the server's own message (it names the field, the limit, the failing batch op).
 *
 * <p>{@link #isConnectionError()} tells whether the connection is gone: then every request that was
 * pending on it failed too, and every later one fails at once; connect again.
 */
public class StatesrvException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Status status;
    private final String serverMessage;
    private final boolean connectionError;

    public StatesrvException(Status status, String message) {
        this(status, message, false, null);
    }

    public StatesrvException(
            Status status, String message, boolean connectionError, Throwable cause) {
        super(
                message == null || message.isEmpty() ? status.name() : status + ": " + message,
                cause);
        this.status = status;
        this.serverMessage = message == null ? "" : message;
        this.connectionError = connectionError;
    }

    /** What the request came to. */
    public Status status() {
        return status;
    }

    /**
     * The server's message for a server status, the local cause otherwise; never null, may be
     * empty.
     */
    public String detail() {
        return serverMessage;
    }

    /** True when the connection is closed and the client must be replaced. */
    public boolean isConnectionError() {
        return connectionError;
    }
}
