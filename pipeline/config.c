/* pipeline/config.c — pipeline.yaml → pnx_config, strictly; see config.h. */
#include "pipeline/config.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "pipeline/config_keys.h"
#include "pipeline/yaml_tree.h"

static const char *const stage_names[PNX_STAGE_COUNT] = {"dataset", "train", "score",
                                                         "evaluate", "report"};

const char *pnx_stage_name(int stage)
{
    return stage >= 0 && stage < PNX_STAGE_COUNT ? stage_names[stage] : "?";
}

int pnx_stage_from_name(const char *name)
{
    for (int i = 0; i < PNX_STAGE_COUNT; i++)
        if (strcmp(stage_names[i], name) == 0)
            return i;
    return -1;
}

int pnx_config_set_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value) {
        size_t n = strlen(value) + 1;
        copy = malloc(n);
        if (!copy)
            return pnx_fail(PNX_ENOMEM, "out of memory");
        memcpy(copy, value, n);
    }
    free(*slot);
    *slot = copy;
    return PNX_OK;
}

/* ---- "did you mean": edit distance between short key names ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The last component of a dotted path. */
static const char *leaf(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Whether path is a direct child of section ("" = top level). */
static int is_child_of(const char *path, const char *section)
{
    size_t n = strlen(section);
    if (n == 0)
        return strchr(path, '.') == NULL;
    return strncmp(path, section, n) == 0 && path[n] == '.' && !strchr(path + n + 1, '.');
}

/* The closest key name under section, or NULL when nothing is close. */
static const char *suggest_key(const char *section, const char *name)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; i < pnx_config_key_count; i++) {
        const char *p = pnx_config_keys[i].path;
        if (!is_child_of(p, section))
            continue;
        size_t d = edit_distance(name, leaf(p));
        if (d < best_d) {
            best_d = d;
            best = leaf(p);
        }
    }
    size_t len = strlen(name);
    size_t allowed = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

/* ---- value conversion ---- */

typedef struct load_ctx {
    const char *name;
    pnx_config *cfg;
    unsigned char *given; /* per key row: set by the file */
} load_ctx;

static int fail_at(const load_ctx *lc, const ynode *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(const load_ctx *lc, const ynode *n, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: %s: %s", lc->name, n ? n->line : 1,
                    n ? n->column : 1, path, what);
}

static int is_null_scalar(const ynode *n)
{
    return n->type == YNODE_SCALAR && n->plain &&
           (n->value[0] == '\0' || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0);
}

static const char *type_word(int type)
{
    switch (type) {
    case PNX_KEY_SECTION: return "a mapping";
    case PNX_KEY_STRING: return "a string";
    case PNX_KEY_INT:
    case PNX_KEY_INT64: return "an integer";
    case PNX_KEY_DOUBLE: return "a number";
    case PNX_KEY_BOOL: return "true or false";
    case PNX_KEY_ENUM: return "one of the listed words";
    case PNX_KEY_STAGES: return "a list of stage names";
    default: return "a value";
    }
}

static const char *node_word(const ynode *n)
{
    return n->type == YNODE_MAP ? "a mapping" : n->type == YNODE_SEQ ? "a list" : "a scalar";
}

static void choices_text(const char *const *choices, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices[i] && k + 1 < size; i++) {
        int w = snprintf(buf + k, size - k, "%s%s", i ? ", " : "", choices[i]);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

static int set_stages(const load_ctx *lc, const pnx_key_spec *spec, const ynode *n)
{
    pnx_config *cfg = lc->cfg;
    if (n->type != YNODE_SEQ)
        return fail_at(lc, n, spec->path, "expected a list of stage names, got %s", node_word(n));
    if (n->n_items > PNX_MAX_STAGES)
        return fail_at(lc, n, spec->path, "at most %d stages", PNX_MAX_STAGES);
    int stages[PNX_MAX_STAGES];
    for (size_t i = 0; i < n->n_items; i++) {
        const ynode *item = n->items[i];
        if (item->type != YNODE_SCALAR)
            return fail_at(lc, item, spec->path, "expected a stage name, got %s",
                           node_word(item));
        int s = pnx_stage_from_name(item->value);
        if (s < 0) {
            const char *best = NULL;
            size_t best_d = 99;
            for (int k = 0; k < PNX_STAGE_COUNT; k++) {
                size_t d = edit_distance(item->value, stage_names[k]);
                if (d < best_d) {
                    best_d = d;
                    best = stage_names[k];
                }
            }
            if (best && best_d <= 2)
                return fail_at(lc, item, spec->path,
                               "unknown stage '%s' (did you mean '%s'?)", item->value, best);
            return fail_at(lc, item, spec->path,
                           "unknown stage '%s' (stages: dataset, train, score, evaluate, report)",
                           item->value);
        }
        for (size_t j = 0; j < i; j++)
            if (stages[j] == s)
                return fail_at(lc, item, spec->path, "stage '%s' listed twice", item->value);
        stages[i] = s;
    }
    memcpy(cfg->stages, stages, n->n_items * sizeof stages[0]);
    cfg->n_stages = (int)n->n_items;
    return PNX_OK;
}

/* Converts one value node into the field of spec. */
static int set_value(const load_ctx *lc, const pnx_key_spec *spec, const ynode *n)
{
    char *base = (char *)lc->cfg;
    void *field = base + spec->offset;

    if (spec->type == PNX_KEY_STAGES)
        return set_stages(lc, spec, n);
    if (n->type != YNODE_SCALAR)
        return fail_at(lc, n, spec->path, "expected %s, got %s", type_word(spec->type),
                       node_word(n));
    const char *v = n->value;

    switch (spec->type) {
    case PNX_KEY_STRING:
        if (is_null_scalar(n))
            return pnx_config_set_string((char **)field, NULL);
        if (v[0] == '\0')
            return fail_at(lc, n, spec->path, "empty string (write null to leave it unset)");
        return pnx_config_set_string((char **)field, v);
    case PNX_KEY_BOOL:
        if (n->plain && strcmp(v, "true") == 0)
            *(int *)field = 1;
        else if (n->plain && strcmp(v, "false") == 0)
            *(int *)field = 0;
        else
            return fail_at(lc, n, spec->path, "expected true or false, got '%s'", v);
        return PNX_OK;
    case PNX_KEY_ENUM:
        for (int i = 0; spec->choices[i]; i++) {
            if (strcmp(spec->choices[i], v) == 0) {
                *(int *)field = i;
                return PNX_OK;
            }
        }
        {
            char list[256];
            choices_text(spec->choices, list, sizeof list);
            return fail_at(lc, n, spec->path, "'%s' is not one of: %s", v, list);
        }
    case PNX_KEY_INT:
    case PNX_KEY_INT64: {
        if (!n->plain || v[0] == '\0')
            return fail_at(lc, n, spec->path, "expected an integer, got '%s'", v);
        errno = 0;
        char *end = NULL;
        long long x = strtoll(v, &end, 10);
        if (*end != '\0')
            return fail_at(lc, n, spec->path, "expected an integer, got '%s'", v);
        if (errno == ERANGE || (double)x < spec->min || (double)x > spec->max)
            return fail_at(lc, n, spec->path, "%s is out of range (%.0f to %.0f)", v, spec->min,
                           spec->max);
        if (spec->type == PNX_KEY_INT)
            *(int *)field = (int)x;
        else
            *(int64_t *)field = (int64_t)x;
        return PNX_OK;
    }
    case PNX_KEY_DOUBLE: {
        if (!n->plain || v[0] == '\0')
            return fail_at(lc, n, spec->path, "expected a number, got '%s'", v);
        errno = 0;
        char *end = NULL;
        double x = strtod(v, &end);
        if (*end != '\0' || !isfinite(x))
            return fail_at(lc, n, spec->path, "expected a number, got '%s'", v);
        if (x < spec->min || x > spec->max)
            return fail_at(lc, n, spec->path, "%s is out of range (%g to %g)", v, spec->min,
                           spec->max);
        *(double *)field = x;
        return PNX_OK;
    }
    default:
        return fail_at(lc, n, spec->path, "internal error: bad key type");
    }
}

/* Applies a mapping node found at section ("" = top level). */
static int apply_map(const load_ctx *lc, const char *section, const ynode *map)
{
    for (size_t i = 0; i + 1 < map->n_items; i += 2) {
        const ynode *key = map->items[i];
        const ynode *val = map->items[i + 1];
        if (key->type != YNODE_SCALAR)
            return fail_at(lc, key, section[0] ? section : "(top level)",
                           "keys must be plain names, got %s", node_word(key));
        char path[256];
        int w = snprintf(path, sizeof path, "%s%s%s", section, section[0] ? "." : "",
                         key->value);
        if (w < 0 || (size_t)w >= sizeof path)
            return fail_at(lc, key, section, "key name too long");
        const pnx_key_spec *spec = pnx_config_key_find(path);
        if (!spec) {
            const char *best = suggest_key(section, key->value);
            if (best)
                return fail_at(lc, key, path, "unknown key (did you mean '%s'?)", best);
            return fail_at(lc, key, path, "unknown key");
        }
        lc->given[spec - pnx_config_keys] = 1;
        int rc;
        if (spec->type == PNX_KEY_SECTION) {
            if (val->type != YNODE_MAP)
                return fail_at(lc, val, path, "expected a mapping of keys, got %s",
                               node_word(val));
            rc = apply_map(lc, path, val);
        } else {
            rc = set_value(lc, spec, val);
        }
        if (rc)
            return rc;
    }
    return PNX_OK;
}

/* ---- defaults ---- */

void pnx_config_free(pnx_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < pnx_config_key_count; i++) {
        const pnx_key_spec *s = &pnx_config_keys[i];
        if (s->type == PNX_KEY_STRING) {
            char **slot = (char **)((char *)cfg + s->offset);
            free(*slot);
            *slot = NULL;
        }
    }
    free(cfg->path);
    free(cfg->text);
    memset(cfg, 0, sizeof *cfg);
}

/* Room for one "given" flag per key row. */
#define PNX_MAX_KEYS 256

int pnx_config_defaults(pnx_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (pnx_config_key_count > PNX_MAX_KEYS)
        return pnx_fail(PNX_EINTERNAL, "more config keys than PNX_MAX_KEYS");
    unsigned char given[PNX_MAX_KEYS] = {0};
    load_ctx lc = {"(defaults)", cfg, given};
    for (size_t i = 0; i < pnx_config_key_count; i++) {
        const pnx_key_spec *s = &pnx_config_keys[i];
        if (s->type == PNX_KEY_SECTION || !s->def)
            continue;
        ynode *root = NULL;
        /* A default is a one-line YAML value: parse "v" as the document. */
        int rc = ynode_parse("(defaults)", s->def, strlen(s->def), 4096, 4, &root);
        if (rc == PNX_OK)
            rc = set_value(&lc, s, root);
        ynode_free(root);
        if (rc) {
            pnx_config_free(cfg);
            return pnx_fail_prefix(PNX_EINTERNAL, "bad built-in default of %s", s->path);
        }
    }
    return PNX_OK;
}

/* ---- checks across keys ---- */

static const ynode *find_node(const ynode *root, const char *path)
{
    const ynode *n = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *part = strtok(buf, "."); part && n; part = strtok(NULL, ".")) {
        const ynode *next = NULL;
        if (n->type == YNODE_MAP)
            for (size_t i = 0; i + 1 < n->n_items; i += 2)
                if (n->items[i]->type == YNODE_SCALAR && strcmp(n->items[i]->value, part) == 0)
                    next = n->items[i + 1];
        n = next;
    }
    return n;
}

static const ynode *find_key_node(const ynode *root, const char *path)
{
    /* The key itself (for positions of "missing"/"conflict" messages). */
    char parent[256];
    snprintf(parent, sizeof parent, "%s", path);
    char *dot = strrchr(parent, '.');
    const char *name = path;
    const ynode *map = root;
    if (dot) {
        *dot = '\0';
        name = dot + 1;
        map = find_node(root, parent);
    }
    if (!map || map->type != YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_items; i += 2)
        if (map->items[i]->type == YNODE_SCALAR && strcmp(map->items[i]->value, name) == 0)
            return map->items[i];
    return NULL;
}

static int stage_listed(const pnx_config *cfg, int stage)
{
    for (int i = 0; i < cfg->n_stages; i++)
        if (cfg->stages[i] == stage)
            return 1;
    return 0;
}

static int given(const load_ctx *lc, const char *path)
{
    const pnx_key_spec *s = pnx_config_key_find(path);
    return s && lc->given[s - pnx_config_keys];
}

static int check_across(const load_ctx *lc, const ynode *root)
{
    pnx_config *cfg = lc->cfg;

    if (cfg->dataset.image_size % 16 != 0)
        return fail_at(lc, find_node(root, "dataset.image_size"), "dataset.image_size",
                       "%d is not a multiple of 16 (the U-Net pools four times)",
                       cfg->dataset.image_size);

    int ratios = given(lc, "dataset.split_ratios");
    int counts = given(lc, "dataset.split_counts");
    if (ratios && counts)
        return fail_at(lc, find_key_node(root, "dataset.split_counts"), "dataset.split_counts",
                       "give split_ratios or split_counts, not both");
    cfg->dataset.split_by_count = counts;
    if (counts) {
        int64_t total = cfg->dataset.split_count[0] + cfg->dataset.split_count[1] +
                        cfg->dataset.split_count[2];
        if (total <= 0)
            return fail_at(lc, find_key_node(root, "dataset.split_counts"),
                           "dataset.split_counts", "the counts add up to 0");
    } else {
        double sum = cfg->dataset.split_ratio[0] + cfg->dataset.split_ratio[1] +
                     cfg->dataset.split_ratio[2];
        if (fabs(sum - 1.0) > 1e-6)
            return fail_at(lc, find_key_node(root, "dataset.split_ratios"),
                           "dataset.split_ratios", "train + val + test must be 1, got %g", sum);
    }

    const ynode *stages_node = find_node(root, "stages");
    static const struct {
        int stage;
        const char *key;
        size_t offset;
    } required[] = {
        {PNX_STAGE_DATASET, "dataset.dicom_dir", offsetof(pnx_config, dataset.dicom_dir)},
        {PNX_STAGE_DATASET, "dataset.rle_csv", offsetof(pnx_config, dataset.rle_csv)},
        {PNX_STAGE_SCORE, "score.dicom_dir", offsetof(pnx_config, score.dicom_dir)},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char *value = *(char **)((char *)cfg + required[i].offset);
        if (value || !stage_listed(cfg, required[i].stage))
            continue;
        const char *section = pnx_stage_name(required[i].stage);
        const ynode *at = find_key_node(root, section);
        if (!at)
            at = stages_node;
        return fail_at(lc, at, required[i].key, "required when the %s stage runs", section);
    }
    return PNX_OK;
}

/* ---- loading ---- */

int pnx_config_load_text(pnx_config *cfg, const char *name, const char *text, size_t len)
{
    int rc = pnx_config_defaults(cfg);
    if (rc)
        return rc;
    ynode *root = NULL;
    rc = ynode_parse(name, text, len, PNX_CONFIG_MAX_BYTES, PNX_CONFIG_MAX_DEPTH, &root);
    if (rc) {
        pnx_config_free(cfg);
        return rc;
    }
    unsigned char given_keys[PNX_MAX_KEYS] = {0};
    load_ctx lc = {name, cfg, given_keys};
    if (root->type != YNODE_MAP)
        rc = fail_at(&lc, root, "(top level)", "expected a mapping of keys, got %s",
                     node_word(root));
    if (rc == PNX_OK)
        rc = apply_map(&lc, "", root);
    if (rc == PNX_OK)
        rc = check_across(&lc, root);
    ynode_free(root);
    if (rc == PNX_OK) {
        cfg->path = malloc(strlen(name) + 1);
        cfg->text = malloc(len + 1);
        if (!cfg->path || !cfg->text) {
            rc = pnx_fail(PNX_ENOMEM, "out of memory");
        } else {
            memcpy(cfg->path, name, strlen(name) + 1);
            memcpy(cfg->text, text, len);
            cfg->text[len] = '\0';
            cfg->text_len = len;
            rc = pnx_sha256_hex(text, len, cfg->sha256);
        }
    }
    if (rc)
        pnx_config_free(cfg);
    return rc;
}

int pnx_config_load(pnx_config *cfg, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    /* Read a little more than the limit so an oversized file is reported as such. */
    int rc = pnx_read_file(path, PNX_CONFIG_MAX_BYTES, &text, &len);
    if (rc == PNX_ERANGE)
        return pnx_fail(PNX_ECONFIG, "%s:1:1: document is larger than the limit of %u bytes",
                        path, PNX_CONFIG_MAX_BYTES);
    if (rc)
        return pnx_fail_prefix(rc == PNX_ENOTFOUND ? PNX_ECONFIG : rc, "configuration");
    rc = pnx_config_load_text(cfg, path, text, len);
    free(text);
    return rc;
}

/* Fills each derived path that the file left unset from the ones it depends
 * on, so that --out moves everything that was not placed explicitly. */
int pnx_config_resolve_paths(pnx_config *cfg)
{
    static const struct {
        size_t slot;
        size_t base;      /* (size_t)-1: output_dir */
        const char *name; /* joined to base when set, else a copy of base */
    } rules[] = {
        {offsetof(pnx_config, database), (size_t)-1, "pneumoseg.sqlite"},
        {offsetof(pnx_config, dataset.cache_dir), (size_t)-1, "dataset"},
        {offsetof(pnx_config, train.cache_dir), offsetof(pnx_config, dataset.cache_dir), NULL},
        {offsetof(pnx_config, train.model), (size_t)-1, "model.safetensors"},
        {offsetof(pnx_config, score.model), offsetof(pnx_config, train.model), NULL},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        char **slot = (char **)((char *)cfg + rules[i].slot);
        if (*slot)
            continue;
        const char *base = rules[i].base == (size_t)-1
                               ? cfg->output_dir
                               : *(char **)((char *)cfg + rules[i].base);
        if (!base)
            return pnx_fail(PNX_EINTERNAL, "config path rule %zu has no base", i);
        if (rules[i].name) {
            *slot = pnx_path_join(base, rules[i].name);
            if (!*slot)
                return pnx_fail(PNX_ENOMEM, "out of memory");
        } else {
            int rc = pnx_config_set_string(slot, base);
            if (rc)
                return rc;
        }
    }
    return PNX_OK;
}
