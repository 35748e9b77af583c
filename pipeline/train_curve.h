/*
 * pipeline/train_curve.h — the training curve: per-epoch losses and
 * validation Dice, kept in the checkpoint's metadata so that it survives a
 * resume, and drawn as an SVG picture beside the checkpoint.
 *
 * The metadata text is "epoch,train_loss,val_loss,val_dice" records joined
 * by ';', numbers printed with %.9g ("nan" for what was not measured).
 * Printing parsed values gives the same text again, so a resumed run writes
 * the same bytes as an uninterrupted one.
 */
#ifndef PNX_PIPELINE_TRAIN_CURVE_H
#define PNX_PIPELINE_TRAIN_CURVE_H

#include <stddef.h>
#include <stdint.h>

#define PNX_TRAIN_CURVE_META "pneumoseg.history"
#define PNX_TRAIN_CURVE_MAX_POINTS 100000

typedef struct pnx_train_curve_point {
    int64_t epoch;
    double train_loss;
    double val_loss;  /* NAN: no validation */
    double val_dice;
} pnx_train_curve_point;

typedef struct pnx_train_curve {
    pnx_train_curve_point *points;
    size_t n;
    size_t cap;
} pnx_train_curve;

/* Appends a point; epochs must increase. */
int pnx_train_curve_add(pnx_train_curve *c, const pnx_train_curve_point *p);
void pnx_train_curve_free(pnx_train_curve *c);

/* The metadata text (malloc'd; "" for no points). */
int pnx_train_curve_format(const pnx_train_curve *c, char **text);
/* Replaces c's points by those of text; PNX_EFORMAT on anything else. */
int pnx_train_curve_parse(pnx_train_curve *c, const char *text);

/* Draws the curve (losses left, validation Dice right) as an SVG file,
 * written atomically. */
int pnx_train_curve_write_svg(const pnx_train_curve *c, const char *path);

#endif
