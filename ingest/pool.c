/*
 * ingest/pool.c — isolated decode workers.
 *
 * Each worker is a fork()ed copy of the caller connected by a Unix stream
 * socket. The parent sends a job (index, flags, path); the worker decodes
 * the file under its rlimits and sends back one result message followed by
 * width × height pixel bytes. The parent trusts nothing it reads: sizes are
 * checked against the limits, strings are re-terminated. A worker that
 * closes its socket before answering has died (its wait status names the
 * signal); a worker past its wall-clock deadline is killed. Either way the
 * job becomes an error result and a fresh worker is forked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "ingest/dcmtk_adapter.h"
#include "ingest/decode_internal.h"
#include "ingest/ingest.h"

/* AddressSanitizer reserves terabytes of address space: RLIMIT_AS would
 * make every worker fail, so sanitizer builds run workers without it. */
#if defined(__SANITIZE_ADDRESS__)
#define PNX_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PNX_UNDER_ASAN 1
#endif
#endif
#ifndef PNX_UNDER_ASAN
#define PNX_UNDER_ASAN 0
#endif

#define MAX_JOB_PATH 4096
#define MAX_WORKERS 256

struct job_msg {
    uint64_t index;
    uint32_t flags;
    uint32_t path_len;
};

struct result_msg {
    uint64_t index;
    int32_t error_kind;
    uint32_t width;
    uint32_t height;
    double decode_ms;
    char error[PNX_INGEST_MSG_MAX];
    pnx_dicom_meta meta;
};

struct job {
    size_t index;
    char *path;
    unsigned flags;
};

struct worker {
    pid_t pid;          /* 0 when not running */
    int fd;             /* parent's end of the socket; -1 when not running */
    int busy;
    struct job job;     /* the job in progress when busy */
    double deadline_ms; /* wall clock limit of the job in progress */
};

struct pnx_decode_pool {
    struct worker *workers;
    unsigned nworkers;
    unsigned spawned;
    unsigned next_scan; /* where the next poll scan starts, for fairness */
    pnx_ingest_limits limits;
    struct job *queue;
    size_t qhead, qcount, qcap;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------ worker side */

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Blocking read of exactly n bytes; -1 on end of stream or error. */
static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Gives the coming job timeout_s more seconds of CPU than used so far. */
static void arm_cpu_limit(int timeout_s)
{
    struct rusage ru;
    struct rlimit rl;
    if (timeout_s <= 0 || getrusage(RUSAGE_SELF, &ru) != 0 || getrlimit(RLIMIT_CPU, &rl) != 0)
        return;
    rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1);
    rlim_t soft = used + (rlim_t)timeout_s;
    if (rl.rlim_max != RLIM_INFINITY && soft > rl.rlim_max)
        soft = rl.rlim_max;
    rl.rlim_cur = soft;
    setrlimit(RLIMIT_CPU, &rl);
}

/* DCMTK parses nested sequences recursively; whatever the caller's stack
 * limit, a worker gets this one, so that a hostile nesting depth fails the
 * same way everywhere (a crash of that worker). */
#define WORKER_STACK_BYTES (8u << 20)

static void apply_worker_limits(const pnx_ingest_limits *lim)
{
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    struct rlimit stack;
    if (getrlimit(RLIMIT_STACK, &stack) == 0 &&
        (stack.rlim_cur == RLIM_INFINITY || stack.rlim_cur > WORKER_STACK_BYTES)) {
        stack.rlim_cur = WORKER_STACK_BYTES;
        setrlimit(RLIMIT_STACK, &stack);
    }
    if (!PNX_UNDER_ASAN && lim->memory_limit_mb > 0) {
        rlim_t bytes = (rlim_t)lim->memory_limit_mb * 1024 * 1024;
        struct rlimit as = {bytes, bytes};
        setrlimit(RLIMIT_AS, &as);
    }
}

static void worker_main(int fd, const pnx_ingest_limits *lim)
{
    apply_worker_limits(lim);
    pnx_dcm_quiet();
    char *path = malloc(MAX_JOB_PATH + 1);
    pnx_decode_result *r = calloc(1, sizeof *r);
    struct result_msg *msg = calloc(1, sizeof *msg);
    if (!path || !r || !msg)
        _exit(3);
    for (;;) {
        struct job_msg job;
        if (read_full(fd, &job, sizeof job) != 0)
            break; /* the parent closed the socket: done */
        if (job.path_len == 0 || job.path_len > MAX_JOB_PATH)
            _exit(4);
        if (read_full(fd, path, job.path_len) != 0)
            break;
        path[job.path_len] = '\0';

        if (job.flags & PNX_DECODE_TEST_CRASH) {
            signal(SIGSEGV, SIG_DFL); /* past any sanitizer's handler */
            raise(SIGSEGV);
        }
        arm_cpu_limit(lim->timeout_s);
        pnx_decode_run(path, lim, job.flags, r);

        memset(msg, 0, sizeof *msg);
        msg->index = job.index;
        msg->error_kind = r->error_kind;
        msg->width = r->image.pixels ? r->image.width : 0;
        msg->height = r->image.pixels ? r->image.height : 0;
        msg->decode_ms = r->decode_ms;
        memcpy(msg->error, r->error, sizeof msg->error);
        msg->meta = r->meta;
        int bad = write_full(fd, msg, sizeof *msg) != 0 ||
                  (msg->width && write_full(fd, r->image.pixels, pnx_image_size(&r->image)) != 0);
        pnx_image_free(&r->image);
        if (bad)
            break;
    }
    _exit(0);
}

/* ------------------------------------------------------------ parent side */

static int spawn_worker(pnx_decode_pool *p, unsigned i)
{
    struct worker *w = &p->workers[i];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return pnx_fail(PNX_EIO, "decode worker socket: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return pnx_fail(PNX_EIO, "cannot fork a decode worker: %s", strerror(e));
    }
    if (pid == 0) {
        close(sv[0]);
        for (unsigned j = 0; j < p->nworkers; j++)
            if (j != i && p->workers[j].fd >= 0)
                close(p->workers[j].fd);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        signal(SIGPIPE, SIG_IGN);
        worker_main(sv[1], &p->limits);
        _exit(0);
    }
    close(sv[1]);
    w->pid = pid;
    w->fd = sv[0];
    w->busy = 0;
    p->spawned++;
    return 0;
}

/* Kills (when asked) and reaps a worker; returns its wait status. */
static int reap_worker(struct worker *w, int kill_it)
{
    int status = 0;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->pid > 0) {
        if (kill_it)
            kill(w->pid, SIGKILL);
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    w->pid = 0;
    return status;
}

int pnx_decode_pool_create(pnx_decode_pool **out, unsigned workers,
                           const pnx_ingest_limits *limits)
{
    *out = NULL;
    if (workers == 0)
        workers = pnx_cpu_count();
    if (workers > MAX_WORKERS)
        return pnx_fail(PNX_ERANGE, "%u decode workers (at most %d)", workers, MAX_WORKERS);
    int rc = pnx_dcm_global_init();
    if (rc)
        return rc;
    pnx_decode_pool *p = calloc(1, sizeof *p);
    if (!p)
        return pnx_fail(PNX_ENOMEM, "decode pool");
    p->workers = calloc(workers, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return pnx_fail(PNX_ENOMEM, "decode pool");
    }
    p->nworkers = workers;
    if (limits)
        p->limits = *limits;
    else
        pnx_ingest_limits_default(&p->limits);
    if (p->limits.max_pixels <= 0 || p->limits.max_bits < 8 || p->limits.max_bits > 16 ||
        p->limits.timeout_s < 0 || p->limits.memory_limit_mb < 0) {
        free(p->workers);
        free(p);
        return pnx_fail(PNX_EINVAL, "ingest limits out of range");
    }
    for (unsigned i = 0; i < workers; i++)
        p->workers[i].fd = -1;
    for (unsigned i = 0; i < workers; i++) {
        rc = spawn_worker(p, i);
        if (rc) {
            pnx_decode_pool_destroy(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

int pnx_decode_pool_submit(pnx_decode_pool *p, size_t index, const char *path, unsigned flags)
{
    size_t len = strlen(path);
    if (len == 0 || len > MAX_JOB_PATH)
        return pnx_fail(PNX_EINVAL, "path of %zu bytes (1..%d)", len, MAX_JOB_PATH);
    if (p->qhead > 0 && p->qhead + p->qcount == p->qcap) {
        memmove(p->queue, p->queue + p->qhead, p->qcount * sizeof *p->queue);
        p->qhead = 0;
    }
    if (p->qhead + p->qcount == p->qcap) {
        size_t cap = p->qcap ? p->qcap * 2 : 64;
        struct job *q = realloc(p->queue, cap * sizeof *q);
        if (!q)
            return pnx_fail(PNX_ENOMEM, "decode queue");
        p->queue = q;
        p->qcap = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return pnx_fail(PNX_ENOMEM, "decode queue");
    p->queue[p->qhead + p->qcount++] = (struct job){index, copy, flags};
    return 0;
}

size_t pnx_decode_pool_pending(const pnx_decode_pool *p)
{
    size_t n = p->qcount;
    for (unsigned i = 0; i < p->nworkers; i++)
        n += p->workers[i].busy ? 1 : 0;
    return n;
}

unsigned pnx_decode_pool_spawned(const pnx_decode_pool *p)
{
    return p->spawned;
}

static int send_job(struct worker *w, const struct job *job)
{
    struct job_msg msg = {job->index, job->flags, (uint32_t)strlen(job->path)};
    if (write_full(w->fd, &msg, sizeof msg) != 0 || write_full(w->fd, job->path, msg.path_len) != 0)
        return -1;
    return 0;
}

/* Hands queued jobs to idle workers. A worker found dead while idle is
 * replaced and the job goes to the replacement. */
static int dispatch(pnx_decode_pool *p, double timeout_ms)
{
    for (unsigned i = 0; i < p->nworkers && p->qcount > 0; i++) {
        struct worker *w = &p->workers[i];
        if (w->busy)
            continue;
        struct job *job = &p->queue[p->qhead];
        int sent = 0;
        for (int attempt = 0; attempt < 2 && !sent; attempt++) {
            if (w->pid == 0) {
                int rc = spawn_worker(p, i);
                if (rc)
                    return rc;
            }
            if (send_job(w, job) == 0)
                sent = 1;
            else
                reap_worker(w, 1);
        }
        if (!sent)
            return pnx_fail(PNX_ECRASH, "decode worker dies before taking a job");
        w->job = *job;
        w->busy = 1;
        w->deadline_ms = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        p->qhead++;
        p->qcount--;
    }
    if (p->qcount == 0)
        p->qhead = 0;
    return 0;
}

static void fill_failure(pnx_decode_result *r, struct worker *w, int kind, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->index = w->job.index;
    r->path = w->job.path;
    r->error_kind = kind;
    r->meta.rescale_slope = 1.0;
    r->meta.samples_per_pixel = 1;
    r->meta.frames = 1;
    r->meta.lossy = -1;
    snprintf(r->error, sizeof r->error, "%s", msg);
    w->job.path = NULL;
    w->busy = 0;
}

/* The worker closed its socket or sent garbage: reap it and say why. */
static void worker_died(pnx_decode_pool *p, struct worker *w, pnx_decode_result *r)
{
    int status = reap_worker(w, 1);
    char msg[PNX_INGEST_MSG_MAX];
    int kind = PNX_INGEST_ERR_CRASH;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
        kind = PNX_INGEST_ERR_TIMEOUT;
        snprintf(msg, sizeof msg, "decoding used more than %d s of CPU (worker stopped)",
                 p->limits.timeout_s);
    } else if (WIFSIGNALED(status)) {
        snprintf(msg, sizeof msg, "decode worker crashed: signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(msg, sizeof msg, "decode worker crashed: exit status %d", WEXITSTATUS(status));
    } else {
        snprintf(msg, sizeof msg, "decode worker crashed: connection lost");
    }
    fill_failure(r, w, kind, msg);
}

/* Reads one result from a worker that poll() found readable. */
static void collect(pnx_decode_pool *p, struct worker *w, pnx_decode_result *r)
{
    struct result_msg *msg = malloc(sizeof *msg);
    if (!msg || read_full(w->fd, msg, sizeof *msg) != 0) {
        free(msg);
        worker_died(p, w, r);
        return;
    }
    int64_t pixels = (int64_t)msg->width * msg->height;
    int valid = msg->index == w->job.index && msg->error_kind >= 0 &&
                msg->error_kind < PNX_INGEST_ERR_KIND_COUNT && pixels <= p->limits.max_pixels &&
                msg->width <= PNX_IMAGE_MAX_SIDE && msg->height <= PNX_IMAGE_MAX_SIDE &&
                (msg->width == 0) == (msg->height == 0) &&
                (msg->error_kind == PNX_INGEST_OK || pixels == 0);
    if (!valid) {
        free(msg);
        worker_died(p, w, r);
        return;
    }
    memset(r, 0, sizeof *r);
    r->index = w->job.index;
    r->error_kind = msg->error_kind;
    r->decode_ms = msg->decode_ms;
    memcpy(r->error, msg->error, sizeof r->error);
    r->error[sizeof r->error - 1] = '\0';
    r->meta = msg->meta;
    pnx_dicom_meta *m = &r->meta;
    char *strings[] = {m->patient_id, m->study_uid, m->series_uid, m->sop_uid,
                       m->sop_class_uid, m->transfer_syntax, m->modality, m->photometric,
                       m->view_position, m->lossy_method};
    size_t sizes[] = {sizeof m->patient_id, sizeof m->study_uid, sizeof m->series_uid,
                      sizeof m->sop_uid, sizeof m->sop_class_uid, sizeof m->transfer_syntax,
                      sizeof m->modality, sizeof m->photometric, sizeof m->view_position,
                      sizeof m->lossy_method};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        strings[i][sizes[i] - 1] = '\0';
    uint32_t width = msg->width, height = msg->height;
    free(msg);

    if (width > 0) {
        if (pnx_image_alloc(&r->image, width, height) != 0 ||
            read_full(w->fd, r->image.pixels, pnx_image_size(&r->image)) != 0) {
            pnx_image_free(&r->image);
            worker_died(p, w, r);
            return;
        }
    }
    r->path = w->job.path;
    w->job.path = NULL;
    w->busy = 0;
}

/* Refills idle workers after a result was taken. A failure here (no
 * replacement could be forked) must not lose the result in hand: the jobs
 * stay queued and the next call reports the failure. */
static void keep_going(pnx_decode_pool *p, double timeout_ms)
{
    if (dispatch(p, timeout_ms) != 0)
        pnx_clear_error();
}

int pnx_decode_pool_next(pnx_decode_pool *p, pnx_decode_result *r)
{
    memset(r, 0, sizeof *r);
    if (pnx_decode_pool_pending(p) == 0)
        return pnx_fail(PNX_ENOTFOUND, "no decode job pending");
    const double timeout_ms = p->limits.timeout_s > 0 ? p->limits.timeout_s * 1000.0 : 0;
    int rc = dispatch(p, timeout_ms);
    if (rc)
        return rc;

    struct pollfd fds[MAX_WORKERS];
    unsigned owner[MAX_WORKERS];
    for (;;) {
        nfds_t n = 0;
        double now = now_ms(), wait = -1;
        for (unsigned k = 0; k < p->nworkers; k++) {
            unsigned i = (p->next_scan + k) % p->nworkers;
            struct worker *w = &p->workers[i];
            if (!w->busy)
                continue;
            if (w->deadline_ms > 0) {
                if (now >= w->deadline_ms) {
                    char msg[PNX_INGEST_MSG_MAX];
                    snprintf(msg, sizeof msg,
                             "decoding took longer than %d s (worker killed)",
                             p->limits.timeout_s);
                    reap_worker(w, 1);
                    fill_failure(r, w, PNX_INGEST_ERR_TIMEOUT, msg);
                    p->next_scan = (i + 1) % p->nworkers;
                    keep_going(p, timeout_ms);
                    return 0;
                }
                double left = w->deadline_ms - now;
                if (wait < 0 || left < wait)
                    wait = left;
            }
            fds[n] = (struct pollfd){.fd = w->fd, .events = POLLIN};
            owner[n++] = i;
        }
        if (n == 0)
            return pnx_fail(PNX_EINTERNAL, "decode jobs pending but no worker busy");
        int ready = poll(fds, n, wait < 0 ? -1 : (int)(wait + 1));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return pnx_fail(PNX_EIO, "poll on decode workers: %s", strerror(errno));
        for (nfds_t k = 0; k < n; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct worker *w = &p->workers[owner[k]];
            collect(p, w, r);
            p->next_scan = (owner[k] + 1) % p->nworkers;
            keep_going(p, timeout_ms);
            return 0;
        }
    }
}

void pnx_decode_pool_destroy(pnx_decode_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct worker *w = &p->workers[i];
        reap_worker(w, 1);
        free(w->job.path);
    }
    for (size_t i = 0; i < p->qcount; i++)
        free(p->queue[p->qhead + i].path);
    free(p->queue);
    free(p->workers);
    free(p);
}
