/* common/error.c — per-thread error messages; see error.h. */
#include "common/error.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char tls_msg[PNX_ERRMSG_MAX];

int pnx_vfail(int code, const char *fmt, va_list ap)
{
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    return code;
}

int pnx_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pnx_vfail(code, fmt, ap);
    va_end(ap);
    return code;
}

int pnx_fail_prefix(int code, const char *fmt, ...)
{
    char prefix[PNX_ERRMSG_MAX];
    char old[PNX_ERRMSG_MAX];
    va_list ap;

    memcpy(old, tls_msg, sizeof old);
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Built piecewise: the result is cut at PNX_ERRMSG_MAX by design. */
    size_t n = strnlen(prefix, sizeof tls_msg - 1);
    memcpy(tls_msg, prefix, n);
    if (old[0] != '\0' && n + 2 < sizeof tls_msg) {
        tls_msg[n++] = ':';
        tls_msg[n++] = ' ';
        size_t m = strnlen(old, sizeof tls_msg - 1 - n);
        memcpy(tls_msg + n, old, m);
        n += m;
    }
    tls_msg[n] = '\0';
    return code;
}

const char *pnx_errmsg(void) { return tls_msg; }

void pnx_clear_error(void) { tls_msg[0] = '\0'; }

const char *pnx_strerror(int code)
{
    switch (code) {
    case PNX_OK: return "success";
    case PNX_EINVAL: return "invalid argument";
    case PNX_ENOMEM: return "out of memory";
    case PNX_EIO: return "I/O error";
    case PNX_EFORMAT: return "malformed input";
    case PNX_EUNSUPPORTED: return "unsupported input";
    case PNX_ERANGE: return "value out of range";
    case PNX_EDB: return "database error";
    case PNX_ECONFIG: return "configuration error";
    case PNX_ENOTFOUND: return "not found";
    case PNX_ECRASH: return "worker crashed";
    case PNX_ETIMEOUT: return "worker timed out";
    case PNX_ENOTBUILT: return "not built yet";
    case PNX_EINTERNAL: return "internal error";
    case PNX_EDEVICE: return "device error";
    default: return "unknown error";
    }
}
