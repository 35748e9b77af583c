/*
 * ingest/syntax.h — the transfer syntaxes ingest decodes, by UID. Internal
 * to ingest/ (the names are public through pnx_transfer_syntax_name).
 */
#ifndef PNX_INGEST_SYNTAX_H
#define PNX_INGEST_SYNTAX_H

/* 1 when uid is one of the syntaxes listed in ingest/ingest.h. */
int pnx_transfer_syntax_supported(const char *uid);

/* 1 for the JPEG Baseline (process 1) syntax. */
int pnx_transfer_syntax_is_jpeg_baseline(const char *uid);

#endif
