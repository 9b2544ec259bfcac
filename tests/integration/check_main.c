/* Runner for the integration suites. Needs STATESRVD and STATECTL (the
 * Makefile sets them) or the binaries under build/. */
#include "suites.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *(*const suites[])(void) = {
        sv_suite_protocol,   sv_suite_lifecycle,   sv_suite_api,     sv_suite_statectl,
        sv_suite_checkpoint, sv_suite_incremental, sv_suite_ttl,     sv_suite_security,
        sv_suite_crash,      sv_suite_example,     sv_suite_metrics, sv_suite_hostile,
        sv_suite_async,      sv_suite_local,
    };
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
