/* Incremental checkpoints on a real server and real files: a seeded model of
 * puts, merges, deletes, clears and drops between checkpoints, every
 * retained checkpoint restored whole and rescaled into two halves and
 * compared with the model entry by entry; SIGKILL between and during
 * checkpoints; damage to any file of a chain; retention with shared files. */
#include "harness.h"
#include "statesrv.h"
#include "suites.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KG 128
#define NS 3   /* states */
#define NK 120 /* keys */
#define NN 2   /* namespaces */
#define VMAX 240
#define CKPTS 7
#define OPS_PER_CKPT 600

static const char *const state_names[NS] = {"alpha", "beta", "gamma"};
static const char *const ns_names[NN] = {"", "n1"};

/* One entry of the model: kind 0 = absent. Keys k with k % 3 == 0 hold raw
 * values, 1 lists (append), 2 counters (add), so every op applies. */
struct entry {
    int kind; /* 1 + enum statesrv_kind, 0: absent */
    int64_t counter;
    size_t len;              /* raw bytes, or list framing as the server stores it */
    unsigned char buf[VMAX]; /* raw value, or elements each as (u8 len, bytes) */
    int nelem;
};

struct model {
    struct entry e[NS][NK][NN];
};

static struct ts origin, restorer;
static struct model live, at[CKPTS + 1];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void teardown(void)
{
    ts_cleanup(&origin);
    ts_cleanup(&restorer);
}

static statesrv *connect_to(const struct ts *s)
{
    statesrv *c = NULL;
    statesrv_options o = {0};
    o.job_timeout_ms = 60000;
    ck_assert_int_eq(statesrv_connect(s->tcp_addr, &o, &c), STATESRV_OK);
    return c;
}

static statesrv_key key_of(int s, int k, int n, char *kb)
{
    snprintf(kb, 16, "key%03d", k);
    statesrv_key key = {.state = state_names[s], .key = kb, .key_len = strlen(kb)};
    key.ns = ns_names[n];
    key.ns_len = strlen(ns_names[n]);
    return key;
}

/* One random operation, on the server and the model. */
static void random_op(statesrv *c)
{
    int s = (int)rnd(NS), k = (int)rnd(NK), n = (int)rnd(NN);
    char kb[16];
    statesrv_key key = key_of(s, k, n, kb);
    struct entry *e = &live.e[s][k][n];
    uint32_t r = rnd(1000);
    if (r < 3) { /* drop the state */
        uint64_t deleted;
        ck_assert_int_eq(statesrv_drop_state(c, state_names[s], &deleted), STATESRV_OK);
        memset(&live.e[s], 0, sizeof(live.e[s]));
    } else if (r < 40) { /* clear a key: every namespace */
        uint64_t deleted;
        ck_assert_int_eq(statesrv_clear(c, &key, &deleted), STATESRV_OK);
        for (int i = 0; i < NN; i++)
            memset(&live.e[s][k][i], 0, sizeof(struct entry));
    } else if (r < 200) {
        int found;
        ck_assert_int_eq(statesrv_delete(c, &key, &found), STATESRV_OK);
        ck_assert_msg(found == (e->kind != 0), "delete %s/%s/%s: found %d, model kind %d (r %u)",
                      state_names[s], kb, ns_names[n], found, e->kind, r);
        memset(e, 0, sizeof(*e));
    } else if (k % 3 == 0) {
        char v[40];
        int len = snprintf(v, sizeof(v), "v%u-%u", rnd(1000000), rnd(1000));
        ck_assert_int_eq(statesrv_put(c, &key, v, (size_t)len), STATESRV_OK);
        e->kind = 1 + STATESRV_KIND_RAW;
        memcpy(e->buf, v, (size_t)len);
        e->len = (size_t)len;
    } else if (k % 3 == 1) {
        if (e->len + 9 > VMAX) { /* keep lists short: start over */
            int found;
            ck_assert_int_eq(statesrv_delete(c, &key, &found), STATESRV_OK);
            memset(e, 0, sizeof(*e));
        }
        char v[8];
        int len = snprintf(v, sizeof(v), "e%u", rnd(100000));
        ck_assert_int_eq(statesrv_append(c, &key, v, (size_t)len), STATESRV_OK);
        e->kind = 1 + STATESRV_KIND_LIST;
        e->buf[e->len] = (unsigned char)len;
        memcpy(e->buf + e->len + 1, v, (size_t)len);
        e->len += 1 + (size_t)len;
        e->nelem++;
    } else {
        int64_t delta = (int64_t)rnd(2001) - 1000, result;
        ck_assert_int_eq(statesrv_add(c, &key, delta, &result), STATESRV_OK);
        e->kind = 1 + STATESRV_KIND_COUNTER;
        e->counter += delta;
        ck_assert_int_eq(result, e->counter);
    }
}

/* The server holds exactly the model's entries whose key group is in
 * first..last: each one compared, and no others (the total count). */
static void expect_model(statesrv *c, const struct model *m, uint32_t first, uint32_t last,
                         const char *what)
{
    uint64_t want = 0;
    for (int s = 0; s < NS; s++)
        for (int k = 0; k < NK; k++)
            for (int n = 0; n < NN; n++) {
                char kb[16];
                statesrv_key key = key_of(s, k, n, kb);
                uint32_t kg = statesrv_key_group(kb, strlen(kb), KG);
                const struct entry *e = &m->e[s][k][n];
                int served = kg >= first && kg <= last;
                int in = e->kind && served;
                statesrv_value v = {0};
                int rc = statesrv_get(c, &key, &v);
                /* Keys of key groups this store does not serve are refused. */
                int want_rc = !served ? STATESRV_INVALID_ARGUMENT
                              : in    ? STATESRV_OK
                                      : STATESRV_NOT_FOUND;
                ck_assert_msg(rc == want_rc, "%s: %s/%s/%s: status %d, want %s", what,
                              state_names[s], kb, ns_names[n], rc,
                              !served ? "refused"
                              : in    ? "present"
                                      : "absent");
                if (!in)
                    continue;
                want++;
                ck_assert_int_eq(v.kind, e->kind - 1);
                if (e->kind == 1 + STATESRV_KIND_RAW) {
                    ck_assert_uint_eq(v.len, e->len);
                    ck_assert(memcmp(v.data, e->buf, e->len) == 0);
                } else if (e->kind == 1 + STATESRV_KIND_COUNTER) {
                    int64_t x;
                    ck_assert_int_eq(statesrv_counter_decode(v.data, v.len, &x), STATESRV_OK);
                    ck_assert_int_eq(x, e->counter);
                } else {
                    size_t off = 0, mo = 0, el;
                    const void *p;
                    int got = 0;
                    while (statesrv_list_next(v.data, v.len, &off, &p, &el) == 1) {
                        ck_assert_uint_eq(el, e->buf[mo]);
                        ck_assert(memcmp(p, e->buf + mo + 1, el) == 0);
                        mo += 1 + el;
                        got++;
                    }
                    ck_assert_int_eq(got, e->nelem);
                }
                statesrv_value_free(&v);
            }
    statesrv_state_info *st;
    size_t n;
    ck_assert_int_eq(statesrv_list_states(c, &st, &n), STATESRV_OK);
    uint64_t have = 0;
    for (size_t i = 0; i < n; i++)
        have += st[i].entries;
    statesrv_free(st);
    ck_assert_msg(have == want, "%s: the server holds %llu entries, the model %llu", what,
                  (unsigned long long)have, (unsigned long long)want);
}

static void start_pair(const char *origin_conf)
{
    char conf[1024];
    snprintf(conf, sizeof(conf), "key_groups = %d\n%s", KG, origin_conf);
    ts_start_with_config(&origin, conf);
    snprintf(conf, sizeof(conf), "key_groups = %d\nrestore_roots = %s/checkpoints\n", KG,
             origin.dir);
    ts_start_with_config(&restorer, conf);
}

static void restore_from(statesrv *c, uint64_t id, int ranged, uint32_t first, uint32_t last,
                         int want)
{
    char src[256];
    snprintf(src, sizeof(src), "%s/checkpoints/chk-%llu", origin.dir, (unsigned long long)id);
    const char *srcs[1] = {src};
    int rc = statesrv_restore(c, srcs, 1, ranged, first, last, NULL);
    ck_assert_msg(rc == want, "restore of chk-%llu: %d (%s), want %d", (unsigned long long)id, rc,
                  statesrv_errmsg(c), want);
}

START_TEST(model_chain_restores_and_rescales_every_checkpoint)
{
    start_pair("checkpoint_retain = 100\ncheckpoint_chain_max = 100\n"
               "checkpoint_chain_ratio = 10000\n");
    statesrv *c = connect_to(&origin);
    memset(&live, 0, sizeof(live));
    for (int i = 1; i <= CKPTS; i++) {
        for (int op = 0; op < OPS_PER_CKPT; op++)
            random_op(c);
        statesrv_checkpoint_info *m;
        ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
        ck_assert_uint_eq(m->id, (uint64_t)i);
        /* The first is full; the others hold what changed and name it. */
        ck_assert_int_eq(m->incremental, i > 1);
        ck_assert_uint_eq(m->base_id, 1);
        ck_assert_uint_eq(m->format_version, 2);
        if (i > 1)
            ck_assert_uint_lt(m->added_bytes, m->total_bytes);
        statesrv_checkpoint_info_free(m);
        at[i] = live;
    }
    statesrv_close(c);
    /* Every checkpoint verifies offline, chain included. */
    for (int i = 1; i <= CKPTS; i++) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/checkpoints/chk-%d >/dev/null",
                 statectl_path(), origin.dir, i);
        ck_assert_msg(run_cmd(cmd, NULL, 0) == 0, "chk-%d does not verify", i);
    }
    statesrv *r = connect_to(&restorer);
    for (int i = 1; i <= CKPTS; i++) {
        char what[64];
        restore_from(r, (uint64_t)i, 0, 0, 0, STATESRV_OK);
        snprintf(what, sizeof(what), "chk-%d whole", i);
        expect_model(r, &at[i], 0, KG - 1, what);
        restore_from(r, (uint64_t)i, 1, 0, KG / 2 - 1, STATESRV_OK);
        snprintf(what, sizeof(what), "chk-%d lower half", i);
        expect_model(r, &at[i], 0, KG / 2 - 1, what);
        restore_from(r, (uint64_t)i, 1, KG / 2, KG - 1, STATESRV_OK);
        snprintf(what, sizeof(what), "chk-%d upper half", i);
        expect_model(r, &at[i], KG / 2, KG - 1, what);
    }
    statesrv_close(r);
}
END_TEST

/* SIGKILL between checkpoints, and while one is written: the next
 * checkpoint is still exactly the state, and every listed one reads. */
START_TEST(sigkill_between_and_during_checkpoints_loses_no_change)
{
    start_pair("checkpoint_retain = 100\ncheckpoint_chain_max = 100\n"
               "checkpoint_chain_ratio = 10000\n");
    memset(&live, 0, sizeof(live));
    statesrv *c = connect_to(&origin);
    for (int op = 0; op < OPS_PER_CKPT; op++)
        random_op(c);
    statesrv_checkpoint_info *m;
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    statesrv_checkpoint_info_free(m);
    for (int op = 0; op < OPS_PER_CKPT; op++)
        random_op(c);
    statesrv_close(c);
    ts_kill(&origin); /* between checkpoints */
    ts_restart(&origin, ts_config_args(&origin));
    c = connect_to(&origin);
    for (int op = 0; op < OPS_PER_CKPT / 2; op++)
        random_op(c);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_int_eq(m->incremental, 1); /* the changes survived the kill */
    uint64_t id2 = m->id;
    statesrv_checkpoint_info_free(m);
    struct model after2 = live;
    for (int op = 0; op < OPS_PER_CKPT; op++)
        random_op(c);
    statesrv_close(c);
    /* During a checkpoint: the request goes out, the server dies. */
    int fd = raw_connect_tcp(&origin);
    Statesrv__V1__Hello hello = STATESRV__V1__HELLO__INIT;
    Statesrv__V1__Request req = STATESRV__V1__REQUEST__INIT;
    hello.protocol_version = 1;
    req.id = 1;
    req.op_case = STATESRV__V1__REQUEST__OP_HELLO;
    req.hello = &hello;
    raw_send_msg(fd, (const ProtobufCMessage *)&req);
    Statesrv__V1__Response *resp = raw_recv(fd, 5000);
    ck_assert_ptr_nonnull(resp);
    statesrv__v1__response__free_unpacked(resp, NULL);
    Statesrv__V1__Snapshot snap = STATESRV__V1__SNAPSHOT__INIT;
    req.id = 2;
    req.op_case = STATESRV__V1__REQUEST__OP_SNAPSHOT;
    req.snapshot = &snap;
    raw_send_msg(fd, (const ProtobufCMessage *)&req);
    usleep(2000);
    ts_kill(&origin);
    close(fd);
    ts_restart(&origin, ts_config_args(&origin));
    c = connect_to(&origin);
    for (int op = 0; op < OPS_PER_CKPT / 2; op++)
        random_op(c);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    uint64_t id3 = m->id;
    statesrv_checkpoint_info_free(m);
    /* Every listed checkpoint verifies. */
    statesrv_checkpoint_info *list;
    size_t n;
    ck_assert_int_eq(statesrv_list_checkpoints(c, &list, &n), STATESRV_OK);
    ck_assert_uint_ge(n, 3);
    for (size_t i = 0; i < n; i++) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/checkpoints/chk-%llu >/dev/null",
                 statectl_path(), origin.dir, (unsigned long long)list[i].id);
        ck_assert_msg(run_cmd(cmd, NULL, 0) == 0, "chk-%llu does not verify",
                      (unsigned long long)list[i].id);
    }
    statesrv_checkpoint_info_free(list);
    statesrv_close(c);
    statesrv *r = connect_to(&restorer);
    restore_from(r, id2, 0, 0, 0, STATESRV_OK);
    expect_model(r, &after2, 0, KG - 1, "after the kill between checkpoints");
    restore_from(r, id3, 0, 0, 0, STATESRV_OK);
    expect_model(r, &live, 0, KG - 1, "after the kill during a checkpoint");
    statesrv_close(r);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp -p '%s' '%s'", from, to);
    ck_assert_int_eq(run_cmd(cmd, NULL, 0), 0);
}

/* Damage to any file of a chain (a flipped byte, a cut, a missing file) is
 * refused by verify and restore, which name the file; the live state of
 * the restoring server is untouched. */
START_TEST(damage_to_any_file_of_a_chain_is_named_and_refused)
{
    start_pair("checkpoint_retain = 100\ncheckpoint_chain_ratio = 10000\n");
    memset(&live, 0, sizeof(live));
    statesrv *c = connect_to(&origin);
    for (int i = 1; i <= 3; i++) {
        for (int op = 0; op < OPS_PER_CKPT / 2; op++)
            random_op(c);
        statesrv_checkpoint_info *m;
        ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
        ck_assert_int_eq(m->incremental, i > 1); /* chk-3's chain: 1, 2, 3 */
        statesrv_checkpoint_info_free(m);
    }
    struct model final = live;
    statesrv_close(c);
    /* The restorer serves chk-3 (so its state is known) before the damage. */
    statesrv *r = connect_to(&restorer);
    restore_from(r, 3, 0, 0, 0, STATESRV_OK);
    for (int f = 1; f <= 3; f++) {
        for (int how = 0; how < 3; how++) {
            char data[256], backup[300], cmd[600], out[4096];
            snprintf(data, sizeof(data), "%s/checkpoints/chk-%d/data", origin.dir, f);
            snprintf(backup, sizeof(backup), "%s/backup", origin.dir);
            copy_file(data, backup);
            struct stat st;
            ck_assert_int_eq(stat(data, &st), 0);
            if (how == 0) { /* flip one byte in the middle */
                FILE *fp = fopen(data, "r+b");
                ck_assert_ptr_nonnull(fp);
                fseek(fp, st.st_size / 2, SEEK_SET);
                int ch = fgetc(fp);
                fseek(fp, st.st_size / 2, SEEK_SET);
                fputc(ch ^ 0x20, fp);
                fclose(fp);
            } else if (how == 1) {
                ck_assert_int_eq(truncate(data, st.st_size - 7), 0);
            } else {
                ck_assert_int_eq(unlink(data), 0);
            }
            snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/checkpoints/chk-3 2>&1",
                     statectl_path(), origin.dir);
            int vrc = run_cmd(cmd, out, sizeof(out));
            ck_assert_msg(vrc != 0, "verify passed after damage %d to chk-%d: %s", how, f, out);
            char name[32];
            snprintf(name, sizeof(name), "chk-%d/data", f);
            ck_assert_msg(strstr(out, name), "verify after damage %d to %s: %s", how, name, out);
            restore_from(r, 3, 0, 0, 0, STATESRV_INVALID_ARGUMENT);
            ck_assert_msg(strstr(statesrv_errmsg(r), name), "restore: %s", statesrv_errmsg(r));
            copy_file(backup, data);
        }
    }
    expect_model(r, &final, 0, KG - 1, "the restorer after refused restores");
    statesrv_close(r);
}
END_TEST

/* The chk-<id> directories present, as a sorted, comma-separated list. */
static void dir_list(const char *dir, char *out, size_t cap)
{
    int ids[256], n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strncmp(e->d_name, "chk-", 4) == 0)
            ids[n++] = atoi(e->d_name + 4);
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && ids[k - 1] > ids[k]; k--) {
            int t = ids[k];
            ids[k] = ids[k - 1];
            ids[k - 1] = t;
        }
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%d", i ? "," : "", ids[i]);
}

/* With chains of 3 and retain 2, the directory holds the retained
 * checkpoints and the files their chains name, nothing else. */
/* Entries of the store's change set ($changes), read with mdb_stat on the
 * stopped server's current generation. */
static long change_records(const struct ts *s)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd),
             "mdb_stat -s '$changelog' %s/data/current 2>/dev/null | sed -n 's/^ *Entries: //p'",
             s->dir);
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    return out[0] ? atol(out) : -1;
}

/* With checkpoint_incremental = no writes keep no change records (they
 * would cost every write a log record for nothing), every
 * checkpoint is full, and turning it on later starts from a full one. */
START_TEST(without_incremental_checkpoints_writes_keep_no_records)
{
    start_pair("checkpoint_incremental = no\n");
    memset(&live, 0, sizeof(live));
    statesrv *c = connect_to(&origin);
    for (int round = 0; round < 2; round++) {
        for (int op = 0; op < 200; op++)
            random_op(c);
        statesrv_checkpoint_info *m;
        ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
        ck_assert_int_eq(m->incremental, 0);
        statesrv_checkpoint_info_free(m);
    }
    for (int op = 0; op < 200; op++)
        random_op(c);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&origin), 0);
    ck_assert_int_eq(change_records(&origin), 0);

    /* On again: the first checkpoint is full, then changes are recorded
     * and the next one is incremental (and the check above could fail). */
    char conf[256];
    snprintf(conf, sizeof(conf), "%s/on.conf", origin.dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "checkpoint_incremental = yes\n");
    fclose(f);
    const char *on[] = {"--config", conf, NULL};
    ts_restart(&origin, on);
    c = connect_to(&origin);
    statesrv_checkpoint_info *m;
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_int_eq(m->incremental, 0);
    statesrv_checkpoint_info_free(m);
    for (int op = 0; op < 200; op++)
        random_op(c);
    statesrv_close(c);
    ck_assert_int_eq(ts_stop(&origin), 0);
    ck_assert_int_gt(change_records(&origin), 0);
    ts_restart(&origin, on);
    c = connect_to(&origin);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_int_eq(m->incremental, 1);
    statesrv_checkpoint_info_free(m);
    statesrv_close(c);
}
END_TEST

/* A change log that would pass checkpoint_changes_max stops recording: the
 * next checkpoint is full (with the changes after the bound in it), and the
 * one after it is incremental again on it. */
START_TEST(a_change_log_past_its_bound_makes_the_next_checkpoint_full)
{
    start_pair("checkpoint_changes_max = 1M\ncheckpoint_retain = 100\n"
               "checkpoint_chain_ratio = 10000\n");
    statesrv *c = connect_to(&origin);
    memset(&live, 0, sizeof(live));
    statesrv_checkpoint_info *m;
    for (int op = 0; op < 300; op++)
        random_op(c);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_int_eq(m->incremental, 0);
    statesrv_checkpoint_info_free(m);
    /* 3000 distinct keys of 400 bytes: ~1.2 MB of records, then gone. */
    char big[401];
    for (int i = 0; i < 3000; i++) {
        memset(big, 'a' + i % 26, 400);
        snprintf(big, 12, "%011d", i);
        big[11] = '-';
        statesrv_key key = {.state = "bulk", .key = big, .key_len = 400};
        ck_assert_int_eq(statesrv_put(c, &key, "x", 1), STATESRV_OK);
    }
    uint64_t deleted;
    ck_assert_int_eq(statesrv_drop_state(c, "bulk", &deleted), STATESRV_OK);
    ck_assert_uint_eq(deleted, 3000);
    /* Changes past the bound: unrecorded, so only a full checkpoint has them. */
    for (int op = 0; op < 300; op++)
        random_op(c);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_uint_eq(m->id, 2);
    ck_assert_int_eq(m->incremental, 0);
    statesrv_checkpoint_info_free(m);
    at[2] = live;
    for (int op = 0; op < 300; op++)
        random_op(c);
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    ck_assert_uint_eq(m->id, 3);
    ck_assert_int_eq(m->incremental, 1);
    ck_assert_uint_eq(m->base_id, 2);
    statesrv_checkpoint_info_free(m);
    at[3] = live;
    statesrv_close(c);
    char log[256];
    snprintf(log, sizeof(log), "grep -q checkpoint_changes_max %s", origin.log);
    ck_assert_msg(run_cmd(log, NULL, 0) == 0, "no warning about the bound in the log");
    statesrv *r = connect_to(&restorer);
    restore_from(r, 2, 0, 0, 0, STATESRV_OK);
    expect_model(r, &at[2], 0, KG - 1, "chk-2");
    restore_from(r, 3, 0, 0, 0, STATESRV_OK);
    expect_model(r, &at[3], 0, KG - 1, "chk-3");
    statesrv_close(r);
}
END_TEST

/* Crashes while retention deletes: after the MANIFEST of a checkpoint other
 * checkpoints build on went (its data stays for them), and after a
 * checkpoint's directory was renamed away to be removed. Either way, after a
 * restart every listed checkpoint verifies and restores exactly, the
 * directory holds only what they name, and the next checkpoint is right. */
static void crash_in_retention(const char *failpoint, int checkpoints, int full_at)
{
    start_pair("checkpoint_retain = 2\ncheckpoint_chain_max = 100\n"
               "checkpoint_chain_ratio = 10000\n");
    memset(&live, 0, sizeof(live));
    ck_assert_int_eq(ts_stop(&origin), 0);
    setenv("STATESRVD_FAILPOINT", failpoint, 1);
    ts_restart(&origin, ts_config_args(&origin));
    unsetenv("STATESRVD_FAILPOINT");
    statesrv *c = connect_to(&origin);
    int rc = STATESRV_OK, i;
    for (i = 1; i <= checkpoints && rc == STATESRV_OK; i++) {
        for (int op = 0; op < OPS_PER_CKPT / 3; op++)
            random_op(c);
        at[i] = live;
        statesrv_checkpoint_info *m = NULL;
        rc = i == full_at ? statesrv_snapshot_full(c, 0, 0, &m) : statesrv_snapshot(c, 0, 0, &m);
        statesrv_checkpoint_info_free(m);
    }
    ck_assert_msg(rc != STATESRV_OK, "the server passed failpoint %s", failpoint);
    ck_assert_int_eq(i - 1, checkpoints); /* killed in the last one's retention */
    statesrv_close(c);
    ts_kill(&origin);
    ck_assert(ts_log_contains(&origin, "reached: SIGKILL"));
    ts_restart(&origin, ts_config_args(&origin));
    c = connect_to(&origin);
    statesrv_checkpoint_info *list;
    size_t n;
    ck_assert_int_eq(statesrv_list_checkpoints(c, &list, &n), STATESRV_OK);
    ck_assert_uint_ge(n, 2);
    statesrv *r = connect_to(&restorer);
    for (size_t j = 0; j < n; j++) {
        uint64_t id = list[j].id;
        char cmd[512], what[64];
        snprintf(cmd, sizeof(cmd), "%s checkpoint verify %s/checkpoints/chk-%llu >/dev/null",
                 statectl_path(), origin.dir, (unsigned long long)id);
        ck_assert_msg(run_cmd(cmd, NULL, 0) == 0, "%s: chk-%llu does not verify", failpoint,
                      (unsigned long long)id);
        restore_from(r, id, 0, 0, 0, STATESRV_OK);
        snprintf(what, sizeof(what), "%s: chk-%llu", failpoint, (unsigned long long)id);
        expect_model(r, &at[id], 0, KG - 1, what);
    }
    statesrv_checkpoint_info_free(list);
    /* The next checkpoint's retention finishes the job. */
    for (int op = 0; op < OPS_PER_CKPT / 3; op++)
        random_op(c);
    statesrv_checkpoint_info *m;
    ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
    uint64_t last = m->id;
    statesrv_checkpoint_info_free(m);
    ck_assert_int_eq(statesrv_list_checkpoints(c, &list, &n), STATESRV_OK);
    ck_assert_uint_eq(n, 2);
    /* On disk: the chains of the two (a chain's ids run from its base up),
     * and nothing half-removed. */
    char want[256] = "", have[256], dir[512];
    for (uint64_t id = list[0].base_id; id <= list[1].id; id++)
        if (id >= list[1].base_id || id <= list[0].id)
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%llu", want[0] ? "," : "",
                     (unsigned long long)id);
    statesrv_checkpoint_info_free(list);
    statesrv_close(c);
    snprintf(dir, sizeof(dir), "%s/checkpoints", origin.dir);
    dir_list(dir, have, sizeof(have));
    ck_assert_msg(strcmp(have, want) == 0, "%s: %s holds %s, want %s", failpoint, dir, have, want);
    snprintf(dir, sizeof(dir), "ls -a %s/checkpoints | grep -q '^\\.chk'", origin.dir);
    ck_assert_msg(run_cmd(dir, NULL, 0) != 0, "%s: a half-removed directory is left", failpoint);
    restore_from(r, last, 0, 0, 0, STATESRV_OK);
    expect_model(r, &live, 0, KG - 1, "the checkpoint after the restart");
    statesrv_close(r);
}

START_TEST(sigkill_in_retention_leaves_every_listed_checkpoint_readable)
{
    /* chk-1 full, 2 and 3 on it: retention after 3 removes chk-1's MANIFEST
     * (2 and 3 need its data), and is killed there. */
    crash_in_retention("checkpoint-manifest-removed", 3, 1);
    teardown();
    /* chk-4 full, 5 on it: retention after 5 removes chk-3 whole (nothing
     * names it), killed once its directory is renamed away. */
    crash_in_retention("checkpoint-dir-renamed", 5, 4);
}
END_TEST

START_TEST(retention_keeps_exactly_what_retained_checkpoints_name)
{
    start_pair("checkpoint_retain = 2\ncheckpoint_chain_max = 3\n"
               "checkpoint_chain_ratio = 10000\n");
    /* 1..3 are one chain (full, incremental, incremental), 4..6 the next,
     * 7..9 the third. Retained are the newest two; a deleted checkpoint's
     * directory stays while a retained one's chain names its data. */
    static const char *const want[] = {"",    "1",     "1,2",     "1,2,3", "1,2,3,4",
                                       "4,5", "4,5,6", "4,5,6,7", "7,8",   "7,8,9"};
    memset(&live, 0, sizeof(live));
    statesrv *c = connect_to(&origin);
    char dir[128], got[256];
    snprintf(dir, sizeof(dir), "%s/checkpoints", origin.dir);
    for (int i = 1; i <= 9; i++) {
        for (int op = 0; op < 100; op++)
            random_op(c);
        statesrv_checkpoint_info *m;
        ck_assert_int_eq(statesrv_snapshot(c, 0, 0, &m), STATESRV_OK);
        ck_assert_int_eq(m->incremental, (i - 1) % 3 != 0);
        statesrv_checkpoint_info_free(m);
        dir_list(dir, got, sizeof(got));
        const char *expect = want[i];
        ck_assert_msg(strcmp(got, expect) == 0, "after checkpoint %d: %s, want %s", i, got, expect);
    }
    statesrv_checkpoint_info *list;
    size_t n;
    ck_assert_int_eq(statesrv_list_checkpoints(c, &list, &n), STATESRV_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(list[0].id, 8);
    ck_assert_uint_eq(list[1].id, 9);
    statesrv_checkpoint_info_free(list);
    statesrv_close(c);
    /* Reference counts come from the MANIFESTs at start, not memory. */
    ck_assert_int_eq(ts_stop(&origin), 0);
    ts_restart(&origin, ts_config_args(&origin));
    dir_list(dir, got, sizeof(got));
    ck_assert_str_eq(got, "7,8,9");
    statesrv *r = connect_to(&restorer);
    restore_from(r, 9, 0, 0, 0, STATESRV_OK);
    expect_model(r, &live, 0, KG - 1, "chk-9 after retention");
    statesrv_close(r);
}
END_TEST

Suite *sv_suite_incremental(void)
{
    Suite *s = suite_create("incremental");
    TCase *tc = tcase_create("incremental");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, model_chain_restores_and_rescales_every_checkpoint);
    tcase_add_test(tc, sigkill_between_and_during_checkpoints_loses_no_change);
    tcase_add_test(tc, damage_to_any_file_of_a_chain_is_named_and_refused);
    tcase_add_test(tc, retention_keeps_exactly_what_retained_checkpoints_name);
    tcase_add_test(tc, without_incremental_checkpoints_writes_keep_no_records);
    tcase_add_test(tc, a_change_log_past_its_bound_makes_the_next_checkpoint_full);
    tcase_add_test(tc, sigkill_in_retention_leaves_every_listed_checkpoint_readable);
    suite_add_tcase(s, tc);
    return s;
}
