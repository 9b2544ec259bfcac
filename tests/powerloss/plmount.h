/* Mounting plfs (tests/powerloss/plfs.c) for the power-loss tests: a backing
 * directory, a mount point and plfs's log in one mkdtemp directory. */
#ifndef SV_PLMOUNT_H
#define SV_PLMOUNT_H

#include <stddef.h>
#include <sys/types.h>

struct plm {
    char dir[64];        /* the temp dir */
    char backing[96];    /* dir/backing: what is on "disk" */
    char mnt[96];        /* dir/mnt */
    char log[96];        /* plfs's stderr */
    const char *entries; /* "posix" or "journal" */
    pid_t pid;
};

/* Makes the temp dir (once: dir empty) and mounts plfs on dir/mnt. 0, or -1
 * with a one-line reason in err (plfs's own message when it said one). */
int plm_mount(struct plm *m, const char *entries, char *err, size_t errlen);
/* The power loss: plfs drops every unsynced change. 0 or -1. */
int plm_crash(struct plm *m);
/* The harsher one: a random subset (by seed, not 0) of the unsynced blocks
 * and file growth survives, the rest is dropped. 0 or -1. */
int plm_crash_random(struct plm *m, unsigned long long seed);
/* Unmounts and waits for plfs to exit. 0 or -1. */
int plm_unmount(struct plm *m);
/* A counter from the control file, or -1. */
long long plm_stat(const struct plm *m, const char *name);
/* Unmounts if mounted and removes the temp dir. */
void plm_cleanup(struct plm *m);
/* Unmounts and removes every temp dir listed in the registry file (the
 * env PLM_REGISTRY, one line per plm_mount) that its test left. */
void plm_sweep(const char *registry);
/* fsync of a directory (or file) by path: 0 or -errno. */
int plm_fsync_path(const char *path);
/* dir/name into out. */
void plm_path(char *out, size_t cap, const char *dir, const char *name);

const char *plfs_path(void);
long plm_now_ms(void);

#endif
