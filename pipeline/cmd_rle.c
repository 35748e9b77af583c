/* pipeline/cmd_rle.c — `pneumoseg rle decode|encode`: Kaggle RLE CSV ↔ one
 * 0/255 PNG mask per ImageId. A user tool and the basis of checks: it needs
 * no pipeline.yaml and no database (the common options are accepted; --out
 * names its output). */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/image.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/threadpool.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/png_io.h"
#include "rle/rle.h"

_Static_assert((int)PNX_RLE_FMT_RELATIVE == (int)PNX_RLE_RELATIVE &&
                   (int)PNX_RLE_FMT_ABSOLUTE == (int)PNX_RLE_ABSOLUTE,
               "rle/rle.h and pipeline/config.h must number the RLE formats alike");

#define SIIM_SIDE 1024

enum {
    OPT_FORMAT = PNX_OPT_FIRST_COMMAND_OPTION,
    OPT_SIZE,
    OPT_ID,
    OPT_STYLE,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg rle decode CSV --out DIR [--format F] [--size WxH] [--id UID]...\n"
            "       pneumoseg rle encode DIR_OR_PNG... --out CSV [--format F] [--style S]\n"
            "\n"
            "decode  reads a Kaggle RLE CSV (ImageId,EncodedPixels; header with or\n"
            "        without a space, BOM, CRLF, \"-1\" for no mask) and writes\n"
            "        DIR/<ImageId>.png for every ImageId: an 8-bit greyscale mask,\n"
            "        255 inside, 0 outside, the union of all the image's rows. An\n"
            "        image whose RLE is malformed gets no PNG and an error naming\n"
            "        the file, line and ImageId; the others are still written.\n"
            "encode  reads PNG masks (any nonzero pixel is inside; a folder means\n"
            "        every *.png in it) and writes one row per PNG, ImageId = file\n"
            "        name without .png, rows sorted by ImageId, \"-1\" when empty.\n"
            "\n"
            "Options:\n"
            "  --out DIR|CSV      where decode writes PNGs / encode writes the CSV\n"
            "                     (required; the CSV is written atomically)\n"
            "  --format F         relative (SIIM's, default): each start after the first\n"
            "                     counts from the end of the previous run; absolute: every\n"
            "                     start counts from pixel 0. Both 0-based, column-major.\n"
            "  --size WxH         decode: image size (default 1024x1024, the SIIM size)\n"
            "  --id UID           decode: only this ImageId (repeat for several)\n"
            "  --style S          encode: kaggle (default; header \"ImageId,EncodedPixels\")\n"
            "                     or stage1 (\"ImageId, EncodedPixels\", \", \" before values)\n"
            "\n"
            "The configuration file and the database are not used.\n"
            "\n" PNX_CLI_COMMON_HELP);
}

static int parse_size(const char *s, uint32_t *w, uint32_t *h)
{
    char *end;
    errno = 0;
    unsigned long a = strtoul(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X') || errno)
        return pnx_fail(PNX_EINVAL, "--size '%s' is not WIDTHxHEIGHT", s);
    const char *second = end + 1;
    unsigned long b = strtoul(second, &end, 10);
    if (end == second || *end || errno || s[0] == '-' || second[0] == '-')
        return pnx_fail(PNX_EINVAL, "--size '%s' is not WIDTHxHEIGHT", s);
    if (a == 0 || b == 0 || a > PNX_IMAGE_MAX_SIDE || b > PNX_IMAGE_MAX_SIDE)
        return pnx_fail(PNX_EINVAL, "--size '%s': each side must be 1..%u", s, PNX_IMAGE_MAX_SIDE);
    *w = (uint32_t)a;
    *h = (uint32_t)b;
    return 0;
}

/* Decoding is serial (one index, one file handle) and fast; writing a PNG
 * is compression plus two fsyncs, mostly waiting on the disk. So masks are
 * decoded a batch at a time and the batch is written by a pool of threads
 * larger than the CPU count, which overlaps the fsync waits. */
#define WRITER_THREADS 8
#define BATCH_BYTES (128u << 20)
#define BATCH_MAX 64

typedef struct batch_item {
    size_t index;        /* image in the index */
    pnx_image mask;
    int rc;              /* 0, or the failure whose text is in message */
    char *message;
} batch_item;

typedef struct batch {
    batch_item *items;
    size_t n;
    pnx_rle_index *ix;
    const char *csv;
    const char *out_dir;
    uint8_t *empty_png;  /* the PNG of an all-zero mask, written for every "-1" image */
    size_t empty_png_len;
} batch;

/* An ImageId becomes a file name: nothing that could leave the folder. */
static int check_id_as_file_name(const char *id)
{
    if (strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return pnx_fail(PNX_EFORMAT, "ImageId '%s' cannot be a file name", id);
    return 0;
}

static int write_range(void *ctx, size_t begin, size_t end)
{
    batch *b = ctx;
    for (size_t k = begin; k < end; k++) {
        batch_item *it = &b->items[k];
        if (it->rc)
            continue;
        const char *id = pnx_rle_index_id(b->ix, it->index);
        char *path = malloc(strlen(b->out_dir) + strlen(id) + 6);
        if (!path) {
            it->rc = pnx_fail(PNX_ENOMEM, "out of memory");
        } else {
            sprintf(path, "%s/%s.png", b->out_dir, id);
            if (pnx_rle_index_positive_rows(b->ix, it->index) == 0)
                it->rc = pnx_write_file_atomic(path, b->empty_png, b->empty_png_len);
            else
                it->rc = pnx_png_write_gray(path, &it->mask, 1);
            free(path);
        }
        if (it->rc)
            it->message = strdup(pnx_errmsg());
    }
    return 0;
}

static int rle_decode(const char *csv, const char *out_dir, pnx_rle_fmt fmt, uint32_t w,
                      uint32_t h, char **ids, int n_ids)
{
    pnx_rle_index *ix = NULL;
    pnx_pool *pool = NULL;
    batch b = {.csv = csv, .out_dir = out_dir};
    size_t per_batch = BATCH_BYTES / ((size_t)w * h);
    per_batch = per_batch < 1 ? 1 : per_batch > BATCH_MAX ? BATCH_MAX : per_batch;
    int rc = pnx_rle_index_build(&ix, csv);
    if (!rc)
        rc = pnx_mkdir_p(out_dir, 0777);
    if (!rc)
        rc = pnx_pool_create(&pool, WRITER_THREADS);
    if (!rc && !(b.items = calloc(per_batch, sizeof *b.items)))
        rc = pnx_fail(PNX_ENOMEM, "out of memory");
    for (size_t k = 0; k < per_batch && !rc; k++)
        rc = pnx_image_alloc(&b.items[k].mask, w, h);
    if (!rc)
        rc = pnx_png_encode_gray(&b.items[0].mask, 1, &b.empty_png, &b.empty_png_len);
    if (rc) {
        fprintf(stderr, "pneumoseg rle decode: %s\n", pnx_errmsg());
        goto done;
    }
    b.ix = ix;
    size_t todo = n_ids ? (size_t)n_ids : pnx_rle_index_count(ix);
    size_t written = 0, failed = 0, positive = 0;
    pnx_progress *progress = pnx_progress_start("rle decode", todo);
    for (size_t k0 = 0; k0 < todo; k0 += per_batch) {
        b.n = todo - k0 < per_batch ? todo - k0 : per_batch;
        for (size_t k = 0; k < b.n; k++) {
            batch_item *it = &b.items[k];
            it->index = k0 + k;
            it->message = NULL;
            it->rc = n_ids ? pnx_rle_index_find(ix, ids[k0 + k], &it->index) : 0;
            if (!it->rc)
                it->rc = pnx_rle_index_decode(ix, it->index, fmt, &it->mask);
            if (!it->rc && (it->rc = check_id_as_file_name(pnx_rle_index_id(ix, it->index))))
                pnx_fail_prefix(it->rc, "%s:%lld", csv,
                                (long long)pnx_rle_index_first_line(ix, it->index));
            if (it->rc)
                it->message = strdup(pnx_errmsg());
        }
        pnx_pool_for(pool, b.n, write_range, &b);
        for (size_t k = 0; k < b.n; k++) {
            batch_item *it = &b.items[k];
            if (it->rc) {
                pnx_log_error("%s", it->message ? it->message : pnx_strerror(it->rc));
                failed++;
            } else {
                written++;
                positive += pnx_rle_index_positive_rows(ix, it->index) > 0;
            }
            free(it->message);
        }
        pnx_progress_add(progress, b.n);
    }
    pnx_progress_finish(progress);
    printf("%s: %zu rows, %zu images; wrote %zu PNG masks (%zu with a mask) to %s; %zu failed\n",
           csv, pnx_rle_index_row_count(ix), pnx_rle_index_count(ix), written, positive, out_dir,
           failed);
    rc = failed ? PNX_EFORMAT : 0;
done:
    for (size_t k = 0; b.items && k < per_batch; k++)
        pnx_image_free(&b.items[k].mask);
    free(b.items);
    free(b.empty_png);
    pnx_pool_destroy(pool);
    pnx_rle_index_free(ix);
    if (!rc)
        return PNX_EXIT_OK;
    return b.ix ? PNX_EXIT_PARTIAL : PNX_EXIT_FATAL;
}

/* ---- encode ------------------------------------------------------------- */

typedef struct png_list {
    char **paths;
    size_t n, cap;
} png_list;

static int list_add(png_list *l, char *path)
{
    if (!path)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p) {
            free(path);
            return pnx_fail(PNX_ENOMEM, "out of memory");
        }
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->n++] = path;
    return 0;
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".png") == 0;
}

static int collect_inputs(png_list *l, char **args, int n_args)
{
    for (int a = 0; a < n_args; a++) {
        struct stat st;
        if (stat(args[a], &st) != 0)
            return pnx_fail(PNX_ENOTFOUND, "%s: %s", args[a], strerror(errno));
        if (!S_ISDIR(st.st_mode)) {
            if (!has_png_suffix(args[a]))
                return pnx_fail(PNX_EINVAL, "%s: not a .png file", args[a]);
            int rc = list_add(l, strdup(args[a]));
            if (rc)
                return rc;
            continue;
        }
        DIR *d = opendir(args[a]);
        if (!d)
            return pnx_fail(PNX_EIO, "%s: %s", args[a], strerror(errno));
        struct dirent *e;
        int rc = 0;
        while (!rc && (e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && has_png_suffix(e->d_name))
                rc = list_add(l, pnx_path_join(args[a], e->d_name));
        closedir(d);
        if (rc)
            return rc;
    }
    return 0;
}

static int any_foreground(const pnx_image *m)
{
    const size_t n = pnx_image_size(m);
    for (size_t i = 0; i < n; i++)
        if (m->pixels[i])
            return 1;
    return 0;
}

/* ImageId of a path: its base name without ".png". */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int by_image_id(const void *a, const void *b)
{
    return strcmp(base_name(*(char *const *)a), base_name(*(char *const *)b));
}

static int rle_encode(char **inputs, int n_inputs, const char *out_csv, pnx_rle_fmt fmt,
                      pnx_rle_csv_style style)
{
    png_list l = {0};
    int rc = collect_inputs(&l, inputs, n_inputs);
    pnx_rle_writer *w = NULL;
    if (!rc && l.n == 0)
        rc = pnx_fail(PNX_ENOTFOUND, "no .png file among the inputs");
    if (!rc) {
        qsort(l.paths, l.n, sizeof *l.paths, by_image_id);
        for (size_t i = 1; i < l.n && !rc; i++)
            if (by_image_id(&l.paths[i - 1], &l.paths[i]) == 0)
                rc = pnx_fail(PNX_EINVAL, "%s and %s give the same ImageId", l.paths[i - 1],
                              l.paths[i]);
    }
    if (!rc)
        rc = pnx_rle_writer_open(&w, out_csv, style);
    size_t positive = 0;
    pnx_progress *progress = rc ? NULL : pnx_progress_start("rle encode", l.n);
    for (size_t i = 0; i < l.n && !rc; i++) {
        pnx_image mask;
        if ((rc = pnx_png_read_gray(l.paths[i], &mask)))
            break;
        char *id = strdup(base_name(l.paths[i]));
        if (!id) {
            pnx_image_free(&mask);
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
            break;
        }
        id[strlen(id) - 4] = '\0';
        positive += any_foreground(&mask);
        rc = pnx_rle_writer_mask(w, id, &mask, fmt);
        if (rc)
            pnx_fail_prefix(rc, "%s", l.paths[i]);
        free(id);
        pnx_image_free(&mask);
        pnx_progress_add(progress, 1);
    }
    pnx_progress_finish(progress);
    if (!rc) {
        rc = pnx_rle_writer_commit(w);
        w = NULL;
    }
    pnx_rle_writer_abort(w);
    for (size_t i = 0; i < l.n; i++)
        free(l.paths[i]);
    free(l.paths);
    if (rc) {
        fprintf(stderr, "pneumoseg rle encode: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    printf("wrote %zu rows (%zu with a mask, %s RLE) to %s\n", l.n, positive,
           pnx_rle_fmt_name(fmt), out_csv);
    return PNX_EXIT_OK;
}

int pnx_cmd_rle(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"format", required_argument, 0, OPT_FORMAT},
        {"size", required_argument, 0, OPT_SIZE},
        {"id", required_argument, 0, OPT_ID},
        {"style", required_argument, 0, OPT_STYLE},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    pnx_rle_fmt fmt = PNX_RLE_FMT_RELATIVE;
    pnx_rle_csv_style style = PNX_RLE_CSV_KAGGLE;
    uint32_t width = SIIM_SIDE, height = SIIM_SIDE;
    char **ids = calloc((size_t)argc + 1, sizeof *ids);
    int n_ids = 0, opt, usage_error = 0;
    if (!ids) {
        fprintf(stderr, "pneumoseg rle: out of memory\n");
        return PNX_EXIT_FATAL;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case OPT_FORMAT: rc = pnx_rle_fmt_parse(optarg, &fmt); break;
        case OPT_SIZE: rc = parse_size(optarg, &width, &height); break;
        case OPT_ID: ids[n_ids++] = optarg; break;
        case OPT_STYLE:
            if (strcmp(optarg, "kaggle") == 0)
                style = PNX_RLE_CSV_KAGGLE;
            else if (strcmp(optarg, "stage1") == 0)
                style = PNX_RLE_CSV_STAGE1;
            else
                rc = pnx_fail(PNX_EINVAL, "--style '%s' is neither 'kaggle' nor 'stage1'", optarg);
            break;
        default:
            if (!pnx_cli_common_option(&common, opt, optarg))
                usage_error = 1;
        }
        if (rc) {
            fprintf(stderr, "pneumoseg rle: %s\n", pnx_errmsg());
            usage_error = 1;
        }
    }
    if (common.help && !usage_error) {
        usage(stdout);
        free(ids);
        return PNX_EXIT_OK;
    }
    const char *action = optind < argc ? argv[optind] : "";
    int decode = strcmp(action, "decode") == 0, encode = strcmp(action, "encode") == 0;
    int n_args = argc - optind - 1;
    if (!usage_error && !decode && !encode) {
        fprintf(stderr, "pneumoseg rle: say decode or encode\n");
        usage_error = 1;
    } else if (!usage_error && !common.out_dir) {
        fprintf(stderr, "pneumoseg rle %s: --out is required\n", action);
        usage_error = 1;
    } else if (!usage_error && decode && n_args != 1) {
        fprintf(stderr, "pneumoseg rle decode: give exactly one CSV\n");
        usage_error = 1;
    } else if (!usage_error && encode && n_args < 1) {
        fprintf(stderr, "pneumoseg rle encode: give a folder or PNG files\n");
        usage_error = 1;
    } else if (!usage_error && encode && n_ids) {
        fprintf(stderr, "pneumoseg rle encode: --id is for decode\n");
        usage_error = 1;
    }
    if (usage_error) {
        usage(stderr);
        free(ids);
        return PNX_EXIT_USAGE;
    }
    int status = decode ? rle_decode(argv[optind + 1], common.out_dir, fmt, width, height, ids, n_ids)
                        : rle_encode(argv + optind + 1, n_args, common.out_dir, fmt, style);
    free(ids);
    return status;
}
