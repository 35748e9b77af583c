/*
 * db/db_internal.h — what the files of db/ share; not for other modules.
 */
#ifndef PNX_DB_DB_INTERNAL_H
#define PNX_DB_DB_INTERNAL_H

#include <sqlite3.h>

#include "db/db.h"

struct pnx_db {
    sqlite3 *sql;
    char *path;
    int readonly;
};

/* Records "what: <sqlite message>" as the thread's error; returns PNX_EDB. */
int pnx_db_fail(pnx_db *db, const char *what);

/* Prepares sql; on failure records the error and returns PNX_EDB. */
int pnx_db_prepare(pnx_db *db, const char *sql, sqlite3_stmt **stmt);

/* Binds a C string or NULL as text / NULL. */
int pnx_db_bind_text(sqlite3_stmt *stmt, int index, const char *text);

#endif
