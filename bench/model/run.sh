#!/bin/sh
# bench/model/run.sh — the U-Net on the CPU, pneumoseg against PyTorch.
#
#   bench/model/run.sh BUILD_DIR [THREADS]
#
# Builds bench_model.c against BUILD_DIR's model and common libraries, then,
# for base widths 64 (the seed) and 16 at 128² and 256², times inference
# (eval forward) and a training step (forward, BCE + Dice backward, Adam)
# with pneumoseg and with PyTorch (bench_torch.py: the seed's model, same
# batch, same thread count), one after the other in this run, and prints
# images/s and the ratio pneumoseg / PyTorch. Last, the peak resident memory
# of one training step at 512² (base 64, batch 1) of each.
# PyTorch: Debian's python3-torch (PYTHON defaults to /usr/bin/python3).
set -eu
build=${1:?usage: run.sh BUILD_DIR [THREADS]}
threads=${2:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
bin="$build/bench-model/bench_model"
batch=${BATCH:-2}

mkdir -p "$build/bench-model"
cmake --build "$build" --target pnx_model >/dev/null
cc -O2 -std=c17 -I"$root" -I"$build/generated" "$here/bench_model.c" \
    "$build/model/libpnx_model.a" "$build/common/libpnx_common.a" \
    $(pkg-config --libs openblas 2>/dev/null || echo -lblas) -lcrypto -lpthread -lm -o "$bin"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads $threads, batch $batch, $("$python" -c 'import torch; print("torch", torch.__version__)')"
printf '%-6s %-5s %-5s %12s %12s %7s\n' mode base size pneumoseg_img/s pytorch_img/s ratio
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
for base in 64 16; do
    for size in 128 256; do
        for mode in infer train; do
            ours=$("$bin" --mode $mode --base $base --size $size --batch "$batch" --threads "$threads")
            theirs=$("$python" "$here/bench_torch.py" --mode $mode --base $base --size $size \
                     --batch "$batch" --threads "$threads")
            a=$(echo "$ours" | field img_s)
            b=$(echo "$theirs" | field img_s)
            printf '%-6s %-5s %-5s %12s %12s %7s\n' $mode $base $size "$a" "$b" \
                "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
        done
    done
done
echo "peak memory of one training step, base 64, 512x512, batch 1:"
"$bin" --mode train --base 64 --size 512 --batch 1 --threads "$threads" --iters 1 --warmup 0
"$python" "$here/bench_torch.py" --mode train --base 64 --size 512 --batch 1 --threads "$threads" \
    --iters 1 --warmup 0
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
