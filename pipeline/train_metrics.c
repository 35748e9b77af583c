/* pipeline/train_metrics.c — validation scores by the competition's rules;
 * see train_stage.h. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/train_stage.h"

void pnx_val_metrics_add(pnx_val_metrics *vm, const float *logits, const float *target,
                         size_t pixels)
{
    int64_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < pixels; i++) {
        int pred = logits[i] > 0.0f; /* sigmoid(logit) > PNX_TRAIN_THRESHOLD */
        int truth = target[i] > 0.5f;
        tp += pred && truth;
        fp += pred && !truth;
        fn += !pred && truth;
    }
    double dice = tp + fp + fn == 0 ? 1.0 : 2.0 * (double)tp / (double)(2 * tp + fp + fn);
    vm->images++;
    vm->dice_sum += dice;
    if (tp + fn > 0) {
        vm->positives++;
        vm->dice_positive_sum += dice;
        vm->recall_sum += (double)tp / (double)(tp + fn);
    }
}

double pnx_val_metrics_dice(const pnx_val_metrics *vm)
{
    return vm->images ? vm->dice_sum / (double)vm->images : NAN;
}

double pnx_val_metrics_dice_positive(const pnx_val_metrics *vm)
{
    return vm->positives ? vm->dice_positive_sum / (double)vm->positives : NAN;
}

double pnx_val_metrics_recall(const pnx_val_metrics *vm)
{
    return vm->positives ? vm->recall_sum / (double)vm->positives : NAN;
}

double pnx_val_metrics_loss(const pnx_val_metrics *vm)
{
    return vm->images ? vm->loss_sum / (double)vm->images : NAN;
}
