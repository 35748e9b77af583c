/*
 * pipeline/report_stage.c — the HTML report of an evaluated score run; see
 * report_stage.h. The charts are SVG drawn here by hand: a few polylines
 * and rectangles do not justify a plotting library, and inline SVG keeps
 * the page a single file.
 */
#include "pipeline/report_stage.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/log.h"
#include "db/metrics.h"
#include "db/report.h"

#define HIST_BINS 10

/* Chart geometry in SVG user units. */
#define CHART_W 520
#define CHART_H 280
#define CHART_LEFT 60
#define CHART_RIGHT 16
#define CHART_TOP 34
#define CHART_BOTTOM 46

static const char PNG_SIGNATURE[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};

static const char PAGE_STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "margin:24px auto;max-width:1120px;color:#1d2330;background:#fff;padding:0 16px}"
    "h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:1px solid #d5d9e0;padding-bottom:4px;"
    "margin-top:32px}h3{margin:18px 0 8px}.sub{color:#5b6472;margin-top:0}.pixels{margin-top:10px}"
    "table{border-collapse:collapse;font-size:14px}td,th{padding:4px 10px;text-align:left;"
    "border-bottom:1px solid #eceef2;vertical-align:top}th{background:#f5f6f8}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d5d9e0;border-radius:6px;"
    "padding:10px 14px;min-width:150px}.card .v{font-size:1.5em;font-weight:600}"
    ".card .k{color:#5b6472;font-size:13px}.charts{display:flex;flex-wrap:wrap;gap:16px}"
    "svg{background:#fff;border:1px solid #eceef2;border-radius:4px}"
    ".gallery{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}"
    "figure{margin:0;border:1px solid #d5d9e0;border-radius:6px;padding:6px;background:#fafbfc}"
    "figure img{width:100%;height:auto;display:block;image-rendering:auto}"
    "figcaption{font-size:12px;margin-top:4px}figcaption .uid{font-family:ui-monospace,Menlo,"
    "Consolas,monospace;font-size:10.5px;word-break:break-all;color:#5b6472}"
    ".missing{aspect-ratio:1;display:flex;align-items:center;justify-content:center;"
    "text-align:center;background:#f3e6e6;color:#8a1c1c;font-size:12px;padding:8px;"
    "word-break:break-all}.none{color:#5b6472;font-style:italic}"
    "footer{margin-top:36px;color:#5b6472;font-size:12px}";

/* Writes s with the five HTML-special characters escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void put_text_or_dash(FILE *f, const char *s)
{
    if (s && *s)
        put_escaped(f, s);
    else
        fputs("—", f);
}

static void put_number(FILE *f, double v, int digits)
{
    if (isnan(v))
        fputs("n/a", f);
    else
        fprintf(f, "%.*f", digits, v);
}

static void put_base64(FILE *f, const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        fputc(alphabet[v >> 18 & 63], f);
        fputc(alphabet[v >> 12 & 63], f);
        fputc(alphabet[v >> 6 & 63], f);
        fputc(alphabet[v & 63], f);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        fputc(alphabet[v >> 18 & 63], f);
        fputc(alphabet[v >> 12 & 63], f);
        fputs("==", f);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        fputc(alphabet[v >> 18 & 63], f);
        fputc(alphabet[v >> 12 & 63], f);
        fputc(alphabet[v >> 6 & 63], f);
        fputc('=', f);
    }
}

/* ---- charts ---------------------------------------------------------- */

typedef struct chart_series {
    const char *name;
    const char *color;
    const double *y;          /* n values, NAN = no point */
} chart_series;

typedef struct chart_axes {
    double x0, x1, y0, y1;
} chart_axes;

static double map_x(const chart_axes *a, double x)
{
    double w = CHART_W - CHART_LEFT - CHART_RIGHT;
    if (a->x1 <= a->x0)
        return CHART_LEFT + w / 2;
    return CHART_LEFT + (x - a->x0) / (a->x1 - a->x0) * w;
}

static double map_y(const chart_axes *a, double y)
{
    double h = CHART_H - CHART_TOP - CHART_BOTTOM;
    return CHART_TOP + h - (y - a->y0) / (a->y1 - a->y0) * h;
}

static void svg_open(FILE *f, const char *title)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">"
               "<title>", CHART_W, CHART_H, CHART_W, CHART_H);
    put_escaped(f, title);
    fputs("</title><text x=\"", f);
    fprintf(f, "%d\" y=\"20\" font-size=\"14\" font-weight=\"600\">", CHART_LEFT);
    put_escaped(f, title);
    fputs("</text>\n", f);
}

/* A round tick step (1, 2, 2.5 or 5 × 10^k) giving about four intervals. */
static double nice_step(double range)
{
    double raw = range / 4;
    double magnitude = pow(10, floor(log10(raw)));
    double r = raw / magnitude;
    return magnitude * (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10);
}

/* The y grid with labels at y0 + k * y_step, the x axis line and the axis
 * titles. */
static void svg_axes(FILE *f, const chart_axes *a, double y_step, const char *x_title,
                     const char *y_title)
{
    for (int k = 0; k <= 20; k++) {
        double v = a->y0 + y_step * k;
        if (v > a->y1 + y_step * 1e-6)
            break;
        if (fabs(v) < y_step * 1e-9)
            v = 0;
        double y = map_y(a, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e3e6eb\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#5b6472\">%.3g</text>\n",
                CHART_LEFT, y, CHART_W - CHART_RIGHT, y, CHART_LEFT - 6, y + 4, v);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#8a93a3\"/>\n",
            CHART_LEFT, CHART_H - CHART_BOTTOM, CHART_W - CHART_RIGHT, CHART_H - CHART_BOTTOM);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#1d2330\">",
            CHART_LEFT + (CHART_W - CHART_LEFT - CHART_RIGHT) / 2, CHART_H - 8);
    put_escaped(f, x_title);
    fprintf(f, "</text><text transform=\"translate(14,%d) rotate(-90)\" text-anchor=\"middle\" "
               "fill=\"#1d2330\">", CHART_TOP + (CHART_H - CHART_TOP - CHART_BOTTOM) / 2);
    put_escaped(f, y_title);
    fputs("</text>\n", f);
}

/* A line chart over epochs 1..n (x[i]); the y range is fixed when
 * fixed_range, else fitted to the finite values. */
static void svg_line_chart(FILE *f, const char *title, const char *y_title, const double *x,
                           size_t n, const chart_series *series, int n_series, double y0,
                           double y1, int fixed_range)
{
    chart_axes a = {x[0], x[n - 1], y0, y1};
    if (!fixed_range) {
        double lo = INFINITY, hi = -INFINITY;
        for (int s = 0; s < n_series; s++)
            for (size_t i = 0; i < n; i++)
                if (isfinite(series[s].y[i])) {
                    lo = fmin(lo, series[s].y[i]);
                    hi = fmax(hi, series[s].y[i]);
                }
        if (!isfinite(lo)) {
            lo = 0;
            hi = 1;
        }
        if (hi - lo < 1e-12) {
            double pad = fabs(hi) > 0 ? fabs(hi) * 0.1 : 0.5;
            lo -= pad;
            hi += pad;
        }
        a.y0 = lo;
        a.y1 = hi;
    }
    double step = nice_step(a.y1 - a.y0);
    a.y0 = floor(a.y0 / step + 1e-9) * step;
    a.y1 = ceil(a.y1 / step - 1e-9) * step;
    svg_open(f, title);
    svg_axes(f, &a, step, "epoch", y_title);
    size_t x_step = n > 10 ? (n + 9) / 10 : 1;
    for (size_t i = 0; i < n; i += x_step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#5b6472\">%g</text>",
                map_x(&a, x[i]), CHART_H - CHART_BOTTOM + 16, x[i]);
    fputc('\n', f);
    for (int s = 0; s < n_series; s++) {
        /* NULL values break the line rather than dropping to zero. */
        int open = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(series[s].y[i])) {
                if (open)
                    fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            if (!open)
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                        series[s].color);
            open = 1;
            fprintf(f, "%.1f,%.1f ", map_x(&a, x[i]), map_y(&a, series[s].y[i]));
        }
        if (open)
            fputs("\"/>\n", f);
        for (size_t i = 0; n <= 40 && i < n; i++)
            if (isfinite(series[s].y[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>",
                        map_x(&a, x[i]), map_y(&a, series[s].y[i]), series[s].color);
        double ly = 14 + 14.0 * s;
        fprintf(f, "\n<rect x=\"%d\" y=\"%.1f\" width=\"14\" height=\"3\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%.1f\" fill=\"#1d2330\">",
                CHART_W - 140, ly - 4, series[s].color, CHART_W - 120, ly);
        put_escaped(f, series[s].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
}

static void svg_dice_histogram(FILE *f, const double *dice, size_t n)
{
    int64_t counts[HIST_BINS] = {0};
    int64_t top = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(dice[i]))
            continue;
        int bin = (int)floor(dice[i] * HIST_BINS);
        bin = bin < 0 ? 0 : bin >= HIST_BINS ? HIST_BINS - 1 : bin;
        counts[bin]++;
    }
    for (int b = 0; b < HIST_BINS; b++)
        top = counts[b] > top ? counts[b] : top;
    double step = top > 4 ? ceil(nice_step((double)top)) : 1;
    chart_axes a = {0, 1, 0, fmax(1, ceil((double)top * 1.1 / step) * step)};
    svg_open(f, "Dice per image");
    svg_axes(f, &a, step, "Dice (10 bins; the last holds 1.0)", "images");
    for (int b = 0; b <= HIST_BINS; b++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#5b6472\">%.1f</text>",
                map_x(&a, (double)b / HIST_BINS), CHART_H - CHART_BOTTOM + 16,
                (double)b / HIST_BINS);
    fputc('\n', f);
    double bar_w = map_x(&a, 1.0 / HIST_BINS) - map_x(&a, 0);
    for (int b = 0; b < HIST_BINS; b++) {
        double x = map_x(&a, (double)b / HIST_BINS) + 1;
        double y = map_y(&a, (double)counts[b]);
        double h = map_y(&a, 0) - y;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#3d6fb6\">"
                   "<title>%.1f–%.1f: %" PRId64 "</title></rect>",
                x, y, bar_w - 2, h, (double)b / HIST_BINS, (double)(b + 1) / HIST_BINS,
                counts[b]);
        if (counts[b] > 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#1d2330\">%"
                       PRId64 "</text>",
                    x + (bar_w - 2) / 2, y - 4, counts[b]);
        fputc('\n', f);
    }
    fputs("</svg>\n", f);
}

/* ---- sections -------------------------------------------------------- */

static void put_run_cell(FILE *f, const pnx_report_run *r, const char *field)
{
    fputs("<td class=\"hash\">", f);
    put_text_or_dash(f, r ? field : NULL);
    fputs("</td>", f);
}

static const char *train_link_text(int link)
{
    switch (link) {
    case PNX_REPORT_TRAIN_PARENT: return "the score run's parent run";
    case PNX_REPORT_TRAIN_SAME_MODEL: return "the train run that produced the scored model (same model SHA-256)";
    case PNX_REPORT_TRAIN_EARLIER: return "the latest train run before the score run (no recorded link)";
    default: return "no train run found";
    }
}

static void section_provenance(FILE *f, const pnx_report_run *score, const pnx_report_run *train,
                               int link)
{
    fputs("<h2>Provenance</h2>\n<p class=\"sub\">Train run: ", f);
    fputs(train_link_text(link), f);
    fputs(".</p>\n<table><tr><th></th><th>score run</th><th>train run</th></tr>\n", f);
    const pnx_report_run *runs[2] = {score, train};
    fputs("<tr><th>run id</th>", f);
    for (int i = 0; i < 2; i++) {
        if (runs[i])
            fprintf(f, "<td class=\"hash\">%" PRId64 "</td>", runs[i]->id);
        else
            fputs("<td class=\"hash\">—</td>", f);
    }
    fputs("</tr>\n", f);
#define ROW(label, member)                                                   \
    do {                                                                     \
        fputs("<tr><th>" label "</th>", f);                                  \
        for (int i = 0; i < 2; i++)                                          \
            put_run_cell(f, runs[i], runs[i] ? runs[i]->member : NULL);      \
        fputs("</tr>\n", f);                                                 \
    } while (0)
    ROW("status", status);
    ROW("started", started_at);
    ROW("finished", finished_at);
    ROW("config SHA-256", config_sha256);
    ROW("model SHA-256", model_sha256);
    ROW("software version", software_version);
    ROW("git revision", git_revision);
    ROW("host", host);
    ROW("device", device);
    ROW("message", message);
#undef ROW
    fputs("<tr><th>inputs ok / failed</th>", f);
    for (int i = 0; i < 2; i++) {
        if (runs[i])
            fprintf(f, "<td class=\"hash\">%" PRId64 " / %" PRId64 "</td>", runs[i]->n_ok,
                    runs[i]->n_failed);
        else
            fputs("<td class=\"hash\">—</td>", f);
    }
    fputs("</tr>\n</table>\n", f);
}

static void card(FILE *f, const char *key, double v, int digits, const char *detail)
{
    fputs("<div class=\"card\"><div class=\"v\">", f);
    put_number(f, v, digits);
    fputs("</div><div class=\"k\">", f);
    fputs(key, f);
    if (detail) {
        fputs("<br>", f);
        fputs(detail, f);
    }
    fputs("</div></div>\n", f);
}

static void section_summary(FILE *f, const pnx_metrics_summary *s)
{
    char found[96], empty[96], images[96];
    snprintf(images, sizeof images, "%" PRId64 " with pneumothorax, %" PRId64 " without",
             s->truth_positive, s->truth_negative);
    snprintf(found, sizeof found, "%" PRId64 " of %" PRId64 " found", s->true_positive,
             s->truth_positive);
    snprintf(empty, sizeof empty, "%" PRId64 " of %" PRId64 " left empty", s->true_negative,
             s->truth_negative);
    fputs("<h2>Summary</h2>\n<div class=\"cards\">\n", f);
    card(f, "images evaluated", (double)s->evaluated, 0, images);
    card(f, "mean Dice (competition)", s->mean_dice, 4, "1 when truth and prediction are empty");
    card(f, "mean Dice, positives", s->mean_dice_positive, 4, NULL);
    card(f, "mean recall, positives", s->mean_recall, 4, NULL);
    card(f, "sensitivity (image level)", s->sensitivity, 3, found);
    card(f, "specificity (image level)", s->specificity, 3, empty);
    fputs("</div>\n", f);
    fprintf(f, "<p class=\"sub pixels\">Pixels over the run: TP %" PRId64 ", FP %" PRId64 ", FN %" PRId64
               ".</p>\n", s->tp, s->fp, s->fn);
}

static int section_training(FILE *f, pnx_db *db, const pnx_report_run *train)
{
    fputs("<h2>Training</h2>\n", f);
    if (!train) {
        fputs("<p class=\"none\">No train run found for this score run.</p>\n", f);
        return 0;
    }
    pnx_report_epoch *epochs = NULL;
    size_t n = 0;
    int rc = pnx_db_report_epochs(db, train->id, &epochs, &n);
    if (rc)
        return rc;
    if (n == 0) {
        fprintf(f, "<p class=\"none\">Train run %" PRId64 " recorded no epochs.</p>\n", train->id);
        free(epochs);
        return 0;
    }
    double *cols = malloc(4 * n * sizeof *cols);
    if (!cols) {
        free(epochs);
        return pnx_fail(PNX_ENOMEM, "out of memory");
    }
    double *x = cols, *train_loss = cols + n, *val_loss = cols + 2 * n, *val_dice = cols + 3 * n;
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)epochs[i].epoch;
        train_loss[i] = epochs[i].train_loss;
        val_loss[i] = epochs[i].val_loss;
        val_dice[i] = epochs[i].val_dice;
    }
    fprintf(f, "<p class=\"sub\">Train run %" PRId64 ", %zu epochs.</p>\n<div class=\"charts\">\n",
            train->id, n);
    chart_series losses[2] = {{"train loss", "#3d6fb6", train_loss},
                              {"validation loss", "#d9822b", val_loss}};
    svg_line_chart(f, "Loss per epoch", "loss", x, n, losses, 2, 0, 0, 0);
    chart_series dice[1] = {{"validation Dice", "#2e8b57", val_dice}};
    svg_line_chart(f, "Validation Dice per epoch", "Dice", x, n, dice, 1, 0, 1, 1);
    fputs("</div>\n", f);
    free(cols);
    free(epochs);
    return 0;
}

static int section_histogram(FILE *f, pnx_db *db, int64_t run_id)
{
    double *dice = NULL;
    size_t n = 0;
    int rc = pnx_db_report_dice_values(db, run_id, &dice, &n);
    if (rc)
        return rc;
    fputs("<h2>Dice distribution</h2>\n", f);
    svg_dice_histogram(f, dice, n);
    free(dice);
    return 0;
}

/* Resolves a stored overlay path: absolute as is, relative from base_dir. */
static char *resolve_path(const char *base_dir, const char *path)
{
    if (path[0] == '/' || !base_dir || !base_dir[0])
        return strdup(path);
    return pnx_path_join(base_dir, path);
}

/* One gallery figure: the overlay embedded, or a "missing" box. */
static void gallery_figure(FILE *f, const pnx_report_case *c, const char *base_dir,
                           pnx_report_result *res)
{
    fputs("<figure>", f);
    char *data = NULL;
    size_t len = 0;
    const char *why = "no overlay recorded";
    char *path = c->overlay_path ? resolve_path(base_dir, c->overlay_path) : NULL;
    if (c->overlay_path) {
        why = "overlay missing";
        if (path && pnx_read_file(path, PNX_REPORT_MAX_IMAGE_BYTES, &data, &len) == 0 &&
            (len < sizeof PNG_SIGNATURE || memcmp(data, PNG_SIGNATURE, sizeof PNG_SIGNATURE))) {
            why = "overlay is not a PNG";
            free(data);
            data = NULL;
        }
        pnx_clear_error();
    }
    if (data) {
        fputs("<img alt=\"overlay\" src=\"data:image/png;base64,", f);
        put_base64(f, (const unsigned char *)data, len);
        fputs("\">", f);
        res->images_embedded++;
    } else {
        fputs("<div class=\"missing\">", f);
        fputs(why, f);
        if (c->overlay_path) {
            fputs(":<br>", f);
            put_escaped(f, c->overlay_path);
            pnx_log_warn("report: %s: %s", why, c->overlay_path);
        }
        fputs("</div>", f);
        res->images_missing++;
    }
    free(data);
    free(path);
    fputs("<figcaption><div class=\"uid\">", f);
    put_escaped(f, c->sop_instance_uid);
    fprintf(f, "</div>Dice %.4f · TP %" PRId64 " · FP %" PRId64 " · FN %" PRId64
               "<br>truth %s, prediction %s</figcaption></figure>\n",
            c->dice, c->tp, c->fp, c->fn, c->truth_positive ? "positive" : "empty",
            c->pred_positive ? "positive" : "empty");
}

static int section_gallery(FILE *f, pnx_db *db, int64_t run_id, const char *base_dir,
                           pnx_report_result *res)
{
    static const char *const titles[PNX_REPORT_N_KINDS] = {
        "Worst Dice among images with pneumothorax",
        "Best Dice among images with pneumothorax",
        "False positives (truth empty, most predicted pixels first)",
        "False negatives (pneumothorax missed, largest first)",
    };
    fputs("<h2>Gallery</h2>\n<p class=\"sub\">Overlays as the score stage drew them: the image "
          "in grey, the predicted mask in translucent red with its outline.</p>\n", f);
    for (int kind = 0; kind < PNX_REPORT_N_KINDS; kind++) {
        pnx_report_case *cases = NULL;
        size_t n = 0;
        int rc = pnx_db_report_cases(db, run_id, kind, PNX_REPORT_GALLERY_PER_GROUP, &cases, &n);
        if (rc)
            return rc;
        fprintf(f, "<h3>%s</h3>\n", titles[kind]);
        if (n == 0)
            fputs("<p class=\"none\">None.</p>\n", f);
        else
            fputs("<div class=\"gallery\">\n", f);
        for (size_t i = 0; i < n; i++)
            gallery_figure(f, &cases[i], base_dir, res);
        if (n)
            fputs("</div>\n", f);
        pnx_db_report_cases_free(cases, n);
    }
    return 0;
}

static int write_page(FILE *f, pnx_db *db, const pnx_report_run *score,
                      const pnx_report_run *train, int link, const pnx_metrics_summary *summary,
                      const char *base_dir, pnx_report_result *res)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">", f);
    fprintf(f, "<title>pneumoseg report: score run %" PRId64 "</title><style>%s</style>"
               "</head>\n<body>\n",
            score->id, PAGE_STYLE);
    fprintf(f, "<h1>pneumoseg report: score run %" PRId64 "</h1>\n<p class=\"sub\">Pneumothorax "
               "segmentation, evaluated against the ground truth. Database: ", score->id);
    put_escaped(f, pnx_db_path(db));
    fputs("</p>\n", f);
    section_summary(f, summary);
    section_provenance(f, score, train, link);
    int rc = section_training(f, db, train);
    if (!rc)
        rc = section_histogram(f, db, score->id);
    if (!rc)
        rc = section_gallery(f, db, score->id, base_dir, res);
    if (rc)
        return rc;
    char when[40] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "<footer>Written by <code>pneumoseg report</code> at %s from the database "
               "above; self-contained (no external files).</footer>\n</body></html>\n", when);
    return 0;
}

int pnx_report_write(pnx_db *db, const pnx_report_request *req, pnx_report_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t run_id = req->run_id;
    int rc = 0;
    if (run_id == 0 && (rc = pnx_db_report_latest_evaluated_run(db, &run_id)))
        return rc;
    if (run_id < 0)
        return pnx_fail(PNX_EINVAL, "run id %" PRId64 " is not valid", run_id);
    pnx_report_run score, train;
    if ((rc = pnx_db_report_run(db, run_id, &score)))
        return rc;
    if (strcmp(score.stage, "score") != 0)
        return pnx_fail(PNX_ENOTFOUND, "run %" PRId64 " is a %s run, not a score run", run_id,
                        score.stage);
    pnx_metrics_summary summary;
    if ((rc = pnx_db_metrics_summary(db, run_id, &summary)))
        return rc;
    if (summary.evaluated == 0)
        return pnx_fail(PNX_ENOTFOUND,
                        "score run %" PRId64 " has no evaluation: no instance_metrics rows "
                        "(run `pneumoseg evaluate --run %" PRId64 "` first)",
                        run_id, run_id);
    int64_t train_id = 0;
    int link = PNX_REPORT_TRAIN_NONE;
    if ((rc = pnx_db_report_train_run_for(db, &score, &train_id, &link)))
        return rc;
    if (train_id && (rc = pnx_db_report_run(db, train_id, &train)))
        return rc;

    res->run_id = run_id;
    res->train_run_id = train_id;
    res->evaluated = summary.evaluated;
    res->mean_dice = summary.mean_dice;
    int n;
    if (req->output_path)
        n = snprintf(res->path, sizeof res->path, "%s", req->output_path);
    else
        n = snprintf(res->path, sizeof res->path, "%s/report-run%" PRId64 ".html",
                     req->output_dir ? req->output_dir : ".", run_id);
    if (n < 0 || (size_t)n >= sizeof res->path)
        return pnx_fail(PNX_ERANGE, "report path too long");

    char folder[sizeof res->path];
    memcpy(folder, res->path, sizeof folder);
    char *slash = strrchr(folder, '/');
    if (slash && slash != folder) {
        *slash = '\0';
        if ((rc = pnx_mkdir_p(folder, 0777)))
            return pnx_fail_prefix(rc, "report");
    }
    pnx_atomic_file af = {0};
    if ((rc = pnx_atomic_open(&af, res->path)))
        return pnx_fail_prefix(rc, "report");
    rc = write_page(af.fp, db, &score, train_id ? &train : NULL, link, &summary, req->base_dir,
                    res);
    if (rc) {
        pnx_atomic_abort(&af);
        return rc;
    }
    if ((rc = pnx_atomic_commit(&af)))
        return pnx_fail_prefix(rc, "report %s", res->path);
    return 0;
}
