/* Crash points for tests: sv_failpoint("name") kills the process with
 * SIGKILL, at once, when the environment variable STATESRVD_FAILPOINT named
 * that point at start. Tests use it to crash the server at an exact step of
 * a protocol of several steps (a checkpoint's deletion); in production the
 * variable is unset and a failpoint is one comparison of a NULL pointer. */
#ifndef SV_FAILPOINT_H
#define SV_FAILPOINT_H

/* Reads STATESRVD_FAILPOINT; call once at start, before any thread. */
void sv_failpoint_init(void);
void sv_failpoint(const char *name);
/* The same, but the point waits 2 s instead (to see a job in the middle). */
void sv_failpoint_delay(const char *name);

#endif
