/*
 * pipeline/train_streams.h — the RNG streams of the train stage (internal to
 * pipeline/train_*.c). Each (purpose, epoch, position) has its own stream
 * of the configured seed, so nothing depends on how many numbers an earlier
 * epoch drew, and a resumed run draws what the uninterrupted one drew.
 */
#ifndef PNX_PIPELINE_TRAIN_STREAMS_H
#define PNX_PIPELINE_TRAIN_STREAMS_H

#define PNX_TRAIN_STREAM_AUGMENT 0ull /* | epoch << 32 | position */
#define PNX_TRAIN_STREAM_ORDER (1ull << 62)
#define PNX_TRAIN_STREAM_POSITIVES (2ull << 62)
#define PNX_TRAIN_STREAM_NEGATIVES (3ull << 62)
/* Epochs fit in 30 bits so that epoch << 32 stays below the tags. */
#define PNX_TRAIN_MAX_EPOCH ((1ll << 30) - 1)

#endif
