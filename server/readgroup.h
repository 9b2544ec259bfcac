/* Read access for local readers (setting local_read_group).
 *
 * libstatesrv's local reads (client/statesrv_local.h) open the server's
 * live store from another process. By default the store is the server's
 * alone (0750 directories, 0640 files, the server's group). With
 * local_read_group set, the server hands the data directory, every
 * generation directory and their LMDB files to that group: directories get
 * g+rx and the setgid bit (new entries inherit the group), data.mdb g+r,
 * lock.mdb g+rw (an LMDB reader records its snapshot there). Write access
 * to the directories or to data.mdb is never granted, the server's own
 * statesrvd.lock loses its group bits, and nothing changes for others.
 * Unset, nothing is touched. Every function returns 0 or a negative errno
 * with the reason in err. */
#ifndef SV_READGROUP_H
#define SV_READGROUP_H

#include <stddef.h>
#include <sys/types.h>

/* name: a group name or a decimal gid; on 0, *gid. */
int sv_readgroup_resolve(const char *name, gid_t *gid, char *err, size_t errlen);
/* The data directory itself (and its statesrvd.lock, made private). */
int sv_readgroup_grant_data_dir(const char *dir, gid_t gid, char *err, size_t errlen);
/* A generation directory and the data.mdb and lock.mdb in it. */
int sv_readgroup_grant_generation(const char *dir, gid_t gid, char *err, size_t errlen);

#endif
