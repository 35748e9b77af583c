/*
 * common/sha256.h — SHA-256 of buffers and files (libcrypto's EVP), as
 * lower-case hex. Used to fingerprint configs, models and generated UIDs.
 */
#ifndef PNX_COMMON_SHA256_H
#define PNX_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PNX_SHA256_HEX_LEN 64

int pnx_sha256(const void *data, size_t len, uint8_t digest[32]);
int pnx_sha256_hex(const void *data, size_t len, char hex[PNX_SHA256_HEX_LEN + 1]);
/* Streams the file; never loads it whole. */
int pnx_sha256_file_hex(const char *path, char hex[PNX_SHA256_HEX_LEN + 1]);

#endif
