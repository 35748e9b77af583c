/*
 * pipeline/dataset_stage.c — the dataset stage; see dataset_stage.h.
 */
#include "pipeline/dataset_stage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "common/log.h"
#include "common/progress.h"
#include "db/dataset.h"
#include "db/instances.h"
#include "ingest/ingest.h"
#include "preprocess/cache.h"
#include "pipeline/instance_row.h"
#include "pipeline/png_io.h"
#include "preprocess/resize.h"
#include "preprocess/split.h"
#include "pneumoseg_version.h"
#include "rle/rle.h"

/* SIIM masks are 1024 × 1024: the size a CSV row without an image is
 * checked at (its image, which would tell, is missing). */
#define SIIM_MASK_SIDE 1024u

/* The dataset stage keeps thin lesions (see docs/dataset.md). */
#define DATASET_MASK_RULE PNX_MASK_ANY
#define DATASET_MASK_RULE_NAME "any"

static const char *const CACHE_FILE[PNX_SPLIT_COUNT] = {
    "train.safetensors", "val.safetensors", "test.safetensors"};

/* One decoded header that may become a training image. */
typedef struct image_entry {
    size_t file;                    /* index into the walked file list */
    char uid[PNX_UID_MAX];
    char patient_id[PNX_LO_MAX];
    uint32_t width, height;
    size_t csv;                     /* index in the RLE index, when usable */
    int usable;                     /* matched with a mask that fits */
    int positive;
    int split;                      /* PNX_SPLIT_… */
    size_t cache_index;
} image_entry;

/* What the CSV says about one ImageId once decoded. */
typedef struct csv_image {
    int matched;
    int valid;                      /* decoded without error */
    int64_t mask_pixels;
    uint32_t width, height;
} csv_image;

typedef struct stage {
    const pnx_config *cfg;
    pnx_db *db;
    int64_t run_id;
    pnx_dataset_report *rep;
    pnx_rle_fmt fmt;
    pnx_ingest_limits limits;
    pnx_ingest_file_list files;
    pnx_rle_index *csv;
    csv_image *csv_images;
    image_entry *entries;
    size_t n_entries;
    pnx_cache_builder *builders[PNX_SPLIT_COUNT];
    pnx_image scratch;              /* native-size mask, see decode_csv_mask */
} stage;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A UID names output files, so it must be what PS3.5 allows and nothing
 * that could climb out of a folder. */
static int uid_is_plain(const char *uid)
{
    size_t n = strlen(uid);
    if (n == 0 || n > 64 || uid[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((uid[i] >= '0' && uid[i] <= '9') || uid[i] == '.'))
            return 0;
    return 1;
}

static int cmp_entry_uid_path(const void *pa, const void *pb)
{
    const image_entry *a = pa, *b = pb;
    int c = strcmp(a->uid, b->uid);
    if (c)
        return c;
    return (a->file > b->file) - (a->file < b->file);
}

static int cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* ---- the instances ledger --------------------------------------------------- */

/* Records one decode outcome like `pneumoseg ingest` does: an instances row
 * when the UID is known, an ingest_errors row otherwise. */
static int record_instance(pnx_db_instances_writer *w, const pnx_decode_result *r)
{
    const pnx_dicom_meta *m = &r->meta;
    const char *kind = r->error_kind == PNX_INGEST_OK ? NULL
                                                      : pnx_ingest_error_kind_name(r->error_kind);
    if (!uid_is_plain(m->sop_uid))
        return pnx_db_ingest_error_put(w, r->path, m->file_size > 0 ? m->file_size : -1,
                                       kind ? kind : "malformed", r->error);
    pnx_instance_row row;
    pnx_instance_row_from_result(&row, r, kind, kind ? r->error : NULL);
    return pnx_db_instance_put(w, &row);
}

/* ---- pass 1: headers ------------------------------------------------------ */

static int read_headers(stage *s)
{
    size_t n = s->files.count;
    s->entries = calloc(n ? n : 1, sizeof *s->entries);
    if (!s->entries)
        return pnx_fail(PNX_ENOMEM, "out of memory for %zu files", n);
    pnx_decode_pool *pool = NULL;
    int rc = pnx_decode_pool_create(&pool, (unsigned)s->cfg->ingest.workers, &s->limits);
    if (rc)
        return rc;
    for (size_t i = 0; !rc && i < n; i++)
        rc = pnx_decode_pool_submit(pool, i, s->files.files[i].path, 0);
    pnx_progress *bar = pnx_progress_start("reading headers", n);
    pnx_db_instances_writer *iw = NULL;
    if (!rc)
        rc = pnx_db_begin(s->db);
    if (!rc)
        rc = pnx_db_instances_writer_open(&iw, s->db, s->run_id);
    while (!rc && pnx_decode_pool_pending(pool) > 0) {
        pnx_decode_result r = {0};
        if ((rc = pnx_decode_pool_next(pool, &r)))
            break;
        pnx_progress_add(bar, 1);
        if (r.error_kind == PNX_INGEST_OK && !uid_is_plain(r.meta.sop_uid)) {
            r.error_kind = PNX_INGEST_ERR_MALFORMED;
            snprintf(r.error, sizeof r.error, "SOP Instance UID \"%.64s\" is not a valid UID",
                     r.meta.sop_uid);
        }
        rc = record_instance(iw, &r);
        if (r.error_kind != PNX_INGEST_OK) {
            s->rep->file_errors++;
            pnx_log_warn("%s: %s: %s", r.path, pnx_ingest_error_kind_name(r.error_kind), r.error);
        } else {
            image_entry *e = &s->entries[s->n_entries++];
            e->file = r.index;
            snprintf(e->uid, sizeof e->uid, "%s", r.meta.sop_uid);
            snprintf(e->patient_id, sizeof e->patient_id, "%s", r.meta.patient_id);
            e->width = r.meta.columns;
            e->height = r.meta.rows;
            e->split = PNX_SPLIT_NONE;
        }
        pnx_decode_result_free(&r);
    }
    pnx_progress_finish(bar);
    pnx_db_instances_writer_close(iw);
    if (!rc)
        rc = pnx_db_commit(s->db);
    else
        pnx_db_rollback(s->db);
    pnx_decode_pool_destroy(pool);
    s->rep->instances = (int64_t)s->n_entries;
    return rc;
}

/* Sorts by UID and drops files that repeat a UID (the first path wins). */
static void drop_duplicate_uids(stage *s)
{
    qsort(s->entries, s->n_entries, sizeof *s->entries, cmp_entry_uid_path);
    size_t kept = 0;
    for (size_t i = 0; i < s->n_entries; i++) {
        if (kept && strcmp(s->entries[kept - 1].uid, s->entries[i].uid) == 0) {
            s->rep->duplicate_uids++;
            pnx_log_warn("%s: SOP Instance UID %s already seen in %s; skipped",
                         s->files.files[s->entries[i].file].path, s->entries[i].uid,
                         s->files.files[s->entries[kept - 1].file].path);
            continue;
        }
        s->entries[kept++] = s->entries[i];
    }
    s->n_entries = kept;
}

/* ---- the join ------------------------------------------------------------- */

/* Decodes the united mask of an ImageId into the stage's scratch mask
 * (reused while the size stays the same: allocating 1 MiB per image cost
 * more than decoding it) and points *mask at it. */
static int decode_csv_mask(stage *s, size_t csv_index, uint32_t width, uint32_t height,
                           const pnx_image **mask)
{
    if (!s->scratch.pixels || s->scratch.width != width || s->scratch.height != height) {
        pnx_image_free(&s->scratch);
        int rc = pnx_image_alloc(&s->scratch, width, height);
        if (rc)
            return rc;
    }
    *mask = &s->scratch;
    return pnx_rle_index_decode(s->csv, csv_index, s->fmt, &s->scratch);
}

static int64_t count_set(const pnx_image *mask)
{
    int64_t n = 0;
    for (size_t i = 0; i < pnx_image_size(mask); i++)
        n += mask->pixels[i] != 0;
    return n;
}

static int join(stage *s)
{
    size_t n_csv = pnx_rle_index_count(s->csv);
    s->csv_images = calloc(n_csv ? n_csv : 1, sizeof *s->csv_images);
    int64_t *areas = malloc((s->n_entries ? s->n_entries : 1) * sizeof *areas);
    if (!s->csv_images || !areas) {
        free(areas);
        return pnx_fail(PNX_ENOMEM, "out of memory for %zu ImageIds", n_csv);
    }
    int64_t n_areas = 0;
    double fraction_sum = 0;
    for (size_t i = 0; i < s->n_entries; i++) {
        image_entry *e = &s->entries[i];
        if (pnx_rle_index_find(s->csv, e->uid, &e->csv) != 0) {
            s->rep->images_without_csv++;
            continue;
        }
        csv_image *c = &s->csv_images[e->csv];
        c->matched = 1;
        c->width = e->width;
        c->height = e->height;
        const pnx_image *mask = NULL;
        int rc = decode_csv_mask(s, e->csv, e->width, e->height, &mask);
        if (rc == PNX_ENOMEM) {
            free(areas);
            return rc;
        }
        if (rc) {
            s->rep->mask_errors++;
            pnx_log_warn("%s: %s (image %ux%u)", s->files.files[e->file].path, pnx_errmsg(),
                         e->width, e->height);
            continue;
        }
        c->valid = 1;
        c->mask_pixels = count_set(mask);
        e->usable = 1;
        e->positive = c->mask_pixels > 0;
        s->rep->matched++;
        if (e->positive) {
            areas[n_areas++] = c->mask_pixels;
            fraction_sum += (double)c->mask_pixels / ((double)e->width * e->height);
        }
    }
    /* ImageIds with no image: checked at the SIIM size for the ledger. */
    for (size_t k = 0; k < n_csv; k++) {
        csv_image *c = &s->csv_images[k];
        if (pnx_rle_index_positive_rows(s->csv, k) > 0)
            s->rep->csv_positive_images++;
        if (c->matched)
            continue;
        s->rep->csv_without_image++;
        const pnx_image *mask = NULL;
        int rc = decode_csv_mask(s, k, SIIM_MASK_SIDE, SIIM_MASK_SIDE, &mask);
        if (rc == PNX_ENOMEM) {
            free(areas);
            return rc;
        }
        if (rc) {
            s->rep->mask_errors++;
            pnx_log_warn("%s", pnx_errmsg());
        } else {
            c->valid = 1;
            c->mask_pixels = count_set(mask);
            c->width = c->height = SIIM_MASK_SIDE;
        }
    }
    if (s->rep->csv_without_image)
        pnx_log_warn("%" PRId64 " ImageIds of %s have no image under %s (listed in the "
                     "dataset_unmatched view)",
                     s->rep->csv_without_image, s->cfg->dataset.rle_csv,
                     s->cfg->dataset.dicom_dir);
    if (s->rep->images_without_csv)
        pnx_log_warn("%" PRId64 " images have no row in %s (listed in the dataset_unmatched "
                     "view)",
                     s->rep->images_without_csv, s->cfg->dataset.rle_csv);

    pnx_mask_area_stats *a = &s->rep->areas;
    a->count = n_areas;
    if (n_areas) {
        qsort(areas, (size_t)n_areas, sizeof *areas, cmp_i64);
        a->min = areas[0];
        a->p10 = areas[(n_areas - 1) / 10];
        a->median = areas[(n_areas - 1) / 2];
        a->p90 = areas[(n_areas - 1) * 9 / 10];
        a->max = areas[n_areas - 1];
        a->mean_fraction = fraction_sum / (double)n_areas;
    }
    free(areas);
    return 0;
}

/* ---- the split ------------------------------------------------------------ */

static int split_entries(stage *s, size_t counts[PNX_SPLIT_COUNT])
{
    const pnx_dataset_config *d = &s->cfg->dataset;
    pnx_split_item *items = malloc((s->n_entries ? s->n_entries : 1) * sizeof *items);
    size_t *which = malloc((s->n_entries ? s->n_entries : 1) * sizeof *which);
    int *out = malloc((s->n_entries ? s->n_entries : 1) * sizeof *out);
    if (!items || !which || !out) {
        free(items);
        free(which);
        free(out);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_entries; i++) {
        if (!s->entries[i].usable)
            continue;
        items[n] = (pnx_split_item){.uid = s->entries[i].uid,
                                    .patient_id = s->entries[i].patient_id,
                                    .positive = s->entries[i].positive};
        which[n++] = i;
    }
    pnx_split_spec spec = {.by_count = d->split_by_count, .seed = (uint64_t)d->seed};
    for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
        spec.ratio[k] = d->split_ratio[k];
        spec.count[k] = d->split_count[k];
    }
    pnx_split_summary sum;
    int rc = pnx_split_assign(items, n, &spec, out, &sum);
    if (!rc) {
        for (int k = 0; k < PNX_SPLIT_COUNT; k++) {
            counts[k] = 0;
            s->rep->split_patients[k] = sum.patients[k];
            s->rep->split_target[k] = sum.target[k];
        }
        s->rep->left_out = sum.left_out;
        /* Entries are in UID order, so cache indexes follow UIDs. */
        for (size_t j = 0; j < n; j++) {
            image_entry *e = &s->entries[which[j]];
            e->split = out[j];
            if (e->split != PNX_SPLIT_NONE)
                e->cache_index = counts[e->split]++;
        }
    }
    free(items);
    free(which);
    free(out);
    return rc;
}

/* ---- pass 2: pixels, resize, caches, PNGs ---------------------------------- */

static int write_png_pair(const stage *s, const image_entry *e, const pnx_image *img,
                          const pnx_image *mask)
{
    char path[4096];
    const char *root = s->cfg->dataset.png_dir, *split = pnx_split_name(e->split);
    int n = snprintf(path, sizeof path, "%s/%s/inputs/%s.png", root, split, e->uid);
    if (n < 0 || (size_t)n >= sizeof path)
        return pnx_fail(PNX_ERANGE, "PNG path under %s is too long", root);
    int rc = pnx_png_write_gray(path, img, 0);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/%s/labels/%s.png", root, split, e->uid);
    return pnx_png_write_gray(path, mask, 1);
}

static int cmp_entry_ptr_uid(const void *pa, const void *pb)
{
    return strcmp((*(const image_entry *const *)pa)->uid, (*(const image_entry *const *)pb)->uid);
}

/* Removes <uid>.png files of a previous run from the PNG folders when that
 * image is no longer in the split (another seed or other inputs), so the
 * folders always mirror the caches. Only names "<digits and dots>.png" are
 * touched. */
static int prune_png_folders(const stage *s)
{
    static const char *const kinds[2] = {"inputs", "labels"};
    image_entry **placed = malloc((s->n_entries ? s->n_entries : 1) * sizeof *placed);
    if (!placed)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    int rc = 0;
    for (int k = 0; !rc && k < PNX_SPLIT_COUNT; k++) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_entries; i++)
            if (s->entries[i].split == k)
                placed[n++] = &s->entries[i];
        qsort(placed, n, sizeof *placed, cmp_entry_ptr_uid);
        for (int j = 0; !rc && j < 2; j++) {
            char folder[4096];
            snprintf(folder, sizeof folder, "%s/%s/%s", s->cfg->dataset.png_dir,
                     pnx_split_name(k), kinds[j]);
            DIR *d = opendir(folder);
            if (!d) {
                rc = pnx_fail(PNX_EIO, "cannot list %s", folder);
                break;
            }
            struct dirent *de;
            while (!rc && (de = readdir(d)) != NULL) {
                size_t len = strlen(de->d_name);
                if (len < 5 || len > 4 + 64 || strcmp(de->d_name + len - 4, ".png") != 0)
                    continue;
                image_entry key = {0};
                memcpy(key.uid, de->d_name, len - 4);
                key.uid[len - 4] = '\0';
                if (!uid_is_plain(key.uid))
                    continue;
                const image_entry *kp = &key;
                if (bsearch(&kp, placed, n, sizeof *placed, cmp_entry_ptr_uid))
                    continue;
                /* the name is at most 68 bytes (checked above) */
                char path[sizeof folder + 72];
                snprintf(path, sizeof path, "%s/%.68s", folder, de->d_name);
                if (unlink(path) != 0)
                    rc = pnx_fail(PNX_EIO, "cannot remove the stale %s", path);
            }
            closedir(d);
        }
    }
    free(placed);
    return rc;
}

static int make_png_folders(const stage *s)
{
    static const char *const kinds[2] = {"inputs", "labels"};
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        for (int j = 0; j < 2; j++) {
            char path[4096];
            int n = snprintf(path, sizeof path, "%s/%s/%s", s->cfg->dataset.png_dir,
                             pnx_split_name(k), kinds[j]);
            if (n < 0 || (size_t)n >= sizeof path)
                return pnx_fail(PNX_ERANGE, "PNG folder name too long");
            int rc = pnx_mkdir_p(path, 0755);
            if (rc)
                return rc;
        }
    return 0;
}

static int open_builders(stage *s, const size_t counts[PNX_SPLIT_COUNT])
{
    const pnx_dataset_config *d = &s->cfg->dataset;
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRId64, d->seed);
    int rc = pnx_mkdir_p(d->cache_dir, 0755);
    for (int k = 0; !rc && k < PNX_SPLIT_COUNT; k++) {
        char *path = pnx_path_join(d->cache_dir, CACHE_FILE[k]);
        if (!path)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        snprintf(s->rep->cache_paths[k], sizeof s->rep->cache_paths[k], "%s", path);
        rc = pnx_cache_builder_open(&s->builders[k], path, counts[k], (uint32_t)d->image_size);
        free(path);
        pnx_cache_builder *b = s->builders[k];
        if (!rc)
            rc = pnx_cache_builder_meta(b, "split", pnx_split_name(k));
        if (!rc)
            rc = pnx_cache_builder_meta(b, "seed", seed);
        if (!rc)
            rc = pnx_cache_builder_meta(b, "mask_rule", DATASET_MASK_RULE_NAME);
        if (!rc)
            rc = pnx_cache_builder_meta(b, "rle_format", pnx_rle_fmt_name(s->fmt));
        if (!rc)
            rc = pnx_cache_builder_meta(b, "software", "pneumoseg " PNEUMOSEG_VERSION);
    }
    return rc;
}

/* Resizes one decoded image and its mask into its cache slot. A problem
 * with this image (PNX_EFORMAT, PNX_ERANGE) is returned for the caller to
 * count; anything else is fatal. */
static int place_image(stage *s, image_entry *e, const pnx_image *decoded)
{
    const pnx_image *mask = NULL;
    pnx_image small_img = {0}, small_mask = {0};
    int rc = 0;
    if (decoded->width != e->width || decoded->height != e->height)
        rc = pnx_fail(PNX_EFORMAT, "decoded %ux%u, header said %ux%u", decoded->width,
                      decoded->height, e->width, e->height);
    if (!rc)
        rc = decode_csv_mask(s, e->csv, e->width, e->height, &mask);
    uint32_t side = (uint32_t)s->cfg->dataset.image_size;
    if (!rc)
        rc = pnx_resize_image(decoded, side, &small_img);
    if (!rc)
        rc = pnx_resize_mask(mask, side, DATASET_MASK_RULE, &small_mask);
    if (!rc)
        rc = pnx_cache_builder_put(s->builders[e->split], e->cache_index, &small_img,
                                   &small_mask, e->uid);
    if (!rc && s->cfg->dataset.png_dir)
        rc = write_png_pair(s, e, &small_img, &small_mask);
    pnx_image_free(&small_img);
    pnx_image_free(&small_mask);
    return rc;
}

static int decode_pixels(stage *s)
{
    pnx_decode_pool *pool = NULL;
    int rc = pnx_decode_pool_create(&pool, (unsigned)s->cfg->ingest.workers, &s->limits);
    if (rc)
        return rc;
    size_t total = 0;
    for (size_t i = 0; !rc && i < s->n_entries; i++)
        if (s->entries[i].split != PNX_SPLIT_NONE) {
            rc = pnx_decode_pool_submit(pool, i, s->files.files[s->entries[i].file].path,
                                        PNX_DECODE_PIXELS);
            total++;
        }
    pnx_progress *bar = pnx_progress_start("decoding images", total);
    pnx_db_instances_writer *iw = NULL;
    if (!rc)
        rc = pnx_db_begin(s->db);
    if (!rc)
        rc = pnx_db_instances_writer_open(&iw, s->db, s->run_id);
    while (!rc && pnx_decode_pool_pending(pool) > 0) {
        pnx_decode_result r = {0};
        if ((rc = pnx_decode_pool_next(pool, &r)))
            break;
        pnx_progress_add(bar, 1);
        image_entry *e = &s->entries[r.index];
        if (r.error_kind == PNX_INGEST_OK) {
            int prc = place_image(s, e, &r.image);
            if (prc == PNX_EFORMAT || prc == PNX_ERANGE) {
                r.error_kind = PNX_INGEST_ERR_DECODE;
                snprintf(r.error, sizeof r.error, "%s", pnx_errmsg());
            } else if (prc) {
                rc = prc;
            }
        }
        if (!rc && r.error_kind != PNX_INGEST_OK) {
            /* The header was fine, the pixels were not: the instance
             * becomes an error and leaves the split. */
            s->rep->file_errors++;
            pnx_log_warn("%s: %s: %s", r.path, pnx_ingest_error_kind_name(r.error_kind), r.error);
            rc = record_instance(iw, &r);
            if (!rc)
                rc = pnx_cache_builder_skip(s->builders[e->split], e->cache_index);
            e->split = PNX_SPLIT_NONE;
        }
        pnx_decode_result_free(&r);
    }
    pnx_progress_finish(bar);
    pnx_db_instances_writer_close(iw);
    if (!rc)
        rc = pnx_db_commit(s->db);
    else
        pnx_db_rollback(s->db);
    pnx_decode_pool_destroy(pool);
    return rc;
}

/* ---- the ledger ----------------------------------------------------------- */

static int write_tables(stage *s)
{
    int rc = pnx_db_begin(s->db);
    if (rc)
        return rc;
    pnx_db_dataset_writer *w = NULL;
    rc = pnx_db_dataset_clear(s->db);
    if (!rc)
        rc = pnx_db_dataset_writer_open(&w, s->db, s->run_id);
    size_t n_csv = pnx_rle_index_count(s->csv);
    for (size_t k = 0; !rc && k < n_csv; k++) {
        const csv_image *c = &s->csv_images[k];
        if (!c->valid)
            continue;
        pnx_ground_truth_row row = {
            .sop_instance_uid = pnx_rle_index_id(s->csv, k),
            .positive = c->mask_pixels > 0,
            .mask_pixels = c->mask_pixels,
            .rle_rows = pnx_rle_index_rows(s->csv, k),
            .width = c->width,
            .height = c->height,
            .source_file = s->cfg->dataset.rle_csv,
        };
        rc = pnx_db_ground_truth_put(w, &row);
    }
    for (size_t i = 0; !rc && i < s->n_entries; i++) {
        const image_entry *e = &s->entries[i];
        if (e->split == PNX_SPLIT_NONE)
            continue;
        rc = pnx_db_split_put(w, e->uid, pnx_split_name(e->split), e->patient_id, e->positive,
                              s->cfg->dataset.seed);
        s->rep->split_images[e->split]++;
        s->rep->split_positives[e->split] += e->positive;
    }
    pnx_db_dataset_writer_close(w);
    int64_t several = 0;
    if (!rc)
        rc = pnx_db_split_patients_in_several(s->db, &several);
    if (!rc && several > 0)
        rc = pnx_fail(PNX_EINTERNAL, "%" PRId64 " patients ended up in two splits", several);
    if (rc) {
        pnx_db_rollback(s->db);
        return rc;
    }
    return pnx_db_commit(s->db);
}

/* ---- the stage ------------------------------------------------------------ */

static int check_config(const pnx_dataset_config *d)
{
    if (!d->dicom_dir || !d->dicom_dir[0])
        return pnx_fail(PNX_ECONFIG, "dataset.dicom_dir is not set (--dicom-dir)");
    if (!d->rle_csv || !d->rle_csv[0])
        return pnx_fail(PNX_ECONFIG, "dataset.rle_csv is not set (--rle-csv)");
    if (!d->cache_dir || !d->cache_dir[0])
        return pnx_fail(PNX_ECONFIG, "dataset.cache_dir is not set (--cache-dir)");
    if (d->image_size < 1 || d->image_size > (int)PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_ECONFIG, "dataset.image_size %d is out of range", d->image_size);
    return 0;
}

int pnx_dataset_build(const pnx_config *cfg, pnx_db *db, int64_t run_id,
                      pnx_dataset_report *rep)
{
    memset(rep, 0, sizeof *rep);
    int rc = check_config(&cfg->dataset);
    if (rc)
        return rc;
    stage s = {.cfg = cfg, .db = db, .run_id = run_id, .rep = rep,
               .fmt = cfg->dataset.rle_format == PNX_RLE_ABSOLUTE ? PNX_RLE_FMT_ABSOLUTE
                                                                  : PNX_RLE_FMT_RELATIVE};
    pnx_ingest_limits_default(&s.limits);
    if (cfg->ingest.max_pixels > 0)
        s.limits.max_pixels = cfg->ingest.max_pixels;
    if (cfg->ingest.max_bits > 0)
        s.limits.max_bits = cfg->ingest.max_bits;
    if (cfg->ingest.memory_limit_mb >= 0)
        s.limits.memory_limit_mb = cfg->ingest.memory_limit_mb;
    if (cfg->ingest.timeout_s > 0)
        s.limits.timeout_s = cfg->ingest.timeout_s;

    if ((rc = pnx_rle_index_build(&s.csv, cfg->dataset.rle_csv)))
        goto done;
    rep->csv_rows = (int64_t)pnx_rle_index_row_count(s.csv);
    rep->csv_images = (int64_t)pnx_rle_index_count(s.csv);
    if ((rc = pnx_ingest_walk(cfg->dataset.dicom_dir, &s.files)))
        goto done;
    rep->files = (int64_t)s.files.count;
    rep->files_skipped = (int64_t)s.files.skipped;
    pnx_log_info("dataset: %zu DICOM files under %s, %" PRId64 " ImageIds in %s",
                 s.files.count, cfg->dataset.dicom_dir, rep->csv_images, cfg->dataset.rle_csv);

    double t0 = now_s();
    if ((rc = read_headers(&s)))
        goto done;
    rep->header_seconds = now_s() - t0;
    drop_duplicate_uids(&s);
    if ((rc = join(&s)))
        goto done;

    size_t counts[PNX_SPLIT_COUNT];
    if ((rc = split_entries(&s, counts)))
        goto done;
    if ((rc = open_builders(&s, counts)))
        goto done;
    if (cfg->dataset.png_dir && (rc = make_png_folders(&s)))
        goto done;

    t0 = now_s();
    if ((rc = decode_pixels(&s)))
        goto done;
    for (int k = 0; !rc && k < PNX_SPLIT_COUNT; k++) {
        rc = pnx_cache_builder_commit(s.builders[k]);
        s.builders[k] = NULL;
    }
    if (rc)
        goto done;
    rep->pixel_seconds = now_s() - t0;
    if ((rc = write_tables(&s)))
        goto done;
    if (cfg->dataset.png_dir && (rc = prune_png_folders(&s)))
        goto done;
    int64_t placed = rep->split_images[0] + rep->split_images[1] + rep->split_images[2];
    rep->images_per_s = rep->pixel_seconds > 0 ? (double)placed / rep->pixel_seconds : 0;
done:
    for (int k = 0; k < PNX_SPLIT_COUNT; k++)
        pnx_cache_builder_abort(s.builders[k]);
    pnx_rle_index_free(s.csv);
    pnx_ingest_file_list_free(&s.files);
    free(s.entries);
    free(s.csv_images);
    pnx_image_free(&s.scratch);
    return rc;
}
