/* Small filesystem helpers for the store and checkpoints. 0 or -errno. */
#ifndef SV_FSUTIL_H
#define SV_FSUTIL_H

/* mkdir -p with mode 0750 for what it creates; each new directory's entry
 * is fsynced into its parent. */
int sv_fs_mkdir_p(const char *path);
/* rm -rf; a missing path is success. Does not follow symlinks. */
int sv_fs_rm_rf(const char *path);
/* fsync a directory, so renames and creations in it are durable. */
int sv_fs_fsync_dir(const char *dir);

#endif
