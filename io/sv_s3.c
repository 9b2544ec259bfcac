/* S3 client on libcurl. See sv_s3.h for what it does and the rules. */
#include "sv_s3.h"
#include "sv_error.h"

#include <curl/curl.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Answers we read into memory: error documents, multipart replies and list
 * pages (1000 keys of up to 1 KiB each, in XML). */
#define BODY_MAX (4u << 20)
#define URL_MAX (SV_S3_KEY_MAX * 3 + 1024)
#define ETAG_MAX 160
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_S 10L
/* A transfer slower than 1 byte/s for this long is given up (and retried). */
#define STALL_TIMEOUT_S 30L
#define LIST_PAGES_MAX 1000000

struct sv_s3 {
    char endpoint[512];
    char region[64];
    char bucket[64];
    char access[256];
    char secret[256];
    char sigv4[96];
    uint64_t part_size, multipart_threshold;
    unsigned concurrency, retries, max_parts;
    enum sv_s3_checksum checksum;
    const atomic_int *cancel;
    atomic_uint_fast64_t sent, received;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int valid_bucket(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n)
        return 0;
    return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-';
}

int sv_s3_parse_url(const char *url, char *bucket, size_t bucket_cap, char *prefix,
                    size_t prefix_cap)
{
    if (strncmp(url, "s3://", 5) != 0)
        return SV_EINVAL;
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    const char *p = slash ? slash + 1 : "";
    if (bl >= bucket_cap || strlen(p) >= prefix_cap || strlen(p) > SV_S3_KEY_MAX - 64)
        return SV_EINVAL;
    memcpy(bucket, b, bl);
    bucket[bl] = '\0';
    if (!valid_bucket(bucket))
        return SV_EINVAL;
    /* Segments: non-empty, not "." or "..", printable ASCII without '\\'. */
    size_t pl = strlen(p);
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '\\')
            return SV_EINVAL;
    if (pl && p[pl - 1] == '/')
        return SV_EINVAL;
    for (const char *seg = p; pl && seg;) {
        const char *e = strchr(seg, '/');
        size_t sl = e ? (size_t)(e - seg) : strlen(seg);
        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return SV_EINVAL;
        seg = e ? e + 1 : NULL;
    }
    memcpy(prefix, p, pl + 1);
    return 0;
}

static int copy_opt(char *dst, size_t cap, const char *v, const char *name, char *err,
                    size_t errlen)
{
    if (!v || !*v || strlen(v) >= cap) {
        snprintf(err, errlen, "s3: %s is %s", name, !v || !*v ? "empty" : "too long");
        return SV_EINVAL;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int sv_s3_new(const struct sv_s3_options *o, struct sv_s3 **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "s3: libcurl does not initialise: %s",
                 curl_easy_strerror(curl_init_rc));
        return SV_EINTERNAL;
    }
    struct sv_s3 *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "s3: out of memory");
        return -ENOMEM;
    }
    int rc = copy_opt(s->endpoint, sizeof(s->endpoint), o->endpoint, "the endpoint", err, errlen);
    if (!rc)
        rc = copy_opt(s->region, sizeof(s->region), o->region, "the region", err, errlen);
    if (!rc)
        rc = copy_opt(s->bucket, sizeof(s->bucket), o->bucket, "the bucket", err, errlen);
    if (!rc)
        rc = copy_opt(s->access, sizeof(s->access), o->access_key, "the access key", err, errlen);
    if (!rc)
        rc = copy_opt(s->secret, sizeof(s->secret), o->secret_key, "the secret key", err, errlen);
    if (!rc && strncmp(s->endpoint, "http://", 7) && strncmp(s->endpoint, "https://", 8)) {
        snprintf(err, errlen, "s3: the endpoint %s is not an http:// or https:// URL", s->endpoint);
        rc = SV_EINVAL;
    }
    if (!rc && !valid_bucket(s->bucket)) {
        snprintf(err, errlen, "s3: '%s' is not a bucket name (3-63 of a-z 0-9 . -)", s->bucket);
        rc = SV_EINVAL;
    }
    if (!rc && strspn(s->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(s->region)) {
        snprintf(err, errlen, "s3: '%s' is not a region name", s->region);
        rc = SV_EINVAL;
    }
    if (!rc && (o->part_size < SV_S3_PART_MIN || o->part_size > SV_S3_PART_MAX)) {
        snprintf(err, errlen, "s3: the part size must be from 5 MiB to 5 GiB");
        rc = SV_EINVAL;
    }
    if (!rc && o->multipart_threshold > SV_S3_PUT_MAX) {
        snprintf(err, errlen,
                 "s3: the multipart threshold must be at most 5 GiB (one PUT's limit)");
        rc = SV_EINVAL;
    }
    if (!rc && o->max_parts > SV_S3_PARTS_MAX) {
        snprintf(err, errlen, "s3: the part count limit must be from 1 to %d", SV_S3_PARTS_MAX);
        rc = SV_EINVAL;
    }
    if (!rc && o->checksum != SV_S3_CHECKSUM_MD5 && o->checksum != SV_S3_CHECKSUM_CRC32C) {
        snprintf(err, errlen, "s3: unknown checksum kind %d", (int)o->checksum);
        rc = SV_EINVAL;
    }
    if (!rc && (o->concurrency < 1 || o->concurrency > SV_S3_CONCURRENCY_MAX)) {
        snprintf(err, errlen, "s3: the concurrency must be from 1 to %d", SV_S3_CONCURRENCY_MAX);
        rc = SV_EINVAL;
    }
    if (rc) {
        sv_s3_free(s);
        return rc;
    }
    size_t n = strlen(s->endpoint);
    while (n > 8 && s->endpoint[n - 1] == '/')
        s->endpoint[--n] = '\0';
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);
    s->part_size = o->part_size;
    s->multipart_threshold = o->multipart_threshold ? o->multipart_threshold : o->part_size;
    s->max_parts = o->max_parts ? o->max_parts : SV_S3_PARTS_MAX;
    s->checksum = o->checksum;
    s->concurrency = o->concurrency;
    s->retries = o->retries;
    s->cancel = o->cancel;
    *out = s;
    return 0;
}

void sv_s3_free(struct sv_s3 *s)
{
    if (!s)
        return;
    explicit_bzero(s->secret, sizeof(s->secret));
    free(s);
}

const char *sv_s3_bucket(const struct sv_s3 *s)
{
    return s->bucket;
}

void sv_s3_traffic(const struct sv_s3 *s, uint64_t *sent, uint64_t *received)
{
    *sent = atomic_load(&s->sent);
    *received = atomic_load(&s->received);
}

/* --- small helpers ---------------------------------------------------------- */

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int digest(const EVP_MD *md, const void *data, size_t len, unsigned char *out)
{
    unsigned n = 0;
    return EVP_Digest(data, len, out, &n, md, NULL) == 1 ? 0 : SV_EINTERNAL;
}

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE 4.2
 * instruction where the CPU has it, else a byte table. */
static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static int crc32c_hw_ok;

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_hw_ok = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    for (; n; p++, n--)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return (uint32_t)c;
}
#endif

uint32_t sv_s3_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc32c_hw_ok)
        return ~crc32c_hw(c, p, len);
#endif
    for (; len; p++, len--)
        c = crc32c_table[(c ^ *p) & 0xff] ^ (c >> 8);
    return ~c;
}

/* A CRC-32C as S3 writes it: base64 of its 4 bytes, big-endian. */
static void crc32c_b64(uint32_t crc, char *out)
{
    unsigned char be[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16),
                           (unsigned char)(crc >> 8), (unsigned char)crc};
    EVP_EncodeBlock((unsigned char *)out, be, 4);
}

/* Percent-encodes everything but RFC 3986's unreserved characters (and '/'
 * when keep_slash): the form SigV4's canonical request wants. */
static int uri_encode(const char *in, int keep_slash, char *out, size_t cap)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
                   (keep_slash && *p == '/');
        if (o + (keep ? 1 : 3) >= cap)
            return SV_EINVAL;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = digits[*p >> 4];
            out[o++] = digits[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* --- XML ---------------------------------------------------------------------- */

static const char *find_bytes(const char *h, size_t hl, const char *n, size_t nl)
{
    if (nl == 0 || hl < nl)
        return NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

int sv_s3_xml_text(const char *xml, size_t len, size_t *pos, const char *tag, char *out, size_t cap)
{
    char open[72], close[72];
    size_t tl = strlen(tag);
    if (tl == 0 || tl > 64 || cap == 0 || *pos > len)
        return SV_EINVAL;
    int ol = snprintf(open, sizeof(open), "<%s>", tag);
    int cl = snprintf(close, sizeof(close), "</%s>", tag);
    const char *b = find_bytes(xml + *pos, len - *pos, open, (size_t)ol);
    if (!b)
        return SV_ENOTFOUND;
    b += ol;
    const char *e = find_bytes(b, (size_t)(xml + len - b), close, (size_t)cl);
    if (!e)
        return SV_ECORRUPT;
    size_t o = 0;
    for (const char *p = b; p < e; p++) {
        char c = *p;
        if (c == '<')
            return SV_ECORRUPT; /* the elements we read hold text only */
        if (c == '&') {
            static const struct {
                const char *name;
                char c;
            } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
            size_t left = (size_t)(e - p - 1), k;
            for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
                size_t n = strlen(ents[k].name);
                if (left >= n && memcmp(p + 1, ents[k].name, n) == 0) {
                    c = ents[k].c;
                    p += n;
                    break;
                }
            }
            if (k == sizeof(ents) / sizeof(ents[0])) {
                /* &#NN; or &#xNN; of an ASCII character (keys are ASCII here). */
                const char *q = p + 1;
                unsigned long v = 0;
                int base = 10, digits = 0;
                if (q < e && *q == '#') {
                    q++;
                    if (q < e && (*q == 'x' || *q == 'X')) {
                        base = 16;
                        q++;
                    }
                    for (; q < e && digits < 6; q++, digits++) {
                        int d = *q >= '0' && *q <= '9'                 ? *q - '0'
                                : base == 16 && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
                                : base == 16 && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10
                                                                       : -1;
                        if (d < 0)
                            break;
                        v = v * (unsigned long)base + (unsigned long)d;
                    }
                }
                if (!digits || q >= e || *q != ';' || v == 0 || v > 0x7f)
                    return SV_ECORRUPT;
                c = (char)v;
                p = q;
            }
        }
        if (o + 1 >= cap)
            return SV_ECORRUPT;
        out[o++] = c;
    }
    out[o] = '\0';
    *pos = (size_t)(e - xml) + (size_t)cl;
    return 0;
}

/* --- one request -------------------------------------------------------------- */

struct req {
    const char *method; /* GET PUT POST HEAD DELETE */
    const char *key;    /* "" for the bucket */
    const char *query;  /* canonical: names sorted, '=' on each, values encoded; or NULL */
    const void *body;   /* PUT / POST, or NULL with body_fd */
    size_t body_len;
    int body_fd; /* >= 0: the body is body_len bytes of this file at body_foff */
    uint64_t body_foff;
    /* The body's check, sent before it: Content-MD5 (md5, 16 bytes) or
     * x-amz-checksum-crc32c (crc32c, base64), or neither. A body with one
     * is signed as UNSIGNED-PAYLOAD: the store checks it, so a SHA-256
     * would be a second pass over every byte for nothing. */
    const unsigned char *md5;
    const char *crc32c;
    const char *checksum_algorithm; /* x-amz-checksum-algorithm (CreateMultipartUpload) */
    const char *meta_xxh3;          /* x-amz-meta-xxh3 or NULL */
    /* GET into a file instead of memory */
    int fd;
    uint64_t max_bytes;
    int ranged; /* bytes range_off.. of the object, written at that offset */
    uint64_t range_off;

    /* results */
    long status;
    char *resp; /* NUL-terminated, at most BODY_MAX */
    size_t resp_len;
    int resp_over;
    uint64_t file_bytes;
    char etag[ETAG_MAX];
    char xxh3[24];
    char crc32c_echo[16]; /* the x-amz-checksum-crc32c the store answered */
    uint64_t length;
    int has_length;

    /* internal */
    size_t body_off;
    int read_failed;
    struct sv_s3 *s;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct req *r = ud;
    size_t left = r->body_len - r->body_off, take = size * n < left ? size * n : left;
    if (r->body_fd >= 0) {
        /* Straight from the file into libcurl's buffer: no copy of our own. */
        ssize_t got;
        do
            got = pread(r->body_fd, buf, take, (off_t)(r->body_foff + r->body_off));
        while (got < 0 && errno == EINTR);
        if (take && got <= 0) {
            r->read_failed = 1;
            return CURL_READFUNC_ABORT;
        } /* unreadable, or shorter than it was */
        r->body_off += (size_t)got;
        return (size_t)got;
    }
    memcpy(buf, (const char *)r->body + r->body_off, take);
    r->body_off += take;
    return take;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
    struct req *r = ud;
    size_t len = size * n;
    if (r->fd >= 0 && r->status >= 200 && r->status < 300) {
        if (r->file_bytes + len > r->max_bytes) {
            r->resp_over = 1;
            return 0;
        }
        for (size_t off = 0; off < len;) {
            ssize_t w = r->ranged ? pwrite(r->fd, data + off, len - off,
                                           (off_t)(r->range_off + r->file_bytes + off))
                                  : write(r->fd, data + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return 0;
            off += (size_t)w;
        }
        r->file_bytes += len;
        atomic_fetch_add(&r->s->received, len);
        return len;
    }
    if (r->resp_len + len > BODY_MAX) {
        r->resp_over = 1;
        return 0;
    }
    char *p = realloc(r->resp, r->resp_len + len + 1);
    if (!p)
        return 0;
    memcpy(p + r->resp_len, data, len);
    r->resp = p;
    r->resp_len += len;
    p[r->resp_len] = '\0';
    return len;
}

/* Copies a header's value, trimmed, if the line is that header. */
static int header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    if (vl >= cap)
        vl = cap - 1; /* a longer value cannot match what we compare it with */
    memcpy(out, v, vl);
    out[vl] = '\0';
    return 1;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct req *r = ud;
    size_t len = size * n;
    char num[32];
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
        r->etag[0] = r->xxh3[0] = r->crc32c_echo[0] = '\0';
        r->has_length = 0;
        long st = 0;
        const char *sp = memchr(line, ' ', len);
        if (sp)
            st = strtol(sp + 1, NULL, 10);
        r->status = st;
    } else if (header_value(line, len, "ETag", r->etag, sizeof(r->etag))) {
    } else if (header_value(line, len, "x-amz-meta-xxh3", r->xxh3, sizeof(r->xxh3))) {
    } else if (header_value(line, len, "x-amz-checksum-crc32c", r->crc32c_echo,
                            sizeof(r->crc32c_echo))) {
    } else if (header_value(line, len, "Content-Length", num, sizeof(num))) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(num, &end, 10);
        r->has_length = !errno && *end == '\0' && num[0] >= '0' && num[0] <= '9';
        r->length = v;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    struct req *r = ud;
    return r->s->cancel && atomic_load(r->s->cancel) ? 1 : 0;
}

/* The store's <Code> and <Message>, if its answer is an error document. */
static void store_error(const struct req *r, char *out, size_t cap)
{
    char code[128] = "", msg[256] = "";
    size_t pos = 0;
    if (r->resp && sv_s3_xml_text(r->resp, r->resp_len, &pos, "Code", code, sizeof(code)) == 0) {
        pos = 0;
        (void)sv_s3_xml_text(r->resp, r->resp_len, &pos, "Message", msg, sizeof(msg));
    }
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    snprintf(out, cap, "%s%s%s", code, code[0] && msg[0] ? ": " : "", msg);
}

static int status_code(long st)
{
    if (st >= 200 && st < 300)
        return 0;
    if (st == 404)
        return SV_ENOTFOUND;
    if (st == 401 || st == 403)
        return SV_EUNAUTH;
    if (st >= 500 || st == 429 || st == 408)
        return SV_EUNAVAIL;
    return SV_EINVAL;
}

/* One try of r. */
static int perform_once(struct sv_s3 *s, struct req *r, char *err, size_t errlen)
{
    char path[URL_MAX], url[URL_MAX + 600];
    if (uri_encode(r->key, 1, path, sizeof(path))) {
        snprintf(err, errlen, "s3: the key %.200s is too long", r->key);
        return SV_EINVAL;
    }
    snprintf(url, sizeof(url), "%s/%s%s%s%s%s", s->endpoint, s->bucket, r->key[0] ? "/" : "", path,
             r->query ? "?" : "", r->query ? r->query : "");
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "s3: out of memory");
        return -ENOMEM;
    }
    struct curl_slist *hdrs = NULL;
    unsigned char sha[32];
    char line[256], shahex[65] = "UNSIGNED-PAYLOAD";
    int rc = 0;
    if (!r->md5 && !r->crc32c) {
        if (r->body_fd >= 0 ||
            (rc = digest(EVP_sha256(), r->body ? r->body : "", r->body_len, sha))) {
            snprintf(err, errlen, "s3: SHA-256 failed");
            curl_easy_cleanup(h);
            return rc ? rc : SV_EINTERNAL;
        }
        hex(sha, sizeof(sha), shahex);
    }
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", shahex);
    hdrs = curl_slist_append(hdrs, line);
    if (r->md5) {
        unsigned char b64[32];
        EVP_EncodeBlock(b64, r->md5, 16);
        snprintf(line, sizeof(line), "Content-MD5: %s", b64);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (r->crc32c) {
        snprintf(line, sizeof(line), "x-amz-checksum-crc32c: %s", r->crc32c);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (r->checksum_algorithm) {
        snprintf(line, sizeof(line), "x-amz-checksum-algorithm: %s", r->checksum_algorithm);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (r->meta_xxh3) {
        snprintf(line, sizeof(line), "x-amz-meta-xxh3: %s", r->meta_xxh3);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    if (strcmp(r->method, "POST") == 0)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/xml");
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->access);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
    if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20); /* fewer, larger reads */
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    char range[48];
    if (r->ranged) {
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, r->range_off,
                 r->range_off + r->max_bytes - 1);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    r->status = 0;
    r->body_off = 0;
    r->read_failed = 0;
    r->resp_len = 0;
    r->resp_over = 0;
    CURLcode cc = curl_easy_perform(h);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_OK)
        atomic_fetch_add(&s->sent, r->body_len);
    const char *what = r->key[0] ? r->key : "(bucket)";
    if (cc == CURLE_ABORTED_BY_CALLBACK && !r->read_failed) {
        snprintf(err, errlen, "s3: %s %s/%s: cancelled", r->method, s->bucket, what);
        return SV_EUNAVAIL;
    }
    if (cc == CURLE_WRITE_ERROR && r->resp_over) {
        snprintf(err, errlen, "s3: %s %s/%s: the answer is larger than %s", r->method, s->bucket,
                 what, r->fd >= 0 ? "the object may be" : "4 MiB");
        return SV_ECORRUPT;
    }
    if (r->read_failed) {
        snprintf(err, errlen, "s3: %s %s/%s: reading the local file failed (did it change?)",
                 r->method, s->bucket, what);
        return -EIO;
    }
    if (cc == CURLE_WRITE_ERROR && r->fd >= 0) {
        snprintf(err, errlen, "s3: %s %s/%s: writing the local file failed", r->method, s->bucket,
                 what);
        return -EIO;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "s3: %s %s/%s: %s: %s", r->method, s->bucket, what,
                 curl_easy_strerror(cc), curl_err[0] ? curl_err : "-");
        return SV_EUNAVAIL;
    }
    r->status = st;
    rc = status_code(st);
    if (rc) {
        char why[400];
        store_error(r, why, sizeof(why));
        snprintf(err, errlen, "s3: %s %s/%s: HTTP %ld%s%s%s", r->method, s->bucket, what, st,
                 why[0] ? " (" : "", why, why[0] ? ")" : "");
        if (rc == SV_EUNAUTH)
            snprintf(err + strlen(err), errlen - strlen(err),
                     "; the store refuses the credentials (s3_credentials_file)");
    }
    return rc;
}

/* r with retries: SV_EUNAVAIL is tried again after a growing pause. */
static int perform(struct sv_s3 *s, struct req *r, char *err, size_t errlen)
{
    r->s = s;
    unsigned pause = BACKOFF_FIRST_MS;
    for (unsigned attempt = 0;; attempt++) {
        free(r->resp);
        r->resp = NULL;
        if (r->fd >= 0 && attempt > 0 && r->ranged) {
            r->file_bytes = 0; /* written again at the same offsets */
        } else if (r->fd >= 0 && attempt > 0) {
            if (ftruncate(r->fd, 0) || lseek(r->fd, 0, SEEK_SET) < 0) {
                snprintf(err, errlen, "s3: cannot rewind the download: %s", strerror(errno));
                return -errno;
            }
            r->file_bytes = 0;
        }
        int rc = perform_once(s, r, err, errlen);
        if (rc != SV_EUNAVAIL || attempt >= s->retries || (s->cancel && atomic_load(s->cancel)))
            return rc;
        sleep_ms(pause);
        pause = pause * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause * 2;
    }
}

static void req_init(struct req *r, const char *method, const char *key, const char *query)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->key = key;
    r->query = query;
    r->fd = -1;
    r->body_fd = -1;
}

static void req_done(struct req *r)
{
    free(r->resp);
    r->resp = NULL;
}

/* An ETag as hex digits: quotes dropped, lower case. */
static void etag_norm(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < cap; p++)
        if (*p != '"')
            out[o++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    out[o] = '\0';
}

/* --- objects ------------------------------------------------------------------ */

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* shorter than its size said: it changed */
        done += (size_t)n;
    }
    return 0;
}

/* The check of a body sent as it is: which headers, and what must come back. */
struct body_check {
    unsigned char md5[16];
    char md5hex[40];
    uint32_t crc;
    char crc_b64[16];
};

/* Sets r's check headers from c. */
static void check_headers(const struct sv_s3 *s, struct req *r, const struct body_check *c)
{
    if (s->checksum == SV_S3_CHECKSUM_CRC32C)
        r->crc32c = c->crc_b64;
    else
        r->md5 = c->md5;
}

/* After a successful PUT of a body with check c: what the store answered
 * must be what was sent. An MD5 store's ETag is the body's MD5 (an
 * encrypting store, SSE-KMS, answers another ETag: Content-MD5 was checked
 * by the store anyway, so only a 32-digit ETag must match); a CRC-32C store
 * must echo the checksum, else it did not check it. */
static int check_answer(const struct sv_s3 *s, const struct req *r, const struct body_check *c,
                        const char *what, char *err, size_t errlen)
{
    char got[ETAG_MAX];
    if (s->checksum == SV_S3_CHECKSUM_CRC32C) {
        if (!r->crc32c_echo[0]) {
            snprintf(err, errlen,
                     "s3: PUT %s/%s: the store did not confirm the CRC-32C checksum "
                     "(no x-amz-checksum-crc32c in its answer): it may not support it; set "
                     "s3_checksum = md5",
                     s->bucket, what);
            return SV_EINVAL;
        }
        if (strcmp(r->crc32c_echo, c->crc_b64) != 0) {
            snprintf(err, errlen, "s3: PUT %s/%s: the store's CRC-32C %s is not the %s sent",
                     s->bucket, what, r->crc32c_echo, c->crc_b64);
            return SV_ECORRUPT;
        }
        return 0;
    }
    etag_norm(r->etag, got, sizeof(got));
    if (strlen(got) == 32 && strcmp(got, c->md5hex) != 0) {
        snprintf(err, errlen, "s3: PUT %s/%s: the ETag %s is not the MD5 %s of what was sent",
                 s->bucket, what, got, c->md5hex);
        return SV_ECORRUPT;
    }
    return 0;
}

/* The check of data[0..len) (data NULL: of fd's bytes off..off+len-1,
 * read in 1 MiB steps). */
static int body_check_of(const struct sv_s3 *s, const void *data, int fd, uint64_t off,
                         uint64_t len, struct body_check *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    EVP_MD_CTX *ctx = NULL;
    if (s->checksum == SV_S3_CHECKSUM_MD5 &&
        (!(ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1)) {
        EVP_MD_CTX_free(ctx);
        snprintf(err, errlen, "s3: MD5 failed");
        return SV_EINTERNAL;
    }
    enum { STEP = 1 << 20 };
    char *buf = data ? NULL : malloc(STEP);
    int rc = !data && !buf ? -ENOMEM : 0;
    for (uint64_t done = 0; !rc && done < len;) {
        size_t n = len - done < STEP ? (size_t)(len - done) : STEP;
        const void *p = data ? (const char *)data + done : buf;
        if (!data && (rc = read_at(fd, buf, n, off + done)))
            break;
        if (ctx && EVP_DigestUpdate(ctx, p, n) != 1)
            rc = SV_EINTERNAL;
        else if (!ctx)
            c->crc = sv_s3_crc32c(c->crc, p, n);
        done += n;
    }
    unsigned mdlen = 0;
    if (!rc && ctx && EVP_DigestFinal_ex(ctx, c->md5, &mdlen) != 1)
        rc = SV_EINTERNAL;
    EVP_MD_CTX_free(ctx);
    free(buf);
    if (rc) {
        snprintf(err, errlen, "s3: %s",
                 rc == SV_EINTERNAL ? "MD5 failed"
                 : rc == -ENOMEM    ? "out of memory"
                                    : "reading the file to upload failed (did it change?)");
        return rc;
    }
    hex(c->md5, 16, c->md5hex);
    crc32c_b64(c->crc, c->crc_b64);
    return 0;
}

/* One PUT of a body from memory (data) or of fd's first len bytes. */
static int put_one(struct sv_s3 *s, const char *key, const void *data, int fd, uint64_t len,
                   uint64_t xxh3, char *err, size_t errlen)
{
    if (len > SV_S3_PUT_MAX) {
        snprintf(err, errlen, "s3: %s: %" PRIu64 " bytes are more than one PUT takes (5 GiB)", key,
                 len);
        return SV_ETOOLARGE;
    }
    char meta[24];
    struct body_check c;
    snprintf(meta, sizeof(meta), "%016" PRIx64, xxh3);
    int rc = body_check_of(s, data ? (len ? data : "") : NULL, fd, 0, len, &c, err, errlen);
    if (rc)
        return rc;
    struct req r;
    req_init(&r, "PUT", key, NULL);
    r.body = data ? (len ? data : "") : NULL;
    r.body_fd = data ? -1 : fd;
    r.body_len = (size_t)len;
    r.meta_xxh3 = meta;
    check_headers(s, &r, &c);
    rc = perform(s, &r, err, errlen);
    if (!rc)
        rc = check_answer(s, &r, &c, key, err, errlen);
    req_done(&r);
    return rc;
}

int sv_s3_put_buf(struct sv_s3 *s, const char *key, const void *data, size_t len, uint64_t xxh3,
                  char *err, size_t errlen)
{
    return put_one(s, key, data ? data : "", -1, len, xxh3, err, errlen);
}

/* One part as the store acknowledged it. */
struct part {
    struct body_check c;
    char etag[ETAG_MAX]; /* as answered, quotes dropped */
};

struct mp {
    struct sv_s3 *s;
    const char *key;
    char upload_id[512]; /* as sent: percent-encoded */
    int fd;
    uint64_t size;
    uint64_t part_size;
    unsigned nparts;
    struct part *parts;
    pthread_mutex_t mu;
    unsigned next;
    int rc;
    char err[512];
};

static void mp_fail(struct mp *m, int rc, const char *err)
{
    pthread_mutex_lock(&m->mu);
    if (!m->rc) {
        m->rc = rc;
        snprintf(m->err, sizeof(m->err), "%s", err);
    }
    pthread_mutex_unlock(&m->mu);
}

/* Takes parts until none is left: its check read from the file, then the
 * part sent from the file (no part is held in memory). */
static void *mp_worker(void *arg)
{
    struct mp *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        unsigned i = m->next < m->nparts && !m->rc ? m->next++ : m->nparts;
        pthread_mutex_unlock(&m->mu);
        if (i >= m->nparts)
            break;
        struct part *pt = &m->parts[i];
        uint64_t off = (uint64_t)i * m->part_size;
        uint64_t len = m->size - off < m->part_size ? m->size - off : m->part_size;
        char err[512], query[600], what[SV_S3_KEY_MAX + 32];
        int rc = body_check_of(m->s, NULL, m->fd, off, len, &pt->c, err, sizeof(err));
        if (rc) {
            mp_fail(m, rc, err);
            break;
        }
        snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", i + 1, m->upload_id);
        snprintf(what, sizeof(what), "%s part %u", m->key, i + 1);
        struct req r;
        req_init(&r, "PUT", m->key, query);
        r.body_fd = m->fd;
        r.body_foff = off;
        r.body_len = (size_t)len;
        check_headers(m->s, &r, &pt->c);
        rc = perform(m->s, &r, err, sizeof(err));
        if (!rc)
            rc = check_answer(m->s, &r, &pt->c, what, err, sizeof(err));
        etag_norm(r.etag, pt->etag, sizeof(pt->etag));
        req_done(&r);
        if (!rc && !pt->etag[0]) {
            snprintf(err, sizeof(err), "s3: PUT %s/%.300s: no ETag in the answer", m->s->bucket,
                     what);
            rc = SV_ECORRUPT;
        }
        if (rc) {
            mp_fail(m, rc, err);
            break;
        }
    }
    return NULL;
}

int sv_s3_part_plan(uint64_t size, uint64_t part_size, unsigned max_parts, uint64_t *out_size,
                    unsigned *out_parts)
{
    if (size > SV_S3_OBJECT_MAX || part_size < SV_S3_PART_MIN || max_parts < 1 ||
        max_parts > SV_S3_PARTS_MAX)
        return SV_ETOOLARGE;
    uint64_t ps = part_size, need = (size + max_parts - 1) / max_parts;
    if (need > ps) /* more parts than the store takes: larger ones, whole MiB */
        ps = (need + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    if (ps > SV_S3_PART_MAX)
        return SV_ETOOLARGE;
    *out_size = ps;
    *out_parts = size ? (unsigned)((size + ps - 1) / ps) : 1;
    return 0;
}

static int put_multipart(struct sv_s3 *s, const char *key, int fd, uint64_t size, uint64_t xxh3,
                         char *err, size_t errlen)
{
    struct mp m = {.s = s, .key = key, .fd = fd, .size = size};
    if (sv_s3_part_plan(size, s->part_size, s->max_parts, &m.part_size, &m.nparts)) {
        snprintf(err, errlen,
                 "s3: %s: %" PRIu64 " bytes do not fit the store's limits: at most %u parts "
                 "(s3_max_parts) of at most 5 GiB, at most 5 TiB in all",
                 key, size, s->max_parts);
        return SV_ETOOLARGE;
    }
    int crc = s->checksum == SV_S3_CHECKSUM_CRC32C;
    char meta[24], id[400], xml_err[512];
    snprintf(meta, sizeof(meta), "%016" PRIx64, xxh3);
    struct req r;
    req_init(&r, "POST", key, "uploads=");
    r.meta_xxh3 = meta;
    r.checksum_algorithm = crc ? "CRC32C" : NULL;
    int rc = perform(s, &r, err, errlen);
    size_t pos = 0;
    if (!rc && (!r.resp || sv_s3_xml_text(r.resp, r.resp_len, &pos, "UploadId", id, sizeof(id)) ||
                !id[0] || uri_encode(id, 0, m.upload_id, sizeof(m.upload_id)))) {
        snprintf(err, errlen, "s3: POST %s/%s?uploads: no UploadId in the answer", s->bucket, key);
        rc = SV_ECORRUPT;
    }
    req_done(&r);
    if (rc)
        return rc;
    char *body = NULL;
    unsigned char *cat = NULL;
    m.parts = calloc(m.nparts, sizeof(*m.parts));
    if (!m.parts) {
        snprintf(err, errlen, "s3: out of memory");
        rc = -ENOMEM;
        goto abort;
    }
    pthread_mutex_init(&m.mu, NULL);
    unsigned nt = s->concurrency < m.nparts ? s->concurrency : m.nparts, started = 0;
    pthread_t t[SV_S3_CONCURRENCY_MAX];
    for (unsigned i = 0; i < nt; i++)
        if (pthread_create(&t[i], NULL, mp_worker, &m) == 0)
            started++;
    if (started == 0)
        mp_worker(&m);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&m.mu);
    if (m.rc) {
        rc = m.rc;
        snprintf(err, errlen, "%s", m.err);
        goto abort;
    }
    /* Complete: the parts' ETags (and checksums), and the check of the whole:
     * an MD5 store's ETag is the MD5 of the parts' MD5s, "-N"; a CRC-32C
     * store's checksum the CRC-32C of the parts' CRC-32Cs, "-N". */
    size_t cap = 64 + (size_t)m.nparts * (100 + ETAG_MAX);
    body = malloc(cap);
    cat = malloc((size_t)m.nparts * 16);
    if (!body || !cat) {
        snprintf(err, errlen, "s3: out of memory");
        rc = -ENOMEM;
        goto abort;
    }
    size_t o = (size_t)snprintf(body, cap, "<CompleteMultipartUpload>");
    uint32_t whole_crc = 0;
    for (unsigned i = 0; i < m.nparts; i++) {
        const struct part *pt = &m.parts[i];
        unsigned char be[4] = {(unsigned char)(pt->c.crc >> 24), (unsigned char)(pt->c.crc >> 16),
                               (unsigned char)(pt->c.crc >> 8), (unsigned char)pt->c.crc};
        memcpy(cat + (size_t)i * 16, pt->c.md5, 16);
        whole_crc = sv_s3_crc32c(whole_crc, be, 4);
        o += (size_t)snprintf(body + o, cap - o, "<Part>");
        if (crc)
            o += (size_t)snprintf(body + o, cap - o, "<ChecksumCRC32C>%s</ChecksumCRC32C>",
                                  pt->c.crc_b64);
        o += (size_t)snprintf(body + o, cap - o,
                              "<ETag>\"%s\"</ETag><PartNumber>%u</PartNumber></Part>", pt->etag,
                              i + 1);
    }
    o += (size_t)snprintf(body + o, cap - o, "</CompleteMultipartUpload>");
    unsigned char whole[16];
    char want[48], got[ETAG_MAX], etag[ETAG_MAX], query[600];
    if (!crc) {
        rc = digest(EVP_md5(), cat, (size_t)m.nparts * 16, whole);
        hex(whole, 16, want);
    } else {
        crc32c_b64(whole_crc, want);
    }
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "-%u", m.nparts);
    snprintf(query, sizeof(query), "uploadId=%s", m.upload_id);
    req_init(&r, "POST", key, query);
    r.body = body;
    r.body_len = o;
    if (!rc)
        rc = perform(s, &r, err, errlen);
    /* A 200 may still carry an error document (S3 sends it late). */
    pos = 0;
    if (!rc && r.resp &&
        sv_s3_xml_text(r.resp, r.resp_len, &pos, "Code", etag, sizeof(etag)) == 0) {
        store_error(&r, xml_err, sizeof(xml_err));
        snprintf(err, errlen, "s3: completing %s/%s failed: %s", s->bucket, key, xml_err);
        rc = SV_EUNAVAIL;
    }
    pos = 0;
    if (!rc && !crc && r.resp &&
        sv_s3_xml_text(r.resp, r.resp_len, &pos, "ETag", etag, sizeof(etag)) == 0) {
        etag_norm(etag, got, sizeof(got));
        if (strlen(got) == strlen(want) && got[32] == '-' && strcmp(got, want) != 0) {
            snprintf(err, errlen, "s3: %s/%s: the ETag %s of the whole is not %s", s->bucket, key,
                     got, want);
            rc = SV_ECORRUPT;
        }
    }
    if (!rc && crc && r.resp &&
        sv_s3_xml_text(r.resp, r.resp_len, &pos, "ChecksumCRC32C", got, sizeof(got)) == 0 &&
        strchr(got, '-') && strcmp(got, want) != 0) {
        snprintf(err, errlen, "s3: %s/%s: the CRC-32C %s of the whole is not %s", s->bucket, key,
                 got, want);
        rc = SV_ECORRUPT;
    }
    req_done(&r);
abort:
    free(body);
    free(cat);
    free(m.parts);
    if (!rc)
        return 0;
    snprintf(query, sizeof(query), "uploadId=%s", m.upload_id);
    req_init(&r, "DELETE", key, query);
    (void)perform(s, &r, xml_err, sizeof(xml_err));
    req_done(&r);
    return rc;
}

int sv_s3_put_file(struct sv_s3 *s, const char *key, const char *path, uint64_t size, uint64_t xxh3,
                   char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "s3: cannot open %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) || (uint64_t)st.st_size != size) {
        snprintf(err, errlen, "s3: %s has %lld bytes, not %" PRIu64, path, (long long)st.st_size,
                 size);
        rc = SV_ECORRUPT;
    } else if (size > s->multipart_threshold) {
        rc = put_multipart(s, key, fd, size, xxh3, err, errlen);
    } else {
        rc = put_one(s, key, NULL, fd, size, xxh3, err, errlen);
    }
    close(fd);
    return rc;
}

int sv_s3_head(struct sv_s3 *s, const char *key, uint64_t *size, uint64_t *xxh3, int *has_xxh3,
               char *err, size_t errlen)
{
    struct req r;
    req_init(&r, "HEAD", key, NULL);
    int rc = perform(s, &r, err, errlen);
    if (!rc && !r.has_length) {
        snprintf(err, errlen, "s3: HEAD %s/%s: no Content-Length", s->bucket, key);
        rc = SV_ECORRUPT;
    }
    if (!rc) {
        *size = r.length;
        char *end;
        *has_xxh3 = strlen(r.xxh3) == 16 && strspn(r.xxh3, "0123456789abcdefABCDEF") == 16;
        *xxh3 = *has_xxh3 ? strtoull(r.xxh3, &end, 16) : 0;
    }
    req_done(&r);
    return rc;
}

int sv_s3_etag(struct sv_s3 *s, const char *key, char *etag, size_t cap, char *err, size_t errlen)
{
    struct req r;
    req_init(&r, "HEAD", key, NULL);
    int rc = perform(s, &r, err, errlen);
    if (!rc)
        etag_norm(r.etag, etag, cap);
    req_done(&r);
    return rc;
}

int sv_s3_get_file(struct sv_s3 *s, const char *key, const char *path, uint64_t max_bytes,
                   int exact, uint64_t *got, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "s3: cannot create %s: %s", path, strerror(e));
        return -e;
    }
    struct req r;
    req_init(&r, "GET", key, NULL);
    r.fd = fd;
    r.max_bytes = max_bytes;
    int rc = perform(s, &r, err, errlen);
    if (!rc && exact && r.file_bytes != max_bytes) {
        snprintf(err, errlen, "s3: s3://%s/%s has %" PRIu64 " bytes, not the %" PRIu64 " expected",
                 s->bucket, key, r.file_bytes, max_bytes);
        rc = SV_ECORRUPT;
    }
    if (rc == SV_ECORRUPT && r.resp_over)
        snprintf(err, errlen, "s3: s3://%s/%s is larger than the %" PRIu64 " bytes expected",
                 s->bucket, key, max_bytes);
    if (!rc && fsync(fd)) {
        rc = -errno;
        snprintf(err, errlen, "s3: fsync of %s: %s", path, strerror(errno));
    }
    if (got)
        *got = r.file_bytes;
    req_done(&r);
    if (close(fd) && !rc) {
        rc = -errno;
        snprintf(err, errlen, "s3: close of %s: %s", path, strerror(errno));
    }
    if (rc)
        unlink(path);
    return rc;
}

int sv_s3_get_range(struct sv_s3 *s, const char *key, uint64_t off, uint64_t len, int fd, char *err,
                    size_t errlen)
{
    if (len == 0)
        return 0;
    struct req r;
    req_init(&r, "GET", key, NULL);
    r.fd = fd;
    r.max_bytes = len;
    r.ranged = 1;
    r.range_off = off;
    int rc = perform(s, &r, err, errlen);
    /* A store that ignores Range answers 200 with the whole object: more
     * than asked for, refused by the bound above, or exactly it when the
     * range is the whole object. */
    if (!rc && (r.file_bytes != len || (r.status != 206 && !(r.status == 200 && off == 0)))) {
        snprintf(err, errlen,
                 "s3: GET s3://%s/%s bytes %" PRIu64 "+%" PRIu64 ": %" PRIu64
                 " bytes came (HTTP %ld)",
                 s->bucket, key, off, len, r.file_bytes, r.status);
        rc = SV_ECORRUPT;
    }
    if (rc == SV_ECORRUPT && r.resp_over)
        snprintf(err, errlen, "s3: GET s3://%s/%s bytes %" PRIu64 "+%" PRIu64 ": more came",
                 s->bucket, key, off, len);
    req_done(&r);
    return rc;
}

int sv_s3_delete(struct sv_s3 *s, const char *key, char *err, size_t errlen)
{
    struct req r;
    req_init(&r, "DELETE", key, NULL);
    int rc = perform(s, &r, err, errlen);
    req_done(&r);
    return rc == SV_ENOTFOUND ? 0 : rc;
}

/* One page's <Contents>: fn for each. */
static int list_page(const struct req *r, int (*fn)(void *, const char *, uint64_t), void *ud,
                     char *err, size_t errlen)
{
    size_t pos = 0;
    int rc = 0;
    for (;;) {
        /* <Contents> holds elements: find its extent, then Key and Size in it. */
        const char *b = find_bytes(r->resp + pos, r->resp_len - pos, "<Contents>", 10);
        if (!b)
            break;
        const char *e = find_bytes(b, (size_t)(r->resp + r->resp_len - b), "</Contents>", 11);
        if (!e) {
            rc = SV_ECORRUPT;
            break;
        }
        size_t ilen = (size_t)(e - b), ip = 0;
        char key[SV_S3_KEY_MAX + 1], size_s[32];
        if (sv_s3_xml_text(b, ilen, &ip, "Key", key, sizeof(key)) ||
            (ip = 0, sv_s3_xml_text(b, ilen, &ip, "Size", size_s, sizeof(size_s))) ||
            strspn(size_s, "0123456789") != strlen(size_s) || !size_s[0]) {
            rc = SV_ECORRUPT;
            break;
        }
        pos = (size_t)(e - r->resp) + 11;
        if ((rc = fn(ud, key, strtoull(size_s, NULL, 10))))
            break;
    }
    if (rc == SV_ECORRUPT)
        snprintf(err, errlen, "s3: a listing of %s is not a ListBucketResult", r->s->bucket);
    return rc;
}

int sv_s3_list(struct sv_s3 *s, const char *prefix,
               int (*fn)(void *ud, const char *key, uint64_t size), void *ud, char *err,
               size_t errlen)
{
    char enc_prefix[SV_S3_KEY_MAX * 3 + 1], token[2048] = "", enc_token[6200];
    char *query = malloc(sizeof(enc_prefix) + sizeof(enc_token) + 128);
    if (!query)
        return -ENOMEM;
    int rc = uri_encode(prefix, 0, enc_prefix, sizeof(enc_prefix));
    if (rc)
        snprintf(err, errlen, "s3: the prefix is too long");
    for (unsigned page = 0; !rc && page < LIST_PAGES_MAX; page++) {
        if (token[0] && uri_encode(token, 0, enc_token, sizeof(enc_token))) {
            rc = SV_ECORRUPT;
            break;
        }
        /* Canonical order: continuation-token, list-type, max-keys, prefix. */
        sprintf(query, "%s%s%slist-type=2&max-keys=1000&prefix=%s",
                token[0] ? "continuation-token=" : "", token[0] ? enc_token : "",
                token[0] ? "&" : "", enc_prefix);
        struct req r;
        req_init(&r, "GET", "", query);
        rc = perform(s, &r, err, errlen);
        if (!rc && !r.resp) {
            snprintf(err, errlen, "s3: an empty listing of %s", s->bucket);
            rc = SV_ECORRUPT;
        }
        if (!rc)
            rc = list_page(&r, fn, ud, err, errlen);
        char trunc[16] = "", next[sizeof(token)] = "";
        size_t pos = 0;
        if (!rc)
            (void)sv_s3_xml_text(r.resp, r.resp_len, &pos, "IsTruncated", trunc, sizeof(trunc));
        if (!rc && strcmp(trunc, "true") == 0) {
            pos = 0;
            if (sv_s3_xml_text(r.resp, r.resp_len, &pos, "NextContinuationToken", next,
                               sizeof(next)) ||
                !next[0] || strcmp(next, token) == 0) {
                snprintf(err, errlen, "s3: a truncated listing of %s without a new token",
                         s->bucket);
                rc = SV_ECORRUPT;
            }
        }
        req_done(&r);
        if (rc || strcmp(trunc, "true") != 0)
            break;
        memcpy(token, next, sizeof(token));
    }
    free(query);
    return rc;
}
