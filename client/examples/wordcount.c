/* wordcount — a keyed, windowed word count kept in statesrvd, exactly once.
 *
 * This is the operator an author would write on top of libstatesrv
 * (statesrv.h) alone. It reads records from stdin, one per line:
 *
 *     <event-time-seconds> <text...>
 *
 * e.g. "1700000012 the quick brown fox". Words are runs of ASCII letters and
 * digits, lowercased, cut at 64 bytes. Each word is counted in the tumbling
 * window of --window seconds that holds the record's event time: the state
 * "wordcount" holds one COUNTER per (key = word, namespace = window start as
 * decimal text), updated with merge add (pipelined statesrv_send_add, or with
 * --async the asynchronous API of statesrv_async.h: statesrv_async_add with a
 * callback per add, at most MAX_PENDING in flight). An
 * empty line is a record without words. At the end of the input it scans the
 * state and prints every count, sorted by window then word:
 *
 *     <window-start> <word> <count>
 *
 * Exactly once. Every --checkpoint-every records the job
 *   1. collects the reply to every add it has sent (all are applied; with
 *      --async, every add's callback has run with STATESRV_OK),
 *   2. writes the input position N (records consumed) into the state itself
 *      (state "wordcount.offset", key "stdin"), and
 *   3. takes a checkpoint with statesrv_snapshot().
 * A snapshot holds exactly the writes acknowledged before it (on any
 * connection: with --async the adds go over the asynchronous handle and
 * the position and snapshot over a blocking one), and nothing else was in
 * flight, so the checkpoint holds the counts of records [0, N)
 * and the number N, together: counts and input position cannot disagree.
 *
 * After a crash (of this process, or of the statesrvd next to it) run the
 * job again with --resume on the same input. It restores the newest
 * checkpoint, which atomically replaces the live state and so discards the
 * adds of records after N that the crashed run had already made (they would
 * otherwise count twice), reads N back, skips the first N records, and goes
 * on. Every record is then counted exactly once and the final counts equal
 * those of a run that never failed. This needs a replayable input (a file, a
 * log; not a terminal) and a statesrvd that serves this job alone: restore
 * replaces every state in the server, as one sidecar per worker does.
 *
 * Without --resume (or when there is no checkpoint yet) the job starts from
 * nothing: it drops its two states first. Old checkpoints stay; delete them
 * with `statectl checkpoint rm ID` when no longer needed.
 *
 * Exit status: 0 done, 1 failure (server, input), 2 usage.
 */
#include "statesrv.h"
#include "statesrv_async.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNTS_STATE "wordcount"
#define OFFSET_STATE "wordcount.offset"
#define OFFSET_KEY "stdin"
#define MAX_WORD 64
#define MAX_PENDING 4096 /* replies to collect before sending more */
#define MAX_LINE 65536

static const char usage_text[] =
    "usage: wordcount [options] < records\n"
    "Counts words per tumbling event-time window in statesrvd, with checkpoints.\n"
    "Input lines: <event-time-seconds> <text...>; output: <window-start> <word> <count>.\n"
    "  -a, --addr ADDR            statesrvd address (default " STATESRV_DEFAULT_ADDR ",\n"
    "                             or unix:/path/to/socket)\n"
    "  -w, --window SECONDS       window length (default 60)\n"
    "  -c, --checkpoint-every N   take a checkpoint every N records (default 1000)\n"
    "  -r, --resume               restore the newest checkpoint and continue after the\n"
    "                             record it was taken at (same input again)\n"
    "  -A, --async                send the adds with the asynchronous API\n"
    "  -h, --help                 this text\n";

struct job {
    statesrv *c;
    statesrv_async *a; /* --async: the adds go here */
    int add_status;    /* --async: the first failed add's status, or 0 */
    char add_msg[256];
    uint64_t window;
    uint64_t every;
    uint64_t offset; /* records consumed so far (the input position) */
};

/* A line reader on a file descriptor, so that the job knows when the next
 * read may block (stdio hides that). */
struct reader {
    int fd;
    int eof;
    size_t start, end;
    char buf[MAX_LINE + 1];
};

static int fail(const struct job *j, const char *what, int rc)
{
    fprintf(stderr, "wordcount: %s: %s%s%s\n", what, statesrv_strerror(rc),
            j->c && *statesrv_errmsg(j->c) ? ": " : "", j->c ? statesrv_errmsg(j->c) : "");
    return -1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno)
        return -1;
    *out = v;
    return 0;
}

/* Takes the next complete line out of the buffer: 1 with *line (NUL-
 * terminated, no '\n'), 0 when a read is needed, -1 on a line too long.
 * At the end of the input a last line without '\n' still counts. */
static int next_line(struct reader *r, char **line)
{
    char *p = r->buf + r->start;
    size_t avail = r->end - r->start;
    char *nl = memchr(p, '\n', avail);
    if (nl) {
        *nl = '\0';
        r->start += (size_t)(nl - p) + 1;
    } else if (r->eof && avail) {
        p[avail] = '\0'; /* buf has room for it */
        r->start = r->end;
    } else {
        return avail == MAX_LINE ? -1 : 0;
    }
    *line = p;
    return 1;
}

/* Reads more input (may block). 0 ok (or end of input: r->eof), -1 error. */
static int fill(struct reader *r)
{
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, MAX_LINE - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "wordcount: reading stdin: %s\n", strerror(errno));
            return -1;
        }
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
        return 0;
    }
}

/* --async: an add's reply. The first failure is kept and fails the job at
 * the next drain. */
static void on_add(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    (void)a;
    struct job *j = arg;
    if (r->status != STATESRV_OK && !j->add_status) {
        j->add_status = r->status;
        snprintf(j->add_msg, sizeof(j->add_msg), "%s", r->message);
    }
}

/* --async: runs the handle until every add's callback has run. */
static int drain_async(struct job *j)
{
    while (statesrv_async_in_flight(j->a) > 0) {
        int rc = statesrv_async_wait(j->a, -1);
        if (rc != STATESRV_OK && !j->add_status) {
            fprintf(stderr, "wordcount: collecting replies: %s: %s\n", statesrv_strerror(rc),
                    statesrv_async_errmsg(j->a));
            return -1;
        }
        if (rc != STATESRV_OK)
            break;
    }
    if (j->add_status) {
        fprintf(stderr, "wordcount: add failed: %s: %s\n", statesrv_strerror(j->add_status),
                j->add_msg);
        return -1;
    }
    return 0;
}

/* Collects every outstanding reply; any failed add fails the job. */
static int drain(struct job *j)
{
    if (j->a)
        return drain_async(j);
    while (statesrv_pending(j->c) > 0) {
        statesrv_reply rep;
        int rc = statesrv_recv(j->c, &rep);
        if (rc != STATESRV_OK)
            return fail(j, "collecting replies", rc);
        if (rep.status != STATESRV_OK) {
            fprintf(stderr, "wordcount: add failed: %s: %s\n", statesrv_strerror(rep.status),
                    rep.message);
            return -1;
        }
    }
    return 0;
}

static int is_word_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Counts one record: one pipelined add per word. */
static int count_record(struct job *j, char *line)
{
    if (!*line)
        return 0;
    char *p = line;
    while (*p >= '0' && *p <= '9')
        p++;
    char sep = *p;
    *p = '\0';
    uint64_t t;
    if (parse_u64(line, &t) || (sep && sep != ' ' && sep != '\t')) {
        fprintf(stderr, "wordcount: record %" PRIu64 ": expected '<event-time-seconds> <text>'\n",
                j->offset + 1);
        return -1;
    }
    char ns[24];
    snprintf(ns, sizeof(ns), "%" PRIu64, t - t % j->window);
    if (!sep)
        return 0;
    for (p++;;) {
        char word[MAX_WORD];
        size_t n = 0;
        while (*p && !is_word_char(*p))
            p++;
        for (; is_word_char(*p); p++)
            if (n < MAX_WORD)
                word[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        if (!n)
            break;
        statesrv_key k = {
            .state = COUNTS_STATE, .key = word, .key_len = n, .ns = ns, .ns_len = strlen(ns)};
        if (j->a) {
            int rc;
            /* At the bound, let replies come back until there is room. */
            while ((rc = statesrv_async_add(j->a, &k, 1, on_add, j, NULL)) == STATESRV_ERR_AGAIN)
                if (drain_async(j))
                    return -1;
            if (rc != STATESRV_OK) {
                fprintf(stderr, "wordcount: sending add: %s: %s\n", statesrv_strerror(rc),
                        statesrv_async_errmsg(j->a));
                return -1;
            }
            continue;
        }
        int rc = statesrv_send_add(j->c, &k, 1, NULL);
        if (rc != STATESRV_OK)
            return fail(j, "sending add", rc);
        if (statesrv_pending(j->c) >= MAX_PENDING && drain(j))
            return -1;
    }
    return 0;
}

/* Steps 1-3 of the header comment: counts and position in one checkpoint. */
static int checkpoint(struct job *j)
{
    if (drain(j))
        return -1;
    char pos[24];
    snprintf(pos, sizeof(pos), "%" PRIu64, j->offset);
    statesrv_key k = {.state = OFFSET_STATE, .key = OFFSET_KEY, .key_len = strlen(OFFSET_KEY)};
    int rc = statesrv_put(j->c, &k, pos, strlen(pos));
    if (rc != STATESRV_OK)
        return fail(j, "writing the input position", rc);
    statesrv_checkpoint_info *info;
    if ((rc = statesrv_snapshot(j->c, 0, 0, &info)) != STATESRV_OK)
        return fail(j, "taking a checkpoint", rc);
    fprintf(stderr, "wordcount: checkpoint %" PRIu64 " at record %" PRIu64 "\n", info->id,
            j->offset);
    statesrv_checkpoint_info_free(info);
    return 0;
}

static int start_fresh(struct job *j)
{
    const char *states[] = {COUNTS_STATE, OFFSET_STATE};
    for (size_t i = 0; i < 2; i++) {
        int rc = statesrv_drop_state(j->c, states[i], NULL);
        if (rc != STATESRV_OK && rc != STATESRV_NOT_FOUND)
            return fail(j, "dropping the old state", rc);
    }
    j->offset = 0;
    return 0;
}

/* Restores the newest checkpoint and reads the input position back. A
 * snapshot the crashed run started may still be running in the server
 * (STATESRV_BUSY): wait for it, bounded, and take the newest again. */
static int resume(struct job *j)
{
    int rc = STATESRV_BUSY;
    uint64_t id = 0;
    for (int attempt = 0; rc == STATESRV_BUSY && attempt < 300; attempt++) {
        if (attempt)
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        statesrv_checkpoint_info *list;
        size_t n;
        if ((rc = statesrv_list_checkpoints(j->c, &list, &n)) != STATESRV_OK)
            return fail(j, "listing checkpoints", rc);
        id = 0;
        for (size_t i = 0; i < n; i++)
            id = list[i].id > id ? list[i].id : id;
        statesrv_checkpoint_info_free(list);
        if (!id) {
            fprintf(stderr, "wordcount: no checkpoint to resume from; starting from the first "
                            "record\n");
            return start_fresh(j);
        }
        char src[24];
        snprintf(src, sizeof(src), "%" PRIu64, id);
        const char *sources[] = {src};
        rc = statesrv_restore(j->c, sources, 1, 0, 0, 0, NULL);
    }
    if (rc != STATESRV_OK)
        return fail(j, "restoring the newest checkpoint", rc);

    statesrv_key k = {.state = OFFSET_STATE, .key = OFFSET_KEY, .key_len = strlen(OFFSET_KEY)};
    statesrv_value v;
    if ((rc = statesrv_get(j->c, &k, &v)) != STATESRV_OK)
        return fail(j, "reading the input position from the checkpoint", rc);
    char pos[24] = "";
    if (v.len < sizeof(pos))
        memcpy(pos, v.data, v.len);
    statesrv_value_free(&v);
    if (parse_u64(pos, &j->offset)) {
        fprintf(stderr, "wordcount: checkpoint %" PRIu64 " holds a bad input position\n", id);
        return -1;
    }
    fprintf(stderr, "wordcount: resumed from checkpoint %" PRIu64 " at record %" PRIu64 "\n", id,
            j->offset);
    return 0;
}

/* Feeds stdin through the job: skips the first j->offset records (already in
 * the state) and counts the rest, with a checkpoint every j->every records. */
static int run(struct job *j)
{
    static struct reader in = {.fd = 0};
    uint64_t skip = j->offset, lineno = 0;
    for (;;) {
        char *line;
        int r = next_line(&in, &line);
        if (r < 0) {
            fprintf(stderr, "wordcount: record %" PRIu64 " is longer than %d bytes\n", lineno + 1,
                    MAX_LINE);
            return -1;
        }
        if (r == 0) {
            if (in.eof)
                break;
            /* Before waiting for input, let every add sent so far land. */
            if (drain(j) || fill(&in))
                return -1;
            continue;
        }
        if (++lineno <= skip)
            continue;
        if (count_record(j, line))
            return -1;
        j->offset++;
        if (j->offset % j->every == 0 && checkpoint(j))
            return -1;
    }
    if (lineno < skip) {
        fprintf(stderr,
                "wordcount: the input has %" PRIu64 " records but the checkpoint is at %" PRIu64
                ": not the same input\n",
                lineno, skip);
        return -1;
    }
    return drain(j);
}

struct count {
    uint64_t window;
    int64_t n;
    char word[MAX_WORD + 1];
};

static int count_cmp(const void *a, const void *b)
{
    const struct count *x = a, *y = b;
    if (x->window != y->window)
        return x->window < y->window ? -1 : 1;
    return strcmp(x->word, y->word);
}

/* Scans the counts, then prints them sorted by window and word. */
static int print_counts(struct job *j)
{
    statesrv_scan_options o = {.state = COUNTS_STATE, .mode = STATESRV_SCAN_STATE};
    statesrv_scan *s;
    int rc = statesrv_scan_open(j->c, &o, &s);
    if (rc != STATESRV_OK)
        return fail(j, "scanning the counts", rc);
    struct count *all = NULL;
    size_t n = 0, cap = 0;
    const statesrv_entry *e;
    while ((rc = statesrv_scan_next(s, &e)) == STATESRV_OK && e) {
        char ns[24] = "";
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct count *grown = realloc(all, cap * sizeof(*all));
            if (!grown) {
                rc = STATESRV_ERR_NOMEM;
                break;
            }
            all = grown;
        }
        struct count *c = &all[n];
        if (e->ns_len < sizeof(ns))
            memcpy(ns, e->ns, e->ns_len);
        if (e->key_len > MAX_WORD || parse_u64(ns, &c->window) ||
            statesrv_counter_decode(e->value, e->value_len, &c->n) != STATESRV_OK) {
            fprintf(stderr, "wordcount: unexpected entry in state %s\n", COUNTS_STATE);
            rc = STATESRV_INVALID_ARGUMENT;
            break;
        }
        memcpy(c->word, e->key, e->key_len);
        c->word[e->key_len] = '\0';
        n++;
    }
    statesrv_scan_close(s);
    if (rc != STATESRV_OK) {
        free(all);
        return fail(j, "scanning the counts", rc);
    }
    qsort(all, n, sizeof(*all), count_cmp);
    for (size_t i = 0; i < n; i++)
        printf("%" PRIu64 " %s %" PRId64 "\n", all[i].window, all[i].word, all[i].n);
    free(all);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "wordcount: writing the counts: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"window", required_argument, NULL, 'w'},
        {"checkpoint-every", required_argument, NULL, 'c'},
        {"resume", no_argument, NULL, 'r'},
        {"async", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct job j = {.window = 60, .every = 1000};
    const char *addr = STATESRV_DEFAULT_ADDR;
    int opt, do_resume = 0, use_async = 0;
    while ((opt = getopt_long(argc, argv, "a:w:c:rAh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 'w':
            if (parse_u64(optarg, &j.window) || !j.window) {
                fprintf(stderr, "wordcount: --window wants a positive number of seconds\n");
                return 2;
            }
            break;
        case 'c':
            if (parse_u64(optarg, &j.every) || !j.every) {
                fprintf(stderr, "wordcount: --checkpoint-every wants a positive count\n");
                return 2;
            }
            break;
        case 'r':
            do_resume = 1;
            break;
        case 'A':
            use_async = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "wordcount: unexpected argument '%s' (the input is stdin)\n%s",
                argv[optind], usage_text);
        return 2;
    }

    char err[256];
    statesrv_options o = {.client_name = "wordcount"};
    int rc = statesrv_connect2(addr, &o, &j.c, err, sizeof(err));
    if (rc != STATESRV_OK) {
        fprintf(stderr, "wordcount: cannot connect to %s: %s\n", addr, err);
        return 1;
    }
    if (use_async) {
        statesrv_async_options ao = {.max_in_flight = MAX_PENDING};
        rc = statesrv_async_connect(addr, &o, &ao, &j.a, err, sizeof(err));
        if (rc != STATESRV_OK) {
            fprintf(stderr, "wordcount: cannot connect to %s: %s\n", addr, err);
            statesrv_close(j.c);
            return 1;
        }
    }
    int failed = (do_resume ? resume(&j) : start_fresh(&j)) || run(&j) || print_counts(&j);
    statesrv_async_close(j.a);
    statesrv_close(j.c);
    return failed ? 1 : 0;
}
