/* Raw wire protocol against a real statesrvd: hostile frames, bad fields,
 * pipelining, connection limits. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"
#include "sv_buf.h"
#include "sv_frame.h"
#include "sv_msg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct ts srv;

static void put_req(Statesrv__V1__Request *req, Statesrv__V1__Put *put, uint64_t id,
                    const char *key)
{
    statesrv__v1__request__init(req);
    statesrv__v1__put__init(put);
    put->state = pb_str("pipe");
    put->key.data = (uint8_t *)key;
    put->key.len = strlen(key);
    put->value.data = (uint8_t *)"v";
    put->value.len = 1;
    req->id = id;
    req->op_case = STATESRV__V1__REQUEST__OP_PUT;
    req->put = put;
}

static void setup(void)
{
    ts_start(&srv, NULL);
}

static void teardown(void)
{
    ts_cleanup(&srv);
}

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static void send_ping(int fd, uint64_t id)
{
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Ping ping = STATESRV__V1__PING__INIT;
    req.id = id;
    req.op_case = STATESRV__V1__REQUEST__OP_PING;
    req.ping = &ping;
    raw_send_msg(fd, &req.base);
}

/* A ping round trip on fd succeeds. */
static void assert_alive(int fd, uint64_t id)
{
    send_ping(fd, id);
    Statesrv__V1__Response *r = raw_recv(fd, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, id);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    ck_assert_int_eq(r->result_case, STATESRV__V1__RESPONSE__RESULT_PING);
    statesrv__v1__response__free_unpacked(r, NULL);
}

/* Expects exactly one error with id 0 and the given status, then a close. */
static void assert_fatal(int fd, Statesrv__V1__Status status, const char *text)
{
    Statesrv__V1__Response *r = raw_recv(fd, 5000);
    ck_assert_msg(r != NULL, "connection closed without an error response");
    ck_assert_uint_eq(r->id, 0);
    ck_assert_int_eq(r->status, status);
    ck_assert_msg(strstr(r->message, text) != NULL, "message '%s' lacks '%s'", r->message, text);
    statesrv__v1__response__free_unpacked(r, NULL);
    ck_assert_msg(raw_wait_closed(fd, 5000), "server did not close the connection");
}

/* Writes and batches arriving in one read share group commits. A failing
 * batch undoes its own ops and nothing else: not the put before it (the
 * server ends the group commit before a batch when it has no nested
 * transactions, with writemap), nor the writes after it. */
START_TEST(pipelined_batches_are_atomic_among_other_writes)
{
    Statesrv__V1__Request req[5];
    Statesrv__V1__Put put[5], bput[3];
    Statesrv__V1__Batch batch[2];
    Statesrv__V1__BatchOp bop[3], *bops[3];
    put_req(&req[0], &put[0], 1, "before");
    put_req(&req[2], &put[2], 3, "after");
    put_req(&req[4], &put[4], 5, "last");
    const char *bkeys[3] = {"in-bad-batch", "", "in-good-batch"};
    for (int i = 0; i < 3; i++) {
        Statesrv__V1__Request tmp;
        put_req(&tmp, &bput[i], 0, bkeys[i]);
        statesrv__v1__batch_op__init(&bop[i]);
        bop[i].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
        bop[i].put = &bput[i];
        bops[i] = &bop[i];
    }
    for (int b = 0; b < 2; b++) {
        statesrv__v1__batch__init(&batch[b]);
        statesrv__v1__request__init(&req[1 + 2 * b]);
        req[1 + 2 * b].id = (uint64_t)(2 + 2 * b);
        req[1 + 2 * b].op_case = STATESRV__V1__REQUEST__OP_BATCH;
        req[1 + 2 * b].batch = &batch[b];
    }
    batch[0].n_ops = 2; /* "in-bad-batch", then an empty key: fails */
    batch[0].ops = bops;
    batch[1].n_ops = 1;
    batch[1].ops = bops + 2;

    /* The cut before a batch exists only with writemap (the default with
     * sync = none): make sure that is what runs. */
    ck_assert(ts_log_contains(&srv, "writemap on"));
    struct sv_buf frames = {0};
    int fd = raw_connect_tcp(&srv);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sv_msg_append(&frames, &req[i].base, 1 << 20), 0);
    raw_send(fd, frames.data, frames.len); /* one write: one read, most likely */
    sv_buf_free(&frames);
    for (uint64_t id = 1; id <= 5; id++) {
        Statesrv__V1__Response *r = raw_recv(fd, 5000);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, id);
        if (id == 2) {
            ck_assert_int_eq(r->status, STATESRV__V1__STATUS__INVALID_ARGUMENT);
            ck_assert_ptr_nonnull(strstr(r->message, "nothing was applied"));
        } else {
            ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "request %llu: %s",
                          (unsigned long long)id, r->message);
        }
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    close(fd);
    char out[512];
    const char *present[] = {"before", "after", "last", "in-good-batch"};
    for (int i = 0; i < 4; i++) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s -a %s get pipe %s", statectl_path(), srv.tcp_addr,
                 present[i]);
        ck_assert_msg(run_cmd(cmd, out, sizeof(out)) == 0, "%s is missing", present[i]);
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s -a %s get pipe in-bad-batch", statectl_path(), srv.tcp_addr);
    ck_assert_int_ne(run_cmd(cmd, out, sizeof(out)), 0);
}
END_TEST

/* A client streaming Batch requests (each needs a clean group transaction
 * with writemap) must not starve another client's single put. */
enum { STREAM_BATCHES = 20000 };
static atomic_int stream_replies;

struct stream {
    struct sv_buf frames;
    int fd;
};

static void *stream_send(void *arg)
{
    const struct stream *s = arg;
    const uint8_t *p = s->frames.data;
    size_t n = s->frames.len;
    while (n) {
        ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    return NULL;
}

static void *stream_read(void *arg)
{
    int fd = *(int *)arg;
    for (int i = 0; i < STREAM_BATCHES; i++) {
        Statesrv__V1__Response *r = raw_recv(fd, 30000);
        if (!r)
            break;
        statesrv__v1__response__free_unpacked(r, NULL);
        atomic_fetch_add(&stream_replies, 1);
    }
    return NULL;
}

START_TEST(batch_stream_does_not_starve_others)
{
    struct stream s = {{0}, -1};
    for (int i = 0; i < STREAM_BATCHES; i++) {
        char key[32];
        snprintf(key, sizeof(key), "b%d", i);
        Statesrv__V1__Request req, tmp;
        Statesrv__V1__Put bput;
        Statesrv__V1__BatchOp bop, *bops[1] = {&bop};
        Statesrv__V1__Batch batch;
        put_req(&tmp, &bput, 0, key);
        statesrv__v1__batch_op__init(&bop);
        bop.op_case = STATESRV__V1__BATCH_OP__OP_PUT;
        bop.put = &bput;
        statesrv__v1__batch__init(&batch);
        batch.n_ops = 1;
        batch.ops = bops;
        statesrv__v1__request__init(&req);
        req.id = (uint64_t)i + 1;
        req.op_case = STATESRV__V1__REQUEST__OP_BATCH;
        req.batch = &batch;
        ck_assert_int_eq(sv_msg_append(&s.frames, &req.base, 1 << 20), 0);
    }
    statesrv *a;
    char err[256];
    ck_assert_int_eq(statesrv_connect2(srv.tcp_addr, NULL, &a, err, sizeof(err)), STATESRV_OK);
    s.fd = raw_connect_tcp(&srv);
    atomic_store(&stream_replies, 0);
    pthread_t ts, tr;
    pthread_create(&tr, NULL, stream_read, &s.fd);
    pthread_create(&ts, NULL, stream_send, &s);
    while (atomic_load(&stream_replies) < 100)
        usleep(1000);
    statesrv_key k = {.state = "pipe", .key = "a", .key_len = 1};
    ck_assert_int_eq(statesrv_put(a, &k, "v", 1), STATESRV_OK);
    int when = atomic_load(&stream_replies);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    fprintf(stderr, "batch stream: the other client's put was answered after %d of %d batches\n",
            when, STREAM_BATCHES);
    ck_assert_int_eq(atomic_load(&stream_replies), STREAM_BATCHES);
    ck_assert_int_lt(when, STREAM_BATCHES * 3 / 4);
    statesrv_close(a);
    close(s.fd);
    sv_buf_free(&s.frames);
}
END_TEST

START_TEST(oversize_frame_closes_only_that_connection)
{
    int other = raw_connect_tcp(&srv);
    assert_alive(other, 1);
    int fd = raw_connect_tcp(&srv);
    uint8_t hdr[4];
    sv_frame_header_put(hdr, (16u << 20) + 1);
    raw_send(fd, hdr, 4);
    raw_send(fd, "some of the body", 16);
    assert_fatal(fd, STATESRV__V1__STATUS__TOO_LARGE, "max_frame_size");
    close(fd);
    assert_alive(other, 2);
    close(other);
}
END_TEST

START_TEST(undecodable_frame_closes)
{
    int fd = raw_connect_tcp(&srv);
    assert_alive(fd, 1);
    /* field 1 says varint, then the stream ends mid-varint */
    raw_send(fd, "\x00\x00\x00\x03\x08\xff\xff", 7);
    assert_fatal(fd, STATESRV__V1__STATUS__INVALID_ARGUMENT, "malformed request");
    close(fd);
}
END_TEST

START_TEST(request_without_op_closes)
{
    int fd = raw_connect_unix(&srv);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    req.id = 7;
    raw_send_msg(fd, &req.base);
    assert_fatal(fd, STATESRV__V1__STATUS__INVALID_ARGUMENT, "known op");
    close(fd);
}
END_TEST

START_TEST(error_reply_survives_unread_input)
{
    /* The client keeps sending after its bad frame: the server must still
     * deliver the error (no reset that destroys it). */
    int fd = raw_connect_tcp(&srv);
    static char junk[256 * 1024];
    memset(junk, 'x', sizeof(junk));
    raw_send(fd, "\x00\x00\x00\x02\xff\xff", 6);
    raw_send(fd, junk, sizeof(junk));
    assert_fatal(fd, STATESRV__V1__STATUS__INVALID_ARGUMENT, "malformed");
    close(fd);
}
END_TEST

START_TEST(frame_in_single_bytes_and_coalesced)
{
    int fd = raw_connect_tcp(&srv);
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Ping ping = STATESRV__V1__PING__INIT;
    req.id = 42;
    req.op_case = STATESRV__V1__REQUEST__OP_PING;
    req.ping = &ping;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&req.base, buf + 4);
    sv_frame_header_put(buf, (uint32_t)n);
    for (size_t i = 0; i < n + 4; i++) {
        raw_send(fd, buf + i, 1);
        usleep(1000);
    }
    Statesrv__V1__Response *r = raw_recv(fd, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, 42);
    statesrv__v1__response__free_unpacked(r, NULL);

    /* Three frames in one write. */
    uint8_t three[192];
    for (int i = 0; i < 3; i++) {
        req.id = 100 + (uint64_t)i;
        size_t m = protobuf_c_message_pack(&req.base, three + i * (n + 4) + 4);
        ck_assert_uint_eq(m, n);
        sv_frame_header_put(three + i * (n + 4), (uint32_t)m);
    }
    raw_send(fd, three, 3 * (n + 4));
    for (int i = 0; i < 3; i++) {
        r = raw_recv(fd, 5000);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, 100 + (uint64_t)i);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    close(fd);
}
END_TEST

/* --- bad fields: an error reply, and the connection stays open ----------- */

struct bad_case {
    const char *what;
    Statesrv__V1__Status status;
    const char *text;
};

static char big_key[700];
static char big_value[2048];

/* Builds bad request number i into req (static storage). */
static const struct bad_case *build_bad(int i, Statesrv__V1__Request *req)
{
    static Statesrv__V1__Get get;
    static Statesrv__V1__Put put;
    static Statesrv__V1__Merge merge;
    static Statesrv__V1__Scan scan;
    static Statesrv__V1__KeyGroupRange kgr;
    static Statesrv__V1__Clear clear;
    static Statesrv__V1__Hello hello;
    static Statesrv__V1__Batch batch;
    static Statesrv__V1__BatchOp bop[2], *bops[2];
    static Statesrv__V1__Put bput[2];
    static const struct bad_case cases[] = {
        {"empty key", STATESRV__V1__STATUS__INVALID_ARGUMENT, "key is empty"},
        {"bad state name", STATESRV__V1__STATUS__INVALID_ARGUMENT, "state name 'a/b'"},
        {"empty state name", STATESRV__V1__STATUS__INVALID_ARGUMENT, "state name is empty"},
        {"65-byte state name", STATESRV__V1__STATUS__INVALID_ARGUMENT, "is invalid"},
        {"key group out of range", STATESRV__V1__STATUS__INVALID_ARGUMENT,
         "key_group 128 is out of range"},
        {"key too large", STATESRV__V1__STATUS__TOO_LARGE, "maximum key size"},
        {"value too large", STATESRV__V1__STATUS__TOO_LARGE, "max_value_size"},
        {"unknown merge op", STATESRV__V1__STATUS__INVALID_ARGUMENT, "unknown merge op"},
        {"ADD_I64 operand of 3 bytes", STATESRV__V1__STATUS__INVALID_ARGUMENT, "8 bytes"},
        {"COUNTER put of 3 bytes", STATESRV__V1__STATUS__INVALID_ARGUMENT, "COUNTER value"},
        {"malformed LIST put", STATESRV__V1__STATUS__INVALID_ARGUMENT, "LIST value"},
        {"unknown value kind", STATESRV__V1__STATUS__INVALID_ARGUMENT, "unknown value kind"},
        {"scan with inverted key groups", STATESRV__V1__STATUS__INVALID_ARGUMENT,
         "key group range"},
        {"scan with a foreign cursor", STATESRV__V1__STATUS__INVALID_ARGUMENT, "cursor"},
        {"clear without a target", STATESRV__V1__STATUS__INVALID_ARGUMENT, "whole_state"},
        {"hello with protocol 99", STATESRV__V1__STATUS__INVALID_ARGUMENT, "protocol version"},
        {"batch with a bad second op", STATESRV__V1__STATUS__INVALID_ARGUMENT,
         "ops[1] (put): key is empty; nothing was applied"},
        {"state name with a NUL byte", STATESRV__V1__STATUS__INVALID_ARGUMENT,
         "state name 'users\\x00../../etc' is invalid"},
    };
    if (i >= (int)(sizeof(cases) / sizeof(cases[0])))
        return NULL;
    memset(big_key, 'k', sizeof(big_key) - 1);
    memset(big_value, 'v', sizeof(big_value) - 1);
    statesrv__v1__request__init(req);
    req->id = 1000 + (uint64_t)i;
    statesrv__v1__get__init(&get);
    get.state = pb_str("s");
    get.key = bin("k");
    statesrv__v1__put__init(&put);
    put.state = pb_str("s");
    put.key = bin("k");
    put.value = bin("v");
    statesrv__v1__merge__init(&merge);
    merge.state = pb_str("s");
    merge.key = bin("k");
    statesrv__v1__scan__init(&scan);
    scan.state = pb_str("s");
    req->op_case = STATESRV__V1__REQUEST__OP_GET;
    req->get = &get;
    switch (i) {
    case 0:
        get.key = bin("");
        break;
    case 1:
        get.state = pb_str("a/b");
        break;
    case 2:
        get.state = pb_str("");
        break;
    case 3:
        get.state = pb_str("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        break;
    case 4:
        get.key_group_opt_case = STATESRV__V1__GET__KEY_GROUP_OPT_KEY_GROUP;
        get.key_group = 128;
        break;
    case 5:
        get.key = bin(big_key);
        break;
    case 6:
        req->op_case = STATESRV__V1__REQUEST__OP_PUT;
        req->put = &put;
        put.value = bin(big_value); /* the server runs with max_value_size = 1000 */
        break;
    case 7:
    case 8:
        req->op_case = STATESRV__V1__REQUEST__OP_MERGE;
        req->merge = &merge;
        merge.op = i == 7 ? 9 : STATESRV__V1__MERGE_OP__ADD_I64;
        merge.operand = bin("abc");
        break;
    case 9:
    case 10:
    case 11:
        req->op_case = STATESRV__V1__REQUEST__OP_PUT;
        req->put = &put;
        put.kind = i == 9    ? STATESRV__V1__VALUE_KIND__COUNTER
                   : i == 10 ? STATESRV__V1__VALUE_KIND__LIST
                             : 7;
        put.value = bin(i == 10 ? "\x05"
                                  "ab"
                                : "abc");
        break;
    case 12:
    case 13:
        req->op_case = STATESRV__V1__REQUEST__OP_SCAN;
        req->scan = &scan;
        statesrv__v1__key_group_range__init(&kgr);
        kgr.first = 9;
        kgr.last = i == 12 ? 3 : 10;
        scan.range_case = STATESRV__V1__SCAN__RANGE_KEY_GROUPS;
        scan.key_groups = &kgr;
        if (i == 13)
            scan.cursor = bin("\x01\x00\x01\x01k"); /* key group 1: outside 9..10 */
        break;
    case 14:
        statesrv__v1__clear__init(&clear);
        clear.state = pb_str("s");
        req->op_case = STATESRV__V1__REQUEST__OP_CLEAR;
        req->clear = &clear;
        break;
    case 15:
        statesrv__v1__hello__init(&hello);
        hello.protocol_version = 99;
        req->op_case = STATESRV__V1__REQUEST__OP_HELLO;
        req->hello = &hello;
        break;
    case 16:
        statesrv__v1__batch__init(&batch);
        for (int j = 0; j < 2; j++) {
            statesrv__v1__batch_op__init(&bop[j]);
            statesrv__v1__put__init(&bput[j]);
            bput[j].state = pb_str("batched");
            bput[j].key = bin(j == 0 ? "first" : "");
            bput[j].value = bin("v");
            bop[j].op_case = STATESRV__V1__BATCH_OP__OP_PUT;
            bop[j].put = &bput[j];
            bops[j] = &bop[j];
        }
        batch.n_ops = 2;
        batch.ops = bops;
        req->op_case = STATESRV__V1__REQUEST__OP_BATCH;
        req->batch = &batch;
        break;
    case 17:
        /* protobuf-c would cut a `string` here; state names are bytes. */
        req->op_case = STATESRV__V1__REQUEST__OP_PUT;
        req->put = &put;
        put.state.data = (uint8_t *)"users\0../../etc";
        put.state.len = 15;
        break;
    }
    return &cases[i];
}

START_TEST(bad_fields_answered_connection_kept)
{
    /* A server with a small max_value_size so "value too large" is cheap. */
    ts_cleanup(&srv);
    ts_start_with_config(&srv, "max_value_size = 1000\n");

    int fd = raw_connect_tcp(&srv);
    Statesrv__V1__Request req;
    const struct bad_case *bc;
    for (int i = 0; (bc = build_bad(i, &req)) != NULL; i++) {
        raw_send_msg(fd, &req.base);
        Statesrv__V1__Response *r = raw_recv(fd, 5000);
        ck_assert_msg(r != NULL, "%s: connection closed", bc->what);
        ck_assert_uint_eq(r->id, req.id);
        ck_assert_msg(r->status == bc->status, "%s: status %d, want %d (%s)", bc->what, r->status,
                      bc->status, r->message);
        ck_assert_msg(strstr(r->message, bc->text) != NULL, "%s: message '%s' lacks '%s'", bc->what,
                      r->message, bc->text);
        ck_assert_int_eq(r->result_case, STATESRV__V1__RESPONSE__RESULT__NOT_SET);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    assert_alive(fd, 1);

    /* The failed batch applied nothing: its first (valid) put is absent. */
    Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
    get.state = pb_str("batched");
    get.key = bin("first");
    req.op_case = STATESRV__V1__REQUEST__OP_GET;
    req.get = &get;
    req.id = 2;
    raw_send_msg(fd, &req.base);
    Statesrv__V1__Response *r = raw_recv(fd, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__NOT_FOUND);
    statesrv__v1__response__free_unpacked(r, NULL);
    close(fd);
}
END_TEST

START_TEST(raw_pipeline_in_order)
{
    /* 10,000 requests in one burst; replies in order with their ids. */
    enum { N = 10000 };
    int fd = raw_connect_tcp(&srv);
    size_t cap = (size_t)N * 64, len = 0;
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    char key[32];
    for (int i = 0; i < N; i++) {
        Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
        Statesrv__V1__Put put = STATESRV__V1__PUT__INIT;
        Statesrv__V1__Get get = STATESRV__V1__GET__INIT;
        snprintf(key, sizeof(key), "k%d", i / 2);
        req.id = (uint64_t)i + 1;
        if (i % 2 == 0) {
            put.state = pb_str("pipe");
            put.key = bin(key);
            put.value = bin(key);
            req.op_case = STATESRV__V1__REQUEST__OP_PUT;
            req.put = &put;
        } else {
            /* Reads see the earlier writes of the same connection. */
            get.state = pb_str("pipe");
            get.key = bin(key);
            req.op_case = STATESRV__V1__REQUEST__OP_GET;
            req.get = &get;
        }
        size_t n = protobuf_c_message_pack(&req.base, buf + len + 4);
        sv_frame_header_put(buf + len, (uint32_t)n);
        len += n + 4;
    }
    raw_send(fd, buf, len);
    free(buf);
    for (int i = 0; i < N; i++) {
        Statesrv__V1__Response *r = raw_recv(fd, 10000);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->id, (uint64_t)i + 1);
        ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
        if (i % 2) {
            snprintf(key, sizeof(key), "k%d", i / 2);
            ck_assert_int_eq(r->result_case, STATESRV__V1__RESPONSE__RESULT_GET);
            ck_assert_uint_eq(r->get->value.len, strlen(key));
            ck_assert(memcmp(r->get->value.data, key, strlen(key)) == 0);
        }
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    close(fd);
}
END_TEST

START_TEST(max_connections_rejects_one_past)
{
    ts_cleanup(&srv);
    ts_start_with_config(&srv, "max_connections = 2\n");

    int a = raw_connect_tcp(&srv), b = raw_connect_unix(&srv);
    assert_alive(a, 1);
    assert_alive(b, 1);
    int c = raw_connect_tcp(&srv);
    assert_fatal(c, STATESRV__V1__STATUS__UNAVAILABLE, "max_connections = 2");
    close(c);
    assert_alive(a, 2);
    assert_alive(b, 2);
    /* A slot freed is a slot reusable. */
    close(b);
    usleep(100000);
    int d = raw_connect_tcp(&srv);
    assert_alive(d, 1);
    close(d);
    close(a);
}
END_TEST

START_TEST(unix_socket_mode_0600)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/sock", srv.dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    int fd = raw_connect_unix(&srv);
    assert_alive(fd, 1);
    close(fd);
}
END_TEST

START_TEST(half_frame_then_eof)
{
    /* A client that disconnects mid-frame disturbs no one. */
    int fd = raw_connect_tcp(&srv);
    raw_send(fd, "\x00\x00\x01\x00partial", 11);
    close(fd);
    int other = raw_connect_tcp(&srv);
    assert_alive(other, 1);
    close(other);
}
END_TEST

Suite *sv_suite_protocol(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("protocol");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pipelined_batches_are_atomic_among_other_writes);
    tcase_add_test(tc, batch_stream_does_not_starve_others);
    tcase_add_test(tc, oversize_frame_closes_only_that_connection);
    tcase_add_test(tc, undecodable_frame_closes);
    tcase_add_test(tc, request_without_op_closes);
    tcase_add_test(tc, error_reply_survives_unread_input);
    tcase_add_test(tc, frame_in_single_bytes_and_coalesced);
    tcase_add_test(tc, bad_fields_answered_connection_kept);
    tcase_add_test(tc, raw_pipeline_in_order);
    tcase_add_test(tc, max_connections_rejects_one_past);
    tcase_add_test(tc, unix_socket_mode_0600);
    tcase_add_test(tc, half_frame_then_eof);
    suite_add_tcase(s, tc);
    return s;
}
