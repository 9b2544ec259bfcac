/* Error codes shared by the server and the client library.
 *
 * Functions that can fail return int: 0 on success, a negative errno value
 * for system failures, or one of the SV_E* codes below (a reserved negative
 * range, far from any errno). One table generates the enum, the messages and
 * the mapping to wire statuses, so they cannot drift apart. */
#ifndef SV_ERROR_H
#define SV_ERROR_H

/* X(name, code, wire status, message) */
#define SV_ERRORS(X)                                                                               \
    X(SV_ENOTFOUND, -30001, SV_STATUS_NOT_FOUND, "not found")                                      \
    X(SV_EINVAL, -30002, SV_STATUS_INVALID_ARGUMENT, "invalid argument")                           \
    X(SV_ETOOLARGE, -30003, SV_STATUS_TOO_LARGE, "too large")                                      \
    X(SV_EUNAUTH, -30004, SV_STATUS_UNAUTHENTICATED, "unauthenticated")                            \
    X(SV_EBUSY, -30005, SV_STATUS_BUSY, "busy")                                                    \
    X(SV_EUNAVAIL, -30006, SV_STATUS_UNAVAILABLE, "unavailable")                                   \
    X(SV_EINTERNAL, -30007, SV_STATUS_INTERNAL, "internal error")                                  \
    X(SV_ENOSPACE, -30008, SV_STATUS_NO_SPACE, "no space left")                                    \
    X(SV_EMAPFULL, -30009, SV_STATUS_NO_SPACE, "store map is full")                                \
    X(SV_EPROTO, -30010, SV_STATUS_INVALID_ARGUMENT, "malformed message")                          \
    X(SV_ECORRUPT, -30011, SV_STATUS_INTERNAL, "corrupt data")

/* Wire statuses; numerically equal to statesrv.v1.Status. */
#define SV_STATUSES(X)                                                                             \
    X(SV_STATUS_OK, 0, "OK")                                                                       \
    X(SV_STATUS_NOT_FOUND, 1, "NOT_FOUND")                                                         \
    X(SV_STATUS_INVALID_ARGUMENT, 2, "INVALID_ARGUMENT")                                           \
    X(SV_STATUS_TOO_LARGE, 3, "TOO_LARGE")                                                         \
    X(SV_STATUS_UNAUTHENTICATED, 4, "UNAUTHENTICATED")                                             \
    X(SV_STATUS_BUSY, 5, "BUSY")                                                                   \
    X(SV_STATUS_UNAVAILABLE, 6, "UNAVAILABLE")                                                     \
    X(SV_STATUS_INTERNAL, 7, "INTERNAL")                                                           \
    X(SV_STATUS_NO_SPACE, 8, "NO_SPACE")

enum sv_status {
#define SV_X(name, code, text) name = code,
    SV_STATUSES(SV_X)
#undef SV_X
        SV_STATUS_MAX
};

enum sv_error {
#define SV_X(name, code, status, text) name = code,
    SV_ERRORS(SV_X)
#undef SV_X
};

/* A message for any code this project returns (SV_E* or -errno). Static. */
const char *sv_strerror(int err);

/* The wire status for an error code (0 -> SV_STATUS_OK). */
enum sv_status sv_error_status(int err);

/* "NOT_FOUND" etc.; "UNKNOWN" for values outside the table. */
const char *sv_status_name(int status);

#endif
