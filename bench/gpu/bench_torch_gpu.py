#!/usr/bin/env python3
"""The PyTorch side of bench/gpu/run.sh: the seed's U-Net (the same module as
tools/torch_fixtures/make_fixtures.py) on the GPU, with the options and the
output line of bench_gpu.c:

  pytorch mode=train base=64 size=512 batch=8 precision=amp_bf16 ms=… img_s=… tflops=…

precision: fp32 (TF32 off), tf32 (cuDNN and matmul TF32 on), amp_bf16 or
amp_fp16 (torch.autocast, with a GradScaler for fp16); --channels-last puts
the model and input in NHWC, as tensor cores prefer."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "torch_fixtures"))
from make_fixtures import SeedUNet, seg_loss  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("infer", "train"), default="infer")
    ap.add_argument("--precision", choices=("fp32", "tf32", "amp_bf16", "amp_fp16"),
                    default="fp32")
    ap.add_argument("--channels-last", action="store_true")
    for name, default in (("base", 64), ("size", 512), ("batch", 4), ("iters", 10),
                          ("warmup", 3)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    tf32 = a.precision != "fp32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    torch.manual_seed(1)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = SeedUNet(a.base).to(dev).to(memory_format=fmt)
    x = torch.randn(a.batch, 1, a.size, a.size, device=dev).to(memory_format=fmt)
    t = (torch.rand(a.batch, 1, a.size, a.size, device=dev) < 0.1).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    amp = a.precision.startswith("amp")
    amp_dtype = torch.bfloat16 if a.precision == "amp_bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=a.precision == "amp_fp16")
    model.train(a.mode == "train")
    start = 0.0
    for it in range(a.warmup + a.iters):
        if it == a.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                logits = model(x)
            loss, _, _ = seg_loss(logits.float(), t)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            with torch.no_grad(), torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                model(x).float().cpu()  # logits back to the host, as bench_gpu.c
    torch.cuda.synchronize()
    per_iter = (time.perf_counter() - start) / max(a.iters, 1)
    gflop = 337.5 * (a.size / 512) ** 2 * (a.base / 64) ** 2 * (3 if a.mode == "train" else 1)
    prec = a.precision + ("_nhwc" if a.channels_last else "")
    print(f"pytorch mode={a.mode} base={a.base} size={a.size} batch={a.batch} precision={prec} "
          f"ms={per_iter * 1e3:.2f} img_s={a.batch / per_iter:.2f} "
          f"tflops={gflop * a.batch / per_iter / 1e3:.1f}")


if __name__ == "__main__":
    main()
