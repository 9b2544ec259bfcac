#include "plmount.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *plfs_path(void)
{
    const char *p = getenv("PLFS");
    return p ? p : "build/tests/plfs";
}

long plm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void plm_path(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

int plm_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

/* The last line of plfs's log, for a reason. */
static void log_tail(const struct plm *m, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(m->log, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] && strncmp(line, "plfs: ", 6) != 0)
            snprintf(out, cap, "%.300s", line);
        else if (line[0] && !out[0])
            snprintf(out, cap, "%.300s", line);
    }
    if (f)
        fclose(f);
}

int plm_mount(struct plm *m, const char *entries, char *err, size_t errlen)
{
    if (!m->dir[0]) {
        snprintf(m->dir, sizeof(m->dir), "/tmp/plXXXXXX");
        if (!mkdtemp(m->dir)) {
            snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
            m->dir[0] = '\0';
            return -1;
        }
        plm_path(m->backing, sizeof(m->backing), m->dir, "backing");
        plm_path(m->mnt, sizeof(m->mnt), m->dir, "mnt");
        plm_path(m->log, sizeof(m->log), m->dir, "plfs.log");
        mkdir(m->backing, 0755);
        mkdir(m->mnt, 0755);
    }
    m->entries = entries;
    /* The runner removes what a test killed by a failure or its timeout left. */
    const char *reg = getenv("PLM_REGISTRY");
    FILE *rf = reg ? fopen(reg, "a") : NULL;
    if (rf) {
        fprintf(rf, "%s\n", m->dir);
        fclose(rf);
    }
    char opt[32];
    snprintf(opt, sizeof(opt), "entries=%s", entries);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* If the test dies (its timeout), plfs unmounts and exits. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(plfs_path(), "plfs", m->backing, m->mnt, "-f", "-s", "-o", opt, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", plfs_path(), strerror(errno));
        _exit(127);
    }
    m->pid = pid;
    char ctl[128];
    plm_path(ctl, sizeof(ctl), m->mnt, ".plfs-ctl");
    long deadline = plm_now_ms() + 10000;
    struct stat st;
    while (plm_now_ms() < deadline) {
        if (stat(ctl, &st) == 0)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            m->pid = 0;
            char tail[400];
            log_tail(m, tail, sizeof(tail));
            snprintf(err, errlen, "plfs exited (status %d) before mounting: %s", status,
                     tail[0] ? tail : "(no message)");
            return -1;
        }
        usleep(10000);
    }
    snprintf(err, errlen, "plfs did not mount %s within 10 s", m->mnt);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    m->pid = 0;
    return -1;
}

static int ctl_write(struct plm *m, const char *cmd)
{
    char ctl[128];
    plm_path(ctl, sizeof(ctl), m->mnt, ".plfs-ctl");
    int fd = open(ctl, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = (ssize_t)strlen(cmd);
    int rc = write(fd, cmd, (size_t)n) == n ? 0 : -1;
    close(fd);
    return rc;
}

int plm_crash(struct plm *m)
{
    return ctl_write(m, "crash\n");
}

int plm_crash_random(struct plm *m, unsigned long long seed)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "crash random %llu\n", seed ? seed : 1);
    return ctl_write(m, cmd);
}

long long plm_stat(const struct plm *m, const char *name)
{
    char ctl[128], line[128];
    plm_path(ctl, sizeof(ctl), m->mnt, ".plfs-ctl");
    FILE *f = fopen(ctl, "r");
    long long v = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = atoll(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

int plm_unmount(struct plm *m)
{
    if (!m->pid)
        return 0;
    int rc = -1;
    /* Busy only for a moment after a process on it was killed. */
    for (int i = 0; i < 200 && rc; i++) {
        if (geteuid() == 0) {
            rc = umount2(m->mnt, 0);
        } else {
            char cmd[160];
            snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s' 2>/dev/null", m->mnt);
            rc = system(cmd) == 0 ? 0 : -1;
        }
        if (rc)
            usleep(20000);
    }
    if (rc && geteuid() == 0)
        umount2(m->mnt, MNT_DETACH);
    long deadline = plm_now_ms() + 10000;
    int status;
    while (waitpid(m->pid, &status, WNOHANG) == 0) {
        if (plm_now_ms() > deadline) {
            kill(m->pid, SIGKILL);
            waitpid(m->pid, &status, 0);
            rc = -1;
            break;
        }
        usleep(5000);
    }
    m->pid = 0;
    return rc;
}

void plm_sweep(const char *registry)
{
    FILE *f = fopen(registry, "r");
    char dir[128], path[160], cmd[200];
    while (f && fgets(dir, sizeof(dir), f)) {
        dir[strcspn(dir, "\n")] = '\0';
        if (strncmp(dir, "/tmp/pl", 7) != 0 || access(dir, F_OK))
            continue; /* cleaned up by its test */
        plm_path(path, sizeof(path), dir, "mnt");
        if (umount2(path, MNT_DETACH) == 0)
            fprintf(stderr, "powerloss: unmounted %s, left by a failed test\n", path);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "powerloss: cannot remove %s\n", dir);
    }
    if (f)
        fclose(f);
    unlink(registry);
}

void plm_cleanup(struct plm *m)
{
    plm_unmount(m);
    if (m->dir[0]) {
        char cmd[128]; /* the stash (backing.plfs-stash) is inside dir too */
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", m->dir);
        m->dir[0] = '\0';
    }
}
