/*
 * ingest/decode.c — decoding one file, start to end, in the calling
 * process: the cheap checks done in C (a regular, non-empty file whose
 * first bytes look like DICOM), then DCMTK through the adapter. A pool
 * worker runs exactly this; pnx_decode_file_unisolated exposes it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "ingest/dcmtk_adapter.h"
#include "ingest/decode_internal.h"
#include "ingest/ingest.h"
#include "ingest/nesting.h"

#define SNIFF_BYTES 132

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int set_error(pnx_decode_result *r, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(pnx_decode_result *r, int kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->error_kind = kind;
    return kind;
}

/* Opens path and checks it is a non-empty regular file that looks like
 * DICOM. Returns PNX_INGEST_OK or an error kind set in r. */
static int precheck(const char *path, pnx_decode_result *r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(r, PNX_INGEST_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return set_error(r, PNX_INGEST_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return set_error(r, PNX_INGEST_ERR_IO, "not a regular file");
    }
    r->meta.file_size = (int64_t)st.st_size;
    if (st.st_size == 0) {
        close(fd);
        return set_error(r, PNX_INGEST_ERR_NOT_DICOM, "not DICOM: empty file (0 bytes)");
    }
    uint8_t head[SNIFF_BYTES];
    size_t got = 0;
    while (got < sizeof head) {
        ssize_t n = read(fd, head + got, sizeof head - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return set_error(r, PNX_INGEST_ERR_IO, "cannot read: %s", strerror(e));
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (!pnx_ingest_sniff(head, got)) {
        close(fd);
        return set_error(r, PNX_INGEST_ERR_NOT_DICOM,
                         "not DICOM: no 'DICM' marker at byte 128 and no dataset start");
    }
    /* A mapping that fails (say, over the worker's address-space limit)
     * only skips the scan. */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map != MAP_FAILED) {
        int deep = pnx_nesting_exceeds(map, (size_t)st.st_size, PNX_MAX_SEQUENCE_DEPTH);
        munmap(map, (size_t)st.st_size);
        if (deep)
            return set_error(r, PNX_INGEST_ERR_MALFORMED,
                             "sequences nested deeper than %d levels (hostile file?)",
                             PNX_MAX_SEQUENCE_DEPTH);
    }
    return PNX_INGEST_OK;
}

void pnx_decode_run(const char *path, const pnx_ingest_limits *limits, unsigned flags,
                    pnx_decode_result *r)
{
    double t0 = now_ms();
    memset(&r->meta, 0, sizeof r->meta);
    r->meta.rescale_slope = 1.0;
    r->meta.samples_per_pixel = 1;
    r->meta.frames = 1;
    r->meta.lossy = -1;
    r->image.pixels = NULL;
    r->image.width = r->image.height = 0;
    r->error_kind = PNX_INGEST_OK;
    r->error[0] = '\0';

    if (precheck(path, r) == PNX_INGEST_OK) {
        int64_t size = r->meta.file_size;
        r->error_kind = pnx_dcm_decode(path, limits, flags, &r->meta, &r->image, r->error,
                                       sizeof r->error);
        r->meta.file_size = size;
        if (r->error_kind != PNX_INGEST_OK)
            pnx_image_free(&r->image);
    }
    r->decode_ms = now_ms() - t0;
}

int pnx_decode_file_unisolated(const char *path, const pnx_ingest_limits *limits,
                               unsigned flags, pnx_decode_result *r)
{
    pnx_ingest_limits defaults;
    if (!limits) {
        pnx_ingest_limits_default(&defaults);
        limits = &defaults;
    }
    memset(r, 0, sizeof *r);
    pnx_dcm_quiet();
    pnx_decode_run(path, limits, flags, r);
    return 0;
}

void pnx_decode_result_free(pnx_decode_result *r)
{
    if (!r)
        return;
    pnx_image_free(&r->image);
    free(r->path);
    r->path = NULL;
}
