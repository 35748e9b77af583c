/*
 * common/safetensors.h — reading and writing safetensors files.
 *
 * The format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON, then the tensor bytes. The
 * JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin,
 * end]} (offsets relative to the first byte after the header) and may hold a
 * "__metadata__" object of string → string. Used for model checkpoints and
 * for the dataset caches.
 *
 * Reading maps the file and validates everything before handing out a
 * pointer: the header length is bounded by the file and by
 * PNX_ST_MAX_HEADER_BYTES, the JSON is parsed by a small strict parser
 * (unknown keys, duplicate keys, trailing garbage, bad escapes are errors),
 * every dtype is known, shape × dtype size equals the byte length, offsets lie
 * inside the data area, tensors neither overlap nor leave holes, and names
 * are unique. A file that passes can be indexed without further checks.
 *
 * Writing goes through common/fileio.h's atomic write: a crash leaves the old
 * file or the new one, never half of one. Tensors are laid out in order of
 * decreasing element size, so every tensor of a file we write is aligned to
 * its element size when the file is mapped. Files from other writers may not
 * be: copy with memcpy (pnx_st_copy_*), or check pnx_st_tensor_aligned().
 *
 * Depends on libc and common/ only (no JSON library), so that the model
 * library builds on hosts without the Debian packages.
 */
#ifndef PNX_COMMON_SAFETENSORS_H
#define PNX_COMMON_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits a file must respect; larger values are PNX_ERANGE. */
#define PNX_ST_MAX_HEADER_BYTES (100u * 1024u * 1024u) /* as the reference implementation */
#define PNX_ST_MAX_DIMS 8
#define PNX_ST_MAX_NAME_BYTES 4096

typedef enum pnx_st_dtype {
    PNX_ST_BOOL = 0,
    PNX_ST_U8,
    PNX_ST_I8,
    PNX_ST_U16,
    PNX_ST_I16,
    PNX_ST_F16,
    PNX_ST_BF16,
    PNX_ST_U32,
    PNX_ST_I32,
    PNX_ST_F32,
    PNX_ST_U64,
    PNX_ST_I64,
    PNX_ST_F64,
    PNX_ST_DTYPE_COUNT
} pnx_st_dtype;

/* "F32", "U8", … as written in the header; NULL for an invalid value. */
const char *pnx_st_dtype_name(pnx_st_dtype dtype);
/* Bytes per element (1, 2, 4 or 8); 0 for an invalid value. */
size_t pnx_st_dtype_size(pnx_st_dtype dtype);

/* One tensor of an open file. All pointers stay valid until pnx_st_close. */
typedef struct pnx_st_tensor {
    const char *name;                /* NUL-terminated, UTF-8 */
    pnx_st_dtype dtype;
    int ndim;                        /* 0 (a scalar) … PNX_ST_MAX_DIMS */
    int64_t shape[PNX_ST_MAX_DIMS];  /* unused entries are 0 */
    uint64_t numel;                  /* product of shape (1 for a scalar) */
    const void *data;                /* numel × dtype size bytes, read-only */
    size_t nbytes;
} pnx_st_tensor;

/* ---- reading ---------------------------------------------------------- */

typedef struct pnx_st_file pnx_st_file;

/* Maps path read-only and validates it. On failure *out is NULL and the
 * message names the file and what is wrong with it. */
int pnx_st_open(pnx_st_file **out, const char *path);

/* Validates a whole file image held in memory (the buffer must outlive the
 * result; it is not copied). For tests and fuzzing. */
int pnx_st_open_memory(pnx_st_file **out, const void *buf, size_t len);

/* Unmaps and frees; NULL is fine. */
void pnx_st_close(pnx_st_file *f);

/* Tensors in order of their data offsets. */
size_t pnx_st_count(const pnx_st_file *f);
const pnx_st_tensor *pnx_st_at(const pnx_st_file *f, size_t i);
/* NULL when there is no tensor of that name (no error is recorded). */
const pnx_st_tensor *pnx_st_find(const pnx_st_file *f, const char *name);

/* Finds name and checks its dtype and shape: ndim must match, and each
 * shape[i] must match unless it is -1. Fails with PNX_ENOTFOUND when it is
 * missing and PNX_EFORMAT when it differs, with a message such as
 * "tensor enc1_1.0.weight: shape [64,1,3,3] expected [32,1,3,3]". */
int pnx_st_expect(const pnx_st_file *f, const char *name, pnx_st_dtype dtype, int ndim,
                  const int64_t *shape, const pnx_st_tensor **out);

/* Metadata: value for key, or NULL when absent. */
const char *pnx_st_meta(const pnx_st_file *f, const char *key);
size_t pnx_st_meta_count(const pnx_st_file *f);
/* i < pnx_st_meta_count(f); key/value are NUL-terminated strings. */
void pnx_st_meta_at(const pnx_st_file *f, size_t i, const char **key, const char **value);

/* Whether t->data is aligned to its element size (always so for files this
 * module wrote). */
int pnx_st_tensor_aligned(const pnx_st_tensor *t);

/* Copies a tensor's elements to dst (n must equal t->numel; the dtype must
 * be the one named). memcpy-based, so any alignment works. */
int pnx_st_copy_f32(const pnx_st_tensor *t, float *dst, size_t n);
int pnx_st_copy_i64(const pnx_st_tensor *t, int64_t *dst, size_t n);
int pnx_st_copy_u8(const pnx_st_tensor *t, uint8_t *dst, size_t n);

/* ---- writing ---------------------------------------------------------- */

typedef struct pnx_st_writer pnx_st_writer;

/* Writes exactly nbytes of the tensor's data to fp (in order, little-endian)
 * and returns 0, or a PNX_E… code. Lets a large tensor (a dataset cache) be
 * produced piece by piece without holding it in memory. */
typedef int (*pnx_st_fill_fn)(void *ctx, FILE *fp, size_t nbytes);

int pnx_st_writer_create(pnx_st_writer **out);
/* Adds a metadata entry (both strings copied; keys unique). */
int pnx_st_writer_meta(pnx_st_writer *w, const char *key, const char *value);
/* Adds a tensor whose bytes are at data (borrowed: it must stay valid until
 * pnx_st_writer_write returns). Name copied; names unique; ndim ≤
 * PNX_ST_MAX_DIMS; shape entries ≥ 0. */
int pnx_st_writer_add(pnx_st_writer *w, const char *name, pnx_st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data);
/* Same, with the bytes produced by fill(ctx, fp, nbytes) while writing. */
int pnx_st_writer_add_fill(pnx_st_writer *w, const char *name, pnx_st_dtype dtype, int ndim,
                           const int64_t *shape, pnx_st_fill_fn fill, void *ctx);
/* Writes the file atomically. The writer may be written again or freed. */
int pnx_st_writer_write(pnx_st_writer *w, const char *path);
void pnx_st_writer_free(pnx_st_writer *w);

#endif
