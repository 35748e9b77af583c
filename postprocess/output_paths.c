/*
 * postprocess/output_paths.c — deterministic output paths; see output_paths.h.
 */
#include "postprocess/output_paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "postprocess/uid.h"

int pnx_output_path(const char *output_dir, const pnx_dicom_source *src, int kind,
                    int create_folders, char **path)
{
    static const char *const suffix[] = {".seg.dcm", ".overlay.png", ".sc.dcm"};
    if (!output_dir || !output_dir[0] || !src || !path)
        return pnx_fail(PNX_EINVAL, "output path: missing argument");
    *path = NULL;
    if (kind < PNX_OUTPUT_SEG || kind > PNX_OUTPUT_SC)
        return pnx_fail(PNX_EINVAL, "output path: unknown kind %d", kind);
    if (!pnx_uid_is_valid(src->study_instance_uid) || !pnx_uid_is_valid(src->series_instance_uid) ||
        !pnx_uid_is_valid(src->sop_instance_uid))
        return pnx_fail(PNX_EFORMAT, "output path: the source's UIDs are not valid UIDs");
    size_t folder_len = strlen(output_dir) + 2 * PNX_UID_BUF + 2;
    char *folder = malloc(folder_len);
    size_t full_len = folder_len + PNX_UID_BUF + 16;
    char *full = malloc(full_len);
    if (!folder || !full) {
        free(folder);
        free(full);
        return pnx_fail(PNX_ENOMEM, "output path: out of memory");
    }
    snprintf(folder, folder_len, "%s/%s/%s", output_dir, src->study_instance_uid,
             src->series_instance_uid);
    snprintf(full, full_len, "%s/%s%s", folder, src->sop_instance_uid, suffix[kind]);
    if (create_folders) {
        int rc = pnx_mkdir_p(folder, 0777);
        if (rc) {
            free(folder);
            free(full);
            return pnx_fail_prefix(rc, "output path");
        }
    }
    free(folder);
    *path = full;
    return 0;
}
