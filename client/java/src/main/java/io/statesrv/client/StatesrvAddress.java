package io.statesrv.client;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

/**
 * Where a server listens: TCP {@code host:port} or a Unix stream socket. {@link #parse} takes the C
 * client's and statectl's syntax: {@code "host:port"}, {@code "[v6addr]:port"} or {@code
 * "unix:/path/to/socket"}.
 */
public final class StatesrvAddress {
    /** The server's default listen address, 127.0.0.1:7420. */
    public static final String DEFAULT = "127.0.0.1:7420";

    private final String host; // null for Unix
    private final int port;
    private final Path path;

    private StatesrvAddress(String host, int port, Path path) {
        this.host = host;
        this.port = port;
        this.path = path;
    }

    public static StatesrvAddress tcp(String host, int port) {
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port " + port + " is not 1..65535");
        }
        return new StatesrvAddress(host, port, null);
    }

    public static StatesrvAddress unix(Path socket) {
        return new StatesrvAddress(null, 0, socket);
    }

    /**
     * Parses {@code "host:port"}, {@code "[v6addr]:port"} or {@code "unix:/path"}.
     *
     * @throws IllegalArgumentException if it is none of these
     */
    public static StatesrvAddress parse(String s) {
        if (s.startsWith("unix:")) {
            if (s.length() == 5) {
                throw new IllegalArgumentException("unix: address without a path");
            }
            return unix(Path.of(s.substring(5)));
        }
        int colon = s.lastIndexOf(':');
        if (colon <= 0 || colon == s.length() - 1) {
            throw new IllegalArgumentException("not host:port or unix:/path: \"" + s + "\"");
        }
        String host = s.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        } else if (host.indexOf(':') >= 0) {
            throw new IllegalArgumentException("an IPv6 address goes in brackets: \"" + s + "\"");
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in \"" + s + "\"", e);
        }
        return tcp(host, port);
    }

    public boolean isUnix() {
        return path != null;
    }

    SocketAddress socketAddress() {
        return path != null ? UnixDomainSocketAddress.of(path) : new InetSocketAddress(host, port);
    }

    @Override
    public String toString() {
        if (path != null) {
            return "unix:" + path;
        }
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }
}
