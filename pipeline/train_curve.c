/* pipeline/train_curve.c — the training curve's history text and SVG
 * picture; see train_curve.h. */
#include "pipeline/train_curve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

/* One record's text: "epoch,a,b,c" at most 20 + 3 × 24 characters. */
#define RECORD_MAX 128

int pnx_train_curve_add(pnx_train_curve *c, const pnx_train_curve_point *p)
{
    if (c->n > 0 && p->epoch <= c->points[c->n - 1].epoch)
        return pnx_fail(PNX_EINVAL, "training curve: epoch %lld after epoch %lld",
                        (long long)p->epoch, (long long)c->points[c->n - 1].epoch);
    if (c->n >= PNX_TRAIN_CURVE_MAX_POINTS)
        return pnx_fail(PNX_ERANGE, "training curve: more than %d epochs",
                        PNX_TRAIN_CURVE_MAX_POINTS);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        pnx_train_curve_point *grown = realloc(c->points, cap * sizeof *grown);
        if (!grown)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        c->points = grown;
        c->cap = cap;
    }
    c->points[c->n++] = *p;
    return PNX_OK;
}

void pnx_train_curve_free(pnx_train_curve *c)
{
    free(c->points);
    memset(c, 0, sizeof *c);
}

int pnx_train_curve_format(const pnx_train_curve *c, char **text)
{
    *text = malloc(c->n * RECORD_MAX + 1);
    if (!*text)
        return pnx_fail(PNX_ENOMEM, "out of memory");
    size_t used = 0;
    (*text)[0] = '\0';
    for (size_t i = 0; i < c->n; i++) {
        const pnx_train_curve_point *p = &c->points[i];
        used += (size_t)snprintf(*text + used, RECORD_MAX, "%s%lld,%.9g,%.9g,%.9g",
                                 i ? ";" : "", (long long)p->epoch, p->train_loss, p->val_loss,
                                 p->val_dice);
    }
    return PNX_OK;
}

static int parse_number(const char **s, double *out)
{
    char *end = NULL;
    *out = strtod(*s, &end);
    if (end == *s)
        return 0;
    *s = end;
    return 1;
}

int pnx_train_curve_parse(pnx_train_curve *c, const char *text)
{
    pnx_train_curve parsed = {0};
    const char *s = text;
    while (*s) {
        pnx_train_curve_point p;
        char *end = NULL;
        long long epoch = strtoll(s, &end, 10);
        int ok = end != s && epoch >= 1 && *end == ',';
        s = end;
        ok = ok && (s++, parse_number(&s, &p.train_loss)) && *s == ',' &&
             (s++, parse_number(&s, &p.val_loss)) && *s == ',' &&
             (s++, parse_number(&s, &p.val_dice)) && (*s == ';' || *s == '\0');
        if (!ok) {
            pnx_train_curve_free(&parsed);
            return pnx_fail(PNX_EFORMAT, "%s: malformed record at offset %zu",
                            PNX_TRAIN_CURVE_META, (size_t)(s - text));
        }
        p.epoch = epoch;
        int rc = pnx_train_curve_add(&parsed, &p);
        if (rc) {
            pnx_train_curve_free(&parsed);
            return pnx_fail_prefix(PNX_EFORMAT, "%s", PNX_TRAIN_CURVE_META);
        }
        if (*s == ';' && *++s == '\0') {
            pnx_train_curve_free(&parsed);
            return pnx_fail(PNX_EFORMAT, "%s: ends with ';'", PNX_TRAIN_CURVE_META);
        }
    }
    pnx_train_curve_free(c);
    *c = parsed;
    return PNX_OK;
}

/* ---- the picture --------------------------------------------------------------- */

enum { SVG_W = 780, SVG_H = 320, PANEL_W = 300, PANEL_H = 220, MARGIN_TOP = 40,
       MARGIN_LEFT = 60, PANEL_GAP = 60 };

typedef struct panel {
    double x0, y0;        /* top-left corner of the plot area */
    double lo, hi;        /* value range of the y axis */
    int64_t first, last;  /* epochs on the x axis */
} panel;

static double panel_x(const panel *p, int64_t epoch)
{
    double span = p->last > p->first ? (double)(p->last - p->first) : 1.0;
    return p->x0 + PANEL_W * (double)(epoch - p->first) / span;
}

static double panel_y(const panel *p, double v)
{
    double span = p->hi > p->lo ? p->hi - p->lo : 1.0;
    return p->y0 + PANEL_H * (1.0 - (v - p->lo) / span);
}

static void draw_axes(FILE *fp, const panel *p, const char *title)
{
    fprintf(fp,
            "<rect x='%.1f' y='%.1f' width='%d' height='%d' fill='none' stroke='#888'/>\n"
            "<text x='%.1f' y='%.1f' font-size='14' text-anchor='middle'>%s</text>\n"
            "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>\n"
            "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>\n"
            "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%lld</text>\n"
            "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%lld</text>\n"
            "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>epoch</text>\n",
            p->x0, p->y0, PANEL_W, PANEL_H, p->x0 + PANEL_W / 2.0, p->y0 - 12, title,
            p->x0 - 6, p->y0 + 4, p->hi, p->x0 - 6, p->y0 + PANEL_H, p->lo, p->x0,
            p->y0 + PANEL_H + 16, (long long)p->first, p->x0 + PANEL_W, p->y0 + PANEL_H + 16,
            (long long)p->last, p->x0 + PANEL_W / 2.0, p->y0 + PANEL_H + 30);
}

enum series { SERIES_TRAIN_LOSS, SERIES_VAL_LOSS, SERIES_VAL_DICE };

static double series_value(const pnx_train_curve_point *p, enum series s)
{
    switch (s) {
    case SERIES_TRAIN_LOSS: return p->train_loss;
    case SERIES_VAL_LOSS: return p->val_loss;
    default: return p->val_dice;
    }
}

/* One series as a polyline; values that were not measured are skipped. */
static void draw_series(FILE *fp, const panel *p, const pnx_train_curve *c, enum series field,
                        const char *colour, const char *label, int legend_row)
{
    fprintf(fp, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colour);
    for (size_t i = 0; i < c->n; i++) {
        double v = series_value(&c->points[i], field);
        if (isfinite(v))
            fprintf(fp, "%.1f,%.1f ", panel_x(p, c->points[i].epoch), panel_y(p, v));
    }
    fprintf(fp, "'/>\n");
    double ly = p->y0 + 14 + 14 * legend_row;
    fprintf(fp,
            "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'/>\n"
            "<text x='%.1f' y='%.1f' font-size='11'>%s</text>\n",
            p->x0 + PANEL_W - 90, ly - 4, p->x0 + PANEL_W - 72, ly - 4, colour,
            p->x0 + PANEL_W - 68, ly, label);
}

int pnx_train_curve_write_svg(const pnx_train_curve *c, const char *path)
{
    panel losses = {MARGIN_LEFT, MARGIN_TOP, INFINITY, -INFINITY, 1, 1};
    if (c->n > 0) {
        losses.first = c->points[0].epoch;
        losses.last = c->points[c->n - 1].epoch;
    }
    for (size_t i = 0; i < c->n; i++) {
        const double v[2] = {c->points[i].train_loss, c->points[i].val_loss};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) {
                losses.lo = fmin(losses.lo, v[k]);
                losses.hi = fmax(losses.hi, v[k]);
            }
    }
    if (!isfinite(losses.lo)) {
        losses.lo = 0.0;
        losses.hi = 1.0;
    }
    losses.lo = fmin(losses.lo, 0.0);
    panel dice = losses;
    dice.x0 = MARGIN_LEFT + PANEL_W + PANEL_GAP;
    dice.lo = 0.0;
    dice.hi = 1.0;

    pnx_atomic_file af;
    int rc = pnx_atomic_open(&af, path);
    if (rc)
        return rc;
    FILE *fp = af.fp;
    fprintf(fp,
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n",
            SVG_W, SVG_H);
    draw_axes(fp, &losses, "loss");
    draw_series(fp, &losses, c, SERIES_TRAIN_LOSS, "#1f77b4", "train", 0);
    draw_series(fp, &losses, c, SERIES_VAL_LOSS, "#ff7f0e", "validation", 1);
    draw_axes(fp, &dice, "validation Dice");
    draw_series(fp, &dice, c, SERIES_VAL_DICE, "#2ca02c", "Dice", 0);
    fprintf(fp, "</svg>\n");
    rc = pnx_atomic_commit(&af);
    return rc ? pnx_fail_prefix(rc, "training curve %s", path) : PNX_OK;
}
