/* plfs: a pass-through FUSE filesystem that can lose what was not synced.
 *
 * plfs BACKING MOUNTPOINT [-o entries=posix|journal] [FUSE options]
 *
 * Every operation is passed to the backing directory at once, so reads see
 * the latest data, and what a "crash" must take back is recorded beside it:
 *
 * - File contents. Before a write, a truncate or an fallocate changes a file
 *   for the first time since its last fsync or fdatasync, plfs keeps its
 *   durable size, and before any 4 KiB block inside that size is changed for
 *   the first time it keeps the block's durable bytes. An fsync or fdatasync
 *   (FUSE_FSYNC carries no range: msync of part of a map counts for the whole
 *   file) forgets them: the file is durable as it is. A write through an
 *   O_SYNC or O_DSYNC open, or one the kernel marks so, is a write followed
 *   by that. Writes through a shared writable mmap reach plfs when the kernel
 *   writes the dirty pages back (on msync, fsync or in the background), as
 *   writes flagged "writepage"; what is still dirty in the kernel at a crash
 *   never reaches the backing files at all.
 * - Directory entries. A created, linked or renamed-to name, a removed file
 *   (kept aside in BACKING.plfs-stash) and a removed empty directory are
 *   recorded in a journal. With entries=posix (the default) an entry becomes
 *   durable only when its directory (for a rename: the target's) is fsynced,
 *   the least POSIX promises. With entries=journal any fsync makes every
 *   earlier entry durable, as on a journaling filesystem (ext4, xfs) where an
 *   fsync commits the journal.
 *
 * Writing "crash" to MOUNTPOINT/.plfs-ctl is the power loss: every kept
 * block is written back, every file is cut to its durable size, the journal
 * is undone newest first, and from then on every operation fails with EIO
 * (the disk is gone; dirty pages the kernel writes back at unmount are
 * dropped). Unmount, then mount a new plfs on BACKING: it holds exactly what
 * was durable, and no page cache of the old mount survives. Reading the
 * control file gives counters.
 *
 * "crash random SEED" is a harsher loss: as if the kernel had written back
 * some of the dirty pages before the power went, each kept block is put back
 * or left with its newest bytes by a coin (seeded), and a file that grew
 * keeps its durable size or its new one, with each new block zeroed or not
 * by a coin. Directory entries are undone all the same.
 *
 * Not modelled: tearing inside a 4 KiB block, sync_file_range, file times, modes and owners,
 * extended attributes, hard links to one file in several directories (the content is per inode, so
 * it is right; the names are each an entry). Run with -s: the bookkeeping is not locked.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define BLK 4096
#define CTL_PATH "/.plfs-ctl"
#define CTL_FH UINT64_MAX
#define FH_SYNC (1ULL << 32) /* opened O_SYNC or O_DSYNC */

/* The durable bytes of one block, clipped to the durable size. */
struct saved {
    uint64_t blk;
    uint32_t len;
    unsigned char *data;
};

/* A file with changes since its last sync, by backing inode. */
struct pfile {
    dev_t dev;
    ino_t ino;
    int fd; /* O_RDWR on the inode: the undo works after renames and unlinks */
    off_t durable_size;
    unsigned char *bitmap; /* blocks already kept */
    size_t bitmap_len;
    struct saved *v;
    size_t n, cap;
};

enum ns_kind { NS_CREATED, NS_REMOVED, NS_RMDIRED, NS_RENAMED };

/* One change of a directory entry, undone at a crash unless made durable. */
struct nsent {
    enum ns_kind kind;
    dev_t dev;
    ino_t dir;   /* the directory whose fsync makes it durable */
    char *path;  /* relative to the root: the name made, removed, or renamed from */
    char *path2; /* NS_RENAMED: the name renamed to */
    char *stash; /* NS_REMOVED, NS_RENAMED over a file: where the old file is kept */
    mode_t mode; /* NS_RMDIRED, NS_RENAMED over an empty directory */
    int replaced_dir;
};

static struct {
    int root, stash;
    char root_path[PATH_MAX], stash_path[PATH_MAX + 16];
    int journal_entries; /* entries=journal */
    int crashed;
    struct pfile **files;
    size_t nfiles, capfiles;
    struct nsent *ns;
    size_t nns, capns;
    unsigned long long stash_seq;
    /* counters (the control file) */
    unsigned long long writes, write_bytes, writepage_writes, sync_writes, fsyncs, fdatasyncs,
        fsyncdirs, truncates, fallocates, kept_blocks;
    unsigned long long rng; /* crash random: xorshift64 state, 0 for "crash" */
    unsigned long long crash_files, crash_blocks, crash_kept_blocks, crash_zeroed_blocks,
        crash_bytes_cut, crash_entries, crash_entry_errors, after_crash_refused;
} g;

static const char *rel(const char *path)
{
    return path[1] ? path + 1 : ".";
}

static int is_ctl(const char *path)
{
    return path && strcmp(path, CTL_PATH) == 0;
}

static int fh_fd(const struct fuse_file_info *fi)
{
    return (int)(fi->fh & 0xffffffffu);
}

#define REFUSE_IF_CRASHED()                                                                        \
    do {                                                                                           \
        if (g.crashed) {                                                                           \
            g.after_crash_refused++;                                                               \
            return -EIO;                                                                           \
        }                                                                                          \
    } while (0)

/* --- file contents ------------------------------------------------------- */

static struct pfile *pfile_find(const struct stat *st, size_t *idx)
{
    for (size_t i = 0; i < g.nfiles; i++)
        if (g.files[i]->ino == st->st_ino && g.files[i]->dev == st->st_dev) {
            if (idx)
                *idx = i;
            return g.files[i];
        }
    return NULL;
}

/* The record of the file open as fd, made now (the file is durable as it is)
 * if there is none. NULL with errno set on failure. */
static struct pfile *pfile_track(int fd)
{
    struct stat st;
    if (fstat(fd, &st))
        return NULL;
    struct pfile *pf = pfile_find(&st, NULL);
    if (pf)
        return pf;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int rw = open(proc, O_RDWR | O_CLOEXEC);
    if (rw < 0)
        return NULL;
    if (g.nfiles == g.capfiles) {
        size_t cap = g.capfiles ? g.capfiles * 2 : 16;
        struct pfile **f = realloc(g.files, cap * sizeof(*f));
        if (!f) {
            close(rw);
            errno = ENOMEM;
            return NULL;
        }
        g.files = f;
        g.capfiles = cap;
    }
    pf = calloc(1, sizeof(*pf));
    if (!pf) {
        close(rw);
        errno = ENOMEM;
        return NULL;
    }
    pf->dev = st.st_dev;
    pf->ino = st.st_ino;
    pf->fd = rw;
    pf->durable_size = st.st_size;
    g.files[g.nfiles++] = pf;
    return pf;
}

static void pfile_free(struct pfile *pf)
{
    for (size_t i = 0; i < pf->n; i++)
        free(pf->v[i].data);
    free(pf->v);
    free(pf->bitmap);
    close(pf->fd);
    free(pf);
}

/* Keeps the durable bytes of every block of [off, off + len) that lies in
 * the durable size and was not kept yet. Must run before the change: the
 * backing bytes of a block not kept are still the durable ones. */
static int pfile_keep(struct pfile *pf, off_t off, off_t len)
{
    off_t end = off + len;
    if (end > pf->durable_size)
        end = pf->durable_size;
    if (len <= 0 || off >= end)
        return 0;
    for (uint64_t b = (uint64_t)off / BLK; b <= (uint64_t)(end - 1) / BLK; b++) {
        size_t byte = b / 8;
        if (byte >= pf->bitmap_len) {
            size_t nl = pf->bitmap_len ? pf->bitmap_len : 64;
            while (nl <= byte)
                nl *= 2;
            unsigned char *bm = realloc(pf->bitmap, nl);
            if (!bm)
                return -ENOMEM;
            memset(bm + pf->bitmap_len, 0, nl - pf->bitmap_len);
            pf->bitmap = bm;
            pf->bitmap_len = nl;
        }
        if (pf->bitmap[byte] & (1u << (b % 8)))
            continue;
        if (pf->n == pf->cap) {
            size_t cap = pf->cap ? pf->cap * 2 : 64;
            struct saved *v = realloc(pf->v, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            pf->v = v;
            pf->cap = cap;
        }
        off_t start = (off_t)(b * BLK);
        uint32_t n = (uint32_t)(pf->durable_size - start < BLK ? pf->durable_size - start : BLK);
        unsigned char *data = calloc(1, n);
        if (!data)
            return -ENOMEM;
        /* Short only where an earlier cut (already kept) ends the file. */
        if (pread(pf->fd, data, n, start) < 0) {
            free(data);
            return -errno;
        }
        pf->v[pf->n++] = (struct saved){b, n, data};
        pf->bitmap[byte] |= (unsigned char)(1u << (b % 8));
        g.kept_blocks++;
    }
    return 0;
}

/* The file open as fd is durable as it is now. */
static void pfile_synced(int fd)
{
    struct stat st;
    size_t i;
    if (fstat(fd, &st))
        return;
    struct pfile *pf = pfile_find(&st, &i);
    if (!pf)
        return;
    g.files[i] = g.files[--g.nfiles];
    pfile_free(pf);
}

/* --- directory entries --------------------------------------------------- */

/* The directory holding path (relative to the root). */
static int parent_of(const char *path, struct stat *st)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", rel(path));
    char *slash = strrchr(buf, '/');
    const char *dir = ".";
    if (slash) {
        *slash = '\0';
        dir = buf;
    }
    return fstatat(g.root, dir, st, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static char *dup_rel(const char *path)
{
    return path ? strdup(rel(path)) : NULL;
}

/* Records a change of an entry of path's directory (for a rename: of to's). */
static void ns_record(enum ns_kind kind, const char *path, const char *path2, const char *stash,
                      mode_t mode, int replaced_dir)
{
    struct stat dst;
    if (parent_of(path2 ? path2 : path, &dst))
        return;
    if (g.nns == g.capns) {
        size_t cap = g.capns ? g.capns * 2 : 64;
        struct nsent *v = realloc(g.ns, cap * sizeof(*v));
        if (!v)
            return;
        g.ns = v;
        g.capns = cap;
    }
    g.ns[g.nns++] = (struct nsent){kind,          dst.st_dev,     dst.st_ino,
                                   dup_rel(path), dup_rel(path2), stash ? strdup(stash) : NULL,
                                   mode,          replaced_dir};
}

static void ns_free(struct nsent *e, int drop_stash)
{
    if (drop_stash && e->stash)
        unlinkat(g.stash, e->stash, 0);
    free(e->path);
    free(e->path2);
    free(e->stash);
}

/* The entries of directory st (every entry, if st is NULL) are durable. */
static void ns_durable(const struct stat *st)
{
    size_t k = 0;
    for (size_t i = 0; i < g.nns; i++) {
        if (!st || (g.ns[i].dir == st->st_ino && g.ns[i].dev == st->st_dev))
            ns_free(&g.ns[i], 1);
        else
            g.ns[k++] = g.ns[i];
    }
    g.nns = k;
}

/* Moves the file at path aside; its name in the stash is written to name. */
static int stash_file(const char *path, char *name, size_t cap)
{
    snprintf(name, cap, "s%llu", ++g.stash_seq);
    return renameat(g.root, rel(path), g.stash, name) ? -errno : 0;
}

static int rm_rf_at(int at, const char *path)
{
    struct stat st;
    if (fstatat(at, path, &st, AT_SYMLINK_NOFOLLOW))
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(at, path, 0) ? -errno : 0;
    int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int r = rm_rf_at(dirfd(d), e->d_name);
            rc = rc ? rc : r;
        }
    closedir(d);
    if (unlinkat(at, path, AT_REMOVEDIR) && !rc)
        rc = -errno;
    return rc;
}

static int ns_undo(const struct nsent *e)
{
    switch (e->kind) {
    case NS_CREATED:
        return rm_rf_at(g.root, e->path);
    case NS_REMOVED:
        return renameat(g.stash, e->stash, g.root, e->path) ? -errno : 0;
    case NS_RMDIRED:
        return mkdirat(g.root, e->path, e->mode) ? -errno : 0;
    case NS_RENAMED:
        if (renameat(g.root, e->path2, g.root, e->path))
            return -errno;
        if (e->stash)
            return renameat(g.stash, e->stash, g.root, e->path2) ? -errno : 0;
        if (e->replaced_dir)
            return mkdirat(g.root, e->path2, e->mode) ? -errno : 0;
        return 0;
    }
    return -EINVAL;
}

/* --- the crash ----------------------------------------------------------- */

/* Heads with probability 1/2 in "crash random"; never in "crash". */
static int coin(void)
{
    if (!g.rng)
        return 0;
    g.rng ^= g.rng << 13;
    g.rng ^= g.rng >> 7;
    g.rng ^= g.rng << 17;
    return (int)(g.rng >> 63);
}

static void crash(void)
{
    static const unsigned char zeros[BLK];
    for (size_t i = 0; i < g.nfiles; i++) {
        struct pfile *pf = g.files[i];
        struct stat st;
        if (fstat(pf->fd, &st))
            st.st_size = pf->durable_size;
        for (size_t j = 0; j < pf->n; j++) {
            const struct saved *s = &pf->v[j];
            if (coin()) {
                g.crash_kept_blocks++; /* written back before the power went */
                continue;
            }
            if (pwrite(pf->fd, s->data, s->len, (off_t)(s->blk * BLK)) != (ssize_t)s->len)
                fprintf(stderr, "plfs: crash: cannot restore a block: %s\n", strerror(errno));
            g.crash_blocks++;
        }
        off_t size = pf->durable_size;
        if (st.st_size > size && coin()) {
            /* The new size reached the disk; each new block did or did not. */
            for (off_t b = (size + BLK - 1) / BLK * BLK; b < st.st_size; b += BLK)
                if (coin()) {
                    size_t n = (size_t)(st.st_size - b < BLK ? st.st_size - b : BLK);
                    if (pwrite(pf->fd, zeros, n, b) == (ssize_t)n)
                        g.crash_zeroed_blocks++;
                }
            size = st.st_size;
        }
        if (st.st_size > size)
            g.crash_bytes_cut += (unsigned long long)(st.st_size - size);
        if (ftruncate(pf->fd, size))
            fprintf(stderr, "plfs: crash: cannot cut a file: %s\n", strerror(errno));
        g.crash_files++;
        pfile_free(pf);
    }
    g.nfiles = 0;
    for (size_t i = g.nns; i-- > 0;) {
        int rc = ns_undo(&g.ns[i]);
        if (rc) {
            g.crash_entry_errors++;
            fprintf(stderr, "plfs: crash: cannot undo an entry change of %s: %s\n", g.ns[i].path,
                    strerror(-rc));
        }
        g.crash_entries++;
        ns_free(&g.ns[i], 0);
    }
    g.nns = 0;
    g.crashed = 1;
    fprintf(stderr,
            "plfs: crash%s: %llu file(s) rolled back (%llu block(s) restored, %llu left new, "
            "%llu new zeroed, %llu byte(s) cut), %llu entry change(s) undone\n",
            g.rng ? " random" : "", g.crash_files, g.crash_blocks, g.crash_kept_blocks,
            g.crash_zeroed_blocks, g.crash_bytes_cut, g.crash_entries);
}

static int ctl_text(char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "crashed %d\nwrites %llu\nwrite_bytes %llu\nwritepage_writes %llu\n"
                    "sync_writes %llu\nfsyncs %llu\nfdatasyncs %llu\nfsyncdirs %llu\n"
                    "truncates %llu\nfallocates %llu\nkept_blocks %llu\nunsynced_files %zu\n"
                    "unsynced_entries %zu\ncrash_files %llu\ncrash_blocks %llu\n"
                    "crash_kept_blocks %llu\ncrash_zeroed_blocks %llu\n"
                    "crash_bytes_cut %llu\ncrash_entries %llu\ncrash_entry_errors %llu\n"
                    "after_crash_refused %llu\n",
                    g.crashed, g.writes, g.write_bytes, g.writepage_writes, g.sync_writes, g.fsyncs,
                    g.fdatasyncs, g.fsyncdirs, g.truncates, g.fallocates, g.kept_blocks, g.nfiles,
                    g.nns, g.crash_files, g.crash_blocks, g.crash_kept_blocks,
                    g.crash_zeroed_blocks, g.crash_bytes_cut, g.crash_entries, g.crash_entry_errors,
                    g.after_crash_refused);
}

/* --- operations ---------------------------------------------------------- */

static void *pl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Every write(2) must reach us as it happens (write-through), and an
     * O_TRUNC open must come as a truncate we can record. The page cache
     * stays on: a shared writable mmap needs it. */
    conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC);
    cfg->direct_io = 0;
    cfg->kernel_cache = 0;
    cfg->auto_cache = 0;
    cfg->hard_remove = 1;
    cfg->nullpath_ok = 1;
    cfg->use_ino = 1;
    return NULL;
}

static int pl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        memset(st, 0, sizeof(*st));
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        return 0;
    }
    if (g.crashed && !(path && strcmp(path, "/") == 0))
        REFUSE_IF_CRASHED();
    if (fi && fi->fh != CTL_FH)
        return fstat(fh_fd(fi), st) ? -errno : 0;
    return fstatat(g.root, rel(path), st, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int pl_readlink(const char *path, char *buf, size_t size)
{
    REFUSE_IF_CRASHED();
    ssize_t n = readlinkat(g.root, rel(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int pl_mknod(const char *path, mode_t mode, dev_t rdev)
{
    REFUSE_IF_CRASHED();
    if (mknodat(g.root, rel(path), mode, rdev))
        return -errno;
    ns_record(NS_CREATED, path, NULL, NULL, 0, 0);
    return 0;
}

static int pl_mkdir(const char *path, mode_t mode)
{
    REFUSE_IF_CRASHED();
    if (mkdirat(g.root, rel(path), mode))
        return -errno;
    ns_record(NS_CREATED, path, NULL, NULL, 0, 0);
    return 0;
}

static int pl_unlink(const char *path)
{
    REFUSE_IF_CRASHED();
    char name[32];
    int rc = stash_file(path, name, sizeof(name));
    if (rc)
        return rc;
    ns_record(NS_REMOVED, path, NULL, name, 0, 0);
    return 0;
}

static int pl_rmdir(const char *path)
{
    REFUSE_IF_CRASHED();
    struct stat st;
    if (fstatat(g.root, rel(path), &st, AT_SYMLINK_NOFOLLOW))
        return -errno;
    if (unlinkat(g.root, rel(path), AT_REMOVEDIR))
        return -errno;
    ns_record(NS_RMDIRED, path, NULL, NULL, st.st_mode & 07777, 0);
    return 0;
}

static int pl_symlink(const char *target, const char *path)
{
    REFUSE_IF_CRASHED();
    if (symlinkat(target, g.root, rel(path)))
        return -errno;
    ns_record(NS_CREATED, path, NULL, NULL, 0, 0);
    return 0;
}

static int pl_link(const char *from, const char *to)
{
    REFUSE_IF_CRASHED();
    if (linkat(g.root, rel(from), g.root, rel(to), 0))
        return -errno;
    ns_record(NS_CREATED, to, NULL, NULL, 0, 0);
    return 0;
}

static int pl_rename(const char *from, const char *to, unsigned int flags)
{
    REFUSE_IF_CRASHED();
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT: not modelled */
    struct stat st;
    char name[32] = "";
    int replaced_dir = 0;
    mode_t mode = 0;
    if (fstatat(g.root, rel(from), &st, AT_SYMLINK_NOFOLLOW))
        return -errno;
    if (fstatat(g.root, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (flags & RENAME_NOREPLACE)
            return -EEXIST;
        if (S_ISDIR(st.st_mode)) {
            if (unlinkat(g.root, rel(to), AT_REMOVEDIR))
                return -errno;
            replaced_dir = 1;
            mode = st.st_mode & 07777;
        } else {
            int rc = stash_file(to, name, sizeof(name));
            if (rc)
                return rc;
        }
    }
    if (renameat(g.root, rel(from), g.root, rel(to))) {
        int e = -errno;
        if (name[0])
            renameat(g.stash, name, g.root, rel(to));
        else if (replaced_dir)
            mkdirat(g.root, rel(to), mode);
        return e;
    }
    ns_record(NS_RENAMED, from, to, name[0] ? name : NULL, mode, replaced_dir);
    return 0;
}

static int pl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    REFUSE_IF_CRASHED();
    if (fi)
        return fchmod(fh_fd(fi), mode) ? -errno : 0;
    return fchmodat(g.root, rel(path), mode, 0) ? -errno : 0;
}

static int pl_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    REFUSE_IF_CRASHED();
    if (fi)
        return fchown(fh_fd(fi), uid, gid) ? -errno : 0;
    return fchownat(g.root, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* Truncates the file open as fd, keeping what the cut takes away. */
static int truncate_fd(int fd, off_t size)
{
    struct pfile *pf = pfile_track(fd);
    struct stat st;
    if (!pf || fstat(fd, &st))
        return -errno;
    int rc = size < st.st_size ? pfile_keep(pf, size, st.st_size - size) : 0;
    if (rc)
        return rc;
    g.truncates++;
    return ftruncate(fd, size) ? -errno : 0;
}

static int pl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (is_ctl(path) || (fi && fi->fh == CTL_FH))
        return 0;
    REFUSE_IF_CRASHED();
    if (fi)
        return truncate_fd(fh_fd(fi), size);
    int fd = openat(g.root, rel(path), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = truncate_fd(fd, size);
    close(fd);
    return rc;
}

static int open_backing(const char *path, int flags, mode_t mode, struct fuse_file_info *fi,
                        int *created)
{
    struct stat st;
    *created = fstatat(g.root, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0;
    /* O_APPEND would make pwrite ignore the kernel's offsets; O_TRUNC must be
     * recorded; the sync flags are ours to honour. */
    int bflags = (flags & ~(O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_DIRECT | O_EXCL | O_NOCTTY)) |
                 O_CLOEXEC;
    int fd = openat(g.root, rel(path), bflags, mode);
    if (fd < 0)
        return -errno;
    if ((flags & O_TRUNC) && !*created) {
        int rc = truncate_fd(fd, 0);
        if (rc) {
            close(fd);
            return rc;
        }
    }
    fi->fh = (uint64_t)fd | ((flags & O_DSYNC) ? FH_SYNC : 0);
    return 0;
}

static int pl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    REFUSE_IF_CRASHED();
    int created;
    int rc = open_backing(path, fi->flags | O_CREAT, mode, fi, &created);
    if (rc == 0 && created)
        ns_record(NS_CREATED, path, NULL, NULL, 0, 0);
    return rc;
}

static int pl_open(const char *path, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        fi->fh = CTL_FH;
        fi->direct_io = 1;
        return 0;
    }
    REFUSE_IF_CRASHED();
    int created;
    return open_backing(path, fi->flags & ~O_CREAT, 0, fi, &created);
}

static int pl_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh == CTL_FH) {
        char text[2048];
        int n = ctl_text(text, sizeof(text));
        if (off >= n)
            return 0;
        size_t k = (size_t)(n - off) < size ? (size_t)(n - off) : size;
        memcpy(buf, text + off, k);
        return (int)k;
    }
    REFUSE_IF_CRASHED();
    ssize_t n = pread(fh_fd(fi), buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int pl_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh == CTL_FH) {
        char cmd[64];
        unsigned long long seed = 0;
        snprintf(cmd, sizeof(cmd), "%.*s", (int)(size < 63 ? size : 63), buf);
        if (strncmp(cmd, "crash", 5) == 0 &&
            (cmd[5] == '\n' || cmd[5] == '\0' || sscanf(cmd, "crash random %llu", &seed) == 1)) {
            if (!g.crashed) {
                g.rng = seed ? seed : (cmd[5] == ' ' ? 1 : 0);
                crash();
            }
            return (int)size;
        }
        return -EINVAL;
    }
    REFUSE_IF_CRASHED();
    int fd = fh_fd(fi);
    struct pfile *pf = pfile_track(fd);
    if (!pf)
        return -errno;
    int rc = pfile_keep(pf, off, (off_t)size);
    if (rc)
        return rc;
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, buf + done, size - done, off + (off_t)done);
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    g.writes++;
    g.write_bytes += size;
    if (fi->writepage)
        g.writepage_writes++;
    /* A page written back is never a synced write, whichever open the
     * kernel names for it. */
    if (!fi->writepage && ((fi->fh & FH_SYNC) || (fi->flags & O_DSYNC))) {
        g.sync_writes++;
        pfile_synced(fd);
        if (g.journal_entries)
            ns_durable(NULL);
    }
    return (int)size;
}

static int pl_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(g.root, st) ? -errno : 0;
}

static int pl_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh != CTL_FH)
        close(fh_fd(fi));
    return 0;
}

static int pl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh == CTL_FH)
        return 0;
    REFUSE_IF_CRASHED();
    if (datasync)
        g.fdatasyncs++;
    else
        g.fsyncs++;
    pfile_synced(fh_fd(fi));
    if (g.journal_entries)
        ns_durable(NULL);
    return 0;
}

/* A directory's handle is an fd on it: with nullpath_ok, readdir and
 * fsyncdir may get no path. */
static int pl_opendir(const char *path, struct fuse_file_info *fi)
{
    REFUSE_IF_CRASHED();
    int fd = openat(g.root, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int pl_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close(fh_fd(fi));
    return 0;
}

static int pl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    REFUSE_IF_CRASHED();
    int fd = dup(fh_fd(fi));
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int pl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    REFUSE_IF_CRASHED();
    struct stat st;
    if (fstat(fh_fd(fi), &st))
        return -errno;
    g.fsyncdirs++;
    ns_durable(g.journal_entries ? NULL : &st);
    return 0;
}

static int pl_access(const char *path, int mask)
{
    if (is_ctl(path))
        return 0;
    REFUSE_IF_CRASHED();
    return faccessat(g.root, rel(path), mask, 0) ? -errno : 0;
}

static int pl_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (is_ctl(path) || (fi && fi->fh == CTL_FH))
        return 0;
    REFUSE_IF_CRASHED();
    if (fi)
        return futimens(fh_fd(fi), tv) ? -errno : 0;
    return utimensat(g.root, rel(path), tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int pl_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    (void)path;
    REFUSE_IF_CRASHED();
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        return -EOPNOTSUPP; /* punching holes, zeroing: not modelled */
    /* Allocation never changes bytes already there; the size is kept. */
    if (!pfile_track(fh_fd(fi)))
        return -errno;
    g.fallocates++;
    return fallocate(fh_fd(fi), mode, off, len) ? -errno : 0;
}

static const struct fuse_operations ops = {
    .init = pl_init,
    .getattr = pl_getattr,
    .readlink = pl_readlink,
    .mknod = pl_mknod,
    .mkdir = pl_mkdir,
    .unlink = pl_unlink,
    .rmdir = pl_rmdir,
    .symlink = pl_symlink,
    .rename = pl_rename,
    .link = pl_link,
    .chmod = pl_chmod,
    .chown = pl_chown,
    .truncate = pl_truncate,
    .open = pl_open,
    .read = pl_read,
    .write = pl_write,
    .statfs = pl_statfs,
    .release = pl_release,
    .fsync = pl_fsync,
    .opendir = pl_opendir,
    .readdir = pl_readdir,
    .releasedir = pl_releasedir,
    .fsyncdir = pl_fsyncdir,
    .access = pl_access,
    .create = pl_create,
    .utimens = pl_utimens,
    .fallocate = pl_fallocate,
};

static int usage(void)
{
    fprintf(stderr, "usage: plfs BACKING MOUNTPOINT [-o entries=posix|journal] [FUSE options]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    if (!realpath(argv[1], g.root_path)) {
        fprintf(stderr, "plfs: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    snprintf(g.stash_path, sizeof(g.stash_path), "%s.plfs-stash", g.root_path);
    /* What an earlier mount kept aside was either put back at its crash or
     * made durable as removed: nothing there is needed. */
    rm_rf_at(AT_FDCWD, g.stash_path);
    if (mkdir(g.stash_path, 0700) && errno != EEXIST) {
        fprintf(stderr, "plfs: %s: %s\n", g.stash_path, strerror(errno));
        return 1;
    }
    g.root = open(g.root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g.stash = open(g.stash_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g.root < 0 || g.stash < 0) {
        fprintf(stderr, "plfs: cannot open %s: %s\n", g.root_path, strerror(errno));
        return 1;
    }
    /* Our own option, taken out before libfuse sees the rest. */
    char **fargv = calloc((size_t)argc + 1, sizeof(*fargv));
    if (!fargv)
        return 1;
    int fargc = 0;
    fargv[fargc++] = argv[0];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc &&
            strncmp(argv[i + 1], "entries=", 8) == 0) {
            const char *v = argv[++i] + 8;
            if (strcmp(v, "journal") == 0)
                g.journal_entries = 1;
            else if (strcmp(v, "posix") != 0)
                return usage();
            continue;
        }
        fargv[fargc++] = argv[i];
    }
    fprintf(stderr, "plfs: %s on %s, entries=%s\n", g.root_path, argv[2],
            g.journal_entries ? "journal" : "posix");
    int rc = fuse_main(fargc, fargv, &ops, NULL);
    free(fargv);
    return rc;
}
