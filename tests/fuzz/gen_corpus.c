/* Writes the seed corpora of the fuzz targets (`make fuzz-corpus`):
 *
 *   OUT/fuzz_request/  one packed Request per file: every op, valid and not
 *   OUT/fuzz_frame/    framed request streams with reader control programs
 *   OUT/fuzz_ckpt/     real checkpoints from the writer, in fuzz_ckpt's layout
 *
 * The outputs are committed; rerun after a change to proto/ or to the
 * checkpoint format. Deterministic except for the checkpoints' timestamps. */
#include "statesrv.pb-c.h"
#include "sv_ckpt.h"
#include "sv_frame.h"
#include "sv_keys.h"
#include "sv_value.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "gen_corpus: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

static const char *out_root;

static void mkdir_or_die(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        DIE("mkdir %s: %s", path, strerror(errno));
}

static void write_seed(const char *target, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", out_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        DIE("write %s failed", path);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        DIE("open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    if (!p || (len > 0 && fread(p, 1, (size_t)len, f) != (size_t)len))
        DIE("read %s failed", path);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* --- requests -------------------------------------------------------------- */

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

static ProtobufCBinaryData str(const char *s)
{
    return bin(s, strlen(s));
}

/* The packed requests, kept for the frame seeds too. */
#define MAX_REQS 128
static struct {
    char name[64];
    uint8_t *p;
    size_t n;
} reqs[MAX_REQS];
static size_t nreqs;

static void emit(const char *name, Statesrv__V1__Request *req)
{
    if (nreqs == MAX_REQS)
        DIE("too many requests");
    size_t n = statesrv__v1__request__get_packed_size(req);
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        DIE("out of memory");
    statesrv__v1__request__pack(req, p);
    snprintf(reqs[nreqs].name, sizeof(reqs[nreqs].name), "%s", name);
    reqs[nreqs].p = p;
    reqs[nreqs].n = n;
    nreqs++;
    write_seed("fuzz_request", name, p, n);
}

static uint64_t next_id = 1;

#define REQ(var, op_enum, field, value)                                                            \
    Statesrv__V1__Request var = STATESRV__V1__REQUEST__INIT;                                       \
    var.id = next_id++;                                                                            \
    var.op_case = STATESRV__V1__REQUEST__OP_##op_enum;                                             \
    var.field = value

static void gen_requests(void)
{
    /* hello / ping */
    {
        Statesrv__V1__Hello h = STATESRV__V1__HELLO__INIT;
        h.protocol_version = 1;
        h.client_name = "fuzz-client";
        REQ(r, HELLO, hello, &h);
        emit("hello", &r);
        h.protocol_version = 7;
        h.client_name = "bad\x01name'";
        emit("hello_bad_version", &r);
    }
    {
        Statesrv__V1__Ping p = STATESRV__V1__PING__INIT;
        REQ(r, PING, ping, &p);
        emit("ping", &r);
    }
    /* get / multi_get */
    {
        Statesrv__V1__Get g = STATESRV__V1__GET__INIT;
        g.state = str("s");
        g.key = str("k0");
        REQ(r, GET, get, &g);
        emit("get", &r);
        g.namespace_ = str("ns1");
        emit("get_ns", &r);
        g.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
        g.key_group = 127;
        g.key = str("last");
        g.namespace_ = str("");
        emit("get_kg", &r);
        g.key_group = 128;
        emit("get_kg_out_of_range", &r);
        g.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT__NOT_SET;
        g.state = str("bad state!");
        emit("get_bad_state", &r);
        g.state = str("s");
        g.key = str("");
        emit("get_empty_key", &r);
        g.key = str("missing");
        emit("get_missing", &r);
    }
    {
        Statesrv__V1__Get g[4];
        Statesrv__V1__Get *gp[4];
        const char *keys[4] = {"k11", "k10", "nope", "k9"};
        for (int i = 0; i < 4; i++) {
            statesrv__v1__get__init(&g[i]);
            g[i].state = str("s");
            g[i].key = str(keys[i]);
            gp[i] = &g[i];
        }
        Statesrv__V1__MultiGet m = STATESRV__V1__MULTI_GET__INIT;
        m.n_gets = 4;
        m.gets = gp;
        REQ(r, MULTI_GET, multi_get, &m);
        emit("multi_get", &r);
        Statesrv__V1__Get big[6];
        Statesrv__V1__Get *bigp[6];
        for (int i = 0; i < 6; i++) {
            static char names[6][8];
            snprintf(names[i], sizeof(names[i]), "k%d", 11 - i);
            statesrv__v1__get__init(&big[i]);
            big[i].state = str("s");
            big[i].key = str(names[i]);
            bigp[i] = &big[i];
        }
        Statesrv__V1__MultiGet mb = STATESRV__V1__MULTI_GET__INIT;
        mb.n_gets = 6; /* about 18 KiB of values: more than max_frame_size */
        mb.gets = bigp;
        REQ(rb, MULTI_GET, multi_get, &mb);
        emit("multi_get_too_big", &rb);
        g[2].state = str("lists");
        g[2].key = str("l1");
        m.n_gets = 3;
        emit("multi_get_mixed", &r);
    }
    /* put / delete / merge */
    {
        Statesrv__V1__Put p = STATESRV__V1__PUT__INIT;
        p.state = str("s");
        p.key = str("new");
        p.namespace_ = str("n");
        p.value = str("hello");
        REQ(r, PUT, put, &p);
        emit("put", &r);
        p.state = str("fresh.state-1");
        emit("put_new_state", &r);
        uint8_t list[16];
        size_t ll = sv_list_elem_put(list, "x", 1);
        ll += sv_list_elem_put(list + ll, "yz", 2);
        p.state = str("lists");
        p.kind = STATESRV__V1__VALUE_KIND__LIST;
        p.value = bin(list, ll);
        emit("put_list", &r);
        p.value = bin("\x05\x01", 2);
        emit("put_list_bad", &r);
        uint8_t c[8];
        sv_i64_put(c, -5);
        p.state = str("counters");
        p.kind = STATESRV__V1__VALUE_KIND__COUNTER;
        p.value = bin(c, 8);
        emit("put_counter", &r);
        p.value = bin(c, 7);
        emit("put_counter_bad", &r);
        p.kind = 9;
        emit("put_bad_kind", &r);
        p.kind = STATESRV__V1__VALUE_KIND__RAW;
        p.key_group_opt_case = STATESRV__V1__PUT__KEY_GROUP_OPT_KEY_GROUP;
        p.key_group = 5;
        emit("put_kg", &r);
    }
    {
        Statesrv__V1__Delete d = STATESRV__V1__DELETE__INIT;
        d.state = str("s");
        d.key = str("k3");
        d.namespace_ = str("ns1");
        REQ(r, DELETE, delete_, &d);
        emit("delete", &r);
        d.key = str("absent");
        emit("delete_missing", &r);
    }
    {
        Statesrv__V1__Merge m = STATESRV__V1__MERGE__INIT;
        m.state = str("lists");
        m.key = str("l1");
        m.op = STATESRV__V1__MERGE_OP__APPEND;
        m.operand = str("elem");
        REQ(r, MERGE, merge, &m);
        emit("merge_append", &r);
        uint8_t c[8];
        sv_i64_put(c, 1);
        m.state = str("counters");
        m.key = str("c1");
        m.op = STATESRV__V1__MERGE_OP__ADD_I64;
        m.operand = bin(c, 8);
        emit("merge_add", &r);
        m.key = str("cmax");
        emit("merge_add_overflow", &r);
        m.key = str("fresh");
        emit("merge_add_new", &r);
        m.state = str("s");
        m.key = str("k1");
        emit("merge_add_raw", &r);
        m.op = STATESRV__V1__MERGE_OP__MERGE_OP_UNSPECIFIED;
        emit("merge_no_op", &r);
    }
    /* batch */
    {
        Statesrv__V1__Put p = STATESRV__V1__PUT__INIT;
        p.state = str("s");
        p.key = str("b1");
        p.value = str("v");
        Statesrv__V1__Delete d = STATESRV__V1__DELETE__INIT;
        d.state = str("s");
        d.key = str("k2");
        Statesrv__V1__Merge m = STATESRV__V1__MERGE__INIT;
        m.state = str("lists");
        m.key = str("l2");
        m.namespace_ = str("w");
        m.op = STATESRV__V1__MERGE_OP__APPEND;
        m.operand = str("e");
        Statesrv__V1__BatchOp ops[4];
        Statesrv__V1__BatchOp *opp[4];
        for (int i = 0; i < 4; i++) {
            statesrv__v1__batch_op__init(&ops[i]);
            opp[i] = &ops[i];
        }
        ops[0].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
        ops[0].put = &p;
        ops[1].op_case = STATESRV__V1__BATCH_OP__OP_DELETE;
        ops[1].delete_ = &d;
        ops[2].op_case = STATESRV__V1__BATCH_OP__OP_MERGE;
        ops[2].merge = &m;
        Statesrv__V1__Batch b = STATESRV__V1__BATCH__INIT;
        b.n_ops = 3;
        b.ops = opp;
        REQ(r, BATCH, batch, &b);
        emit("batch", &r);
        b.n_ops = 4; /* the last op has nothing set */
        emit("batch_bad_op", &r);
    }
    /* A batch creating more states than max_states (16) allows. */
    {
        static char names[20][8];
        Statesrv__V1__Put p[20];
        Statesrv__V1__BatchOp ops[20];
        Statesrv__V1__BatchOp *opp[20];
        for (int i = 0; i < 20; i++) {
            snprintf(names[i], sizeof(names[i]), "st%d", i);
            statesrv__v1__put__init(&p[i]);
            p[i].state = str(names[i]);
            p[i].key = str("k");
            statesrv__v1__batch_op__init(&ops[i]);
            ops[i].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
            ops[i].put = &p[i];
            opp[i] = &ops[i];
        }
        Statesrv__V1__Batch b = STATESRV__V1__BATCH__INIT;
        b.n_ops = 20;
        b.ops = opp;
        REQ(r, BATCH, batch, &b);
        emit("batch_many_states", &r);
    }
    /* More ops than max_batch_ops (64), and a value over max_value_size (4 KiB). */
    {
        Statesrv__V1__Delete d = STATESRV__V1__DELETE__INIT;
        d.state = str("s");
        d.key = str("k1");
        Statesrv__V1__BatchOp op = STATESRV__V1__BATCH_OP__INIT;
        op.op_case = STATESRV__V1__BATCH_OP__OP_DELETE;
        op.delete_ = &d;
        Statesrv__V1__BatchOp *opp[65];
        for (int i = 0; i < 65; i++)
            opp[i] = &op;
        Statesrv__V1__Batch b = STATESRV__V1__BATCH__INIT;
        b.n_ops = 65;
        b.ops = opp;
        REQ(r, BATCH, batch, &b);
        emit("batch_too_many_ops", &r);
        static uint8_t v[4097];
        memset(v, 'v', sizeof(v));
        Statesrv__V1__Put p = STATESRV__V1__PUT__INIT;
        p.state = str("s");
        p.key = str("k1");
        p.value = bin(v, sizeof(v));
        REQ(r2, PUT, put, &p);
        emit("put_too_large", &r2);
        Statesrv__V1__Merge m = STATESRV__V1__MERGE__INIT;
        m.state = str("lists");
        m.key = str("l1");
        m.op = STATESRV__V1__MERGE_OP__APPEND;
        m.operand = bin(v, 4090);
        REQ(r3, MERGE, merge, &m);
        emit("merge_append_too_large", &r3);
        /* Two values near max_value_size: the nearly full map overflows. */
        Statesrv__V1__Put p2 = STATESRV__V1__PUT__INIT;
        p2.state = str("s");
        p2.key = str("big1");
        p2.value = bin(v, 4000);
        Statesrv__V1__Put p3 = p2;
        p3.key = str("big2");
        Statesrv__V1__BatchOp bops[2];
        Statesrv__V1__BatchOp *bopp[2] = {&bops[0], &bops[1]};
        statesrv__v1__batch_op__init(&bops[0]);
        statesrv__v1__batch_op__init(&bops[1]);
        bops[0].op_case = bops[1].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
        bops[0].put = &p2;
        bops[1].put = &p3;
        Statesrv__V1__Batch bb = STATESRV__V1__BATCH__INIT;
        bb.n_ops = 2;
        bb.ops = bopp;
        REQ(r4, BATCH, batch, &bb);
        emit("batch_big_values", &r4);
    }
    /* scan */
    {
        Statesrv__V1__Scan s = STATESRV__V1__SCAN__INIT;
        s.state = str("s");
        REQ(r, SCAN, scan, &s);
        emit("scan_all", &r);
        s.limit = 3;
        emit("scan_limit", &r);
        s.limit = 0;
        Statesrv__V1__KeySelector ks = STATESRV__V1__KEY_SELECTOR__INIT;
        ks.key = str("k4");
        s.range_case = STATESRV__V1__SCAN__RANGE_KEY;
        s.key = &ks;
        emit("scan_key", &r);
        Statesrv__V1__KeyGroupRange kr = STATESRV__V1__KEY_GROUP_RANGE__INIT;
        kr.first = 10;
        kr.last = 127;
        s.range_case = STATESRV__V1__SCAN__RANGE_KEY_GROUPS;
        s.key_groups = &kr;
        emit("scan_kgs", &r);
        kr.first = 0;
        kr.last = 128;
        emit("scan_kgs_bad", &r);
        kr.last = 127;
        uint8_t cur[32];
        cur[0] = 1;
        size_t cl = 1 + sv_skey_encode(cur + 1, 40, "k", 1, "", 0);
        s.cursor = bin(cur, cl);
        emit("scan_cursor", &r);
        cur[0] = 2;
        emit("scan_cursor_bad", &r);
    }
    /* clear */
    {
        Statesrv__V1__Clear c = STATESRV__V1__CLEAR__INIT;
        c.state = str("s");
        Statesrv__V1__KeySelector ks = STATESRV__V1__KEY_SELECTOR__INIT;
        ks.key = str("k5");
        c.target_case = STATESRV__V1__CLEAR__TARGET_KEY;
        c.key = &ks;
        REQ(r, CLEAR, clear, &c);
        emit("clear_key", &r);
        c.target_case = STATESRV__V1__CLEAR__TARGET_WHOLE_STATE;
        c.whole_state = 1;
        emit("clear_state", &r);
        c.whole_state = 0;
        emit("clear_state_false", &r);
    }
    /* list_states / stats */
    {
        Statesrv__V1__ListStates l = STATESRV__V1__LIST_STATES__INIT;
        REQ(r, LIST_STATES, list_states, &l);
        emit("list_states", &r);
        Statesrv__V1__Stats st = STATESRV__V1__STATS__INIT;
        REQ(r2, STATS, stats, &st);
        emit("stats", &r2);
    }
    /* checkpoints */
    {
        Statesrv__V1__Snapshot s = STATESRV__V1__SNAPSHOT__INIT;
        REQ(r, SNAPSHOT, snapshot, &s);
        emit("snapshot", &r);
        s.id_opt_case = STATESRV__V1__SNAPSHOT__ID_OPT_ID;
        s.id = 1; /* exists */
        emit("snapshot_id_taken", &r);
        s.id = 0;
        emit("snapshot_id_zero", &r);
        s.id = 42;
        emit("snapshot_id", &r);
        Statesrv__V1__ListCheckpoints l = STATESRV__V1__LIST_CHECKPOINTS__INIT;
        REQ(r2, LIST_CHECKPOINTS, list_checkpoints, &l);
        emit("list_checkpoints", &r2);
        Statesrv__V1__DeleteCheckpoint d = STATESRV__V1__DELETE_CHECKPOINT__INIT;
        d.id = 1;
        REQ(r3, DELETE_CHECKPOINT, delete_checkpoint, &d);
        emit("delete_checkpoint", &r3);
        d.id = 9;
        emit("delete_checkpoint_missing", &r3);
    }
    {
        ProtobufCBinaryData src[2] = {str("1"), str("chk-1")};
        Statesrv__V1__Restore rs = STATESRV__V1__RESTORE__INIT;
        rs.n_sources = 1;
        rs.sources = src;
        REQ(r, RESTORE, restore, &rs);
        emit("restore", &r);
        Statesrv__V1__KeyGroupRange kr = STATESRV__V1__KEY_GROUP_RANGE__INIT;
        kr.first = 3;
        kr.last = 4;
        rs.range_opt_case = STATESRV__V1__RESTORE__RANGE_OPT_KEY_GROUPS;
        rs.key_groups = &kr;
        emit("restore_range", &r);
        rs.n_sources = 2;
        rs.range_opt_case = STATESRV__V1__RESTORE__RANGE_OPT__NOT_SET;
        emit("restore_two", &r);
        src[0] = str("/etc");
        rs.n_sources = 1;
        emit("restore_outside", &r);
        src[0] = bin("1\0", 2);
        emit("restore_nul", &r);
        rs.n_sources = 0;
        emit("restore_none", &r);
    }
}

/* --- frame streams ------------------------------------------------------------- */

/* fuzz_frame's layout: u16 max_frame, u8 n, n control bytes, stream. */
static void frame_seed(const char *name, uint16_t max_frame, const uint8_t *ctl, size_t nctl,
                       const size_t *which, size_t nwhich)
{
    static uint8_t buf[4096]; /* fuzz_frame's -max_len */
    size_t n = 0;
    buf[n++] = (uint8_t)(max_frame >> 8);
    buf[n++] = (uint8_t)max_frame;
    buf[n++] = (uint8_t)nctl;
    if (nctl)
        memcpy(buf + n, ctl, nctl);
    n += nctl;
    for (size_t i = 0; i < nwhich; i++) {
        size_t len = reqs[which[i]].n;
        if (n + SV_FRAME_HEADER_SIZE + len > sizeof(buf))
            continue; /* the big ones do not fit */
        sv_frame_header_put(buf + n, (uint32_t)len);
        memcpy(buf + n + SV_FRAME_HEADER_SIZE, reqs[which[i]].p, len);
        n += SV_FRAME_HEADER_SIZE + len;
    }
    write_seed("fuzz_frame", name, buf, n);
}

/* Control ops of fuzz_frame.c (op = byte % 8). */
enum { C_FEED, C_SPACE, C_TAKE, C_MARK, C_REWIND, C_DISCARD, C_BIGROOM, C_DRAIN };

static void gen_frames(void)
{
    size_t all[MAX_REQS];
    for (size_t i = 0; i < nreqs; i++)
        all[i] = i;
    /* Every op, fed in one piece. */
    frame_seed("all_ops_one_piece", 4096, NULL, 0, all, nreqs);
    /* Byte-sized pieces, taking as they come. */
    {
        uint8_t ctl[120];
        for (size_t i = 0; i < sizeof(ctl); i += 3) {
            ctl[i] = C_FEED;
            ctl[i + 1] = (uint8_t)(1 + i % 7);
            ctl[i + 2] = C_TAKE | 3 << 3;
        }
        frame_seed("small_pieces", 4096, ctl, sizeof(ctl), all, 20);
    }
    /* A batch that is marked, taken, rewound and replayed, then discarded. */
    {
        const uint8_t ctl[] = {C_MARK,   C_FEED,    200,     C_TAKE | 31 << 3,
                               C_REWIND, C_SPACE,   150,     C_TAKE | 7 << 3,
                               C_REWIND, C_DISCARD, C_MARK,  C_SPACE | 8 << 3,
                               255,      C_DRAIN,   C_FEED,  90,
                               C_MARK,   C_TAKE,    C_REWIND};
        frame_seed("mark_rewind", 4096, ctl, sizeof(ctl), all, nreqs);
    }
    /* Growth past the idle cap, then release on discard. */
    {
        const uint8_t ctl[] = {C_BIGROOM, 100, C_FEED, 255, C_DRAIN, C_BIGROOM, 200, C_DISCARD};
        frame_seed("big_room", 4096, ctl, sizeof(ctl), all, 30);
    }
    /* A small max_frame: the first large request is refused. */
    {
        const uint8_t ctl[] = {C_FEED, 64, C_DRAIN, C_FEED, 255, C_TAKE | 31 << 3};
        frame_seed("max_frame_small", 24, ctl, sizeof(ctl), all, nreqs);
    }
    /* Empty frames only. */
    {
        uint8_t buf[3 + 4 * 8] = {0x10, 0x00, 0};
        write_seed("fuzz_frame", "empty_frames", buf, sizeof(buf));
    }
}

/* --- checkpoints ----------------------------------------------------------------- */

/* fuzz_ckpt's flags. */
#define F_FIX_ALL 0x0f
#define F_ITER_FIRST 0x80

struct ent {
    const char *state;
    uint32_t kg;
    const char *key, *ns;
    size_t vlen;
};

static void ckpt_seed(const char *name, uint8_t flags, const struct sv_ckpt_writer_options *o,
                      const char *const *states, size_t nstates, const struct ent *e, size_t ne)
{
    char tmpl[] = "/tmp/gen_corpus-XXXXXX";
    if (!mkdtemp(tmpl))
        DIE("mkdtemp: %s", strerror(errno));
    char err[512];
    struct sv_ckpt_writer *w;
    if (sv_ckpt_writer_open(tmpl, o, &w, err, sizeof(err)))
        DIE("writer: %s", err);
    static uint8_t val[8192];
    for (size_t s = 0; s < nstates; s++) {
        if (sv_ckpt_writer_state(w, states[s]))
            DIE("writer state %s", states[s]);
        for (size_t i = 0; i < ne; i++) {
            if (strcmp(e[i].state, states[s]) != 0)
                continue;
            uint8_t sk[128];
            size_t skl =
                sv_skey_encode(sk, e[i].kg, e[i].key, strlen(e[i].key), e[i].ns, strlen(e[i].ns));
            size_t vh = sv_value_header_put(val, SV_KIND_RAW, 0);
            for (size_t k = 0; k < e[i].vlen; k++)
                val[vh + k] = (uint8_t)("abcab"[k % 5] + (k / 64) % 3);
            /* In an incremental file, a vlen of 0 is a tombstone. */
            size_t vl = o->incremental && e[i].vlen == 0 ? 0 : vh + e[i].vlen;
            if (sv_ckpt_writer_add(w, sk, skl, val, vl))
                DIE("writer add %s/%s", states[s], e[i].key);
        }
    }
    if (o->format_version != SV_CKPT_FORMAT_V2) {
        if (sv_ckpt_writer_finish(w, NULL, err, sizeof(err)))
            DIE("writer finish: %s", err);
    } else {
        /* Version 2: the file as its chain's last link; with incremental,
         * after a full link (id 3) whose file fuzz_ckpt never reads. */
        struct sv_ckpt_link own;
        if (sv_ckpt_writer_finish_link(w, &own, err, sizeof(err)))
            DIE("writer finish: %s", err);
        struct sv_ckpt_state full_state = {.name = "alpha",
                                           .entries = 1,
                                           .raw_bytes = 9,
                                           .kg_min = o->kg_first,
                                           .kg_max = o->kg_first,
                                           .blocks = 1};
        struct sv_ckpt_link links[2] = {{.checkpoint_id = 3,
                                         .file = "chk-3/data",
                                         .data_bytes = 139,
                                         .data_xxh3 = 1,
                                         .entries = 1,
                                         .raw_bytes = 9,
                                         .blocks = 1,
                                         .n_states = 1,
                                         .states = &full_state},
                                        own};
        size_t nl = o->incremental ? 2 : 1;
        struct sv_ckpt_state live[8];
        memset(live, 0, sizeof(live));
        for (size_t i = 0; i < own.n_states && i < 8; i++) {
            memcpy(live[i].name, own.states[i].name, sizeof(live[i].name));
            live[i].entries = own.states[i].entries - own.states[i].tombstones;
        }
        struct sv_ckpt_manifest m = {.format_version = SV_CKPT_FORMAT_V2,
                                     .checkpoint_id = o->checkpoint_id,
                                     .key_groups = o->key_groups,
                                     .kg_first = o->kg_first,
                                     .kg_last = o->kg_last,
                                     .data_bytes = own.data_bytes,
                                     .data_xxh3 = own.data_xxh3,
                                     .raw_bytes = own.raw_bytes,
                                     .compression = o->compression,
                                     .compression_level = o->compression_level,
                                     .blocks = own.blocks,
                                     .n_states = own.n_states < 8 ? own.n_states : 8,
                                     .states = live,
                                     .incremental = o->incremental,
                                     .base_id = nl == 2 ? 3 : o->checkpoint_id,
                                     .added_bytes = own.data_bytes,
                                     .total_bytes =
                                         own.data_bytes + (nl == 2 ? links[0].data_bytes : 0),
                                     .n_links = nl,
                                     .links = nl == 2 ? links : links + 1};
        snprintf(m.server_version, sizeof(m.server_version), "%s", o->server_version);
        for (size_t i = 0; i < m.n_states; i++)
            m.entries += live[i].entries;
        if (sv_ckpt_manifest_write(tmpl, &m, err, sizeof(err)))
            DIE("manifest: %s", err);
        free(own.states);
    }
    char path[256];
    size_t ml, dl;
    snprintf(path, sizeof(path), "%s/%s", tmpl, SV_CKPT_MANIFEST_FILE);
    uint8_t *m = slurp(path, &ml);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", tmpl, SV_CKPT_DATA_FILE);
    uint8_t *d = slurp(path, &dl);
    unlink(path);
    rmdir(tmpl);
    uint8_t *buf = malloc(6 + ml + dl);
    if (!buf)
        DIE("out of memory");
    buf[0] = flags;
    buf[1] = (uint8_t)(ml * 7 + dl);
    buf[2] = (uint8_t)(ml >> 24);
    buf[3] = (uint8_t)(ml >> 16);
    buf[4] = (uint8_t)(ml >> 8);
    buf[5] = (uint8_t)ml;
    memcpy(buf + 6, m, ml);
    memcpy(buf + 6 + ml, d, dl);
    write_seed("fuzz_ckpt", name, buf, 6 + ml + dl);
    free(buf);
    free(m);
    free(d);
}

static void gen_ckpts(void)
{
    struct sv_ckpt_writer_options o = {
        .checkpoint_id = 7,
        .key_groups = 16,
        .kg_first = 0,
        .kg_last = 15,
        .compression = SV_CKPT_COMPRESS_NONE,
        .server_version = "0.1.0",
    };
    /* No states at all: the smallest data file. */
    ckpt_seed("empty", F_FIX_ALL, &o, NULL, 0, NULL, 0);

    /* One entry: the shape of the example in docs/checkpoint-format.md; one
     * copy with its checksums left to the mutations. */
    {
        static const char *const st[] = {"s"};
        const struct ent e[] = {{"s", 1, "k", "", 1}};
        o.key_groups = 128;
        o.kg_last = 127;
        ckpt_seed("one_entry", 0, &o, st, 1, e, 1);
        ckpt_seed("one_entry_fix", F_FIX_ALL, &o, st, 1, e, 1);
    }

    /* Several states, one without entries, several key groups, blocks cut
     * small so that states and key groups span several blocks. */
    static const char *const st[] = {"alpha", "beta", "empty", "gamma.2"};
    const struct ent e[] = {
        {"alpha", 2, "a", "", 10},       {"alpha", 2, "a", "n1", 30},   {"alpha", 2, "b", "", 0},
        {"alpha", 2, "bb", "x", 70},     {"alpha", 3, "a", "", 5},      {"alpha", 9, "zz", "", 200},
        {"alpha", 13, "q", "ns", 12},    {"beta", 2, "k", "", 1},       {"beta", 13, "k", "", 2},
        {"gamma.2", 5, "key", "", 100},  {"gamma.2", 5, "key", "a", 3}, {"gamma.2", 6, "x", "", 9},
        {"gamma.2", 12, "long", "", 600}};
    size_t ne = sizeof(e) / sizeof(e[0]);
    o.key_groups = 16;
    o.kg_first = 2;
    o.kg_last = 13;
    o.block_size = 64;
    ckpt_seed("multi_none", F_FIX_ALL, &o, st, 4, e, ne);
    ckpt_seed("multi_none_iter_first", F_FIX_ALL | F_ITER_FIRST, &o, st, 4, e, ne);
    o.compression = SV_CKPT_COMPRESS_ZSTD;
    o.compression_level = 3;
    ckpt_seed("multi_zstd", F_FIX_ALL, &o, st, 4, e, ne);
    ckpt_seed("multi_zstd_nofix", 0, &o, st, 4, e, ne);
    o.block_size = 0;
    ckpt_seed("multi_zstd_big_blocks", F_FIX_ALL | F_ITER_FIRST, &o, st, 4, e, ne);

    /* A single entry larger than the block size. */
    {
        static const char *const st1[] = {"big"};
        const struct ent big[] = {{"big", 7, "huge", "", 3000}, {"big", 7, "huge2", "", 10}};
        o.block_size = 512;
        ckpt_seed("large_entry_zstd", F_FIX_ALL, &o, st1, 1, big, 2);
        o.compression = SV_CKPT_COMPRESS_NONE;
        o.compression_level = 0;
        ckpt_seed("large_entry_none", F_FIX_ALL, &o, st1, 1, big, 2);
    }

    /* Version 2: a full file alone, and an incremental one (tombstones, a
     * state without changes) after a full link. */
    o.format_version = SV_CKPT_FORMAT_V2;
    o.block_size = 64;
    ckpt_seed("v2_full", F_FIX_ALL, &o, st, 4, e, ne);
    o.incremental = 1;
    ckpt_seed("v2_incremental", F_FIX_ALL, &o, st, 4, e, ne);
    ckpt_seed("v2_incremental_nofix", 0, &o, st, 4, e, ne);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    out_root = argv[1];
    char path[1024];
    mkdir_or_die(out_root);
    const char *targets[] = {"fuzz_request", "fuzz_frame", "fuzz_ckpt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", out_root, targets[i]);
        mkdir_or_die(path);
    }
    gen_requests();
    gen_frames();
    gen_ckpts();
    for (size_t i = 0; i < nreqs; i++)
        free(reqs[i].p);
    printf("gen_corpus: %zu requests, corpora in %s\n", nreqs, out_root);
    return 0;
}
