/*
 * postprocess/output_paths.h — where the per-instance output files go.
 *
 * Layout under the output folder, by study and series of the source:
 *   <output>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.seg.dcm
 *   <output>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.overlay.png
 *   <output>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.sc.dcm
 * The names come only from the source's UIDs (checked to be valid UIDs, so
 * they hold digits and dots and cannot climb out of the folder), so a rerun
 * writes the same paths.
 */
#ifndef PNX_POSTPROCESS_OUTPUT_PATHS_H
#define PNX_POSTPROCESS_OUTPUT_PATHS_H

#include "postprocess/dicom_source.h"

enum pnx_output_kind {
    PNX_OUTPUT_SEG = 0,     /* DICOM Segmentation */
    PNX_OUTPUT_OVERLAY = 1, /* PNG overlay */
    PNX_OUTPUT_SC = 2,      /* Secondary Capture overlay */
};

/* Sets *path to a malloc'd path for kind (caller frees). When create_folders
 * is non-zero the study and series folders are created (mkdir -p). */
int pnx_output_path(const char *output_dir, const pnx_dicom_source *src, int kind,
                    int create_folders, char **path);

#endif
