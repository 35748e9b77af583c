/*
 * db/db.h — the SQLite ledger: opening, migrations, transactions, runs.
 *
 * Every SQL statement of pneumoseg lives under db/. This header is the core;
 * each table family has its own header beside it (db/instances.h,
 * db/dataset.h, …) implemented in a file of the same name.
 *
 * A pnx_db is one connection. Only the main process opens one (SQLite
 * connections must not cross fork()), and only one writing connection
 * exists per run. Opening sets WAL journal mode, foreign keys on, a busy
 * timeout, and runs the migrations up to PNX_DB_SCHEMA_VERSION; a database
 * written by a newer pneumoseg is refused with a clear error.
 */
#ifndef PNX_DB_DB_H
#define PNX_DB_DB_H

#include <stdint.h>

#define PNX_DB_SCHEMA_VERSION 1
#define PNX_DB_BUSY_TIMEOUT_MS 10000

typedef struct pnx_db pnx_db;

enum pnx_db_open_flags {
    PNX_DB_READWRITE = 0,  /* create when missing, migrate */
    PNX_DB_READONLY = 1,   /* must exist; no migration */
    PNX_DB_NO_MIGRATE = 2, /* read-write, but leave an old schema as it is */
};

/* Opens (creating the file and its folder when missing) and migrates. */
int pnx_db_open(pnx_db **out, const char *path, int flags);
void pnx_db_close(pnx_db *db);
const char *pnx_db_path(const pnx_db *db);

/* The schema version stored in the file (PRAGMA user_version). */
int pnx_db_schema_version(pnx_db *db, int *version);
/* Upgrades to PNX_DB_SCHEMA_VERSION; *from receives the version before. */
int pnx_db_migrate(pnx_db *db, int *from);

/* Transactions. begin uses BEGIN IMMEDIATE so a writer never deadlocks. */
int pnx_db_begin(pnx_db *db);
int pnx_db_commit(pnx_db *db);
int pnx_db_rollback(pnx_db *db);

/* Runs one or more SQL statements without results (used by db/ itself and
 * by tests; stage code calls the typed functions instead). */
int pnx_db_exec(pnx_db *db, const char *sql);

/* One row of the runs table. */
typedef struct pnx_run_info {
    const char *stage;          /* "ingest", "dataset", "train", "score", … */
    const char *config_text;
    const char *config_sha256;
    const char *model_sha256;   /* may be NULL */
    const char *device;         /* may be NULL */
    int64_t parent_run_id;      /* 0 = none */
} pnx_run_info;

/* Inserts a 'running' row with version, git revision and host filled in. */
int pnx_db_run_begin(pnx_db *db, const pnx_run_info *info, int64_t *run_id);
/* status: "ok", "partial", "failed" or "interrupted". message may be NULL. */
int pnx_db_run_finish(pnx_db *db, int64_t run_id, const char *status,
                      int64_t n_ok, int64_t n_failed, const char *message);

/* 1 when runs holds a row with this id and stage, else 0 (in *exists). */
int pnx_db_run_exists(pnx_db *db, int64_t run_id, const char *stage, int *exists);

/* Number of rows in a table or view of the schema (name checked against the
 * schema, never interpolated blindly). */
int pnx_db_count_rows(pnx_db *db, const char *table, int64_t *count);

/* Lists the tables and views of the schema in order: calls fn for each. */
int pnx_db_list_objects(pnx_db *db,
                        int (*fn)(void *ctx, const char *name, const char *type),
                        void *ctx);

#endif
