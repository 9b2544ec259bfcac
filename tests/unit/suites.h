/* Check suites of the unit test runner (check_main.c): one constructor per
 * module, each defined in tests/unit/check_<module>.c. */
#ifndef SV_TESTS_UNIT_SUITES_H
#define SV_TESTS_UNIT_SUITES_H

#include <check.h>

/* Per test case. Every suite finishes in well under a second; the timeout
 * only stops a hung case (it takes effect in fork mode, Check's default). */
#define SV_UNIT_TIMEOUT 5

/* common/ */
Suite *sv_suite_frame(void);
Suite *sv_suite_keys(void);
Suite *sv_suite_value(void);
Suite *sv_suite_common(void);
Suite *sv_suite_ckpt(void);
Suite *sv_suite_ckpt_format(void);
Suite *sv_suite_wire(void);
Suite *sv_suite_wire_client(void);
Suite *sv_suite_vectors(void);

/* io/ */
Suite *sv_suite_s3(void);

/* server/ */
Suite *sv_suite_config(void);
Suite *sv_suite_store(void);
Suite *sv_suite_keycache(void);
Suite *sv_suite_batch(void);
Suite *sv_suite_dispatch(void);
Suite *sv_suite_restore(void);

#endif
