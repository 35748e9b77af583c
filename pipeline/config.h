/*
 * pipeline/config.h — pipeline.yaml as typed structs.
 *
 * pnx_config_load() parses the YAML with libyaml and validates it strictly
 * against one table of keys (pipeline/config_keys.c): an unknown key, a wrong
 * type, a value out of range or a missing required value is an error
 * "file:line:column: key.path: what is wrong", with the closest valid key
 * suggested for a typo. Keys left out take the defaults below (documented in
 * docs/pipeline.md). Strings are owned by the config and freed by
 * pnx_config_free(). Paths are kept as written (relative paths are relative
 * to the working directory, like every command-line path).
 */
#ifndef PNX_PIPELINE_CONFIG_H
#define PNX_PIPELINE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on the YAML document itself: libyaml has no depth limit and is
 * quadratic on deep nesting, so both are checked before and during parsing. */
#define PNX_CONFIG_MAX_BYTES (1u << 20)
#define PNX_CONFIG_MAX_DEPTH 16

enum pnx_stage {
    PNX_STAGE_DATASET,
    PNX_STAGE_TRAIN,
    PNX_STAGE_SCORE,
    PNX_STAGE_EVALUATE,
    PNX_STAGE_REPORT,
    PNX_STAGE_COUNT
};
#define PNX_MAX_STAGES 8

enum pnx_rle_format { PNX_RLE_RELATIVE = 0, PNX_RLE_ABSOLUTE = 1 };
enum pnx_device { PNX_DEVICE_AUTO = 0, PNX_DEVICE_CPU = 1, PNX_DEVICE_CUDA = 2 };
enum pnx_precision { PNX_PREC_FP32 = 0, PNX_PREC_TF32, PNX_PREC_BF16 };
/* Values equal model/cuda/cuda_backend.h's enum pnx_cuda_algo_search. */
enum pnx_cudnn_search { PNX_CUDNN_HEURISTIC = 0, PNX_CUDNN_MEASURED = 1 };
enum pnx_negative_seg { PNX_NEGSEG_EMPTY = 0, PNX_NEGSEG_NONE = 1 };

typedef struct pnx_ingest_config {
    int workers;              /* decode worker processes; 0 = CPU count */
    int64_t max_pixels;       /* rows × columns × frames budget per file */
    int max_bits;             /* Bits Allocated accepted (8..16) */
    int memory_limit_mb;      /* RLIMIT_AS of a worker */
    int timeout_s;            /* CPU/wall seconds per file before the worker is killed */
} pnx_ingest_config;

typedef struct pnx_dataset_config {
    char *dicom_dir;          /* required */
    char *rle_csv;            /* required */
    int rle_format;           /* enum pnx_rle_format */
    int image_size;           /* training resolution, multiple of 16 */
    int split_by_count;       /* 0: ratios, 1: counts */
    double split_ratio[3];    /* train, val, test; sum 1 */
    int64_t split_count[3];   /* train, val, test */
    int64_t seed;
    char *cache_dir;          /* train.safetensors, val…, test… */
    char *png_dir;            /* NULL = no PNG pairs */
} pnx_dataset_config;

typedef struct pnx_augment_config {
    int enabled;
    double hflip;             /* probability */
    double shift;             /* fraction of the side */
    double scale;             /* ± fraction */
    double rotate_deg;        /* ± degrees */
    double brightness;        /* ± additive, in [0,1] intensity */
    double contrast;          /* ± multiplicative */
    double gamma;             /* ± exponent */
} pnx_augment_config;

typedef struct pnx_train_config {
    int device;               /* enum pnx_device */
    int precision;            /* enum pnx_precision */
    int deterministic;
    int cudnn_search;         /* enum pnx_cudnn_search */
    int base_width;           /* 64 = the seed */
    int epochs;
    int batch_size;
    double learning_rate;
    double weight_decay;
    double bce_weight;
    double dice_weight;
    int shuffle;
    double positive_fraction; /* 0 = natural share of positives */
    int64_t seed;
    int threads;              /* 0 = CPU count */
    pnx_augment_config augment;
    char *cache_dir;          /* where the dataset stage wrote its caches */
    char *model;              /* output checkpoint path */
    char *init;               /* NULL or a checkpoint to start from */
    int resume;
    int checkpoint_every;     /* epochs between checkpoints */
} pnx_train_config;

typedef struct pnx_triplet_config {
    int enabled;
    double top_threshold;
    int64_t min_area;
    double bottom_threshold;
} pnx_triplet_config;

typedef struct pnx_score_config {
    char *dicom_dir;          /* required */
    char *model;              /* checkpoint */
    int device;
    int precision;
    int batch_size;
    int threads;
    double threshold;
    int64_t min_component_area; /* pixels at native size; 0 = keep all */
    int tta_hflip;
    pnx_triplet_config triplet;
    int seg_enabled;
    int seg_negative;         /* enum pnx_negative_seg */
    int overlay_enabled;
    int overlay_size;         /* 0 = native size, else longest side */
    int secondary_capture;
    char *submission_csv;     /* NULL = none */
    int submission_format;    /* enum pnx_rle_format */
    int commit_every;         /* predictions per database transaction */
} pnx_score_config;

typedef struct pnx_evaluate_config {
    char *rle_csv;            /* NULL = the ground_truth table */
    int rle_format;
    int64_t run;              /* score run id; 0 = the latest score run */
} pnx_evaluate_config;

typedef struct pnx_config {
    char *path;               /* the file it came from */
    char *text;               /* its full text (stored in runs.config_text) */
    size_t text_len;
    char sha256[65];          /* of text */
    char *output_dir;
    char *database;
    int stages[PNX_MAX_STAGES];
    int n_stages;
    pnx_ingest_config ingest;
    pnx_dataset_config dataset;
    pnx_train_config train;
    pnx_score_config score;
    pnx_evaluate_config evaluate;
} pnx_config;

/* Fills cfg with every default (no file read). */
int pnx_config_defaults(pnx_config *cfg);
/* Loads and validates path. On failure cfg is freed and the message reads
 * "path:line:column: key.path: problem". */
int pnx_config_load(pnx_config *cfg, const char *path);
/* Same, from text in memory; name is used in messages. */
int pnx_config_load_text(pnx_config *cfg, const char *name, const char *text, size_t len);
void pnx_config_free(pnx_config *cfg);

const char *pnx_stage_name(int stage);
/* Returns the stage for a name, or -1. */
int pnx_stage_from_name(const char *name);

/* Fills the paths left unset from the output folder: database =
 * <output>/pneumoseg.sqlite, dataset.cache_dir = <output>/dataset,
 * train.cache_dir = dataset.cache_dir, train.model =
 * <output>/model.safetensors, score.model = train.model. Call after applying
 * command-line overrides. */
int pnx_config_resolve_paths(pnx_config *cfg);

/* Replaces *slot (a config string) by a copy of value. */
int pnx_config_set_string(char **slot, const char *value);

#endif
