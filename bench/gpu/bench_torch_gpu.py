#!/usr/bin/env python3
"""The PyTorch side of bench/gpu/run.sh: the seed's U-Net (the same module as
tools/torch_fixtures/make_fixtures.py, hence the seed's layers and widths) on
the GPU, timed as bench_gpu.c times pneumoseg, one output line per run:

  pytorch mode=train base=64 size=512 batch=96 precision=amp_bf16_nhwc iters=… ms=…
      img_s=… tflops=… mem_gib=… reserved_gib=…      (on one line)

precision: fp32 (TF32 off), tf32 (cuDNN and matmul TF32 on), amp_bf16
(torch.autocast to bfloat16, which needs no loss scaling); amp_bf16 runs the
model and input channels_last (NHWC), as tensor cores prefer, and fp32/tf32
run PyTorch's default NCHW. Each step copies its batch from (pinned) host
memory, as pneumoseg's steps copy theirs. --serve reads runs from standard input, one
line "MODE SIZE PRECISION BATCH" each (pneumoseg's precision names: fp32,
tf32, bf16), and answers each with exactly one line as soon as it is done,
so run.sh starts PyTorch once and interleaves its runs with pneumoseg's; a
run that fails answers "pytorch … failed=<reason>". A run that runs out of
GPU memory is retried at half the batch, and its line then says
oom_at=<batch>. mem_gib is torch.cuda.max_memory_allocated (tensors, cuDNN
workspaces included), reserved_gib what its caching allocator held; both
n/a on the CPU.

A GPU is required: without one the script says so and exits 1. --device cpu
runs the same code on the CPU, a check of the script itself (its figures mean
nothing)."""
import argparse
import gc
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tools", "torch_fixtures"))
from make_fixtures import SeedUNet, seg_loss  # noqa: E402

SEED_GFLOP_FWD_512 = 337.5
PRECISION_OF = {"fp32": "fp32", "tf32": "tf32", "bf16": "amp_bf16"}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def run_once(dev, mode, precision, base, size, batch, iters, seconds, warmup, cudnn_bench):
    tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_bench
    amp = precision == "amp_bf16"
    fmt = torch.channels_last if amp else torch.contiguous_format
    torch.manual_seed(1)
    model = SeedUNet(base).to(dev).to(memory_format=fmt)
    # The batch comes from host memory every step, as pneumoseg's does (its
    # API takes host arrays); pinned, as DataLoader(pin_memory=True) gives.
    x_host = torch.randn(batch, 1, size, size)
    t_host = (torch.rand(batch, 1, size, size) < 0.1).float()
    if dev.type == "cuda":
        x_host, t_host = x_host.pin_memory(), t_host.pin_memory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    train = mode == "train"
    model.train(train)

    def step():
        x = x_host.to(dev, non_blocking=True).contiguous(memory_format=fmt)
        if train:
            t = t_host.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss, _, _ = seg_loss(logits.float(), t)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                model(x).float().cpu()  # logits back to the host, as bench_gpu.c

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync(dev)
    # Timed steps go on for at least `seconds` and `iters` steps; each one
    # waits for the device, as pneumoseg's steps wait for their loss.
    start = time.perf_counter()
    timed = 0
    while True:
        step()
        sync(dev)
        timed += 1
        if timed >= iters and time.perf_counter() - start >= seconds:
            break
    per_iter = (time.perf_counter() - start) / timed
    mem = reserved = "n/a"
    if dev.type == "cuda":
        mem = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}"
        reserved = f"{torch.cuda.max_memory_reserved() / 2**30:.2f}"
    return timed, per_iter, mem, reserved


def release(dev):
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def run_job(dev, a, mode, precision, size, batch):
    """Runs one configuration, halving the batch while it runs out of memory."""
    oom_at = None
    while True:
        result = None
        try:
            result = run_once(dev, mode, precision, a.base, size, batch, a.iters, a.seconds,
                              a.warmup, a.cudnn_benchmark)
        except torch.cuda.OutOfMemoryError:
            pass
        if result is not None:
            break
        # Outside the except block: its traceback no longer holds the tensors.
        release(dev)
        oom_at = oom_at or batch
        if batch == 1:
            print(f"pytorch mode={mode} base={a.base} size={size} batch=0 "
                  f"precision={precision} failed=out_of_memory oom_at=1", flush=True)
            return
        batch //= 2
    timed, per_iter, mem, reserved = result
    release(dev)
    gflop = SEED_GFLOP_FWD_512 * (size / 512) ** 2 * (a.base / 64) ** 2
    gflop *= 3 if mode == "train" else 1
    name = precision + ("_nhwc" if precision == "amp_bf16" else "")
    line = (f"pytorch mode={mode} base={a.base} size={size} batch={batch} precision={name} "
            f"iters={timed} ms={per_iter * 1e3:.2f} img_s={batch / per_iter:.2f} "
            f"tflops={gflop * batch / per_iter / 1e3:.1f} mem_gib={mem} "
            f"reserved_gib={reserved}")
    if oom_at:
        line += f" oom_at={oom_at}"
    print(line, flush=True)


def parse_job(text):
    """A --serve line, or None when it is not one."""
    f = text.split()
    if (len(f) != 4 or f[0] not in ("infer", "train") or f[2] not in PRECISION_OF
            or not f[1].isdigit() or not f[3].isdigit() or int(f[3]) < 1):
        return None
    return f[0], int(f[1]), PRECISION_OF[f[2]], int(f[3])


def serve(dev, a):
    # The CUDA context from the start, so the memory pneumoseg's runs find
    # free does not change after the first request.
    torch.zeros(1, device=dev)
    while True:
        text = sys.stdin.readline()
        if not text:
            return
        if not text.strip():
            continue
        job = parse_job(text)
        if job is None:
            print(f"pytorch failed=bad_request:{text.strip().replace(' ', '_')}", flush=True)
            continue
        mode, size, precision, batch = job
        try:
            run_job(dev, a, mode, precision, size, batch)
        except Exception as e:  # noqa: BLE001 (one answer per request, whatever happened)
            release(dev)
            reason = f"{type(e).__name__}:{e}".replace(" ", "_").replace("\n", "_")[:200]
            print(f"pytorch mode={mode} base={a.base} size={size} batch={batch} "
                  f"precision={precision} failed={reason}", flush=True)


def main():
    ap = argparse.ArgumentParser(description="The seed's U-Net in PyTorch, timed.")
    ap.add_argument("--mode", choices=("infer", "train"), default="infer")
    ap.add_argument("--precision", choices=("fp32", "tf32", "amp_bf16"), default="fp32")
    ap.add_argument("--serve", action="store_true",
                    help="read 'MODE SIZE PRECISION BATCH' lines from standard input")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN time its algorithms per shape (off: its heuristics, "
                         "as pneumoseg's default)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--versions", action="store_true", help="print the versions and exit")
    for name, default in (("base", 64), ("size", 512), ("batch", 4), ("iters", 3),
                          ("warmup", 2)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"bench_torch_gpu: no GPU: PyTorch {torch.__version__} (built for CUDA "
                 f"{torch.version.cuda}) sees no CUDA device; this benchmark needs one")
    dev = torch.device(a.device)
    if a.versions:
        card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        print(f"torch {torch.__version__} CUDA {torch.version.cuda} "
              f"cuDNN {torch.backends.cudnn.version()} device {card}")
        return
    if a.serve:
        serve(dev, a)
    else:
        run_job(dev, a, a.mode, a.precision, a.size, a.batch)


if __name__ == "__main__":
    main()
