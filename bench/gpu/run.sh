#!/bin/sh
# bench/gpu/run.sh — the U-Net on the GPU, pneumoseg against PyTorch on the
# same card in the same run.
#
#   bench/gpu/run.sh [BUILD_DIR]          (default: build-gpu)
#
# Builds with model/cuda/standalone/build.sh (needs only nvcc, cuDNN and a C
# compiler), then for base 64 at 256², 512² and 1024² times inference and a
# training step: pneumoseg FP32 (TF32 off) and TF32, PyTorch FP32, TF32 and
# AMP bf16 + channels_last, one after the other. Prints images/s, TFLOP/s by
# the seed's count and pneumoseg / PyTorch ratios. Batches per size come
# from BATCH_256, BATCH_512, BATCH_1024 (defaults 16, 8, 2); ITERS (10).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-gpu}
python=${PYTHON:-python3}
iters=${ITERS:-10}

"$root/model/cuda/standalone/build.sh" "$build" >/dev/null
. "$build/env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
"$build/bench_gpu" --iters 1 --warmup 0 --size 64 --batch 1 >/dev/null  # prints the device line

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
printf '%-5s %-5s %-5s %-22s %9s %8s\n' mode size batch who img_s TFLOP/s
for size in 256 512 1024; do
    eval batch=\${BATCH_$size:-}
    [ -n "$batch" ] || case $size in 256) batch=16 ;; 512) batch=8 ;; *) batch=2 ;; esac
    for mode in infer train; do
        common="--mode $mode --base 64 --size $size --batch $batch --iters $iters"
        fp32=$("$build/bench_gpu" $common --tf32 0 || echo "failed")
        tf32=$("$build/bench_gpu" $common --tf32 1 || echo "failed")
        t_fp32=$("$python" "$here/bench_torch_gpu.py" $common --precision fp32 || echo "failed")
        t_tf32=$("$python" "$here/bench_torch_gpu.py" $common --precision tf32 || echo "failed")
        t_amp=$("$python" "$here/bench_torch_gpu.py" $common --precision amp_bf16 --channels-last || echo "failed")
        for line in "pneumoseg fp32|$fp32" "pneumoseg tf32|$tf32" "pytorch fp32|$t_fp32" \
                    "pytorch tf32|$t_tf32" "pytorch amp_bf16 nhwc|$t_amp"; do
            who=${line%%|*} out=${line#*|}
            printf '%-5s %-5s %-5s %-22s %9s %8s\n' $mode $size $batch "$who" \
                "$(echo "$out" | field img_s)" "$(echo "$out" | field tflops)"
        done
        a=$(echo "$fp32" | field img_s) b=$(echo "$t_fp32" | field img_s)
        c=$(echo "$tf32" | field img_s) d=$(echo "$t_tf32" | field img_s)
        awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN { if (b > 0 && d > 0)
            printf "      ratio pneumoseg/pytorch: fp32 %.2f, tf32 %.2f\n", a / b, c / d }'
    done
done
