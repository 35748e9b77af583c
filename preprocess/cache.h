/*
 * preprocess/cache.h — the dataset cache: one split's images, masks and SOP
 * Instance UIDs at the training resolution, as a safetensors file.
 *
 * Layout (tensor names and shapes are a contract with the train stage and
 * with Python users, see docs/dataset.md):
 *   images             uint8 [N, 1, S, S]  grey levels as decoded and resized
 *   masks              uint8 [N, 1, S, S]  0/1
 *   sop_instance_uids  uint8 [N, 64]       ASCII, NUL-padded (a UID has at
 *                                          most 64 characters, PS3.5 UI)
 *   __metadata__       format = "pneumoseg-dataset-cache", version = "1",
 *                      count, image_size, plus what the builder adds
 *                      (split, seed, mask_rule, …)
 * Image i, mask i and UID i belong together. Python reads it with
 * safetensors.numpy.load_file(path).
 *
 * Building streams: each (image, mask, UID) is written at its index into an
 * already unlinked spool file beside the target as soon as it is ready, in
 * any order and from several threads, so memory stays flat at any
 * resolution; commit copies the spool into the safetensors file through an
 * atomic write. The bytes depend only on what was put, so identical input
 * gives a byte-identical file.
 *
 * Reading maps the file (common/safetensors.h) and checks names, dtypes and
 * shapes once at open; the accessors then index without further checks.
 */
#ifndef PNX_PREPROCESS_CACHE_H
#define PNX_PREPROCESS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/image.h"

#define PNX_CACHE_FORMAT "pneumoseg-dataset-cache"
#define PNX_CACHE_VERSION "1"
#define PNX_CACHE_IMAGES "images"
#define PNX_CACHE_MASKS "masks"
#define PNX_CACHE_UIDS "sop_instance_uids"
#define PNX_CACHE_UID_BYTES 64

/* ---- building ------------------------------------------------------------ */

typedef struct pnx_cache_builder pnx_cache_builder;

/* Starts a cache of count items of side × side at path (the folder must
 * exist). count may be 0 (an empty split is still a valid file). */
int pnx_cache_builder_open(pnx_cache_builder **out, const char *path, size_t count,
                           uint32_t side);

/* Adds a metadata entry (copied). The reserved keys format, version, count
 * and image_size are written by the builder and refused here. Not
 * thread-safe; call before the puts. */
int pnx_cache_builder_meta(pnx_cache_builder *b, const char *key, const char *value);

/* Stores item index: image and mask must be side × side, mask values 0/1,
 * uid 1..64 characters. Each index once. Distinct indexes may be put from
 * distinct threads at the same time. */
int pnx_cache_builder_put(pnx_cache_builder *b, size_t index, const pnx_image *image,
                          const pnx_image *mask, const char *uid);

/* Marks item index as left out (its image could not be decoded after the
 * split was made): the file then holds the other items, in index order,
 * and its count is smaller by one. Each index is put or skipped once. */
int pnx_cache_builder_skip(pnx_cache_builder *b, size_t index);

/* Writes the file atomically once every index has been put or skipped
 * (PNX_EINVAL naming the first missing one otherwise), and frees the
 * builder in every case. */
int pnx_cache_builder_commit(pnx_cache_builder *b);

/* Frees the builder; nothing is written. NULL is fine. */
void pnx_cache_builder_abort(pnx_cache_builder *b);

/* ---- reading ------------------------------------------------------------- */

typedef struct pnx_cache pnx_cache;

/* Maps path and checks it is a dataset cache of format version 1 with
 * consistent tensors. On failure *out is NULL and the message names path. */
int pnx_cache_open(pnx_cache **out, const char *path);
void pnx_cache_close(pnx_cache *c);

size_t pnx_cache_count(const pnx_cache *c);
uint32_t pnx_cache_side(const pnx_cache *c);
/* side × side bytes of item i (i < count), row-major, read-only. */
const uint8_t *pnx_cache_image(const pnx_cache *c, size_t i);
const uint8_t *pnx_cache_mask(const pnx_cache *c, size_t i);
/* Copies item i's UID, NUL-terminated, into out. PNX_EFORMAT when the
 * stored bytes are not a UID (digits and dots, NUL-padded). */
int pnx_cache_uid(const pnx_cache *c, size_t i, char out[PNX_CACHE_UID_BYTES + 1]);
/* Metadata value for key, or NULL. */
const char *pnx_cache_meta(const pnx_cache *c, const char *key);

/* Reads every mask and UID once: PNX_EFORMAT at the first mask byte that is
 * not 0/1 or UID that is not one. For callers that want the whole file
 * checked (the train stage at start-up, tests). */
int pnx_cache_verify(const pnx_cache *c);

#endif
