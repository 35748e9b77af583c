/*
 * common/safetensors_write.c — writing a safetensors file atomically, with
 * tensors from memory or filled piece by piece by a callback.
 */
#include "common/safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"


/* ===================================================================== */
/* Writing                                                                */
/* ===================================================================== */

typedef struct writer_entry {
    char *name;
    pnx_st_dtype dtype;
    int ndim;
    int64_t shape[PNX_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
    pnx_st_fill_fn fill;
    void *ctx;
    uint64_t offset; /* set while writing */
} writer_entry;

struct pnx_st_writer {
    writer_entry *entries;
    size_t n, cap;
    char **meta_keys, **meta_values;
    size_t n_meta, meta_cap;
};

int pnx_st_writer_create(pnx_st_writer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : pnx_fail(PNX_ENOMEM, "out of memory");
}

void pnx_st_writer_free(pnx_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->entries[i].name);
    free(w->entries);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

int pnx_st_writer_meta(pnx_st_writer *w, const char *key, const char *value)
{
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0)
            return pnx_fail(PNX_EINVAL, "metadata key %s added twice", key);
    if (w->n_meta == w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap * 2 : 8;
        char **nk = realloc(w->meta_keys, cap * sizeof *nk);
        if (!nk)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        w->meta_keys = nk;
        char **nv = realloc(w->meta_values, cap * sizeof *nv);
        if (!nv)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        w->meta_values = nv;
        w->meta_cap = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

static int writer_add(pnx_st_writer *w, const char *name, pnx_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, pnx_st_fill_fn fill, void *ctx)
{
    size_t elem = pnx_st_dtype_size(dtype);
    if (elem == 0)
        return pnx_fail(PNX_EINVAL, "tensor %s: invalid dtype %d", name, (int)dtype);
    if (name[0] == '\0' || strlen(name) > PNX_ST_MAX_NAME_BYTES || strcmp(name, PNX_ST_METADATA_KEY) == 0)
        return pnx_fail(PNX_EINVAL, "invalid tensor name '%s'", name);
    if (ndim < 0 || ndim > PNX_ST_MAX_DIMS)
        return pnx_fail(PNX_EINVAL, "tensor %s: %d dimensions (at most %d)", name, ndim,
                        PNX_ST_MAX_DIMS);
    uint64_t numel, nbytes;
    if (pnx_st_checked_nbytes(ndim, shape, elem, (uint64_t)SIZE_MAX / 2, &numel, &nbytes) != 0)
        return pnx_fail(PNX_EINVAL, "tensor %s: negative or too large shape", name);
    if (nbytes > 0 && !data && !fill)
        return pnx_fail(PNX_EINVAL, "tensor %s: no data", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return pnx_fail(PNX_EINVAL, "tensor %s added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        writer_entry *ne = realloc(w->entries, cap * sizeof *ne);
        if (!ne)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        w->entries = ne;
        w->cap = cap;
    }
    writer_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = shape[d];
    e->nbytes = (size_t)nbytes;
    e->data = data;
    e->fill = fill;
    e->ctx = ctx;
    w->n++;
    return 0;
}

int pnx_st_writer_add(pnx_st_writer *w, const char *name, pnx_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data)
{
    return writer_add(w, name, dtype, ndim, shape, data, NULL, NULL);
}

int pnx_st_writer_add_fill(pnx_st_writer *w, const char *name, pnx_st_dtype dtype, int ndim,
                           const int64_t *shape, pnx_st_fill_fn fill, void *ctx)
{
    if (!fill)
        return pnx_fail(PNX_EINVAL, "tensor %s: no fill function", name);
    return writer_add(w, name, dtype, ndim, shape, NULL, fill, ctx);
}

/* A growable text buffer for the header. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    int oom;
} text_buf;

static void tb_append(text_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void tb_puts(text_buf *b, const char *s)
{
    tb_append(b, s, strlen(s));
}

static void tb_json_string(text_buf *b, const char *s)
{
    tb_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            tb_append(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            tb_append(b, esc, 6);
        } else {
            tb_append(b, (const char *)p, 1);
        }
    }
    tb_append(b, "\"", 1);
}

static int writer_build_header(const pnx_st_writer *w, const size_t *order, text_buf *b)
{
    char num[64];
    tb_puts(b, "{");
    int first = 1;
    if (w->n_meta) {
        tb_json_string(b, PNX_ST_METADATA_KEY);
        tb_puts(b, ":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i)
                tb_puts(b, ",");
            tb_json_string(b, w->meta_keys[i]);
            tb_puts(b, ":");
            tb_json_string(b, w->meta_values[i]);
        }
        tb_puts(b, "}");
        first = 0;
    }
    for (size_t k = 0; k < w->n; k++) {
        const writer_entry *e = &w->entries[order[k]];
        if (!first)
            tb_puts(b, ",");
        first = 0;
        tb_json_string(b, e->name);
        tb_puts(b, ":{\"dtype\":");
        tb_json_string(b, pnx_st_dtype_name(e->dtype));
        tb_puts(b, ",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", e->shape[d]);
            tb_puts(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", e->offset,
                 e->offset + e->nbytes);
        tb_puts(b, num);
    }
    tb_puts(b, "}");
    while (!b->oom && b->len % 8 != 0)
        tb_puts(b, " ");
    if (b->oom)
        return pnx_fail(PNX_ENOMEM, "out of memory building the header");
    if (b->len > PNX_ST_MAX_HEADER_BYTES)
        return pnx_fail(PNX_ERANGE, "header of %zu bytes exceeds the limit", b->len);
    return 0;
}

int pnx_st_writer_write(pnx_st_writer *w, const char *path)
{
    size_t *order = malloc((w->n ? w->n : 1) * sizeof *order);
    if (!order)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    /* Stable order by decreasing element size keeps every tensor aligned. */
    size_t k = 0;
    for (size_t size = 8; size >= 1; size /= 2)
        for (size_t i = 0; i < w->n; i++)
            if (pnx_st_dtype_size(w->entries[i].dtype) == size)
                order[k++] = i;
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n; i++) {
        w->entries[order[i]].offset = offset;
        offset += w->entries[order[i]].nbytes;
    }

    text_buf header = {0};
    int rc = writer_build_header(w, order, &header);
    if (rc) {
        free(header.s);
        free(order);
        return rc;
    }

    pnx_atomic_file af = {0};
    rc = pnx_atomic_open(&af, path);
    if (rc) {
        free(header.s);
        free(order);
        return rc;
    }
    unsigned char prefix[PNX_ST_LENGTH_PREFIX_BYTES];
    uint64_t hl = header.len;
    for (int b = 0; b < 8; b++)
        prefix[b] = (unsigned char)(hl >> (8 * b));
    int io_ok = fwrite(prefix, 1, sizeof prefix, af.fp) == sizeof prefix &&
                fwrite(header.s, 1, header.len, af.fp) == header.len;
    free(header.s);
    for (size_t i = 0; io_ok && i < w->n; i++) {
        const writer_entry *e = &w->entries[order[i]];
        if (e->nbytes == 0)
            continue;
        if (e->fill) {
            long before = ftell(af.fp);
            rc = e->fill(e->ctx, af.fp, e->nbytes);
            if (rc) {
                pnx_atomic_abort(&af);
                free(order);
                return pnx_fail_prefix(rc, "writing tensor %s to %s", e->name, path);
            }
            long after = ftell(af.fp);
            if (before < 0 || after < 0 || (uint64_t)(after - before) != e->nbytes) {
                pnx_atomic_abort(&af);
                free(order);
                return pnx_fail(PNX_EINTERNAL, "tensor %s: fill wrote %ld bytes, expected %zu",
                                e->name, after - before, e->nbytes);
            }
        } else {
            io_ok = fwrite(e->data, 1, e->nbytes, af.fp) == e->nbytes;
        }
    }
    free(order);
    if (!io_ok) {
        int e = errno;
        pnx_atomic_abort(&af);
        return pnx_fail(PNX_EIO, "writing %s: %s", path, strerror(e));
    }
    rc = pnx_atomic_commit(&af);
    if (rc)
        return pnx_fail_prefix(rc, "writing %s", path);
    return 0;
}
