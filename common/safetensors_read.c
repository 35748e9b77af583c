/*
 * common/safetensors_read.c — opening a safetensors file: memory-mapped,
 * the whole header validated before any tensor is handed out (offsets
 * inside the file, no overlap, shape × dtype = bytes, unique names).
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
/* Reading                                                                */
/* ===================================================================== */

struct pnx_st_file {
    void *map; /* NULL when the caller owns the buffer */
    size_t map_len;
    const unsigned char *data; /* first byte after the header */
    size_t data_len;
    pnx_st_tensor *tensors; /* sorted by offset */
    size_t n_tensors;
    const pnx_st_tensor **by_name; /* into tensors, sorted by name */
    char **meta_keys;
    char **meta_values;
    size_t n_meta;
};

/* A tensor entry while parsing: offsets are kept to check the layout. */
typedef struct parsed_tensor {
    pnx_st_tensor t;
    uint64_t begin, end;
} parsed_tensor;

typedef struct parse_state {
    parsed_tensor *items;
    size_t n, cap;
    char **meta_keys, **meta_values;
    size_t n_meta, meta_cap;
    int have_meta;
} parse_state;

static void parse_state_free(parse_state *p)
{
    for (size_t i = 0; i < p->n; i++)
        free((char *)p->items[i].t.name);
    free(p->items);
    for (size_t i = 0; i < p->n_meta; i++) {
        free(p->meta_keys[i]);
        free(p->meta_values[i]);
    }
    free(p->meta_keys);
    free(p->meta_values);
    memset(p, 0, sizeof *p);
}

static int parse_metadata(pnx_stjson_reader *j, parse_state *p)
{
    if (p->have_meta)
        return pnx_stjson_error(j, "duplicate __metadata__");
    p->have_meta = 1;
    int rc = pnx_stjson_expect(j, '{');
    if (rc)
        return rc;
    if (pnx_stjson_peek(j, '}')) {
        j->i++;
        return 0;
    }
    for (;;) {
        char *key = NULL, *value = NULL;
        if ((rc = pnx_stjson_read_string(j, &key)) != 0)
            return rc;
        if ((rc = pnx_stjson_expect(j, ':')) != 0 || (rc = pnx_stjson_read_string(j, &value)) != 0) {
            free(key);
            return rc;
        }
        for (size_t k = 0; k < p->n_meta; k++) {
            if (strcmp(p->meta_keys[k], key) == 0) {
                free(key);
                free(value);
                return pnx_stjson_error(j, "duplicate metadata key");
            }
        }
        if (p->n_meta == p->meta_cap) {
            size_t cap = p->meta_cap ? p->meta_cap * 2 : 8;
            char **nk = realloc(p->meta_keys, cap * sizeof *nk);
            if (nk)
                p->meta_keys = nk;
            char **nv = nk ? realloc(p->meta_values, cap * sizeof *nv) : NULL;
            if (nv)
                p->meta_values = nv;
            if (!nk || !nv) {
                free(key);
                free(value);
                return pnx_fail(PNX_ENOMEM, "out of memory reading header");
            }
            p->meta_cap = cap;
        }
        p->meta_keys[p->n_meta] = key;
        p->meta_values[p->n_meta] = value;
        p->n_meta++;
        if (pnx_stjson_peek(j, ',')) {
            j->i++;
            continue;
        }
        return pnx_stjson_expect(j, '}');
    }
}

/* Parses one tensor's {"dtype", "shape", "data_offsets"} into t. */
static int parse_tensor_entry(pnx_stjson_reader *j, parsed_tensor *pt)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    int rc = pnx_stjson_expect(j, '{');
    if (rc)
        return rc;
    if (pnx_stjson_peek(j, '}'))
        return pnx_stjson_error(j, "empty tensor entry");
    for (;;) {
        char *key = NULL;
        if ((rc = pnx_stjson_read_string(j, &key)) != 0)
            return rc;
        if ((rc = pnx_stjson_expect(j, ':')) != 0) {
            free(key);
            return rc;
        }
        if (strcmp(key, "dtype") == 0 && !have_dtype) {
            char *name = NULL;
            free(key);
            if ((rc = pnx_stjson_read_string(j, &name)) != 0)
                return rc;
            rc = pnx_st_dtype_from_name(name, &pt->t.dtype);
            free(name);
            if (rc)
                return pnx_stjson_error(j, "unknown dtype");
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            uint64_t dims[PNX_ST_MAX_DIMS];
            int count = 0;
            free(key);
            if ((rc = pnx_stjson_read_uint_array(j, dims, PNX_ST_MAX_DIMS, &count)) != 0)
                return rc;
            pt->t.ndim = count;
            for (int d = 0; d < count; d++)
                pt->t.shape[d] = (int64_t)dims[d];
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0 && !have_offsets) {
            uint64_t offs[2];
            int count = 0;
            free(key);
            if ((rc = pnx_stjson_read_uint_array(j, offs, 2, &count)) != 0)
                return rc;
            if (count != 2)
                return pnx_stjson_error(j, "data_offsets must hold two integers");
            pt->begin = offs[0];
            pt->end = offs[1];
            have_offsets = 1;
        } else {
            int dup = strcmp(key, "dtype") == 0 || strcmp(key, "shape") == 0 ||
                      strcmp(key, "data_offsets") == 0;
            free(key);
            return pnx_stjson_error(j, dup ? "duplicate key in tensor entry"
                                     : "unknown key in tensor entry");
        }
        if (pnx_stjson_peek(j, ',')) {
            j->i++;
            continue;
        }
        if ((rc = pnx_stjson_expect(j, '}')) != 0)
            return rc;
        break;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return pnx_stjson_error(j, "tensor entry lacks dtype, shape or data_offsets");
    return 0;
}

static int parse_header(pnx_stjson_reader *j, parse_state *p)
{
    int rc = pnx_stjson_expect(j, '{');
    if (rc)
        return rc;
    if (!pnx_stjson_peek(j, '}')) {
        for (;;) {
            char *name = NULL;
            if ((rc = pnx_stjson_read_string(j, &name)) != 0)
                return rc;
            if ((rc = pnx_stjson_expect(j, ':')) != 0) {
                free(name);
                return rc;
            }
            if (strcmp(name, PNX_ST_METADATA_KEY) == 0) {
                free(name);
                if ((rc = parse_metadata(j, p)) != 0)
                    return rc;
            } else {
                if (name[0] == '\0' || strlen(name) > PNX_ST_MAX_NAME_BYTES) {
                    free(name);
                    return pnx_stjson_error(j, "empty or over-long tensor name");
                }
                if (p->n == p->cap) {
                    size_t cap = p->cap ? p->cap * 2 : 64;
                    parsed_tensor *ni = realloc(p->items, cap * sizeof *ni);
                    if (!ni) {
                        free(name);
                        return pnx_fail(PNX_ENOMEM, "out of memory reading header");
                    }
                    p->items = ni;
                    p->cap = cap;
                }
                parsed_tensor *pt = &p->items[p->n++];
                memset(pt, 0, sizeof *pt);
                pt->t.name = name;
                if ((rc = parse_tensor_entry(j, pt)) != 0)
                    return pnx_fail_prefix(rc, "tensor %s", name);
            }
            if (pnx_stjson_peek(j, ',')) {
                j->i++;
                continue;
            }
            break;
        }
    }
    if ((rc = pnx_stjson_expect(j, '}')) != 0)
        return rc;
    /* The reference writer pads the header with spaces to a multiple of 8. */
    pnx_stjson_skip_ws(j);
    if (j->i != j->n)
        return pnx_stjson_error(j, "trailing bytes after the header object");
    return 0;
}

static int cmp_offsets(const void *a, const void *b)
{
    const parsed_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    const pnx_st_tensor *x = *(const pnx_st_tensor *const *)a;
    const pnx_st_tensor *y = *(const pnx_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int validate_layout(parse_state *p, uint64_t data_len)
{
    for (size_t i = 0; i < p->n; i++) {
        parsed_tensor *pt = &p->items[i];
        size_t elem = pnx_st_dtype_size(pt->t.dtype);
        uint64_t numel, nbytes;
        if (pnx_st_checked_nbytes(pt->t.ndim, pt->t.shape, elem, data_len, &numel, &nbytes) != 0)
            return pnx_fail(PNX_EFORMAT, "tensor %s: shape larger than the file", pt->t.name);
        if (pt->begin > pt->end || pt->end > data_len)
            return pnx_fail(PNX_EFORMAT,
                            "tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                            "] outside the data area of %" PRIu64 " bytes",
                            pt->t.name, pt->begin, pt->end, data_len);
        if (pt->end - pt->begin != nbytes)
            return pnx_fail(PNX_EFORMAT,
                            "tensor %s: %" PRIu64 " bytes of data but shape × %s needs %" PRIu64,
                            pt->t.name, pt->end - pt->begin, pnx_st_dtype_name(pt->t.dtype),
                            nbytes);
        pt->t.numel = numel;
        pt->t.nbytes = (size_t)nbytes;
    }
    qsort(p->items, p->n, sizeof *p->items, cmp_offsets);
    uint64_t expected = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].begin < expected)
            return pnx_fail(PNX_EFORMAT, "tensor %s overlaps the tensor before it",
                            p->items[i].t.name);
        if (p->items[i].begin > expected)
            return pnx_fail(PNX_EFORMAT, "hole of %" PRIu64 " bytes before tensor %s",
                            p->items[i].begin - expected, p->items[i].t.name);
        expected = p->items[i].end;
    }
    if (expected != data_len)
        return pnx_fail(PNX_EFORMAT,
                        "%" PRIu64 " bytes after the last tensor are not described by the header",
                        data_len - expected);
    return 0;
}

static int open_validated(pnx_st_file *f, const unsigned char *buf, size_t len)
{
    if (len < PNX_ST_LENGTH_PREFIX_BYTES)
        return pnx_fail(PNX_EFORMAT, "file of %zu bytes is too short for a safetensors header",
                        len);
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; k--)
        header_len = (header_len << 8) | buf[k];
    if (header_len > PNX_ST_MAX_HEADER_BYTES)
        return pnx_fail(PNX_ERANGE, "header length %" PRIu64 " exceeds the limit of %u bytes",
                        header_len, PNX_ST_MAX_HEADER_BYTES);
    if (header_len > len - PNX_ST_LENGTH_PREFIX_BYTES)
        return pnx_fail(PNX_EFORMAT,
                        "header length %" PRIu64 " runs past the end of the file (%zu bytes): "
                        "truncated or not a safetensors file",
                        header_len, len);
    if (header_len < 2 || buf[PNX_ST_LENGTH_PREFIX_BYTES] != '{')
        return pnx_fail(PNX_EFORMAT, "header does not start with '{': not a safetensors file");

    pnx_stjson_reader j = {(const char *)buf + PNX_ST_LENGTH_PREFIX_BYTES, (size_t)header_len, 0};
    parse_state p = {0};
    int rc = parse_header(&j, &p);
    uint64_t data_len = len - PNX_ST_LENGTH_PREFIX_BYTES - header_len;
    if (rc == 0)
        rc = validate_layout(&p, data_len);
    if (rc) {
        parse_state_free(&p);
        return rc;
    }

    f->data = buf + PNX_ST_LENGTH_PREFIX_BYTES + header_len;
    f->data_len = (size_t)data_len;
    f->n_tensors = p.n;
    f->tensors = calloc(p.n ? p.n : 1, sizeof *f->tensors);
    f->by_name = calloc(p.n ? p.n : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) {
        parse_state_free(&p);
        return pnx_fail(PNX_ENOMEM, "out of memory reading header");
    }
    for (size_t i = 0; i < p.n; i++) {
        f->tensors[i] = p.items[i].t;
        f->tensors[i].data = f->data + p.items[i].begin;
        p.items[i].t.name = NULL; /* ownership moved */
        f->by_name[i] = &f->tensors[i];
    }
    f->meta_keys = p.meta_keys;
    f->meta_values = p.meta_values;
    f->n_meta = p.n_meta;
    p.meta_keys = p.meta_values = NULL;
    p.n_meta = 0;
    parse_state_free(&p);

    qsort(f->by_name, f->n_tensors, sizeof *f->by_name, cmp_names);
    for (size_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return pnx_fail(PNX_EFORMAT, "tensor name %s appears twice", f->by_name[i]->name);
    }
    return 0;
}

void pnx_st_close(pnx_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free((void *)f->by_name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f);
}

int pnx_st_open_memory(pnx_st_file **out, const void *buf, size_t len)
{
    *out = NULL;
    pnx_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = open_validated(f, buf, len);
    if (rc) {
        pnx_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int pnx_st_open(pnx_st_file **out, const char *path)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return pnx_fail(e == ENOENT ? PNX_ENOTFOUND : PNX_EIO, "%s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pnx_fail(PNX_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return pnx_fail(PNX_EFORMAT, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    pnx_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    const unsigned char *buf = (const unsigned char *)"";
    if (len > 0) {
        void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(f);
            return pnx_fail(PNX_EIO, "%s: mmap: %s", path, strerror(e));
        }
        f->map = map;
        f->map_len = len;
        buf = map;
    }
    close(fd);
    int rc = open_validated(f, buf, len);
    if (rc) {
        pnx_st_close(f);
        return pnx_fail_prefix(rc, "%s", path);
    }
    *out = f;
    return 0;
}

size_t pnx_st_count(const pnx_st_file *f)
{
    return f->n_tensors;
}

const pnx_st_tensor *pnx_st_at(const pnx_st_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const pnx_st_tensor *pnx_st_find(const pnx_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const pnx_st_tensor *t = f->by_name[mid];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, d ? "," : "", shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

int pnx_st_expect(const pnx_st_file *f, const char *name, pnx_st_dtype dtype, int ndim,
                  const int64_t *shape, const pnx_st_tensor **out)
{
    if (out)
        *out = NULL;
    const pnx_st_tensor *t = pnx_st_find(f, name);
    if (!t)
        return pnx_fail(PNX_ENOTFOUND, "tensor %s is missing", name);
    if (t->dtype != dtype)
        return pnx_fail(PNX_EFORMAT, "tensor %s: dtype %s expected %s", name,
                        pnx_st_dtype_name(t->dtype), pnx_st_dtype_name(dtype));
    int match = t->ndim == ndim;
    for (int d = 0; match && d < ndim; d++)
        match = shape[d] < 0 || shape[d] == t->shape[d];
    if (!match) {
        char have[160], want[160];
        format_shape(have, sizeof have, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return pnx_fail(PNX_EFORMAT, "tensor %s: shape %s expected %s", name, have, want);
    }
    if (out)
        *out = t;
    return 0;
}

const char *pnx_st_meta(const pnx_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

size_t pnx_st_meta_count(const pnx_st_file *f)
{
    return f->n_meta;
}

void pnx_st_meta_at(const pnx_st_file *f, size_t i, const char **key, const char **value)
{
    *key = i < f->n_meta ? f->meta_keys[i] : NULL;
    *value = i < f->n_meta ? f->meta_values[i] : NULL;
}

int pnx_st_tensor_aligned(const pnx_st_tensor *t)
{
    size_t elem = pnx_st_dtype_size(t->dtype);
    return elem != 0 && ((uintptr_t)t->data % elem) == 0;
}

static int copy_checked(const pnx_st_tensor *t, pnx_st_dtype dtype, void *dst, size_t n)
{
    if (t->dtype != dtype)
        return pnx_fail(PNX_EFORMAT, "tensor %s: dtype %s expected %s", t->name,
                        pnx_st_dtype_name(t->dtype), pnx_st_dtype_name(dtype));
    if (n != t->numel)
        return pnx_fail(PNX_EFORMAT, "tensor %s: %" PRIu64 " elements expected %zu", t->name,
                        t->numel, n);
    if (t->nbytes)
        memcpy(dst, t->data, t->nbytes);
    return 0;
}

int pnx_st_copy_f32(const pnx_st_tensor *t, float *dst, size_t n)
{
    return copy_checked(t, PNX_ST_F32, dst, n);
}

int pnx_st_copy_i64(const pnx_st_tensor *t, int64_t *dst, size_t n)
{
    return copy_checked(t, PNX_ST_I64, dst, n);
}

int pnx_st_copy_u8(const pnx_st_tensor *t, uint8_t *dst, size_t n)
{
    return copy_checked(t, PNX_ST_U8, dst, n);
}
