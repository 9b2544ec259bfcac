#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates one directory; when it is new, its entry is made durable by an
 * fsync of the parent (a power loss must not take back a directory that
 * later files were synced into). 0 or -errno. */
static int mkdir_durable(char *path)
{
    if (mkdir(path, 0750)) {
        if (errno == EEXIST)
            return 0;
        return -errno;
    }
    char *slash = strrchr(path, '/');
    if (!slash)
        return sv_fs_fsync_dir(".");
    if (slash == path)
        return sv_fs_fsync_dir("/");
    *slash = '\0';
    int rc = sv_fs_fsync_dir(path);
    *slash = '/';
    return rc;
}

int sv_fs_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    int rc;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if ((rc = mkdir_durable(tmp)))
            return rc;
        *p = '/';
    }
    return mkdir_durable(tmp);
}

int sv_fs_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) ? -errno : 0;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    char child[4608];
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(child, sizeof(child), "%.4096s/%.255s", path, e->d_name);
        int r = sv_fs_rm_rf(child);
        if (r && !rc)
            rc = r;
    }
    closedir(d);
    if (rmdir(path) && !rc)
        rc = -errno;
    return rc;
}

int sv_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}
