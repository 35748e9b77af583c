#!/bin/sh
# bench/ingest/run.sh — DICOM decoding throughput, pneumoseg against pydicom.
#
#   bench/ingest/run.sh BUILD_DIR [COUNT] [DIR]
#
# Decodes the same folder of 1024×1024 JPEG Baseline files with
#   - pneumoseg's isolated worker pool (bench_ingest: 1 worker, then one per
#     CPU), and `pneumoseg ingest` itself (walk + decode + database),
#   - pydicom + numpy with its Pillow (libjpeg-turbo) and pylibjpeg-libjpeg
#     decoders (pydicom_decode.py: one process, then a multiprocessing pool
#     of one process per CPU),
# one after the other in this run, three rounds, and prints images/s and
# CPU milliseconds per image (workers included), the figure that stays
# meaningful when other work shares the machine.
# Without DIR, the folder is COUNT (default 200) copies of the real SIIM
# file (../shared/realdata/siim) when present, else of sample_dicom/*.
set -eu
build=${1:?usage: run.sh BUILD_DIR [COUNT] [DIR]}
count=${2:-200}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
cpus=$(nproc)

cmake --build "$build" --target bench_ingest pneumoseg >/dev/null 2>&1
bin=$(find "$build/bench/ingest" -name bench_ingest -type f | head -n1)

dir=${3:-}
if [ -z "$dir" ]; then
    dir="$build/bench-ingest/files"
    rm -rf "$dir"
    mkdir -p "$dir"
    siim="$root/../shared/realdata/siim/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
    if [ -r "$siim" ]; then
        set -- "$siim"
        source_desc="copies of the real SIIM file"
    else
        set -- $(find "$root/sample_dicom" -name '*.dcm' | sort)
        source_desc="copies of sample_dicom files"
    fi
    i=0
    while [ "$i" -lt "$count" ]; do
        for f in "$@"; do
            [ "$i" -lt "$count" ] || break
            cp "$f" "$dir/$(printf '%05d' "$i").dcm"
            i=$((i + 1))
        done
    done
else
    source_desc="files of $dir"
fi

echo "machine: $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "files: $(find "$dir" -name '*.dcm' | wc -l) $source_desc;" \
     "$("$python" -c 'import pydicom, numpy, PIL, pylibjpeg; print("pydicom", pydicom.__version__, "numpy", numpy.__version__, "Pillow", PIL.__version__, "pylibjpeg", pylibjpeg.__version__)')"
cat "$dir"/*.dcm > /dev/null   # warm the page cache for everybody

cfg="$build/bench-ingest/p.yaml"
printf 'output: %s\nstages: []\n' "$build/bench-ingest/out" > "$cfg"
field() { sed -n 's/.*img_s=\([0-9.]*\) cpu_ms_per_img=\([0-9.]*\).*/\1 \2/p'; }
row() { printf '%-5s %-34s %8s %12s\n' "$1" "$2" $3; }
printf '%-5s %-34s %8s %12s\n' round decoder img/s cpu_ms/img
for round in 1 2 3; do
    row "$round" "pneumoseg, in-process (no isolation)" "$("$bin" --unisolated "$dir" | field)"
    row "$round" "pneumoseg pool, 1 worker" "$("$bin" --workers 1 "$dir" | field)"
    row "$round" "pneumoseg pool, $cpus workers" "$("$bin" --workers "$cpus" "$dir" | field)"
    rm -rf "$build/bench-ingest/out"
    t0=$(date +%s.%N)
    "$build/pneumoseg" ingest -q --config "$cfg" "$dir" >/dev/null
    t1=$(date +%s.%N)
    printf '%-5s %-34s %8.1f %12s\n' "$round" "pneumoseg ingest (+walk, +db)" \
        "$(echo "$(find "$dir" -name '*.dcm' | wc -l) / ($t1 - $t0)" | bc -l)" "-"
    for plugin in pillow pylibjpeg; do
        row "$round" "pydicom+$plugin, 1 process" \
            "$("$python" "$here/pydicom_decode.py" --plugin $plugin "$dir" | field)"
        row "$round" "pydicom+$plugin, $cpus processes" \
            "$("$python" "$here/pydicom_decode.py" --plugin $plugin --procs "$cpus" "$dir" | field)"
    done
done
