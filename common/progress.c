/* common/progress.c — progress bar / periodic log lines; see progress.h. */
#include "common/progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define PNX_PROGRESS_REDRAW_S 0.1
#define PNX_PROGRESS_BAR_WIDTH 24

struct pnx_progress {
    char label[64];
    _Atomic uint64_t done;
    _Atomic uint64_t total;
    double start_s;
    double last_shown_s;
    int tty;
    int shown_any;
    pthread_mutex_t lock;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_duration(char *buf, size_t size, double s)
{
    if (s < 0 || s > 359999.0) {
        snprintf(buf, size, "--:--");
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, size, "%lu:%02lu", t / 60, t % 60);
}

int pnx_progress_format(char *buf, size_t size, const char *label, uint64_t done,
                        uint64_t total, double elapsed_s, int bar_width)
{
    char bar[128] = "";
    char eta[32] = "";
    char rate[32];
    double per_s = elapsed_s > 0 ? (double)done / elapsed_s : 0.0;

    if (total > 0 && bar_width > 0) {
        if (bar_width > (int)sizeof bar - 4)
            bar_width = (int)sizeof bar - 4;
        uint64_t filled = done >= total ? (uint64_t)bar_width : done * (uint64_t)bar_width / total;
        size_t k = 0;
        bar[k++] = '[';
        for (int i = 0; i < bar_width; i++)
            bar[k++] = (uint64_t)i < filled ? '#' : '.';
        bar[k++] = ']';
        bar[k++] = ' ';
        bar[k] = '\0';
    }
    if (per_s >= 100)
        snprintf(rate, sizeof rate, "%.0f/s", per_s);
    else
        snprintf(rate, sizeof rate, "%.1f/s", per_s);
    if (total > 0) {
        char d[24];
        if (done >= total)
            format_duration(d, sizeof d, elapsed_s);
        else
            format_duration(d, sizeof d, per_s > 0 ? (double)(total - done) / per_s : -1);
        snprintf(eta, sizeof eta, done >= total ? "  in %s" : "  ETA %s", d);
        unsigned pct = (unsigned)(done >= total ? 100 : done * 100 / total);
        return snprintf(buf, size, "%s %s%llu/%llu %3u%%  %s%s", label, bar,
                        (unsigned long long)done, (unsigned long long)total, pct, rate, eta);
    }
    return snprintf(buf, size, "%s %llu  %s", label, (unsigned long long)done, rate);
}

pnx_progress *pnx_progress_start(const char *label, uint64_t total)
{
    pnx_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    atomic_store(&p->total, total);
    p->start_s = now_s();
    p->last_shown_s = p->start_s;
    p->tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void show(pnx_progress *p, int final)
{
    char line[256];
    double t = now_s();
    int width = p->tty ? PNX_PROGRESS_BAR_WIDTH : 0;
    pnx_progress_format(line, sizeof line, p->label, atomic_load(&p->done),
                        atomic_load(&p->total), t - p->start_s, width);
    if (p->tty) {
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
        fflush(stderr);
    } else {
        pnx_log_info("%s", line);
    }
    p->last_shown_s = t;
    p->shown_any = 1;
}

void pnx_progress_add(pnx_progress *p, uint64_t n)
{
    if (!p)
        return;
    atomic_fetch_add(&p->done, n);
    if (pnx_log_get_level() < PNX_LOG_INFO)
        return;
    double interval = p->tty ? PNX_PROGRESS_REDRAW_S : PNX_PROGRESS_LOG_INTERVAL_S;
    /* Threads that find the lock taken skip drawing: someone else is. */
    if (pthread_mutex_trylock(&p->lock) != 0)
        return;
    if (now_s() - p->last_shown_s >= interval)
        show(p, 0);
    pthread_mutex_unlock(&p->lock);
}

void pnx_progress_set_total(pnx_progress *p, uint64_t total)
{
    if (p)
        atomic_store(&p->total, total);
}

void pnx_progress_finish(pnx_progress *p)
{
    if (!p)
        return;
    if (pnx_log_get_level() >= PNX_LOG_INFO) {
        pthread_mutex_lock(&p->lock);
        show(p, 1);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}
