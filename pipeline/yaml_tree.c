/* pipeline/yaml_tree.c — libyaml events → ynode tree; see yaml_tree.h. */
#include "pipeline/yaml_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/error.h"

static ynode *node_new(int type, const yaml_mark_t *mark)
{
    ynode *n = calloc(1, sizeof *n);
    if (n) {
        n->type = type;
        n->line = mark->line + 1;
        n->column = mark->column + 1;
    }
    return n;
}

void ynode_free(ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_items; i++)
        ynode_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static int node_append(ynode *parent, ynode *child)
{
    if (parent->n_items == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        ynode **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return pnx_fail(PNX_ENOMEM, "out of memory parsing YAML");
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n_items++] = child;
    return PNX_OK;
}

/* In a mapping, a new key must differ from the keys already there. */
static int check_duplicate_key(const char *name, const ynode *map, const ynode *key)
{
    if (map->type != YNODE_MAP || map->n_items % 2 != 0 || key->type != YNODE_SCALAR)
        return PNX_OK;
    for (size_t i = 0; i < map->n_items; i += 2) {
        const ynode *k = map->items[i];
        if (k->type == YNODE_SCALAR && strcmp(k->value, key->value) == 0)
            return pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: %s: duplicate key (first at line %zu)",
                            name, key->line, key->column, key->value, k->line);
    }
    return PNX_OK;
}

int ynode_parse(const char *name, const char *text, size_t len, size_t max_bytes,
                int max_depth, ynode **root)
{
    *root = NULL;
    if (len > max_bytes)
        return pnx_fail(PNX_ECONFIG, "%s:1:1: document is %zu bytes, more than the limit of %zu",
                        name, len, max_bytes);

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return pnx_fail(PNX_ENOMEM, "out of memory initialising the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    ynode *stack[64];
    int depth = 0;
    int documents = 0;
    int rc = PNX_OK;
    ynode *top = NULL;

    if (max_depth > (int)(sizeof stack / sizeof stack[0]))
        max_depth = (int)(sizeof stack / sizeof stack[0]);

    for (int done = 0; !done && rc == PNX_OK;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: invalid YAML: %s%s%s", name,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "syntax error",
                          parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        ynode *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: only one YAML document is allowed", name,
                              ev.start_mark.line + 1, ev.start_mark.column + 1);
            break;
        case YAML_ALIAS_EVENT:
            rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: aliases (*name) are not allowed", name,
                          ev.start_mark.line + 1, ev.start_mark.column + 1);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_MAPPING_START_EVENT
                                            ? ev.data.mapping_start.anchor
                                            : ev.data.sequence_start.anchor;
            if (anchor) {
                rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: anchors (&name) are not allowed", name,
                              ev.start_mark.line + 1, ev.start_mark.column + 1);
                break;
            }
            if (ev.type != YAML_SCALAR_EVENT && depth >= max_depth) {
                rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: nesting deeper than %d levels", name,
                              ev.start_mark.line + 1, ev.start_mark.column + 1, max_depth);
                break;
            }
            int type = ev.type == YAML_SCALAR_EVENT         ? YNODE_SCALAR
                       : ev.type == YAML_MAPPING_START_EVENT ? YNODE_MAP
                                                             : YNODE_SEQ;
            n = node_new(type, &ev.start_mark);
            if (!n) {
                rc = pnx_fail(PNX_ENOMEM, "out of memory parsing YAML");
                break;
            }
            if (type == YNODE_SCALAR) {
                n->value = malloc(ev.data.scalar.length + 1);
                if (!n->value) {
                    ynode_free(n);
                    rc = pnx_fail(PNX_ENOMEM, "out of memory parsing YAML");
                    break;
                }
                memcpy(n->value, ev.data.scalar.value, ev.data.scalar.length);
                n->value[ev.data.scalar.length] = '\0';
                if (strlen(n->value) != ev.data.scalar.length) {
                    rc = pnx_fail(PNX_ECONFIG, "%s:%zu:%zu: NUL byte inside a value", name,
                                  n->line, n->column);
                    ynode_free(n);
                    break;
                }
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            }
            if (depth == 0) {
                top = n;
            } else {
                ynode *parent = stack[depth - 1];
                if ((parent->type == YNODE_MAP && parent->n_items % 2 == 0 &&
                     (rc = check_duplicate_key(name, parent, n)) != PNX_OK) ||
                    (rc = node_append(parent, n)) != PNX_OK) {
                    ynode_free(n);
                    break;
                }
            }
            if (type != YNODE_SCALAR)
                stack[depth++] = n;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);

    if (rc != PNX_OK) {
        ynode_free(top);
        return rc;
    }
    if (!top) {
        yaml_mark_t m = {0, 0, 0};
        top = node_new(YNODE_MAP, &m);
        if (!top)
            return pnx_fail(PNX_ENOMEM, "out of memory parsing YAML");
    }
    *root = top;
    return PNX_OK;
}
