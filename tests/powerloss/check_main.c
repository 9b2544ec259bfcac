/* Power-loss tests: plfs's own checks, then statesrvd on plfs. When this
 * machine cannot mount a FUSE filesystem the run says why and is skipped
 * (exit 0): CI containers without /dev/fuse or CAP_SYS_ADMIN. */
#include "plmount.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 0 if a FUSE mount works here, else -1 with the reason. */
static int probe(char *why, size_t cap)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, cap, "cannot open /dev/fuse: %s", strerror(errno));
        return -1;
    }
    close(fd);
    if (access(plfs_path(), X_OK)) {
        snprintf(why, cap, "%s: %s", plfs_path(), strerror(errno));
        return -1;
    }
    struct plm m;
    memset(&m, 0, sizeof(m));
    char err[512];
    int rc = plm_mount(&m, "posix", err, sizeof(err));
    if (rc)
        snprintf(why, cap, "cannot mount plfs: %s", err);
    plm_cleanup(&m);
    return rc;
}

int main(void)
{
    char why[600];
    if (probe(why, sizeof(why))) {
        printf("powerloss: skipped: %s\n", why);
        return 0;
    }
    char reg[64];
    snprintf(reg, sizeof(reg), "/tmp/plm-registry.%ld", (long)getpid());
    setenv("PLM_REGISTRY", reg, 1);
    SRunner *sr = srunner_create(sv_suite_plfs());
    srunner_add_suite(sr, sv_suite_powerloss());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    plm_sweep(reg);
    return failed ? 1 : 0;
}
