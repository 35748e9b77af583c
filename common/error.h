/*
 * common/error.h — error codes and the per-thread error message.
 *
 * Every pneumoseg function that can fail returns int: 0 (PNX_OK) on success
 * or a negative PNX_E… code. Before returning a failure it records a
 * human-readable message with pnx_fail(); the caller may read it with
 * pnx_errmsg() or add context in front of it with pnx_fail_prefix().
 * The message is thread-local, so worker threads never see each other's.
 * Library code never prints or exits; only main() does.
 */
#ifndef PNX_COMMON_ERROR_H
#define PNX_COMMON_ERROR_H

#include <stdarg.h>

enum pnx_status {
    PNX_OK = 0,
    PNX_EINVAL = -1,       /* bad argument or usage */
    PNX_ENOMEM = -2,       /* allocation failed */
    PNX_EIO = -3,          /* read, write, open, fsync, rename failed */
    PNX_EFORMAT = -4,      /* input is malformed */
    PNX_EUNSUPPORTED = -5, /* input is valid but not supported */
    PNX_ERANGE = -6,       /* a size or value is out of the allowed range */
    PNX_EDB = -7,          /* SQLite reported an error */
    PNX_ECONFIG = -8,      /* pipeline.yaml is invalid */
    PNX_ENOTFOUND = -9,    /* a file, key or row does not exist */
    PNX_ECRASH = -10,      /* an isolated worker died */
    PNX_ETIMEOUT = -11,    /* an isolated worker ran out of time */
    PNX_ENOTBUILT = -12,   /* the feature is not built yet / not compiled in */
    PNX_EINTERNAL = -13,   /* a broken invariant: a bug */
    PNX_EDEVICE = -14,     /* GPU / CUDA / cuDNN failure or absence */
};

/* Maximum length of the per-thread message, including the terminator. */
#define PNX_ERRMSG_MAX 1024

/* Records a formatted message for this thread and returns code, so that
 * failures read `return pnx_fail(PNX_EIO, "open %s: %s", path, strerror(e));`. */
int pnx_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int pnx_vfail(int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Puts "<context>: " in front of the current message and returns code. */
int pnx_fail_prefix(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The current thread's last message ("" when none). Valid until the next
 * pnx_fail* call on this thread. */
const char *pnx_errmsg(void);

/* Forgets the current thread's message. */
void pnx_clear_error(void);

/* A short fixed name for a code ("I/O error", "malformed input", …). */
const char *pnx_strerror(int code);

#endif
