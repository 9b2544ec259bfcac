#include "failpoint.h"
#include "sv_log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *armed;

void sv_failpoint_init(void)
{
    armed = getenv("STATESRVD_FAILPOINT");
    if (armed && !*armed)
        armed = NULL;
    if (armed)
        sv_warn("failpoint '%s' is armed: the server kills itself there (a test setting)", armed);
}

void sv_failpoint_delay(const char *name)
{
    if (armed && strcmp(armed, name) == 0) {
        sv_warn("failpoint '%s' reached: waiting 2 s", name);
        struct timespec ts = {2, 0};
        while (nanosleep(&ts, &ts) && errno == EINTR)
            ;
    }
}

void sv_failpoint(const char *name)
{
    if (armed && strcmp(armed, name) == 0) {
        sv_warn("failpoint '%s' reached: SIGKILL", name);
        raise(SIGKILL);
    }
}
