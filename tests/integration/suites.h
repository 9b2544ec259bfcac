/* Integration suites: each starts real statesrvd processes. */
#ifndef SV_TESTS_INTEGRATION_SUITES_H
#define SV_TESTS_INTEGRATION_SUITES_H

#include <check.h>

Suite *sv_suite_protocol(void);
Suite *sv_suite_lifecycle(void);
Suite *sv_suite_api(void);
Suite *sv_suite_statectl(void);
Suite *sv_suite_checkpoint(void);
Suite *sv_suite_security(void);
Suite *sv_suite_crash(void);
Suite *sv_suite_example(void);
Suite *sv_suite_metrics(void);
Suite *sv_suite_hostile(void);
Suite *sv_suite_incremental(void);
Suite *sv_suite_ttl(void);
Suite *sv_suite_async(void);
Suite *sv_suite_local(void);

#endif
