#ifndef SV_POWERLOSS_SUITES_H
#define SV_POWERLOSS_SUITES_H

#include <check.h>

Suite *sv_suite_plfs(void);
Suite *sv_suite_powerloss(void);

#endif
