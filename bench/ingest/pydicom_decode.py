#!/usr/bin/env python3
"""bench/ingest/pydicom_decode.py - decode every .dcm under a folder with
pydicom + numpy (pylibjpeg for JPEG), as a Python pipeline would, and print
images per second in bench_ingest's format.

    pydicom_decode.py [--procs N] DIR
--procs 1 decodes in this process; N > 1 uses a multiprocessing pool.
"""
import argparse
import os
import sys
import time

import numpy as np
import pydicom


def decode(path):
    ds = pydicom.dcmread(path)
    pixels = np.asarray(ds.pixel_array)
    if pixels.dtype != np.uint8:
        lo, hi = pixels.min(), pixels.max()
        pixels = ((pixels - lo) * (255.0 / max(hi - lo, 1))).astype(np.uint8)
    return pixels.shape == (ds.Rows, ds.Columns)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("dir")
    args = ap.parse_args()
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.dir)
                   for f in fs if f.lower().endswith(".dcm"))
    t0 = time.perf_counter()
    if args.procs <= 1:
        ok = sum(decode(p) for p in paths)
    else:
        import multiprocessing as mp
        with mp.Pool(args.procs) as pool:
            ok = sum(pool.imap_unordered(decode, paths, chunksize=4))
    s = time.perf_counter() - t0
    print(f"files={len(paths)} ok={ok} seconds={s:.3f} img_s={len(paths) / s:.1f}")
    return 0 if ok == len(paths) else 2


if __name__ == "__main__":
    sys.exit(main())
