/*
 * db/report.c — the read-only queries of `pneumoseg report`; see report.h.
 */
#include "db/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "db/db_internal.h"

static const char SQL_LATEST_EVALUATED[] =
    "SELECT r.id FROM runs r WHERE r.stage = 'score'"
    " AND EXISTS (SELECT 1 FROM instance_metrics m WHERE m.run_id = r.id)"
    " ORDER BY r.id DESC LIMIT 1";

static const char SQL_RUN[] =
    "SELECT id, stage, status, started_at, finished_at, config_sha256, model_sha256,"
    " software_version, git_revision, host, device, message, parent_run_id, n_ok, n_failed"
    " FROM runs WHERE id = ?1";

static const char SQL_TRAIN_SAME_MODEL[] =
    "SELECT id FROM runs WHERE stage = 'train' AND model_sha256 = ?1 AND id < ?2"
    " ORDER BY id DESC LIMIT 1";

static const char SQL_TRAIN_EARLIER[] =
    "SELECT id FROM runs WHERE stage = 'train' AND id < ?1 ORDER BY id DESC LIMIT 1";

static const char SQL_EPOCHS[] =
    "SELECT epoch, train_loss, val_loss, val_dice, learning_rate, seconds"
    " FROM train_epochs WHERE run_id = ?1 ORDER BY epoch";

static const char SQL_DICE[] = "SELECT dice FROM instance_metrics WHERE run_id = ?1";

/* One statement per gallery group, indexed by enum pnx_report_case_kind. */
#define CASE_COLUMNS                                                                      \
    "SELECT m.sop_instance_uid, p.overlay_path, m.dice, m.tp, m.fp, m.fn,"                \
    " m.truth_positive, m.pred_positive FROM instance_metrics m"                          \
    " LEFT JOIN predictions p ON p.run_id = m.run_id AND p.sop_instance_uid = m.sop_instance_uid" \
    " WHERE m.run_id = ?1 "
static const char *const SQL_CASES[PNX_REPORT_N_KINDS] = {
    CASE_COLUMNS "AND m.truth_positive = 1 ORDER BY m.dice ASC, m.sop_instance_uid LIMIT ?2",
    CASE_COLUMNS "AND m.truth_positive = 1 ORDER BY m.dice DESC, m.sop_instance_uid LIMIT ?2",
    CASE_COLUMNS "AND m.truth_positive = 0 AND m.pred_positive = 1"
                 " ORDER BY m.fp DESC, m.sop_instance_uid LIMIT ?2",
    CASE_COLUMNS "AND m.truth_positive = 1 AND m.pred_positive = 0"
                 " ORDER BY m.fn DESC, m.sop_instance_uid LIMIT ?2",
};

static void copy_column(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", text ? (const char *)text : "");
}

static double column_or_nan(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

/* Runs a query that returns one id, binding text_param (when given) then
 * param to the statement's parameters it has: 0 and *id, or *id = 0 when
 * there is no row. */
static int query_id(pnx_db *db, const char *sql, int64_t param, const char *text_param,
                    int64_t *id)
{
    sqlite3_stmt *st;
    *id = 0;
    int rc = pnx_db_prepare(db, sql, &st);
    if (rc)
        return rc;
    int bind = text_param ? pnx_db_bind_text(st, 1, text_param) : 0;
    int index = text_param ? 2 : 1;
    if (bind || (sqlite3_bind_parameter_count(st) >= index &&
                 sqlite3_bind_int64(st, index, param) != SQLITE_OK)) {
        sqlite3_finalize(st);
        return pnx_db_fail(db, "report: bind");
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (step != SQLITE_DONE)
        rc = pnx_db_fail(db, "report: query runs");
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_report_latest_evaluated_run(pnx_db *db, int64_t *run_id)
{
    int rc = query_id(db, SQL_LATEST_EVALUATED, 0, NULL, run_id);
    if (rc)
        return rc;
    if (*run_id == 0)
        return pnx_fail(PNX_ENOTFOUND,
                        "no evaluated score run in the database (run `pneumoseg evaluate` first)");
    return 0;
}

int pnx_db_report_run(pnx_db *db, int64_t run_id, pnx_report_run *row)
{
    memset(row, 0, sizeof *row);
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, SQL_RUN, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        row->id = sqlite3_column_int64(st, 0);
        copy_column(st, 1, row->stage, sizeof row->stage);
        copy_column(st, 2, row->status, sizeof row->status);
        copy_column(st, 3, row->started_at, sizeof row->started_at);
        copy_column(st, 4, row->finished_at, sizeof row->finished_at);
        copy_column(st, 5, row->config_sha256, sizeof row->config_sha256);
        copy_column(st, 6, row->model_sha256, sizeof row->model_sha256);
        copy_column(st, 7, row->software_version, sizeof row->software_version);
        copy_column(st, 8, row->git_revision, sizeof row->git_revision);
        copy_column(st, 9, row->host, sizeof row->host);
        copy_column(st, 10, row->device, sizeof row->device);
        copy_column(st, 11, row->message, sizeof row->message);
        row->parent_run_id = sqlite3_column_int64(st, 12);
        row->n_ok = sqlite3_column_int64(st, 13);
        row->n_failed = sqlite3_column_int64(st, 14);
    } else if (step == SQLITE_DONE) {
        rc = pnx_fail(PNX_ENOTFOUND, "no run %lld in the database", (long long)run_id);
    } else {
        rc = pnx_db_fail(db, "report: read run");
    }
    sqlite3_finalize(st);
    return rc;
}

int pnx_db_report_train_run_for(pnx_db *db, const pnx_report_run *score, int64_t *train_id,
                                int *link)
{
    *train_id = 0;
    *link = PNX_REPORT_TRAIN_NONE;
    if (score->parent_run_id > 0) {
        pnx_report_run parent;
        int rc = pnx_db_report_run(db, score->parent_run_id, &parent);
        if (rc && rc != PNX_ENOTFOUND)
            return rc;
        if (!rc && strcmp(parent.stage, "train") == 0) {
            *train_id = parent.id;
            *link = PNX_REPORT_TRAIN_PARENT;
            return 0;
        }
    }
    int rc = 0;
    if (score->model_sha256[0]) {
        rc = query_id(db, SQL_TRAIN_SAME_MODEL, score->id, score->model_sha256, train_id);
        if (rc)
            return rc;
        if (*train_id) {
            *link = PNX_REPORT_TRAIN_SAME_MODEL;
            return 0;
        }
    }
    rc = query_id(db, SQL_TRAIN_EARLIER, score->id, NULL, train_id);
    if (!rc && *train_id)
        *link = PNX_REPORT_TRAIN_EARLIER;
    return rc;
}

/* Grows *array (of elem bytes) to hold at least need elements. */
static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t next = *cap ? *cap * 2 : 64;
    while (next < need)
        next *= 2;
    void *p = realloc(*array, next * elem);
    if (!p)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    *array = p;
    *cap = next;
    return 0;
}

int pnx_db_report_epochs(pnx_db *db, int64_t run_id, pnx_report_epoch **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, SQL_EPOCHS, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    size_t cap = 0;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)rows, &cap, *n + 1, sizeof **rows)))
            break;
        pnx_report_epoch *e = &(*rows)[(*n)++];
        e->epoch = sqlite3_column_int64(st, 0);
        e->train_loss = column_or_nan(st, 1);
        e->val_loss = column_or_nan(st, 2);
        e->val_dice = column_or_nan(st, 3);
        e->learning_rate = column_or_nan(st, 4);
        e->seconds = column_or_nan(st, 5);
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "report: read train_epochs");
    sqlite3_finalize(st);
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

int pnx_db_report_dice_values(pnx_db *db, int64_t run_id, double **values, size_t *n)
{
    *values = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, SQL_DICE, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    size_t cap = 0;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)values, &cap, *n + 1, sizeof **values)))
            break;
        (*values)[(*n)++] = sqlite3_column_double(st, 0);
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "report: read instance_metrics");
    sqlite3_finalize(st);
    if (rc) {
        free(*values);
        *values = NULL;
        *n = 0;
    }
    return rc;
}

static char *column_strdup(sqlite3_stmt *st, int col, int *oom)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    if (!text)
        return NULL;
    char *copy = strdup((const char *)text);
    if (!copy)
        *oom = 1;
    return copy;
}

int pnx_db_report_cases(pnx_db *db, int64_t run_id, int kind, int limit,
                        pnx_report_case **cases, size_t *n)
{
    *cases = NULL;
    *n = 0;
    if (kind < 0 || kind >= PNX_REPORT_N_KINDS || limit < 0)
        return pnx_fail(PNX_EINVAL, "report: bad gallery group %d", kind);
    sqlite3_stmt *st;
    int rc = pnx_db_prepare(db, SQL_CASES[kind], &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, limit);
    size_t cap = 0;
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)cases, &cap, *n + 1, sizeof **cases)))
            break;
        pnx_report_case *c = &(*cases)[(*n)++];
        memset(c, 0, sizeof *c);
        int oom = 0;
        c->sop_instance_uid = column_strdup(st, 0, &oom);
        c->overlay_path = column_strdup(st, 1, &oom);
        c->dice = sqlite3_column_double(st, 2);
        c->tp = sqlite3_column_int64(st, 3);
        c->fp = sqlite3_column_int64(st, 4);
        c->fn = sqlite3_column_int64(st, 5);
        c->truth_positive = sqlite3_column_int(st, 6);
        c->pred_positive = sqlite3_column_int(st, 7);
        if (oom || !c->sop_instance_uid)
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
    }
    if (!rc && step != SQLITE_DONE)
        rc = pnx_db_fail(db, "report: read gallery cases");
    sqlite3_finalize(st);
    if (rc) {
        pnx_db_report_cases_free(*cases, *n);
        *cases = NULL;
        *n = 0;
    }
    return rc;
}

void pnx_db_report_cases_free(pnx_report_case *cases, size_t n)
{
    for (size_t i = 0; i < n && cases; i++) {
        free(cases[i].sop_instance_uid);
        free(cases[i].overlay_path);
    }
    free(cases);
}
