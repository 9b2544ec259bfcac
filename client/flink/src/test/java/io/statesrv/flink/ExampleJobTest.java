package io.statesrv.flink;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The documented example job runs to the end against a real statesrvd. */
class ExampleJobTest {
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void exampleJobRuns(@TempDir Path tmp) throws Exception {
        ExampleJob.main(
                new String[] {StatesrvStateBackendTest.statesrvd(), tmp.toUri().toString()});
    }
}
