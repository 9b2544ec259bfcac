/* Checkpoints in an object store, as files: fetching a remote checkpoint's
 * chain (docs/checkpoint-format.md, "Remote copies") into a local directory
 * where the reader (sv_ckpt.h) checks every byte. Shared by statesrvd
 * (restore) and statectl (checkpoint verify s3://...). */
#ifndef SV_CKPT_REMOTE_H
#define SV_CKPT_REMOTE_H

#include "sv_s3.h"

#include <stddef.h>
#include <stdint.h>

/* Splits the key part of a checkpoint URL's path ("job/w0/chk-7") into the
 * parent ("job/w0") and the id. 0 or SV_EINVAL. */
int sv_ckpt_remote_split(const char *path, char *parent, size_t cap, uint64_t *id)
    __attribute__((warn_unused_result));

/* Downloads PARENT/chk-<id>/MANIFEST and every data file its chain names
 * into dir (which must exist) as dir/chk-<id>/MANIFEST and
 * dir/chk-<link>/data, each at most and exactly the size the MANIFEST
 * gives. The checkpoint's directory goes to out. SV_ENOTFOUND when there is
 * no MANIFEST (no such checkpoint), SV_ECORRUPT for a MANIFEST that does
 * not decode or a data object that is missing or of another size, or the
 * store's error; err names the object. */
int sv_ckpt_remote_fetch(struct sv_s3 *s, const char *parent, uint64_t id, const char *dir,
                         char *out, size_t cap, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* As sv_ckpt_remote_fetch, but of each data file only what reading key
 * groups first..last takes: its header, index and footer and the blocks of
 * those key groups (ranged GETs); the rest of the file is a hole. Each
 * object's size and x-amz-meta-xxh3 must be the MANIFEST's (HEAD), and its
 * footer and index decode and agree with the MANIFEST; blocks are checked
 * when read (such files do not pass sv_ckpt_verify: their other blocks are
 * holes). *fetched and *total (may be NULL): bytes fetched, and the bytes
 * of the chain's files. */
int sv_ckpt_remote_fetch_range(struct sv_s3 *s, const char *parent, uint64_t id, uint32_t first,
                               uint32_t last, const char *dir, char *out, size_t cap,
                               uint64_t *fetched, uint64_t *total, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Rewrites msg (cap bytes) so that paths under dir (what fetch wrote)
 * read as the objects they came from (url_parent: "s3://BUCKET/PARENT"). */
void sv_ckpt_remote_names(char *msg, size_t cap, const char *dir, const char *url_parent);

#endif
