/* Read access for local readers (readgroup.h is the contract). */
#include "readgroup.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sv_readgroup_resolve(const char *name, gid_t *gid, char *err, size_t errlen)
{
    if (!name || !*name) {
        snprintf(err, errlen, "local_read_group is empty");
        return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(name, &end, 10);
    if (*name >= '0' && *name <= '9' && !*end && !errno && n < (unsigned long)(gid_t)-1) {
        *gid = (gid_t)n;
        return 0;
    }
    char buf[16384];
    struct group g, *res = NULL;
    int rc = getgrnam_r(name, &g, buf, sizeof(buf), &res);
    if (rc || !res) {
        snprintf(err, errlen, "local_read_group = '%.64s': %s", name,
                 rc ? strerror(rc) : "no such group");
        return rc ? -rc : -ENOENT;
    }
    *gid = res->gr_gid;
    return 0;
}

/* Gives path to gid, then sets the mode bits in add and clears those in del
 * (the owner's and others' bits are left as they are). */
static int grant(const char *path, gid_t gid, mode_t add, mode_t del, int must_exist, char *err,
                 size_t errlen)
{
    struct stat st;
    /* A directory may be reached through a symlink (data_dir often is);
     * a file never: chown and chmod would follow it elsewhere. */
    int is_dir = (add & S_IXGRP) != 0;
    if (is_dir ? stat(path, &st) : lstat(path, &st)) {
        if (errno == ENOENT && !must_exist)
            return 0;
        snprintf(err, errlen, "local_read_group: %s: %s", path, strerror(errno));
        return -errno;
    }
    if (is_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "local_read_group: %s is not a %s", path,
                 is_dir ? "directory" : "regular file");
        return -EINVAL;
    }
    if (st.st_gid != gid && chown(path, (uid_t)-1, gid)) {
        int e = errno;
        snprintf(err, errlen,
                 "local_read_group: cannot give %s to group %u: %s (the server's user must be a "
                 "member of the group)",
                 path, (unsigned)gid, strerror(e));
        return -e;
    }
    mode_t mode = ((st.st_mode & 07777) | add) & ~del;
    /* chown(2) may clear setgid; set the mode after it, always. */
    if (chmod(path, mode)) {
        int e = errno;
        snprintf(err, errlen, "local_read_group: chmod %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int sv_readgroup_grant_data_dir(const char *dir, gid_t gid, char *err, size_t errlen)
{
    char lock[4400];
    int rc = grant(dir, gid, S_ISGID | S_IRGRP | S_IXGRP, S_IWGRP, 1, err, errlen);
    if (rc)
        return rc;
    /* The daemon's flock: a group member that could open it could hold it. */
    snprintf(lock, sizeof(lock), "%.4300s/statesrvd.lock", dir);
    return grant(lock, gid, 0, S_IRWXG, 0, err, errlen);
}

int sv_readgroup_grant_generation(const char *dir, gid_t gid, char *err, size_t errlen)
{
    char path[4400];
    int rc = grant(dir, gid, S_ISGID | S_IRGRP | S_IXGRP, S_IWGRP, 1, err, errlen);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%.4300s/data.mdb", dir);
    if ((rc = grant(path, gid, S_IRGRP, S_IWGRP | S_IXGRP, 1, err, errlen)))
        return rc;
    snprintf(path, sizeof(path), "%.4300s/lock.mdb", dir);
    return grant(path, gid, S_IRGRP | S_IWGRP, S_IXGRP, 1, err, errlen);
}
