/* libFuzzer target: the incremental frame reader (common/sv_frame.c).
 *
 * Input layout:
 *   u16 BE   max_frame (taken modulo 4097: small, so oversize headers are common)
 *   u8       n, the number of control bytes
 *   n bytes  control program (below)
 *   rest     the byte stream fed to the reader
 *
 * The control program is a sequence of ops, one byte each (some take an
 * argument byte). When it runs out, the rest of the stream is fed in one
 * piece and every frame is taken. The reader is checked against a shadow
 * model that holds a copy of every byte fed and not yet discarded: each
 * call's result, each payload (pointer within the reader's buffer, bytes
 * equal to what was fed), ready() against next(), rewinding (re-taking the
 * same frames from a saved position, as a batch replay does) and the
 * totals (never more frame bytes taken than fed). */
#include "sv_error.h"
#include "sv_frame.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME_CAP 4096u
#define MAX_TAKEN 4096 /* frames remembered since the last mark */

/* A failed invariant: report and abort so libFuzzer keeps the input. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum op {
    OP_FEED,    /* arg: length; sv_frame_reader_feed */
    OP_SPACE,   /* arg: length; sv_frame_reader_space + memcpy + produced */
    OP_TAKE,    /* high bits: how many frames (1..32) */
    OP_MARK,    /* remember pos, as batch_add does */
    OP_REWIND,  /* pos = mark, then take the same frames again */
    OP_DISCARD, /* drop taken frames */
    OP_BIGROOM, /* arg: ask space() for arg KiB (exercises growth and the idle-cap release) */
    OP_DRAIN,   /* take every whole frame, then discard */
    OP_MAX
};

struct taken {
    size_t off; /* model offset of the payload */
    size_t len;
};

struct fz {
    struct sv_frame_reader r;
    uint32_t max_frame;

    const uint8_t *stream;
    size_t stream_len, stream_off;

    /* Shadow model: the bytes the reader must hold, and where it is. */
    uint8_t *model;
    size_t model_len, model_pos;

    int have_mark;
    size_t mark;
    struct taken taken[MAX_TAKEN]; /* frames taken since the mark */
    size_t ntaken;
    int taken_overflow;

    uint64_t fed, consumed; /* bytes fed; header + payload bytes of first-time takes */
    size_t high_water;      /* furthest model position taken since the last discard */
    int dead;               /* an oversize header was seen */
};

static void check_shape(const struct fz *f)
{
    const struct sv_frame_reader *r = &f->r;
    CHECK(r->len == f->model_len);
    CHECK(r->pos == f->model_pos);
    CHECK(r->pos <= r->len);
    CHECK(r->len <= r->cap);
    CHECK(r->max_frame == f->max_frame);
    if (r->len)
        CHECK(r->buf != NULL);
    if (f->model_len)
        CHECK(memcmp(r->buf, f->model, f->model_len) == 0);
}

static void model_append(struct fz *f, const uint8_t *p, size_t n)
{
    uint8_t *m = realloc(f->model, f->model_len + n + 1);
    CHECK(m != NULL);
    f->model = m;
    if (n)
        memcpy(f->model + f->model_len, p, n);
    f->model_len += n;
    f->fed += n;
}

/* What next() must return now, from the model alone. */
static int expect_next(const struct fz *f, size_t *len, uint32_t *bad)
{
    size_t have = f->model_len - f->model_pos;
    if (have < SV_FRAME_HEADER_SIZE)
        return 0;
    uint32_t n = sv_frame_header_get(f->model + f->model_pos);
    if (n > f->max_frame) {
        *bad = n;
        return SV_ETOOLARGE;
    }
    if (have - SV_FRAME_HEADER_SIZE < n)
        return 0;
    *len = n;
    return 1;
}

/* Takes one frame and checks it against the model. 1 taken, 0 none. */
static int take_one(struct fz *f)
{
    size_t elen = 0;
    uint32_t ebad = 0;
    int expect = expect_next(f, &elen, &ebad);
    int ready = sv_frame_reader_ready(&f->r);
    const uint8_t *payload = NULL;
    size_t len = 0;
    int rc = sv_frame_reader_next(&f->r, &payload, &len);
    CHECK(rc == expect);
    CHECK(ready == (rc != 0));
    if (rc == SV_ETOOLARGE) {
        CHECK(f->r.bad_len == ebad);
        CHECK(f->r.pos == f->model_pos); /* nothing consumed */
        f->dead = 1;
        return 0;
    }
    if (rc == 0) {
        CHECK(f->r.pos == f->model_pos);
        return 0;
    }
    /* The payload lies inside the held bytes, right after its header. */
    size_t off = f->model_pos + SV_FRAME_HEADER_SIZE;
    CHECK(len == elen);
    CHECK(len <= f->max_frame);
    CHECK(payload == f->r.buf + off);
    CHECK(off + len <= f->r.len);
    if (len)
        CHECK(memcmp(payload, f->model + off, len) == 0);
    f->model_pos = off + len;
    CHECK(f->r.pos == f->model_pos);

    /* Bytes taken the first time count once; a rewind re-takes them. */
    if (f->model_pos > f->high_water) {
        f->consumed += SV_FRAME_HEADER_SIZE + len;
        f->high_water = f->model_pos;
    }
    CHECK(f->consumed <= f->fed);

    if (f->have_mark) {
        if (f->ntaken < MAX_TAKEN) {
            f->taken[f->ntaken].off = off;
            f->taken[f->ntaken].len = len;
            f->ntaken++;
        } else {
            f->taken_overflow = 1;
        }
    }
    return 1;
}

static void take_n(struct fz *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!take_one(f))
            break;
}

static void do_mark(struct fz *f)
{
    f->have_mark = 1;
    f->mark = f->model_pos;
    f->ntaken = 0;
    f->taken_overflow = 0;
}

/* Rewinds to the mark and takes the same frames again: they must come back
 * identical, at the same places. */
static void do_rewind(struct fz *f)
{
    if (!f->have_mark)
        return;
    size_t end = f->model_pos;
    f->r.pos = f->mark;
    f->model_pos = f->mark;
    for (size_t i = 0; i < f->ntaken; i++) {
        const uint8_t *payload;
        size_t len;
        CHECK(sv_frame_reader_ready(&f->r) == 1);
        CHECK(sv_frame_reader_next(&f->r, &payload, &len) == 1);
        CHECK(payload == f->r.buf + f->taken[i].off);
        CHECK(len == f->taken[i].len);
        f->model_pos = f->taken[i].off + len;
    }
    if (!f->taken_overflow)
        CHECK(f->r.pos == end);
    f->r.pos = end;
    f->model_pos = end;
    check_shape(f);
}

static void do_discard(struct fz *f)
{
    sv_frame_reader_discard(&f->r);
    size_t rest = f->model_len - f->model_pos;
    if (rest)
        memmove(f->model, f->model + f->model_pos, rest);
    f->model_len = rest;
    f->model_pos = 0;
    f->high_water = 0;
    f->have_mark = 0; /* positions moved: a rewind needs a new mark */
    f->ntaken = 0;
    check_shape(f);
    if (rest == 0 && f->r.cap > 64u * 1024)
        CHECK(0 && "an empty reader kept a large buffer");
}

static size_t stream_take(struct fz *f, size_t want, const uint8_t **p)
{
    size_t left = f->stream_len - f->stream_off;
    size_t n = want < left ? want : left;
    *p = f->stream + f->stream_off;
    f->stream_off += n;
    return n;
}

static void do_feed(struct fz *f, size_t want)
{
    const uint8_t *p;
    size_t n = stream_take(f, want, &p);
    CHECK(sv_frame_reader_feed(&f->r, p, n) == 0);
    model_append(f, p, n);
    check_shape(f);
}

static void do_space(struct fz *f, size_t want, size_t min_extra)
{
    const uint8_t *p;
    size_t n = stream_take(f, want, &p);
    uint8_t *dst;
    size_t avail;
    CHECK(sv_frame_reader_space(&f->r, n + min_extra, &dst, &avail) == 0);
    CHECK(avail >= n + min_extra);
    CHECK(dst == f->r.buf + f->r.len);
    CHECK(f->r.len + avail == f->r.cap);
    if (n)
        memcpy(dst, p, n);
    sv_frame_reader_produced(&f->r, n);
    model_append(f, p, n);
    check_shape(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static struct fz f;
    memset(&f, 0, sizeof(f));
    f.max_frame = (uint32_t)(data[0] << 8 | data[1]) % (MAX_FRAME_CAP + 1);
    size_t nctl = data[2];
    if (nctl > size - 3)
        nctl = size - 3;
    const uint8_t *ctl = data + 3;
    f.stream = data + 3 + nctl;
    f.stream_len = size - 3 - nctl;
    sv_frame_reader_init(&f.r, f.max_frame);
    check_shape(&f);

    for (size_t i = 0; i < nctl; i++) {
        uint8_t c = ctl[i];
        uint8_t arg = i + 1 < nctl ? ctl[i + 1] : 0;
        switch ((enum op)(c % OP_MAX)) {
        case OP_FEED:
            do_feed(&f, arg);
            i++;
            break;
        case OP_SPACE:
            do_space(&f, arg, (size_t)(c >> 3) * 16);
            i++;
            break;
        case OP_TAKE:
            take_n(&f, (c >> 3) + 1u);
            break;
        case OP_MARK:
            do_mark(&f);
            break;
        case OP_REWIND:
            do_rewind(&f);
            break;
        case OP_DISCARD:
            do_discard(&f);
            break;
        case OP_BIGROOM:
            do_space(&f, 0, (size_t)arg * 1024);
            i++;
            break;
        case OP_DRAIN:
            while (take_one(&f))
                ;
            do_discard(&f);
            break;
        default:
            break;
        }
    }
    /* The rest in one piece, then everything that is whole. */
    do_feed(&f, f.stream_len - f.stream_off);
    while (take_one(&f))
        ;
    if (!f.dead) {
        /* Whatever is left is an incomplete frame. */
        size_t have = f.model_len - f.model_pos;
        CHECK(have < SV_FRAME_HEADER_SIZE ||
              have - SV_FRAME_HEADER_SIZE < sv_frame_header_get(f.model + f.model_pos));
    }
    do_discard(&f);
    CHECK(f.consumed <= f.fed);

    sv_frame_reader_free(&f.r);
    free(f.model);
    return 0;
}
