/*
 * pipeline/yaml_tree.h — a YAML document as a small tree with positions.
 *
 * Built from libyaml's event stream with bounds libyaml itself lacks: the
 * text size (checked before parsing) and the nesting depth (checked on each
 * opening event, so a pathological "[[[[…" stops at once instead of making
 * libyaml work for seconds). Anchors and aliases are refused: a config has
 * no use for them and they are the classic expansion bomb. Duplicate keys in
 * a mapping are an error. Lines and columns are 1-based.
 */
#ifndef PNX_PIPELINE_YAML_TREE_H
#define PNX_PIPELINE_YAML_TREE_H

#include <stddef.h>

enum ynode_type { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

typedef struct ynode {
    int type;
    char *value;            /* scalars only */
    int plain;              /* scalar written without quotes */
    size_t line, column;
    struct ynode **items;   /* maps: key, value, key, value …; sequences: items */
    size_t n_items;
    size_t cap;
} ynode;

/* Parses text (len bytes). name appears in messages: "name:line:col: …".
 * An empty document yields an empty mapping. */
int ynode_parse(const char *name, const char *text, size_t len, size_t max_bytes,
                int max_depth, ynode **root);
void ynode_free(ynode *n);

#endif
