/* tools/gen_sample/jpeg_baseline.c — libjpeg greyscale baseline encoder; see jpeg_baseline.h. */
#include "tools/gen_sample/jpeg_baseline.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "common/error.h"

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

/* libjpeg's default handler exits the process; record and unwind instead. */
static void on_jpeg_error(j_common_ptr cinfo)
{
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

static void silence_jpeg_output(j_common_ptr cinfo) { (void)cinfo; }

int pnx_jpeg_baseline_encode(const pnx_image *img, int quality, uint8_t **out,
                             size_t *out_len)
{
    if (!img || !img->pixels || img->width == 0 || img->height == 0
        || img->width > 65500 || img->height > 65500)
        return pnx_fail(PNX_EINVAL, "jpeg: bad image");
    if (quality < 1 || quality > 100)
        return pnx_fail(PNX_EINVAL, "jpeg: quality %d is not in 1..100", quality);

    struct jpeg_compress_struct cinfo;
    jpeg_failure failure;
    /* Only libjpeg writes these, through their addresses, so they are
     * re-read from memory after a longjmp. */
    unsigned char *buffer = NULL;
    unsigned long buffer_len = 0;

    cinfo.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = on_jpeg_error;
    failure.mgr.output_message = silence_jpeg_output;
    if (setjmp(failure.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return pnx_fail(PNX_EFORMAT, "jpeg: %s", failure.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &buffer_len);
    cinfo.image_width = img->width;
    cinfo.image_height = img->height;
    cinfo.input_components = 1;
    cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.optimize_coding = TRUE;
    cinfo.write_JFIF_header = FALSE;
    cinfo.write_Adobe_marker = FALSE;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(img->pixels + (size_t)cinfo.next_scanline * img->width);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (!buffer || buffer_len < 4)
        return pnx_fail(PNX_EFORMAT, "jpeg: encoder produced no data");
    *out = buffer;
    *out_len = buffer_len;
    return 0;
}
