#!/usr/bin/env python3
"""The PyTorch side of bench/model/run.sh: the seed's U-Net on the CPU, same
options and same output line as bench_model.c (mode, base, size, batch,
threads, ms per iteration, images/s, peak RSS)."""
import argparse
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "torch_fixtures"))
from make_fixtures import SeedUNet, seg_loss  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("infer", "train"), default="infer")
    for name, default in (("base", 64), ("size", 128), ("batch", 2), ("threads", 0),
                          ("iters", 2), ("warmup", 1)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count())
    torch.manual_seed(1)
    model = SeedUNet(a.base)
    x = torch.randn(a.batch, 1, a.size, a.size)
    t = (torch.rand(a.batch, 1, a.size, a.size) < 0.1).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train(a.mode == "train")
    start = 0.0
    for it in range(a.warmup + a.iters):
        if it == a.warmup:
            start = time.perf_counter()
        if a.mode == "train":
            opt.zero_grad()
            loss, _, _ = seg_loss(model(x), t)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    per_iter = (time.perf_counter() - start) / max(a.iters, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"pytorch mode={a.mode} base={a.base} size={a.size} batch={a.batch} "
          f"threads={torch.get_num_threads()} ms={per_iter * 1e3:.1f} "
          f"img_s={a.batch / per_iter:.3f} peak_rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
