/*
 * preprocess/cache.c — the dataset cache as safetensors; see cache.h.
 */
#include "preprocess/cache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/safetensors.h"

#define SPOOL_CHUNK_BYTES (1u << 20)
#define MAX_USER_META 32

enum { ITEM_PENDING = 0, ITEM_PUT = 1, ITEM_SKIPPED = 2 };

struct pnx_cache_builder {
    char *path;
    size_t count;
    uint32_t side;
    size_t item_bytes;       /* side × side */
    int spool_fd;            /* images at 0, masks at count × item_bytes */
    char *uids;              /* count × PNX_CACHE_UID_BYTES */
    uint8_t *done;           /* per index: ITEM_PENDING, ITEM_PUT, ITEM_SKIPPED */
    size_t n_meta;
    char *meta_key[MAX_USER_META];
    char *meta_value[MAX_USER_META];
};

struct pnx_cache {
    pnx_st_file *file;
    char *path;
    size_t count;
    uint32_t side;
    size_t item_bytes;
    const uint8_t *images;
    const uint8_t *masks;
    const uint8_t *uids;
};

static int is_reserved_key(const char *key)
{
    return strcmp(key, "format") == 0 || strcmp(key, "version") == 0 ||
           strcmp(key, "count") == 0 || strcmp(key, "image_size") == 0;
}

static int uid_is_valid(const char *uid, size_t len)
{
    if (len == 0 || len > PNX_CACHE_UID_BYTES)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((uid[i] >= '0' && uid[i] <= '9') || uid[i] == '.'))
            return 0;
    return 1;
}

static int write_all_at(int fd, const uint8_t *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, data, len, (off_t)offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return pnx_fail(PNX_EIO, "writing the cache spool: %s",
                            w < 0 ? strerror(errno) : "no progress");
        data += w;
        len -= (size_t)w;
        offset += (uint64_t)w;
    }
    return 0;
}

int pnx_cache_builder_open(pnx_cache_builder **out, const char *path, size_t count,
                           uint32_t side)
{
    *out = NULL;
    if (!path || !path[0])
        return pnx_fail(PNX_EINVAL, "cache: no path");
    if (side < 1 || side > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "cache %s: image size %u out of range", path, side);
    size_t item = (size_t)side * side;
    if (count > SIZE_MAX / 4 / item)
        return pnx_fail(PNX_ERANGE, "cache %s: %zu items of %ux%u is too large", path, count,
                        side, side);
    pnx_cache_builder *b = calloc(1, sizeof *b);
    if (!b)
        return pnx_fail(PNX_ENOMEM, "cache: out of memory");
    b->spool_fd = -1;
    b->count = count;
    b->side = side;
    b->item_bytes = item;
    b->path = strdup(path);
    b->uids = calloc(count ? count : 1, PNX_CACHE_UID_BYTES);
    b->done = calloc(count ? count : 1, 1);
    size_t tlen = strlen(path) + sizeof ".spool.XXXXXX";
    char *tmpl = malloc(tlen);
    if (!b->path || !b->uids || !b->done || !tmpl) {
        free(tmpl);
        pnx_cache_builder_abort(b);
        return pnx_fail(PNX_ENOMEM, "cache: out of memory for %zu items", count);
    }
    snprintf(tmpl, tlen, "%s.spool.XXXXXX", path);
    b->spool_fd = mkstemp(tmpl);
    if (b->spool_fd < 0) {
        int e = errno;
        free(tmpl);
        pnx_cache_builder_abort(b);
        return pnx_fail(PNX_EIO, "cache %s: cannot create a spool file: %s", path, strerror(e));
    }
    /* Unlinked at once: a crash leaves nothing behind. */
    unlink(tmpl);
    free(tmpl);
    *out = b;
    return 0;
}

int pnx_cache_builder_meta(pnx_cache_builder *b, const char *key, const char *value)
{
    if (!key || !key[0] || !value)
        return pnx_fail(PNX_EINVAL, "cache: empty metadata key or value");
    if (is_reserved_key(key))
        return pnx_fail(PNX_EINVAL, "cache: metadata key %s is written by the cache itself", key);
    for (size_t i = 0; i < b->n_meta; i++)
        if (strcmp(b->meta_key[i], key) == 0)
            return pnx_fail(PNX_EINVAL, "cache: metadata key %s given twice", key);
    if (b->n_meta == MAX_USER_META)
        return pnx_fail(PNX_ERANGE, "cache: more than %d metadata entries", MAX_USER_META);
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return pnx_fail(PNX_ENOMEM, "cache: out of memory");
    }
    b->meta_key[b->n_meta] = k;
    b->meta_value[b->n_meta] = v;
    b->n_meta++;
    return 0;
}

int pnx_cache_builder_put(pnx_cache_builder *b, size_t index, const pnx_image *image,
                          const pnx_image *mask, const char *uid)
{
    if (index >= b->count)
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu of %zu", b->path, index, b->count);
    if (b->done[index])
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu given twice", b->path, index);
    if (!image || !mask || !image->pixels || !mask->pixels || image->width != b->side ||
        image->height != b->side || mask->width != b->side || mask->height != b->side)
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu is not %ux%u", b->path, index, b->side,
                        b->side);
    size_t len = uid ? strlen(uid) : 0;
    if (!uid_is_valid(uid ? uid : "", len))
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu: \"%.80s\" is not a UID", b->path,
                        index, uid ? uid : "");
    for (size_t i = 0; i < b->item_bytes; i++)
        if (mask->pixels[i] > 1)
            return pnx_fail(PNX_EINVAL, "cache %s: item %zu (%s): mask value %u is not 0/1",
                            b->path, index, uid, mask->pixels[i]);
    uint64_t at = (uint64_t)index * b->item_bytes;
    uint64_t masks_at = (uint64_t)b->count * b->item_bytes;
    int rc = write_all_at(b->spool_fd, image->pixels, b->item_bytes, at);
    if (!rc)
        rc = write_all_at(b->spool_fd, mask->pixels, b->item_bytes, masks_at + at);
    if (rc)
        return pnx_fail_prefix(rc, "cache %s", b->path);
    memcpy(b->uids + index * PNX_CACHE_UID_BYTES, uid, len);
    b->done[index] = ITEM_PUT;
    return 0;
}

int pnx_cache_builder_skip(pnx_cache_builder *b, size_t index)
{
    if (index >= b->count)
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu of %zu", b->path, index, b->count);
    if (b->done[index])
        return pnx_fail(PNX_EINVAL, "cache %s: item %zu given twice", b->path, index);
    b->done[index] = ITEM_SKIPPED;
    return 0;
}

/* Copies the kept items of one spool region (images or masks) into the
 * safetensors file being written. */
typedef struct spool_region {
    const pnx_cache_builder *b;
    uint64_t offset;
} spool_region;

static int copy_spool(int fd, uint64_t at, size_t nbytes, uint8_t *buf, FILE *fp)
{
    while (nbytes > 0) {
        size_t want = nbytes < SPOOL_CHUNK_BYTES ? nbytes : SPOOL_CHUNK_BYTES;
        ssize_t got = pread(fd, buf, want, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return pnx_fail(PNX_EIO, "reading the cache spool: %s",
                            got < 0 ? strerror(errno) : "unexpected end");
        if (fwrite(buf, 1, (size_t)got, fp) != (size_t)got)
            return pnx_fail(PNX_EIO, "writing the cache: %s", strerror(errno));
        nbytes -= (size_t)got;
        at += (uint64_t)got;
    }
    return 0;
}

static int fill_from_spool(void *ctx, FILE *fp, size_t nbytes)
{
    const spool_region *r = ctx;
    const pnx_cache_builder *b = r->b;
    uint8_t *buf = malloc(SPOOL_CHUNK_BYTES);
    if (!buf)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = 0;
    size_t written = 0;
    /* Runs of consecutive kept items are copied in one go. */
    for (size_t i = 0; !rc && i < b->count;) {
        if (b->done[i] != ITEM_PUT) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < b->count && b->done[j] == ITEM_PUT)
            j++;
        size_t len = (j - i) * b->item_bytes;
        if (written + len > nbytes)
            rc = pnx_fail(PNX_EINTERNAL, "cache spool larger than the tensor");
        else
            rc = copy_spool(b->spool_fd, r->offset + (uint64_t)i * b->item_bytes, len, buf, fp);
        written += len;
        i = j;
    }
    free(buf);
    return rc;
}

int pnx_cache_builder_commit(pnx_cache_builder *b)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->count; i++) {
        if (b->done[i] == ITEM_PENDING) {
            int rc = pnx_fail(PNX_EINVAL, "cache %s: item %zu of %zu was never put", b->path,
                              i, b->count);
            pnx_cache_builder_abort(b);
            return rc;
        }
        if (b->done[i] == ITEM_PUT) {
            /* compacting the UIDs in place: kept ≤ i */
            if (kept != i)
                memcpy(b->uids + kept * PNX_CACHE_UID_BYTES, b->uids + i * PNX_CACHE_UID_BYTES,
                       PNX_CACHE_UID_BYTES);
            kept++;
        }
    }
    pnx_st_writer *w = NULL;
    char count_text[32], side_text[16];
    snprintf(count_text, sizeof count_text, "%zu", kept);
    snprintf(side_text, sizeof side_text, "%u", b->side);
    const int64_t n = (int64_t)kept, s = (int64_t)b->side;
    const int64_t image_shape[4] = {n, 1, s, s};
    const int64_t uid_shape[2] = {n, PNX_CACHE_UID_BYTES};
    spool_region images = {b, 0};
    spool_region masks = {b, (uint64_t)b->count * b->item_bytes};
    int rc = pnx_st_writer_create(&w);
    if (!rc)
        rc = pnx_st_writer_meta(w, "format", PNX_CACHE_FORMAT);
    if (!rc)
        rc = pnx_st_writer_meta(w, "version", PNX_CACHE_VERSION);
    if (!rc)
        rc = pnx_st_writer_meta(w, "count", count_text);
    if (!rc)
        rc = pnx_st_writer_meta(w, "image_size", side_text);
    for (size_t i = 0; !rc && i < b->n_meta; i++)
        rc = pnx_st_writer_meta(w, b->meta_key[i], b->meta_value[i]);
    if (!rc)
        rc = pnx_st_writer_add_fill(w, PNX_CACHE_IMAGES, PNX_ST_U8, 4, image_shape,
                                    fill_from_spool, &images);
    if (!rc)
        rc = pnx_st_writer_add_fill(w, PNX_CACHE_MASKS, PNX_ST_U8, 4, image_shape,
                                    fill_from_spool, &masks);
    if (!rc)
        rc = pnx_st_writer_add(w, PNX_CACHE_UIDS, PNX_ST_U8, 2, uid_shape, b->uids);
    if (!rc)
        rc = pnx_st_writer_write(w, b->path);
    if (rc)
        pnx_fail_prefix(rc, "cache %s", b->path);
    pnx_st_writer_free(w);
    pnx_cache_builder_abort(b);
    return rc;
}

void pnx_cache_builder_abort(pnx_cache_builder *b)
{
    if (!b)
        return;
    if (b->spool_fd >= 0)
        close(b->spool_fd);
    for (size_t i = 0; i < b->n_meta; i++) {
        free(b->meta_key[i]);
        free(b->meta_value[i]);
    }
    free(b->path);
    free(b->uids);
    free(b->done);
    free(b);
}

/* ---- reading ------------------------------------------------------------- */

static int meta_equals_number(const pnx_st_file *f, const char *key, uint64_t want)
{
    const char *v = pnx_st_meta(f, key);
    if (!v || !v[0])
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long got = strtoull(v, &end, 10);
    return errno == 0 && *end == '\0' && v[0] != '-' && got == want;
}

int pnx_cache_open(pnx_cache **out, const char *path)
{
    *out = NULL;
    pnx_st_file *f = NULL;
    int rc = pnx_st_open(&f, path);
    if (rc)
        return rc;
    const char *format = pnx_st_meta(f, "format"), *version = pnx_st_meta(f, "version");
    if (!format || strcmp(format, PNX_CACHE_FORMAT) != 0) {
        pnx_st_close(f);
        return pnx_fail(PNX_EFORMAT, "%s: not a pneumoseg dataset cache (metadata format is %s)",
                        path, format ? format : "missing");
    }
    if (!version || strcmp(version, PNX_CACHE_VERSION) != 0) {
        pnx_st_close(f);
        return pnx_fail(PNX_EUNSUPPORTED, "%s: dataset cache version %s, this pneumoseg reads %s",
                        path, version ? version : "missing", PNX_CACHE_VERSION);
    }
    const pnx_st_tensor *images = NULL, *masks = NULL, *uids = NULL;
    const int64_t any_images[4] = {-1, 1, -1, -1};
    rc = pnx_st_expect(f, PNX_CACHE_IMAGES, PNX_ST_U8, 4, any_images, &images);
    int64_t n = 0, side = 0;
    if (!rc) {
        n = images->shape[0];
        side = images->shape[2];
        if (images->shape[3] != side || side < 1 || side > PNX_IMAGE_MAX_SIDE)
            rc = pnx_fail(PNX_EFORMAT, "images are %" PRId64 "x%" PRId64 ", not square",
                          images->shape[3], side);
    }
    if (!rc) {
        const int64_t mask_shape[4] = {n, 1, side, side};
        rc = pnx_st_expect(f, PNX_CACHE_MASKS, PNX_ST_U8, 4, mask_shape, &masks);
    }
    if (!rc) {
        const int64_t uid_shape[2] = {n, PNX_CACHE_UID_BYTES};
        rc = pnx_st_expect(f, PNX_CACHE_UIDS, PNX_ST_U8, 2, uid_shape, &uids);
    }
    if (!rc && (!meta_equals_number(f, "count", (uint64_t)n) ||
                !meta_equals_number(f, "image_size", (uint64_t)side)))
        rc = pnx_fail(PNX_EFORMAT, "metadata count/image_size disagree with the tensors");
    pnx_cache *c = NULL;
    if (!rc) {
        c = calloc(1, sizeof *c);
        if (c)
            c->path = strdup(path);
        if (!c || !c->path)
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
    }
    if (rc) {
        if (c)
            free(c->path);
        free(c);
        pnx_st_close(f);
        return pnx_fail_prefix(rc, "%s", path);
    }
    c->file = f;
    c->count = (size_t)n;
    c->side = (uint32_t)side;
    c->item_bytes = (size_t)side * (size_t)side;
    c->images = images->data;
    c->masks = masks->data;
    c->uids = uids->data;
    *out = c;
    return 0;
}

void pnx_cache_close(pnx_cache *c)
{
    if (!c)
        return;
    pnx_st_close(c->file);
    free(c->path);
    free(c);
}

size_t pnx_cache_count(const pnx_cache *c)
{
    return c->count;
}

uint32_t pnx_cache_side(const pnx_cache *c)
{
    return c->side;
}

const uint8_t *pnx_cache_image(const pnx_cache *c, size_t i)
{
    return i < c->count ? c->images + i * c->item_bytes : NULL;
}

const uint8_t *pnx_cache_mask(const pnx_cache *c, size_t i)
{
    return i < c->count ? c->masks + i * c->item_bytes : NULL;
}

int pnx_cache_uid(const pnx_cache *c, size_t i, char out[PNX_CACHE_UID_BYTES + 1])
{
    out[0] = '\0';
    if (i >= c->count)
        return pnx_fail(PNX_EINVAL, "%s: item %zu of %zu", c->path, i, c->count);
    const uint8_t *raw = c->uids + i * PNX_CACHE_UID_BYTES;
    size_t len = 0;
    while (len < PNX_CACHE_UID_BYTES && raw[len])
        len++;
    for (size_t k = len; k < PNX_CACHE_UID_BYTES; k++)
        if (raw[k])
            return pnx_fail(PNX_EFORMAT, "%s: item %zu: UID bytes after the NUL padding", c->path, i);
    if (!uid_is_valid((const char *)raw, len))
        return pnx_fail(PNX_EFORMAT, "%s: item %zu: stored bytes are not a UID", c->path, i);
    memcpy(out, raw, len);
    out[len] = '\0';
    return 0;
}

const char *pnx_cache_meta(const pnx_cache *c, const char *key)
{
    return pnx_st_meta(c->file, key);
}

int pnx_cache_verify(const pnx_cache *c)
{
    char uid[PNX_CACHE_UID_BYTES + 1];
    for (size_t i = 0; i < c->count; i++) {
        int rc = pnx_cache_uid(c, i, uid);
        if (rc)
            return rc;
        const uint8_t *m = pnx_cache_mask(c, i);
        for (size_t k = 0; k < c->item_bytes; k++)
            if (m[k] > 1)
                return pnx_fail(PNX_EFORMAT, "%s: item %zu (%s): mask value %u is not 0/1",
                                c->path, i, uid, m[k]);
    }
    return 0;
}
