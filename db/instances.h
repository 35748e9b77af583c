/*
 * db/instances.h — the ingest stage's tables: instances (one row per SOP
 * Instance UID, status ok or error) and ingest_errors (files that failed
 * before their SOP Instance UID was known, one row per path).
 *
 * Writes are upserts, so indexing the same tree again leaves the same
 * rows: an instance is keyed by its UID, an unreadable file by its path. A
 * file that is now readable loses its ingest_errors row; a file whose
 * instance was indexed before but now fails before its UID can be read
 * marks that instance row as error. The caller opens the transaction.
 */
#ifndef PNX_DB_INSTANCES_H
#define PNX_DB_INSTANCES_H

#include <stdint.h>

#include "db/db.h"

/* One instances row. Strings may be NULL or "" (stored as NULL). */
typedef struct pnx_instance_row {
    const char *sop_instance_uid;  /* required */
    const char *series_instance_uid;
    const char *study_instance_uid;
    const char *patient_id;
    const char *sop_class_uid;
    const char *modality;
    const char *view_position;
    const char *path;              /* required */
    int64_t file_size;             /* < 0: NULL */
    const char *transfer_syntax;
    const char *photometric;
    int64_t rows;                  /* 0: NULL */
    int64_t columns;               /* 0: NULL */
    int bits_allocated;            /* 0: NULL */
    int bits_stored;               /* 0: NULL */
    double pixel_spacing_row;      /* stored only when has_spacing */
    double pixel_spacing_col;
    int has_spacing;
    int lossy;                     /* 0/1; -1: NULL */
    const char *error_kind;        /* NULL: status 'ok'; otherwise 'error' */
    const char *error;
} pnx_instance_row;

typedef struct pnx_db_instances_writer pnx_db_instances_writer;

/* Prepared statements for one run; run_id 0 stores NULL. */
int pnx_db_instances_writer_open(pnx_db_instances_writer **out, pnx_db *db, int64_t run_id);

/* Inserts or replaces the row of row->sop_instance_uid and forgets any
 * ingest_errors row of the same path. Two files of one run with the same
 * UID: an ok row is not replaced by a failed one, and otherwise the smaller
 * path stays, so the result does not depend on the order in which parallel
 * workers finish (a failed row displaced this way moves to ingest_errors).
 * Rows of earlier runs are always replaced. */
int pnx_db_instance_put(pnx_db_instances_writer *w, const pnx_instance_row *row);
/* The same; *stored tells whether this row was kept (0: another file of
 * this run holds the UID). */
int pnx_db_instance_put_kept(pnx_db_instances_writer *w, const pnx_instance_row *row,
                             int *stored);

/* Records a file that failed before its UID was known (ingest_errors,
 * keyed by path) and marks an instances row of the same path, if any, as
 * error with the same kind and message. file_size < 0 stores NULL. */
int pnx_db_ingest_error_put(pnx_db_instances_writer *w, const char *path, int64_t file_size,
                            const char *error_kind, const char *error);

void pnx_db_instances_writer_close(pnx_db_instances_writer *w);

/* Counts over the instances rows written by run_id (0 = all rows):
 * instances with status ok, with status error, distinct studies and
 * series among the ok ones; and ingest_errors rows of that run. Any
 * pointer may be NULL. */
int pnx_db_instances_counts(pnx_db *db, int64_t run_id, int64_t *ok, int64_t *errors,
                            int64_t *studies, int64_t *series, int64_t *file_errors);

/* Calls fn for every instance with status ok, ordered by SOP Instance UID
 * (only the UID, path, study, series, patient, view, rows and columns are
 * filled). A non-zero return of fn stops the walk and is returned. */
int pnx_db_instances_each_ok(pnx_db *db,
                             int (*fn)(void *ctx, const pnx_instance_row *row), void *ctx);

#endif
