/* statesrv-bench: a load generator for statesrvd, in the manner of
 * redis-benchmark, speaking the wire protocol directly (docs/protocol.md).
 *
 * Every connection sends hello first, then batches of -P requests: a batch
 * is written in one go, and the next one goes out when every reply of the
 * previous one has come back (redis-benchmark's pipelining). Latency is the
 * time from writing a batch to reading each reply, recorded in a
 * constant-memory log-linear histogram.
 *
 * Every reply is checked: its id must be the next one owed on that
 * connection, its status OK and its result the one the op returns. Anything
 * else is counted as an error (never as throughput) and makes the exit
 * status nonzero.
 *
 * The client has to stay cheap, since it shares the machine with the server:
 * requests are encoded by hand into a per-connection buffer that is reused
 * (protobuf wire format; checked against protobuf-c at start-up), and replies
 * are walked in place in the frame reader without unpacking. Nothing is
 * allocated per request.
 *
 * By default one thread runs one libuv loop; --threads T splits the
 * connections over T loops. */
#include "statesrv.h"
#include "statesrv.pb-c.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_keys.h"
#include "sv_msg.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define KEY_LEN 16 /* "key:%012d", as redis-benchmark's -r keys */
#define STATE_NAME_MAX 32
#define READ_MIN (16u * 1024)
#define HELLO_MAX_FRAME (1u << 20)
#define MAX_CONNS 10000
#define MAX_PIPELINE 100000
#define MAX_THREADS 64
#define MAX_VALUE (16u * 1024 * 1024)

/* Test kinds. */
enum op { OP_GET, OP_PUT, OP_MERGE, OP_MIXED, OP_MAX };
static const char *const op_names[OP_MAX] = {"get", "put", "merge", "mixed"};

/* Result field numbers of Response (statesrv.proto). */
#define RESULT_GET 6
#define RESULT_PUT 8
#define RESULT_MERGE 10
/* Request field numbers. */
#define REQ_GET 4
#define REQ_PUT 6
#define REQ_MERGE 8

/* --- options --------------------------------------------------------------- */

struct opts {
    const char *addr;
    unsigned conns;
    unsigned pipeline;
    unsigned long long requests; /* 0 with a duration: unlimited */
    double duration;             /* seconds; 0: run -n requests */
    double warmup;
    unsigned value_size;
    unsigned long long keyspace;
    enum op tests[8];
    unsigned ntests;
    double read_ratio;
    unsigned states;
    unsigned threads;
    int sequential;
    int allow_missing;
    int json;
    int resp_out;
    unsigned long long key_offset;
    uint64_t seed;
    char token[1024];
    const char *client_name;
};

static struct opts o;

/* --- histogram --------------------------------------------------------------
 * Values in nanoseconds. Below 2^SUB_BITS+1 each value has its own bucket;
 * above, every power of two is split into 2^SUB_BITS buckets, so a bucket is
 * at most 1/128 of its value wide (HDR histogram's log-linear layout). */

#define SUB_BITS 7
#define SUB_COUNT (1u << SUB_BITS)
#define HIST_MAX_EXP 47 /* values up to 2^48 ns (~3 days) */
#define HIST_BUCKETS (2 * SUB_COUNT + (HIST_MAX_EXP - SUB_BITS) * SUB_COUNT)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n, max, min;
    double sum;
};

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * SUB_COUNT)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS + 1 */
    if (e > HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB_COUNT - 1);
    return 2 * SUB_COUNT + (e - SUB_BITS - 1) * SUB_COUNT + sub;
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
    if (i < 2 * SUB_COUNT)
        return i;
    unsigned e = (i - 2 * SUB_COUNT) / SUB_COUNT + SUB_BITS + 1;
    unsigned sub = (i - 2 * SUB_COUNT) % SUB_COUNT;
    double width = ldexp(1.0, (int)(e - SUB_BITS));
    return ldexp(1.0, (int)e) + sub * width + width / 2;
}

static void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

static void hist_merge(struct hist *d, const struct hist *s)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        d->counts[i] += s->counts[i];
    d->n += s->n;
    d->sum += s->sum;
    if (s->max > d->max)
        d->max = s->max;
    if (s->min < d->min)
        d->min = s->min;
}

/* The value at quantile q (0..1), in nanoseconds; never above the max. */
static double hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* --- request encoding ------------------------------------------------------ */

static void format_key(uint8_t *p, uint64_t k)
{
    memcpy(p, "key:", 4);
    for (int i = 15; i >= 4; i--) {
        p[i] = (uint8_t)('0' + k % 10);
        k /= 10;
    }
}

static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* The value written for key k: -d letters and digits from a generator seeded
 * by the key, so different keys have different values (a checkpoint cannot
 * compress them away) and --resp-out writes exactly what statesrvd gets. */
static void fill_value(uint8_t *p, size_t n, uint64_t k)
{
    uint64_t x = (k + 1) * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t r = x;
        for (size_t b = 0; b < 8 && i + b < n; b++) {
            p[i + b] = (uint8_t)alnum[(r & 0xff) % 62];
            r >>= 8;
        }
    }
}

/* State names: "bench<i>" hold values (get/put), "counter<i>" counters (merge). */
static void state_name(char *out, int counter, unsigned i)
{
    snprintf(out, STATE_NAME_MAX, "%s%u", counter ? "counter" : "bench", i);
}

/* Precomputed state name fields (tag, length, name) per state. */
struct state_field {
    uint8_t bytes[STATE_NAME_MAX + 2];
    uint8_t len;
};
static struct state_field *value_states, *counter_states;

static void make_state_fields(void)
{
    value_states = calloc(o.states, sizeof(*value_states));
    counter_states = calloc(o.states, sizeof(*counter_states));
    if (!value_states || !counter_states) {
        fprintf(stderr, "statesrv-bench: out of memory\n");
        exit(2);
    }
    for (unsigned i = 0; i < o.states; i++) {
        for (int c = 0; c < 2; c++) {
            struct state_field *f = c ? &counter_states[i] : &value_states[i];
            char name[STATE_NAME_MAX];
            state_name(name, c, i);
            size_t n = strlen(name);
            f->bytes[0] = 0x0a; /* field 1, length-delimited */
            f->bytes[1] = (uint8_t)n;
            memcpy(f->bytes + 2, name, n);
            f->len = (uint8_t)(n + 2);
        }
    }
}

/* Largest request frame for any op. */
static size_t max_request_size(void)
{
    size_t sub =
        (STATE_NAME_MAX + 2) + (2 + KEY_LEN) + 1 + sv_varint_size(o.value_size) + o.value_size + 16;
    return SV_FRAME_HEADER_SIZE + 1 + 10 + 1 + sv_varint_size(sub) + sub;
}

/* Encodes one request frame at p; returns its size. */
static size_t encode_request(uint8_t *p, enum op op, uint64_t id, uint64_t key)
{
    unsigned st = (unsigned)(key % o.states);
    const struct state_field *sf = op == OP_MERGE ? &counter_states[st] : &value_states[st];
    size_t sub = sf->len + 2 + KEY_LEN;
    size_t vlen_len = 0;
    if (op == OP_PUT) {
        vlen_len = sv_varint_size(o.value_size);
        sub += 1 + vlen_len + o.value_size;
    } else if (op == OP_MERGE) {
        sub += 2 + 2 + 8; /* op = ADD_I64, operand = 8 bytes */
    }
    size_t n = SV_FRAME_HEADER_SIZE;
    p[n++] = 0x08; /* Request.id */
    n += sv_varint_put(p + n, id);
    unsigned field = op == OP_GET ? REQ_GET : op == OP_PUT ? REQ_PUT : REQ_MERGE;
    p[n++] = (uint8_t)(field << 3 | 2);
    n += sv_varint_put(p + n, sub);
    memcpy(p + n, sf->bytes, sf->len);
    n += sf->len;
    p[n++] = 0x12; /* key */
    p[n++] = KEY_LEN;
    format_key(p + n, key);
    n += KEY_LEN;
    if (op == OP_PUT) {
        p[n++] = 0x2a; /* Put.value, field 5 */
        n += sv_varint_put(p + n, o.value_size);
        fill_value(p + n, o.value_size, key);
        n += o.value_size;
    } else if (op == OP_MERGE) {
        p[n++] = 0x28; /* Merge.op, field 5 */
        p[n++] = STATESRV__V1__MERGE_OP__ADD_I64;
        p[n++] = 0x32; /* Merge.operand, field 6 */
        p[n++] = 8;
        static const uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
        memcpy(p + n, one, 8);
        n += 8;
    }
    sv_frame_header_put(p, (uint32_t)(n - SV_FRAME_HEADER_SIZE));
    return n;
}

/* --- reply decoding ----------------------------------------------------------
 * Walks a Response in place: id, status, message and which result is set. */

struct reply {
    uint64_t id;
    uint64_t status;
    unsigned result; /* field number of the result, 0 if none */
    const uint8_t *msg;
    size_t msg_len;
};

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned s = 0; s < 64 && p < end; s += 7) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *pp = p;
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* 0, or -1 if the bytes are not a well-formed message. */
static int decode_reply(const uint8_t *p, size_t n, struct reply *r)
{
    const uint8_t *end = p + n;
    memset(r, 0, sizeof(*r));
    while (p < end) {
        uint64_t tag, v;
        if (get_varint(&p, end, &tag))
            return -1;
        unsigned field = (unsigned)(tag >> 3);
        switch (tag & 7) {
        case 0:
            if (get_varint(&p, end, &v))
                return -1;
            if (field == 1)
                r->id = v;
            else if (field == 2)
                r->status = v;
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2:
            if (get_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return -1;
            if (field == 3) {
                r->msg = p;
                r->msg_len = (size_t)v;
            } else if (field >= 4 && field <= 19) {
                r->result = field;
            }
            p += v;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* The hand encoder and decoder against protobuf-c, once at start-up: a
 * benchmark that sends the wrong bytes measures nothing. */
static void self_check(void)
{
    const char *why = NULL;
    uint8_t *buf = malloc(max_request_size());
    if (!buf)
        exit(2);
    for (int op = OP_GET; op <= OP_MERGE && !why; op++) {
        uint64_t key = 123456789012ull % (o.keyspace ? o.keyspace : 1);
        size_t n = encode_request(buf, (enum op)op, 300, key);
        Statesrv__V1__Request *q = NULL;
        if (sv_frame_header_get(buf) != n - SV_FRAME_HEADER_SIZE ||
            sv_msg_unpack_request(buf + SV_FRAME_HEADER_SIZE, n - SV_FRAME_HEADER_SIZE, NULL, &q)) {
            why = "request does not decode";
            break;
        }
        char kb[KEY_LEN + 1], st[STATE_NAME_MAX];
        snprintf(kb, sizeof(kb), "key:%012llu", (unsigned long long)key);
        state_name(st, op == OP_MERGE, (unsigned)(key % o.states));
        ProtobufCBinaryData sn = {0}, kk = {0};
        if (q->id != 300)
            why = "id";
        else if (op == OP_GET && q->op_case == STATESRV__V1__REQUEST__OP_GET)
            sn = q->get->state, kk = q->get->key;
        else if (op == OP_PUT && q->op_case == STATESRV__V1__REQUEST__OP_PUT) {
            sn = q->put->state, kk = q->put->key;
            if (q->put->value.len != o.value_size)
                why = "put value";
        } else if (op == OP_MERGE && q->op_case == STATESRV__V1__REQUEST__OP_MERGE) {
            sn = q->merge->state, kk = q->merge->key;
            if (q->merge->op != STATESRV__V1__MERGE_OP__ADD_I64 || q->merge->operand.len != 8)
                why = "merge operand";
        } else
            why = "op";
        if (!why && (sn.len != strlen(st) || memcmp(sn.data, st, sn.len) || kk.len != KEY_LEN ||
                     memcmp(kk.data, kb, KEY_LEN)))
            why = "state or key";
        statesrv__v1__request__free_unpacked(q, NULL);
    }
    if (!why) {
        Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
        Statesrv__V1__PutResult pr = STATESRV__V1__PUT_RESULT__INIT;
        r.id = 1ull << 40;
        r.status = STATESRV__V1__STATUS__BUSY;
        r.message = "busy now";
        r.result_case = STATESRV__V1__RESPONSE__RESULT_PUT;
        r.put = &pr;
        size_t n = statesrv__v1__response__pack(&r, buf);
        struct reply d;
        if (decode_reply(buf, n, &d) || d.id != r.id || d.status != 5 || d.result != RESULT_PUT ||
            d.msg_len != 8 || memcmp(d.msg, "busy now", 8))
            why = "reply decoder";
    }
    free(buf);
    if (why) {
        fprintf(stderr, "statesrv-bench: internal error: self-check failed (%s)\n", why);
        exit(2);
    }
}

/* --- connections and workers ------------------------------------------------ */

enum conn_state { C_CONNECTING, C_HELLO, C_IDLE, C_RUNNING, C_DONE, C_FAILED };

struct worker;

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t creq;
    uv_write_t wreq;
    struct worker *w;
    enum conn_state state;
    int inited;        /* the handle exists (close it) */
    int writing;       /* a uv_write is in flight */
    int send_deferred; /* the batch completed while writing */
    int measured;      /* the batch in flight counts */
    uint64_t next_id;  /* id of the next request */
    uint64_t expect_id;
    unsigned outstanding; /* replies owed for the batch in flight */
    uint64_t batch_first_id;
    uint64_t sent_ns;
    uint64_t rng;
    uint8_t *ops; /* op of each request of the batch in flight */
    uint8_t *obuf;
    size_t olen;
    struct sv_frame_reader in;
};

struct counts {
    uint64_t ok;
    uint64_t status[STATESRV__V1__STATUS__NO_SPACE + 2]; /* last: unknown statuses */
    uint64_t id_mismatch;
    uint64_t bad_reply; /* undecodable, or the wrong result for the op */
    uint64_t lost;      /* owed when a connection failed */
    uint64_t conn_failures;
};

struct worker {
    unsigned idx;
    uv_loop_t loop;
    struct conn *conns;
    unsigned nconns;
    unsigned pending_setup; /* connections not yet through hello */
    unsigned live;          /* connections still sending or owed replies */
    uv_timer_t t_warm, t_end;
    int timers_open;
    int measuring, stopping, setup_failed;
    enum op op;
    uint64_t t_measure, t_last;
    struct hist hist;
    struct counts cnt;
    char first_err[300];
    pthread_t th;
};

static struct sockaddr_storage target;
static int target_unix;
static uint8_t *hello_frame;
static size_t hello_len;
static uint32_t server_max_frame;
static char server_version[64];
static unsigned server_key_groups;

static atomic_llong remaining; /* requests still to hand out (-n), or -1 */
static atomic_ullong seq_next; /* --sequential: next key */
static atomic_int any_setup_failed;
static pthread_barrier_t barrier;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void note_error(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_error(struct worker *w, const char *fmt, ...)
{
    if (w->first_err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_err, sizeof(w->first_err), fmt, ap);
    va_end(ap);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void worker_finish(struct worker *w)
{
    if (w->timers_open) {
        uv_close((uv_handle_t *)&w->t_warm, on_closed);
        uv_close((uv_handle_t *)&w->t_end, on_closed);
        w->timers_open = 0;
    }
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing(&c->h.handle))
        uv_close(&c->h.handle, on_closed);
}

/* The connection has nothing more to do. */
static void conn_done(struct conn *c, enum conn_state st)
{
    struct worker *w = c->w;
    int was_running = c->state == C_RUNNING || c->state == C_IDLE;
    c->state = st;
    conn_close(c);
    if (was_running && --w->live == 0)
        worker_finish(w);
}

static void conn_fail(struct conn *c, const char *what)
{
    struct worker *w = c->w;
    if (c->state == C_DONE || c->state == C_FAILED)
        return;
    w->cnt.conn_failures++;
    w->cnt.lost += c->outstanding;
    note_error(w, "connection %u: %s", (unsigned)(c - w->conns), what);
    if (c->state == C_CONNECTING || c->state == C_HELLO) {
        c->state = C_FAILED;
        conn_close(c);
        w->setup_failed = 1;
        if (--w->pending_setup == 0)
            uv_stop(&w->loop);
        return;
    }
    conn_done(c, C_FAILED);
}

static void on_write(uv_write_t *req, int status);

/* Takes up to `want` requests from the shared budget; 0 when the run is
 * over. *base gets the first key of a --sequential run. */
static unsigned claim(struct worker *w, unsigned want, uint64_t *base)
{
    if (w->stopping)
        return 0;
    if (w->measuring || o.sequential) {
        long long r = atomic_load(&remaining);
        if (r >= 0) {
            long long take;
            do {
                if (r == 0)
                    return 0;
                take = r < (long long)want ? r : (long long)want;
            } while (!atomic_compare_exchange_weak(&remaining, &r, r - take));
            want = (unsigned)take;
        }
    }
    if (o.sequential)
        *base = atomic_fetch_add(&seq_next, want);
    return want;
}

static void send_batch(struct conn *c)
{
    struct worker *w = c->w;
    if (c->writing) {
        c->send_deferred = 1;
        return;
    }
    uint64_t base = 0;
    unsigned k = claim(w, o.pipeline, &base);
    if (k == 0) {
        conn_done(c, C_DONE);
        return;
    }
    size_t n = 0;
    c->batch_first_id = c->next_id;
    for (unsigned i = 0; i < k; i++) {
        enum op op = w->op;
        if (op == OP_MIXED)
            op = (double)(xorshift(&c->rng) >> 11) * 0x1.0p-53 < o.read_ratio ? OP_GET : OP_PUT;
        uint64_t key;
        if (o.sequential)
            key = base + i;
        else
            key = o.keyspace ? xorshift(&c->rng) % o.keyspace : 0;
        key += o.key_offset;
        c->ops[i] = (uint8_t)op;
        n += encode_request(c->obuf + n, op, c->next_id++, key);
    }
    c->olen = n;
    c->outstanding = k;
    c->expect_id = c->batch_first_id;
    c->measured = w->measuring;
    c->state = C_RUNNING;
    c->sent_ns = uv_hrtime();
    uv_buf_t b = uv_buf_init((char *)c->obuf, (unsigned)n);
    int rc = uv_try_write(&c->h.stream, &b, 1);
    if (rc == (int)n)
        return;
    if (rc < 0 && rc != UV_EAGAIN) {
        conn_fail(c, uv_strerror(rc));
        return;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    b = uv_buf_init((char *)c->obuf + done, (unsigned)(n - done));
    c->wreq.data = c;
    rc = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write);
    if (rc) {
        conn_fail(c, uv_strerror(rc));
        return;
    }
    c->writing = 1;
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = 0;
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_fail(c, uv_strerror(status));
        return;
    }
    if (c->send_deferred && c->state == C_RUNNING) {
        c->send_deferred = 0;
        send_batch(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    uint8_t *p;
    size_t avail;
    (void)suggested;
    if (sv_frame_reader_space(&c->in, READ_MIN, &p, &avail)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(avail > (1u << 30) ? (1u << 30) : avail));
}

static void hello_reply(struct conn *c, const uint8_t *p, size_t n)
{
    struct worker *w = c->w;
    Statesrv__V1__Response *r = NULL;
    if (sv_msg_unpack_response(p, n, NULL, &r)) {
        conn_fail(c, "hello: malformed reply");
        return;
    }
    if (r->status != STATESRV__V1__STATUS__OK) {
        char why[300];
        snprintf(why, sizeof(why), "hello refused: status %d: %s", (int)r->status,
                 r->message ? r->message : "");
        statesrv__v1__response__free_unpacked(r, NULL);
        conn_fail(c, why);
        return;
    }
    if (r->id != c->expect_id || r->result_case != STATESRV__V1__RESPONSE__RESULT_HELLO ||
        r->hello->protocol_version != SV_PROTOCOL_VERSION || r->hello->max_frame_size == 0) {
        statesrv__v1__response__free_unpacked(r, NULL);
        conn_fail(c, "hello: unexpected reply (wrong id, result or protocol version)");
        return;
    }
    if (c == &w->conns[0] && w->idx == 0) {
        server_max_frame = r->hello->max_frame_size;
        server_key_groups = r->hello->key_groups;
        snprintf(server_version, sizeof(server_version), "%s",
                 r->hello->server_version ? r->hello->server_version : "");
    }
    uint32_t mf = r->hello->max_frame_size;
    c->in.max_frame = mf > UINT32_MAX - 65536 ? UINT32_MAX : mf + 65536;
    statesrv__v1__response__free_unpacked(r, NULL);
    c->expect_id++;
    c->outstanding = 0;
    c->state = C_IDLE;
    if (--w->pending_setup == 0)
        uv_stop(&w->loop);
}

/* One reply of the batch in flight. 0, or -1 if the stream is out of step. */
static int take_reply(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    struct worker *w = c->w;
    struct reply r;
    if (decode_reply(p, n, &r)) {
        w->cnt.bad_reply++;
        note_error(w, "undecodable reply (%zu bytes)", n);
        return -1;
    }
    if (r.id != c->expect_id) {
        w->cnt.id_mismatch++;
        note_error(w, "reply id %" PRIu64 " where %" PRIu64 " was owed (status %" PRIu64 ": %.*s)",
                   r.id, c->expect_id, r.status, (int)r.msg_len, (const char *)r.msg);
        return -1;
    }
    enum op op = (enum op)c->ops[c->expect_id - c->batch_first_id];
    c->expect_id++;
    c->outstanding--;
    if (r.status == STATESRV__V1__STATUS__NOT_FOUND && op == OP_GET && o.allow_missing)
        r.status = 0, r.result = RESULT_GET;
    if (r.status != 0) {
        unsigned s = r.status <= STATESRV__V1__STATUS__NO_SPACE
                         ? (unsigned)r.status
                         : STATESRV__V1__STATUS__NO_SPACE + 1;
        w->cnt.status[s]++;
        note_error(w, "%s: status %" PRIu64 " (%s): %.*s", op_names[op], r.status,
                   sv_status_name((int)r.status), (int)r.msg_len, (const char *)r.msg);
        return 0;
    }
    unsigned want = op == OP_GET ? RESULT_GET : op == OP_PUT ? RESULT_PUT : RESULT_MERGE;
    if (r.result != want) {
        w->cnt.bad_reply++;
        note_error(w, "%s: OK reply carries result %u, not %u", op_names[op], r.result, want);
        return 0;
    }
    if (c->measured) {
        w->cnt.ok++;
        hist_add(&w->hist, now - c->sent_ns);
        w->t_last = now;
    }
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (c->state == C_DONE || c->state == C_FAILED)
        return;
    sv_frame_reader_produced(&c->in, (size_t)nread);
    uint64_t now = uv_hrtime();
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = sv_frame_reader_next(&c->in, &p, &n)) == 1) {
        if (c->state == C_HELLO) {
            hello_reply(c, p, n);
            if (c->state != C_IDLE)
                return;
            continue;
        }
        if (c->outstanding == 0) {
            c->w->cnt.bad_reply++;
            note_error(c->w, "a reply nobody asked for");
            conn_fail(c, "unexpected reply");
            return;
        }
        if (take_reply(c, p, n, now)) {
            conn_fail(c, "replies out of step");
            return;
        }
        if (c->outstanding == 0) {
            sv_frame_reader_discard(&c->in);
            send_batch(c);
            if (c->state != C_RUNNING)
                return;
        }
    }
    if (rc != 0) {
        conn_fail(c, "reply frame over the size limit");
        return;
    }
    sv_frame_reader_discard(&c->in);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof(why), "connect %s: %s", o.addr, uv_strerror(status));
        conn_fail(c, why);
        return;
    }
    if (!target_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    c->state = C_HELLO;
    c->expect_id = 1;
    c->next_id = 2;
    int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
    if (rc == 0) {
        uv_buf_t b = uv_buf_init((char *)hello_frame, (unsigned)hello_len);
        rc = uv_try_write(&c->h.stream, &b, 1);
        rc = rc == (int)hello_len ? 0 : rc < 0 ? rc : UV_EAGAIN;
    }
    if (rc) {
        conn_fail(c, uv_strerror(rc));
    }
}

static void on_warm(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->measuring = 1;
    w->t_measure = uv_hrtime();
}

static void on_end(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->stopping = 1;
}

static int worker_setup(struct worker *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc) {
        note_error(w, "uv_loop_init: %s", uv_strerror(rc));
        return -1;
    }
    size_t obuf_size = max_request_size() * o.pipeline;
    w->pending_setup = w->nconns;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        c->w = w;
        c->rng = o.seed ^ (0x9E3779B97F4A7C15ull * (w->idx * 100003ull + i + 1));
        c->obuf = malloc(obuf_size);
        c->ops = malloc(o.pipeline);
        sv_frame_reader_init(&c->in, HELLO_MAX_FRAME);
        c->state = C_CONNECTING;
        if (!c->obuf || !c->ops) {
            note_error(w, "out of memory");
            return -1;
        }
        rc = target_unix ? uv_pipe_init(&w->loop, &c->h.pipe, 0) : uv_tcp_init(&w->loop, &c->h.tcp);
        if (rc) {
            note_error(w, "socket: %s", uv_strerror(rc));
            return -1;
        }
        c->inited = 1;
        c->h.handle.data = c;
        c->creq.data = c;
        if (target_unix) {
            uv_pipe_connect(&c->creq, &c->h.pipe, o.addr + 5, on_connect);
        } else {
            rc = uv_tcp_connect(&c->creq, &c->h.tcp, (const struct sockaddr *)&target, on_connect);
            if (rc) {
                note_error(w, "connect %s: %s", o.addr, uv_strerror(rc));
                c->state = C_FAILED;
                conn_close(c);
                w->setup_failed = 1;
                w->pending_setup--;
            }
        }
    }
    if (w->pending_setup)
        uv_run(&w->loop, UV_RUN_DEFAULT);
    return w->setup_failed ? -1 : 0;
}

static void worker_load(struct worker *w)
{
    uv_timer_init(&w->loop, &w->t_warm);
    uv_timer_init(&w->loop, &w->t_end);
    w->t_warm.data = w->t_end.data = w;
    w->timers_open = 1;
    w->t_measure = uv_hrtime();
    w->t_last = w->t_measure;
    if (o.warmup > 0) {
        uv_timer_start(&w->t_warm, on_warm, (uint64_t)(o.warmup * 1000), 0);
    } else {
        w->measuring = 1;
    }
    if (o.duration > 0)
        uv_timer_start(&w->t_end, on_end, (uint64_t)((o.warmup + o.duration) * 1000), 0);
    w->live = w->nconns;
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].state == C_IDLE)
            send_batch(&w->conns[i]);
    if (w->live == 0)
        worker_finish(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void worker_cleanup(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].inited)
            conn_close(&w->conns[i]);
    worker_finish(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    for (unsigned i = 0; i < w->nconns; i++) {
        free(w->conns[i].obuf);
        free(w->conns[i].ops);
        sv_frame_reader_free(&w->conns[i].in);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (worker_setup(w))
        atomic_store(&any_setup_failed, 1);
    if (o.threads > 1)
        pthread_barrier_wait(&barrier);
    if (!atomic_load(&any_setup_failed))
        worker_load(w);
    worker_cleanup(w);
    return NULL;
}

/* --- one test ---------------------------------------------------------------- */

struct result {
    struct hist hist;
    struct counts cnt;
    double seconds;
    char first_err[300];
};

static uint64_t error_total(const struct counts *c)
{
    uint64_t e = c->id_mismatch + c->bad_reply + c->lost + c->conn_failures;
    for (size_t i = 0; i < sizeof(c->status) / sizeof(c->status[0]); i++)
        e += c->status[i];
    return e;
}

/* Runs one test over fresh connections. 0, or -1 if it could not start. */
static int run_test(enum op op, struct result *res)
{
    unsigned nt = o.threads;
    struct worker *ws = calloc(nt, sizeof(*ws));
    struct conn *conns = calloc(o.conns, sizeof(*conns));
    if (!ws || !conns) {
        fprintf(stderr, "statesrv-bench: out of memory\n");
        exit(2);
    }
    atomic_store(&remaining, o.requests ? (long long)o.requests : -1);
    atomic_store(&seq_next, 0);
    atomic_store(&any_setup_failed, 0);
    unsigned off = 0;
    for (unsigned t = 0; t < nt; t++) {
        struct worker *w = &ws[t];
        w->idx = t;
        w->op = op;
        w->nconns = o.conns / nt + (t < o.conns % nt);
        w->conns = conns + off;
        off += w->nconns;
        hist_init(&w->hist);
    }
    if (nt > 1) {
        pthread_barrier_init(&barrier, NULL, nt);
        for (unsigned t = 0; t < nt; t++)
            if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t])) {
                fprintf(stderr, "statesrv-bench: cannot start thread %u\n", t);
                exit(2);
            }
        for (unsigned t = 0; t < nt; t++)
            pthread_join(ws[t].th, NULL);
        pthread_barrier_destroy(&barrier);
    } else {
        worker_main(&ws[0]);
    }

    memset(res, 0, sizeof(*res));
    hist_init(&res->hist);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (unsigned t = 0; t < nt; t++) {
        struct worker *w = &ws[t];
        hist_merge(&res->hist, &w->hist);
        res->cnt.ok += w->cnt.ok;
        for (size_t i = 0; i < sizeof(w->cnt.status) / sizeof(w->cnt.status[0]); i++)
            res->cnt.status[i] += w->cnt.status[i];
        res->cnt.id_mismatch += w->cnt.id_mismatch;
        res->cnt.bad_reply += w->cnt.bad_reply;
        res->cnt.lost += w->cnt.lost;
        res->cnt.conn_failures += w->cnt.conn_failures;
        if (!res->first_err[0] && w->first_err[0])
            snprintf(res->first_err, sizeof(res->first_err), "%s", w->first_err);
        if (w->t_measure < t0)
            t0 = w->t_measure;
        if (w->t_last > t1)
            t1 = w->t_last;
    }
    res->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    int failed = atomic_load(&any_setup_failed);
    free(ws);
    free(conns);
    return failed ? -1 : 0;
}

/* Text for a JSON string: as it is when it is UTF-8, else with every byte
 * above 0x7f as '?' (an address from argv, a message). */
static json_t *j_text(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char buf[512];
    size_t i = 0;
    for (; s[i] && i < sizeof(buf) - 1; i++)
        buf[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

/* A figure rounded to `decimals` places, so that it prints as briefly as
 * the old fixed-point output did. */
static json_t *j_fixed(double v, int decimals)
{
    double k = pow(10, decimals);
    return json_real(isfinite(v) ? round(v * k) / k : 0);
}

/* One test's result as one JSON object on a line (jansson, as statectl's
 * JSON): 0, or -1 when it could not be built (out of memory). */
static int report_json(enum op op, const struct result *r, const double q[5], double mean,
                       double ops, uint64_t errs, const char *const *st_names, size_t n_st)
{
    int fail = 0;
    json_t *doc = json_object(), *lat = json_object(), *det = json_object();
#define SET(obj, k, v) (fail |= json_object_set_new((obj), (k), (v)) != 0)
    SET(doc, "test", json_string(op_names[op]));
    SET(doc, "addr", j_text(o.addr));
    SET(doc, "server_version", j_text(server_version));
    SET(doc, "connections", json_integer(o.conns));
    SET(doc, "pipeline", json_integer(o.pipeline));
    SET(doc, "value_size", json_integer(o.value_size));
    SET(doc, "keyspace", json_integer((json_int_t)o.keyspace));
    SET(doc, "states", json_integer(o.states));
    SET(doc, "threads", json_integer(o.threads));
    SET(doc, "sequential", json_boolean(o.sequential));
    SET(doc, "read_ratio", j_fixed(op == OP_MIXED ? o.read_ratio : 0.0, 3));
    SET(doc, "requests", json_integer((json_int_t)r->cnt.ok));
    SET(doc, "seconds", j_fixed(r->seconds, 6));
    SET(doc, "ops_per_sec", j_fixed(ops, 1));
    static const char *const qn[] = {"p50", "p90", "p99", "p99_9", "max"};
    for (int i = 0; i < 5; i++)
        SET(lat, qn[i], j_fixed(q[i] / 1e6, 4));
    SET(lat, "mean", j_fixed(mean / 1e6, 4));
    SET(doc, "latency_ms", lat);
    SET(doc, "errors", json_integer((json_int_t)errs));
    for (size_t i = 1; i < n_st; i++)
        SET(det, st_names[i], json_integer((json_int_t)r->cnt.status[i]));
    SET(det, "id_mismatch", json_integer((json_int_t)r->cnt.id_mismatch));
    SET(det, "bad_reply", json_integer((json_int_t)r->cnt.bad_reply));
    SET(det, "lost", json_integer((json_int_t)r->cnt.lost));
    SET(det, "conn_failures", json_integer((json_int_t)r->cnt.conn_failures));
    SET(doc, "error_detail", det);
    SET(doc, "first_error", j_text(r->first_err));
#undef SET
    if (!fail && json_dumpf(doc, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) == 0)
        putchar('\n');
    else
        fail = 1;
    json_decref(doc);
    fflush(stdout);
    return fail ? -1 : 0;
}

static void report(enum op op, const struct result *r)
{
    const struct hist *h = &r->hist;
    double ops = r->seconds > 0 ? (double)r->cnt.ok / r->seconds : 0;
    double q[5] = {hist_quantile(h, 0.50), hist_quantile(h, 0.90), hist_quantile(h, 0.99),
                   hist_quantile(h, 0.999), (double)h->max};
    double mean = h->n ? h->sum / (double)h->n : 0;
    uint64_t errs = error_total(&r->cnt);
    static const char *const st_names[] = {
        "ok",   "not_found",   "invalid_argument", "too_large", "unauthenticated",
        "busy", "unavailable", "internal",         "no_space",  "unknown_status"};
    if (o.json) {
        if (report_json(op, r, q, mean, ops, errs, st_names,
                        sizeof(st_names) / sizeof(st_names[0])))
            fprintf(stderr, "statesrv-bench: cannot write the JSON output: out of memory\n");
        return;
    }
    char keys[64];
    if (o.sequential)
        snprintf(keys, sizeof(keys), "sequential keys from %llu", o.key_offset);
    else
        snprintf(keys, sizeof(keys), "%llu random keys", o.keyspace);
    printf("== %s: %u connections, pipeline %u, %u-byte values, %s, %u state(s)", op_names[op],
           o.conns, o.pipeline, o.value_size, keys, o.states);
    if (op == OP_MIXED)
        printf(", %.0f%% reads", o.read_ratio * 100);
    printf(", %u thread(s) -> %s (statesrvd %s)\n", o.threads, o.addr, server_version);
    printf("  %" PRIu64 " requests in %.3f s: %.0f ops/s\n", r->cnt.ok, r->seconds, ops);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
           q[0] / 1e6, q[1] / 1e6, q[2] / 1e6, q[3] / 1e6, q[4] / 1e6, mean / 1e6);
    printf("  errors: %" PRIu64, errs);
    if (errs) {
        const char *sep = " (";
        for (size_t i = 1; i < sizeof(st_names) / sizeof(st_names[0]); i++)
            if (r->cnt.status[i]) {
                printf("%s%s %" PRIu64, sep, st_names[i], r->cnt.status[i]);
                sep = ", ";
            }
        if (r->cnt.id_mismatch)
            printf("%sid mismatches %" PRIu64, sep, r->cnt.id_mismatch), sep = ", ";
        if (r->cnt.bad_reply)
            printf("%sbad replies %" PRIu64, sep, r->cnt.bad_reply), sep = ", ";
        if (r->cnt.lost)
            printf("%slost with their connection %" PRIu64, sep, r->cnt.lost), sep = ", ";
        if (r->cnt.conn_failures)
            printf("%sconnection failures %" PRIu64, sep, r->cnt.conn_failures), sep = ", ";
        printf(")\n  first error: %s", r->first_err);
    }
    printf("\n");
    fflush(stdout);
}

/* --- --resp-out ---------------------------------------------------------------
 * The sequential preload as Redis commands (SET key value, RESP), for
 * `redis-cli --pipe`: the same keys and the same values statesrvd gets. */
static int resp_out(void)
{
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    uint8_t *v = malloc(o.value_size + 1);
    if (!v)
        return 2;
    uint8_t key[KEY_LEN];
    for (unsigned long long i = 0; i < o.requests; i++) {
        uint64_t k = i + o.key_offset;
        format_key(key, k);
        fill_value(v, o.value_size, k);
        printf("*3\r\n$3\r\nSET\r\n$%d\r\n", KEY_LEN);
        fwrite(key, 1, KEY_LEN, stdout);
        printf("\r\n$%u\r\n", o.value_size);
        fwrite(v, 1, o.value_size, stdout);
        fputs("\r\n", stdout);
    }
    free(v);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "statesrv-bench: --resp-out: %s\n", strerror(errno));
        return 2;
    }
    return 0;
}

/* --- options and main ---------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "Usage: statesrv-bench [OPTION]...\n"
               "Load generator for statesrvd (like redis-benchmark, on statesrvd's protocol).\n"
               "\n"
               "  -a ADDR           HOST:PORT or unix:PATH (default 127.0.0.1:7420)\n"
               "  -c N              connections (default 50)\n"
               "  -P N              pipeline: requests per batch; the next batch goes when every\n"
               "                    reply of the last is in (default 1)\n"
               "  -n N              requests to measure (default 100000; k and M suffixes)\n"
               "      --duration S  run S seconds instead (-n then also caps, if given)\n"
               "      --warmup S    run S seconds unmeasured first\n"
               "  -d N              value size in bytes for put (default 64)\n"
               "  -r N              key space: keys key:000000000000 .. N-1, chosen at random\n"
               "                    (default 1000000)\n"
               "      --sequential  use keys 0..N-1 of -n in order, each once (preload)\n"
               "      --key-offset K  add K to every key number\n"
               "  -t TESTS          comma-separated: get, put, merge (counter += 1), mixed\n"
               "                    (default get)\n"
               "      --read-ratio F  mixed: fraction of gets, the rest puts (default 0.5)\n"
               "      --states N    spread keys over N states (key mod N): bench0.. for\n"
               "                    values, counter0.. for merge (default 1)\n"
               "      --threads T   T event loops, connections split between them (default 1)\n"
               "      --token-file F  send the first line of F as hello's auth token\n"
               "      --allow-missing  count NOT_FOUND for get as a completed read, not an error\n"
               "      --seed N      random seed (default 1)\n"
               "      --json        one JSON object per test on stdout\n"
               "      --resp-out    print the --sequential put load (-n keys, -d values) as\n"
               "                    Redis SET commands for redis-cli --pipe; no connection\n"
               "  -h, --help        this help\n"
               "\n"
               "Every reply's id and status are checked; errors are reported apart from\n"
               "throughput. Exit status: 0 all replies OK, 1 some error, 2 usage or setup.\n");
}

static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1000ull, end++;
    else if (*end == 'M')
        v *= 1000000ull, end++;
    if (*end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e6)
        return -1;
    *out = v;
    return 0;
}

static int parse_tests(const char *s)
{
    o.ntests = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < OP_MAX; i++)
            if (strlen(op_names[i]) == n && strncmp(s, op_names[i], n) == 0) {
                if (o.ntests == sizeof(o.tests) / sizeof(o.tests[0]))
                    return -1;
                o.tests[o.ntests++] = (enum op)i;
                found = 1;
            }
        if (!found)
            return -1;
        s += n;
        if (*s == ',')
            s++;
    }
    return o.ntests ? 0 : -1;
}

static int resolve(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0) {
        target_unix = 1;
        return addr[5] ? 0 : -1;
    }
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g) {
        fprintf(stderr, "statesrv-bench: %s: %s\n", addr, gai_strerror(g));
        return -1;
    }
    memcpy(&target, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void make_hello(void)
{
    Statesrv__V1__Hello h = STATESRV__V1__HELLO__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    h.protocol_version = SV_PROTOCOL_VERSION;
    h.client_name = (char *)o.client_name;
    h.auth_token.data = (uint8_t *)o.token;
    h.auth_token.len = strlen(o.token);
    req.id = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_HELLO;
    req.hello = &h;
    struct sv_buf b = SV_BUF_INIT;
    if (sv_msg_append(&b, &req.base, UINT32_MAX)) {
        fprintf(stderr, "statesrv-bench: out of memory\n");
        exit(2);
    }
    hello_frame = b.data;
    hello_len = b.len;
}

int main(int argc, char **argv)
{
    enum {
        O_DURATION = 256,
        O_WARMUP,
        O_READ_RATIO,
        O_STATES,
        O_THREADS,
        O_TOKEN_FILE,
        O_JSON,
        O_SEQUENTIAL,
        O_ALLOW_MISSING,
        O_SEED,
        O_KEY_OFFSET,
        O_RESP_OUT,
    };
    static const struct option longopts[] = {
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"read-ratio", required_argument, NULL, O_READ_RATIO},
        {"states", required_argument, NULL, O_STATES},
        {"threads", required_argument, NULL, O_THREADS},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"json", no_argument, NULL, O_JSON},
        {"sequential", no_argument, NULL, O_SEQUENTIAL},
        {"allow-missing", no_argument, NULL, O_ALLOW_MISSING},
        {"seed", required_argument, NULL, O_SEED},
        {"key-offset", required_argument, NULL, O_KEY_OFFSET},
        {"resp-out", no_argument, NULL, O_RESP_OUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o.addr = "127.0.0.1:7420";
    o.conns = 50;
    o.pipeline = 1;
    o.value_size = 64;
    o.keyspace = 1000000;
    o.tests[0] = OP_GET;
    o.ntests = 1;
    o.read_ratio = 0.5;
    o.states = 1;
    o.threads = 1;
    o.seed = 1;
    o.client_name = "statesrv-bench";
    int have_n = 0;
    unsigned long long v;
    int ch;
    while ((ch = getopt_long(argc, argv, "a:c:P:n:d:r:t:h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (ch) {
        case 'a':
            o.addr = optarg;
            break;
        case 'c':
            if (parse_count(optarg, MAX_CONNS, &v) || v == 0)
                bad = "-c wants 1..10000";
            o.conns = (unsigned)v;
            break;
        case 'P':
            if (parse_count(optarg, MAX_PIPELINE, &v) || v == 0)
                bad = "-P wants 1..100000";
            o.pipeline = (unsigned)v;
            break;
        case 'n':
            if (parse_count(optarg, 1ull << 62, &v))
                bad = "-n wants a count";
            o.requests = v;
            have_n = 1;
            break;
        case 'd':
            if (parse_count(optarg, MAX_VALUE, &v))
                bad = "-d wants 0..16777216";
            o.value_size = (unsigned)v;
            break;
        case 'r':
            if (parse_count(optarg, 999999999999ull, &v))
                bad = "-r wants 0..999999999999";
            o.keyspace = v;
            break;
        case 't':
            if (parse_tests(optarg))
                bad = "-t wants get, put, merge or mixed, comma-separated";
            break;
        case O_DURATION:
            if (parse_seconds(optarg, &o.duration) || o.duration <= 0)
                bad = "--duration wants seconds > 0";
            break;
        case O_WARMUP:
            if (parse_seconds(optarg, &o.warmup))
                bad = "--warmup wants seconds";
            break;
        case O_READ_RATIO:
            if (parse_seconds(optarg, &o.read_ratio) || o.read_ratio > 1)
                bad = "--read-ratio wants 0..1";
            break;
        case O_STATES:
            if (parse_count(optarg, 10000, &v) || v == 0)
                bad = "--states wants 1..10000";
            o.states = (unsigned)v;
            break;
        case O_THREADS:
            if (parse_count(optarg, MAX_THREADS, &v) || v == 0)
                bad = "--threads wants 1..64";
            o.threads = (unsigned)v;
            break;
        case O_TOKEN_FILE:
            if (statesrv_read_token_file(optarg, o.token, sizeof(o.token)))
                bad = "--token-file: cannot read a token from it";
            break;
        case O_JSON:
            o.json = 1;
            break;
        case O_SEQUENTIAL:
            o.sequential = 1;
            break;
        case O_ALLOW_MISSING:
            o.allow_missing = 1;
            break;
        case O_SEED:
            if (parse_count(optarg, UINT64_MAX, &v))
                bad = "--seed wants a number";
            o.seed = v ? v : 1;
            break;
        case O_KEY_OFFSET:
            if (parse_count(optarg, 999999999999ull, &v))
                bad = "--key-offset wants a number";
            o.key_offset = v;
            break;
        case O_RESP_OUT:
            o.resp_out = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "statesrv-bench: %s (got \"%s\")\n", bad, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "statesrv-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!have_n)
        o.requests = o.duration > 0 ? 0 : 100000;
    if (o.requests == 0 && o.duration <= 0) {
        fprintf(stderr, "statesrv-bench: -n 0 needs --duration\n");
        return 2;
    }
    if (o.sequential) {
        if (o.requests == 0) {
            fprintf(stderr, "statesrv-bench: --sequential needs -n\n");
            return 2;
        }
        o.warmup = 0;
    }
    if (o.threads > o.conns)
        o.threads = o.conns;
    if (o.key_offset + (o.sequential ? o.requests : o.keyspace) > 1000000000000ull) {
        fprintf(stderr, "statesrv-bench: keys must stay below 10^12 (12 digits)\n");
        return 2;
    }
    if (o.resp_out)
        return o.sequential ? resp_out()
                            : (fprintf(stderr, "statesrv-bench: --resp-out "
                                               "needs --sequential\n"),
                               2);
    if (resolve(o.addr)) {
        fprintf(stderr, "statesrv-bench: bad address \"%s\" (HOST:PORT or unix:PATH)\n", o.addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    make_state_fields();
    self_check();
    make_hello();

    int status = 0;
    struct result *res = malloc(sizeof(*res));
    if (!res)
        return 2;
    for (unsigned i = 0; i < o.ntests; i++) {
        if (run_test(o.tests[i], res)) {
            fprintf(stderr, "statesrv-bench: %s: could not set up the connections: %s\n",
                    op_names[o.tests[i]], res->first_err);
            status = 2;
            break;
        }
        report(o.tests[i], res);
        if (error_total(&res->cnt))
            status = 1;
    }
    free(res);
    free(hello_frame);
    free(value_states);
    free(counter_states);
    return status;
}
