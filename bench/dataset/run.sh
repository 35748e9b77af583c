#!/bin/sh
# bench/dataset/run.sh — how fast `pneumoseg dataset` rebuilds a training set.
#
#   bench/dataset/run.sh BUILD_DIR [STUDIES] [WORK_DIR]
#
# Generates STUDIES (default 1000) SIIM-like 1024 × 1024 JPEG Baseline
# studies with pneumoseg-gen-sample (kept in WORK_DIR, default
# /tmp/pnx-bench-dataset, and reused when already there), then times
# `pneumoseg dataset` at 128² and 256² with one and with all decode workers,
# and prints the stage's own timing line (headers, pixels, images/s) with
# the CPU time of the whole run (the decode workers included), and the load
# average: on a shared machine CPU seconds per image are the figure to
# compare, wall time depends on who else runs.
# Rebuilding is bounded by JPEG decoding in the workers.
set -eu
build=${1:?usage: run.sh BUILD_DIR [STUDIES] [WORK_DIR]}
studies=${2:-1000}
work=${3:-/tmp/pnx-bench-dataset}
pneumoseg="$build/pneumoseg"
gen="$build/tools/gen_sample/pneumoseg-gen-sample"
sample="$work/sample-$studies"

if [ ! -f "$sample/train-rle.csv" ]; then
    mkdir -p "$work"
    echo "generating $studies studies in $sample ..."
    start=$(date +%s)
    "$gen" --out "$sample" --seed 2019 --train "$studies" --test 0 -q
    echo "generated in $(( $(date +%s) - start )) s"
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for size in 128 256; do
    for workers in 1 0; do
        out="$work/out-$size-$workers"
        rm -rf "$out"
        cat > "$work/pipeline.yaml" <<YAML
output: $out
stages: [dataset]
ingest: {workers: $workers}
dataset:
  dicom_dir: $sample/dicom-images-train
  rle_csv: $sample/train-rle.csv
  image_size: $size
YAML
        /usr/bin/time -f '%e %U %S' -o "$work/cpu.txt" \
            "$pneumoseg" dataset --config "$work/pipeline.yaml" -q > "$work/summary.txt"
        read -r wall user sys < "$work/cpu.txt"
        printf 'size %4d  workers %-3s  wall %6.1f s  cpu %5.1f s (%.1f ms/image)  load %s\n    ' \
            "$size" "$([ "$workers" = 0 ] && echo all || echo "$workers")" "$wall" \
            "$(echo "$user + $sys" | bc)" "$(echo "($user + $sys) * 1000 / $studies" | bc -l)" \
            "$(cut -d' ' -f1 /proc/loadavg)"
        grep '^time:' "$work/summary.txt"
    done
done
