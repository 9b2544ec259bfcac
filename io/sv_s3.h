/* A small client of S3-compatible object storage, on libcurl.
 *
 * What statesrvd's checkpoints need and nothing more: PUT an object from a
 * file (one request up to multipart_threshold, a multipart upload above it,
 * parts in parallel, each sent straight from the file), GET an object into a file (whole, with a
 * size bound), HEAD, LIST (ListObjectsV2, paginated), DELETE. Path-style addressing
 * (ENDPOINT/BUCKET/KEY), so any endpoint works without wildcard DNS.
 *
 * Signing is libcurl's own AWS Signature V4 (CURLOPT_AWS_SIGV4). libcurl
 * 7.88 signs the query string as written and takes the payload hash from an
 * x-amz-content-sha256 header the caller sends: every request here sends
 * the SHA-256 of its body (empty ones included) — but uploads, which
 * carry a checksum the store checks instead (UNSIGNED-PAYLOAD) — and builds
 * its query string in canonical order with '=' after every name and values
 * percent-encoded. Every upload (object or part) carries a checksum of its
 * body, computed from the file before it is sent, so the store refuses a
 * body that did not arrive intact:
 *   SV_S3_CHECKSUM_MD5     Content-MD5, which every S3-compatible store
 *                          checks; the ETag answered is checked against it
 *                          (one part: the body's MD5; a multipart object:
 *                          MD5 of the parts' MD5s, "-N").
 *   SV_S3_CHECKSUM_CRC32C  x-amz-checksum-crc32c (S3's additional
 *                          checksums: AWS, MinIO, Ceph RGW 19, versitygw),
 *                          in hardware, about 20 times cheaper than MD5;
 *                          the store must echo it, else the upload fails
 *                          (a store that ignores the header checks nothing).
 * Store limits: a part is 5 MiB to 5 GiB (but the last), one PUT at most
 * 5 GiB, an object at most 5 TiB, at most max_parts parts (S3: 10,000;
 * OpenStack Swift's s3api: 1,000): the part size grows for a file that
 * would need more; a file that cannot fit fails with SV_ETOOLARGE before
 * anything is sent. Every object written carries the
 * caller's x-amz-meta-xxh3 (the checkpoint format's checksum of the file),
 * which HEAD reports back, so "this object is that file" is checked without
 * reading it.
 *
 * Every answer is untrusted: bodies are read into buffers of a fixed bound
 * (an answer above it fails the request), the few XML elements needed are
 * taken by a bounded scanner, and a GET writes at most the bytes asked for.
 *
 * Errors: 0 or a negative code; err (when given) names the request, the
 * object and the store's own code and message:
 *   SV_ENOTFOUND  404 (no such object, or no such bucket)
 *   SV_EUNAUTH    401/403: the credentials are refused
 *   SV_EUNAVAIL   the store is unreachable, timed out, or answered 5xx or
 *                 429 (requests are tried again, a few times with backoff,
 *                 before this is returned), or the transfer was cancelled
 *   SV_ECORRUPT   an answer that is not as it must be (bad XML, an ETag or
 *                 size that does not match, too large)
 *   SV_EINVAL     any other 4xx, or an argument out of range
 *   -errno        a local file could not be read or written
 *
 * Threads: one struct sv_s3 may be used by several threads at once (each
 * request has its own libcurl handle); sv_s3_new and sv_s3_free are not
 * concurrent with anything. */
#ifndef SV_S3_H
#define SV_S3_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SV_S3_PART_MIN (5ull << 20)   /* S3: every part but the last is at least 5 MiB */
#define SV_S3_PART_MAX (5ull << 30)   /* S3: a part is at most 5 GiB */
#define SV_S3_PUT_MAX (5ull << 30)    /* S3: one PUT is at most 5 GiB */
#define SV_S3_OBJECT_MAX (5ull << 40) /* S3: an object is at most 5 TiB */
#define SV_S3_PARTS_MAX 10000         /* S3's limit of parts in one upload */
#define SV_S3_CONCURRENCY_MAX 16
#define SV_S3_KEY_MAX 1024 /* S3's limit of a key's bytes */

enum sv_s3_checksum { SV_S3_CHECKSUM_MD5, SV_S3_CHECKSUM_CRC32C };

struct sv_s3_options {
    const char *endpoint;   /* "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com" */
    const char *region;     /* "us-east-1" */
    const char *bucket;     /* 3..63 bytes of [a-z0-9.-] */
    const char *access_key; /* copied */
    const char *secret_key; /* copied, wiped by sv_s3_free */
    uint64_t part_size;     /* SV_S3_PART_MIN..SV_S3_PART_MAX: multipart parts (at least) */
    uint64_t multipart_threshold; /* files above it are multipart (0: part_size), <= 5 GiB */
    unsigned max_parts;           /* the store's part limit, 1..10000 (0: 10000) */
    enum sv_s3_checksum checksum; /* of every upload's body */
    unsigned concurrency;         /* parts in flight at once, 1..SV_S3_CONCURRENCY_MAX */
    unsigned retries;             /* further tries of a request that got SV_EUNAVAIL (0: none) */
    /* Set to non-zero by anyone to stop every transfer soon (SV_EUNAVAIL);
     * may be NULL. Must outlive the client. */
    const atomic_int *cancel;
};

struct sv_s3;

/* Checks the options (SV_EINVAL naming the bad one) and makes a client. */
int sv_s3_new(const struct sv_s3_options *o, struct sv_s3 **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void sv_s3_free(struct sv_s3 *s);

/* Splits "s3://BUCKET/PREFIX" (prefix may be empty; no trailing '/', no
 * empty, "." or ".." segment). 0 or SV_EINVAL. */
int sv_s3_parse_url(const char *url, char *bucket, size_t bucket_cap, char *prefix,
                    size_t prefix_cap) __attribute__((warn_unused_result));

/* Uploads the file at path to key, with x-amz-meta-xxh3 = xxh3 (16 hex
 * digits). Checks that the file has `size` bytes (it must not change
 * meanwhile). A multipart upload that fails is aborted (best effort). */
int sv_s3_put_file(struct sv_s3 *s, const char *key, const char *path, uint64_t size, uint64_t xxh3,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Uploads a buffer to key in one PUT (S3 takes up to 5 GiB so), as
 * sv_s3_put_file. */
int sv_s3_put_buf(struct sv_s3 *s, const char *key, const void *data, size_t len, uint64_t xxh3,
                  char *err, size_t errlen) __attribute__((warn_unused_result));

/* What HEAD says of key: its size and its x-amz-meta-xxh3 (*has_xxh3 0
 * when it has none). SV_ENOTFOUND when there is no such object. */
int sv_s3_head(struct sv_s3 *s, const char *key, uint64_t *size, uint64_t *xxh3, int *has_xxh3,
               char *err, size_t errlen) __attribute__((warn_unused_result));

/* The ETag HEAD answers for key, quotes dropped, into etag (cap bytes): a
 * multipart object's ends in "-N", N its parts. */
int sv_s3_etag(struct sv_s3 *s, const char *key, char *etag, size_t cap, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Downloads key into a new file at path (created 0640, fsynced). An object
 * of more than max_bytes fails (SV_ECORRUPT) and so does a short one when
 * exact is set and its size differs from max_bytes. The file is removed on
 * failure. *got (may be NULL): bytes written. */
int sv_s3_get_file(struct sv_s3 *s, const char *key, const char *path, uint64_t max_bytes,
                   int exact, uint64_t *got, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Bytes off..off+len-1 of key (a ranged GET) written at the same offsets
 * of fd, exactly len of them (else SV_ECORRUPT). */
int sv_s3_get_range(struct sv_s3 *s, const char *key, uint64_t off, uint64_t len, int fd, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* Every key under prefix (ListObjectsV2, 1000 a page, every page), in the
 * store's order (UTF-8 binary): fn(ud, key, size) for each; a non-zero
 * return from fn stops the listing and is returned. */
int sv_s3_list(struct sv_s3 *s, const char *prefix,
               int (*fn)(void *ud, const char *key, uint64_t size), void *ud, char *err,
               size_t errlen) __attribute__((warn_unused_result));

/* Deletes key (no error when it is not there). */
int sv_s3_delete(struct sv_s3 *s, const char *key, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* How a file of size bytes is cut: parts of part_size, or larger ones (whole
 * MiB) when that would need more than max_parts. 0, or SV_ETOOLARGE when no
 * part size within S3's limits fits (or size is above 5 TiB). */
int sv_s3_part_plan(uint64_t size, uint64_t part_size, unsigned max_parts, uint64_t *out_size,
                    unsigned *out_parts) __attribute__((warn_unused_result));

/* CRC-32C of len bytes, continuing crc (0 to start): the checksum
 * SV_S3_CHECKSUM_CRC32C sends. */
uint32_t sv_s3_crc32c(uint32_t crc, const void *data, size_t len);

/* The bucket the client was made for. */
const char *sv_s3_bucket(const struct sv_s3 *s);

/* Bytes sent in request bodies and received in GETs since sv_s3_new (any
 * thread may read them). */
void sv_s3_traffic(const struct sv_s3 *s, uint64_t *sent, uint64_t *received);

/* The bounded XML scanner, exposed for the unit tests: the text of the
 * first element <tag>...</tag> at or after *pos in xml[0..len),
 * entities decoded into out (at most cap-1 bytes, NUL-terminated). On
 * success *pos is set past the element's end tag. 0, SV_ENOTFOUND when
 * there is no such element, SV_ECORRUPT for text too long for out, an
 * unterminated element or a bad entity. */
int sv_s3_xml_text(const char *xml, size_t len, size_t *pos, const char *tag, char *out,
                   size_t cap);

#endif
