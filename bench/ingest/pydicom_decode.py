#!/usr/bin/env python3
"""bench/ingest/pydicom_decode.py - decode every .dcm under a folder with
pydicom + numpy (pylibjpeg for JPEG), as a Python pipeline would, and print
images per second in bench_ingest's format.

    pydicom_decode.py [--procs N] [--plugin pillow|pylibjpeg] DIR
--procs 1 decodes in this process; N > 1 uses a multiprocessing pool.
--plugin picks pydicom's JPEG decoder (pillow = libjpeg-turbo;
pylibjpeg = pylibjpeg-libjpeg); default: pydicom's own choice.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import pydicom


PLUGIN = None


def decode(path):
    ds = pydicom.dcmread(path)
    if PLUGIN:
        ds.pixel_array_options(decoding_plugin=PLUGIN)
    pixels = np.asarray(ds.pixel_array)
    if pixels.dtype != np.uint8:
        lo, hi = pixels.min(), pixels.max()
        pixels = ((pixels - lo) * (255.0 / max(hi - lo, 1))).astype(np.uint8)
    return pixels.shape == (ds.Rows, ds.Columns)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--plugin", default=None)
    ap.add_argument("dir")
    args = ap.parse_args()
    global PLUGIN
    PLUGIN = args.plugin
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.dir)
                   for f in fs if f.lower().endswith(".dcm"))
    def cpu():
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    c0 = cpu()
    t0 = time.perf_counter()
    if args.procs <= 1:
        ok = sum(decode(p) for p in paths)
    else:
        import multiprocessing as mp
        pool = mp.Pool(args.procs)
        ok = sum(pool.imap_unordered(decode, paths, chunksize=4))
        pool.close()
        pool.join()  # reaped, so the workers' CPU time counts
    s = time.perf_counter() - t0
    cpu_ms = (cpu() - c0) * 1e3 / max(len(paths), 1)
    print(f"files={len(paths)} ok={ok} seconds={s:.3f} img_s={len(paths) / s:.1f} "
          f"cpu_ms_per_img={cpu_ms:.2f}")
    return 0 if ok == len(paths) else 2


if __name__ == "__main__":
    sys.exit(main())
