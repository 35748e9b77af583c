/*
 * common/fileio.h — file helpers: atomic writes, reading whole files, mkdir -p.
 *
 * Atomic write: data goes to "<path>.tmp.<pid>.<n>" in the same folder, is
 * fsynced, renamed over <path>, and the folder is fsynced, so a crash leaves
 * either the old file or the new one under the final name, never half of one.
 * On any failure the temporary file is removed and <path> is untouched.
 */
#ifndef PNX_COMMON_FILEIO_H
#define PNX_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct pnx_atomic_file {
    FILE *fp;            /* write through this */
    char *final_path;
    char *tmp_path;
} pnx_atomic_file;

/* Opens a temporary file beside path for writing. */
int pnx_atomic_open(pnx_atomic_file *af, const char *path);
/* Flushes, fsyncs, renames into place, fsyncs the folder, frees. If the
 * stream had a write error, aborts instead and returns PNX_EIO. */
int pnx_atomic_commit(pnx_atomic_file *af);
/* Closes and removes the temporary file; path is untouched. Safe on a
 * zeroed or already finished af. */
void pnx_atomic_abort(pnx_atomic_file *af);

/* Writes len bytes atomically to path. */
int pnx_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, the terminator
 * not counted in *len). Fails with PNX_ERANGE when it exceeds max_bytes. */
int pnx_read_file(const char *path, size_t max_bytes, char **data, size_t *len);

/* Creates a folder and its parents (like mkdir -p); existing folders are fine. */
int pnx_mkdir_p(const char *path, unsigned mode);

/* fsyncs a folder so that renames inside it are durable. */
int pnx_fsync_dir(const char *dir);

/* Joins a and b with one '/' into a malloc'd string (NULL when out of memory). */
char *pnx_path_join(const char *a, const char *b);

/* Test hook: when non-zero, pnx_atomic_commit fails just before the rename
 * (as if the disk filled or the process died), to prove nothing partial is
 * left. Not for production use. */
extern int pnx_fileio_fail_before_rename;

#endif
