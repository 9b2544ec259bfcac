package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** A server with auth_token_file: the token from a string or a file; wrong or none refused. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AuthTest {
    private static final String TOKEN = "correct horse battery staple";

    @TempDir static Path dir;
    static Statesrvd server;
    static Path tokenFile;

    @BeforeAll
    static void start() throws Exception {
        tokenFile = dir.resolve("token");
        Files.writeString(tokenFile, TOKEN + "\n");
        server = Statesrvd.start(dir, "auth_token_file = " + tokenFile);
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    @Test
    void theTokenAsAStringIsAccepted() {
        try (StatesrvClient c =
                StatesrvClient.connect(Statesrvd.config(server.tcp()).authToken(TOKEN).build())) {
            c.blocking().put(StateKey.of("auth", "k"), new byte[] {1});
            assertThat(c.blocking().get(StateKey.of("auth", "k"))).isPresent();
        }
    }

    @Test
    void theTokenFromAFileIsItsFirstLine() throws Exception {
        Path crlf = dir.resolve("token-crlf");
        Files.writeString(crlf, TOKEN + "\r\nsecond line\n");
        try (StatesrvClient c =
                StatesrvClient.connect(
                        Statesrvd.config(server.unix()).authTokenFile(crlf).build())) {
            c.blocking().ping();
        }
    }

    @Test
    void aWrongOrMissingTokenIsUnauthenticated() {
        for (StatesrvConfig cfg :
                new StatesrvConfig[] {
                    Statesrvd.config(server.tcp()).authToken(TOKEN + "!").build(),
                    Statesrvd.config(server.tcp()).authToken(TOKEN.substring(1)).build(),
                    Statesrvd.config(server.unix()).build(),
                }) {
            assertThatThrownBy(() -> StatesrvClient.connect(cfg))
                    .isInstanceOfSatisfying(
                            StatesrvException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(Status.UNAUTHENTICATED);
                                assertThat(e.isConnectionError()).isTrue();
                            });
        }
    }

    @Test
    void anEmptyTokenFileFailsBeforeConnecting() throws Exception {
        Path empty = dir.resolve("empty");
        Files.writeString(empty, "\n");
        assertThatThrownBy(
                        () ->
                                StatesrvClient.connect(
                                        Statesrvd.config(server.tcp())
                                                .authTokenFile(empty)
                                                .build()))
                .isInstanceOfSatisfying(
                        StatesrvException.class,
                        e -> {
                            assertThat(e.status()).isEqualTo(Status.CONNECT_FAILED);
                            assertThat(e.detail()).contains("empty");
                        });
    }

    @Test
    void withoutAuthTheTokenIsNotNeeded(@TempDir Path other) throws Exception {
        try (Statesrvd open = Statesrvd.start(other);
                StatesrvClient c = StatesrvClient.connect(Statesrvd.config(open.tcp()).build())) {
            c.blocking().ping();
        }
    }
}
