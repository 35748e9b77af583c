/*
 * pipeline/config_keys.h — the table of every pipeline.yaml key.
 *
 * One row per key: its dotted path, type, where it lands in pnx_config,
 * its allowed range or choices, its default (as YAML text, converted by the
 * same code as the file's values) and a one-line description. Sections
 * (mappings) have rows too. The loader, the defaults, the "did you mean"
 * suggestions and the documentation check all read this table.
 */
#ifndef PNX_PIPELINE_CONFIG_KEYS_H
#define PNX_PIPELINE_CONFIG_KEYS_H

#include <stddef.h>

enum pnx_key_type {
    PNX_KEY_SECTION,  /* a mapping of further keys */
    PNX_KEY_STRING,   /* char *, may be null when default is "null" */
    PNX_KEY_INT,      /* int */
    PNX_KEY_INT64,    /* int64_t */
    PNX_KEY_DOUBLE,   /* double */
    PNX_KEY_BOOL,     /* int 0/1; true or false */
    PNX_KEY_ENUM,     /* int, index into choices */
    PNX_KEY_STAGES,   /* the stages list */
};

typedef struct pnx_key_spec {
    const char *path;
    int type;
    size_t offset;
    double min, max;            /* numbers */
    const char *const *choices; /* enums: NULL-terminated, index = value */
    const char *def;            /* default, as YAML text; NULL = none */
    const char *doc;
} pnx_key_spec;

extern const pnx_key_spec pnx_config_keys[];
extern const size_t pnx_config_key_count;

const pnx_key_spec *pnx_config_key_find(const char *path);

#endif
