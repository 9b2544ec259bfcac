/* A real S3-compatible object store for the tests: versitygw (Apache-2.0,
 * built from its Go module into build/tools by `make test-s3`) serving a
 * temporary directory on 127.0.0.1, with SigV4 verified against one access
 * key. Started and stopped by the tests themselves. */
#ifndef SV_TEST_OBJSTORE_H
#define SV_TEST_OBJSTORE_H

#include <sys/types.h>

#define OBJSTORE_ACCESS "statesrv-test"
#define OBJSTORE_SECRET "statesrv-test-secret-0123456789"
#define OBJSTORE_BUCKET "ckpts"

struct objstore {
    pid_t pid;
    int port;
    char dir[64];      /* the store's root: dir/BUCKET/KEY are the objects */
    char endpoint[64]; /* "http://127.0.0.1:PORT" */
    char log[96];
    char creds[96]; /* a credentials file (mode 0600) for statesrvd */
};

/* Makes a temp dir with the bucket, starts the store on a free port and
 * waits (at most 15 s) until it answers. Fails the test otherwise. */
void objstore_start(struct objstore *o);
/* SIGTERM (then SIGKILL after 5 s); the objects stay. */
void objstore_stop(struct objstore *o);
/* Starts it again on the same port and directory. */
void objstore_restart(struct objstore *o);
/* SIGSTOP / SIGCONT: a store that accepts connections but answers nothing. */
void objstore_freeze(struct objstore *o, int frozen);
/* Stops it and removes its directory. */
void objstore_cleanup(struct objstore *o);
/* The path of object KEY on disk, into out. */
void objstore_path(const struct objstore *o, const char *key, char *out, size_t cap);
/* 1 if object KEY exists. */
int objstore_has(const struct objstore *o, const char *key);

#endif
