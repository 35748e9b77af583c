/*
 * ingest/nesting.h — a pre-scan for hostile sequence nesting. DCMTK 3.6.7
 * parses sequences recursively and overflows its stack at a few thousand
 * levels; this scan walks the element headers without recursion and says
 * when a file nests deeper than any real one does, so that such a file is
 * a "malformed" error instead of a worker crash. Internal to ingest/.
 */
#ifndef PNX_INGEST_NESTING_H
#define PNX_INGEST_NESTING_H

#include <stddef.h>
#include <stdint.h>

/* Real files stay far below this (SR content trees reach tens); DCMTK's
 * stack lasts for thousands. */
#define PNX_MAX_SEQUENCE_DEPTH 256

/* Scans a whole file image (Part 10 or a bare dataset, little endian,
 * explicit or implicit VR). Returns 1 when sequences nest deeper than
 * max_depth, 0 otherwise, including whenever the scan cannot be sure
 * (big endian, deflated, an undefined-length value it cannot walk, a
 * length past the end): DCMTK then judges the file as usual. */
int pnx_nesting_exceeds(const uint8_t *data, size_t len, int max_depth);

#endif
