/* The harness itself: plfs keeps what was synced and loses what was not,
 * for write(2), a shared writable mmap with msync, growth, truncate,
 * fallocate, O_DSYNC, and directory entries; and a new mount reads the
 * backing files, not the old mount's page cache. Each test writes through
 * the mount, crashes, unmounts and looks at the backing directory ("the
 * disk") or through a new mount. */
#include "plmount.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static struct plm m;

static void setup(void)
{
    char err[512];
    memset(&m, 0, sizeof(m));
    ck_assert_msg(plm_mount(&m, "posix", err, sizeof(err)) == 0, "mount: %s", err);
}

static void teardown(void)
{
    plm_cleanup(&m);
}

/* Crashes, unmounts, and checks that plfs said it crashed. */
static void crash_and_unmount(void)
{
    ck_assert_int_eq(plm_crash(&m), 0);
    ck_assert_int_eq(plm_stat(&m, "crashed"), 1);
    ck_assert_int_eq(plm_unmount(&m), 0);
}

static void mnt_path(char *out, size_t cap, const char *name)
{
    plm_path(out, cap, m.mnt, name);
}

static void disk_path(char *out, size_t cap, const char *name)
{
    plm_path(out, cap, m.backing, name);
}

static void put_file(const char *name, const char *text, int do_fsync)
{
    char p[160];
    mnt_path(p, sizeof(p), name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    if (do_fsync)
        ck_assert_int_eq(fsync(fd), 0);
    close(fd);
}

static void sync_root(void)
{
    ck_assert_int_eq(plm_fsync_path(m.mnt), 0);
}

/* The disk's content of name, or "<absent>". */
static const char *disk_text(const char *name)
{
    static char buf[16384];
    char p[160];
    disk_path(p, sizeof(p), name);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return "<absent>";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static off_t disk_size(const char *name)
{
    char p[160];
    struct stat st;
    disk_path(p, sizeof(p), name);
    return stat(p, &st) ? -1 : st.st_size;
}

START_TEST(unsynced_write_is_lost_and_fsynced_write_kept)
{
    put_file("kept", "durable", 1);
    put_file("over", "old content", 1);
    put_file("datasync", "", 0);
    sync_root();                  /* the three names are durable */
    put_file("over", "NEW", 0);   /* truncate + write, not synced */
    put_file("never", "gone", 0); /* nothing synced, not even the name */
    char p[160];
    mnt_path(p, sizeof(p), "datasync");
    int fd = open(p, O_WRONLY);
    ck_assert_int_eq(write(fd, "by fdatasync", 12), 12);
    ck_assert_int_eq(fdatasync(fd), 0);
    ck_assert_int_eq(write(fd, " and more", 9), 9);
    close(fd);
    ck_assert_str_eq(disk_text("over"), "NEW"); /* passed through before the crash */
    crash_and_unmount();
    ck_assert_str_eq(disk_text("kept"), "durable");
    ck_assert_str_eq(disk_text("over"), "old content");
    ck_assert_str_eq(disk_text("datasync"), "by fdatasync");
    ck_assert_str_eq(disk_text("never"), "<absent>");
}
END_TEST

START_TEST(mmap_msync_keeps_and_unsynced_mmap_writes_are_lost)
{
    enum { PG = 4096, SIZE = 16 * PG };
    char p[160];
    mnt_path(p, sizeof(p), "map");
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, SIZE), 0);
    ck_assert_int_eq(fsync(fd), 0);
    sync_root();
    unsigned char *map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    memset(map, 'A', PG);
    memset(map + 3 * PG, 'C', PG);
    ck_assert_int_eq(msync(map, SIZE, MS_SYNC), 0);
    long long wp = plm_stat(&m, "writepage_writes");
    ck_assert_int_gt(wp, 0); /* the pages reached plfs as writeback */
    memset(map, 'B', 100);   /* after the msync: not durable */
    memset(map + 9 * PG, 'D', PG);
    ck_assert_int_eq(munmap(map, SIZE), 0); /* the kernel may write them back now */
    close(fd);
    fprintf(stderr, "plfs mmap: %lld writeback writes before the msync, %lld in all\n", wp,
            plm_stat(&m, "writepage_writes"));
    crash_and_unmount();
    disk_path(p, sizeof(p), "map");
    fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    unsigned char buf[SIZE];
    ck_assert_int_eq(read(fd, buf, SIZE), SIZE);
    close(fd);
    for (int i = 0; i < SIZE; i++) {
        unsigned char want = i < PG ? 'A' : (i >= 3 * PG && i < 4 * PG) ? 'C' : 0;
        ck_assert_msg(buf[i] == want, "byte %d is %d, durable was %d", i, buf[i], want);
    }
}
END_TEST

START_TEST(growth_truncate_and_fallocate_are_undone)
{
    char big[10000];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 1] = '\0';
    put_file("cut", big, 1);
    put_file("grow", "x", 1);
    put_file("alloc", "y", 1);
    put_file("cutsync", big, 1);
    sync_root();
    char p[160];
    mnt_path(p, sizeof(p), "cut");
    ck_assert_int_eq(truncate(p, 100), 0);
    int fd = open(p, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "tail", 4, 20000), 4); /* grow past the old end */
    close(fd);
    mnt_path(p, sizeof(p), "grow");
    fd = open(p, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "more", 4), 4);
    close(fd);
    mnt_path(p, sizeof(p), "alloc");
    fd = open(p, O_WRONLY);
    ck_assert_int_eq(posix_fallocate(fd, 0, 1 << 20), 0);
    close(fd);
    ck_assert_int_eq(disk_size("alloc"), 1 << 20);
    mnt_path(p, sizeof(p), "cutsync");
    fd = open(p, O_WRONLY);
    ck_assert_int_eq(ftruncate(fd, 10), 0);
    ck_assert_int_eq(fsync(fd), 0);
    close(fd);
    crash_and_unmount();
    ck_assert_int_eq(disk_size("cut"), (off_t)sizeof(big) - 1);
    ck_assert_msg(strcmp(disk_text("cut"), big) == 0, "the cut file's bytes differ");
    ck_assert_str_eq(disk_text("grow"), "x");
    ck_assert_int_eq(disk_size("alloc"), 1);
    ck_assert_int_eq(disk_size("cutsync"), 10);
}
END_TEST

START_TEST(o_dsync_write_is_durable_without_fsync)
{
    put_file("d", "", 1);
    sync_root();
    char p[160];
    mnt_path(p, sizeof(p), "d");
    int fd = open(p, O_WRONLY | O_DSYNC);
    ck_assert_int_eq(write(fd, "synced write", 12), 12);
    close(fd);
    ck_assert_int_ge(plm_stat(&m, "sync_writes"), 1);
    crash_and_unmount();
    ck_assert_str_eq(disk_text("d"), "synced write");
}
END_TEST

START_TEST(entries_are_durable_only_after_their_directory_is_fsynced)
{
    put_file("old", "old target", 1);
    put_file("victim", "still here", 1);
    char p[160], q[160];
    mnt_path(p, sizeof(p), "sub");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    sync_root();
    put_file("sub/synced", "in a synced dir", 1);
    ck_assert_int_eq(plm_fsync_path(p), 0);
    put_file("file-synced-dir-not", "content synced", 1);
    put_file("tmp", "new target", 1);
    mnt_path(p, sizeof(p), "tmp");
    mnt_path(q, sizeof(q), "old");
    ck_assert_int_eq(rename(p, q), 0);
    mnt_path(p, sizeof(p), "victim");
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_str_eq(disk_text("old"), "new target");
    crash_and_unmount();
    ck_assert_str_eq(disk_text("sub/synced"), "in a synced dir");
    ck_assert_str_eq(disk_text("file-synced-dir-not"), "<absent>");
    ck_assert_str_eq(disk_text("old"), "old target"); /* the rename is undone */
    ck_assert_str_eq(disk_text("tmp"), "<absent>");   /* its creation is undone too */
    ck_assert_str_eq(disk_text("victim"), "still here");
}
END_TEST

START_TEST(rename_then_directory_fsync_is_durable)
{
    put_file("old", "old target", 1);
    sync_root();
    put_file("tmp", "new target", 1);
    char p[160], q[160];
    mnt_path(p, sizeof(p), "tmp");
    mnt_path(q, sizeof(q), "old");
    ck_assert_int_eq(rename(p, q), 0);
    sync_root();
    crash_and_unmount();
    ck_assert_str_eq(disk_text("old"), "new target");
    ck_assert_str_eq(disk_text("tmp"), "<absent>");
}
END_TEST

START_TEST(journal_entries_are_durable_with_any_fsync)
{
    plm_unmount(&m);
    char err[512];
    ck_assert_msg(plm_mount(&m, "journal", err, sizeof(err)) == 0, "%s", err);
    put_file("never-synced", "x", 0);
    put_file("file-synced-dir-not", "content synced", 1); /* commits both names */
    put_file("after", "y", 0);
    crash_and_unmount();
    ck_assert_str_eq(disk_text("file-synced-dir-not"), "content synced");
    ck_assert_str_eq(disk_text("never-synced"), ""); /* the name, not the content */
    ck_assert_str_eq(disk_text("after"), "<absent>");
}
END_TEST

START_TEST(a_new_mount_reads_the_disk_not_the_old_page_cache)
{
    put_file("f", "durable", 1);
    sync_root();
    put_file("f", "cached!", 0);
    char p[160], buf[32] = {0};
    mnt_path(p, sizeof(p), "f");
    int fd = open(p, O_RDONLY);
    ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 7);
    close(fd);
    ck_assert_str_eq(buf, "cached!");
    crash_and_unmount();
    char err[512];
    ck_assert_msg(plm_mount(&m, "posix", err, sizeof(err)) == 0, "%s", err);
    memset(buf, 0, sizeof(buf));
    fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 7);
    close(fd);
    ck_assert_str_eq(buf, "durable");
}
END_TEST

/* Each unsynced block comes back old or new, never anything else, and with
 * 64 of them both happen (a chance of 2^-63 to fail). */
START_TEST(a_random_crash_keeps_some_unsynced_blocks_and_drops_others)
{
    enum { PG = 4096, N = 64 };
    static unsigned char page[PG];
    char p[160];
    mnt_path(p, sizeof(p), "r");
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    memset(page, 'o', PG);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pwrite(fd, page, PG, (off_t)i * PG), PG);
    ck_assert_int_eq(fsync(fd), 0);
    sync_root();
    memset(page, 'n', PG);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pwrite(fd, page, PG, (off_t)i * PG), PG);
    close(fd);
    ck_assert_int_eq(plm_crash_random(&m, (unsigned long long)getpid() * 2654435761u + 1), 0);
    ck_assert_int_eq(plm_unmount(&m), 0);
    disk_path(p, sizeof(p), "r");
    fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    int olds = 0, news = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(pread(fd, page, PG, (off_t)i * PG), PG);
        unsigned char c = page[0];
        ck_assert_msg(c == 'o' || c == 'n', "block %d holds %d", i, c);
        for (int j = 0; j < PG; j++)
            ck_assert_int_eq(page[j], c); /* a whole block, not a torn one */
        olds += c == 'o';
        news += c == 'n';
    }
    close(fd);
    ck_assert_int_gt(olds, 0);
    ck_assert_int_gt(news, 0);
}
END_TEST

START_TEST(after_the_crash_the_disk_is_gone)
{
    char p[160];
    mnt_path(p, sizeof(p), "f");
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(plm_crash(&m), 0);
    errno = 0;
    ck_assert_int_eq(write(fd, "late", 4), -1);
    ck_assert_int_eq(errno, EIO);
    close(fd);
    ck_assert_int_eq(plm_unmount(&m), 0);
    ck_assert_str_eq(disk_text("f"), "<absent>");
}
END_TEST

Suite *sv_suite_plfs(void)
{
    Suite *s = suite_create("plfs");
    TCase *tc = tcase_create("plfs");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, unsynced_write_is_lost_and_fsynced_write_kept);
    tcase_add_test(tc, mmap_msync_keeps_and_unsynced_mmap_writes_are_lost);
    tcase_add_test(tc, growth_truncate_and_fallocate_are_undone);
    tcase_add_test(tc, o_dsync_write_is_durable_without_fsync);
    tcase_add_test(tc, entries_are_durable_only_after_their_directory_is_fsynced);
    tcase_add_test(tc, rename_then_directory_fsync_is_durable);
    tcase_add_test(tc, journal_entries_are_durable_with_any_fsync);
    tcase_add_test(tc, a_new_mount_reads_the_disk_not_the_old_page_cache);
    tcase_add_test(tc, a_random_crash_keeps_some_unsynced_blocks_and_drops_others);
    tcase_add_test(tc, after_the_crash_the_disk_is_gone);
    suite_add_tcase(s, tc);
    return s;
}
