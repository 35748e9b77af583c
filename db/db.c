/* db/db.c — opening the ledger, transactions and the runs table; see db.h. */
#include "db/db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "pneumoseg_version.h"

int pnx_db_fail(pnx_db *db, const char *what)
{
    const char *msg = db && db->sql ? sqlite3_errmsg(db->sql) : "no connection";
    return pnx_fail(PNX_EDB, "%s: %s", what, msg);
}

int pnx_db_prepare(pnx_db *db, const char *sql, sqlite3_stmt **stmt)
{
    *stmt = NULL;
    if (sqlite3_prepare_v2(db->sql, sql, -1, stmt, NULL) != SQLITE_OK)
        return pnx_db_fail(db, "prepare");
    return PNX_OK;
}

int pnx_db_bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    int rc = text ? sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT)
                  : sqlite3_bind_null(stmt, index);
    return rc == SQLITE_OK ? PNX_OK : pnx_fail(PNX_EDB, "bind parameter %d failed", index);
}

int pnx_db_exec(pnx_db *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db->sql, sql, NULL, NULL, &err) != SQLITE_OK) {
        int rc = pnx_fail(PNX_EDB, "%s", err ? err : sqlite3_errmsg(db->sql));
        sqlite3_free(err);
        return rc;
    }
    return PNX_OK;
}

int pnx_db_begin(pnx_db *db) { return pnx_db_exec(db, "BEGIN IMMEDIATE"); }
int pnx_db_commit(pnx_db *db) { return pnx_db_exec(db, "COMMIT"); }

int pnx_db_rollback(pnx_db *db)
{
    if (sqlite3_get_autocommit(db->sql))
        return PNX_OK;
    return pnx_db_exec(db, "ROLLBACK");
}

const char *pnx_db_path(const pnx_db *db) { return db ? db->path : NULL; }

/* Creates the folder that will hold the database file. */
static int make_parent_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return PNX_OK;
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    memcpy(dir, path, n);
    dir[n] = '\0';
    int rc = pnx_mkdir_p(dir, 0755);
    free(dir);
    return rc;
}

int pnx_db_open(pnx_db **out, const char *path, int flags)
{
    *out = NULL;
    int readonly = flags & PNX_DB_READONLY;
    if (readonly && access(path, F_OK) != 0)
        return pnx_fail(PNX_ENOTFOUND, "database %s does not exist", path);
    if (!readonly) {
        int rc = make_parent_folder(path);
        if (rc)
            return pnx_fail_prefix(rc, "database %s", path);
    }
    pnx_db *db = calloc(1, sizeof *db);
    if (!db)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    db->path = malloc(strlen(path) + 1);
    if (!db->path) {
        free(db);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    strcpy(db->path, path);
    db->readonly = readonly;

    int oflags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = PNX_OK;
    if (sqlite3_open_v2(path, &db->sql, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = pnx_fail(PNX_EDB, "open database %s: %s", path,
                      db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    if (sqlite3_busy_timeout(db->sql, PNX_DB_BUSY_TIMEOUT_MS) != SQLITE_OK) {
        rc = pnx_db_fail(db, "set busy timeout");
        goto fail;
    }
    /* WAL lets readers (sqlite3, dashboards) query while a run writes;
     * synchronous=NORMAL is durable at every commit in WAL mode except for
     * the last transactions before a power loss, never corrupting. */
    if (!readonly && (rc = pnx_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")))
        goto fail;
    if ((rc = pnx_db_exec(db, "PRAGMA foreign_keys=ON;")))
        goto fail;
    int version = 0;
    if ((rc = pnx_db_schema_version(db, &version)))
        goto fail;
    if (version > PNX_DB_SCHEMA_VERSION) {
        rc = pnx_fail(PNX_EDB,
                      "database %s has schema version %d, newer than this pneumoseg "
                      "understands (%d): use a newer pneumoseg",
                      path, version, PNX_DB_SCHEMA_VERSION);
        goto fail;
    }
    if (!readonly && !(flags & PNX_DB_NO_MIGRATE)) {
        int from = 0;
        if ((rc = pnx_db_migrate(db, &from)))
            goto fail;
    } else if (readonly && version < PNX_DB_SCHEMA_VERSION) {
        rc = pnx_fail(PNX_EDB, "database %s has schema version %d; run `pneumoseg db migrate`",
                      path, version);
        goto fail;
    }
    *out = db;
    return PNX_OK;
fail:
    pnx_db_close(db);
    return rc;
}

void pnx_db_close(pnx_db *db)
{
    if (!db)
        return;
    if (db->sql)
        sqlite3_close_v2(db->sql);
    free(db->path);
    free(db);
}

int pnx_db_schema_version(pnx_db *db, int *version)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, "PRAGMA user_version", &st);
    if (rc)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return pnx_db_fail(db, "read schema version");
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return PNX_OK;
}

int pnx_db_run_begin(pnx_db *db, const pnx_run_info *info, int64_t *run_id)
{
    char host[256] = "unknown";
    if (gethostname(host, sizeof host - 1) != 0)
        strcpy(host, "unknown");
    host[sizeof host - 1] = '\0';
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "INSERT INTO runs (stage, config_text, config_sha256, model_sha256,"
                            " software_version, git_revision, host, device, parent_run_id)"
                            " VALUES (?,?,?,?,?,?,?,?,?)",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, info->stage)) ||
        (rc = pnx_db_bind_text(st, 2, info->config_text ? info->config_text : "")) ||
        (rc = pnx_db_bind_text(st, 3, info->config_sha256 ? info->config_sha256 : "")) ||
        (rc = pnx_db_bind_text(st, 4, info->model_sha256)) ||
        (rc = pnx_db_bind_text(st, 5, PNEUMOSEG_VERSION)) ||
        (rc = pnx_db_bind_text(st, 6, PNEUMOSEG_GIT_REVISION)) ||
        (rc = pnx_db_bind_text(st, 7, host)) || (rc = pnx_db_bind_text(st, 8, info->device))) {
        sqlite3_finalize(st);
        return rc;
    }
    if (info->parent_run_id > 0)
        sqlite3_bind_int64(st, 9, info->parent_run_id);
    else
        sqlite3_bind_null(st, 9);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, "insert run");
    sqlite3_finalize(st);
    if (rc == PNX_OK)
        *run_id = sqlite3_last_insert_rowid(db->sql);
    return rc;
}

int pnx_db_run_finish(pnx_db *db, int64_t run_id, const char *status, int64_t n_ok,
                      int64_t n_failed, const char *message)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "UPDATE runs SET status = ?, n_ok = ?, n_failed = ?, message = ?,"
                            " finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, status)) || (rc = pnx_db_bind_text(st, 4, message))) {
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_bind_int64(st, 2, n_ok);
    sqlite3_bind_int64(st, 3, n_failed);
    sqlite3_bind_int64(st, 5, run_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = pnx_db_fail(db, "finish run");
    else if (sqlite3_changes(db->sql) != 1)
        rc = pnx_fail(PNX_ENOTFOUND, "no run with id %lld", (long long)run_id);
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_list_objects(pnx_db *db, int (*fn)(void *ctx, const char *name, const char *type),
                        void *ctx)
{
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT name, type FROM sqlite_schema WHERE type IN ('table','view')"
                            " AND name NOT LIKE 'sqlite_%' ORDER BY type, rowid",
                            &st);
    if (rc)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1));
        if (rc)
            break;
    }
    if (rc == PNX_OK && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "list schema");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_count_rows(pnx_db *db, const char *table, int64_t *count)
{
    /* The name is checked against the schema before it is quoted into SQL. */
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db,
                            "SELECT 1 FROM sqlite_schema WHERE type IN ('table','view')"
                            " AND name = ?",
                            &st);
    if (rc)
        return rc;
    if ((rc = pnx_db_bind_text(st, 1, table))) {
        sqlite3_finalize(st);
        return rc;
    }
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found)
        return pnx_fail(PNX_ENOTFOUND, "no table or view named %s", table);
    char *sql = sqlite3_mprintf("SELECT COUNT(*) FROM \"%w\"", table);
    if (!sql)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    rc = pnx_db_prepare(db, sql, &st);
    sqlite3_free(sql);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    else
        rc = pnx_db_fail(db, "count rows");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_run_exists(pnx_db *db, int64_t run_id, const char *stage, int *exists)
{
    *exists = 0;
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, "SELECT 1 FROM runs WHERE id = ? AND stage = ?", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    if ((rc = pnx_db_bind_text(st, 2, stage))) {
        sqlite3_finalize(st);
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *exists = 1;
    else if (step != SQLITE_DONE)
        rc = pnx_db_fail(db, "look up run");
    sqlite3_finalize(st);
    return rc;
}
