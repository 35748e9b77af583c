/*
 * bench/gpu/gpu_peaks.h — the dense peak arithmetic rate of known NVIDIA
 * cards, by the name the CUDA runtime reports (cudaDeviceProp.name), so the
 * benchmark can say what fraction of the card a run uses.
 *
 * Promises: figures are the vendor's dense (no 2:4 sparsity) peaks at boost
 * clock, in TFLOP/s: "fp32" the CUDA-core FP32 rate, "tf32" and "bf16" the
 * tensor-core rates. An unknown card or precision gives 0 ("n/a"): no guess
 * from a similar name, since an H100 PCIe and an H100 SXM differ by 30 %.
 */
#ifndef PNX_BENCH_GPU_PEAKS_H
#define PNX_BENCH_GPU_PEAKS_H

/* Peak TFLOP/s of device_name for precision ("fp32", "tf32", "bf16"), or 0
 * when the card or the precision is not in the table. */
double bench_gpu_peak_tflops(const char *device_name, const char *precision);

#endif
