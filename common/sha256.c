/* common/sha256.c — SHA-256 through libcrypto's EVP interface; see sha256.h. */
#include "common/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static void to_hex(const uint8_t digest[32], char hex[PNX_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[PNX_SHA256_HEX_LEN] = '\0';
}

int pnx_sha256(const void *data, size_t len, uint8_t digest[32])
{
    unsigned int out_len = 0;
    if (!EVP_Digest(data, len, digest, &out_len, EVP_sha256(), NULL) || out_len != 32)
        return pnx_fail(PNX_EINTERNAL, "SHA-256 failed in libcrypto");
    return PNX_OK;
}

int pnx_sha256_hex(const void *data, size_t len, char hex[PNX_SHA256_HEX_LEN + 1])
{
    uint8_t digest[32];
    int rc = pnx_sha256(data, len, digest);
    if (rc)
        return rc;
    to_hex(digest, hex);
    return PNX_OK;
}

int pnx_sha256_file_hex(const char *path, char hex[PNX_SHA256_HEX_LEN + 1])
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return pnx_fail(PNX_EIO, "open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        fclose(fp);
        return pnx_fail(PNX_ENOMEM, "out of memory for a digest context");
    }
    int rc = PNX_OK;
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
        rc = pnx_fail(PNX_EINTERNAL, "SHA-256 init failed in libcrypto");
    unsigned char buf[1 << 16];
    while (rc == PNX_OK) {
        size_t n = fread(buf, 1, sizeof buf, fp);
        if (n > 0 && !EVP_DigestUpdate(ctx, buf, n))
            rc = pnx_fail(PNX_EINTERNAL, "SHA-256 update failed in libcrypto");
        if (n < sizeof buf) {
            if (ferror(fp))
                rc = pnx_fail(PNX_EIO, "read %s: %s", path, strerror(errno));
            break;
        }
    }
    uint8_t digest[32];
    unsigned int out_len = 0;
    if (rc == PNX_OK && (!EVP_DigestFinal_ex(ctx, digest, &out_len) || out_len != 32))
        rc = pnx_fail(PNX_EINTERNAL, "SHA-256 final failed in libcrypto");
    EVP_MD_CTX_free(ctx);
    fclose(fp);
    if (rc == PNX_OK)
        to_hex(digest, hex);
    return rc;
}
