/* pipeline/instance_row.c — decode result → instances row; see instance_row.h. */
#include "pipeline/instance_row.h"

#include <string.h>

void pnx_instance_row_from_result(pnx_instance_row *row, const pnx_decode_result *r,
                                  const char *error_kind, const char *error)
{
    const pnx_dicom_meta *m = &r->meta;
    memset(row, 0, sizeof *row);
    row->sop_instance_uid = m->sop_uid;
    row->series_instance_uid = m->series_uid;
    row->study_instance_uid = m->study_uid;
    row->patient_id = m->patient_id;
    row->sop_class_uid = m->sop_class_uid;
    row->modality = m->modality;
    row->view_position = m->view_position;
    row->path = r->path;
    row->file_size = m->file_size > 0 ? m->file_size : -1;
    row->transfer_syntax = m->transfer_syntax;
    row->photometric = m->photometric;
    row->rows = m->rows;
    row->columns = m->columns;
    row->bits_allocated = m->bits_allocated;
    row->bits_stored = m->bits_stored;
    row->has_spacing = m->spacing_source != 0;
    row->pixel_spacing_row = m->pixel_spacing_row;
    row->pixel_spacing_col = m->pixel_spacing_col;
    row->lossy = m->lossy;
    row->error_kind = error_kind;
    row->error = error;
}
