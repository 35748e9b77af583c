/* common/log.c — leveled log lines on stderr; see log.h. */
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>

static int g_level = PNX_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void pnx_log_set_level(int level)
{
    if (level < PNX_LOG_QUIET)
        level = PNX_LOG_QUIET;
    if (level > PNX_LOG_DEBUG)
        level = PNX_LOG_DEBUG;
    g_level = level;
}

int pnx_log_get_level(void) { return g_level; }

static const char *level_prefix(int level)
{
    switch (level) {
    case PNX_LOG_ERROR: return "error: ";
    case PNX_LOG_WARN: return "warning: ";
    case PNX_LOG_DEBUG: return "debug: ";
    default: return "";
    }
}

int pnx_log_format(char *buf, size_t size, int level, const char *fmt, va_list ap)
{
    int head = snprintf(buf, size, "pneumoseg: %s", level_prefix(level));
    if (head < 0)
        return head;
    size_t used = (size_t)head < size ? (size_t)head : size;
    int body = vsnprintf(buf + used, size - used, fmt, ap);
    if (body < 0)
        return body;
    return head + body;
}

void pnx_log(int level, const char *fmt, ...)
{
    /* Errors are shown even in quiet mode; everything else obeys the level. */
    if (level > g_level && level != PNX_LOG_ERROR)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = pnx_log_format(line, sizeof line - 1, level, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 2 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    pthread_mutex_lock(&g_lock);
    fwrite(line, 1, len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}
