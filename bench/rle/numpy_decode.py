#!/usr/bin/env python3
"""bench/rle/numpy_decode.py: the same decode as bench_rle, in numpy.

    numpy_decode.py CSV [WxH] [REPEATS]

Reads the CSV line by line and, for every row, produces that row's row-major
mask the way numpy code usually does it: np.zeros per row, the relative
starts turned into absolute ones with a cumulative sum, one slice
assignment per run in column-major order, then the transposed view
(row-major). Prints rows/s of wall and of process CPU time (each the best of REPEATS) and the total of foreground
pixels, which must equal bench_rle's.
"""
import sys
import time

import numpy as np


def decode_relative(rle, width, height):
    mask = np.zeros(width * height, dtype=np.uint8)
    covered = 0
    rle = rle.strip()
    if rle and rle != "-1":
        values = np.array(rle.split(), dtype=np.int64)
        starts, lengths = values[0::2], values[1::2]
        ends = np.cumsum(starts + lengths)
        for s, e in zip((ends - lengths).tolist(), ends.tolist()):
            mask[s:e] = 1
        covered = int(lengths.sum())
    return mask.reshape(width, height).T, covered  # column-major storage, row-major view


def decode_file(path, width, height):
    rows = pixels = 0
    with open(path, encoding="utf-8-sig") as f:
        f.readline()  # header
        for line in f:
            if not line.strip():
                continue
            _, rle = line.split(",", 1)
            mask, covered = decode_relative(rle, width, height)
            rows += 1
            pixels += covered
    return rows, pixels


def main():
    path = sys.argv[1]
    width, height = (int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "1024x1024").split("x"))
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    best = best_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rows, pixels = decode_file(path, width, height)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print("numpy %s rows %d  foreground_pixels %d  seconds %.4f  rows_per_s %.0f"
          "  cpu_seconds %.4f  rows_per_cpu_s %.0f"
          % (np.__version__, rows, pixels, best, rows / best, best_cpu, rows / best_cpu))


if __name__ == "__main__":
    main()
