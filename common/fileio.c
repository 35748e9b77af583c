/* common/fileio.c — atomic writes, whole-file reads, mkdir -p; see fileio.h. */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

int pnx_fileio_fail_before_rename = 0;

static _Atomic unsigned g_tmp_counter;

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The folder part of path ("." when there is none), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return dup_string(".");
    if (slash == path)
        return dup_string("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

char *pnx_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    char *s = malloc(la + 1 + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

int pnx_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return pnx_fail(PNX_EIO, "open folder %s: %s", dir, strerror(errno));
    int rc = PNX_OK;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = pnx_fail(PNX_EIO, "fsync folder %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int pnx_atomic_open(pnx_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    af->final_path = dup_string(path);
    size_t n = strlen(path) + 64;
    af->tmp_path = malloc(n);
    if (!af->final_path || !af->tmp_path) {
        pnx_atomic_abort(af);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&g_tmp_counter, 1));
    int fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        pnx_atomic_abort(af);
        return pnx_fail(PNX_EIO, "create temporary file for %s: %s", path, strerror(e));
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        pnx_atomic_abort(af);
        return pnx_fail(PNX_EIO, "open stream for %s: %s", path, strerror(e));
    }
    return PNX_OK;
}

void pnx_atomic_abort(pnx_atomic_file *af)
{
    if (!af)
        return;
    if (af->fp)
        fclose(af->fp);
    if (af->tmp_path)
        unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
}

int pnx_atomic_commit(pnx_atomic_file *af)
{
    int rc = PNX_OK;
    if (!af->fp)
        return pnx_fail(PNX_EINVAL, "atomic file is not open");
    if (fflush(af->fp) != 0 || ferror(af->fp))
        rc = pnx_fail(PNX_EIO, "write %s: %s", af->final_path, strerror(errno));
    else if (fsync(fileno(af->fp)) != 0)
        rc = pnx_fail(PNX_EIO, "fsync %s: %s", af->final_path, strerror(errno));
    if (rc == PNX_OK && pnx_fileio_fail_before_rename)
        rc = pnx_fail(PNX_EIO, "write %s: simulated failure before rename", af->final_path);
    if (rc != PNX_OK) {
        pnx_atomic_abort(af);
        return rc;
    }
    if (fclose(af->fp) != 0) {
        af->fp = NULL;
        rc = pnx_fail(PNX_EIO, "close %s: %s", af->final_path, strerror(errno));
        pnx_atomic_abort(af);
        return rc;
    }
    af->fp = NULL;
    if (rename(af->tmp_path, af->final_path) != 0) {
        rc = pnx_fail(PNX_EIO, "rename into %s: %s", af->final_path, strerror(errno));
        pnx_atomic_abort(af);
        return rc;
    }
    char *dir = dir_of(af->final_path);
    free(af->tmp_path);
    af->tmp_path = NULL;
    if (!dir)
        rc = pnx_fail(PNX_ENOMEM, "out of memory");
    else
        rc = pnx_fsync_dir(dir);
    free(dir);
    pnx_atomic_abort(af);
    return rc;
}

int pnx_write_file_atomic(const char *path, const void *data, size_t len)
{
    pnx_atomic_file af;
    int rc = pnx_atomic_open(&af, path);
    if (rc)
        return rc;
    if (len > 0 && fwrite(data, 1, len, af.fp) != len) {
        rc = pnx_fail(PNX_EIO, "write %s: %s", path, strerror(errno));
        pnx_atomic_abort(&af);
        return rc;
    }
    return pnx_atomic_commit(&af);
}

int pnx_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pnx_fail(errno == ENOENT ? PNX_ENOTFOUND : PNX_EIO, "open %s: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pnx_fail(PNX_EIO, "stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pnx_fail(PNX_EIO, "%s is not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max_bytes) {
        close(fd);
        return pnx_fail(PNX_ERANGE, "%s is %lld bytes, more than the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return pnx_fail(PNX_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            free(buf);
            close(fd);
            return pnx_fail(PNX_EIO, "read %s: %s", path, e ? strerror(e) : "file shrank");
        }
        got += (size_t)n;
    }
    close(fd);
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return PNX_OK;
}

int pnx_mkdir_p(const char *path, unsigned mode)
{
    size_t n = strlen(path);
    if (n == 0)
        return pnx_fail(PNX_EINVAL, "empty folder name");
    char *p = dup_string(path);
    if (!p)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = pnx_fail(PNX_EIO, "create folder %s: %s", p, strerror(e));
            free(p);
            return rc;
        }
        p[i] = saved;
    }
    struct stat st;
    int rc = PNX_OK;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = pnx_fail(PNX_EIO, "%s exists and is not a folder", path);
    free(p);
    return rc;
}
