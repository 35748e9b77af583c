/*
 * pipeline/cmd_ingest.c — `pneumoseg ingest DIR`: index a DICOM tree into
 * the instances table, decoding every file in isolated workers, optionally
 * writing what the model will see as 8-bit PNGs.
 *
 * Only this (main) process touches the database; results are committed in
 * batches so that a killed run keeps what it did, and a rerun upserts the
 * same rows.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/progress.h"
#include "db/instances.h"
#include "ingest/ingest.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/instance_row.h"
#include "pipeline/png_io.h"

#define COMMIT_EVERY 256

enum { OPT_PNG = PNX_OPT_FIRST_COMMAND_OPTION, OPT_WORKERS };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg ingest [OPTIONS] DIR\n"
            "\n"
            "Indexes every DICOM file under DIR (recursively) into the `instances` table:\n"
            "metadata, and whether the pixels decode (status ok, or error with its kind).\n"
            "Files are parsed and decoded in isolated worker processes, so a malformed\n"
            "file becomes an error row and the batch goes on. Running it again on the\n"
            "same tree leaves the same rows. Files that are not DICOM and not named\n"
            "*.dcm are skipped (counted, not errors).\n"
            "\n"
            "Options:\n"
            "  --png OUTDIR    also write each decoded image as an 8-bit grayscale PNG\n"
            "                  OUTDIR/<SOPInstanceUID>.png (what the model sees before\n"
            "                  resizing)\n"
            "  --workers N     decode worker processes (default: ingest.workers of the\n"
            "                  configuration; 0 = one per CPU)\n"
            "Limits per file come from the `ingest` section of the configuration\n"
            "(max_pixels, max_bits, memory_limit_mb, timeout_s).\n"
            "\n" PNX_CLI_COMMON_HELP);
}

/* UIDs are digits and dots; anything else must not become a file name. */
static int uid_is_safe_name(const char *uid)
{
    if (!*uid || uid[0] == '.')
        return 0;
    for (const char *p = uid; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return 0;
    return 1;
}

typedef struct ingest_run {
    pnx_db *db;
    pnx_db_instances_writer *writer;
    const char *png_dir;
    int64_t n_ok, n_failed, png_written;
    int64_t by_kind[PNX_INGEST_ERR_KIND_COUNT];
    int in_tx;
} ingest_run;

/* Records one result; returns non-zero only for database failures. */
static int record(ingest_run *run, const pnx_decode_result *r)
{
    int rc;
    if (r->error_kind == PNX_INGEST_OK && run->png_dir) {
        if (uid_is_safe_name(r->meta.sop_uid)) {
            char name[PNX_UID_MAX + 8];
            snprintf(name, sizeof name, "%s.png", r->meta.sop_uid);
            char *path = pnx_path_join(run->png_dir, name);
            if (!path)
                return pnx_fail(PNX_ENOMEM, "PNG path");
            if (pnx_png_write_gray(path, &r->image, 0) == 0)
                run->png_written++;
            else
                pnx_log_warn("%s: %s", r->path, pnx_errmsg());
            free(path);
        } else {
            pnx_log_warn("%s: SOP Instance UID is not a safe file name; no PNG written",
                         r->path);
        }
    }
    if (r->error_kind == PNX_INGEST_OK) {
        run->n_ok++;
    } else {
        run->n_failed++;
        run->by_kind[r->error_kind]++;
        pnx_log_warn("%s: %s: %s", r->path, pnx_ingest_error_kind_name(r->error_kind),
                     r->error);
    }
    if (r->meta.sop_uid[0]) {
        pnx_instance_row row;
        pnx_instance_row_from_result(
            &row, r,
            r->error_kind == PNX_INGEST_OK ? NULL : pnx_ingest_error_kind_name(r->error_kind),
            r->error_kind == PNX_INGEST_OK ? NULL : r->error);
        int stored = 0;
        rc = pnx_db_instance_put_kept(run->writer, &row, &stored);
        if (rc == 0 && !stored) {
            pnx_log_warn("%s: SOP Instance UID %s is also in another file of this run",
                         r->path, r->meta.sop_uid);
            if (r->error_kind != PNX_INGEST_OK) {
                char msg[PNX_INGEST_MSG_MAX + 64];
                snprintf(msg, sizeof msg, "%s (its SOP Instance UID is also in another file)",
                         r->error);
                rc = pnx_db_ingest_error_put(run->writer, r->path,
                                             r->meta.file_size > 0 ? r->meta.file_size : -1,
                                             pnx_ingest_error_kind_name(r->error_kind), msg);
            }
        }
    } else {
        rc = pnx_db_ingest_error_put(run->writer, r->path,
                                     r->meta.file_size >= 0 ? r->meta.file_size : -1,
                                     pnx_ingest_error_kind_name(r->error_kind), r->error);
    }
    if (rc)
        pnx_fail_prefix(rc, "%s", r->path);
    return rc;
}

static int decode_all(ingest_run *run, pnx_decode_pool *pool, const pnx_ingest_file_list *files)
{
    for (size_t i = 0; i < files->count; i++) {
        int rc = pnx_decode_pool_submit(pool, i, files->files[i].path, PNX_DECODE_PIXELS);
        if (rc)
            return rc;
    }
    pnx_progress *progress = pnx_progress_start("ingest", files->count);
    int rc = 0;
    size_t since_commit = 0;
    while (rc == 0 && pnx_decode_pool_pending(pool) > 0) {
        if (!run->in_tx) {
            if ((rc = pnx_db_begin(run->db)))
                break;
            run->in_tx = 1;
        }
        pnx_decode_result r;
        if ((rc = pnx_decode_pool_next(pool, &r)))
            break;
        rc = record(run, &r);
        pnx_decode_result_free(&r);
        pnx_progress_add(progress, 1);
        if (rc == 0 && ++since_commit >= COMMIT_EVERY) {
            rc = pnx_db_commit(run->db);
            run->in_tx = 0;
            since_commit = 0;
        }
    }
    if (run->in_tx) {
        if (rc == 0)
            rc = pnx_db_commit(run->db);
        else
            pnx_db_rollback(run->db);
        run->in_tx = 0;
    }
    pnx_progress_finish(progress);
    return rc;
}

static void print_summary(const ingest_run *run, const pnx_ingest_file_list *files,
                          int64_t instances, int64_t studies, int64_t series)
{
    printf("files: %zu DICOM candidates (%zu other files skipped)\n", files->count,
           files->skipped);
    printf("decoded: %lld ok, %lld failed\n", (long long)run->n_ok, (long long)run->n_failed);
    printf("instances: %lld ok in %lld studies, %lld series\n", (long long)instances,
           (long long)studies, (long long)series);
    if (run->png_dir)
        printf("png: %lld written to %s\n", (long long)run->png_written, run->png_dir);
    if (run->n_failed > 0) {
        printf("errors by kind:");
        for (int k = 1; k < PNX_INGEST_ERR_KIND_COUNT; k++)
            if (run->by_kind[k])
                printf(" %s %lld", pnx_ingest_error_kind_name(k), (long long)run->by_kind[k]);
        printf("\n");
    }
}

int pnx_cmd_ingest(int argc, char **argv)
{
    static const struct option longopts[] = {
        PNX_CLI_COMMON_LONGOPTS,
        {"png", required_argument, 0, OPT_PNG},
        {"workers", required_argument, 0, OPT_WORKERS},
        {0, 0, 0, 0},
    };
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    const char *png_dir = NULL;
    long workers = -1;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == OPT_PNG) {
            png_dir = optarg;
        } else if (opt == OPT_WORKERS) {
            char *end;
            errno = 0;
            workers = strtol(optarg, &end, 10);
            if (errno || *end || workers < 0 || workers > 256) {
                fprintf(stderr, "pneumoseg ingest: --workers takes 0..256, not '%s'\n", optarg);
                return PNX_EXIT_USAGE;
            }
        } else if (!pnx_cli_common_option(&common, opt, optarg)) {
            usage(stderr);
            return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return PNX_EXIT_USAGE;
    }
    const char *root = argv[optind];

    pnx_context ctx;
    int rc = pnx_context_load(&ctx, &common);
    if (rc) {
        fprintf(stderr, "pneumoseg ingest: %s\n", pnx_errmsg());
        return pnx_exit_status_for(rc);
    }
    pnx_ingest_limits limits = {
        .max_pixels = ctx.cfg.ingest.max_pixels,
        .max_bits = ctx.cfg.ingest.max_bits,
        .memory_limit_mb = ctx.cfg.ingest.memory_limit_mb,
        .timeout_s = ctx.cfg.ingest.timeout_s,
    };
    unsigned nworkers = (unsigned)(workers >= 0 ? workers : ctx.cfg.ingest.workers);

    pnx_ingest_file_list files;
    memset(&files, 0, sizeof files);
    pnx_decode_pool *pool = NULL;
    ingest_run run;
    memset(&run, 0, sizeof run);
    run.png_dir = png_dir;
    int exit_status = PNX_EXIT_FATAL;

    if ((rc = pnx_ingest_walk(root, &files)))
        goto done;
    if (png_dir && (rc = pnx_mkdir_p(png_dir, 0777)))
        goto done;
    pnx_log_info("ingest: %zu candidate files under %s", files.count, root);
    /* Workers are forked before the database is opened, so they never hold
     * a copy of its connection. */
    if ((rc = pnx_decode_pool_create(&pool, nworkers, &limits)))
        goto done;
    if ((rc = pnx_context_begin_run(&ctx, "ingest", NULL, NULL)))
        goto done;
    run.db = ctx.db;
    if ((rc = pnx_db_instances_writer_open(&run.writer, ctx.db, ctx.run_id)))
        goto done;
    rc = decode_all(&run, pool, &files);
    pnx_db_instances_writer_close(run.writer);
    run.writer = NULL;
    if (rc)
        goto done;

    int64_t instances = 0, studies = 0, series = 0;
    if ((rc = pnx_db_instances_counts(ctx.db, ctx.run_id, &instances, NULL, &studies, &series,
                                      NULL)))
        goto done;
    char message[128];
    snprintf(message, sizeof message, "%zu files, %lld ok, %lld failed", files.count,
             (long long)run.n_ok, (long long)run.n_failed);
    if ((rc = pnx_context_finish_run(&ctx, 0, run.n_ok, run.n_failed, message)))
        goto done;
    print_summary(&run, &files, instances, studies, series);
    exit_status = run.n_failed > 0 ? PNX_EXIT_PARTIAL : PNX_EXIT_OK;

done:
    if (rc) {
        fprintf(stderr, "pneumoseg ingest: %s\n", pnx_errmsg());
        exit_status = pnx_exit_status_for(rc);
        if (ctx.db && ctx.run_id > 0)
            pnx_context_finish_run(&ctx, 1, run.n_ok, run.n_failed, pnx_errmsg());
    }
    pnx_db_instances_writer_close(run.writer);
    pnx_decode_pool_destroy(pool);
    pnx_ingest_file_list_free(&files);
    pnx_context_close(&ctx);
    return exit_status;
}
