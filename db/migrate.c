/* db/migrate.c — schema migrations, run on open; see db.h.
 *
 * migrations[k] takes a database from version k to k + 1. Each runs in one
 * transaction together with the new PRAGMA user_version, so a crash leaves
 * the old version intact. */
#include "db/db_internal.h"

#include <stdio.h>

#include "common/error.h"
#include "db/schema_v1.sql.h"

static const char *const migrations[] = {
    PNX_SCHEMA_V1, /* 0 → 1: the first schema */
};

_Static_assert(sizeof migrations / sizeof migrations[0] == PNX_DB_SCHEMA_VERSION,
               "one migration per schema version");

int pnx_db_migrate(pnx_db *db, int *from)
{
    int version = 0;
    int rc = pnx_db_schema_version(db, &version);
    if (rc)
        return rc;
    *from = version;
    if (version > PNX_DB_SCHEMA_VERSION)
        return pnx_fail(PNX_EDB, "database has schema version %d, newer than %d", version,
                        PNX_DB_SCHEMA_VERSION);
    for (int v = version; v < PNX_DB_SCHEMA_VERSION; v++) {
        if ((rc = pnx_db_begin(db)))
            return rc;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if ((rc = pnx_db_exec(db, migrations[v])) || (rc = pnx_db_exec(db, pragma)) ||
            (rc = pnx_db_commit(db))) {
            pnx_db_rollback(db);
            return pnx_fail_prefix(rc, "migrate schema %d to %d", v, v + 1);
        }
    }
    return PNX_OK;
}
