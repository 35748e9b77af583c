/*
 * bench/gpu/gpu_peaks.c — the table behind gpu_peaks.h. Sources: NVIDIA's
 * H100, H200 and A100 datasheets (dense figures are half the "with
 * sparsity" ones printed there).
 */
#include "bench/gpu/gpu_peaks.h"

#include <string.h>

typedef struct card_peaks {
    const char *name; /* exactly as cudaDeviceProp.name spells it */
    double fp32, tf32, bf16;
} card_peaks;

static const card_peaks cards[] = {
    {"NVIDIA H100 80GB HBM3", 67.0, 495.0, 989.0}, /* H100 SXM5 */
    {"NVIDIA H100 PCIe", 51.0, 378.0, 756.0},
    {"NVIDIA H100 NVL", 60.0, 418.0, 835.0},
    {"NVIDIA H200", 67.0, 495.0, 989.0}, /* H200 SXM */
    {"NVIDIA H200 NVL", 60.0, 418.0, 835.0},
    {"NVIDIA A100-SXM4-80GB", 19.5, 156.0, 312.0},
    {"NVIDIA A100-SXM4-40GB", 19.5, 156.0, 312.0},
    {"NVIDIA A100 80GB PCIe", 19.5, 156.0, 312.0},
    {"NVIDIA A100-PCIE-40GB", 19.5, 156.0, 312.0},
};

double bench_gpu_peak_tflops(const char *device_name, const char *precision)
{
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        if (strcmp(cards[i].name, device_name) != 0)
            continue;
        if (strcmp(precision, "fp32") == 0)
            return cards[i].fp32;
        if (strcmp(precision, "tf32") == 0)
            return cards[i].tf32;
        if (strcmp(precision, "bf16") == 0)
            return cards[i].bf16;
        return 0;
    }
    return 0;
}
