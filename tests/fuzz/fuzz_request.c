/* libFuzzer target: one Request, decoded and dispatched as the server does.
 *
 * Each input is the payload of one frame. It is unpacked into the server's
 * arena under the same per-request decode budget as server/batch.c, then
 * dispatched (sv_dispatch) inside an LMDB write transaction of a real store,
 * and the Response is encoded with sv_msg_append and decoded again.
 * sv_msg's hand-written fast path (common/sv_wire.c) is held to protobuf-c:
 * a request it decodes must equal protobuf-c's decoding of the same bytes
 * (equal packings), and every reply frame must carry protobuf-c's bytes. A
 * successful put, delete, merge or batch is read back (with get, in the same
 * transaction): the value, kind, counter or list tail must be what was
 * written, a deleted entry must be gone.
 *
 * The store and the checkpoint directory live in a mkdtemp directory made
 * once per process (LLVMFuzzerInitialize) and removed at exit. The store is
 * seeded once (committed): states holding RAW, LIST and COUNTER values,
 * several namespaces, explicit key groups and values big enough that
 * multi_get and scan meet max_frame_size; 18 states of max_states = 19; and a
 * 1 MiB map (map_size_max 1 MiB) filled until the store refuses a put, so
 * that a large write meets the refusal (NO_SPACE, the transaction still
 * usable) and a delete may use the reserve kept for deletes; a write that
 * still meets LMDB's MDB_MAP_FULL poisons the transaction (as in the server,
 * the request is then not answered: batch.c would grow the map and replay). checkpoint_dir
 * holds chk-1, a real checkpoint, so list_checkpoints, snapshot-id clashes
 * and restore sources resolve.
 *
 * Every input's transaction is aborted, never committed: each input runs
 * against the same seeded store, so a crash reproduces from its one input,
 * and the abort path (forgetting state handles opened or dropped in the
 * transaction) runs every time. After the abort one entry of every seeded
 * state must still be readable.
 *
 * Checkpoint ops: srv->ckpt is real (sv_checkpoints_new on the temp dir), so
 * snapshot and restore are validated in full (ids, sources resolved against
 * checkpoint_dir, key-group ranges) and, when valid, queued; the queued job is
 * then dropped with sv_checkpoints_drop_queued, as a failed batch does. Jobs
 * never start: no snapshot or restore work runs (that needs the libuv thread
 * pool). delete_checkpoint does run; if it removes chk-1, chk-1 is written
 * again before the next input. */
#include "checkpoint.h"
#include "config.h"
#include "server.h"
#include "store.h"
#include "sv_arena.h"
#include "sv_buf.h"
#include "sv_ckpt.h"
#include "sv_error.h"
#include "sv_frame.h"
#include "sv_keys.h"
#include "sv_log.h"
#include "sv_msg.h"
#include "sv_value.h"
#include "sv_wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_request: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "fuzz_request: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static char root[256];
static char ckpt1_dir[512];
static struct sv_config cfg;
static struct sv_server srv;
static struct sv_conn conn;
static struct sv_buf out;
static int verbose; /* FUZZ_VERBOSE=1: print each request's outcome */

/* The same bound as decode_budget() in server/batch.c (static there): what
 * decoding one request may allocate from the arena. */
static size_t decode_budget(size_t frame_len)
{
    return 2 * frame_len + (size_t)cfg.max_batch_ops * 512 + 64 * 1024;
}

static void set(const char *name, const char *value)
{
    char err[256];
    if (sv_config_set(&cfg, name, value, err, sizeof(err)))
        DIE("config %s = %s: %s", name, value, err);
}

static void cleanup(void)
{
    if (!root[0])
        return;
    sv_checkpoints_free(srv.ckpt);
    srv.ckpt = NULL;
    sv_store_close(srv.store);
    srv.store = NULL;
    sv_arena_free(&srv.arena);
    sv_buf_free(&out);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_request: could not remove %s\n", root);
    root[0] = '\0';
}

/* --- seeding ------------------------------------------------------------- */

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

static ProtobufCBinaryData str(const char *s)
{
    return bin(s, strlen(s));
}

/* Dispatches a request built in code (inside the open transaction); it must
 * succeed. */
static void seed_dispatch(Statesrv__V1__Request *req)
{
    Statesrv__V1__Response resp;
    CHECK(sv_dispatch(&srv, &conn, req, &resp) == SV_DISPATCH_REPLY);
    if (resp.status != 0)
        DIE("seeding %s: %s", sv_op_name((unsigned)req->op_case), resp.message);
}

static void seed_put(const char *state, const char *key, const char *ns, int kg,
                     Statesrv__V1__ValueKind kind, const void *value, size_t vlen)
{
    Statesrv__V1__Put p = STATESRV__V1__PUT__INIT;
    p.state = str(state);
    p.key = str(key);
    p.namespace_ = str(ns);
    if (kg >= 0) {
        p.key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
        p.key_group = (uint32_t)kg;
    }
    p.kind = kind;
    p.value = bin(value, vlen);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.id = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_PUT;
    req.put = &p;
    seed_dispatch(&req);
}

static void seed_store(void)
{
    static uint8_t big[4096];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + 7);
    CHECK(sv_store_begin(srv.store) == 0);
    char key[32];
    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        seed_put("s", key, "", -1, STATESRV__V1__VALUE_KIND__RAW, big, (size_t)(i + 1) * 330);
        seed_put("s", key, "ns1", -1, STATESRV__V1__VALUE_KIND__RAW, "v", 1);
        seed_put("s", key, "ns2", -1, STATESRV__V1__VALUE_KIND__RAW, "", 0);
    }
    /* The first and the last key group, and bytes that are not text. */
    seed_put("s", "first", "", 0, STATESRV__V1__VALUE_KIND__RAW, "a", 1);
    seed_put("s", "last", "", 127, STATESRV__V1__VALUE_KIND__RAW, "z", 1);
    seed_put("s", "\xff\xff", "\xff", 127, STATESRV__V1__VALUE_KIND__RAW, "f", 1);

    uint8_t list[64];
    size_t ll = 0;
    ll += sv_list_elem_put(list + ll, "a", 1);
    ll += sv_list_elem_put(list + ll, "bb", 2);
    ll += sv_list_elem_put(list + ll, "", 0);
    seed_put("lists", "l1", "", -1, STATESRV__V1__VALUE_KIND__LIST, list, ll);
    seed_put("lists", "l2", "w", -1, STATESRV__V1__VALUE_KIND__LIST, "", 0);

    uint8_t c[8];
    sv_i64_put(c, 41);
    seed_put("counters", "c1", "", -1, STATESRV__V1__VALUE_KIND__COUNTER, c, 8);
    sv_i64_put(c, INT64_MAX);
    seed_put("counters", "cmax", "", -1, STATESRV__V1__VALUE_KIND__COUNTER, c, 8);
    sv_i64_put(c, INT64_MIN);
    seed_put("counters", "cmin", "", -1, STATESRV__V1__VALUE_KIND__COUNTER, c, 8);
    /* More states, so that listing them passes 16 (collect_state grows). */
    for (int i = 0; i < 14; i++) {
        char name[16];
        snprintf(name, sizeof(name), "e%02d", i);
        seed_put(name, "k", "", -1, STATESRV__V1__VALUE_KIND__RAW, "", 0);
    }
    CHECK(sv_store_commit(srv.store) == 0);
    sv_arena_reset(&srv.arena);

    /* Fill the map, one 4000-byte value per transaction, until the store
     * refuses a put (it keeps a reserve below map_size_max for deletes) or
     * 8 KiB are left: large writes then meet the refusal, deletes the
     * reserve. */
    int n = 0;
    for (;; n++) {
        uint64_t size, used;
        sv_store_usage(srv.store, &size, &used);
        if (used + 8 * 1024 >= size)
            break;
        CHECK(n < 1000);
        CHECK(sv_store_begin(srv.store) == 0);
        snprintf(key, sizeof(key), "f%d", n);
        uint8_t sk[64];
        size_t skl =
            sv_skey_encode(sk, sv_key_group_of(key, strlen(key), 128), key, strlen(key), "", 0);
        int rc = sv_store_put(srv.store, "filler", 6, sk, skl, SV_KIND_RAW, big, 4000);
        if (rc == SV_EMAPFULL) {
            sv_store_abort(srv.store);
            break;
        }
        CHECK(rc == 0);
        CHECK(sv_store_commit(srv.store) == 0);
    }
    if (verbose) {
        uint64_t size, used;
        sv_store_usage(srv.store, &size, &used);
        fprintf(stderr, "fuzz_request: seeded, %d filler values; map %llu bytes, %llu used\n", n,
                (unsigned long long)size, (unsigned long long)used);
    }
}

/* chk-1: a small real checkpoint (two states), written with the writer. */
static void write_ckpt1(void)
{
    char err[512];
    if (mkdir(ckpt1_dir, 0750) != 0)
        DIE("mkdir %s failed", ckpt1_dir);
    struct sv_ckpt_writer_options o = {
        .checkpoint_id = 1,
        .key_groups = 128,
        .kg_first = 0,
        .kg_last = 127,
        .compression = SV_CKPT_COMPRESS_ZSTD,
    };
    struct sv_ckpt_writer *w;
    if (sv_ckpt_writer_open(ckpt1_dir, &o, &w, err, sizeof(err)))
        DIE("writer: %s", err);
    uint8_t sk[64], val[16];
    size_t vh = sv_value_header_put(val, SV_KIND_RAW, 0);
    memcpy(val + vh, "value", 5);
    CHECK(sv_ckpt_writer_state(w, "empty") == 0);
    CHECK(sv_ckpt_writer_state(w, "s") == 0);
    for (uint32_t kg = 3; kg < 6; kg++) {
        size_t n = sv_skey_encode(sk, kg, "key", 3, "", 0);
        CHECK(sv_ckpt_writer_add(w, sk, n, val, vh + 5) == 0);
        n = sv_skey_encode(sk, kg, "key", 3, "ns", 2);
        CHECK(sv_ckpt_writer_add(w, sk, n, val, vh + 5) == 0);
    }
    if (sv_ckpt_writer_finish(w, NULL, err, sizeof(err)))
        DIE("writer finish: %s", err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    sv_log_set_level(verbose ? SV_LOG_DEBUG : SV_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/fuzz_request-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        DIE("mkdtemp %s failed", root);
    atexit(cleanup);

    char path[400], err[512];
    sv_config_defaults(&cfg);
    snprintf(path, sizeof(path), "%s/data", root);
    set("data_dir", path);
    snprintf(path, sizeof(path), "%s/checkpoints", root);
    set("checkpoint_dir", path);
    set("restore_roots", root);
    snprintf(ckpt1_dir, sizeof(ckpt1_dir), "%s/checkpoints/chk-1", root);
    /* Small limits, so inputs of a few KiB reach every size check. */
    set("max_frame_size", "16K");
    set("max_value_size", "4K");
    set("max_output_buffer", "1M");
    set("max_batch_ops", "64");
    set("max_scan_limit", "100");
    set("max_states", "19");
    /* The smallest map, nearly filled by seed_store(): a request writing a
     * few dozen KiB meets MDB_MAP_FULL (a poisoned transaction). */
    set("map_size", "1M");
    set("map_size_max", "1M");
    if (sv_config_validate(&cfg, err, sizeof(err)))
        DIE("config: %s", err);

    struct sv_store_options so = {
        .dir = cfg.data_dir,
        .map_size = cfg.map_size,
        .map_size_max = cfg.map_size_max,
        .max_states = cfg.max_states,
        .max_value_size = cfg.max_value_size,
        .sync_always = 0,
        .key_groups = cfg.key_groups,
        .key_groups_set = 0,
    };
    memset(&srv, 0, sizeof(srv));
    srv.cfg = &cfg;
    srv.started_ms = sv_now_ms();
    sv_arena_init(&srv.arena, 0);
    if (sv_store_open(&so, &srv.store, err, sizeof(err)))
        DIE("store: %s", err);
    if (sv_checkpoints_new(&srv, &srv.ckpt, err, sizeof(err)))
        DIE("checkpoints: %s", err);
    memset(&conn, 0, sizeof(conn));
    conn.srv = &srv;
    conn.id = 1;
    snprintf(conn.peer, sizeof(conn.peer), "fuzz");
    conn.state = SV_CONN_OPEN;

    seed_store();
    sv_arena_reset(&srv.arena);
    write_ckpt1();
    return 0;
}

/* One seeded entry of each seeded state. */
static const struct {
    const char *state, *key;
    enum sv_value_kind kind;
} seeded[] = {
    {"s", "k0", SV_KIND_RAW},
    {"lists", "l1", SV_KIND_LIST},
    {"counters", "c1", SV_KIND_COUNTER},
    {"filler", "f0", SV_KIND_RAW},
    {"e00", "k", SV_KIND_RAW},
    {"e01", "k", SV_KIND_RAW},
    {"e02", "k", SV_KIND_RAW},
    {"e03", "k", SV_KIND_RAW},
    {"e04", "k", SV_KIND_RAW},
    {"e05", "k", SV_KIND_RAW},
    {"e06", "k", SV_KIND_RAW},
    {"e07", "k", SV_KIND_RAW},
    {"e08", "k", SV_KIND_RAW},
    {"e09", "k", SV_KIND_RAW},
    {"e10", "k", SV_KIND_RAW},
    {"e11", "k", SV_KIND_RAW},
    {"e12", "k", SV_KIND_RAW},
    {"e13", "k", SV_KIND_RAW},
};

/* After every input: the seeded data is intact (the aborted transaction left
 * nothing behind, and the store's handle cache still works). Reading every
 * seeded state also reopens one the input dropped (an aborted drop leaves it
 * out of the store's handle table, and so out of its max_states count), so
 * each input starts from the same table. */
static void check_seeded(void)
{
    CHECK(sv_store_begin(srv.store) == 0);
    for (size_t i = 0; i < sizeof(seeded) / sizeof(seeded[0]); i++) {
        const char *st = seeded[i].state, *key = seeded[i].key;
        uint8_t sk[64];
        size_t n =
            sv_skey_encode(sk, sv_key_group_of(key, strlen(key), 128), key, strlen(key), "", 0);
        struct sv_value v;
        int rc = sv_store_get(srv.store, st, strlen(st), sk, n, &v);
        if (rc)
            DIE("after the input, %s/%s is gone: %s", st, key, sv_strerror(rc));
        CHECK(v.kind == seeded[i].kind);
    }
    /* Committed (it writes nothing), so that reopened handles stay open. */
    CHECK(sv_store_commit(srv.store) == 0);
}

static int result_fits_op(const Statesrv__V1__Request *req, const Statesrv__V1__Response *resp)
{
    /* Request and Response number their oneof cases differently: map by name. */
    switch (resp->result_case) {
    case STATESRV__V1__RESPONSE__RESULT_HELLO:
        return req->op_case == STATESRV__V1__REQUEST__OP_HELLO;
    case STATESRV__V1__RESPONSE__RESULT_PING:
        return req->op_case == STATESRV__V1__REQUEST__OP_PING;
    case STATESRV__V1__RESPONSE__RESULT_GET:
        return req->op_case == STATESRV__V1__REQUEST__OP_GET;
    case STATESRV__V1__RESPONSE__RESULT_MULTI_GET:
        return req->op_case == STATESRV__V1__REQUEST__OP_MULTI_GET;
    case STATESRV__V1__RESPONSE__RESULT_PUT:
        return req->op_case == STATESRV__V1__REQUEST__OP_PUT;
    case STATESRV__V1__RESPONSE__RESULT_DELETE:
        return req->op_case == STATESRV__V1__REQUEST__OP_DELETE;
    case STATESRV__V1__RESPONSE__RESULT_MERGE:
        return req->op_case == STATESRV__V1__REQUEST__OP_MERGE;
    case STATESRV__V1__RESPONSE__RESULT_BATCH:
        return req->op_case == STATESRV__V1__REQUEST__OP_BATCH;
    case STATESRV__V1__RESPONSE__RESULT_SCAN:
        return req->op_case == STATESRV__V1__REQUEST__OP_SCAN;
    case STATESRV__V1__RESPONSE__RESULT_CLEAR:
        return req->op_case == STATESRV__V1__REQUEST__OP_CLEAR;
    case STATESRV__V1__RESPONSE__RESULT_LIST_STATES:
        return req->op_case == STATESRV__V1__REQUEST__OP_LIST_STATES;
    case STATESRV__V1__RESPONSE__RESULT_STATS:
        return req->op_case == STATESRV__V1__REQUEST__OP_STATS;
    case STATESRV__V1__RESPONSE__RESULT_LIST_CHECKPOINTS:
        return req->op_case == STATESRV__V1__REQUEST__OP_LIST_CHECKPOINTS;
    case STATESRV__V1__RESPONSE__RESULT_DELETE_CHECKPOINT:
        return req->op_case == STATESRV__V1__REQUEST__OP_DELETE_CHECKPOINT;
    case STATESRV__V1__RESPONSE__RESULT_STATE_TTL:
        return req->op_case == STATESRV__V1__REQUEST__OP_STATE_TTL;
    default:
        return 0; /* snapshot and restore results come from jobs, never here */
    }
}

/* --- effects: a write that succeeded is visible to a get ------------------ */

struct addr {
    ProtobufCBinaryData state, key, ns;
    int has_kg;
    uint32_t kg;
};

static uint32_t addr_kg(const struct addr *a)
{
    return a->has_kg ? a->kg : sv_key_group_of(a->key.data, a->key.len, 128);
}

static int bytes_eq(ProtobufCBinaryData x, ProtobufCBinaryData y)
{
    return x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
}

static int addr_eq(const struct addr *x, const struct addr *y)
{
    return bytes_eq(x->state, y->state) && bytes_eq(x->key, y->key) && bytes_eq(x->ns, y->ns) &&
           addr_kg(x) == addr_kg(y);
}

/* Gets addr through sv_dispatch, in the input's transaction. */
static Statesrv__V1__Response get_back(const struct addr *ad)
{
    Statesrv__V1__Get g = STATESRV__V1__GET__INIT;
    g.state = ad->state;
    g.key = ad->key;
    g.namespace_ = ad->ns;
    if (ad->has_kg) {
        g.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
        g.key_group = ad->kg;
    }
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.id = 77;
    req.op_case = STATESRV__V1__REQUEST__OP_GET;
    req.get = &g;
    Statesrv__V1__Response resp;
    CHECK(sv_dispatch(&srv, &conn, &req, &resp) == SV_DISPATCH_REPLY);
    CHECK(sv_store_txn_error(srv.store) == 0);
    return resp;
}

#define ADDR_OF(m)                                                                                 \
    {                                                                                              \
        (m)->state, (m)->key, (m)->namespace_, (m)->key_group_opt_case != 0, (m)->key_group        \
    }

/* Whether a write had a TTL (its own, or its state's). */
static int had_ttl(const struct addr *ad, uint64_t ttl_ms)
{
    struct sv_ttl t;
    char name[SV_STATE_NAME_MAX + 1];
    size_t n = ad->state.len < sizeof(name) - 1 ? ad->state.len : sizeof(name) - 1;
    memcpy(name, ad->state.data, n);
    name[n] = '\0';
    return ttl_ms || sv_store_get_ttl(srv.store, name, n, &t);
}

/* A write with a TTL may have expired by the get that checks it: then
 * NOT_FOUND is right. */
static int may_have_expired(const struct addr *ad, uint64_t ttl_ms, const Statesrv__V1__Response *r)
{
    return r->status == (Statesrv__V1__Status)SV_STATUS_NOT_FOUND && had_ttl(ad, ttl_ms);
}

static void check_put(const Statesrv__V1__Put *p)
{
    struct addr ad = ADDR_OF(p);
    Statesrv__V1__Response r = get_back(&ad);
    if (may_have_expired(&ad, p->ttl_ms, &r))
        return;
    CHECK(r.status == 0 && r.result_case == STATESRV__V1__RESPONSE__RESULT_GET);
    CHECK(bytes_eq(r.get->value, p->value));
    CHECK(r.get->kind == p->kind);
}

static void check_deleted(const Statesrv__V1__Delete *d)
{
    struct addr ad = ADDR_OF(d);
    Statesrv__V1__Response r = get_back(&ad);
    if (r.status != (Statesrv__V1__Status)SV_STATUS_NOT_FOUND)
        DIE("deleted %.*s/%.*s, yet get says %s: %s", (int)ad.state.len, (char *)ad.state.data,
            (int)ad.key.len, (char *)ad.key.data, sv_status_name(r.status),
            r.message ? r.message : "(value)");
}

/* counter/size: from the merge's result; < 0 when unknown (in a batch). */
static void check_merged(const Statesrv__V1__Merge *m, int64_t counter, int64_t size)
{
    struct addr ad = ADDR_OF(m);
    Statesrv__V1__Response r = get_back(&ad);
    if (may_have_expired(&ad, m->ttl_ms, &r))
        return;
    CHECK(r.status == 0 && r.result_case == STATESRV__V1__RESPONSE__RESULT_GET);
    ProtobufCBinaryData v = r.get->value;
    if (m->op == STATESRV__V1__MERGE_OP__ADD_I64) {
        CHECK(r.get->kind == STATESRV__V1__VALUE_KIND__COUNTER && v.len == 8);
        if (size >= 0)
            CHECK(sv_i64_get(v.data) == counter && size == 8);
    } else {
        CHECK(r.get->kind == STATESRV__V1__VALUE_KIND__LIST);
        CHECK(sv_value_check_kind(SV_KIND_LIST, v.data, v.len) == 0);
        /* Each element expires on its own: the new one may be gone, and
         * older ones may go between the merge and the get. */
        if (had_ttl(&ad, m->ttl_ms))
            return;
        uint8_t hdr[SV_VARINT_MAX];
        size_t hl = sv_varint_put(hdr, m->operand.len);
        CHECK(v.len >= hl + m->operand.len);
        /* The list ends with the new element. */
        const uint8_t *tail = v.data + v.len - m->operand.len - hl;
        CHECK(memcmp(tail, hdr, hl) == 0);
        if (m->operand.len)
            CHECK(memcmp(tail + hl, m->operand.data, m->operand.len) == 0);
        CHECK(sv_value_check_kind(SV_KIND_LIST, v.data, v.len) == 0);
        if (size >= 0)
            CHECK((int64_t)v.len == size);
    }
}

static void batch_op_addr(const Statesrv__V1__BatchOp *op, struct addr *ad)
{
    switch (op->op_case) {
    case STATESRV__V1__BATCH_OP__OP_PUT:
        *ad = (struct addr)ADDR_OF(op->put);
        break;
    case STATESRV__V1__BATCH_OP__OP_DELETE:
        *ad = (struct addr)ADDR_OF(op->delete_);
        break;
    default:
        *ad = (struct addr)ADDR_OF(op->merge);
        break;
    }
}

/* After a successful write, reads its effect back. In a batch only the last
 * op on each entry is checked (with its merge result unknown). */
static void check_effects(const Statesrv__V1__Request *req, const Statesrv__V1__Response *resp)
{
    switch (req->op_case) {
    case STATESRV__V1__REQUEST__OP_PUT:
        check_put(req->put);
        break;
    case STATESRV__V1__REQUEST__OP_DELETE:
        check_deleted(req->delete_);
        break;
    case STATESRV__V1__REQUEST__OP_MERGE:
        check_merged(req->merge, resp->merge->counter, (int64_t)resp->merge->value_size);
        break;
    case STATESRV__V1__REQUEST__OP_BATCH: {
        const Statesrv__V1__Batch *b = req->batch;
        CHECK(resp->batch->applied == b->n_ops);
        for (size_t i = 0; i < b->n_ops; i++) {
            struct addr ai, aj;
            batch_op_addr(b->ops[i], &ai);
            int later = 0;
            for (size_t j = i + 1; j < b->n_ops && !later; j++) {
                batch_op_addr(b->ops[j], &aj);
                later = addr_eq(&ai, &aj);
            }
            if (later)
                continue;
            const Statesrv__V1__BatchOp *op = b->ops[i];
            if (op->op_case == STATESRV__V1__BATCH_OP__OP_PUT)
                check_put(op->put);
            else if (op->op_case == STATESRV__V1__BATCH_OP__OP_DELETE)
                check_deleted(op->delete_);
            else
                check_merged(op->merge, 0, -1);
        }
        break;
    }
    default:
        break;
    }
}

/* Encodes resp as batch.c's encode_reply does, then decodes the frame. */
static void encode_and_check(const Statesrv__V1__Request *req, Statesrv__V1__Response *resp)
{
    out.len = 0;
    int rc = sv_msg_append(&out, &resp->base, cfg.max_frame_size);
    if (rc == SV_ETOOLARGE) {
        CHECK(out.len == 0);
        Statesrv__V1__Response r = STATESRV__V1__RESPONSE__INIT;
        r.id = resp->id;
        r.status = (Statesrv__V1__Status)sv_error_status(SV_ETOOLARGE);
        r.message = "the reply would exceed max_frame_size";
        rc = sv_msg_append(&out, &r.base, UINT32_MAX);
        resp = &r;
        CHECK(rc == 0);
    }
    CHECK(rc == 0);
    CHECK(out.len >= SV_FRAME_HEADER_SIZE);
    uint32_t n = sv_frame_header_get(out.data);
    CHECK(n == out.len - SV_FRAME_HEADER_SIZE);
    CHECK(n <= cfg.max_frame_size);
    /* The bytes are protobuf-c's, whichever packer wrote them. */
    CHECK(protobuf_c_message_get_packed_size(&resp->base) == n);
    uint8_t *ref = malloc(n ? n : 1);
    CHECK(ref != NULL);
    CHECK(protobuf_c_message_pack(&resp->base, ref) == n);
    CHECK(memcmp(ref, out.data + SV_FRAME_HEADER_SIZE, n) == 0);
    free(ref);
    Statesrv__V1__Response *back;
    CHECK(sv_msg_unpack_response(out.data + SV_FRAME_HEADER_SIZE, n, NULL, &back) == 0);
    CHECK(back->id == req->id);
    CHECK(back->status == resp->status);
    statesrv__v1__response__free_unpacked(back, NULL);
}

/* When the hand decoder takes these bytes, protobuf-c decodes them to an
 * equal message. */
static void check_wire_decode(const uint8_t *data, size_t size)
{
    Statesrv__V1__Request *fast;
    if (!sv_wire_request_decode(data, size, NULL, &fast))
        return;
    Statesrv__V1__Request *ref = statesrv__v1__request__unpack(NULL, size, data);
    CHECK(ref != NULL);
    size_t n = protobuf_c_message_get_packed_size(&ref->base);
    CHECK(protobuf_c_message_get_packed_size(&fast->base) == n);
    uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
    CHECK(a && b);
    protobuf_c_message_pack(&ref->base, a);
    protobuf_c_message_pack(&fast->base, b);
    CHECK(memcmp(a, b, n) == 0);
    free(a);
    free(b);
    statesrv__v1__request__free_unpacked(ref, NULL);
    statesrv__v1__request__free_unpacked(fast, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_wire_decode(data, size);
    struct sv_arena *a = &srv.arena;
    sv_arena_reset(a);
    Statesrv__V1__Request *req;
    a->limit = a->used + decode_budget(size);
    int rc = sv_msg_unpack_request(data, size, &a->pb, &req);
    a->limit = 0;
    if (rc) {
        CHECK(rc == SV_EPROTO);
        a->exhausted = 0;
        sv_arena_reset(a);
        return 0;
    }

    CHECK(sv_store_begin(srv.store) == 0);
    Statesrv__V1__Response resp;
    int d = sv_dispatch(&srv, &conn, req, &resp);
    int terr = sv_store_txn_error(srv.store);
    if (verbose && terr)
        fprintf(stderr, "fuzz_request: %s id %llu: transaction failed: %s\n",
                sv_op_name((unsigned)req->op_case), (unsigned long long)req->id, sv_strerror(terr));
    else if (verbose)
        fprintf(stderr, "fuzz_request: %s id %llu: %s%s%s\n", sv_op_name((unsigned)req->op_case),
                (unsigned long long)req->id,
                d == SV_DISPATCH_DEFERRED ? "queued"
                : resp.status             ? sv_status_name(resp.status)
                                          : "OK",
                d != SV_DISPATCH_DEFERRED && resp.status ? ": " : "",
                d != SV_DISPATCH_DEFERRED && resp.status ? resp.message : "");
    if (d == SV_DISPATCH_DEFERRED) {
        CHECK(req->op_case == STATESRV__V1__REQUEST__OP_SNAPSHOT ||
              req->op_case == STATESRV__V1__REQUEST__OP_RESTORE);
        CHECK(sv_checkpoints_busy(srv.ckpt));
        sv_checkpoints_drop_queued(srv.ckpt);
    } else {
        CHECK(d == SV_DISPATCH_REPLY);
        CHECK(resp.id == req->id);
        if (!terr) {
            if (resp.status == 0)
                CHECK(result_fits_op(req, &resp));
            else
                CHECK(resp.result_case == STATESRV__V1__RESPONSE__RESULT__NOT_SET && resp.message &&
                      resp.message[0]);
            encode_and_check(req, &resp);
            if (resp.status == 0)
                check_effects(req, &resp);
        }
    }
    CHECK(!sv_checkpoints_busy(srv.ckpt));
    sv_store_abort(srv.store);
    CHECK(!sv_store_in_txn(srv.store));
    sv_arena_reset(a);

    check_seeded();
    struct stat st;
    if (stat(ckpt1_dir, &st) != 0)
        write_ckpt1();
    return 0;
}
