/* What a restore accepts from a checkpoint: every stored key and value as
 * strictly as a put would (server/checkpoint.c), on a whole server in this
 * process and checkpoints written with valid checksums by the checkpoint
 * writer itself — the forgeries the attack suite used. */
#include "server_fixture.h"
#include "suites.h"
#include "sv_ckpt.h"
#include "sv_keys.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct sv_fixture fx;

static void setup(void)
{
    sv_fixture_init(&fx);
}

static void teardown(void)
{
    sv_fixture_stop(&fx);
}

/* chk-<id> with one state "s" holding one entry (key "k"). */
static void write_checkpoint(uint64_t id, const uint8_t *v, size_t vlen)
{
    char d[4200];
    snprintf(d, sizeof(d), "%s/chk-%llu", fx.cfg.checkpoint_dir, (unsigned long long)id);
    ck_assert_int_eq(mkdir(d, 0700), 0);
    struct sv_ckpt_writer_options o = {
        .checkpoint_id = id,
        .key_groups = fx.cfg.key_groups,
        .kg_first = 0,
        .kg_last = fx.cfg.key_groups - 1,
        .compression = SV_CKPT_COMPRESS_ZSTD,
        .server_version = "forger",
    };
    struct sv_ckpt_writer *w;
    char err[512];
    ck_assert_int_eq(sv_ckpt_writer_open(d, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(sv_ckpt_writer_state(w, "s"), 0);
    uint8_t sk[64];
    size_t skl = sv_skey_encode(sk, sv_key_group_of("k", 1, fx.cfg.key_groups), "k", 1, "", 0);
    ck_assert_int_eq(sv_ckpt_writer_add(w, sk, skl, v, vlen), 0);
    ck_assert_int_eq(sv_ckpt_writer_finish(w, NULL, err, sizeof(err)), 0);
}

static Statesrv__V1__Response *restore(int fd, uint64_t req_id, const char *source)
{
    static uint8_t buf[256];
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    Statesrv__V1__Restore rs = STATESRV__V1__RESTORE__INIT;
    ProtobufCBinaryData src = {strlen(source), (uint8_t *)source};
    rs.n_sources = 1;
    rs.sources = &src;
    req.id = req_id;
    req.op_case = STATESRV__V1__REQUEST__OP_RESTORE;
    req.restore = &rs;
    sv_fixture_send(&fx, fd, buf, sv_fixture_frame(buf, 0, sizeof(buf), &req));
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->id, req_id);
    return r;
}

static Statesrv__V1__Response *request(int fd, const Statesrv__V1__Request *req)
{
    static uint8_t buf[256];
    sv_fixture_send(&fx, fd, buf, sv_fixture_frame(buf, 0, sizeof(buf), req));
    Statesrv__V1__Response *r = sv_fixture_reply(&fx, fd);
    ck_assert_ptr_nonnull(r);
    return r;
}

static const struct bad_value {
    const char *what;
    uint8_t bytes[16];
    size_t len;
} bad_values[] = {
    {"header version 2", {0x02, 0x00, 'x'}, 3},
    {"kind 9", {0x01, 0x09, 'x'}, 3},
    {"reserved header bits", {0x81, 0x00, 'x'}, 3},
    {"an empty value", {0}, 0},
    {"one byte", {0x01}, 1},
    {"a short expiry field", {0x11, 0x00, 1, 2, 3}, 5},
    {"a 3-byte COUNTER", {0x01, 0x02, 1, 2, 3}, 5},
    {"a 9-byte COUNTER", {0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 11},
    {"bad LIST framing", {0x01, 0x01, 0x05, 'a'}, 4},
};

START_TEST(restore_refuses_stored_values_a_put_could_not_make)
{
    sv_fixture_start(&fx);
    const struct bad_value *b = &bad_values[_i];
    write_checkpoint(7, b->bytes, b->len);
    int fd = sv_fixture_connect(&fx);
    Statesrv__V1__Response *r = request(fd, sv_req_put(1, "s", "live", "1", 1));
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    statesrv__v1__response__free_unpacked(r, NULL);

    r = restore(fd, 2, "7");
    ck_assert_msg(r->status == STATESRV__V1__STATUS__INVALID_ARGUMENT, "%s: status %d (%s)",
                  b->what, r->status, r->message);
    ck_assert_msg(strstr(r->message, "chk-7") && strstr(r->message, "value"),
                  "%s: message '%s' should name the checkpoint and the value", b->what, r->message);
    statesrv__v1__response__free_unpacked(r, NULL);

    /* The live state is untouched, and the next snapshot works. */
    r = request(fd, sv_req_get(3, "s", "live"));
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__OK);
    statesrv__v1__response__free_unpacked(r, NULL);
    r = request(fd, sv_req_get(4, "s", "k"));
    ck_assert_int_eq(r->status, STATESRV__V1__STATUS__NOT_FOUND);
    statesrv__v1__response__free_unpacked(r, NULL);
    r = request(fd, sv_req_snapshot(5));
    ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "snapshot: %s", r->message);
    statesrv__v1__response__free_unpacked(r, NULL);
    close(fd);
}
END_TEST

START_TEST(restore_takes_every_well_formed_kind)
{
    sv_fixture_start(&fx);
    static const struct {
        uint8_t bytes[16];
        size_t len;
    } good[] = {
        {{0x01, 0x00}, 2},                               /* raw, empty */
        {{0x11, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 'x'}, 11}, /* raw with an expiry */
        {{0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 42}, 10},     /* counter */
        {{0x01, 0x01, 0x01, 'a', 0x02, 'b', 'c'}, 7},    /* list */
    };
    int fd = sv_fixture_connect(&fx);
    for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        write_checkpoint(10 + i, good[i].bytes, good[i].len);
        char src[16];
        snprintf(src, sizeof(src), "%u", 10 + i);
        Statesrv__V1__Response *r = restore(fd, i + 1, src);
        ck_assert_msg(r->status == STATESRV__V1__STATUS__OK, "value %u: %s", i, r->message);
        statesrv__v1__response__free_unpacked(r, NULL);
    }
    close(fd);
}
END_TEST

Suite *sv_suite_restore(void)
{
    Suite *s = suite_create("restore");
    TCase *tc = tcase_create("restored values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, SV_UNIT_TIMEOUT * 2);
    tcase_add_loop_test(tc, restore_refuses_stored_values_a_put_could_not_make, 0,
                        (int)(sizeof(bad_values) / sizeof(bad_values[0])));
    tcase_add_test(tc, restore_takes_every_well_formed_kind);
    suite_add_tcase(s, tc);
    return s;
}
