/*
 * ingest/nesting.c — see nesting.h. One pass over the element headers with
 * an explicit stack of open sequences and items; values are skipped, never
 * interpreted. Lengths are checked against what remains before any skip.
 */
#include "ingest/nesting.h"

#include <stdlib.h>
#include <string.h>

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define TAG_ITEM 0xE000u
#define TAG_ITEM_END 0xE00Du
#define TAG_SEQUENCE_END 0xE0DDu
#define GROUP_DELIMITERS 0xFFFEu
#define GROUP_META 0x0002u
#define UID_IMPLICIT_LE "1.2.840.10008.1.2"
#define UID_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define UID_DEFLATED "1.2.840.10008.1.2.1.99"

enum scope_kind { SCOPE_SEQUENCE, SCOPE_ITEM };

struct scope {
    size_t end; /* SIZE_MAX: undefined length, closed by a delimiter */
    int kind;
};

static uint16_t u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int is_vr(const uint8_t *p)
{
    static const char vrs[] = "AEASATCSDADSDTFLFDISLOLTOBODOFOLOVOWPNSHSLSQSSSTSVTMUCUIULUNURUSUTUV";
    for (size_t i = 0; i + 1 < sizeof vrs; i += 2)
        if (p[0] == (uint8_t)vrs[i] && p[1] == (uint8_t)vrs[i + 1])
            return 1;
    return 0;
}

/* VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
static int has_long_length(const uint8_t *vr)
{
    static const char longs[] = "OBODOFOLOVOWSQSVUCUNURUTUV";
    for (size_t i = 0; i + 1 < sizeof longs; i += 2)
        if (vr[0] == (uint8_t)longs[i] && vr[1] == (uint8_t)longs[i + 1])
            return 1;
    return 0;
}

/* Skips the file meta group (always explicit VR little endian) and reads
 * its transfer syntax. Returns the offset of the dataset, or 0 when the
 * meta group cannot be walked. */
static size_t skip_meta(const uint8_t *d, size_t len, size_t pos, char *ts, size_t ts_size)
{
    ts[0] = '\0';
    while (pos + 8 <= len && u16(d + pos) == GROUP_META) {
        const uint8_t *vr = d + pos + 4;
        if (!is_vr(vr))
            return 0;
        size_t hdr = has_long_length(vr) ? 12 : 8;
        if (pos + hdr > len)
            return 0;
        uint32_t l = hdr == 12 ? u32(d + pos + 8) : u16(d + pos + 6);
        if (l == UNDEFINED_LENGTH || l > len - pos - hdr)
            return 0;
        if (u16(d + pos + 2) == 0x0010 && l < ts_size) {
            size_t n = l;
            memcpy(ts, d + pos + hdr, n);
            ts[n] = '\0';
            while (n > 0 && (ts[n - 1] == '\0' || ts[n - 1] == ' '))
                ts[--n] = '\0';
        }
        pos += hdr + l;
    }
    return pos;
}

int pnx_nesting_exceeds(const uint8_t *d, size_t len, int max_depth)
{
    size_t pos = 0;
    char ts[80] = "";
    if (len >= 132 && memcmp(d + 128, "DICM", 4) == 0)
        pos = 132;
    if (pos + 8 <= len && u16(d + pos) == GROUP_META) {
        pos = skip_meta(d, len, pos, ts, sizeof ts);
        if (pos == 0)
            return 0;
    }
    if (strcmp(ts, UID_EXPLICIT_BE) == 0 || strcmp(ts, UID_DEFLATED) == 0)
        return 0;
    int explicit_vr;
    if (ts[0])
        explicit_vr = strcmp(ts, UID_IMPLICIT_LE) != 0;
    else
        explicit_vr = pos + 6 <= len && is_vr(d + pos + 4);

    /* Each open sequence holds at most one open item: the stack never
     * exceeds twice the depth allowed plus one. */
    size_t cap = 2 * (size_t)max_depth + 2;
    struct scope *stack = malloc(cap * sizeof *stack);
    if (!stack)
        return 0;
    size_t sp = 0;
    int sequences = 0, verdict = 0;

    while (pos + 8 <= len) {
        while (sp > 0 && stack[sp - 1].end != SIZE_MAX && pos >= stack[sp - 1].end) {
            if (pos > stack[sp - 1].end)
                goto done; /* an element overruns its parent: not ours to judge */
            sequences -= stack[--sp].kind == SCOPE_SEQUENCE;
        }
        uint16_t group = u16(d + pos), element = u16(d + pos + 2);
        if (group == GROUP_DELIMITERS) {
            uint32_t l = u32(d + pos + 4);
            pos += 8;
            if (element == TAG_ITEM) {
                if (sp == 0 || stack[sp - 1].kind != SCOPE_SEQUENCE || sp == cap)
                    goto done;
                if (l != UNDEFINED_LENGTH && l > len - pos)
                    goto done;
                stack[sp++] = (struct scope){l == UNDEFINED_LENGTH ? SIZE_MAX : pos + l,
                                             SCOPE_ITEM};
            } else if (element == TAG_ITEM_END) {
                if (sp == 0 || stack[sp - 1].kind != SCOPE_ITEM)
                    goto done;
                sp--;
            } else if (element == TAG_SEQUENCE_END) {
                if (sp == 0 || stack[sp - 1].kind != SCOPE_SEQUENCE)
                    goto done;
                sp--;
                sequences--;
            } else {
                goto done;
            }
            continue;
        }
        if (group == 0x7FE0 && element == 0x0010)
            goto done; /* pixel data: the header is over */
        uint32_t l;
        int sequence;
        if (explicit_vr) {
            const uint8_t *vr = d + pos + 4;
            if (!is_vr(vr))
                goto done;
            size_t hdr = has_long_length(vr) ? 12 : 8;
            if (pos + hdr > len)
                goto done;
            l = hdr == 12 ? u32(d + pos + 8) : u16(d + pos + 6);
            sequence = vr[0] == 'S' && vr[1] == 'Q';
            pos += hdr;
        } else {
            /* Without a dictionary, an implicit-VR sequence shows itself
             * only by its undefined length; defined-length ones are
             * skipped whole (this scan may then miss nesting: DCMTK
             * judges). */
            l = u32(d + pos + 4);
            sequence = l == UNDEFINED_LENGTH;
            pos += 8;
        }
        if (sequence) {
            if (l != UNDEFINED_LENGTH && l > len - pos)
                goto done;
            if (++sequences > max_depth) {
                verdict = 1;
                goto done;
            }
            if (sp == cap)
                goto done;
            stack[sp++] = (struct scope){l == UNDEFINED_LENGTH ? SIZE_MAX : pos + l,
                                         SCOPE_SEQUENCE};
            continue;
        }
        if (l == UNDEFINED_LENGTH || l > len - pos)
            goto done;
        pos += l;
    }
done:
    free(stack);
    return verdict;
}
