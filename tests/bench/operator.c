/* The operator benchmark (issue 16, `make bench-operator`): what one
 * operator thread gets from its keyed state, side by side in one run.
 *
 *   rocksdb-default  embedded RocksDB, default options, WAL off (as Flink)
 *   rocksdb-tuned    the same with a block cache that holds the data and
 *                    bloom filters (10 bits per key)
 *   blocking P1      libstatesrv, statesrv_put / statesrv_get, one at a time
 *   async N          libstatesrv's asynchronous API, N requests in flight
 *   local            statesrv_local_get on the server's live store (gets only)
 *   local-ref        statesrv_local_get_ref (zero-copy) on it (gets only)
 *   redis-P1         Redis through hiredis, SET / GET one at a time
 *   redis-PN         the same pipelined: N commands, then their N replies
 *
 * The statesrvd modes talk to a real statesrvd started here on a Unix
 * socket in a mkdtemp directory (no TCP listener; sync = none), the Redis
 * modes to a redis-server started the same way (no TCP port, no RDB, no
 * AOF); both are stopped by PID at the end. Every store is preloaded with the same keys
 * ("key:%012u", 0..keys-1, in order) and values; the measured phases are
 * random puts (overwrites) and random gets of preloaded keys, every reply
 * checked (a get must find a value of the right length). Each repetition
 * runs every mode once, in alternating order (forward, backward, ...), and
 * the table reports the median of the repetitions' ops/s, p50 and p99.
 * Latency is the time of one call (blocking, local, RocksDB) or from issue
 * to callback (async). Every loop is bounded in count (--ops) and in time
 * (--seconds per phase; a phase cut short says so).
 *
 * Usage: operator --statesrvd PATH [--redis-server PATH] [--keys N] [--ops N] [--value BYTES]
 *                 [--reps N] [--seconds S] [--depths 16,64] [--quick]
 *                 [--only MODE,...]
 * The table (markdown) goes to stdout, progress to stderr. */
#include "statesrv.h"
#include "statesrv_async.h"
#include "statesrv_local.h"

#include <hiredis/hiredis.h>
#include <rocksdb/c.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 16
#define MAX_DEPTHS 4
#define STATE_NAME "bench"
/* Every preload gives up after this long. */
#define LOAD_MAX_NS (600ull * 1000000000ull)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("operator: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("operator: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Set by SIGINT / SIGTERM: the next check dies, and cleanup() at exit stops
 * the servers and removes the temp directory. */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void check_stop(void)
{
    if (stop_requested)
        die("interrupted");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- settings -------------------------------------------------------------- */

static struct {
    const char *statesrvd;
    const char *redis_server;
    uint32_t keys;
    uint32_t ops;
    size_t vlen;
    int reps;
    double seconds;
    uint32_t depths[MAX_DEPTHS];
    int n_depths;
    const char *only;
} cfg = {
    .redis_server = "redis-server",
    .keys = 1000000,
    .ops = 1000000,
    .vlen = 64,
    .reps = 3,
    .seconds = 60,
    .depths = {16, 64},
    .n_depths = 2,
};

/* --- keys, values, the random sequence ------------------------------------- */

static void key_of(uint32_t i, char out[KEY_LEN + 1])
{
    snprintf(out, KEY_LEN + 1, "key:%012" PRIu32, i);
}

/* xorshift64*: the same sequence of keys for every mode of a repetition. */
struct rng {
    uint64_t s;
};

static uint32_t rng_key(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)(((r->s * 2685821657736338717ull) >> 32) % cfg.keys);
}

/* A value of cfg.vlen bytes whose first bytes vary with n. */
static void value_of(uint64_t n, uint8_t *v)
{
    memset(v, 'v', cfg.vlen);
    size_t m = cfg.vlen < sizeof(n) ? cfg.vlen : sizeof(n);
    memcpy(v, &n, m);
}

static statesrv_key skey(const char *k)
{
    return (statesrv_key){.state = STATE_NAME, .key = k, .key_len = KEY_LEN};
}

/* --- one phase's figures ---------------------------------------------------- */

struct phase {
    uint32_t *lat_ns; /* cfg.ops slots */
    uint32_t n;       /* ops done */
    uint64_t t0, t1;
    int cut; /* stopped by --seconds */
};

static void lat_put(struct phase *p, uint64_t ns)
{
    p->lat_ns[p->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int phase_over(const struct phase *p, uint64_t now)
{
    check_stop();
    return (double)(now - p->t0) > cfg.seconds * 1e9;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double ops_s, p50_us, p99_us;
    int cut;
};

static struct result phase_result(struct phase *p)
{
    struct result r = {0};
    if (p->n == 0)
        return r;
    qsort(p->lat_ns, p->n, sizeof(uint32_t), cmp_u32);
    r.ops_s = p->n / ((double)(p->t1 - p->t0) / 1e9);
    r.p50_us = p->lat_ns[(size_t)(p->n * 0.50)] / 1e3;
    r.p99_us = p->lat_ns[(size_t)(p->n * 0.99)] / 1e3;
    r.cut = p->cut;
    return r;
}

/* --- embedded RocksDB ------------------------------------------------------ */

struct rdb {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *bbo;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
};

static void rdb_check(char *err, const char *what)
{
    if (err)
        die("rocksdb %s: %s", what, err);
}

static void rdb_open(struct rdb *r, const char *dir, int tuned)
{
    char *err = NULL;
    r->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opts, 1);
    if (tuned) {
        /* A cache that holds the whole data set and full bloom filters. */
        r->bbo = rocksdb_block_based_options_create();
        size_t want = (size_t)cfg.keys * (KEY_LEN + cfg.vlen) * 2 + (64u << 20);
        r->cache = rocksdb_cache_create_lru(want);
        rocksdb_block_based_options_set_block_cache(r->bbo, r->cache);
        rocksdb_block_based_options_set_filter_policy(r->bbo,
                                                      rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_options_set_block_based_table_factory(r->opts, r->bbo);
    }
    r->db = rocksdb_open(r->opts, dir, &err);
    rdb_check(err, "open");
    r->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(r->wo, 1);
    r->ro = rocksdb_readoptions_create();
}

static void rdb_close(struct rdb *r)
{
    rocksdb_close(r->db);
    rocksdb_writeoptions_destroy(r->wo);
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_options_destroy(r->opts);
    if (r->bbo)
        rocksdb_block_based_options_destroy(r->bbo);
    if (r->cache)
        rocksdb_cache_destroy(r->cache);
}

/* Loads the keys, flushes, and waits (bounded) for compactions to settle. */
static void rdb_load(struct rdb *r)
{
    uint8_t *v = malloc(cfg.vlen);
    char k[KEY_LEN + 1];
    char *err = NULL;
    if (!v)
        die("out of memory");
    uint64_t t_load = now_ns();
    for (uint32_t i = 0; i < cfg.keys; i++) {
        if ((i & 0xffff) == 0) {
            check_stop();
            if (now_ns() - t_load > LOAD_MAX_NS)
                die("rocksdb load: not done in %llu s", LOAD_MAX_NS / 1000000000ull);
        }
        key_of(i, k);
        value_of(i, v);
        rocksdb_put(r->db, r->wo, k, KEY_LEN, (const char *)v, cfg.vlen, &err);
        rdb_check(err, "put");
    }
    free(v);
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(r->db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    rdb_check(err, "flush");
    uint64_t t0 = now_ns();
    for (int i = 0; i < 600; i++) { /* at most 60 s */
        uint64_t pending = 1, running = 1;
        if (rocksdb_property_int(r->db, "rocksdb.compaction-pending", &pending) != 0 ||
            rocksdb_property_int(r->db, "rocksdb.num-running-compactions", &running) != 0)
            break;
        if (pending == 0 && running == 0)
            break;
        usleep(100000);
    }
    note("rocksdb loaded and settled in %.1f s after the flush", (now_ns() - t0) / 1e9);
}

static void rdb_puts(struct rdb *r, struct rng *g, struct phase *p, uint64_t salt)
{
    uint8_t *v = malloc(cfg.vlen);
    char k[KEY_LEN + 1];
    char *err = NULL;
    if (!v)
        die("out of memory");
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < cfg.ops) {
        key_of(rng_key(g), k);
        value_of(salt + p->n, v);
        rocksdb_put(r->db, r->wo, k, KEY_LEN, (const char *)v, cfg.vlen, &err);
        rdb_check(err, "put");
        uint64_t t2 = now_ns();
        lat_put(p, t2 - t);
        t = t2;
        if (phase_over(p, t)) {
            p->cut = 1;
            break;
        }
    }
    p->t1 = t;
    free(v);
}

static void rdb_gets(struct rdb *r, struct rng *g, struct phase *p)
{
    char k[KEY_LEN + 1];
    char *err = NULL;
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < cfg.ops) {
        key_of(rng_key(g), k);
        size_t len = 0;
        char *val = rocksdb_get(r->db, r->ro, k, KEY_LEN, &len, &err);
        rdb_check(err, "get");
        if (!val || len != cfg.vlen)
            die("rocksdb get %s: %s", k, val ? "wrong length" : "not found");
        rocksdb_free(val);
        uint64_t t2 = now_ns();
        lat_put(p, t2 - t);
        t = t2;
        if (phase_over(p, t)) {
            p->cut = 1;
            break;
        }
    }
    p->t1 = t;
}

/* --- statesrvd ------------------------------------------------------------- */

static char sdir[64];
static char saddr[160];
static char sdata[128];
static pid_t spid = -1, rpid = -1;

/* Stops a server this program started: SIGTERM, up to 20 s, then SIGKILL. */
static void child_stop(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = -1;
            return;
        }
        usleep(100000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = -1;
}

static void statesrvd_start(void)
{
    char sock[128], ckpt[128], log[128];
    snprintf(sock, sizeof(sock), "%s/sock", sdir);
    snprintf(sdata, sizeof(sdata), "%s/data", sdir);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoints", sdir);
    snprintf(log, sizeof(log), "%s/log", sdir);
    snprintf(saddr, sizeof(saddr), "unix:%s", sock);
    spid = fork();
    if (spid < 0)
        die("fork: %s", strerror(errno));
    if (spid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(126);
        execl(cfg.statesrvd, cfg.statesrvd, "--listen", "", "--unix", sock, "--data-dir", sdata,
              "--checkpoint-dir", ckpt, "--sync", "none", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) { /* 10 s */
        statesrv *c;
        if (statesrv_connect(saddr, NULL, &c) == STATESRV_OK) {
            statesrv_close(c);
            return;
        }
        if (waitpid(spid, NULL, WNOHANG) == spid) {
            spid = -1;
            die("statesrvd exited at start; see %s", log);
        }
        usleep(100000);
    }
    die("statesrvd did not answer on %s in 10 s", saddr);
}

static statesrv_async *async_open(uint32_t depth)
{
    statesrv_async_options ao = {.max_in_flight = depth};
    statesrv_async *a;
    char why[256] = "";
    int rc = statesrv_async_connect(saddr, NULL, &ao, &a, why, sizeof(why));
    if (rc != STATESRV_OK)
        die("async connect %s: %s: %s", saddr, statesrv_strerror(rc), why);
    return a;
}

/* What the async callbacks share: issue times in issue order (callbacks run
 * in that order), so slot head is the oldest request in flight. */
struct actx {
    struct phase *p;
    uint64_t *issued; /* ring of depth slots */
    uint32_t depth, head;
    int want_get;
    int failed;
    char why[256];
};

static void async_cb(statesrv_async *a, const statesrv_async_result *r, void *arg)
{
    (void)a;
    struct actx *x = arg;
    uint64_t t = now_ns();
    lat_put(x->p, t - x->issued[x->head]);
    x->head = (x->head + 1) % x->depth;
    if (x->failed)
        return;
    if (r->status != STATESRV_OK)
        x->failed = 1,
        snprintf(x->why, sizeof(x->why), "status %s: %s", statesrv_strerror(r->status), r->message);
    else if (x->want_get && (!r->found || r->value_len != cfg.vlen))
        x->failed = 1,
        snprintf(x->why, sizeof(x->why), "get: %s", r->found ? "wrong length" : "not found");
}

/* Random puts (put = 1) or gets through the asynchronous API with up to
 * depth requests in flight: issue until the bound, send, then let replies
 * free slots, as an operator's loop would. */
static void async_run(statesrv_async *a, uint32_t depth, int put, struct rng *g, struct phase *p,
                      uint64_t salt)
{
    struct actx x = {.p = p, .depth = depth, .want_get = !put};
    uint8_t *v = malloc(cfg.vlen);
    x.issued = calloc(depth, sizeof(*x.issued));
    if (!v || !x.issued)
        die("out of memory");
    uint32_t sent = 0, tail = 0;
    char k[KEY_LEN + 1];
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < sent || sent < cfg.ops) {
        while (sent < cfg.ops && statesrv_async_in_flight(a) < depth && !p->cut) {
            key_of(rng_key(g), k);
            statesrv_key kk = skey(k);
            int rc;
            if (put) {
                value_of(salt + sent, v);
                rc = statesrv_async_put(a, &kk, STATESRV_KIND_RAW, v, cfg.vlen, async_cb, &x, NULL);
            } else {
                rc = statesrv_async_get(a, &kk, async_cb, &x, NULL);
            }
            if (rc == STATESRV_ERR_AGAIN)
                break;
            if (rc != STATESRV_OK)
                die("async %s: %s: %s", put ? "put" : "get", statesrv_strerror(rc),
                    statesrv_async_errmsg(a));
            x.issued[tail] = now_ns();
            tail = (tail + 1) % depth;
            sent++;
        }
        int rc = statesrv_async_write(a);
        if (rc == STATESRV_OK)
            rc = statesrv_async_wait(a, 1000);
        if (rc != STATESRV_OK)
            die("async loop: %s: %s", statesrv_strerror(rc), statesrv_async_errmsg(a));
        if (x.failed)
            die("async %s: %s", put ? "put" : "get", x.why);
        t = now_ns();
        if (!p->cut && phase_over(p, t))
            p->cut = 1; /* stop issuing; drain what is in flight */
        if (p->cut && (double)(t - p->t0) > (cfg.seconds + 30) * 1e9)
            die("async: %zu replies missing 30 s after the phase ended",
                statesrv_async_in_flight(a));
        if (p->cut && p->n == sent)
            break;
    }
    p->t1 = t;
    free(v);
    free(x.issued);
}

static void statesrvd_load(void)
{
    statesrv_async *a = async_open(256);
    struct phase p = {.lat_ns = malloc(sizeof(uint32_t) * cfg.keys)};
    struct actx x = {.p = &p, .depth = 256};
    uint8_t *v = malloc(cfg.vlen);
    x.issued = calloc(256, sizeof(*x.issued));
    if (!p.lat_ns || !v || !x.issued)
        die("out of memory");
    uint32_t sent = 0, tail = 0;
    char k[KEY_LEN + 1];
    uint64_t t0 = now_ns();
    while (p.n < cfg.keys) {
        while (sent < cfg.keys && statesrv_async_in_flight(a) < 256) {
            key_of(sent, k);
            value_of(sent, v);
            statesrv_key kk = skey(k);
            int rc = statesrv_async_put(a, &kk, STATESRV_KIND_RAW, v, cfg.vlen, async_cb, &x, NULL);
            if (rc == STATESRV_ERR_AGAIN)
                break;
            if (rc != STATESRV_OK)
                die("load put: %s", statesrv_strerror(rc));
            x.issued[tail] = now_ns();
            tail = (tail + 1) % 256;
            sent++;
        }
        int rc = statesrv_async_write(a);
        if (rc == STATESRV_OK)
            rc = statesrv_async_wait(a, 1000);
        if (rc != STATESRV_OK || x.failed)
            die("load: %s %s", statesrv_strerror(rc), x.why);
        if (now_ns() - t0 > LOAD_MAX_NS)
            die("load: not done in %llu s", LOAD_MAX_NS / 1000000000ull);
        check_stop();
    }
    statesrv_async_close(a);
    free(p.lat_ns);
    free(v);
    free(x.issued);
    note("statesrvd loaded %" PRIu32 " keys in %.1f s", cfg.keys, (now_ns() - t0) / 1e9);
}

static void blocking_run(statesrv *c, int put, struct rng *g, struct phase *p, uint64_t salt)
{
    uint8_t *v = malloc(cfg.vlen);
    char k[KEY_LEN + 1];
    if (!v)
        die("out of memory");
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < cfg.ops) {
        key_of(rng_key(g), k);
        statesrv_key kk = skey(k);
        int rc;
        if (put) {
            value_of(salt + p->n, v);
            rc = statesrv_put(c, &kk, v, cfg.vlen);
        } else {
            statesrv_value out = {0};
            rc = statesrv_get(c, &kk, &out);
            if (rc == STATESRV_OK && out.len != cfg.vlen)
                die("blocking get %s: wrong length", k);
            statesrv_value_free(&out);
        }
        if (rc != STATESRV_OK)
            die("blocking %s %s: %s: %s", put ? "put" : "get", k, statesrv_strerror(rc),
                statesrv_errmsg(c));
        uint64_t t2 = now_ns();
        lat_put(p, t2 - t);
        t = t2;
        if (phase_over(p, t)) {
            p->cut = 1;
            break;
        }
    }
    p->t1 = t;
    free(v);
}

static void local_run(statesrv_local *l, int ref, struct rng *g, struct phase *p)
{
    char k[KEY_LEN + 1];
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < cfg.ops) {
        key_of(rng_key(g), k);
        statesrv_key kk = skey(k);
        statesrv_value out = {0};
        const void *data;
        int kind, rc = ref ? statesrv_local_get_ref(l, &kk, &data, &out.len, &kind)
                           : statesrv_local_get(l, &kk, &out);
        if (rc != STATESRV_OK || out.len != cfg.vlen)
            die("local get %s: %s: %s", k, statesrv_strerror(rc), statesrv_local_errmsg(l));
        if (!ref)
            statesrv_value_free(&out);
        uint64_t t2 = now_ns();
        lat_put(p, t2 - t);
        t = t2;
        if (phase_over(p, t)) {
            p->cut = 1;
            break;
        }
    }
    statesrv_local_release(l);
    p->t1 = t;
}

/* --- Redis through hiredis --------------------------------------------------- */

static char rsock[128];

static void redis_start(void)
{
    char log[128];
    snprintf(rsock, sizeof(rsock), "%s/redis.sock", sdir);
    snprintf(log, sizeof(log), "%s/redis.log", sdir);
    rpid = fork();
    if (rpid < 0)
        die("fork: %s", strerror(errno));
    if (rpid == 0) {
        execlp(cfg.redis_server, cfg.redis_server, "--port", "0", "--unixsocket", rsock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", sdir,
               "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) { /* 10 s */
        redisContext *c = redisConnectUnix(rsock);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        if (waitpid(rpid, NULL, WNOHANG) == rpid) {
            rpid = -1;
            die("%s exited at start; see %s", cfg.redis_server, log);
        }
        usleep(100000);
    }
    die("redis-server did not answer on %s in 10 s", rsock);
}

static redisContext *redis_open(void)
{
    redisContext *c = redisConnectUnix(rsock);
    if (!c || c->err)
        die("redis connect %s: %s", rsock, c ? c->errstr : "out of memory");
    return c;
}

static void redis_append(redisContext *c, int put, const char *k, const uint8_t *v)
{
    int rc = put ? redisAppendCommand(c, "SET %b %b", k, (size_t)KEY_LEN, v, cfg.vlen)
                 : redisAppendCommand(c, "GET %b", k, (size_t)KEY_LEN);
    if (rc != REDIS_OK)
        die("redis append: %s", c->errstr);
}

static void redis_reply(redisContext *c, int put)
{
    void *rv = NULL;
    if (redisGetReply(c, &rv) != REDIS_OK || !rv)
        die("redis reply: %s", c->errstr);
    redisReply *r = rv;
    if (put ? r->type != REDIS_REPLY_STATUS
            : r->type != REDIS_REPLY_STRING || r->len != (size_t)cfg.vlen)
        die("redis %s: unexpected reply type %d", put ? "SET" : "GET", r->type);
    freeReplyObject(r);
}

static void redis_load(redisContext *c)
{
    uint8_t *v = malloc(cfg.vlen);
    char k[KEY_LEN + 1];
    if (!v)
        die("out of memory");
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < cfg.keys; i += 256) {
        check_stop();
        if (now_ns() - t0 > LOAD_MAX_NS)
            die("redis load: not done in %llu s", LOAD_MAX_NS / 1000000000ull);
        uint32_t n = cfg.keys - i < 256 ? cfg.keys - i : 256;
        for (uint32_t j = 0; j < n; j++) {
            key_of(i + j, k);
            value_of(i + j, v);
            redis_append(c, 1, k, v);
        }
        for (uint32_t j = 0; j < n; j++)
            redis_reply(c, 1);
    }
    free(v);
    note("redis loaded %" PRIu32 " keys in %.1f s", cfg.keys, (now_ns() - t0) / 1e9);
}

/* depth commands, then their replies; the latency of each is from its
 * append to its reply (redis-benchmark -P pipelines the same way). */
static void redis_run(redisContext *c, uint32_t depth, int put, struct rng *g, struct phase *p,
                      uint64_t salt)
{
    uint8_t *v = malloc(cfg.vlen);
    uint64_t *issued = calloc(depth, sizeof(*issued));
    char k[KEY_LEN + 1];
    if (!v || !issued)
        die("out of memory");
    p->t0 = now_ns();
    uint64_t t = p->t0;
    while (p->n < cfg.ops) {
        uint32_t n = cfg.ops - p->n < depth ? cfg.ops - p->n : depth;
        for (uint32_t j = 0; j < n; j++) {
            key_of(rng_key(g), k);
            if (put)
                value_of(salt + p->n + j, v);
            redis_append(c, put, k, v);
            issued[j] = now_ns();
        }
        for (uint32_t j = 0; j < n; j++) {
            redis_reply(c, put);
            t = now_ns();
            lat_put(p, t - issued[j]);
        }
        if (phase_over(p, t)) {
            p->cut = 1;
            break;
        }
    }
    p->t1 = t;
    free(v);
    free(issued);
}

/* How busy the machine is (it is shared): the 1-minute load average and
 * the share of the last 60 s some task waited for a CPU (PSI), if known. */
static void machine_load(char *out, size_t cap)
{
    double la = -1, psi = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &la) != 1)
            la = -1;
        fclose(f);
    }
    f = fopen("/proc/pressure/cpu", "r");
    if (f) {
        if (fscanf(f, "some avg10=%*f avg60=%lf", &psi) != 1)
            psi = -1;
        fclose(f);
    }
    snprintf(out, cap, "load average %.2f, CPU pressure (some, 60 s) %.0f%%", la, psi);
}

/* --- the modes and the table ------------------------------------------------ */

enum kind { M_RDB_DEFAULT, M_RDB_TUNED, M_BLOCKING, M_ASYNC, M_LOCAL, M_LOCAL_REF, M_REDIS };

struct mode {
    enum kind kind;
    uint32_t depth;
    char name[32];
    struct result put[16], get[16]; /* per repetition */
};

static struct mode modes[6 + 2 * MAX_DEPTHS];
static int n_modes;

static int wanted(const char *name)
{
    if (!cfg.only)
        return 1;
    size_t n = strlen(name);
    for (const char *s = cfg.only; *s;) {
        const char *e = strchr(s, ',');
        size_t m = e ? (size_t)(e - s) : strlen(s);
        if (m == n && memcmp(s, name, n) == 0)
            return 1;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

static void add_mode(enum kind k, uint32_t depth, const char *name)
{
    if (!wanted(name))
        return;
    struct mode *m = &modes[n_modes++];
    m->kind = k;
    m->depth = depth;
    snprintf(m->name, sizeof(m->name), "%s", name);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of field f over the repetitions. */
static double median(const struct result *rs, int f)
{
    double v[16];
    for (int i = 0; i < cfg.reps; i++)
        v[i] = f == 0 ? rs[i].ops_s : f == 1 ? rs[i].p50_us : rs[i].p99_us;
    qsort(v, (size_t)cfg.reps, sizeof(double), cmp_double);
    return cfg.reps % 2 ? v[cfg.reps / 2] : (v[cfg.reps / 2 - 1] + v[cfg.reps / 2]) / 2;
}

static int any_cut(const struct result *rs)
{
    for (int i = 0; i < cfg.reps; i++)
        if (rs[i].cut)
            return 1;
    return 0;
}

static const struct mode *find_kind(enum kind k)
{
    for (int i = 0; i < n_modes; i++)
        if (modes[i].kind == k)
            return &modes[i];
    return NULL;
}

static void ratio_cell(double v, const struct mode *anchor, int get)
{
    if (!anchor) {
        printf(" — |");
        return;
    }
    double a = median(get ? anchor->get : anchor->put, 0);
    printf(" %.2f |", a > 0 ? v / a : 0);
}

/* The Redis mode at m's pipeline depth, for statesrvd's blocking and async modes. */
static const struct mode *redis_peer(const struct mode *m)
{
    if (m->kind != M_BLOCKING && m->kind != M_ASYNC)
        return NULL;
    for (int i = 0; i < n_modes; i++)
        if (modes[i].kind == M_REDIS && modes[i].depth == m->depth)
            return &modes[i];
    return NULL;
}

static void print_row(const struct mode *m, int get)
{
    const struct result *rs = get ? m->get : m->put;
    double ops = median(rs, 0);
    printf("| %s | %s | %.0f%s | %.1f | %.1f |", m->name, get ? "get" : "put", ops,
           any_cut(rs) ? " (time-bounded)" : "", median(rs, 1), median(rs, 2));
    ratio_cell(ops, find_kind(M_RDB_DEFAULT), get);
    ratio_cell(ops, find_kind(M_RDB_TUNED), get);
    ratio_cell(ops, redis_peer(m), get);
    printf("\n");
}

static void usage(void)
{
    fprintf(stderr, "usage: operator --statesrvd PATH [--redis-server PATH] [--keys N] [--ops N] "
                    "[--value BYTES] "
                    "[--reps N] [--seconds S] [--depths N,N] [--quick] [--only MODE,...]\n");
    exit(2);
}

static void parse_depths(const char *s)
{
    cfg.n_depths = 0;
    while (*s && cfg.n_depths < MAX_DEPTHS) {
        char *e;
        unsigned long d = strtoul(s, &e, 10);
        if (e == s || d == 0 || d > 65536)
            usage();
        cfg.depths[cfg.n_depths++] = (uint32_t)d;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',')
            usage();
    }
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            cfg.keys = 100000;
            cfg.ops = 50000;
            cfg.reps = 1;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--statesrvd") == 0)
            cfg.statesrvd = v;
        else if (strcmp(a, "--redis-server") == 0)
            cfg.redis_server = v;
        else if (strcmp(a, "--keys") == 0)
            cfg.keys = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--ops") == 0)
            cfg.ops = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--value") == 0)
            cfg.vlen = strtoul(v, NULL, 10);
        else if (strcmp(a, "--reps") == 0)
            cfg.reps = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            cfg.seconds = atof(v);
        else if (strcmp(a, "--depths") == 0)
            parse_depths(v);
        else if (strcmp(a, "--only") == 0)
            cfg.only = v;
        else
            usage();
    }
    if (!cfg.statesrvd || cfg.keys == 0 || cfg.ops == 0 || cfg.vlen == 0 || cfg.vlen > (1u << 20) ||
        cfg.reps < 1 || cfg.reps > 16 || cfg.seconds <= 0)
        usage();
}

/* At exit, also after die(): the server stopped, its directory removed. */
static void cleanup(void)
{
    child_stop(&spid);
    child_stop(&rpid);
    if (sdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sdir);
        if (system(cmd) != 0)
            note("could not remove %s", sdir);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    add_mode(M_RDB_DEFAULT, 0, "rocksdb-default");
    add_mode(M_RDB_TUNED, 0, "rocksdb-tuned");
    add_mode(M_BLOCKING, 1, "blocking-P1");
    for (int i = 0; i < cfg.n_depths; i++) {
        char name[32];
        snprintf(name, sizeof(name), "async-%" PRIu32, cfg.depths[i]);
        add_mode(M_ASYNC, cfg.depths[i], name);
    }
    add_mode(M_LOCAL, 0, "local");
    add_mode(M_LOCAL_REF, 0, "local-ref");
    add_mode(M_REDIS, 1, "redis-P1");
    for (int i = 0; i < cfg.n_depths; i++) {
        char name[32];
        snprintf(name, sizeof(name), "redis-P%" PRIu32, cfg.depths[i]);
        add_mode(M_REDIS, cfg.depths[i], name);
    }
    if (n_modes == 0)
        die("--only named no mode");

    snprintf(sdir, sizeof(sdir), "/tmp/statesrv-operator.XXXXXX");
    if (!mkdtemp(sdir))
        die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char rdir[2][128];
    snprintf(rdir[0], sizeof(rdir[0]), "%s/rocksdb-default", sdir);
    snprintf(rdir[1], sizeof(rdir[1]), "%s/rocksdb-tuned", sdir);

    struct rdb rdbs[2] = {0};
    int need_srv = 0;
    redisContext *redis = NULL;
    for (int i = 0; i < n_modes; i++) {
        if (modes[i].kind == M_RDB_DEFAULT || modes[i].kind == M_RDB_TUNED) {
            int t = modes[i].kind == M_RDB_TUNED;
            rdb_open(&rdbs[t], rdir[t], t);
            rdb_load(&rdbs[t]);
        } else if (modes[i].kind == M_REDIS) {
            if (!redis) {
                redis_start();
                redis = redis_open();
                redis_load(redis);
            }
        } else {
            need_srv = 1;
        }
    }
    statesrv *blocking = NULL;
    statesrv_async *asyncs[MAX_DEPTHS] = {0};
    statesrv_local *local = NULL;
    if (need_srv) {
        statesrvd_start();
        statesrvd_load();
        for (int i = 0; i < n_modes; i++) {
            struct mode *m = &modes[i];
            char why[256] = "";
            int rc = STATESRV_OK;
            if (m->kind == M_BLOCKING)
                rc = statesrv_connect2(saddr, NULL, &blocking, why, sizeof(why));
            else if (m->kind == M_ASYNC)
                asyncs[i - (int)(find_kind(M_ASYNC) - modes)] = async_open(m->depth);
            else if ((m->kind == M_LOCAL || m->kind == M_LOCAL_REF) && !local)
                rc = statesrv_local_open(sdata, &local, why, sizeof(why));
            if (rc != STATESRV_OK)
                die("%s: %s: %s", m->name, statesrv_strerror(rc), why);
        }
    }

    struct phase p = {.lat_ns = malloc(sizeof(uint32_t) * cfg.ops)};
    if (!p.lat_ns)
        die("out of memory");
    char load_start[128], load_end[128];
    machine_load(load_start, sizeof(load_start));
    uint64_t salt = (uint64_t)cfg.keys;
    for (int rep = 0; rep < cfg.reps; rep++) {
        for (int j = 0; j < n_modes; j++) {
            struct mode *m = &modes[rep % 2 ? n_modes - 1 - j : j];
            for (int get = 0; get <= 1; get++) {
                if ((m->kind == M_LOCAL || m->kind == M_LOCAL_REF) && !get)
                    continue;
                /* The same keys for every mode within a repetition. */
                struct rng g = {.s = 0x9e3779b97f4a7c15ull * (uint64_t)(2 * rep + get + 1)};
                p.n = 0;
                p.cut = 0;
                switch (m->kind) {
                case M_RDB_DEFAULT:
                case M_RDB_TUNED: {
                    struct rdb *r = &rdbs[m->kind == M_RDB_TUNED];
                    if (get)
                        rdb_gets(r, &g, &p);
                    else
                        rdb_puts(r, &g, &p, salt);
                    break;
                }
                case M_BLOCKING:
                    blocking_run(blocking, !get, &g, &p, salt);
                    break;
                case M_ASYNC:
                    async_run(asyncs[m - find_kind(M_ASYNC)], m->depth, !get, &g, &p, salt);
                    break;
                case M_LOCAL:
                case M_LOCAL_REF:
                    local_run(local, m->kind == M_LOCAL_REF, &g, &p);
                    break;
                case M_REDIS:
                    redis_run(redis, m->depth, !get, &g, &p, salt);
                    break;
                }
                salt += cfg.ops;
                struct result r = phase_result(&p);
                (get ? m->get : m->put)[rep] = r;
                note("rep %d %-16s %s %10.0f ops/s  p50 %7.1f us  p99 %7.1f us%s", rep + 1, m->name,
                     get ? "get" : "put", r.ops_s, r.p50_us, r.p99_us,
                     r.cut ? "  (time-bounded)" : "");
            }
        }
    }

    machine_load(load_end, sizeof(load_end));
    printf("| mode | op | ops/s | p50 µs | p99 µs | × RocksDB default | × RocksDB tuned | × Redis, "
           "same depth |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int get = 0; get <= 1; get++)
        for (int i = 0; i < n_modes; i++)
            if (get || (modes[i].kind != M_LOCAL && modes[i].kind != M_LOCAL_REF))
                print_row(&modes[i], get);
    printf("\n%" PRIu32 " keys × %zu B, %" PRIu32 " random ops per phase (at most %.0f s), "
           "median of %d repetition%s.\n",
           cfg.keys, cfg.vlen, cfg.ops, cfg.seconds, cfg.reps, cfg.reps == 1 ? "" : "s");
    printf("Machine: %s at the first phase, %s at the last.\n", load_start, load_end);

    for (int i = 0; i < MAX_DEPTHS; i++)
        statesrv_async_close(asyncs[i]);
    statesrv_close(blocking);
    statesrv_local_close(local);
    if (redis)
        redisFree(redis);
    for (int t = 0; t < 2; t++)
        if (rdbs[t].db)
            rdb_close(&rdbs[t]);
    free(p.lat_ns);
    return 0; /* cleanup() stops the server */
}
