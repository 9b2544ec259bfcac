#include "sv_error.h"

#include <errno.h>
#include <string.h>

const char *sv_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define SV_X(name, code, status, text)                                                             \
    case name:                                                                                     \
        return text;
        SV_ERRORS(SV_X)
#undef SV_X
    default:
        return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
    }
}

enum sv_status sv_error_status(int err)
{
    switch (err) {
    case 0:
        return SV_STATUS_OK;
#define SV_X(name, code, status, text)                                                             \
    case name:                                                                                     \
        return status;
        SV_ERRORS(SV_X)
#undef SV_X
    case -ENOSPC:
    case -EDQUOT:
        return SV_STATUS_NO_SPACE;
    case -ENOMEM:
    case -EAGAIN:
        return SV_STATUS_UNAVAILABLE;
    default:
        return SV_STATUS_INTERNAL;
    }
}

const char *sv_status_name(int status)
{
    switch (status) {
#define SV_X(name, code, text)                                                                     \
    case name:                                                                                     \
        return text;
        SV_STATUSES(SV_X)
#undef SV_X
    default:
        return "UNKNOWN";
    }
}
