/*
 * ingest/walk.c — finding candidate DICOM files under a folder. The only
 * parsing is a look at each file's first 132 bytes (pnx_ingest_sniff), so
 * the walk is safe in the main process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "ingest/ingest.h"

#define SNIFF_BYTES 132
/* Deeper than any real archive; bounds the recursion. */
#define MAX_DEPTH 64

struct visited {
    dev_t *dev;
    ino_t *ino;
    size_t count, cap;
};

static int seen_before(struct visited *v, const struct stat *st, int *seen)
{
    for (size_t i = 0; i < v->count; i++)
        if (v->dev[i] == st->st_dev && v->ino[i] == st->st_ino) {
            *seen = 1;
            return 0;
        }
    *seen = 0;
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        dev_t *d = realloc(v->dev, cap * sizeof *d);
        if (!d)
            return pnx_fail(PNX_ENOMEM, "walk");
        v->dev = d;
        ino_t *n = realloc(v->ino, cap * sizeof *n);
        if (!n)
            return pnx_fail(PNX_ENOMEM, "walk");
        v->ino = n;
        v->cap = cap;
    }
    v->dev[v->count] = st->st_dev;
    v->ino[v->count++] = st->st_ino;
    return 0;
}

static int ends_with_dcm(const char *name)
{
    size_t n = strlen(name);
    return n >= 4 && strcasecmp(name + n - 4, ".dcm") == 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int looks_dicom(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    uint8_t head[SNIFF_BYTES];
    size_t got = 0;
    while (got < sizeof head) {
        ssize_t k = read(fd, head + got, sizeof head - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    return pnx_ingest_sniff(head, got);
}

static int add_file(pnx_ingest_file_list *list, const char *path, const struct stat *st)
{
    if (strcasecmp(base_name(path), "DICOMDIR") == 0) {
        list->skipped++;
        return 0;
    }
    int dicom = looks_dicom(path);
    if (!dicom && !ends_with_dcm(base_name(path))) {
        list->skipped++;
        return 0;
    }
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? list->capacity * 2 : 256;
        pnx_ingest_file *f = realloc(list->files, cap * sizeof *f);
        if (!f)
            return pnx_fail(PNX_ENOMEM, "file list");
        list->files = f;
        list->capacity = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return pnx_fail(PNX_ENOMEM, "file list");
    list->files[list->count++] = (pnx_ingest_file){copy, (int64_t)st->st_size, dicom};
    return 0;
}

static int walk_dir(const char *dir, int depth, struct visited *v, pnx_ingest_file_list *list)
{
    if (depth > MAX_DEPTH)
        return pnx_fail(PNX_ERANGE, "%s: folders nested deeper than %d", dir, MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d)
        return pnx_fail(PNX_EIO, "cannot open folder %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = pnx_path_join(dir, e->d_name);
        if (!path) {
            rc = pnx_fail(PNX_ENOMEM, "walk");
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            list->skipped++; /* a dangling link or a file gone meanwhile */
        } else if (S_ISDIR(st.st_mode)) {
            int seen;
            rc = seen_before(v, &st, &seen);
            if (rc == 0 && !seen)
                rc = walk_dir(path, depth + 1, v, list);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(list, path, &st);
        }
        free(path);
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const pnx_ingest_file *)a)->path, ((const pnx_ingest_file *)b)->path);
}

int pnx_ingest_walk(const char *root, pnx_ingest_file_list *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(root, &st) != 0)
        return pnx_fail(PNX_ENOTFOUND, "%s: %s", root, strerror(errno));
    int rc;
    if (S_ISREG(st.st_mode)) {
        rc = add_file(out, root, &st);
        if (rc == 0 && out->count == 0) {
            /* A file named explicitly is a candidate whatever its name. */
            out->skipped = 0;
            pnx_ingest_file *f = malloc(sizeof *f);
            char *copy = strdup(root);
            if (!f || !copy) {
                free(f);
                free(copy);
                return pnx_fail(PNX_ENOMEM, "file list");
            }
            *f = (pnx_ingest_file){copy, (int64_t)st.st_size, 0};
            out->files = f;
            out->count = out->capacity = 1;
        }
    } else if (S_ISDIR(st.st_mode)) {
        struct visited v = {0};
        int seen;
        rc = seen_before(&v, &st, &seen);
        if (rc == 0)
            rc = walk_dir(root, 0, &v, out);
        free(v.dev);
        free(v.ino);
    } else {
        return pnx_fail(PNX_EINVAL, "%s: neither a folder nor a regular file", root);
    }
    if (rc) {
        pnx_ingest_file_list_free(out);
        return rc;
    }
    if (out->count > 1)
        qsort(out->files, out->count, sizeof *out->files, by_path);
    return 0;
}

void pnx_ingest_file_list_free(pnx_ingest_file_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->files[i].path);
    free(list->files);
    memset(list, 0, sizeof *list);
}
