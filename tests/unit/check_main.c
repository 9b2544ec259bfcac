/* The unit test runner: every suite in one SRunner.
 *
 * srunner_run_all() honours Check's environment variables, so one suite or
 * one case can be run alone, e.g.
 *   CK_RUN_SUITE=frame build/tests/check_unit
 *   CK_RUN_CASE=rewind CK_VERBOSITY=verbose build/tests/check_unit
 * and CK_FORK=no runs everything in this process (for a debugger). */
#include "suites.h"
#include "sv_log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef Suite *(*sv_suite_ctor)(void);

/* One line per suite, in the order they run. */
static const sv_suite_ctor suite_ctors[] = {
    /* common/ */
    sv_suite_frame,
    sv_suite_keys,
    sv_suite_value,
    sv_suite_common,
    sv_suite_ckpt_format,
    sv_suite_ckpt,
    sv_suite_wire,
    sv_suite_wire_client,
    sv_suite_vectors,
    sv_suite_s3,
    /* server/ */
    sv_suite_config,
    sv_suite_store,
    sv_suite_keycache,
    sv_suite_dispatch,
    sv_suite_batch,
    sv_suite_restore,
};

int main(void)
{
    /* The store logs its progress at INFO; tests only want problems. */
    sv_log_set_level(SV_LOG_WARN);
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof(suite_ctors) / sizeof(suite_ctors[0]); i++)
        srunner_add_suite(sr, suite_ctors[i]());

    /* CK_ENV: verbosity from CK_VERBOSITY (default: summary plus each failure). */
    srunner_run_all(sr, CK_ENV);
    int run = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    if (run == 0) {
        /* Most likely a CK_RUN_SUITE / CK_RUN_CASE that names nothing. */
        fprintf(stderr, "check_unit: no tests ran (check CK_RUN_SUITE / CK_RUN_CASE)\n");
        return EXIT_FAILURE;
    }
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
