#!/bin/sh
# bench/gpu/run.sh — the seed's U-Net on the GPU, pneumoseg against PyTorch
# on the same card in the same run, at the largest batch that fits.
#
#   bench/gpu/run.sh [BUILD_DIR]          (default: build-gpu)
#
# Builds with model/cuda/standalone/build.sh (needs only nvcc, cuDNN and a C
# compiler; PyTorch for its side). Then, for each size, precision and mode
# (training step, inference), bench_gpu finds pneumoseg's largest batch
# (doubling then bisection, a fresh backend per trial, up to MAX_BATCH) and
# times it; PyTorch then runs the same model at that batch and matching
# precision: fp32 ↔ fp32, tf32 ↔ tf32, bf16 ↔ AMP bf16 + channels_last. One
# PyTorch process serves every run (bench_torch_gpu.py --serve), so it starts
# once; it holds its CUDA context (about 0.5 GiB) from the start, so every
# search of pneumoseg's sees the same free memory. A table at the end gives
# images/s, TFLOP/s (the seed's 337.5 GFLOP per 512² image forward, ×3 for
# training), the share of the card's dense peak (bench/gpu/gpu_peaks.c; n/a
# for cards not in it), peak memory and the pneumoseg / PyTorch ratio of
# images/s.
#
# Environment (defaults): SIZES ("512 256 1024"), PRECISIONS ("bf16 tf32
# fp32"), MODES ("train infer"), BASE (64), MAX_BATCH (256), RUN_SECONDS (1:
# each timing runs at least this long and 3 steps, after 2 warm-up steps), ALGO
# (heuristic; measured makes pneumoseg time cuDNN's algorithms and PyTorch
# run with cudnn.benchmark), BUDGET_S (480: configurations not started by
# then are skipped, so the run ends inside the device tool's 10 minutes),
# RUN_LIMIT_S (180: a pneumoseg search and timing still running then is
# stopped and its row marked failed, so one stuck run cannot use up the
# budget), PYTHON (python3). BACKEND=reference checks this script on a machine
# without a GPU: pneumoseg on its reference backend, PyTorch on the CPU
# (tiny sizes only, e.g. SIZES=32 BASE=4 MAX_BATCH=4; the figures mean
# nothing).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-gpu}
python=${PYTHON:-python3}
sizes=${SIZES:-512 256 1024}
precisions=${PRECISIONS:-bf16 tf32 fp32}
modes=${MODES:-train infer}
base=${BASE:-64}
max_batch=${MAX_BATCH:-256}
seconds=${RUN_SECONDS:-1}
algo=${ALGO:-heuristic}
budget=${BUDGET_S:-480}
run_limit=${RUN_LIMIT_S:-180}
backend=${BACKEND:-cuda}
start=$(date +%s)

torch_device=cuda torch_bench=
[ "$backend" = cuda ] || torch_device=cpu
[ "$algo" = measured ] && torch_bench=--cudnn-benchmark

"$root/model/cuda/standalone/build.sh" "$build" >&2
# env.sh puts cuDNN's and the CUDA toolkit's folders first in
# LD_LIBRARY_PATH, for bench_gpu. PyTorch runs with the caller's: its pip
# wheels find their own CUDA libraries through RUNPATH, which
# LD_LIBRARY_PATH overrides, and the toolkit's libraries may not be the
# versions it was built against.
torch_ld_path=${LD_LIBRARY_PATH-}
. "$build/env.sh"

echo "== versions"
# The first run also says why there is no GPU, if there is none (exit 77).
probe=0
"$build/bench_gpu" --backend "$backend" --mode infer --base 4 --size 32 --batch 1 \
    --iters 1 --seconds 0 --warmup 0 >/dev/null || probe=$?
if [ "$probe" = 77 ]; then
    echo "run.sh: this benchmark needs a GPU (BACKEND=reference checks the script without one)" >&2
    exit 1
fi
[ "$probe" = 0 ] || echo "bench_gpu failed at 32², batch 1 (exit $probe)"
if [ "$backend" = cuda ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version | tail -n 1
fi
LD_LIBRARY_PATH=$torch_ld_path "$python" "$here/bench_torch_gpu.py" --versions \
    --device "$torch_device"
echo "pneumoseg $(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)," \
     "sizes: $sizes; precisions: $precisions; modes: $modes; base $base;" \
     "batch cap $max_batch; algorithms: $algo"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A PyTorch process that died must not take this script with it.
trap '' PIPE
# PyTorch answers one line per request line, through two FIFOs.
mkfifo "$work/to_torch" "$work/from_torch"
LD_LIBRARY_PATH=$torch_ld_path "$python" "$here/bench_torch_gpu.py" --serve \
    --device "$torch_device" --base "$base" --seconds "$seconds" $torch_bench \
    <"$work/to_torch" >"$work/from_torch" &
torch_pid=$!
exec 3>"$work/to_torch" 4<"$work/from_torch"

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

echo "== runs"
: >"$work/rows"
for size in $sizes; do
    for precision in $precisions; do
        for mode in $modes; do
            if [ $(($(date +%s) - start)) -ge "$budget" ]; then
                echo "skipped $mode $size $precision: past BUDGET_S=$budget s"
                echo "$mode $size $precision skipped" >>"$work/rows"
                continue
            fi
            ours=$(timeout "$run_limit" "$build/bench_gpu" --backend "$backend" --mode "$mode" \
                --size "$size" --base "$base" --precision "$precision" --batch max \
                --max-batch "$max_batch" --seconds "$seconds" --algo "$algo") ||
                echo "bench_gpu $mode $size $precision: exit $? (124: past RUN_LIMIT_S=$run_limit s)" >&2
            echo "$ours"
            line=$(echo "$ours" | grep '^pneumoseg ' || echo "pneumoseg failed")
            batch=$(echo "$line" | field batch)
            theirs="pytorch not run"
            if [ -n "$batch" ] && kill -0 "$torch_pid" 2>/dev/null; then
                echo "$mode $size $precision $batch" >&3 || true
                IFS= read -r theirs <&4 || theirs="pytorch failed=no_answer"
            fi
            echo "$theirs"
            echo "$mode $size $precision $line | $theirs" >>"$work/rows"
        done
    done
done
exec 3>&-
wait "$torch_pid" || true

echo "== summary ($(($(date +%s) - start)) s; ratio = pneumoseg / PyTorch images/s)"
awk '
function get(s, k,   m) { return match(s, " " k "=[^ ]*") ? substr(s, RSTART + length(k) + 2, RLENGTH - length(k) - 2) : "" }
function pct(t, p) { return (p > 0 && t != "") ? sprintf("%.1f", 100 * t / p) : "n/a" }
BEGIN {
    printf "%-5s %5s %-4s | %5s %9s %7s %6s %6s | %5s %9s %7s %6s %6s | %5s\n",
        "mode", "size", "prec", "batch", "img/s", "TFLOP/s", "%peak", "GiB",
        "batch", "img/s", "TFLOP/s", "%peak", "GiB", "ratio"
    printf "%-16s | %-37s | %-37s |\n", "", "pneumoseg", "PyTorch"
}
{
    split($0, halves, " [|] ")
    ours = " " halves[1] " "; theirs = " " halves[2] " "
    if ($4 == "skipped" || get(ours, "img_s") == "") {
        printf "%-5s %5s %-4s | %s\n", $1, $2, $3, ($4 == "skipped" ? "skipped (time budget)" : "pneumoseg failed")
        next
    }
    peak = get(ours, "peak_tflops"); if (peak == "n/a") peak = 0
    a = get(ours, "img_s"); b = get(theirs, "img_s")
    tb = get(theirs, "batch"); if (get(theirs, "oom_at") != "") tb = tb "*"
    printf "%-5s %5s %-4s | %5s %9s %7s %6s %6s | %5s %9s %7s %6s %6s | %5s\n",
        $1, $2, $3, get(ours, "batch"), a, get(ours, "tflops"), pct(get(ours, "tflops"), peak),
        get(ours, "mem_gib"), (b == "" ? "-" : tb), (b == "" ? "failed" : b),
        (b == "" ? "-" : get(theirs, "tflops")), (b == "" ? "-" : pct(get(theirs, "tflops"), peak)),
        (b == "" ? "-" : get(theirs, "mem_gib")), (b + 0 > 0 ? sprintf("%.2f", a / b) : "n/a")
}
END { print "(* PyTorch ran out of memory at pneumoseg'"'"'s batch and ran at this smaller one)" }
' "$work/rows"
