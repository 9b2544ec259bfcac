#include "metrics.h"
#include "checkpoint.h"
#include "server.h"
#include "sv_arena.h"
#include "sv_buf.h"
#include "sv_error.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_utf8.h"

#include <dirent.h>
#include <errno.h>
#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Upper bounds of the latency buckets, in microseconds (le="2e-06" ...):
 * 1-2.5-5 steps from 2 us, where a loopback get on one connection lands,
 * to 10 s, where a snapshot of millions of entries does. An estimate from
 * them is within a factor of 2.5 of the true quantile. */
static const uint64_t lat_bounds_us[SV_LAT_BUCKETS] = {
    2,     5,     10,    25,     50,     100,    250,     500,     1000,    2500,     5000,
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    uv_write_t write;
    struct sv_metrics *m;
    struct http_conn *prev, *next;
    size_t nread;
    char url[256];
    size_t url_len;
    int url_too_long;
    int answered;
    int open_handles; /* freed when both are closed */
    struct sv_buf resp;
    char rbuf[2048];
};

struct sv_metrics {
    struct sv_server *srv;
    uv_tcp_t listener;
    int listening;
    struct http_conn *conns;
    unsigned nconns;
    http_parser_settings settings;
};

/* --- counters -------------------------------------------------------------- */

void sv_metrics_observe_n(struct sv_server *srv, unsigned op_slot, uint64_t t0_ns, uint64_t n)
{
    if (op_slot >= SV_OP_SLOTS)
        return;
    uint64_t ns = uv_hrtime() - t0_ns;
    struct sv_op_latency *l = &srv->lat[op_slot];
    uint64_t us = ns / 1000;
    for (int i = 0; i < SV_LAT_BUCKETS; i++) {
        if (us <= lat_bounds_us[i]) {
            l->buckets[i] += n;
            break;
        }
    }
    l->count += n;
    l->sum_ns += ns * n;
}

void sv_metrics_count_status(struct sv_server *srv, unsigned op_slot, enum sv_status status)
{
    struct sv_op_counter *o = &srv->ops[op_slot < SV_OP_SLOTS ? op_slot : 0];
    if ((unsigned)status < SV_STATUS_SLOTS)
        o->by_status[status]++;
    if (status != SV_STATUS_OK && status != SV_STATUS_NOT_FOUND)
        o->errors++;
}

void sv_metrics_observe(struct sv_server *srv, unsigned op_slot, uint64_t t0_ns)
{
    sv_metrics_observe_n(srv, op_slot, t0_ns, 1);
}

struct stats_states {
    ProtobufCAllocator *alloc;
    Statesrv__V1__StateInfo **items;
    size_t n, cap;
};

static int collect_state(void *ud, const struct sv_state_stat *st)
{
    struct stats_states *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        Statesrv__V1__StateInfo **items =
            l->alloc->alloc(l->alloc->allocator_data, sizeof(*items) * cap);
        if (!items)
            return -ENOMEM;
        if (l->n)
            memcpy(items, l->items, sizeof(*items) * l->n);
        l->items = items;
        l->cap = cap;
    }
    Statesrv__V1__StateInfo *si = l->alloc->alloc(l->alloc->allocator_data, sizeof(*si));
    char *name = l->alloc->alloc(l->alloc->allocator_data, strlen(st->name) + 1);
    if (!si || !name)
        return -ENOMEM;
    statesrv__v1__state_info__init(si);
    si->name = strcpy(name, st->name);
    si->entries = st->entries;
    si->bytes = st->bytes;
    if (st->ttl.ttl_ms) {
        Statesrv__V1__TtlConfig *c = l->alloc->alloc(l->alloc->allocator_data, sizeof(*c));
        if (!c)
            return -ENOMEM;
        statesrv__v1__ttl_config__init(c);
        c->ttl_ms = st->ttl.ttl_ms;
        c->update = (Statesrv__V1__TtlUpdate)st->ttl.update;
        c->visibility = (Statesrv__V1__TtlVisibility)st->ttl.visibility;
        si->ttl = c;
    }
    l->items[l->n++] = si;
    return 0;
}

int sv_stats_states(struct sv_server *srv, ProtobufCAllocator *alloc,
                    Statesrv__V1__StateInfo ***items, size_t *n)
{
    struct stats_states l = {.alloc = alloc};
    int own_txn = !sv_store_in_txn(srv->store);
    int rc = own_txn ? sv_store_begin(srv->store) : 0;
    if (rc)
        return rc;
    rc = sv_store_list_states(srv->store, collect_state, &l);
    if (own_txn)
        sv_store_abort(srv->store);
    *items = l.items;
    *n = l.n;
    return rc;
}

/* Names of the connection-level failures (statesrv_errors_total{kind}). */
static const char *const cerr_kinds[SV_CERR_COUNT] = {
    [SV_CERR_PROTOCOL] = "protocol",
    [SV_CERR_IDLE_TIMEOUT] = "idle_timeout",
    [SV_CERR_HEADER_TIMEOUT] = "header_timeout",
    [SV_CERR_OUTPUT_TIMEOUT] = "output_timeout",
    [SV_CERR_ACCEPT] = "accept",
    [SV_CERR_AUTH_TIMEOUT] = "auth_timeout",
    [SV_CERR_DRAIN_TIMEOUT] = "drain_timeout",
    [SV_CERR_PREAUTH_EVICTED] = "preauth_evicted",
};

static void *pb_alloc(ProtobufCAllocator *alloc, size_t n)
{
    return alloc->alloc(alloc->allocator_data, n);
}

/* One op's statuses (the non-zero ones) and latency histogram. */
static int fill_op(struct sv_server *srv, ProtobufCAllocator *alloc, unsigned slot,
                   Statesrv__V1__OpStats *o)
{
    const struct sv_op_counter *c = &srv->ops[slot];
    const struct sv_op_latency *l = &srv->lat[slot];
    o->count = c->count;
    o->errors = c->errors;
    size_t n = 0;
    for (int s = 0; s < SV_STATUS_SLOTS; s++)
        n += c->by_status[s] != 0;
    if (n) {
        o->statuses = pb_alloc(alloc, sizeof(*o->statuses) * n);
        Statesrv__V1__StatusCount *sc = pb_alloc(alloc, sizeof(*sc) * n);
        if (!o->statuses || !sc)
            return -ENOMEM;
        for (int s = 0; s < SV_STATUS_SLOTS; s++) {
            if (!c->by_status[s])
                continue;
            statesrv__v1__status_count__init(sc);
            sc->status = (Statesrv__V1__Status)s;
            sc->count = c->by_status[s];
            o->statuses[o->n_statuses++] = sc++;
        }
    }
    o->latency_count = l->count;
    o->latency_sum_ns = l->sum_ns;
    if (l->count) {
        /* The buckets, and beyond the last bound what the buckets miss. */
        o->latency_buckets = pb_alloc(alloc, sizeof(*o->latency_buckets) * (SV_LAT_BUCKETS + 1));
        if (!o->latency_buckets)
            return -ENOMEM;
        uint64_t in_bounds = 0;
        for (int k = 0; k < SV_LAT_BUCKETS; k++) {
            o->latency_buckets[k] = l->buckets[k];
            in_bounds += l->buckets[k];
        }
        o->latency_buckets[SV_LAT_BUCKETS] = l->count - in_bounds;
        o->n_latency_buckets = SV_LAT_BUCKETS + 1;
    }
    return 0;
}

/* statesrv_errors_total{kind}: requests by error status (kind: the status
 * name in lower case) and connection-level failures. */
static int fill_errors(struct sv_server *srv, ProtobufCAllocator *alloc,
                       Statesrv__V1__StatsResult *r)
{
    r->status_errors = pb_alloc(alloc, sizeof(*r->status_errors) * SV_STATUS_SLOTS);
    r->connection_errors = pb_alloc(alloc, sizeof(*r->connection_errors) * SV_CERR_COUNT);
    Statesrv__V1__ErrorCount *ev = pb_alloc(alloc, sizeof(*ev) * (SV_STATUS_SLOTS + SV_CERR_COUNT));
    if (!r->status_errors || !r->connection_errors || !ev)
        return -ENOMEM;
    for (int s = SV_STATUS_INVALID_ARGUMENT; s < SV_STATUS_SLOTS;
         s++) { /* OK, NOT_FOUND: answers */
        const char *name = sv_status_name(s);
        if (strcmp(name, "UNKNOWN") == 0)
            continue;
        size_t len = strlen(name);
        char *kind = pb_alloc(alloc, len + 1);
        if (!kind)
            return -ENOMEM;
        for (size_t k = 0; k <= len; k++)
            kind[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + ('a' - 'A') : name[k]);
        statesrv__v1__error_count__init(ev);
        ev->kind = kind;
        for (unsigned i = 0; i < SV_OP_SLOTS; i++)
            ev->count += srv->ops[i].by_status[s];
        r->status_errors[r->n_status_errors++] = ev++;
    }
    for (int k = 0; k < SV_CERR_COUNT; k++) {
        statesrv__v1__error_count__init(ev);
        ev->kind = (char *)cerr_kinds[k];
        ev->count = srv->conn_errors[k];
        r->connection_errors[r->n_connection_errors++] = ev++;
    }
    return 0;
}

/* Everything the stats op answers and /metrics exposes is gathered here
 * once: sv_metrics_render() only formats this result. */
/* A copy of a path for a protobuf string (which must be UTF-8). */
static char *utf8_copy(ProtobufCAllocator *alloc, const char *s)
{
    char *d = pb_alloc(alloc, strlen(s) + 1);
    if (d) {
        strcpy(d, s);
        sv_utf8_scrub(d);
    }
    return d;
}

int sv_stats_fill(struct sv_server *srv, ProtobufCAllocator *alloc, Statesrv__V1__StatsResult *r)
{
    int rc = sv_stats_states(srv, alloc, &r->states, &r->n_states);
    if (rc)
        return rc;
    Statesrv__V1__OpStats **ops = pb_alloc(alloc, sizeof(*ops) * SV_OP_SLOTS);
    Statesrv__V1__OpStats *opv = pb_alloc(alloc, sizeof(*opv) * SV_OP_SLOTS);
    if (!ops || !opv)
        return -ENOMEM;
    size_t nops = 0;
    for (unsigned i = 0; i < SV_OP_SLOTS; i++) {
        const char *name = sv_op_name(i);
        if (strcmp(name, "unknown") == 0)
            continue;
        statesrv__v1__op_stats__init(&opv[nops]);
        opv[nops].op = (char *)name;
        if ((rc = fill_op(srv, alloc, i, &opv[nops])))
            return rc;
        ops[nops] = &opv[nops];
        nops++;
    }
    r->server_version = SV_VERSION;
    r->uptime_seconds = (sv_now_ms() - srv->started_ms) / 1000;
    const struct sv_config *cfg = srv->cfg;
    sv_store_kg_range(srv->store, &r->kg_first, &r->kg_last);
    if (!(r->data_dir = utf8_copy(alloc, cfg->data_dir)) ||
        !(r->checkpoint_dir = utf8_copy(alloc, cfg->checkpoint_dir)) ||
        !(r->listen = utf8_copy(alloc, srv->tcp_bound[0] ? srv->tcp_bound : cfg->listen)) ||
        !(r->unix_socket = utf8_copy(alloc, cfg->unix_socket)) ||
        !(r->metrics_listen =
              utf8_copy(alloc, srv->metrics_bound[0] ? srv->metrics_bound : cfg->metrics_listen)) ||
        !(r->config_file = utf8_copy(alloc, cfg->config_file)))
        return -ENOMEM;
    r->sync = cfg->sync == SV_SYNC_ALWAYS ? "always" : "none";
    r->connections_current = srv->nconns;
    r->connections_total = srv->connections_total;
    r->connections_rejected = srv->connections_rejected;
    r->n_ops = nops;
    r->ops = ops;
    r->latency_bounds_us = (uint64_t *)lat_bounds_us; /* read only, by pack and render */
    r->n_latency_bounds_us = SV_LAT_BUCKETS;
    if ((rc = fill_errors(srv, alloc, r)))
        return rc;
    sv_store_usage(srv->store, &r->map_size, &r->map_used);
    /* The free-page census reads the last commit in a read transaction of
     * its own: beside the group transaction when the stats op runs inside
     * one (LMDB allows a read transaction next to the write transaction),
     * alone for a scrape. Either way the figures are the committed ones. */
    struct sv_store_space sp;
    if ((rc = sv_store_space(srv->store, &sp)))
        return rc;
    r->map_in_use = sp.used;
    r->map_limit = sp.limit;
    r->map_free_pinned = sp.free_pinned;
    r->key_groups = sv_store_key_groups(srv->store);
    r->commits = srv->commits;
    r->bytes_in = srv->bytes_in;
    r->bytes_out = srv->bytes_out;
    sv_checkpoints_stats(srv->ckpt, alloc, r);
    r->checkpoint_failures = sv_checkpoints_failures(srv->ckpt);
    if (r->last_checkpoint_unix_ms) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
        r->last_checkpoint_age_ms =
            now_ms > r->last_checkpoint_unix_ms ? now_ms - r->last_checkpoint_unix_ms : 0;
    }
    return 0;
}

/* --- exposition ------------------------------------------------------------ */

struct out {
    struct sv_buf *b;
    int err;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    if (o->err)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || sv_buf_append(o->b, line, (size_t)n))
        o->err = -ENOMEM;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
    family(o, name, "gauge", help);
    put(o, "%s %.15g\n", name, v);
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void counter_f(struct out *o, const char *name, const char *help, double v)
{
    family(o, name, "counter", help);
    put(o, "%s %.9g\n", name, v);
}

/* Open descriptors of this process, by /proc/self/fd; -1 if unknown. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The process_* metrics of the Prometheus client conventions. */
static void put_process(struct out *o, const struct sv_server *srv)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        counter_f(o, "process_cpu_seconds_total", "User and system CPU time spent in seconds.",
                  (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long vm, rss;
    if (f && fscanf(f, "%lu %lu", &vm, &rss) == 2 && page > 0) {
        gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
              (double)rss * (double)page);
        gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
              (double)vm * (double)page);
    }
    if (f)
        fclose(f);
    long fds = open_fds();
    if (fds >= 0)
        gauge(o, "process_open_fds", "Number of open file descriptors.", (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(o, "process_max_fds", "Maximum number of open file descriptors.",
              (double)rl.rlim_cur);
    /* Taken once at start: a restart alert on changes() must not fire on
     * clock jitter. */
    gauge(o, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          srv->started_unix_s);
}

/* State names are [A-Za-z0-9_.-]: nothing to escape in a label value. */
int sv_metrics_render(struct sv_server *srv, struct sv_buf *b)
{
    struct sv_arena arena;
    sv_arena_init(&arena, 16 * 1024);
    Statesrv__V1__StatsResult st = STATESRV__V1__STATS_RESULT__INIT;
    int rc = sv_stats_fill(srv, &arena.pb, &st);
    if (rc) {
        sv_arena_free(&arena);
        return rc;
    }
    struct out o = {.b = b};

    family(&o, "statesrv_build_info", "gauge", "Version of this statesrvd.");
    put(&o, "statesrv_build_info{version=\"%s\"} 1\n", SV_VERSION);
    gauge(&o, "statesrv_uptime_seconds", "Seconds since statesrvd started.",
          (double)(sv_now_ms() - srv->started_ms) / 1000.0);

    family(&o, "statesrv_requests_total", "counter", "Requests answered, by op and status.");
    for (size_t i = 0; i < st.n_ops; i++) {
        const Statesrv__V1__OpStats *op = st.ops[i];
        /* OK always has a sample; the others once they happened. */
        uint64_t ok = op->n_statuses && op->statuses[0]->status == STATESRV__V1__STATUS__OK
                          ? op->statuses[0]->count
                          : 0;
        put(&o, "statesrv_requests_total{op=\"%s\",status=\"OK\"} %llu\n", op->op,
            (unsigned long long)ok);
        for (size_t k = 0; k < op->n_statuses; k++) {
            if (op->statuses[k]->status != STATESRV__V1__STATUS__OK)
                put(&o, "statesrv_requests_total{op=\"%s\",status=\"%s\"} %llu\n", op->op,
                    sv_status_name((int)op->statuses[k]->status),
                    (unsigned long long)op->statuses[k]->count);
        }
    }

    family(&o, "statesrv_request_duration_seconds", "histogram",
           "Time from the start of the group commit that decoded a request until its reply "
           "was ready (after the commit); for snapshot and restore, until the job ended.");
    for (size_t i = 0; i < st.n_ops; i++) {
        const Statesrv__V1__OpStats *op = st.ops[i];
        if (!op->latency_count)
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k < st.n_latency_bounds_us && k < op->n_latency_buckets; k++) {
            cum += op->latency_buckets[k];
            put(&o, "statesrv_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n", op->op,
                (double)st.latency_bounds_us[k] / 1e6, (unsigned long long)cum);
        }
        put(&o, "statesrv_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n", op->op,
            (unsigned long long)op->latency_count);
        put(&o, "statesrv_request_duration_seconds_sum{op=\"%s\"} %.9f\n", op->op,
            (double)op->latency_sum_ns / 1e9);
        put(&o, "statesrv_request_duration_seconds_count{op=\"%s\"} %llu\n", op->op,
            (unsigned long long)op->latency_count);
    }

    counter(&o, "statesrv_bytes_received_total", "Bytes read from clients.", srv->bytes_in);
    counter(&o, "statesrv_bytes_sent_total", "Bytes written to clients.", srv->bytes_out);
    gauge(&o, "statesrv_connections", "Open client connections.", (double)srv->nconns);
    counter(&o, "statesrv_connections_total", "Client connections accepted.",
            srv->connections_total);
    counter(&o, "statesrv_connections_rejected_total",
            "Connections refused because max_connections was reached.", srv->connections_rejected);

    family(&o, "statesrv_errors_total", "counter",
           "Requests answered with an error status, and connection-level failures, by kind.");
    for (size_t i = 0; i < st.n_status_errors; i++)
        put(&o, "statesrv_errors_total{kind=\"%s\"} %llu\n", st.status_errors[i]->kind,
            (unsigned long long)st.status_errors[i]->count);
    for (size_t i = 0; i < st.n_connection_errors; i++)
        put(&o, "statesrv_errors_total{kind=\"%s\"} %llu\n", st.connection_errors[i]->kind,
            (unsigned long long)st.connection_errors[i]->count);

    counter(&o, "statesrv_commits_total", "LMDB write transactions committed.", st.commits);

    family(&o, "statesrv_state_entries", "gauge", "Entries in each state.");
    for (size_t i = 0; i < st.n_states; i++)
        put(&o, "statesrv_state_entries{state=\"%s\"} %llu\n", st.states[i]->name,
            (unsigned long long)st.states[i]->entries);
    family(&o, "statesrv_state_bytes", "gauge", "Bytes of store pages each state occupies.");
    for (size_t i = 0; i < st.n_states; i++)
        put(&o, "statesrv_state_bytes{state=\"%s\"} %llu\n", st.states[i]->name,
            (unsigned long long)st.states[i]->bytes);

    gauge(&o, "statesrv_lmdb_map_size_bytes", "Current LMDB map size.", (double)st.map_size);
    gauge(&o, "statesrv_lmdb_map_used_bytes",
          "High-water mark of the LMDB map: bytes up to the last page ever written (deletes do "
          "not lower it).",
          (double)st.map_used);
    gauge(&o, "statesrv_lmdb_map_in_use_bytes",
          "LMDB map in use: the high-water mark less the freed pages the next write can reuse.",
          (double)st.map_in_use);
    gauge(&o, "statesrv_lmdb_map_limit_bytes",
          "Puts and merges get NO_SPACE once the map in use would pass this: map_size_max less "
          "the reserve kept for deletes.",
          (double)st.map_limit);
    gauge(&o, "statesrv_lmdb_map_free_pinned_bytes",
          "Freed pages a read transaction (a checkpoint being written) keeps from reuse; counted "
          "in use.",
          (double)st.map_free_pinned);
    gauge(&o, "statesrv_key_groups", "Key groups of this store.", (double)st.key_groups);

    counter(&o, "statesrv_checkpoints_total", "Checkpoints completed since start.",
            st.checkpoints_completed);
    counter(&o, "statesrv_checkpoint_failures_total", "Snapshots that failed since start.",
            st.checkpoint_failures);
    gauge(&o, "statesrv_checkpoint_in_progress", "1 while a snapshot or restore runs.",
          st.checkpoint_in_progress ? 1 : 0);
    gauge(&o, "statesrv_last_checkpoint_id", "Id of the last checkpoint completed.",
          (double)st.last_checkpoint_id);
    gauge(&o, "statesrv_last_checkpoint_bytes", "Data file size of the last checkpoint.",
          (double)st.last_checkpoint_bytes);
    gauge(&o, "statesrv_last_checkpoint_duration_seconds", "How long the last checkpoint took.",
          (double)st.last_checkpoint_duration_ms / 1000.0);
    gauge(&o, "statesrv_last_checkpoint_timestamp_seconds",
          "Unix time the last checkpoint completed (0: none yet).",
          (double)st.last_checkpoint_unix_ms / 1000.0);
    if (st.last_checkpoint_unix_ms)
        gauge(&o, "statesrv_last_checkpoint_age_seconds",
              "Seconds since the last checkpoint completed.",
              (double)st.last_checkpoint_age_ms / 1000.0);
    counter(&o, "statesrv_restores_total", "Restores completed since start.",
            st.restores_completed);
    family(&o, "statesrv_ttl_expired_total", "counter",
           "Expired entries deleted since start, by clean-up (read, checkpoint, sweep).");
    put(&o, "statesrv_ttl_expired_total{cleanup=\"read\"} %llu\n",
        (unsigned long long)st.ttl_expired_read);
    put(&o, "statesrv_ttl_expired_total{cleanup=\"checkpoint\"} %llu\n",
        (unsigned long long)st.ttl_expired_checkpoint);
    put(&o, "statesrv_ttl_expired_total{cleanup=\"sweep\"} %llu\n",
        (unsigned long long)st.ttl_expired_sweep);
    counter_f(&o, "statesrv_ttl_sweep_seconds_total", "Time the TTL sweep ran since start.",
              st.ttl_sweep_seconds);
    counter(&o, "statesrv_ttl_sweep_visited_total", "Entries the TTL sweep looked at since start.",
            st.ttl_sweep_visited);
    gauge(&o, "statesrv_last_restore_duration_seconds", "How long the last restore took.",
          (double)st.last_restore_duration_ms / 1000.0);
    if (st.remote_enabled) {
        gauge(&o, "statesrv_checkpoint_remote_pending",
              "Local checkpoints not yet in the object store (waiting, retrying or uploading).",
              (double)st.remote_pending);
        gauge(&o, "statesrv_checkpoint_upload_lag_seconds",
              "Age of the oldest checkpoint not yet in the object store (0: none).",
              (double)st.remote_upload_lag_ms / 1000.0);
        counter(&o, "statesrv_checkpoint_uploads_total",
                "Checkpoints uploaded to the object store since start.",
                st.remote_uploads_completed);
        counter(&o, "statesrv_checkpoint_upload_failures_total",
                "Failed checkpoint upload attempts since start (each is retried).",
                st.remote_upload_failures);
        counter(&o, "statesrv_checkpoint_uploaded_bytes_total",
                "Bytes sent to the object store since start.", st.remote_bytes_uploaded);
        gauge(&o, "statesrv_last_remote_checkpoint_id",
              "Id of the newest checkpoint uploaded since start.",
              (double)st.last_remote_checkpoint_id);
    }
    put_process(&o, srv);
    sv_arena_free(&arena);
    return o.err;
}

/* --- HTTP ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    sv_buf_free(&c->resp);
    free(c);
}

static void http_close(struct http_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    struct sv_metrics *m = c->m;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nconns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    http_close(w->data);
}

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Queues the response and closes the connection once it is written. */
static void respond(struct http_conn *c, int code, const char *body, int head_only)
{
    if (c->answered)
        return;
    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    int rendered = code == 200 && !*body; /* /metrics: the body is already in resp */
    size_t blen = rendered ? c->resp.len : strlen(body);
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     code, reason(code),
                     rendered ? "text/plain; version=0.0.4; charset=utf-8"
                              : "text/plain; charset=utf-8",
                     blen, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    struct sv_buf *r = &c->resp;
    if (rendered) {
        /* Put the header in front of the rendered body. */
        if (sv_buf_reserve(r, (size_t)n)) {
            http_close(c);
            return;
        }
        memmove(r->data + n, r->data, r->len);
        memcpy(r->data, hdr, (size_t)n);
        r->len += (size_t)n;
        if (head_only)
            r->len = (size_t)n;
    } else {
        r->len = 0;
        if (sv_buf_append(r, hdr, (size_t)n) || (!head_only && sv_buf_append(r, body, blen))) {
            http_close(c);
            return;
        }
    }
    uv_buf_t buf = uv_buf_init((char *)r->data, (unsigned)r->len);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written))
        http_close(c);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->url_len + len >= sizeof(c->url)) {
        c->url_too_long = 1;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

/* Whether the server should not be sent traffic now, and why: a restore
 * is replacing the state (writes get BUSY), it is shutting down, or puts
 * have (next to) no room left in the map. */
static int not_ready(struct sv_server *srv, char *why, size_t cap)
{
    struct sv_store_space sp;
    if (srv->stopping)
        snprintf(why, cap, "not ready: shutting down\n");
    else if (sv_checkpoints_restoring(srv->ckpt))
        snprintf(why, cap, "not ready: a restore is replacing the state\n");
    else if (sv_store_space(srv->store, &sp) == 0 && sp.used + 64 * sp.page_size > sp.limit)
        snprintf(why, cap,
                 "not ready: the store is full (%llu of %llu MiB in use): delete entries or "
                 "raise map_size_max\n",
                 (unsigned long long)(sp.used >> 20), (unsigned long long)(sp.limit >> 20));
    else
        return 0;
    return 1;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct sv_metrics *m = c->m;
    int head = p->method == HTTP_HEAD;
    /* Whatever follows this request is not read: pause the parser. */
    http_parser_pause(p, 1);
    if (c->url_too_long) {
        respond(c, 414, "request target too long\n", head);
        return 0;
    }
    size_t path_len = strcspn(c->url, "?#");
#define IS_PATH(lit) (path_len == strlen(lit) && memcmp(c->url, lit, path_len) == 0)
    int metrics = IS_PATH("/metrics"), health = IS_PATH("/healthz"), ready = IS_PATH("/readyz");
#undef IS_PATH
    if (!metrics && !health && !ready) {
        respond(c, 404, "not found: statesrvd serves /metrics, /healthz and /readyz\n", head);
        return 0;
    }
    if (p->method != HTTP_GET && !head) {
        respond(c, 405, "method not allowed: use GET\n", 0);
        return 0;
    }
    if (health) {
        /* Answered by the event loop itself: a loop that answers is alive. */
        respond(c, 200, "ok\n", head);
        return 0;
    }
    if (ready) {
        char why[160];
        if (not_ready(m->srv, why, sizeof(why)))
            respond(c, 503, why, head);
        else
            respond(c, 200, "ready\n", head);
        return 0;
    }
    c->resp.len = 0;
    int rc = sv_metrics_render(m->srv, &c->resp);
    if (rc) {
        sv_warn_limited("metrics: cannot render: %s", sv_strerror(rc));
        c->resp.len = 0;
        respond(c, 500, "cannot render the metrics\n", head);
        return 0;
    }
    respond(c, 200, "", head);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct http_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    if (nread < 0) {
        http_close(c);
        return;
    }
    if (nread == 0 || c->answered)
        return;
    c->nread += (size_t)nread;
    if (c->nread > SV_METRICS_MAX_REQUEST) {
        respond(c, 431, "request too large\n", 0);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &c->m->settings, buf->base, (size_t)nread);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->answered)
        return;
    if (e != HPE_OK || done != (size_t)nread) {
        char msg[128];
        snprintf(msg, sizeof(msg), "bad request: %s\n", http_errno_description(e));
        respond(c, 400, msg, 0);
    }
}

static void on_timeout(uv_timer_t *t)
{
    http_close(t->data);
}

static void on_dropped_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct sv_metrics *m = listener->data;
    if (status < 0) {
        sv_warn_limited("metrics: accept on %s failed: %s", m->srv->cfg->metrics_listen,
                        uv_strerror(status));
        return;
    }
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        /* Accept and drop it: a listener whose connection is never
         * accepted stops listening (libuv). */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t && uv_tcp_init(listener->loop, t) == 0) {
            uv_accept(listener, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, on_dropped_closed);
        } else {
            free(t);
        }
        return;
    }
    c->m = m;
    uv_tcp_init(listener->loop, &c->tcp);
    uv_timer_init(listener->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) || m->nconns > SV_METRICS_MAX_CONNS) {
        http_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout, SV_METRICS_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
        http_close(c);
}

int sv_metrics_start(struct sv_server *srv, char *err, size_t errlen)
{
    const char *addr = srv->cfg->metrics_listen;
    if (!addr[0])
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = sv_server_parse_listen(addr, &ss, err, errlen);
    if (rc)
        return rc;
    struct sv_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    m->srv = srv;
    http_parser_settings_init(&m->settings);
    m->settings.on_url = on_url;
    m->settings.on_message_complete = on_message_complete;
    srv->metrics = m;
    uv_tcp_init(srv->loop, &m->listener);
    m->listener.data = m;
    m->listening = 1;
    if ((rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0)) ||
        (rc = uv_listen((uv_stream_t *)&m->listener, 64, on_connection))) {
        snprintf(err, errlen, "cannot listen for metrics on %s: %s", addr, uv_strerror(rc));
        return rc;
    }
    char name[64] = "?";
    int port = 0;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound, &len) == 0)
        sv_server_addr_name(&bound, name, sizeof(name), &port);
    snprintf(srv->metrics_bound, sizeof(srv->metrics_bound), "%s:%d", name, port);
    sv_info("metrics on http://%s:%d/metrics%s", name, port,
            sv_server_is_loopback(&ss) ? ""
                                       : " (not loopback: anyone who can reach it reads state "
                                         "names and sizes)");
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

void sv_metrics_stop(struct sv_server *srv)
{
    struct sv_metrics *m = srv->metrics;
    if (!m)
        return;
    srv->metrics = NULL;
    while (m->conns)
        http_close(m->conns);
    if (m->listening)
        uv_close((uv_handle_t *)&m->listener, on_listener_closed);
    else
        free(m);
}
