/*
 * common/log.h — leveled log lines on stderr.
 *
 * One global level (set by main from -q / -v). Lines look like
 * "pneumoseg: warning: <message>"; debug and info lines are dropped below
 * their level. Thread-safe: each line is written with one fwrite under a lock.
 * Patient names never go to logs: callers log UIDs and paths only.
 */
#ifndef PNX_COMMON_LOG_H
#define PNX_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum pnx_log_level {
    PNX_LOG_QUIET = -1, /* nothing but errors */
    PNX_LOG_ERROR = 0,
    PNX_LOG_WARN = 1,
    PNX_LOG_INFO = 2,
    PNX_LOG_DEBUG = 3,
};

void pnx_log_set_level(int level);
int pnx_log_get_level(void);

/* Formats one line (without trailing newline) into buf as the logger would
 * print it; returns the length snprintf would have written. For tests. */
int pnx_log_format(char *buf, size_t size, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

void pnx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pnx_log_error(...) pnx_log(PNX_LOG_ERROR, __VA_ARGS__)
#define pnx_log_warn(...) pnx_log(PNX_LOG_WARN, __VA_ARGS__)
#define pnx_log_info(...) pnx_log(PNX_LOG_INFO, __VA_ARGS__)
#define pnx_log_debug(...) pnx_log(PNX_LOG_DEBUG, __VA_ARGS__)

#endif
