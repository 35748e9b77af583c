/*
 * common/safetensors.c — the safetensors reader (mmap + strict validation)
 * and writer (atomic). See safetensors.h for the promises.
 */
#include "common/safetensors.h"

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

#define METADATA_KEY "__metadata__"
#define LENGTH_PREFIX_BYTES 8u

static const struct {
    const char *name;
    size_t size;
} dtype_table[PNX_ST_DTYPE_COUNT] = {
    [PNX_ST_BOOL] = {"BOOL", 1}, [PNX_ST_U8] = {"U8", 1},     [PNX_ST_I8] = {"I8", 1},
    [PNX_ST_U16] = {"U16", 2},   [PNX_ST_I16] = {"I16", 2},   [PNX_ST_F16] = {"F16", 2},
    [PNX_ST_BF16] = {"BF16", 2}, [PNX_ST_U32] = {"U32", 4},   [PNX_ST_I32] = {"I32", 4},
    [PNX_ST_F32] = {"F32", 4},   [PNX_ST_U64] = {"U64", 8},   [PNX_ST_I64] = {"I64", 8},
    [PNX_ST_F64] = {"F64", 8},
};

const char *pnx_st_dtype_name(pnx_st_dtype dtype)
{
    if ((int)dtype < 0 || dtype >= PNX_ST_DTYPE_COUNT)
        return NULL;
    return dtype_table[dtype].name;
}

size_t pnx_st_dtype_size(pnx_st_dtype dtype)
{
    if ((int)dtype < 0 || dtype >= PNX_ST_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

static int dtype_from_name(const char *name, pnx_st_dtype *out)
{
    for (int i = 0; i < PNX_ST_DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *out = (pnx_st_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* Product of shape × element size, failing (returning -1) when it exceeds
 * limit, so a hostile shape can never overflow. */
static int checked_nbytes(int ndim, const int64_t *shape, size_t elem, uint64_t limit,
                          uint64_t *numel_out, uint64_t *nbytes_out)
{
    uint64_t numel = 1;
    int zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return -1;
        if (shape[d] == 0)
            zero = 1;
    }
    if (zero) {
        *numel_out = 0;
        *nbytes_out = 0;
        return 0;
    }
    for (int d = 0; d < ndim; d++) {
        uint64_t s = (uint64_t)shape[d];
        if (numel > limit / s)
            return -1;
        numel *= s;
    }
    if (numel > limit / elem)
        return -1;
    *numel_out = numel;
    *nbytes_out = numel * elem;
    return 0;
}

/* ===================================================================== */
/* A small strict JSON reader for the header.                             */
/* ===================================================================== */

typedef struct json_reader {
    const char *s;
    size_t n;
    size_t i;
} json_reader;

static int json_error(const json_reader *j, const char *what)
{
    return pnx_fail(PNX_EFORMAT, "bad header JSON at byte %zu: %s", j->i, what);
}

static void json_skip_ws(json_reader *j)
{
    while (j->i < j->n) {
        char c = j->s[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        j->i++;
    }
}

/* Skips whitespace, then consumes c or fails. */
static int json_expect(json_reader *j, char c)
{
    json_skip_ws(j);
    if (j->i >= j->n || j->s[j->i] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return json_error(j, what);
    }
    j->i++;
    return 0;
}

/* Skips whitespace and reports whether the next byte is c (not consumed). */
static int json_peek(json_reader *j, char c)
{
    json_skip_ws(j);
    return j->i < j->n && j->s[j->i] == c;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int json_read_hex4(json_reader *j, unsigned *out)
{
    if (j->n - j->i < 4)
        return json_error(j, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(j->s[j->i + (size_t)k]);
        if (h < 0)
            return json_error(j, "bad hex digit in \\u escape");
        v = v * 16u + (unsigned)h;
    }
    j->i += 4;
    *out = v;
    return 0;
}

static size_t utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence starting at p (at most avail
 * bytes), or 0 when it is malformed (overlong, surrogate, > U+10FFFF). */
static size_t utf8_sequence_length(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Reads a JSON string into a malloc'd NUL-terminated UTF-8 string. An
 * embedded NUL (\u0000) is refused, since names and values are C strings. */
static int json_read_string(json_reader *j, char **out)
{
    *out = NULL;
    int rc = json_expect(j, '"');
    if (rc)
        return rc;
    /* Decoding never makes a string longer, so the raw span bounds it. */
    size_t start = j->i;
    size_t end = start;
    while (end < j->n && j->s[end] != '"') {
        if (j->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= j->n)
        return json_error(j, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf)
        return pnx_fail(PNX_ENOMEM, "out of memory reading header");
    size_t len = 0;
    while (j->i < end) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c < 0x20) {
            free(buf);
            return json_error(j, "control character in string");
        }
        if (c != '\\') {
            size_t sl = utf8_sequence_length((const unsigned char *)j->s + j->i, end - j->i);
            if (sl == 0) {
                free(buf);
                return json_error(j, "invalid UTF-8 in string");
            }
            memcpy(buf + len, j->s + j->i, sl);
            len += sl;
            j->i += sl;
            continue;
        }
        j->i++;
        char e = j->s[j->i++];
        switch (e) {
        case '"': buf[len++] = '"'; break;
        case '\\': buf[len++] = '\\'; break;
        case '/': buf[len++] = '/'; break;
        case 'b': buf[len++] = '\b'; break;
        case 'f': buf[len++] = '\f'; break;
        case 'n': buf[len++] = '\n'; break;
        case 'r': buf[len++] = '\r'; break;
        case 't': buf[len++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if ((rc = json_read_hex4(j, &cp)) != 0) {
                free(buf);
                return rc;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') {
                    free(buf);
                    return json_error(j, "unpaired surrogate in \\u escape");
                }
                j->i += 2;
                if ((rc = json_read_hex4(j, &lo)) != 0) {
                    free(buf);
                    return rc;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return json_error(j, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return json_error(j, "unpaired surrogate in \\u escape");
            }
            if (cp == 0) {
                free(buf);
                return json_error(j, "NUL character in string");
            }
            /* A 6-byte escape decodes to at most 3 bytes, a 12-byte pair to 4. */
            len += utf8_encode(cp, buf + len);
            break;
        }
        default:
            free(buf);
            return json_error(j, "bad escape in string");
        }
    }
    j->i = end + 1;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* A non-negative integer without sign, fraction, exponent or leading zeros,
 * at most INT64_MAX. */
static int json_read_uint(json_reader *j, uint64_t *out)
{
    json_skip_ws(j);
    if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9')
        return json_error(j, "expected a non-negative integer");
    if (j->s[j->i] == '0' && j->i + 1 < j->n && j->s[j->i + 1] >= '0' && j->s[j->i + 1] <= '9')
        return json_error(j, "leading zero in integer");
    uint64_t v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        unsigned d = (unsigned)(j->s[j->i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return json_error(j, "integer too large");
        v = v * 10 + d;
        j->i++;
    }
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return json_error(j, "expected an integer, found a fraction or exponent");
    *out = v;
    return 0;
}

/* Reads "[u, u, …]" with at most max entries into out; *count receives the
 * number read. */
static int json_read_uint_array(json_reader *j, uint64_t *out, int max, int *count)
{
    int rc = json_expect(j, '[');
    if (rc)
        return rc;
    *count = 0;
    if (json_peek(j, ']')) {
        j->i++;
        return 0;
    }
    for (;;) {
        if (*count >= max)
            return json_error(j, "too many entries in array");
        if ((rc = json_read_uint(j, &out[*count])) != 0)
            return rc;
        (*count)++;
        if (json_peek(j, ',')) {
            j->i++;
            continue;
        }
        return json_expect(j, ']');
    }
}

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

static int parse_metadata(json_reader *j, parse_state *p)
{
    if (p->have_meta)
        return json_error(j, "duplicate __metadata__");
    p->have_meta = 1;
    int rc = json_expect(j, '{');
    if (rc)
        return rc;
    if (json_peek(j, '}')) {
        j->i++;
        return 0;
    }
    for (;;) {
        char *key = NULL, *value = NULL;
        if ((rc = json_read_string(j, &key)) != 0)
            return rc;
        if ((rc = json_expect(j, ':')) != 0 || (rc = json_read_string(j, &value)) != 0) {
            free(key);
            return rc;
        }
        for (size_t k = 0; k < p->n_meta; k++) {
            if (strcmp(p->meta_keys[k], key) == 0) {
                free(key);
                free(value);
                return json_error(j, "duplicate metadata key");
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
        if (json_peek(j, ',')) {
            j->i++;
            continue;
        }
        return json_expect(j, '}');
    }
}

/* Parses one tensor's {"dtype", "shape", "data_offsets"} into t. */
static int parse_tensor_entry(json_reader *j, parsed_tensor *pt)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    int rc = json_expect(j, '{');
    if (rc)
        return rc;
    if (json_peek(j, '}'))
        return json_error(j, "empty tensor entry");
    for (;;) {
        char *key = NULL;
        if ((rc = json_read_string(j, &key)) != 0)
            return rc;
        if ((rc = json_expect(j, ':')) != 0) {
            free(key);
            return rc;
        }
        if (strcmp(key, "dtype") == 0 && !have_dtype) {
            char *name = NULL;
            free(key);
            if ((rc = json_read_string(j, &name)) != 0)
                return rc;
            rc = dtype_from_name(name, &pt->t.dtype);
            free(name);
            if (rc)
                return json_error(j, "unknown dtype");
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            uint64_t dims[PNX_ST_MAX_DIMS];
            int count = 0;
            free(key);
            if ((rc = json_read_uint_array(j, dims, PNX_ST_MAX_DIMS, &count)) != 0)
                return rc;
            pt->t.ndim = count;
            for (int d = 0; d < count; d++)
                pt->t.shape[d] = (int64_t)dims[d];
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0 && !have_offsets) {
            uint64_t offs[2];
            int count = 0;
            free(key);
            if ((rc = json_read_uint_array(j, offs, 2, &count)) != 0)
                return rc;
            if (count != 2)
                return json_error(j, "data_offsets must hold two integers");
            pt->begin = offs[0];
            pt->end = offs[1];
            have_offsets = 1;
        } else {
            int dup = strcmp(key, "dtype") == 0 || strcmp(key, "shape") == 0 ||
                      strcmp(key, "data_offsets") == 0;
            free(key);
            return json_error(j, dup ? "duplicate key in tensor entry"
                                     : "unknown key in tensor entry");
        }
        if (json_peek(j, ',')) {
            j->i++;
            continue;
        }
        if ((rc = json_expect(j, '}')) != 0)
            return rc;
        break;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return json_error(j, "tensor entry lacks dtype, shape or data_offsets");
    return 0;
}

static int parse_header(json_reader *j, parse_state *p)
{
    int rc = json_expect(j, '{');
    if (rc)
        return rc;
    if (!json_peek(j, '}')) {
        for (;;) {
            char *name = NULL;
            if ((rc = json_read_string(j, &name)) != 0)
                return rc;
            if ((rc = json_expect(j, ':')) != 0) {
                free(name);
                return rc;
            }
            if (strcmp(name, METADATA_KEY) == 0) {
                free(name);
                if ((rc = parse_metadata(j, p)) != 0)
                    return rc;
            } else {
                if (name[0] == '\0' || strlen(name) > PNX_ST_MAX_NAME_BYTES) {
                    free(name);
                    return json_error(j, "empty or over-long tensor name");
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
            if (json_peek(j, ',')) {
                j->i++;
                continue;
            }
            break;
        }
    }
    if ((rc = json_expect(j, '}')) != 0)
        return rc;
    /* The reference writer pads the header with spaces to a multiple of 8. */
    json_skip_ws(j);
    if (j->i != j->n)
        return json_error(j, "trailing bytes after the header object");
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
        if (checked_nbytes(pt->t.ndim, pt->t.shape, elem, data_len, &numel, &nbytes) != 0)
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
    if (len < LENGTH_PREFIX_BYTES)
        return pnx_fail(PNX_EFORMAT, "file of %zu bytes is too short for a safetensors header",
                        len);
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; k--)
        header_len = (header_len << 8) | buf[k];
    if (header_len > PNX_ST_MAX_HEADER_BYTES)
        return pnx_fail(PNX_ERANGE, "header length %" PRIu64 " exceeds the limit of %u bytes",
                        header_len, PNX_ST_MAX_HEADER_BYTES);
    if (header_len > len - LENGTH_PREFIX_BYTES)
        return pnx_fail(PNX_EFORMAT,
                        "header length %" PRIu64 " runs past the end of the file (%zu bytes): "
                        "truncated or not a safetensors file",
                        header_len, len);
    if (header_len < 2 || buf[LENGTH_PREFIX_BYTES] != '{')
        return pnx_fail(PNX_EFORMAT, "header does not start with '{': not a safetensors file");

    json_reader j = {(const char *)buf + LENGTH_PREFIX_BYTES, (size_t)header_len, 0};
    parse_state p = {0};
    int rc = parse_header(&j, &p);
    uint64_t data_len = len - LENGTH_PREFIX_BYTES - header_len;
    if (rc == 0)
        rc = validate_layout(&p, data_len);
    if (rc) {
        parse_state_free(&p);
        return rc;
    }

    f->data = buf + LENGTH_PREFIX_BYTES + header_len;
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
    if (name[0] == '\0' || strlen(name) > PNX_ST_MAX_NAME_BYTES || strcmp(name, METADATA_KEY) == 0)
        return pnx_fail(PNX_EINVAL, "invalid tensor name '%s'", name);
    if (ndim < 0 || ndim > PNX_ST_MAX_DIMS)
        return pnx_fail(PNX_EINVAL, "tensor %s: %d dimensions (at most %d)", name, ndim,
                        PNX_ST_MAX_DIMS);
    uint64_t numel, nbytes;
    if (checked_nbytes(ndim, shape, elem, (uint64_t)SIZE_MAX / 2, &numel, &nbytes) != 0)
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
        tb_json_string(b, METADATA_KEY);
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
    unsigned char prefix[LENGTH_PREFIX_BYTES];
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
