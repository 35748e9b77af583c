/*
 * common/progress.h — progress of long work: a bar on a terminal, log lines
 * otherwise.
 *
 * On a terminal (stderr is a tty) the bar is redrawn in place at most ten
 * times a second: "label  [#####.....]  123/456  27%  45.1/s  ETA 0:07".
 * When stderr is not a terminal, one plain line is logged every
 * `PNX_PROGRESS_LOG_INTERVAL_S` seconds and at the end, so logs of batch jobs
 * stay readable. Below PNX_LOG_INFO nothing is shown. Safe to call
 * pnx_progress_add() from several threads.
 */
#ifndef PNX_COMMON_PROGRESS_H
#define PNX_COMMON_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PNX_PROGRESS_LOG_INTERVAL_S 10.0

typedef struct pnx_progress pnx_progress;

/* total may be 0 when unknown (no percentage or ETA then). Returns NULL only
 * when out of memory; all other functions accept NULL and do nothing. */
pnx_progress *pnx_progress_start(const char *label, uint64_t total);
void pnx_progress_add(pnx_progress *p, uint64_t n);
void pnx_progress_set_total(pnx_progress *p, uint64_t total);
/* Prints the final line and frees p. */
void pnx_progress_finish(pnx_progress *p);

/* Formats a status line; bar_width 0 leaves the bar out. Returns the length.
 * Exposed for tests and for callers that want the same wording. */
int pnx_progress_format(char *buf, size_t size, const char *label, uint64_t done,
                        uint64_t total, double elapsed_s, int bar_width);

#endif
