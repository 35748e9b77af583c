/*
 * common/safetensors_json.c — a small strict JSON reader for safetensors
 * headers: strings (with escapes and UTF-8 validation), unsigned integers
 * and arrays of them, nothing else. Own code rather than a JSON library so
 * the model library builds on hosts with no Debian packages.
 */
#include "common/safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"


int pnx_stjson_error(const pnx_stjson_reader *j, const char *what)
{
    return pnx_fail(PNX_EFORMAT, "bad header JSON at byte %zu: %s", j->i, what);
}

void pnx_stjson_skip_ws(pnx_stjson_reader *j)
{
    while (j->i < j->n) {
        char c = j->s[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        j->i++;
    }
}

/* Skips whitespace, then consumes c or fails. */
int pnx_stjson_expect(pnx_stjson_reader *j, char c)
{
    pnx_stjson_skip_ws(j);
    if (j->i >= j->n || j->s[j->i] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return pnx_stjson_error(j, what);
    }
    j->i++;
    return 0;
}

/* Skips whitespace and reports whether the next byte is c (not consumed). */
int pnx_stjson_peek(pnx_stjson_reader *j, char c)
{
    pnx_stjson_skip_ws(j);
    return j->i < j->n && j->s[j->i] == c;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int json_read_hex4(pnx_stjson_reader *j, unsigned *out)
{
    if (j->n - j->i < 4)
        return pnx_stjson_error(j, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(j->s[j->i + (size_t)k]);
        if (h < 0)
            return pnx_stjson_error(j, "bad hex digit in \\u escape");
        v = v * 16u + (unsigned)h;
    }
    j->i += 4;
    *out = v;
    return 0;
}

static size_t utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence starting at p (at most avail
 * bytes), or 0 when it is malformed (overlong, surrogate, > U+10FFFF). */
static size_t utf8_sequence_length(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Reads a JSON string into a malloc'd NUL-terminated UTF-8 string. An
 * embedded NUL (\u0000) is refused, since names and values are C strings. */
int pnx_stjson_read_string(pnx_stjson_reader *j, char **out)
{
    *out = NULL;
    int rc = pnx_stjson_expect(j, '"');
    if (rc)
        return rc;
    /* Decoding never makes a string longer, so the raw span bounds it. */
    size_t start = j->i;
    size_t end = start;
    while (end < j->n && j->s[end] != '"') {
        if (j->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= j->n)
        return pnx_stjson_error(j, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf)
        return pnx_fail(PNX_ENOMEM, "out of memory reading header");
    size_t len = 0;
    while (j->i < end) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c < 0x20) {
            free(buf);
            return pnx_stjson_error(j, "control character in string");
        }
        if (c != '\\') {
            size_t sl = utf8_sequence_length((const unsigned char *)j->s + j->i, end - j->i);
            if (sl == 0) {
                free(buf);
                return pnx_stjson_error(j, "invalid UTF-8 in string");
            }
            memcpy(buf + len, j->s + j->i, sl);
            len += sl;
            j->i += sl;
            continue;
        }
        j->i++;
        char e = j->s[j->i++];
        switch (e) {
        case '"': buf[len++] = '"'; break;
        case '\\': buf[len++] = '\\'; break;
        case '/': buf[len++] = '/'; break;
        case 'b': buf[len++] = '\b'; break;
        case 'f': buf[len++] = '\f'; break;
        case 'n': buf[len++] = '\n'; break;
        case 'r': buf[len++] = '\r'; break;
        case 't': buf[len++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if ((rc = json_read_hex4(j, &cp)) != 0) {
                free(buf);
                return rc;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') {
                    free(buf);
                    return pnx_stjson_error(j, "unpaired surrogate in \\u escape");
                }
                j->i += 2;
                if ((rc = json_read_hex4(j, &lo)) != 0) {
                    free(buf);
                    return rc;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return pnx_stjson_error(j, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return pnx_stjson_error(j, "unpaired surrogate in \\u escape");
            }
            if (cp == 0) {
                free(buf);
                return pnx_stjson_error(j, "NUL character in string");
            }
            /* A 6-byte escape decodes to at most 3 bytes, a 12-byte pair to 4. */
            len += utf8_encode(cp, buf + len);
            break;
        }
        default:
            free(buf);
            return pnx_stjson_error(j, "bad escape in string");
        }
    }
    j->i = end + 1;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* A non-negative integer without sign, fraction, exponent or leading zeros,
 * at most INT64_MAX. */
static int json_read_uint(pnx_stjson_reader *j, uint64_t *out)
{
    pnx_stjson_skip_ws(j);
    if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9')
        return pnx_stjson_error(j, "expected a non-negative integer");
    if (j->s[j->i] == '0' && j->i + 1 < j->n && j->s[j->i + 1] >= '0' && j->s[j->i + 1] <= '9')
        return pnx_stjson_error(j, "leading zero in integer");
    uint64_t v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        unsigned d = (unsigned)(j->s[j->i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return pnx_stjson_error(j, "integer too large");
        v = v * 10 + d;
        j->i++;
    }
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return pnx_stjson_error(j, "expected an integer, found a fraction or exponent");
    *out = v;
    return 0;
}

/* Reads "[u, u, …]" with at most max entries into out; *count receives the
 * number read. */
int pnx_stjson_read_uint_array(pnx_stjson_reader *j, uint64_t *out, int max, int *count)
{
    int rc = pnx_stjson_expect(j, '[');
    if (rc)
        return rc;
    *count = 0;
    if (pnx_stjson_peek(j, ']')) {
        j->i++;
        return 0;
    }
    for (;;) {
        if (*count >= max)
            return pnx_stjson_error(j, "too many entries in array");
        if ((rc = json_read_uint(j, &out[*count])) != 0)
            return rc;
        (*count)++;
        if (pnx_stjson_peek(j, ',')) {
            j->i++;
            continue;
        }
        return pnx_stjson_expect(j, ']');
    }
}
