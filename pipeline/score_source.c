/*
 * pipeline/score_source.c — the header attributes a SEG or Secondary
 * Capture needs from its source (patient, study, lossy history), read in a
 * short-lived child process so that the scoring process never parses an
 * untrusted file itself (../shared/DESIGN.md); see score_internal.h.
 *
 * The child inherits nothing it could harm: it reads one file, writes a
 * fixed-size answer to a pipe and _exit()s. The parent waits with poll()
 * for at most timeout_s, then kills and reaps it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "pipeline/score_internal.h"

/* AddressSanitizer reserves terabytes of address space: an RLIMIT_AS would
 * make every child fail, so sanitizer builds go without it (as ingest's
 * workers do). */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ADDRESS_LIMIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ADDRESS_LIMIT 1
#endif
#endif

typedef struct answer {
    int rc;
    char message[512];
    pnx_dicom_source src;
} answer;

static void child_main(int fd, const char *path, int memory_mb, int timeout_s)
{
    struct rlimit cpu = {(rlim_t)timeout_s, (rlim_t)timeout_s + 1};
    setrlimit(RLIMIT_CPU, &cpu);
#ifndef NO_ADDRESS_LIMIT
    if (memory_mb > 0) {
        struct rlimit as = {(rlim_t)memory_mb << 20, (rlim_t)memory_mb << 20};
        setrlimit(RLIMIT_AS, &as);
    }
#else
    (void)memory_mb;
#endif
    static answer a;
    memset(&a, 0, sizeof a);
    a.rc = pnx_dicom_source_read(path, &a.src);
    if (a.rc)
        snprintf(a.message, sizeof a.message, "%s", pnx_errmsg());
    const char *p = (const char *)&a;
    size_t left = sizeof a;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        left -= (size_t)w;
    }
    _exit(0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int pnx_score_read_source(const char *path, int memory_mb, int timeout_s,
                          pnx_dicom_source *src)
{
    if (timeout_s < 1)
        timeout_s = 1;
    int fds[2];
    if (pipe(fds) != 0)
        return pnx_fail(PNX_EIO, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return pnx_fail(PNX_EIO, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1], path, memory_mb, timeout_s);
    }
    close(fds[1]);

    static answer a; /* one reader at a time (see the header); too big for the stack */
    memset(&a, 0, sizeof a);
    char *p = (char *)&a;
    size_t got = 0;
    int rc = 0;
    const double deadline = now_s() + timeout_s;
    while (got < sizeof a) {
        double left = deadline - now_s();
        if (left <= 0) {
            rc = pnx_fail(PNX_ETIMEOUT, "reading the header took more than %d s", timeout_s);
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = pnx_fail(PNX_EIO, "poll: %s", strerror(errno));
            break;
        }
        if (pr == 0)
            continue;
        ssize_t r = read(fds[0], p + got, sizeof a - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = pnx_fail(PNX_ECRASH, "the header reader died");
            break;
        }
        got += (size_t)r;
    }
    close(fds[0]);
    if (rc)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == PNX_ECRASH && WIFSIGNALED(status))
        rc = pnx_fail(PNX_ECRASH, "the header reader died of signal %d", WTERMSIG(status));
    if (rc)
        return rc;
    if (a.rc) {
        a.message[sizeof a.message - 1] = '\0';
        return pnx_fail(a.rc < 0 ? a.rc : PNX_EFORMAT, "%s", a.message);
    }
    *src = a.src;
    return pnx_dicom_source_check(src);
}
