/* pipeline/cli.c — common options and the run context; see cli.h. */
#include "pipeline/cli.h"

#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/sha256.h"
#include "pipeline/commands.h"

void pnx_cli_common_init(pnx_cli_common *c)
{
    memset(c, 0, sizeof *c);
    c->config_path = "pipeline.yaml";
}

int pnx_cli_common_option(pnx_cli_common *c, int opt, const char *arg)
{
    switch (opt) {
    case PNX_OPT_CONFIG: c->config_path = arg; return 1;
    case PNX_OPT_DB: c->db_path = arg; return 1;
    case PNX_OPT_OUT: c->out_dir = arg; return 1;
    case 'h': c->help = 1; return 1;
    case 'v':
        c->verbosity = c->verbosity < 0 ? 1 : c->verbosity + 1;
        pnx_log_set_level(PNX_LOG_INFO + c->verbosity);
        return 1;
    case 'q':
        c->verbosity = -1;
        pnx_log_set_level(PNX_LOG_QUIET);
        return 1;
    default: return 0;
    }
}

int pnx_context_load(pnx_context *ctx, const pnx_cli_common *c)
{
    memset(ctx, 0, sizeof *ctx);
    int rc = pnx_config_load(&ctx->cfg, c->config_path);
    if (rc)
        return rc;
    if (c->out_dir && (rc = pnx_config_set_string(&ctx->cfg.output_dir, c->out_dir)))
        goto fail;
    if (c->db_path && (rc = pnx_config_set_string(&ctx->cfg.database, c->db_path)))
        goto fail;
    if ((rc = pnx_config_resolve_paths(&ctx->cfg)))
        goto fail;
    return PNX_OK;
fail:
    pnx_config_free(&ctx->cfg);
    return rc;
}

int pnx_context_load_or_defaults(pnx_context *ctx, const pnx_cli_common *c, int config_given)
{
    if (config_given || access(c->config_path, F_OK) == 0)
        return pnx_context_load(ctx, c);
    memset(ctx, 0, sizeof *ctx);
    int rc = pnx_config_defaults(&ctx->cfg);
    if (!rc && c->out_dir)
        rc = pnx_config_set_string(&ctx->cfg.output_dir, c->out_dir);
    if (!rc && c->db_path)
        rc = pnx_config_set_string(&ctx->cfg.database, c->db_path);
    if (!rc)
        rc = pnx_config_resolve_paths(&ctx->cfg);
    if (!rc)
        rc = pnx_sha256_hex("", 0, ctx->cfg.sha256);
    if (rc)
        pnx_config_free(&ctx->cfg);
    return rc;
}

int pnx_context_open_db(pnx_context *ctx)
{
    if (ctx->db)
        return PNX_OK;
    return pnx_db_open(&ctx->db, ctx->cfg.database, PNX_DB_READWRITE);
}

int pnx_context_begin_run(pnx_context *ctx, const char *stage, const char *model_sha256,
                          const char *device)
{
    int rc = pnx_context_open_db(ctx);
    if (rc)
        return rc;
    pnx_run_info info = {
        .stage = stage,
        .config_text = ctx->cfg.text,
        .config_sha256 = ctx->cfg.sha256,
        .model_sha256 = model_sha256,
        .device = device,
    };
    return pnx_db_run_begin(ctx->db, &info, &ctx->run_id);
}

int pnx_context_finish_run(pnx_context *ctx, int fatal, int64_t n_ok, int64_t n_failed,
                           const char *message)
{
    if (!ctx->db || ctx->run_id <= 0)
        return PNX_OK;
    const char *status = fatal ? "failed" : n_failed > 0 ? "partial" : "ok";
    return pnx_db_run_finish(ctx->db, ctx->run_id, status, n_ok, n_failed, message);
}

void pnx_context_close(pnx_context *ctx)
{
    if (!ctx)
        return;
    pnx_db_close(ctx->db);
    pnx_config_free(&ctx->cfg);
    memset(ctx, 0, sizeof *ctx);
}

int pnx_exit_status_for(int rc)
{
    switch (rc) {
    case PNX_OK: return PNX_EXIT_OK;
    case PNX_EINVAL:
    case PNX_ECONFIG: return PNX_EXIT_USAGE;
    default: return PNX_EXIT_FATAL;
    }
}
