/* pipeline/cmd_db.c — `pneumoseg db info|migrate`: look at and upgrade the
 * ledger. */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "db/db.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pneumoseg db info [OPTIONS]\n"
            "       pneumoseg db migrate [OPTIONS]\n"
            "\n"
            "info     prints the database path, its schema version and the number of\n"
            "         rows of every table and view. Opens the database read-only.\n"
            "migrate  upgrades the database to the schema of this pneumoseg (creating\n"
            "         it when missing). Opening a database from a newer pneumoseg is\n"
            "         refused.\n"
            "\n"
            "The database is --db FILE, else `database` of the configuration, else\n"
            "<output>/pneumoseg.sqlite. Without a configuration file, --db is needed.\n"
            "\n" PNX_CLI_COMMON_HELP);
}

typedef struct info_ctx {
    pnx_db *db;
    int rc;
} info_ctx;

static int print_object(void *p, const char *name, const char *type)
{
    info_ctx *ic = p;
    int64_t count = 0;
    int rc = pnx_db_count_rows(ic->db, name, &count);
    if (rc)
        return rc;
    printf("  %-5s %-20s %lld rows\n", type, name, (long long)count);
    return PNX_OK;
}

static int db_info(const char *path)
{
    pnx_db *db = NULL;
    int rc = pnx_db_open(&db, path, PNX_DB_READONLY);
    if (rc)
        return rc;
    int version = 0;
    if ((rc = pnx_db_schema_version(db, &version)) == PNX_OK) {
        printf("database: %s\nschema version: %d (this pneumoseg: %d)\n", path, version,
               PNX_DB_SCHEMA_VERSION);
        info_ctx ic = {db, 0};
        rc = pnx_db_list_objects(db, print_object, &ic);
    }
    pnx_db_close(db);
    return rc;
}

static int db_migrate(const char *path)
{
    pnx_db *db = NULL;
    int rc = pnx_db_open(&db, path, PNX_DB_NO_MIGRATE);
    if (rc)
        return rc;
    int from = 0;
    rc = pnx_db_migrate(db, &from);
    if (rc == PNX_OK) {
        if (from == PNX_DB_SCHEMA_VERSION)
            printf("%s: schema version %d, already current\n", path, from);
        else
            printf("%s: migrated schema version %d to %d\n", path, from, PNX_DB_SCHEMA_VERSION);
    }
    pnx_db_close(db);
    return rc;
}

int pnx_cmd_db(int argc, char **argv)
{
    static const struct option longopts[] = {PNX_CLI_COMMON_LONGOPTS, {0, 0, 0, 0}};
    pnx_cli_common common;
    pnx_cli_common_init(&common);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, PNX_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (!pnx_cli_common_option(&common, opt, optarg)) {
            usage(stderr);
            return PNX_EXIT_USAGE;
        }
    }
    if (common.help) {
        usage(stdout);
        return PNX_EXIT_OK;
    }
    if (optind != argc - 1 ||
        (strcmp(argv[optind], "info") != 0 && strcmp(argv[optind], "migrate") != 0)) {
        usage(stderr);
        return PNX_EXIT_USAGE;
    }
    const char *action = argv[optind];

    /* --db alone needs no configuration file; otherwise the YAML names it. */
    pnx_context ctx;
    memset(&ctx, 0, sizeof ctx);
    const char *path = common.db_path;
    int have_ctx = 0;
    if (!path) {
        int rc = pnx_context_load(&ctx, &common);
        if (rc) {
            fprintf(stderr, "pneumoseg db: %s\n", pnx_errmsg());
            return pnx_exit_status_for(rc);
        }
        have_ctx = 1;
        path = ctx.cfg.database;
    }
    int rc = strcmp(action, "info") == 0 ? db_info(path) : db_migrate(path);
    if (rc)
        fprintf(stderr, "pneumoseg db %s: %s\n", action, pnx_errmsg());
    if (have_ctx)
        pnx_context_close(&ctx);
    return rc ? pnx_exit_status_for(rc) : PNX_EXIT_OK;
}
